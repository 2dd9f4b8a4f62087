import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, inject, it, onTestFinished } from 'vitest'
import { issue, localCa } from '../support/pki.js'
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

describe('Program: npm run device, X.509 devices of the local stack', () => {
  it('provisions a device of the factory fleet out of the box, as the README shows', async () => {
    // Prepare
    const device = `x5_${randomBytes(6).toString('hex')}`

    // Act
    const run = await runProgram('local/device.ts', [device, '--fleet', 'factory'], { HTTP_PORT: httpPort, THINGER_EMULATOR_PORT: undefined, ANSWER_KEY_FILE: answerKeyFile })

    // Assess
    expect(run.stderr).toBe('')
    expect(run.code).toBe(0)
    expect(run.stdout).toContain(`certificate: CN=${device}, P-256, issued just now by the local dev CA`)
    expect(run.stdout).toContain('answer signature: verified under the pinned answer key')
    expect(run.stdout).toMatch(new RegExp(`HTTP 201\\n\\{"username":"demo","device":"${device}","sealed":"[^"]+"`))
    expect(run.stdout).toContain("sealed: opened with the certificate's private key")
    expect(run.stdout).toContain(`login check: the emulator accepts demo/${device} with the returned credential`)
  })

  it('provisions with a certificate and key of ones own (--cert/--key)', async () => {
    // Prepare: what a factory flashed, as files
    const device = `x5_${randomBytes(6).toString('hex')}`
    const issued = await issue(localCa(), device)
    const dir = mkdtempSync(join(tmpdir(), 'player-'))
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
    writeFileSync(join(dir, 'device.pem'), issued.pem)
    writeFileSync(join(dir, 'device.key'), issued.privateKey.export({ type: 'sec1', format: 'pem' }))

    // Act
    const run = await runProgram('local/device.ts', [device, '--fleet', 'factory', '--cert', join(dir, 'device.pem'), '--key', join(dir, 'device.key'), '--url', provisionUrl, '--answer-key', answerPublicKey])
    const unpinned = await runProgram('local/device.ts', [`${device}_b`, '--fleet', 'factory', '--url', provisionUrl])

    // Assess: and, as the C core, an answer sealed to a certificate's (public) key is not trusted without a pinned answer key
    expect(unpinned.code).toBe(1)
    expect(unpinned.stderr).toContain("device: refused: an answer sealed to a certificate's key is trusted only under a pinned answer key")
    expect(run.code).toBe(0)
    expect(run.stdout).not.toContain('issued just now')
    expect(run.stdout).toContain(`login check: the emulator accepts demo/${device}`)
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
