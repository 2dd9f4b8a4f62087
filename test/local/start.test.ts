import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs'
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

    // Assess
    expect(run.stopped).toBe(false)
    expect(run.code).toBe(2)
    expect(run.stderr.trim()).toBe(`npm start: port ${env[setting]} is already in use (another \`npm start\`?): set ${setting} to a free port`)
    expect(run.stdout).not.toContain('local stack is up')
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

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir).sort()
  } catch {
    return []
  }
}
