import { GetParametersCommand } from '@aws-sdk/client-ssm'
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { createProvisionHandler } from '../../functions/provision.js'
import { createRequire } from 'node:module'
import { generateAnswerKey } from '../../lib/attestation/answer-signature.js'
import { deriveDeviceKey, signRequest } from '../../lib/attestation/keys.js'
import { deriveClaimSealKey, deriveHmacSealKey, openSealed, type SealKey, SealOpenError } from '../../lib/attestation/seal.js'
import { NAMED_VARIANTS, startThingerEmulator, type ThingerEmulator } from '../../local/thinger-emulator.js'
import { apiEvent } from '../support/lambda.js'
import { captureOutputOfEachTest } from '../support/output.js'
import { answerFrom, ssmHolding } from '../support/ssm.js'

const USERNAME = 'acme'
const TOKEN = 'unit-test-thinger-token-value'
const FLEET_KEY = Buffer.alloc(32, 7).toString('base64')
const TOKEN_PARAM = '/thinger-provisioner/test/thinger-token'
const FLEET_KEY_PARAM = '/thinger-provisioner/test/fleet-key'
const NOW_MS = 1_764_150_000_000
const ANSWER_KEY_PARAM = '/thinger-provisioner/test/answer-key'
const ANSWER_KEY = generateAnswerKey()

let emulator: ThingerEmulator
const secrets = new Set<string>([TOKEN, FLEET_KEY, ANSWER_KEY])

beforeAll(async () => {
  emulator = await startThingerEmulator({ port: 0, accounts: [{ username: USERNAME, tokens: [{ token: TOKEN }], maxDevices: 50 }] })
})
afterAll(async () => {
  await emulator.close()
})
beforeEach(() => {
  emulator.reset()
})
// Whatever happened in the test, nothing secret may have been logged.
const capturedOutput = captureOutputOfEachTest(secrets)

const ssmWith = ssmHolding

function makeHandler(overrides: { env?: Record<string, string>; ssm?: Record<string, string>; now?: () => number } = {}) {
  const ssm = ssmWith(overrides.ssm ?? { [TOKEN_PARAM]: TOKEN, [FLEET_KEY_PARAM]: FLEET_KEY, [ANSWER_KEY_PARAM]: ANSWER_KEY })
  const handler = createProvisionHandler({
    env: {
      THINGER_API_URL: emulator.url,
      THINGER_USERNAME: USERNAME,
      THINGER_DEVICE_HOST: 'acme.aws.thinger.io',
      THINGER_TOKEN_PARAM: TOKEN_PARAM,
      FLEET_KEY_PARAM,
      ANSWER_KEY_PARAM,
      DEVICE_ID_PATTERN: 'esp32_[0-9a-f]{12}',
      ...overrides.env,
    },
    ssmClient: ssm.client,
    now: overrides.now ?? (() => NOW_MS),
  })
  return { handler, ssm }
}

const event = apiEvent

let requestCount = 0
function context(): Context {
  return {
    awsRequestId: `request-${++requestCount}`,
    functionName: 'provision',
    functionVersion: '1',
    invokedFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:provision',
    memoryLimitInMB: '256',
    logGroupName: 'g',
    logStreamName: 's',
    callbackWaitsForEmptyEventLoop: false,
    getRemainingTimeInMillis: () => 10_000,
  } as unknown as Context
}

function signed(device: string, timestamp = NOW_MS / 1000, fleetKey = FLEET_KEY): string {
  const deviceKey = deriveDeviceKey(Buffer.from(fleetKey, 'base64'), device)
  const signature = signRequest(deviceKey, device, timestamp)
  secrets.add(deviceKey.toString('base64'))
  secrets.add(signature)
  return JSON.stringify({ device, timestamp, signature })
}

async function invoke(handler: ReturnType<typeof makeHandler>['handler'], e: APIGatewayProxyEventV2) {
  const response = (await handler(e, context())) as APIGatewayProxyStructuredResultV2
  const body = String(response.headers?.['content-type']).startsWith('application/json') ? JSON.parse(response.body ?? '') : response.body
  if (typeof body?.credential === 'string') secrets.add(body.credential)
  return { ...response, json: body }
}

function logLines(): Array<Record<string, unknown>> {
  return capturedOutput()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
}

describe.each(Object.keys(NAMED_VARIANTS))('Function: provision handler [Thinger variant %s]', (variant) => {
  beforeAll(() => emulator.setVariant(variant))
  afterAll(() => emulator.setVariant('documented'))

  it('returns 201 with the account, device, credential and host when the device is new', async () => {
    // Prepare
    const { handler } = makeHandler()

    // Act
    const response = await invoke(handler, event(signed('esp32_a1b2c3d4e5f6')))

    // Assess
    expect(response.statusCode).toBe(201)
    expect(response.json).toEqual({ username: USERNAME, device: 'esp32_a1b2c3d4e5f6', credential: expect.stringMatching(/^[A-Za-z0-9]{24}$/), host: 'acme.aws.thinger.io', created: true, answerSignature: expect.stringMatching(/^[A-Za-z0-9+/]{86}==$/) })
    expect(emulator.checkLogin(USERNAME, 'esp32_a1b2c3d4e5f6', response.json.credential)).toEqual({ ok: true })
    expect(emulator.device(USERNAME, 'esp32_a1b2c3d4e5f6')?.type).toBe('Generic')
    expect(logLines().find((line) => line.message === 'provision')).toMatchObject({ outcome: 'created', device: 'esp32_a1b2c3d4e5f6', statusCode: 201, thingerCalls: 1, requestId: expect.any(String), durationMs: expect.any(Number) })
    expect(emulator.calls().map((c) => c.method)).toEqual(['POST'])
  })

  it('writes one audit line and one metric line per request, for successes and refusals alike', async () => {
    // Prepare
    const { handler } = makeHandler()

    // Act
    await invoke(handler, event(signed('esp32_00000000c001')))
    await invoke(handler, event(signed('esp32_00000000c002', NOW_MS / 1000, Buffer.alloc(32, 3).toString('base64'))))

    // Assess
    const audit = logLines().filter((line) => line.message === 'provision')
    expect(audit).toEqual([
      expect.objectContaining({ outcome: 'created', device: 'esp32_00000000c001', fleet: 'default', proof: 'hmac', keyVersion: 1, sourceIp: '127.0.0.1', statusCode: 201, requestId: expect.any(String), durationMs: expect.any(Number) }),
      expect.objectContaining({ outcome: 'refused', code: 'invalid_signature', device: 'esp32_00000000c002', fleet: 'default', keyVersion: 1, sourceIp: '127.0.0.1', statusCode: 401 }),
    ])
    const emf = logLines().filter((line) => '_aws' in line)
    expect(emf).toEqual([
      expect.objectContaining({ outcome: 'created', code: 'none', Requests: 1, ThingerCalls: 1 }),
      expect.objectContaining({ outcome: 'refused', code: 'invalid_signature', Requests: 1 }),
    ])
    expect(JSON.stringify(emf[0]!._aws)).toContain('"Namespace":"ThingerProvisioner"')
    // The stage is a dimension (deploy/monitoring.cjs alarms on {service, stage, outcome, code}).
    expect(emf[0]).toMatchObject({ service: 'thinger-provisioner', stage: 'dev' })
    expect((emf[0]!._aws as any).CloudWatchMetrics[0].Dimensions[0].sort()).toEqual(['code', 'outcome', 'service', 'stage'])
  })

  it('writes its metrics under the stage it runs in', async () => {
    // Prepare
    const { handler } = makeHandler({ env: { STAGE: 'prod' } })

    // Act
    await invoke(handler, event(signed('esp32_00000000c003')))

    // Assess
    expect(logLines().filter((line) => '_aws' in line)).toEqual([expect.objectContaining({ stage: 'prod', outcome: 'created' })])
  })

  it('creates a new device in one Thinger call when replay protection is off', async () => {
    // Prepare
    const { handler } = makeHandler({ env: { REPLAY_PROTECTION: 'off' } })

    // Act
    const response = await invoke(handler, event(signed('esp32_00000000a001')))

    // Assess
    expect(response.statusCode).toBe(201)
    expect(emulator.calls().map((c) => c.method)).toEqual(['POST'])
  })

  it('refuses a replayed request with 401 replayed and changes nothing', async () => {
    // Prepare
    const { handler } = makeHandler({ now: Date.now })
    const body = signed('esp32_00000000a002', Math.floor(Date.now() / 1000))
    const first = await invoke(handler, event(body))
    emulator.clearCalls()

    // Act
    const replay = await invoke(handler, event(body))

    // Assess
    expect(first.statusCode).toBe(201)
    expect(replay.statusCode).toBe(401)
    expect(replay.json.error.code).toBe('replayed')
    expect(emulator.checkLogin(USERNAME, 'esp32_00000000a002', first.json.credential)).toEqual({ ok: true })
    // Without `created`, the refusal also records the service's time as a fence (the one write).
    const fence = NAMED_VARIANTS[variant]?.created === 'absent' ? ['POST'] : []
    expect(emulator.calls().map((c) => c.method)).toEqual(['POST', 'GET', 'GET', ...fence])
  })

  it('asks a device re-provisioning seconds after its creation to wait, and keeps the first credential', async () => {
    // Prepare: the real clock, since Thinger's creation times are real
    const { handler } = makeHandler({ now: Date.now })
    const nowSeconds = Math.floor(Date.now() / 1000)
    const first = await invoke(handler, event(signed('esp32_00000000a003', nowSeconds - 2)))

    // Act: a newer request, but one a replay of the creating request could not be told from yet
    const again = await invoke(handler, event(signed('esp32_00000000a003', nowSeconds)))

    // Assess
    expect(first.statusCode).toBe(201)
    expect(again.statusCode).toBe(401)
    expect(again.json.error).toMatchObject({ code: 'replayed', retryable: true, retryAfter: expect.any(Number) })
    expect(again.json.error.retryAfter).toBeGreaterThanOrEqual(1)
    expect(again.json.error.retryAfter).toBeLessThanOrEqual(13)
    expect(emulator.checkLogin(USERNAME, 'esp32_00000000a003', first.json.credential)).toEqual({ ok: true })
  })

  it('records the timestamp of a device whose clock runs ahead, and then accepts only newer requests', async () => {
    // Prepare: a clock 100 s ahead of the service's (within CLOCK_SKEW_SECONDS)
    const { handler } = makeHandler({ now: Date.now })
    const ahead = Math.floor(Date.now() / 1000) + 100
    const creating = signed('esp32_00000000a004', ahead)
    const first = await invoke(handler, event(creating))

    // Act
    const replay = await invoke(handler, event(creating))
    const newer = await invoke(handler, event(signed('esp32_00000000a004', ahead + 1)))

    // Assess
    expect(first.statusCode).toBe(201)
    expect(replay.statusCode).toBe(401)
    expect(replay.json.error).toMatchObject({ code: 'replayed', retryable: true })
    expect(newer.statusCode).toBe(200)
    expect(emulator.resources(USERNAME).properties['esp32_00000000a004']?.provisioning).toMatchObject({ fleet: 'default', proof: 'hmac', keyVersion: 1, lastTimestamp: ahead + 1 })
    expect(emulator.checkLogin(USERNAME, 'esp32_00000000a004', newer.json.credential)).toEqual({ ok: true })
  })

  it('fetches SSM again on the next request after a failed first fetch, instead of failing until the cache expires', async () => {
    // Prepare
    const { handler, ssm } = makeHandler()
    const throttled = Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException', $fault: 'client' })
    ssm.mock
      .on(GetParametersCommand)
      .rejectsOnce(throttled)
      .rejectsOnce(throttled)
      .callsFake(answerFrom({ [TOKEN_PARAM]: TOKEN, [FLEET_KEY_PARAM]: FLEET_KEY }))

    // Act
    const statuses = []
    for (const device of ['esp32_00000000d001', 'esp32_00000000d002', 'esp32_00000000d003']) statuses.push((await invoke(handler, event(signed(device)))).statusCode)

    // Assess
    expect(statuses).toEqual([503, 503, 201])
    expect(ssm.mock.commandCalls(GetParametersCommand)).toHaveLength(3)
  })

  describe('revocation and key versions', () => {
    const DENY_LIST_PARAM = '/thinger-provisioner/test/default-deny-list'
    const FLEET_KEY_V2 = Buffer.alloc(32, 9).toString('base64')
    const denied = (devices: string[], retiredKeyVersions: number[] = []) =>
      makeHandler({
        env: { FLEET_KEY_VERSIONS: '1,2' },
        ssm: { [TOKEN_PARAM]: TOKEN, [FLEET_KEY_PARAM]: FLEET_KEY, [`${FLEET_KEY_PARAM}-v2`]: FLEET_KEY_V2, [DENY_LIST_PARAM]: JSON.stringify({ version: 1, devices, retiredKeyVersions }) },
      })
    const signedV2 = (device: string) => JSON.stringify({ ...JSON.parse(signed(device, NOW_MS / 1000, FLEET_KEY_V2)), keyVersion: 2 })

    it('answers 403 device_revoked for a revoked device, without any Thinger call', async () => {
      // Act
      const response = await invoke(denied(['esp32_00000000b001']).handler, event(signed('esp32_00000000b001')))

      // Assess
      expect(response.statusCode).toBe(403)
      expect(response.json.error.code).toBe('device_revoked')
      expect(emulator.calls()).toEqual([])
    })

    it('provisions a device flashed with key version 2 when the fleet lists it', async () => {
      // Act
      const response = await invoke(denied([]).handler, event(signedV2('esp32_00000000b002')))

      // Assess
      expect(response.statusCode).toBe(201)
      expect(logLines().find((line) => line.message === 'provision')).toMatchObject({ outcome: 'created', keyVersion: 2 })
    })

    it('answers 403 key_revoked for every device of a retired key version, and still serves the others', async () => {
      // Prepare
      const { handler } = denied([], [1])

      // Act
      const old = await invoke(handler, event(signed('esp32_00000000b003')))
      const current = await invoke(handler, event(signedV2('esp32_00000000b004')))

      // Assess
      expect(old.statusCode).toBe(403)
      expect(old.json.error.code).toBe('key_revoked')
      expect(current.statusCode).toBe(201)
    })

    it('answers 403 unknown_key_version for a version the fleet does not list', async () => {
      // Act
      const response = await invoke(makeHandler().handler, event(signedV2('esp32_00000000b005')))

      // Assess
      expect(response.statusCode).toBe(403)
      expect(response.json.error.code).toBe('unknown_key_version')
    })

    it('refuses a device revoked after the container parsed the deny list, once SSM hands out the new list', async () => {
      // Prepare
      const values = { [TOKEN_PARAM]: TOKEN, [FLEET_KEY_PARAM]: FLEET_KEY, [DENY_LIST_PARAM]: JSON.stringify({ version: 1, devices: [], retiredKeyVersions: [] }) }
      const { handler } = makeHandler({ env: { SSM_CACHE_SECONDS: '1' }, ssm: values })
      const before = await invoke(handler, event(signed('esp32_00000000b007')))

      // Act
      values[DENY_LIST_PARAM] = JSON.stringify({ version: 1, devices: ['esp32_00000000b007'], retiredKeyVersions: [] })
      await new Promise((resolve) => setTimeout(resolve, 1_100))
      const after = await invoke(handler, event(signed('esp32_00000000b007')))

      // Assess
      expect(before.statusCode).toBe(201)
      expect([after.statusCode, after.json.error?.code]).toEqual([403, 'device_revoked'])
    })

    it('answers 500 for a broken deny list on every request, not only the first', async () => {
      // Prepare
      const { handler } = makeHandler({ ssm: { [TOKEN_PARAM]: TOKEN, [FLEET_KEY_PARAM]: FLEET_KEY, [DENY_LIST_PARAM]: '{"version":1}' } })

      // Act
      const first = await invoke(handler, event(signed('esp32_00000000b008')))
      const second = await invoke(handler, event(signed('esp32_00000000b009')))

      // Assess
      expect([first.statusCode, second.statusCode]).toEqual([500, 500])
    })

    it('answers 500 and names the deny list when it is not a deny list', async () => {
      // Prepare
      const { handler } = makeHandler({ ssm: { [TOKEN_PARAM]: TOKEN, [FLEET_KEY_PARAM]: FLEET_KEY, [DENY_LIST_PARAM]: '{"devices":"all"}' } })

      // Act
      const response = await invoke(handler, event(signed('esp32_00000000b006')))

      // Assess
      expect(response.statusCode).toBe(500)
      expect(logLines().find((line) => line.code === 'internal_error')).toMatchObject({ detail: expect.stringContaining('DENY_LIST_PARAM') })
    })
  })

  describe('error answers', () => {
    const cases: Array<[string, () => { handler: ReturnType<typeof makeHandler>['handler']; e: APIGatewayProxyEventV2 }, number, string]> = [
      ['invalid_request for malformed JSON', () => ({ handler: makeHandler().handler, e: event('{"device"') }), 400, 'invalid_request'],
      ['invalid_request for invalid UTF-8', () => ({ handler: makeHandler().handler, e: event(Buffer.from([0x7b, 0xff, 0x7d]).toString('base64'), undefined, true) }), 400, 'invalid_request'],
      ['invalid_request for a missing body', () => ({ handler: makeHandler().handler, e: event(undefined) }), 400, 'invalid_request'],
      // serverless-offline hands the function `body: null` for an empty, `null`, `0` or `""` body.
      ['invalid_request for a null body', () => ({ handler: makeHandler().handler, e: event(null as unknown as string) }), 400, 'invalid_request'],
      ['invalid_request for the JSON null', () => ({ handler: makeHandler().handler, e: event('null') }), 400, 'invalid_request'],
      ['invalid_request for an empty string', () => ({ handler: makeHandler().handler, e: event('') }), 400, 'invalid_request'],
      ['unsupported_media_type without a content type', () => ({ handler: makeHandler().handler, e: event(signed('esp32_000000000006'), {}) }), 415, 'unsupported_media_type'],
      ['unsupported_media_type for application/jsonp', () => ({ handler: makeHandler().handler, e: event(signed('esp32_000000000006'), { 'content-type': 'application/jsonp' }) }), 415, 'unsupported_media_type'],
      ['payload_too_large over 4096 bytes', () => ({ handler: makeHandler().handler, e: event(`{"device":"${'a'.repeat(4100)}"}`) }), 413, 'payload_too_large'],
      ['invalid_signature for a key of another fleet', () => ({ handler: makeHandler().handler, e: event(signed('esp32_000000000007', NOW_MS / 1000, Buffer.alloc(32, 8).toString('base64'))) }), 401, 'invalid_signature'],
      ['clock_skew 301 s ahead', () => ({ handler: makeHandler().handler, e: event(signed('esp32_000000000008', NOW_MS / 1000 + 301)) }), 401, 'clock_skew'],
      ['device_not_allowed outside DEVICE_ID_PATTERN', () => ({ handler: makeHandler().handler, e: event(signed('esp8266_a1b2c3d4e5f6')) }), 403, 'device_not_allowed'],
      ['internal_error when a setting is missing', () => ({ handler: makeHandler({ env: { THINGER_USERNAME: '' } }).handler, e: event(signed('esp32_000000000009')) }), 500, 'internal_error'],
      ['internal_error when the fleet key parameter does not exist', () => ({ handler: makeHandler({ ssm: { [TOKEN_PARAM]: TOKEN } }).handler, e: event(signed('esp32_000000000010')) }), 500, 'internal_error'],
      ['internal_error when the fleet key is too short', () => ({ handler: makeHandler({ ssm: { [TOKEN_PARAM]: TOKEN, [FLEET_KEY_PARAM]: 'c2hvcnQ=' } }).handler, e: event(signed('esp32_000000000011')) }), 500, 'internal_error'],
    ]

    it.each(cases)('%s', async (_name, build, status, code) => {
      // Prepare
      const { handler, e } = build()

      // Act
      const response = await invoke(handler, e)

      // Assess
      expect(response.statusCode).toBe(status)
      expect(response.json).toEqual({
        error: { code, message: expect.any(String), retryable: false, ...(code === 'clock_skew' ? { serverTime: NOW_MS / 1000 } : {}) },
        requestId: expect.any(String),
      })
      expect(emulator.calls()).toEqual([])
    })

    it('names the wrong setting in the log, not in the answer', async () => {
      // Prepare
      const { handler } = makeHandler({ ssm: { [TOKEN_PARAM]: TOKEN } })

      // Act
      const response = await invoke(handler, event(signed('esp32_000000000012')))

      // Assess
      expect(JSON.stringify(response.json)).not.toContain('FLEET_KEY_PARAM')
      expect(logLines().find((line) => line.code === 'internal_error')).toMatchObject({ detail: expect.stringContaining('FLEET_KEY_PARAM') })
    })

    it('answers 503 upstream_unavailable with Retry-After when SSM throttles', async () => {
      // Prepare
      const { handler, ssm } = makeHandler()
      ssm.mock.on(GetParametersCommand).rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }))

      // Act
      const response = await invoke(handler, event(signed('esp32_000000000013')))

      // Assess
      expect(response.statusCode).toBe(503)
      expect(response.json.error).toMatchObject({ code: 'upstream_unavailable', retryable: true })
      expect(Number(response.headers?.['retry-after'])).toBeGreaterThanOrEqual(1)
      expect(emulator.calls()).toEqual([])
    })

    it('answers 502 upstream_error when Thinger refuses the token', async () => {
      // Prepare
      const { handler } = makeHandler({ ssm: { [TOKEN_PARAM]: 'not-the-token', [FLEET_KEY_PARAM]: FLEET_KEY } })
      secrets.add('not-the-token')

      // Act
      const response = await invoke(handler, event(signed('esp32_000000000014')))

      // Assess
      expect(response.statusCode).toBe(502)
      expect(response.json.error).toMatchObject({ code: 'upstream_error', retryable: false })
    })

    it('answers 409 device_conflict and changes nothing when an HTTP device holds the ID', async () => {
      // Prepare
      await fetch(`${emulator.url}/v1/users/${USERNAME}/devices`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ device: 'esp32_000000000015', type: 'HTTP', description: 'webhook' }),
      })
      const { handler } = makeHandler()

      // Act
      const response = await invoke(handler, event(signed('esp32_000000000015')))

      // Assess
      expect(response.statusCode).toBe(409)
      expect(response.json.error.code).toBe('device_conflict')
      expect(emulator.device(USERNAME, 'esp32_000000000015')?.type).toBe('HTTP')
    })

    it('answers 403 device_disabled and keeps the old credential of a disabled device', async () => {
      // Prepare
      const { handler } = makeHandler()
      const first = await invoke(handler, event(signed('esp32_000000000016')))
      await fetch(`${emulator.url}/v1/users/${USERNAME}/devices/esp32_000000000016`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ enabled: false }),
      })

      // Act
      const response = await invoke(handler, event(signed('esp32_000000000016')))

      // Assess
      expect(response.statusCode).toBe(403)
      expect(response.json.error.code).toBe('device_disabled')
      expect(emulator.checkLogin(USERNAME, 'esp32_000000000016', first.json.credential)).toEqual({ ok: false, reason: 'disabled' })
    })

    it('answers 503 and logs no secret when the connection to Thinger fails with an odd error', async () => {
      // Prepare
      const handler = createProvisionHandler({
        env: { THINGER_API_URL: emulator.url, THINGER_USERNAME: USERNAME, THINGER_TOKEN_PARAM: TOKEN_PARAM, FLEET_KEY_PARAM },
        ssmClient: ssmWith({ [TOKEN_PARAM]: TOKEN, [FLEET_KEY_PARAM]: FLEET_KEY }).client,
        fetch: () => {
          throw new TypeError(`boom ${TOKEN}`)
        },
        now: () => NOW_MS,
      })

      // Act
      const response = await invoke(handler, event(signed('esp32_000000000017')))

      // Assess
      expect(response.statusCode).toBe(503)
      expect(JSON.stringify(response.json)).not.toContain('boom')
    })

    it('answers 500 internal_error that says nothing more when something unexpected breaks', async () => {
      // Prepare
      const handler = createProvisionHandler({
        env: { THINGER_API_URL: emulator.url, THINGER_USERNAME: USERNAME, THINGER_TOKEN_PARAM: TOKEN_PARAM, FLEET_KEY_PARAM },
        ssmClient: ssmWith({ [TOKEN_PARAM]: TOKEN, [FLEET_KEY_PARAM]: FLEET_KEY }).client,
        now: () => {
          throw new RangeError(`clock broke near ${FLEET_KEY}`)
        },
      })

      // Act
      const response = await invoke(handler, event(signed('esp32_000000000020')))

      // Assess
      expect(response.statusCode).toBe(500)
      expect(response.json).toEqual({ error: { code: 'internal_error', message: 'internal error', retryable: false }, requestId: expect.any(String) })
      expect(logLines().find((line) => line.code === 'internal_error')).toMatchObject({ errorName: 'RangeError', errorMessage: 'clock broke near [redacted]' })
    })
  })

  describe('text answers for Accept: text/plain', () => {
    it('writes errors as error=, retry_after= and server_time= lines', async () => {
      // Prepare
      const { handler } = makeHandler()

      // Act
      const response = await invoke(handler, event(signed('esp32_000000000018', 0), { 'content-type': 'application/json', accept: 'text/plain' }))

      // Assess
      expect(response.statusCode).toBe(401)
      expect(response.body).toMatch(/^error=clock_skew\nserver_time=1764150000\nrequest_id=[^\n]+\n$/)
    })

    it('keeps JSON when the client prefers it', async () => {
      // Prepare
      const { handler } = makeHandler()

      // Act
      const response = await invoke(handler, event(signed('esp32_000000000019'), { 'content-type': 'application/json', accept: 'text/plain;q=0.5, application/json' }))

      // Assess
      expect(response.headers?.['content-type']).toBe('application/json')
    })
  })

  describe('sealed answers (protocol v2)', () => {
    const { parseFleets } = createRequire(import.meta.url)('../../deploy/fleets.cjs') as { parseFleets: (text: string) => unknown }
    const CLAIM = 'sealed-test-claim-secret-0001'
    const CLAIM_PARAM = '/thinger-provisioner/test/claim'
    const FLEETS = parseFleets(`version: 1
fleets:
  default:
    proof: [hmac]
    keyParam: ${FLEET_KEY_PARAM}
    sealing: required
  kits:
    proof: [claim]
    claimParam: ${CLAIM_PARAM}
    reprovision: rotate
`)

    function sealedFleetHandler() {
      const ssm = ssmWith({ [TOKEN_PARAM]: TOKEN, [FLEET_KEY_PARAM]: FLEET_KEY, [CLAIM_PARAM]: CLAIM })
      return createProvisionHandler({
        env: { THINGER_API_URL: emulator.url, THINGER_USERNAME: USERNAME, THINGER_DEVICE_HOST: 'acme.aws.thinger.io', THINGER_TOKEN_PARAM: TOKEN_PARAM },
        fleets: FLEETS,
        ssmClient: ssm.client,
        now: () => NOW_MS,
      })
    }

    function signedV2(device: string, timestamp = NOW_MS / 1000): { body: string; sealKey: SealKey } {
      const deviceKey = deriveDeviceKey(Buffer.from(FLEET_KEY, 'base64'), device)
      const signature = signRequest(deviceKey, device, timestamp, 2)
      secrets.add(deviceKey.toString('base64'))
      secrets.add(signature)
      return { body: JSON.stringify({ device, timestamp, signature, version: 2 }), sealKey: deriveHmacSealKey(deviceKey, device, timestamp) }
    }

    it('seals the credential of a v2 request to the device key; opened, it logs in', async () => {
      // Prepare
      const { handler } = makeHandler()
      const device = 'esp32_5ea1ed000001'
      const { body, sealKey } = signedV2(device)

      // Act
      const response = await invoke(handler, event(body))

      // Assess
      expect(response.statusCode).toBe(201)
      expect(Object.keys(response.json)).toEqual(['username', 'device', 'sealed', 'host', 'created', 'answerSignature'])
      const credential = openSealed(response.json.sealed, sealKey, { username: USERNAME, device, host: 'acme.aws.thinger.io' })
      secrets.add(credential)
      expect(credential).toMatch(/^[A-Za-z0-9]{24}$/)
      expect(emulator.checkLogin(USERNAME, device, credential)).toEqual({ ok: true })
      expect(emulator.calls().map((c) => c.method)).toEqual(['POST'])
      expect(logLines().find((line) => line.message === 'provision')).toMatchObject({ outcome: 'created', sealed: true, thingerCalls: 1 })
    })

    it('carries the sealed credential as a sealed= line in text answers', async () => {
      // Prepare
      const { handler } = makeHandler()
      const device = 'esp32_5ea1ed000002'
      const { body, sealKey } = signedV2(device)

      // Act
      const response = await invoke(handler, event(body, { 'content-type': 'application/json', accept: 'text/plain' }))

      // Assess
      expect(response.statusCode).toBe(201)
      const match = /^username=acme\ndevice=esp32_5ea1ed000002\nsealed=([A-Za-z0-9+/=]+)\nhost=acme\.aws\.thinger\.io\ncreated=true\nanswer_signature=[A-Za-z0-9+/]{86}==\n$/.exec(String(response.body))
      expect(match).not.toBeNull()
      const credential = openSealed(match![1]!, sealKey, { username: USERNAME, device, host: 'acme.aws.thinger.io' })
      secrets.add(credential)
      expect(emulator.checkLogin(USERNAME, device, credential)).toEqual({ ok: true })
    })

    it('refuses a v2 request stripped to v1 on the way (the signature covers the version)', async () => {
      // Prepare
      const { handler } = makeHandler()
      const { body } = signedV2('esp32_5ea1ed000003')
      const { version: _version, ...stripped } = JSON.parse(body) as Record<string, unknown>

      // Act
      const response = await invoke(handler, event(JSON.stringify(stripped)))

      // Assess
      expect(response.statusCode).toBe(401)
      expect(response.json.error.code).toBe('invalid_signature')
      expect(emulator.calls()).toEqual([])
    })

    it('refuses v1 requests with 403 sealing_required in a fleet that requires sealing, before any Thinger call', async () => {
      // Prepare
      const handler = sealedFleetHandler()

      // Act
      const response = await invoke(handler, event(signed('esp32_5ea1ed000004')))

      // Assess
      expect(response.statusCode).toBe(403)
      expect(response.json.error).toMatchObject({ code: 'sealing_required', retryable: false })
      expect(emulator.calls()).toEqual([])
    })

    it('refuses v1 and answers v2 with SEALING=required and no fleets file (the one fleet of the settings)', async () => {
      // Prepare
      const { handler } = makeHandler({ env: { SEALING: 'required' } })
      const { body, sealKey } = signedV2('esp32_5ea1ed000006')

      // Act
      const clear = await invoke(handler, event(signed('esp32_5ea1ed000007')))
      const callsAfterRefusal = emulator.calls().length
      const sealed = await invoke(handler, event(body))

      // Assess
      expect([clear.statusCode, clear.json.error?.code]).toEqual([403, 'sealing_required'])
      expect(callsAfterRefusal).toBe(0)
      expect(sealed.statusCode).toBe(201)
      secrets.add(openSealed(sealed.json.sealed, sealKey, { username: USERNAME, device: 'esp32_5ea1ed000006', host: 'acme.aws.thinger.io' }))
    })

    it('answers v2 requests of a fleet that requires sealing, and still serves v1 devices of a fleet without the setting', async () => {
      // Prepare
      const handler = sealedFleetHandler()
      const { body, sealKey } = signedV2('esp32_5ea1ed000005')

      // Act
      const sealed = await invoke(handler, event(body))
      const clear = await invoke(handler, event(JSON.stringify({ device: 'kit_000001', fleet: 'kits', claim: CLAIM })))

      // Assess
      expect(sealed.statusCode).toBe(201)
      secrets.add(openSealed(sealed.json.sealed, sealKey, { username: USERNAME, device: 'esp32_5ea1ed000005', host: 'acme.aws.thinger.io' }))
      expect(clear.statusCode).toBe(201)
      expect(clear.json.credential).toMatch(/^[A-Za-z0-9]{24}$/)
    })

    it('seals a claim request’s credential with the claim secret when it asks for version 2', async () => {
      // Prepare
      const handler = sealedFleetHandler()
      const device = 'kit_000002'

      // Act
      const response = await invoke(handler, event(JSON.stringify({ device, fleet: 'kits', claim: CLAIM, version: 2 })))

      // Assess
      expect(response.statusCode).toBe(201)
      expect(response.json.credential).toBeUndefined()
      const credential = openSealed(response.json.sealed, deriveClaimSealKey(CLAIM, device), { username: USERNAME, device, host: 'acme.aws.thinger.io' })
      secrets.add(credential)
      expect(emulator.checkLogin(USERNAME, device, credential)).toEqual({ ok: true })
    })

    it('gives whoever replays a v2 request in parallel only a credential they cannot open', async () => {
      // Prepare: the same signed bytes twice at once, as a machine in the middle would send them.
      const { handler } = makeHandler({ env: { REPLAY_PROTECTION: 'off' } })
      const device = 'esp32_5ea1ed000006'
      const { body } = signedV2(device)
      const wrongKeys = [deriveHmacSealKey(Buffer.alloc(32, 1), device, NOW_MS / 1000), deriveHmacSealKey(deriveDeviceKey(Buffer.from(FLEET_KEY, 'base64'), device), device, NOW_MS / 1000 + 1)]

      // Act
      const answers = await Promise.all([invoke(handler, event(body)), invoke(handler, event(body))])

      // Assess
      for (const answer of answers) {
        expect(answer.json.credential).toBeUndefined()
        for (const key of wrongKeys) expect(() => openSealed(answer.json.sealed, key, { username: USERNAME, device, host: 'acme.aws.thinger.io' })).toThrow(SealOpenError)
      }
    })
  })
})
