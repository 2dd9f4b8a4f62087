import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer, type Server } from 'node:net'
import { afterEach, describe, expect, it, onTestFinished } from 'vitest'
import { parseAnswerPublicKey } from '../../lib/attestation/answer-signature.js'
import { freePort } from '../support/ports.js'
import { hasStackTrace, PROGRAM_TEST_LIMIT_MS, runProgram } from '../support/program.js'

const START = 'local/start.ts'

/** Every port of a stack, free, so that a program that wrongly goes on would really start one (and be stopped). */
async function freePorts(): Promise<Record<string, string>> {
  return {
    HTTP_PORT: String(await freePort()),
    LAMBDA_PORT: String(await freePort()),
    THINGER_EMULATOR_PORT: String(await freePort()),
    SSM_PORT: String(await freePort()),
  }
}

describe('Program: npm start', { timeout: PROGRAM_TEST_LIMIT_MS }, () => {
  const taken: Server[] = []

  afterEach(async () => {
    await Promise.all(taken.splice(0).map((server) => new Promise((resolve) => server.close(resolve))))
  })

  async function takePort(port: number): Promise<void> {
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
    taken.push(server)
  }

  it.each(['HTTP_PORT', 'LAMBDA_PORT', 'THINGER_EMULATOR_PORT', 'SSM_PORT'])('stops at once, naming %s, when its port is taken', async (setting) => {
    // Prepare
    const env = await freePorts()
    await takePort(Number(env[setting]))

    // Act
    const run = await runProgram(START, [], env)

    // Assess: the setting, and a port that is free for it
    expect(run.stopped).toBe(false)
    expect(run.code).toBe(2)
    const message = new RegExp(`^npm start: port ${env[setting]} is already in use \\(another \`npm start\`\\?\\): set ${setting} to a free port, for example: ${setting}=(\\d+) npm start$`)
    expect(run.stderr.trim()).toMatch(message)
    await expect(canListen(Number(message.exec(run.stderr.trim())![1]))).resolves.toBe(true)
    expect(run.stdout).not.toContain('local stack is up')
  })

  it('names every taken port at once, with a command that moves them all', async () => {
    // Prepare
    const env = await freePorts()
    await takePort(Number(env.HTTP_PORT))
    await takePort(Number(env.THINGER_EMULATOR_PORT))
    await takePort(Number(env.SSM_PORT))

    // Act
    const run = await runProgram(START, [], env)

    // Assess
    expect(run.code).toBe(2)
    const message = /^npm start: 3 ports are taken \(another `npm start`\?\): (\d+) \(HTTP_PORT\) is already in use, (\d+) \(THINGER_EMULATOR_PORT\) is already in use, (\d+) \(SSM_PORT\) is already in use; set HTTP_PORT, THINGER_EMULATOR_PORT, SSM_PORT to free ports, for example: HTTP_PORT=(\d+) THINGER_EMULATOR_PORT=(\d+) SSM_PORT=(\d+) npm start$/.exec(run.stderr.trim())
    expect(message, run.stderr).not.toBeNull()
    expect(message!.slice(1, 4)).toEqual([env.HTTP_PORT, env.THINGER_EMULATOR_PORT, env.SSM_PORT])
    const suggested = message!.slice(4, 7).map(Number)
    expect(new Set([...suggested, Number(env.LAMBDA_PORT)]).size).toBe(4)
    for (const port of suggested) await expect(canListen(port)).resolves.toBe(true)
  })

  it('serves the fleets file FLEETS_FILE names, and refuses one that does not exist', async () => {
    // Act
    const run = await runProgram(START, [], { ...(await freePorts()), FLEETS_FILE: 'no-such-fleets.yml' })

    // Assess
    expect(run.code).toBe(2)
    expect(run.stderr.trim()).toBe('npm start: fleets file no-such-fleets.yml is invalid:\n  - FLEETS_FILE names no-such-fleets.yml, which does not exist')
    expect(run.stdout).not.toContain('local stack is up')
  })

  it('shows a YAML error of the fleets file with the lines around it', async () => {
    // Prepare
    const dir = mkdtempSync(join(tmpdir(), 'fleets-'))
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
    writeFileSync(join(dir, 'fleets.yml'), 'version: 1\nfleets:\n  a:\n    proof: [hmac]\n   keyParam: /k\n')

    // Act
    const run = await runProgram(START, [], { ...(await freePorts()), FLEETS_FILE: join(dir, 'fleets.yml') })

    // Assess
    expect(run.code).toBe(2)
    expect(run.stderr).toContain('at line 5, column 1:\n\n        proof: [hmac]\n       keyParam: /k\n    ^\n')
  })

  it('stops at once with the function\'s own message when a setting is invalid', async () => {
    // Act
    const run = await runProgram(START, [], { ...(await freePorts()), CLOCK_SKEW_SECONDS: 'abc' })

    // Assess
    expect(run.stopped).toBe(false)
    expect(run.code).toBe(2)
    expect(run.stderr.trim()).toBe('npm start: setting CLOCK_SKEW_SECONDS: must be a whole number from 1 to 86400 (the function would answer every request 500 internal_error)')
    expect(run.stdout).not.toContain('internal_error')
  })

  it('names the port setting that is not a number', async () => {
    // Act
    const run = await runProgram(START, [], { ...(await freePorts()), SSM_PORT: '45o3' })

    // Assess
    expect(run.code).toBe(2)
    expect(run.stderr.trim()).toBe('npm start: SSM_PORT must be a port number from 1 to 65535, got "45o3"')
    expect(hasStackTrace(run.stderr)).toBe(false)
  })

  it('prints the public half of its answer key and writes it where the device player pins it from', async () => {
    // Prepare
    const env = { ...(await freePorts()), ANSWER_KEY_FILE: join(mkdtempSync(join(tmpdir(), 'answer-key-')), 'answer-key.pub') }
    const child = spawn(process.execPath, ['--import', 'tsx', START], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    onTestFinished(() => void (child.exitCode === null && child.kill('SIGTERM')))
    let output = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
    while (!output.includes('Stop with Ctrl+C') && child.exitCode === null) await new Promise((resolve) => setTimeout(resolve, 100))

    // Act
    const played = await runProgram('local/device.ts', ['esp32_a1b2c3d4e5f6'], env)
    child.kill('SIGINT')
    await once(child, 'exit')

    // Assess
    const publicKey = readFileSync(env.ANSWER_KEY_FILE, 'utf8').trim()
    expect(() => parseAnswerPublicKey(publicKey)).not.toThrow()
    expect(output).toContain(`answer public key      ${publicKey}`)
    expect(played.stdout).toContain('answer signature: verified under the pinned answer key')
    expect(played.code).toBe(0)
  })

  it('stops everything it started, serverless-offline included, on Ctrl+C during the start', async () => {
    // Prepare
    const env = await freePorts()
    const child = spawn(process.execPath, ['--import', 'tsx', START], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    onTestFinished(() => void (child.exitCode === null && child.kill('SIGTERM')))
    let output = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
    // serverless-offline is building once it prints its first line
    while (!output.includes('Offline') && child.exitCode === null) await new Promise((resolve) => setTimeout(resolve, 100))

    // Act: the terminal sends SIGINT to the foreground process, not to serverless-offline's group
    child.kill('SIGINT')
    const [code] = (await once(child, 'exit')) as [number | null]

    // Assess: every port can be taken again, and no build folder was left behind
    expect(code).toBe(130)
    for (const port of Object.values(env)) await takePort(Number(port))
    expect(readdirSafe('.local-stack').filter((folder) => folder.startsWith(`build-${child.pid}-`))).toEqual([])
  })
})

describe('Program: npm start with a fleets file of ones own', () => {
  it('serves it, says so, and names the parameters the local SSM lacks', async () => {
    // Prepare: one HMAC fleet whose key the local SSM was not seeded with
    const dir = mkdtempSync(join(tmpdir(), 'fleets-'))
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
    const fleetsFile = join(dir, 'fleets.yml')
    writeFileSync(fleetsFile, "version: 1\nfleets:\n  lab:\n    proof: [hmac]\n    keyParam: /thinger-provisioner/local/lab/fleet-key\n    devicePattern: 'lab_[a-z0-9]{4}'\n")
    const env: Record<string, string> = { ...(await freePorts()), FLEETS_FILE: fleetsFile, ANSWER_KEY_FILE: join(dir, 'answer-key.pub') }
    const child = spawn(process.execPath, ['--import', 'tsx', START], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    onTestFinished(() => killGroupsOnPorts(child.pid!, env))
    let output = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
    while (!output.includes('Stop with Ctrl+C') && child.exitCode === null) await new Promise((resolve) => setTimeout(resolve, 200))

    // Act: a device of the default fleet of local/fleets.yml, which this file does not have
    const response = await fetch(`http://127.0.0.1:${env.HTTP_PORT}/v1/provision`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ device: 'esp32_a1b2c3d4e5f6', claim: 'x', fleet: 'workshop' }),
    })
    const answer = (await response.json()) as { error?: { code?: string } }
    const exited = once(child, 'exit')
    process.kill(child.pid!, 'SIGINT')
    await exited

    // Assess
    expect(output).toContain(`Fleets: ${fleetsFile}.`)
    expect(output).toContain('The local SSM holds none of /thinger-provisioner/local/lab/fleet-key:')
    expect(output).not.toContain('--fleet workshop')
    expect(answer.error?.code).toBe('unknown_fleet')
  }, STOP_TEST_LIMIT_MS)
})

// Each way a stack gets stopped: Ctrl+C (the terminal signals the whole foreground group), closing
// the terminal (SIGHUP to the group), `kill <pid of npm start>`, and `kill` of the program itself.
const STOPS = [
  { way: 'Ctrl+C in the terminal', command: 'npm', signal: 'SIGINT', to: 'group' },
  { way: 'closing the terminal', command: 'npm', signal: 'SIGHUP', to: 'group' },
  { way: 'kill <pid of npm start>', command: 'npm', signal: 'SIGTERM', to: 'npm' },
  { way: 'kill <pid of the start script>', command: 'node', signal: 'SIGTERM', to: 'npm' },
  // No signal reaches the script: only its parent's end tells it.
  { way: 'the death of the shell that started it', command: 'sh', signal: 'SIGKILL', to: 'npm' },
] as const
// Starting a whole stack (serverless-offline builds the function) on a shared machine, then stopping it.
const STOP_TEST_LIMIT_MS = 180_000
const STOPPED_WITHIN_MS = 30_000

describe('Program: npm start, stopped every way', () => {
  it.each(STOPS)('leaves nothing behind after $way ($signal)', async ({ command, signal, to }) => {
    // Prepare: a stack that is up
    const env = await freePorts()
    const answerKeyFile = join(mkdtempSync(join(tmpdir(), 'answer-key-')), 'answer-key.pub')
    const options = { env: { ...process.env, ...env, ANSWER_KEY_FILE: answerKeyFile }, stdio: ['ignore', 'pipe', 'pipe'] as ['ignore', 'pipe', 'pipe'], detached: true }
    const child =
      command === 'npm'
        ? spawn('npm', ['start', '--silent'], options)
        : command === 'sh'
          ? spawn('sh', ['-c', `'${process.execPath}' --import tsx ${START}; exit $?`], options)
          : spawn(process.execPath, ['--import', 'tsx', START], options)
    onTestFinished(() => killGroupsOnPorts(child.pid!, env))
    let output = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
    const exited = once(child, 'exit')
    while (!output.includes('local stack is up') && child.exitCode === null) await new Promise((resolve) => setTimeout(resolve, 200))
    expect(output).toContain('local stack is up')
    expect(output).toContain('x5_kit0001 --fleet factory   (X.509: a certificate of the local dev CA)')
    const stackPids = processesOnPorts(env)
    expect(stackPids.length).toBeGreaterThan(0)
    const startPid = startScriptPid(env.HTTP_PORT!)

    // Act
    process.kill(to === 'group' ? -child.pid! : child.pid!, signal)
    await exited

    // Assess: every process of the stack ends, every port is free again, no build folder stays
    const deadline = Date.now() + STOPPED_WITHIN_MS
    while (Date.now() < deadline && (processesOnPorts(env).length > 0 || (startPid !== undefined && isAlive(startPid)))) await new Promise((resolve) => setTimeout(resolve, 200))
    expect(processesOnPorts(env)).toEqual([])
    expect(startPid === undefined ? false : isAlive(startPid)).toBe(false)
    for (const port of Object.values(env)) await expect(canListen(Number(port))).resolves.toBe(true)
    expect(readdirSafe('.local-stack').filter((folder) => startPid !== undefined && folder.startsWith(`build-${startPid}-`))).toEqual([])
  }, STOP_TEST_LIMIT_MS)
})

/** The processes whose command line names one of the stack's ports (serverless-offline) or that run the start script with them in their environment. */
function processesOnPorts(env: Record<string, string>): number[] {
  const pids: number[] = []
  for (const entry of readdirSafe('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0')
      if (cmdline.includes('--httpPort') && cmdline.includes(env.HTTP_PORT!)) pids.push(Number(entry))
      else if (cmdline.some((arg) => arg.endsWith(START)) && readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0').includes(`HTTP_PORT=${env.HTTP_PORT}`)) pids.push(Number(entry))
    } catch {
      // gone meanwhile, or not ours
    }
  }
  return pids.sort((a, b) => a - b)
}

/** The process that runs local/start.ts itself (the one whose build folder is named after it). */
function startScriptPid(httpPort: string): number | undefined {
  for (const entry of readdirSafe('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0')
      if (cmdline[0]?.endsWith('node') && cmdline.includes('--import') && cmdline.some((arg) => arg.endsWith(START)) && readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0').includes(`HTTP_PORT=${httpPort}`)) return Number(entry)
    } catch {
      // gone meanwhile
    }
  }
  return undefined
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

async function canListen(port: number): Promise<boolean> {
  const server = createServer()
  const failure = await new Promise<Error | undefined>((resolve) => {
    server.once('error', resolve)
    server.listen({ port, exclusive: true }, () => resolve(undefined))
  })
  if (failure === undefined) await new Promise((resolve) => server.close(resolve))
  return failure === undefined
}

/** After a failed test: whatever still runs of that stack. */
function killGroupsOnPorts(pid: number, env: Record<string, string>): void {
  for (const target of [pid, ...processesOnPorts(env)]) {
    for (const id of [-target, target]) {
      try {
        process.kill(id, 'SIGKILL')
      } catch {
        // already gone
      }
    }
  }
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir).sort()
  } catch {
    return []
  }
}
