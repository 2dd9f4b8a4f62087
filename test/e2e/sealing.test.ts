import { execFile, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { decodeFleetKey, deriveDeviceKey, signRequest } from '../../lib/attestation/keys.js'
import { deriveHmacSealKey, openSealed, type SealKey, SealOpenError } from '../../lib/attestation/seal.js'
import { LOCAL_FLEET_KEY, LOCAL_USERNAME } from '../../local/defaults.js'
import { newDeviceId } from '../support/device.js'
import { emulatorClient } from '../support/emulator-client.js'

const run = promisify(execFile)
const provisionUrl = inject('provisionUrl')
const thingerUrl = inject('thingerUrl')
const emulator = emulatorClient(thingerUrl)
const host = new URL(thingerUrl).host

interface SignedV2 {
  device: string
  body: string
  sealKey: SealKey
  signature: string
  timestamp: number
}

/** A protocol v2 request as a device with the local fleet's derived key signs it, and the key that opens its answer. */
function signedV2(device: string, timestamp = Math.floor(Date.now() / 1000)): SignedV2 {
  const deviceKey = deriveDeviceKey(decodeFleetKey(LOCAL_FLEET_KEY, 'fleet key'), device)
  const signature = signRequest(deviceKey, device, timestamp, 2)
  return { device, timestamp, signature, sealKey: deriveHmacSealKey(deviceKey, device, timestamp), body: JSON.stringify({ device, timestamp, signature, version: 2 }) }
}

async function post(body: string, accept = 'application/json'): Promise<{ status: number; text: string }> {
  const response = await fetch(provisionUrl, { method: 'POST', headers: { 'content-type': 'application/json', accept }, body })
  return { status: response.status, text: await response.text() }
}

/** Every key someone who captured the request (not the device key) could try on its answer. */
function keysOfAnEavesdropper(request: SignedV2): SealKey[] {
  const signature = Buffer.from(request.signature, 'base64')
  return [
    { mode: 'hmac', key: signature },
    deriveHmacSealKey(signature, request.device, request.timestamp),
    deriveHmacSealKey(Buffer.from(request.body), request.device, request.timestamp),
    deriveHmacSealKey(Buffer.alloc(32), request.device, request.timestamp),
  ]
}

describe('Sealed credentials (protocol v2) against the running stack', () => {
  it('gives a v2 device its credential sealed, in JSON and in text; opened with the device key, it logs in', async () => {
    // Prepare
    const jsonDevice = signedV2(newDeviceId('seal'))
    const textDevice = signedV2(newDeviceId('seal'))

    // Act
    const json = await post(jsonDevice.body)
    const text = await post(textDevice.body, 'text/plain')

    // Assess
    expect(json.status).toBe(201)
    const answer = JSON.parse(json.text) as Record<string, string>
    expect(Object.keys(answer)).toEqual(['username', 'device', 'sealed', 'host', 'created', 'answerSignature'])
    const credential = openSealed(answer.sealed!, jsonDevice.sealKey, { username: LOCAL_USERNAME, device: jsonDevice.device, host })
    expect(await emulator.login(jsonDevice.device, credential)).toBe(200)

    expect(text.status).toBe(201)
    const sealed = /^sealed=(\S+)$/m.exec(text.text)?.[1]
    expect(text.text).not.toMatch(/^credential=/m)
    const textCredential = openSealed(sealed!, textDevice.sealKey, { username: LOCAL_USERNAME, device: textDevice.device, host })
    expect(await emulator.login(textDevice.device, textCredential)).toBe(200)
  })

  it('leaves whoever sends copies of a captured request in parallel with nothing that logs in', async () => {
    // Prepare: the device's own request, captured, and two copies sent at once with it.
    const request = signedV2(newDeviceId('seal'))

    // Act
    const answers = await Promise.all([post(request.body), post(request.body), post(request.body)])

    // Assess
    const successes = answers.filter((answer) => answer.status === 200 || answer.status === 201).map((answer) => JSON.parse(answer.text) as Record<string, string>)
    expect(successes.length).toBeGreaterThanOrEqual(1)
    for (const answer of successes) {
      expect(answer.credential).toBeUndefined()
      for (const key of keysOfAnEavesdropper(request)) {
        expect(() => openSealed(answer.sealed!, key, { username: LOCAL_USERNAME, device: request.device, host })).toThrow(SealOpenError)
      }
      expect(await emulator.login(request.device, answer.sealed!)).toBe(401)
    }
    // Only the device key opens them, and the credential of the last one to finish is the one that works.
    const opened = successes.map((answer) => openSealed(answer.sealed!, request.sealKey, { username: LOCAL_USERNAME, device: request.device, host }))
    const statuses = await Promise.all(opened.map((credential) => emulator.login(request.device, credential)))
    expect(statuses.filter((status) => status === 200)).toHaveLength(1)
  })

  it('lets the device player (npm run device) provision sealed and log in with the opened credential; --unsealed still works', async () => {
    // Prepare
    const url = provisionUrl.replace(/\/v1\/provision$/, '')

    // Act
    const sealed = await run(process.execPath, ['--import', 'tsx', 'local/device.ts', newDeviceId('seal'), '--text', '--url', url, '--emulator', thingerUrl])
    const clear = await run(process.execPath, ['--import', 'tsx', 'local/device.ts', newDeviceId('seal'), '--unsealed', '--url', url, '--emulator', thingerUrl])

    // Assess
    expect(sealed.stdout).toMatch(/^sealed=/m)
    expect(sealed.stdout).not.toMatch(/^credential=/m)
    expect(sealed.stdout).toContain('sealed: opened with the device key')
    expect(sealed.stdout).toContain('login check: the emulator accepts')
    expect(clear.stdout).toMatch(/"credential":"[A-Za-z0-9]{24}"/)
    expect(clear.stdout).toContain('login check: the emulator accepts')
  })

  it('refuses with 401 invalid_signature a v2 request whose version was stripped on the way', async () => {
    // Prepare
    const request = signedV2(newDeviceId('seal'))
    const { version: _version, ...stripped } = JSON.parse(request.body) as Record<string, unknown>

    // Act
    const answer = await post(JSON.stringify(stripped))

    // Assess
    expect(answer.status).toBe(401)
    expect(JSON.parse(answer.text).error.code).toBe('invalid_signature')
  })
})

const toolchain = spawnSync('sh', ['-c', 'echo "#include <mbedtls/gcm.h>\n#include <curl/curl.h>" | cc -E - >/dev/null'], { stdio: 'ignore' }).status === 0

describe.skipIf(!toolchain)('The C client (clients/c) through a machine in the middle', () => {
  let dir: string
  let proxy: Server
  let proxyUrl: string
  let rewrite: (text: string) => string = (text) => text
  const seen: Array<{ request: string; response: string }> = []

  beforeAll(async () => {
    await run('make', ['-C', 'clients/c', 'build/provision'], { timeout: 120_000 })
    dir = mkdtempSync(join(tmpdir(), 'sealing-'))
    // Forwards to the service, records both directions, and applies `rewrite` to the answer.
    proxy = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (chunk: Buffer) => chunks.push(chunk))
      req.on('end', async () => {
        const request = Buffer.concat(chunks).toString('utf8')
        const upstream = await fetch(provisionUrl, { method: 'POST', headers: { 'content-type': 'application/json', accept: req.headers.accept ?? '*/*' }, body: request })
        const response = rewrite(await upstream.text())
        seen.push({ request, response })
        res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'text/plain' })
        res.end(response)
      })
    })
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
    proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`
  }, 150_000)

  afterAll(async () => {
    await new Promise((resolve) => proxy?.close(resolve))
    rmSync(dir, { recursive: true, force: true })
  })

  async function provisionThroughProxy(device: string): Promise<{ code: number; stdout: string; stderr: string; out: string }> {
    const keyFile = join(dir, `${device}.key`)
    const out = join(dir, `${device}.credentials`)
    writeFileSync(keyFile, deriveDeviceKey(decodeFleetKey(LOCAL_FLEET_KEY, 'fleet key'), device).toString('base64'), { mode: 0o600 })
    try {
      const { stdout, stderr } = await run('clients/c/build/provision', ['--url', proxyUrl, '--device', device, '--device-key-file', keyFile, '--answer-key', inject('answerPublicKey'), '--out', out, '--max-attempts', '1'], { timeout: 60_000 })
      return { code: 0, stdout, stderr, out }
    } catch (error) {
      const failed = error as { code: number; stdout: string; stderr: string }
      return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr, out }
    }
  }

  it('provisions sealed; what the machine in the middle saw, replayed or not, opens nothing that logs in', async () => {
    // Prepare
    rewrite = (text) => text
    const device = newDeviceId('sealc')

    // Act
    const result = await provisionThroughProxy(device)
    const captured = seen.at(-1)!
    const replayed = await post(captured.request, 'text/plain')

    // Assess
    expect(result.code).toBe(0)
    const saved = Object.fromEntries(readFileSync(result.out, 'utf8').trim().split('\n').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]))
    expect(await emulator.login(device, saved.credential!)).toBe(200)
    expect(JSON.parse(captured.request)).toMatchObject({ device, version: 2 })
    expect(captured.response).toMatch(/^sealed=/m)
    expect(captured.response).not.toContain(saved.credential)
    // The replay is refused (replay protection) or, had it raced the device, would be sealed as well.
    expect(replayed.text).not.toMatch(/^credential=/m)
    const request = JSON.parse(captured.request) as { signature: string; timestamp: number }
    const sealed = /^sealed=(\S+)$/m.exec(captured.response)![1]!
    const eavesdropper = { device, body: captured.request, signature: request.signature, timestamp: request.timestamp, sealKey: { mode: 'hmac' as const, key: Buffer.alloc(32) } }
    for (const key of keysOfAnEavesdropper(eavesdropper)) expect(() => openSealed(sealed, key, { username: LOCAL_USERNAME, device, host })).toThrow(SealOpenError)
  })

  it.each([
    // The machine in the middle replaces the sealed credential by one it knows (a downgrade).
    ['downgraded to a credential in clear', (text: string) => text.replace(/^sealed=\S+$/m, 'credential=KnownToTheMiddleMan0000000'), 'in clear although the request asked for it sealed'],
    // The machine in the middle points the device at a server of its own: the service's signature no longer verifies.
    ['whose host was swapped for another', (text: string) => text.replace(/^host=\S+$/m, 'host=evil.example.com'), 'not signed by the pinned answer key'],
    // Or strips the signature, as if the service had none.
    ['whose answer signature was removed', (text: string) => text.replace(/^answer_signature=\S+\n/m, ''), 'not signed by the pinned answer key'],
  ])('refuses an answer %s, and saves nothing', async (_label, change, message) => {
    // Prepare
    rewrite = change
    const device = newDeviceId('sealc')

    // Act
    const result = await provisionThroughProxy(device)

    // Assess
    expect(result.code).toBe(5)
    expect(result.stderr).toContain(message)
    expect(existsSync(result.out)).toBe(false)
  })
})
