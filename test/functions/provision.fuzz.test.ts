import type { APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda'
import fc from 'fast-check'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'
import { createProvisionHandler, type ProvisionHandler } from '../../functions/provision.js'
import { deriveDeviceKey, signRequest } from '../../lib/attestation/keys.js'
import { startThingerEmulator, type ThingerEmulator } from '../../local/thinger-emulator.js'
import { apiEvent } from '../support/lambda.js'
import { ssmHolding } from '../support/ssm.js'

const USERNAME = 'fuzz'
const TOKEN = 'fuzz-thinger-token-secret-value'
const FLEET_KEY = Buffer.alloc(32, 42).toString('base64')
const TOKEN_PARAM = '/fuzz/thinger-token'
const FLEET_KEY_PARAM = '/fuzz/fleet-key'
const RUNS = 300
let signedRuns = 0

let emulator: ThingerEmulator
let handler: ProvisionHandler
let output: string[] = []

beforeAll(async () => {
  emulator = await startThingerEmulator({ port: 0, accounts: [{ username: USERNAME, tokens: [{ token: TOKEN }] }] })
  const ssm = ssmHolding({ [TOKEN_PARAM]: TOKEN, [FLEET_KEY_PARAM]: FLEET_KEY }).client
  handler = createProvisionHandler({
    env: { THINGER_API_URL: emulator.url, THINGER_USERNAME: USERNAME, THINGER_TOKEN_PARAM: TOKEN_PARAM, FLEET_KEY_PARAM },
    ssmClient: ssm,
  })
})
afterAll(async () => {
  await emulator.close()
})
beforeEach(() => {
  output = []
  const capture = (chunk: string | Uint8Array) => {
    output.push(String(chunk))
    return true
  }
  vi.spyOn(process.stdout, 'write').mockImplementation(capture)
  vi.spyOn(process.stderr, 'write').mockImplementation(capture)
})
afterEach(() => {
  vi.restoreAllMocks()
})

const context = { awsRequestId: 'fuzz', functionName: 'provision', getRemainingTimeInMillis: () => 10_000 } as unknown as Context

const contentTypes = fc.oneof(
  fc.constant(undefined),
  fc.constantFrom('application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/jsonx', ''),
  fc.string({ maxLength: 40 }),
)
const accepts = fc.oneof(fc.constant(undefined), fc.constantFrom('text/plain', 'application/json', '*/*', 'text/plain;q=0.1, application/json;q=0.9', 'text/*'), fc.string({ maxLength: 40 }))
const jsonish = fc.oneof(
  fc.jsonValue().map((value) => JSON.stringify(value)),
  fc.record({ device: fc.jsonValue(), timestamp: fc.jsonValue(), signature: fc.jsonValue() }, { requiredKeys: [] }).map((value) => JSON.stringify(value)),
  fc.record({ device: fc.stringMatching(/^[A-Za-z0-9_-]{1,32}$/), timestamp: fc.integer({ min: 0, max: 2 ** 40 }), signature: fc.base64String({ minLength: 44, maxLength: 44 }) }).map((value) => JSON.stringify(value)),
  fc.string({ maxLength: 200 }),
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.string({ minLength: 4000, maxLength: 6000 }),
)
const bodies = fc.oneof(
  jsonish.map((text) => ({ body: text as string | undefined, isBase64Encoded: false })),
  jsonish.map((text) => ({ body: Buffer.from(text).toString('base64') as string | undefined, isBase64Encoded: true })),
  fc.uint8Array({ maxLength: 6000 }).map((bytes) => ({ body: Buffer.from(bytes).toString('base64') as string | undefined, isBase64Encoded: true })),
  fc.constant({ body: undefined as string | undefined, isBase64Encoded: false }),
)
const extraHeaders = fc.dictionary(fc.string({ minLength: 1, maxLength: 20 }).map((k) => k.toLowerCase()), fc.string({ maxLength: 60 }), { maxKeys: 4 })

describe('Function: provision handler, fuzzed', () => {
  it('never answers 500, never calls Thinger without a valid signature, never leaks a secret', async () => {
    await fc.assert(
      fc.asyncProperty(bodies, contentTypes, accepts, extraHeaders, async ({ body, isBase64Encoded }, contentType, accept, extra) => {
        // Prepare
        const headers: Record<string, string> = { ...extra }
        if (contentType !== undefined) headers['content-type'] = contentType
        if (accept !== undefined) headers.accept = accept
        const before = emulator.calls().length
        output = []

        // Act
        const response = (await handler(apiEvent(body, headers, isBase64Encoded), context)) as APIGatewayProxyStructuredResultV2

        // Assess
        expect(response.statusCode).toBeGreaterThanOrEqual(400)
        expect(response.statusCode).toBeLessThan(500)
        expect(emulator.calls().length).toBe(before)
        const everything = `${response.body}${JSON.stringify(response.headers)}${output.join('')}`
        expect(everything).not.toContain(TOKEN)
        expect(everything).not.toContain(FLEET_KEY)
      }),
      { numRuns: RUNS },
    )
  })

  it('answers 201 or 200 to any validly signed request for any allowed device ID, with a credential that logs in', async () => {
    await fc.assert(
      fc.asyncProperty(fc.stringMatching(/^[A-Za-z0-9_-]{1,26}$/), fc.constantFrom('application/json', 'text/plain'), async (suffix, accept) => {
        // Prepare: a device of its own each run (a device provisioned moments ago is not re-provisioned)
        const device = `${(++signedRuns).toString(36).padStart(5, '0')}_${suffix}`
        const timestamp = Math.floor(Date.now() / 1000)
        const deviceKey = deriveDeviceKey(Buffer.from(FLEET_KEY, 'base64'), device)
        const body = JSON.stringify({ device, timestamp, signature: signRequest(deviceKey, device, timestamp) })
        output = []

        // Act
        const response = (await handler(apiEvent(body, { 'content-type': 'application/json', accept }), context)) as APIGatewayProxyStructuredResultV2

        // Assess
        expect([200, 201]).toContain(response.statusCode)
        const credential = accept === 'text/plain' ? /^credential=(.+)$/m.exec(String(response.body))?.[1] : JSON.parse(String(response.body)).credential
        expect(emulator.checkLogin(USERNAME, device, String(credential))).toEqual({ ok: true })
        expect(output.join('')).not.toContain(String(credential))
        expect(output.join('')).not.toContain(deviceKey.toString('base64'))
      }),
      { numRuns: 100 },
    )
  })
})
