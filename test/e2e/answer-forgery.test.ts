// Issue 17, finding 3: a party that terminates TLS for the service's name answers in its place.
// The proxy below forwards each request to the running stack and, when told to, replaces the
// genuine answer with one it builds from public data alone (what it saw in the request, the
// device's certificate), keeping the service's genuine signature beside its forged fields. The
// device (the player, or for X.509 the device's own checks) must refuse every forgery and accept
// the genuine answer through the same proxy.
import { randomBytes, X509Certificate } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { parseAnswerPublicKey, requestBodyDigest, verifyAnswerSignature } from '../../lib/attestation/answer-signature.js'
import { deriveClaimSealKey, sealCredential } from '../../lib/attestation/seal.js'
import { deriveEcdhSealKey, openEcdhSealed, toPoint } from '../../lib/attestation/seal-ecdh.js'
import { LOCAL_USERNAME } from '../../local/defaults.js'
import { newDeviceId } from '../support/device.js'
import { certificateBody, issue, localCa } from '../support/pki.js'
import { hasStackTrace, PROGRAM_TEST_LIMIT_MS, runProgram } from '../support/program.js'

const provisionUrl = inject('provisionUrl')
const answerPublicKey = inject('answerPublicKey')
// Where the forged answers send the device, and the credential they give it.
const EVIL_HOST = 'evil.example.com'
const FORGED_CREDENTIAL = 'ForgedByTheMiddle0000000'

type Mode = 'pass' | 'forge' | 'forge-unsigned'

/** The party in the middle: forwards to the stack, and answers in its place while `mode` says forge. */
async function startProxy(): Promise<{ server: Server; port: number; setMode(mode: Mode): void }> {
  let mode: Mode = 'pass'
  const server = createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', async () => {
      const body = Buffer.concat(chunks)
      const accept = request.headers.accept ?? 'application/json'
      const genuine = await fetch(provisionUrl, { method: 'POST', headers: { 'content-type': String(request.headers['content-type']), accept }, body })
      const genuineText = await genuine.text()
      if (mode === 'pass' || genuine.status >= 300) {
        response.writeHead(genuine.status, { 'content-type': genuine.headers.get('content-type') ?? 'application/json' })
        response.end(genuineText)
        return
      }
      const forged = forge(JSON.parse(body.toString('utf8')) as Record<string, unknown>, JSON.parse(genuineText) as Record<string, unknown>)
      if (mode === 'forge-unsigned') delete forged.answerSignature
      response.writeHead(genuine.status, { 'content-type': 'application/json' })
      response.end(JSON.stringify(forged))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { server, port: (server.address() as AddressInfo).port, setMode: (next) => void (mode = next) }
}

/**
 * An answer made of public data only: the request's claim secret (mode 2), the certificate's
 * public key (mode 3), or nothing (v1), with the genuine answer's signature copied over.
 */
function forge(request: Record<string, unknown>, genuine: Record<string, unknown>): Record<string, unknown> {
  const device = String(request.device)
  const binding = { username: LOCAL_USERNAME, device, host: EVIL_HOST }
  let field: Record<string, string>
  if (request.version !== 2) {
    field = { credential: FORGED_CREDENTIAL }
  } else if (typeof request.claim === 'string') {
    field = { sealed: sealCredential(FORGED_CREDENTIAL, deriveClaimSealKey(request.claim, device), binding) }
  } else if (typeof request.certificate === 'string') {
    const point = toPoint(new X509Certificate(Buffer.from(request.certificate, 'base64')).publicKey)
    field = { sealed: sealCredential(FORGED_CREDENTIAL, deriveEcdhSealKey(point, device, Number(request.timestamp)), binding) }
  } else {
    throw new Error('a mode-1 answer cannot be forged without the device key')
  }
  return { username: LOCAL_USERNAME, device, ...field, host: EVIL_HOST, created: true, answerSignature: genuine.answerSignature }
}

describe('A party in the middle answering in the service’s place (issue 17, finding 3)', { timeout: PROGRAM_TEST_LIMIT_MS }, () => {
  let proxy: Awaited<ReturnType<typeof startProxy>>
  let keyFile: string
  // The player reaches the proxy as it reaches `npm start` (HTTP_PORT), and pins the stack's answer
  // key as it pins the key `npm start` writes (ANSWER_KEY_FILE): no option a player before answer
  // signatures lacks, so this suite ran against it too (and failed: it accepted every forgery).
  const player = (args: string[]) => runProgram('local/device.ts', [...args, '--no-login-check'], { HTTP_PORT: String(proxy.port), ANSWER_KEY_FILE: keyFile })

  beforeAll(async () => {
    proxy = await startProxy()
    keyFile = join(mkdtempSync(join(tmpdir(), 'answer-key-')), 'answer-key.pub')
    writeFileSync(keyFile, `${answerPublicKey}\n`)
  })
  afterAll(async () => {
    await new Promise((resolve) => proxy.server.close(resolve))
  })

  it.each([
    ['a claim device’s answer sealed with the claim secret from the request (mode 2)', 'forge', ['--fleet', 'workshop', '--claim']],
    ['a v1 answer with a credential in clear', 'forge', ['--unsealed']],
    ['a v1 answer without a signature', 'forge-unsigned', ['--unsealed']],
    ['a claim answer without a signature', 'forge-unsigned', ['--fleet', 'workshop', '--claim']],
  ] as const)('the player refuses %s, with one line and exit 1', async (_name, mode, args) => {
    // Prepare
    proxy.setMode(mode)
    const device = (args as readonly string[]).includes('--claim') ? `ws_${randomBytes(6).toString('hex')}` : newDeviceId('mitm')

    // Act
    const run = await player([device, ...args])

    // Assess
    expect(run.stdout).toContain(EVIL_HOST)
    expect(run.stderr).toMatch(/^device: refused: the answer (signature does not verify under the pinned answer key|carries no answer signature)[^\n]*\n$/)
    expect(run.code).toBe(1)
    expect(hasStackTrace(run.stderr)).toBe(false)
  })

  it('the player refuses a claim answer when no answer key is pinned at all (mode 2 is forgeable)', async () => {
    // Prepare
    proxy.setMode('forge')

    // Act
    const run = await runProgram('local/device.ts', [`ws_${randomBytes(6).toString('hex')}`, '--fleet', 'workshop', '--claim', '--no-login-check'], { HTTP_PORT: String(proxy.port), ANSWER_KEY_FILE: join(tmpdir(), 'no-such-answer-key.pub') })

    // Assess
    expect(run.stderr).toMatch(/^device: refused: a sealed claim answer is trusted only under a pinned answer key/)
    expect(run.code).toBe(1)
  })

  it.each([
    ['a device-key device (mode 1)', []],
    ['a claim device (mode 2)', ['--fleet', 'workshop', '--claim']],
    ['a v1 device', ['--unsealed']],
    ['a text answer', ['--text']],
  ])('the player accepts the genuine answer for %s through the same proxy', async (_name, args) => {
    // Prepare
    proxy.setMode('pass')
    const device = (args as readonly string[]).includes('--claim') ? `ws_${randomBytes(6).toString('hex')}` : newDeviceId('mitm')

    // Act
    const run = await player([device, ...args])

    // Assess
    expect(run.stderr).toBe('')
    expect(run.code).toBe(0)
    expect(run.stdout).toContain('answer signature: verified under the pinned answer key')
  })

  it('an X.509 device refuses a mode-3 envelope sealed to its certificate’s public key, which opens, and accepts the genuine one', async () => {
    // Prepare: two devices of the local factory fleet, each request as the C client sends it.
    const devices = await Promise.all([newDeviceId('x5'), newDeviceId('x5')].map(async (id) => ({ ...(await issue(localCa(), id)), device: id })))
    const bodies = devices.map((device) => JSON.stringify({ ...certificateBody(device, { version: 2 }), fleet: 'factory' }))
    const post = async (body: string) => {
      const response = await fetch(`http://127.0.0.1:${proxy.port}/v1/provision`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
      return { status: response.status, json: (await response.json()) as Record<string, any> }
    }
    const pinned = [parseAnswerPublicKey(answerPublicKey)]

    // Act
    proxy.setMode('forge')
    const forged = await post(bodies[0]!)
    proxy.setMode('pass')
    const genuine = await post(bodies[1]!)

    // Assess: the forgery is a valid envelope for its device (what the C client accepted): only the signature tells them apart.
    const [forgedDevice, genuineDevice] = devices as [(typeof devices)[0], (typeof devices)[0]]
    expect(forged.status).toBe(201)
    const timestamp = Number(JSON.parse(bodies[0]!).timestamp)
    expect(openEcdhSealed(forged.json.sealed, forgedDevice.privateKey, forgedDevice.device, timestamp, { username: LOCAL_USERNAME, device: forgedDevice.device, host: EVIL_HOST })).toBe(FORGED_CREDENTIAL)
    expect(verifyAnswerSignature(forged.json as never, requestBodyDigest(bodies[0]!), forged.json.answerSignature, pinned)).toBe(false)
    expect(genuine.status).toBe(201)
    expect(genuine.json.device).toBe(genuineDevice.device)
    expect(verifyAnswerSignature(genuine.json as never, requestBodyDigest(bodies[1]!), genuine.json.answerSignature, pinned)).toBe(true)
  })
})
