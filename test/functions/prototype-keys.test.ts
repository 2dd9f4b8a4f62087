import { createRequire } from 'node:module'
import type { APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda'
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'
import { createProvisionHandler, type ProvisionHandler } from '../../functions/provision.js'
import { startThingerEmulator, type ThingerEmulator } from '../../local/thinger-emulator.js'
import { apiEvent } from '../support/lambda.js'
import { ssmHolding } from '../support/ssm.js'

const { parseFleets } = createRequire(import.meta.url)('../../deploy/fleets.cjs') as { parseFleets: (text: string) => unknown }

const USERNAME = 'acme'
const TOKEN = 'prototype-test-thinger-token'
const CLAIM = 'prototype-test-claim-secret'
// Names of Object.prototype's members: looked up with `in` or `obj[key]`, each would be "declared" by every object.
const PROTOTYPE_NAMES = ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf']
const FLEETS = parseFleets(`version: 1
fleets:
  plain:
    proof: [claim]
    claimParam: /proto/claim
    devicePattern: 'pk_[a-z0-9]{4}'
  declared:
    proof: [claim]
    claimParam: /proto/claim
    devicePattern: 'pd_[a-z0-9]{4}'
    meta:
      site:
        pattern: '[a-z]{1,8}'
      owner:
        default: nobody
    profile:
      description: 'Kit of {meta.owner} at {meta.site}'
`)

let emulator: ThingerEmulator
let handler: ProvisionHandler
let requestCount = 0

beforeAll(async () => {
  emulator = await startThingerEmulator({ port: 0, accounts: [{ username: USERNAME, tokens: [{ token: TOKEN }] }] })
  handler = createProvisionHandler({ env: { THINGER_API_URL: emulator.url, THINGER_USERNAME: USERNAME }, fleets: FLEETS, ssmClient: ssmHolding({ '/thinger-provisioner/dev/thinger-token': TOKEN, '/proto/claim': CLAIM }).client })
})
afterAll(async () => {
  vi.restoreAllMocks()
  await emulator.close()
})
beforeEach(() => {
  emulator.reset()
  vi.spyOn(process.stdout, 'write').mockImplementation(() => true)
})

/** Posts a raw JSON body, so that a `__proto__` key reaches the function as the own key JSON.parse makes of it. */
async function post(body: string): Promise<[number, string | undefined]> {
  const context = { awsRequestId: `r${++requestCount}`, functionName: 'provision', getRemainingTimeInMillis: () => 10_000 } as unknown as Context
  const response = (await handler(apiEvent(body), context)) as APIGatewayProxyStructuredResultV2
  return [response.statusCode ?? 0, JSON.parse(String(response.body)).error?.code]
}
const metaBody = (device: string, fleet: string, meta: string) => `{"device":"${device}","fleet":"${fleet}","claim":"${CLAIM}","meta":${meta}}`

describe('Function: provision handler, client keys named like Object.prototype members', () => {
  it.each(PROTOTYPE_NAMES)('refuses meta key %s for a fleet that declares no meta, and for one that declares others, creating nothing', async (key) => {
    // Act
    const plain = await post(metaBody('pk_0001', 'plain', `{"${key}":"x"}`))
    const declared = await post(metaBody('pd_0001', 'declared', `{"site":"lab","${key}":"x"}`))

    // Assess
    expect([plain, declared]).toEqual([
      [400, 'invalid_request'],
      [400, 'invalid_request'],
    ])
    expect(emulator.devices(USERNAME)).toEqual([])
  })

  it.each(PROTOTYPE_NAMES)('refuses fleet %s with its existing code, creating nothing', async (fleet) => {
    // Act
    const answer = await post(`{"device":"pk_0002","fleet":"${fleet}","claim":"${CLAIM}"}`)

    // Assess
    expect(answer).toEqual(/^[a-z0-9_-]+$/.test(fleet) ? [403, 'unknown_fleet'] : [400, 'invalid_request'])
    expect(emulator.devices(USERNAME)).toEqual([])
  })

  it('fills a template with the declared default, never with a prototype member, and records only the meta sent', async () => {
    // Act
    const answer = await post(metaBody('pd_0002', 'declared', '{"site":"lab"}'))

    // Assess
    expect(answer).toEqual([201, undefined])
    expect(emulator.devices(USERNAME).map((device) => device.description)).toEqual([expect.stringMatching(/^Kit of nobody at lab/)])
    const properties = emulator.resources(USERNAME).properties as Record<string, Record<string, { meta?: unknown }>>
    expect(properties.pd_0002?.provisioning?.meta).toEqual({ site: 'lab' })
  })
})
