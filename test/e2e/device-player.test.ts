import { randomBytes } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, inject, it } from 'vitest'
import { newDeviceId } from '../support/device.js'
import { hasStackTrace, runProgram } from '../support/program.js'

const provisionUrl = inject('provisionUrl')
const httpPort = new URL(provisionUrl).port
const answerPublicKey = inject('answerPublicKey')
// What `npm start` writes for the player (.local-stack/answer-key.pub), for this test run's stack.
const answerKeyFile = join(mkdtempSync(join(tmpdir(), 'answer-key-')), 'answer-key.pub')
writeFileSync(answerKeyFile, `${answerPublicKey}\n`)

describe('Program: npm run device against the running stack', () => {
  it('provisions and logs in with only HTTP_PORT set, as the banner of npm start says, checking the stack’s answer key', async () => {
    // Prepare
    const device = newDeviceId()

    // Act
    const run = await runProgram('local/device.ts', [device], { HTTP_PORT: httpPort, THINGER_EMULATOR_PORT: undefined, ANSWER_KEY_FILE: answerKeyFile })

    // Assess
    expect(run.stderr).toBe('')
    expect(run.code).toBe(0)
    expect(run.stdout).toMatch(new RegExp(`^HTTP 201\\n\\{"username":"demo","device":"${device}","sealed":"[^"]+","host":"127\\.0\\.0\\.1:\\d+","created":true,"answerSignature":"[^"]+"\\}\\n`))
    expect(run.stdout).toContain('answer signature: verified under the pinned answer key')
    expect(run.stdout).toContain('sealed: opened with the device key')
    expect(run.stdout).toContain(`login check: the emulator accepts demo/${device} with the returned credential`)
  })

  it('joins the workshop fleet in claim mode with meta, from the URL the banner prints and the answer key it prints', async () => {
    // Prepare
    const device = `ws_${randomBytes(6).toString('hex')}`

    // Act
    const run = await runProgram('local/device.ts', [device, '--fleet', 'workshop', '--claim', '--meta', 'site=lab_2', '--url', provisionUrl, '--answer-key', answerPublicKey], { HTTP_PORT: undefined })

    // Assess
    expect(run.code).toBe(0)
    expect(run.stdout).toContain('HTTP 201')
    expect(run.stdout).toContain('answer signature: verified under the pinned answer key')
    expect(run.stdout).toContain(`login check: the emulator accepts demo/${device}`)
    expect(hasStackTrace(run.stderr)).toBe(false)
  })
})

describe('Local stack: what it leaves to others', () => {
  it('builds the function outside .esbuild/ and .serverless/, which `osls package` cleans', () => {
    // Act
    const folder = inject('buildFolder')

    // Assess
    expect(folder).toMatch(/^\.local-stack\/build-\d+-\w+$/)
  })

  it('reports itself ready without invoking the function: no audit line before the first request', () => {
    // Act
    const output = inject('outputWhenReady')

    // Assess
    expect(output).toContain('Server ready')
    expect(output).not.toContain('"message":"provision"')
  })
})
