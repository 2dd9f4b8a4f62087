import { generateKeyPairSync } from 'node:crypto'
import { GetParametersCommand } from '@aws-sdk/client-ssm'
import { createRequire } from 'node:module'
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { createProvisionHandler, type ProvisionHandler } from '../../functions/provision.js'
import { answerPublicPoint, generateAnswerKey, parseAnswerKey, parseAnswerPublicKey, requestBodyDigest, verifyAnswerSignature } from '../../lib/attestation/answer-signature.js'
import { deriveDeviceKey, signRequest } from '../../lib/attestation/keys.js'
import { deriveClaimSealKey, openSealed } from '../../lib/attestation/seal.js'
import { startThingerEmulator, type ThingerEmulator } from '../../local/thinger-emulator.js'
import { apiEvent } from '../support/lambda.js'
import { captureOutputOfEachTest } from '../support/output.js'
import { ssmHolding } from '../support/ssm.js'

const { parseFleets } = createRequire(import.meta.url)('../../deploy/fleets.cjs') as { parseFleets: (text: string) => unknown }

const USERNAME = 'acme'
const HOST = 'acme.aws.thinger.io'
const TOKEN = 'answer-test-thinger-token'
const TOKEN_PARAM = '/thinger-provisioner/prod/thinger-token'
const FLEET_KEY = Buffer.alloc(32, 9).toString('base64')
const FLEET_KEY_PARAM = '/thinger-provisioner/prod/fleet-key'
const CLAIM = 'answer-test-claim-secret-0001'
const CLAIM_PARAM = '/thinger-provisioner/prod/kits/claim'
// The default of ANSWER_KEY_PARAM for STAGE=prod: the tests set no ANSWER_KEY_PARAM.
const ANSWER_KEY_PARAM = '/thinger-provisioner/prod/answer-key'
const ANSWER_KEY = generateAnswerKey()
const PINNED = [parseAnswerPublicKey(answerPublicPoint(parseAnswerKey(ANSWER_KEY, 'test')).toString('base64'))]
const NOW_MS = 1_764_150_000_000
const FLEETS = parseFleets(`version: 1
fleets:
  default:
    proof: [hmac]
    keyParam: ${FLEET_KEY_PARAM}
  kits:
    proof: [claim]
    claimParam: ${CLAIM_PARAM}
    devicePattern: 'kit_[0-9]{6}'
    reprovision: rotate
`)

let emulator: ThingerEmulator
let requestCount = 0

beforeAll(async () => {
  emulator = await startThingerEmulator({ port: 0, accounts: [{ username: USERNAME, tokens: [{ token: TOKEN }], maxDevices: 50 }] })
})
afterAll(async () => {
  await emulator.close()
})
beforeEach(() => {
  emulator.reset()
})
// The answer key is a secret of the service: it must never reach a log line, whatever a test did.
const secrets = new Set<string>([TOKEN, FLEET_KEY, CLAIM, ANSWER_KEY])
const capturedOutput = captureOutputOfEachTest(secrets)

function handlerWith(ssm: Record<string, string> = { [ANSWER_KEY_PARAM]: ANSWER_KEY }, onSsm?: (held: ReturnType<typeof ssmHolding>) => void): ProvisionHandler {
  const held = ssmHolding({ [TOKEN_PARAM]: TOKEN, [FLEET_KEY_PARAM]: FLEET_KEY, [CLAIM_PARAM]: CLAIM, ...ssm })
  onSsm?.(held)
  const client = held.client
  return createProvisionHandler({ env: { STAGE: 'prod', THINGER_API_URL: emulator.url, THINGER_USERNAME: USERNAME, THINGER_DEVICE_HOST: HOST, THINGER_TOKEN_PARAM: TOKEN_PARAM }, fleets: FLEETS, ssmClient: client, now: () => NOW_MS })
}

async function invoke(handler: ProvisionHandler, event: APIGatewayProxyEventV2): Promise<{ status: number; body: string; fields: Record<string, any> }> {
  const context = { awsRequestId: `a${++requestCount}`, functionName: 'provision', getRemainingTimeInMillis: () => 10_000 } as unknown as Context
  const response = (await handler(event, context)) as APIGatewayProxyStructuredResultV2
  const body = String(response.body)
  const fields = body.startsWith('{')
    ? (JSON.parse(body) as Record<string, any>)
    : Object.fromEntries(body.trimEnd().split('\n').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]))
  if (typeof fields.credential === 'string') secrets.add(fields.credential)
  return { status: response.statusCode ?? 0, body, fields }
}

function signedBody(device: string, version: 1 | 2 = 1): string {
  const deviceKey = deriveDeviceKey(Buffer.from(FLEET_KEY, 'base64'), device)
  secrets.add(deviceKey.toString('base64'))
  const timestamp = NOW_MS / 1000
  return JSON.stringify({ device, timestamp, signature: signRequest(deviceKey, device, timestamp, version), ...(version === 2 ? { version } : {}) })
}

const logLines = () =>
  capturedOutput()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)

describe('Function: provision handler, answer signatures', () => {
  it.each([
    ['a device-key v1 answer (credential in clear)', 'esp32_0000000a0001', 1, 'credential'],
    ['a device-key v2 answer (mode 1)', 'esp32_0000000a0002', 2, 'sealed'],
  ] as const)('signs %s over the exact request body, as the last JSON field', async (_name, device, version, field) => {
    // Prepare: spaces a re-serialised body would not have, so only the exact bytes verify.
    const body = signedBody(device, version).replace('{', '{ ')

    // Act
    const answer = await invoke(handlerWith(), apiEvent(body))

    // Assess
    expect(answer.status).toBe(201)
    expect(Object.keys(answer.fields)).toEqual(['username', 'device', field, 'host', 'created', 'answerSignature'])
    expect(verifyAnswerSignature(answer.fields as never, requestBodyDigest(body), answer.fields.answerSignature, PINNED)).toBe(true)
    expect(verifyAnswerSignature(answer.fields as never, requestBodyDigest(JSON.stringify(JSON.parse(body))), answer.fields.answerSignature, PINNED)).toBe(false)
    expect(logLines().find((line) => line.message === 'provision')).toMatchObject({ outcome: 'created', answerSigned: true })
  })

  it('signs the decoded bytes of a base64-encoded body (API Gateway’s isBase64Encoded)', async () => {
    // Prepare
    const body = signedBody('esp32_0000000a0003', 2)

    // Act
    const answer = await invoke(handlerWith(), apiEvent(Buffer.from(body).toString('base64'), { 'content-type': 'application/json' }, true))

    // Assess
    expect(answer.status).toBe(201)
    expect(verifyAnswerSignature(answer.fields as never, requestBodyDigest(body), answer.fields.answerSignature, PINNED)).toBe(true)
  })

  it('ends a text answer with an answer_signature= line over the same message', async () => {
    // Prepare
    const body = signedBody('esp32_0000000a0004', 2)

    // Act
    const answer = await invoke(handlerWith(), apiEvent(body, { 'content-type': 'application/json', accept: 'text/plain' }))

    // Assess
    expect(answer.status).toBe(201)
    expect(answer.body).toMatch(/^username=acme\ndevice=esp32_0000000a0004\nsealed=[A-Za-z0-9+/=]+\nhost=acme\.aws\.thinger\.io\ncreated=true\nanswer_signature=[A-Za-z0-9+/]{86}==\n$/)
    expect(verifyAnswerSignature(answer.fields as never, requestBodyDigest(body), answer.fields.answer_signature, PINNED)).toBe(true)
  })

  it.each([
    ['v1, credential in clear', 1],
    ['v2, sealed with the claim secret (mode 2)', 2],
  ] as const)('signs a claim answer (%s), and a re-provisioned one says created false', async (_name, version) => {
    // Prepare
    const device = `kit_00000${version}`
    const body = JSON.stringify({ device, fleet: 'kits', claim: CLAIM, ...(version === 2 ? { version } : {}) })
    const handler = handlerWith()

    // Act
    const first = await invoke(handler, apiEvent(body))
    const second = await invoke(handler, apiEvent(body))

    // Assess
    expect([first.status, second.status]).toEqual([201, 200])
    for (const answer of [first, second]) {
      expect(verifyAnswerSignature(answer.fields as never, requestBodyDigest(body), answer.fields.answerSignature, PINNED)).toBe(true)
      if (version === 2) secrets.add(openSealed(answer.fields.sealed, deriveClaimSealKey(CLAIM, device), { username: USERNAME, device, host: HOST }))
    }
    expect(verifyAnswerSignature({ ...first.fields, created: false } as never, requestBodyDigest(body), first.fields.answerSignature, PINNED)).toBe(false)
  })

  it('does not sign error answers', async () => {
    // Act
    const answer = await invoke(handlerWith(), apiEvent(JSON.stringify({ device: 'kit_000009', fleet: 'kits', claim: 'not the claim secret' })))

    // Assess
    expect(answer.status).toBe(401)
    expect(JSON.stringify(answer.fields)).not.toContain('answerSignature')
  })

  it('answers unsigned without the answer key, and warns answer_key_missing once per container, still in one SSM request', async () => {
    // Prepare
    let ssm: ReturnType<typeof ssmHolding> | undefined
    const handler = handlerWith({}, (held) => (ssm = held))

    // Act
    const first = await invoke(handler, apiEvent(signedBody('esp32_0000000a0005')))
    const second = await invoke(handler, apiEvent(signedBody('esp32_0000000a0006')))

    // Assess
    expect([first.status, second.status]).toEqual([201, 201])
    expect(first.fields.answerSignature).toBeUndefined()
    const warnings = logLines().filter((line) => line.message === 'answer_key_missing')
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatchObject({ level: 'WARN', setting: 'ANSWER_KEY_PARAM', parameter: ANSWER_KEY_PARAM })
    expect(logLines().filter((line) => line.message === 'provision').map((line) => line.answerSigned)).toEqual([false, false])
    expect(ssm!.mock.commandCalls(GetParametersCommand)).toHaveLength(1)
  })

  it.each([
    ['not a key', 'this is not an answer key at all'],
    ['a P-384 key', generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64')],
  ])('answers 500 internal_error naming ANSWER_KEY_PARAM for %s, before any Thinger call, with no stack and no value in the log', async (_name, value) => {
    // Prepare
    secrets.add(value)
    const handler = handlerWith({ [ANSWER_KEY_PARAM]: value })

    // Act
    const answer = await invoke(handler, apiEvent(signedBody('esp32_0000000a0007')))

    // Assess
    expect(answer.status).toBe(500)
    expect(answer.fields).toEqual({ error: { code: 'internal_error', message: 'internal error', retryable: false }, requestId: expect.any(String) })
    expect(emulator.calls()).toEqual([])
    const failure = logLines().find((line) => line.message === 'provision')
    expect(failure).toMatchObject({ outcome: 'failed', code: 'internal_error', detail: expect.stringMatching(/^setting ANSWER_KEY_PARAM: /) })
    expect(capturedOutput()).not.toMatch(/\n\s+at /)
  })
})
