import { mkdtempSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda'
import fc from 'fast-check'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { createProvisionHandler, type ProvisionHandler } from '../../functions/provision.js'
import { answerPublicPoint, generateAnswerKey, parseAnswerKey, parseAnswerPublicKey, requestBodyDigest, verifyAnswerSignature } from '../../lib/attestation/answer-signature.js'
import { openEcdhSealed } from '../../lib/attestation/seal-ecdh.js'
import { parseCertificate } from '../../lib/attestation/x509.js'
import { startThingerEmulator, type ThingerEmulator } from '../../local/thinger-emulator.js'
import { apiEvent } from '../support/lambda.js'
import { captureOutputOfEachTest } from '../support/output.js'
import { certificateBody, type Issued, issue, newCa, newKeyPair } from '../support/pki.js'
import { ssmHolding } from '../support/ssm.js'

const { parseFleets } = createRequire(import.meta.url)('../../deploy/fleets.cjs') as { parseFleets: (text: string, file?: string, baseDir?: string) => unknown }

const USERNAME = 'acme'
const TOKEN = 'x509-test-thinger-token'
const TOKEN_PARAM = '/thinger-provisioner/dev/thinger-token'
const CA_PARAM = '/x509/factory/ca'
const DENY_LIST_PARAM = '/x509/factory/deny-list'
const HOUR_MS = 3600_000
const ANSWER_KEY_PARAM = '/thinger-provisioner/dev/answer-key'
const ANSWER_KEY = generateAnswerKey()
const ANSWER_PUBLIC_KEY = parseAnswerPublicKey(answerPublicPoint(parseAnswerKey(ANSWER_KEY, 'test')).toString('base64'))

let emulator: ThingerEmulator
let ca: Issued
let fleets: unknown
let requestCount = 0

beforeAll(async () => {
  emulator = await startThingerEmulator({ port: 0, accounts: [{ username: USERNAME, tokens: [{ token: TOKEN }], maxDevices: 100 }] })
  ca = await newCa()
  const dir = mkdtempSync(join(tmpdir(), 'x509-fleets-'))
  writeFileSync(join(dir, 'ca.pem'), ca.pem)
  fleets = parseFleets(
    `version: 1
fleets:
  factory:
    proof: [x509]
    x509: { caParam: ${CA_PARAM} }
    denyListParam: ${DENY_LIST_PARAM}
    devicePattern: 'x5_[a-z0-9_]{1,29}'
  bundled:
    proof: [x509, hmac]
    keyParam: /x509/bundled/fleet-key
    x509: { caFile: ca.pem, deviceId: dns }
    devicePattern: 'xb_[a-z0-9_]{1,29}'
    sealing: required
  keys:
    proof: [hmac]
    keyParam: /x509/keys/fleet-key
    devicePattern: 'xk_[a-z0-9_]{1,29}'
`,
    join(dir, 'fleets.yml'),
    dir,
  )
})
afterAll(async () => {
  await emulator.close()
})
beforeEach(() => {
  emulator.reset()
})
// Whatever happened in the test, nothing secret may have been logged: the token, the fleet keys,
// every credential an answer carried or a device opened.
const secrets = new Set<string>([TOKEN, ANSWER_KEY, Buffer.alloc(32, 3).toString('base64'), Buffer.alloc(32, 4).toString('base64')])
const capturedOutput = captureOutputOfEachTest(secrets)

function handlerWith(ssm: Record<string, string> = {}): ProvisionHandler {
  const client = ssmHolding({ [TOKEN_PARAM]: TOKEN, [CA_PARAM]: ca.pem, '/x509/bundled/fleet-key': Buffer.alloc(32, 3).toString('base64'), '/x509/keys/fleet-key': Buffer.alloc(32, 4).toString('base64'), [ANSWER_KEY_PARAM]: ANSWER_KEY, ...ssm }).client
  return createProvisionHandler({ env: { THINGER_API_URL: emulator.url, THINGER_USERNAME: USERNAME, THINGER_DEVICE_HOST: 'acme.aws.thinger.io' }, fleets, ssmClient: client })
}

async function post(handler: ProvisionHandler, body: unknown): Promise<{ status: number; json: Record<string, any> }> {
  const context = { awsRequestId: `r${++requestCount}`, functionName: 'provision', getRemainingTimeInMillis: () => 10_000 } as unknown as Context
  const raw = typeof body === 'string' ? body : JSON.stringify(body)
  const response = (await handler(apiEvent(raw), context)) as APIGatewayProxyStructuredResultV2
  const json = JSON.parse(String(response.body))
  if (typeof json?.credential === 'string') secrets.add(json.credential)
  return { status: response.statusCode ?? 0, json }
}

const deviceOf = async (device: string, issuer = ca, overrides: Parameters<typeof issue>[2] = {}) => ({ ...(await issue(issuer, device, overrides)), device })

describe('Function: provision handler, X.509 devices', () => {
  it('creates a new X.509 device in one Thinger call and answers its credential (v1)', async () => {
    // Prepare
    const device = await deviceOf('x5_new_1')

    // Act
    const answer = await post(handlerWith(), { ...certificateBody(device), fleet: 'factory' })

    // Assess
    expect(answer.status).toBe(201)
    expect(answer.json).toMatchObject({ username: USERNAME, device: 'x5_new_1', host: 'acme.aws.thinger.io', created: true })
    expect(emulator.checkLogin(USERNAME, 'x5_new_1', answer.json.credential)).toEqual({ ok: true })
    expect(emulator.calls()).toHaveLength(1)
    expect(capturedOutput()).toContain(`"certificate":"${(await import('node:crypto')).createHash('sha256').update(device.der).digest('hex')}"`)
  })

  it('seals a v2 answer to the certificate’s key: the device opens it, and it logs in', async () => {
    // Prepare
    const device = await deviceOf('x5_sealed_1')
    const body: Record<string, unknown> = { ...certificateBody(device, { version: 2 }), fleet: 'factory' }

    // Act
    const answer = await post(handlerWith(), body)

    // Assess
    expect(answer.status).toBe(201)
    expect(answer.json.credential).toBeUndefined()
    const credential = openEcdhSealed(answer.json.sealed, device.privateKey, device.device, Number(body.timestamp), { username: USERNAME, device: device.device, host: 'acme.aws.thinger.io' })
    secrets.add(credential)
    expect(emulator.checkLogin(USERNAME, device.device, credential)).toEqual({ ok: true })
    // Mode 3 is sealed to a public key: only the answer key's signature says the service made it.
    expect(Object.keys(answer.json).at(-1)).toBe('answerSignature')
    expect(verifyAnswerSignature(answer.json as never, requestBodyDigest(JSON.stringify(body)), answer.json.answerSignature, [ANSWER_PUBLIC_KEY])).toBe(true)
  })

  it('re-provisions an existing device and refuses the same request sent again (replayed)', async () => {
    // Prepare
    const device = await deviceOf('x5_again_1')
    const handler = handlerWith()
    const now = Math.floor(Date.now() / 1000)
    await post(handler, { ...certificateBody(device, { timestamp: now - 60 }), fleet: 'factory' })
    const second = { ...certificateBody(device, { timestamp: now + 30 }), fleet: 'factory' }

    // Act
    const reprovisioned = await post(handler, second)
    const replayed = await post(handler, second)

    // Assess
    expect(reprovisioned.status).toBe(200)
    expect([replayed.status, replayed.json.error.code]).toEqual([401, 'replayed'])
  })

  it('reads a CA compiled in from the fleets file and binds the device to a DNS SAN; requires sealing there', async () => {
    // Prepare
    const device = await deviceOf('xb_sensor_1', ca, { subject: { commonName: 'Sensor' }, dnsNames: ['xb_sensor_1'] })

    // Act
    const unsealed = await post(handlerWith({ [CA_PARAM]: 'not used by this fleet' }), { ...certificateBody(device), fleet: 'bundled' })
    const sealed = await post(handlerWith({ [CA_PARAM]: 'not used by this fleet' }), { ...certificateBody(device, { version: 2 }), fleet: 'bundled' })

    // Assess
    expect([unsealed.status, unsealed.json.error?.code]).toEqual([403, 'sealing_required'])
    expect(sealed.status).toBe(201)
  })

  it('refuses every failed certificate check with its code and no Thinger call', async () => {
    // Prepare
    const stranger = await newCa({ subject: ca.subject })
    const rootNoIntermediates = await newCa({ pathLength: 0 })
    const intermediate = await issue(rootNoIntermediates, 'Line', { ca: true, keyUsage: ['keyCertSign'], extKeyUsage: undefined })
    const revoked = await deviceOf('x5_revoked')
    const revokedByFingerprint = await deviceOf('x5_revoked_2')
    const rsa = await deviceOf('x5_rsa', ca, { keys: newKeyPair({ type: 'rsa', bits: 2048 }) })
    const handler = handlerWith({ [DENY_LIST_PARAM]: JSON.stringify({ version: 1, devices: [], retiredKeyVersions: [], certificates: [`serial:${parseCertificate(revoked.der).serial}`, `sha256:${parseCertificate(revokedByFingerprint.der).fingerprint}`] }), [CA_PARAM]: `${ca.pem}${rootNoIntermediates.pem}` })
    const signedBy = async (device: Issued & { device: string }, options: Parameters<typeof certificateBody>[1] = {}) => ({ ...certificateBody(device, options), fleet: 'factory' })
    const deviceA = await deviceOf('x5_device_a')
    const cases: Array<[string, unknown, number, string]> = [
      ['expired', await signedBy(await deviceOf('x5_e', ca, { notBefore: new Date(Date.now() - 3 * HOUR_MS), notAfter: new Date(Date.now() - HOUR_MS) })), 403, 'certificate_expired'],
      ['not yet valid', await signedBy(await deviceOf('x5_n', ca, { notBefore: new Date(Date.now() + HOUR_MS) })), 403, 'certificate_not_yet_valid'],
      ['untrusted CA', await signedBy(await deviceOf('x5_u', stranger)), 403, 'certificate_untrusted'],
      ['a CA certificate as leaf', await signedBy(await deviceOf('x5_c', ca, { ca: true, keyUsage: ['keyCertSign', 'digitalSignature'] })), 403, 'certificate_not_leaf'],
      ['wrong key usage', await signedBy(await deviceOf('x5_k', ca, { keyUsage: ['keyEncipherment'] })), 403, 'certificate_key_usage'],
      ['weak key', await signedBy(await deviceOf('x5_w', ca, { keys: newKeyPair({ type: 'rsa', bits: 1024 }) })), 403, 'certificate_key_not_allowed'],
      ['device A’s certificate for device B', { ...(await signedBy(deviceA)), device: 'x5_device_b' }, 403, 'certificate_device_mismatch'],
      ['revoked by serial', await signedBy(revoked), 403, 'certificate_revoked'],
      ['revoked by fingerprint', await signedBy(revokedByFingerprint), 403, 'certificate_revoked'],
      ['chain too long (path length)', await signedBy(await deviceOf('x5_l', intermediate), { chain: [intermediate.der] }), 403, 'certificate_chain_too_long'],
      ['chain too long (two intermediates)', await signedBy(deviceA, { chain: [ca.der, ca.der] }), 403, 'certificate_chain_too_long'],
      ['malformed DER', { ...(await signedBy(deviceA)), certificate: Buffer.from('garbage').toString('base64') }, 400, 'certificate_malformed'],
      ['bad signature', { ...(await signedBy(deviceA)), signature: Buffer.alloc(64, 1).toString('base64') }, 401, 'invalid_signature'],
      ['clock skew', await signedBy(deviceA, { timestamp: Math.floor(Date.now() / 1000) - 3600 }), 401, 'clock_skew'],
      ['RSA asking for a sealed answer', await signedBy(rsa, { version: 2 }), 403, 'certificate_key_not_allowed'],
      ['a key version with a certificate', { ...(await signedBy(deviceA)), keyVersion: 1 }, 400, 'invalid_request'],
      ['a certificate in a claim request', { device: 'x5_q', fleet: 'factory', claim: 'x'.repeat(20), certificate: deviceA.der.toString('base64') }, 400, 'invalid_request'],
      ['a certificate to a fleet without x509', { ...(await signedBy(deviceA)), device: 'xk_a', fleet: 'keys' }, 403, 'proof_not_accepted'],
    ]

    // Act
    const answers: Array<[string, number, string]> = []
    for (const [name, body] of cases) {
      const answer = await post(handler, body)
      answers.push([name, answer.status, answer.json.error?.code])
    }

    // Assess
    expect(answers).toEqual(cases.map(([name, , status, code]) => [name, status, code]))
    expect(emulator.calls()).toEqual([])
  })

  it('accepts an RSA 2048 device for a v1 answer, and a chain through one intermediate', async () => {
    // Prepare
    const rsa = await deviceOf('x5_rsa_ok', ca, { keys: newKeyPair({ type: 'rsa', bits: 2048 }) })
    const line = await issue(ca, 'Factory line', { ca: true, keyUsage: ['keyCertSign'], extKeyUsage: undefined })
    const viaLine = await deviceOf('x5_via_line', line)
    const handler = handlerWith()

    // Act
    const rsaAnswer = await post(handler, { ...certificateBody(rsa), fleet: 'factory' })
    const chainAnswer = await post(handler, { ...certificateBody(viaLine, { chain: [line.der], version: 2 }), fleet: 'factory' })

    // Assess
    expect([rsaAnswer.status, chainAnswer.status]).toEqual([201, 201])
  })

  it('answers 500 with the setting named when the fleet’s CA parameter holds no CA', async () => {
    // Prepare
    const device = await deviceOf('x5_config_1')

    // Act
    const answer = await post(handlerWith({ [CA_PARAM]: 'nothing here' }), { ...certificateBody(device), fleet: 'factory' })

    // Assess
    expect([answer.status, answer.json.error.code]).toEqual([500, 'internal_error'])
    expect(capturedOutput()).toContain('fleets.factory.x509.caParam')
    expect(emulator.calls()).toEqual([])
  })

  it('never answers 500 for fuzzed certificates, chains and signatures', async () => {
    // Prepare
    const device = await deviceOf('x5_fuzz')
    const handler = handlerWith()
    const good = { ...certificateBody(device), fleet: 'factory' }
    const der = device.der

    // Act / Assess
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.record({ index: fc.nat(der.length - 1), mask: fc.integer({ min: 1, max: 255 }) }).map(({ index, mask }) => {
            const bytes = Buffer.from(der)
            bytes[index] = (bytes[index] as number) ^ mask
            return { ...good, certificate: bytes.toString('base64') }
          }),
          fc.uint8Array({ maxLength: 600 }).map((bytes) => ({ ...good, certificate: Buffer.from(bytes).toString('base64') })),
          fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 3 }).map((chain) => ({ ...good, chain: chain.map((bytes) => Buffer.from(bytes).toString('base64')) })),
          fc.uint8Array({ maxLength: 520 }).map((bytes) => ({ ...good, signature: Buffer.from(bytes).toString('base64') })),
          fc.anything().map((value) => ({ ...good, certificate: value })),
          fc.anything().map((value) => ({ ...good, chain: value })),
        ),
        async (body) => {
          const answer = await post(handler, body)
          expect(answer.status).toBeLessThan(500)
        },
      ),
      { numRuns: 150 },
    )
  })
})
