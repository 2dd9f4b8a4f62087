import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'

const PROJECT_DIR = fileURLToPath(new URL('../..', import.meta.url))
// Only a stop for a program that never ends (the bug under test), not a timed assertion.
const GIVE_UP_MS = 60_000
/** How long a test that runs programs may take: a limit for a hung run on a busy machine, not a speed assertion. */
export const PROGRAM_TEST_LIMIT_MS = 90_000
const running = new Set<number>()

// A program must not outlive the test run (a test that timed out would leave a whole stack behind).
process.once('exit', () => {
  for (const pid of running) {
    try {
      process.kill(-pid, 'SIGKILL')
    } catch {
      // already gone
    }
  }
})

/** What a program printed and how it ended. */
export interface ProgramRun {
  code: number | null
  stdout: string
  stderr: string
  /** True when the program had not ended after a minute and was stopped. */
  stopped: boolean
}

/**
 * Runs one of the project's TypeScript programs (`local/device.ts`, `local/start.ts`) as
 * `npm run …` does, in a child process of its own, and collects its output. A program still
 * running after a minute is stopped with its whole process group.
 */
export async function runProgram(script: string, args: string[], env: Record<string, string | undefined> = {}): Promise<ProgramRun> {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: PROJECT_DIR,
    env: { ...process.env, FORCE_COLOR: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  running.add(child.pid!)
  let stopped = false
  const timer = setTimeout(() => {
    stopped = true
    try {
      process.kill(-child.pid!, 'SIGTERM')
    } catch {
      // already gone
    }
  }, GIVE_UP_MS)
  const [code] = (await once(child, 'close')) as [number | null]
  clearTimeout(timer)
  running.delete(child.pid!)
  return { code, stdout, stderr, stopped }
}

/** True when the text holds a JavaScript stack trace (an `at file:line` frame). */
export function hasStackTrace(text: string): boolean {
  return /^\s+at .+[:(].*\d+/m.test(text)
}
