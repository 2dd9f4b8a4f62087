import { createServer, type Server } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { freePort } from '../support/ports.js'
import { hasStackTrace, runProgram } from '../support/program.js'

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

describe('Program: npm start', () => {
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
})
