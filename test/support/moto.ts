import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { freePort } from './ports.js'

const MOTO_READY_TIMEOUT_MS = 30_000
const MOTO_POLL_MS = 200

/** Whether moto's server can run here (`python3 -m moto.server`). */
export const motoInstalled = spawnSync('python3', ['-c', 'import moto.server'], { stdio: 'ignore' }).status === 0

/** Says, once per suite, that a moto suite is skipped; fails instead when REQUIRE_MOTO=1. */
export function reportMissingMoto(suite: string): void {
  if (motoInstalled) return
  if (process.env.REQUIRE_MOTO === '1') throw new Error('moto is required (REQUIRE_MOTO=1) but `python3 -c "import moto.server"` fails')
  console.warn(`SKIPPED: ${suite} needs moto (python3 -m moto.server), which is not installed here`)
}

/** A moto server on a free loopback port. */
export interface Moto {
  endpoint: string
  stop(): void
}

/**
 * Starts moto and waits until `seed` succeeds against it (moto takes seconds to listen): `seed`
 * writes what the suite needs first, and is retried until then.
 */
export async function startMoto(seed: (endpoint: string) => Promise<unknown>): Promise<Moto> {
  const port = await freePort()
  const child: ChildProcess = spawn('python3', ['-m', 'moto.server', '-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' })
  const endpoint = `http://127.0.0.1:${port}`
  const deadline = Date.now() + MOTO_READY_TIMEOUT_MS
  for (;;) {
    try {
      await seed(endpoint)
      return { endpoint, stop: () => void child.kill('SIGTERM') }
    } catch (error) {
      if (Date.now() > deadline) {
        child.kill('SIGTERM')
        throw error
      }
      await new Promise((resolve) => setTimeout(resolve, MOTO_POLL_MS))
    }
  }
}

/** What one run of the command line printed, and its exit code. */
export interface CliRun {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs `node bin/thinger-provisioner.mjs …` in a child process with `env`, as an operator would. */
export async function runCliProcess(env: NodeJS.ProcessEnv, args: string[]): Promise<CliRun> {
  const child = spawn(process.execPath, ['bin/thinger-provisioner.mjs', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const [code] = (await once(child, 'close')) as [number | null]
  return { code, stdout, stderr }
}
