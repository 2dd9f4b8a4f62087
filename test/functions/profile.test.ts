import { createRequire } from 'node:module'
import type { APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda'
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'
import { createProvisionHandler, type ProvisionHandler } from '../../functions/provision.js'
import { type FaultRule, NAMED_VARIANTS, startThingerEmulator, type ThingerEmulator } from '../../local/thinger-emulator.js'
import { apiEvent } from '../support/lambda.js'
import { ssmHolding } from '../support/ssm.js'

const { parseFleets } = createRequire(import.meta.url)('../../deploy/fleets.cjs') as { parseFleets: (text: string) => unknown }

const USERNAME = 'acme'
const TOKEN = 'profile-test-thinger-token'
const CLAIM = 'profile-test-claim-secret'
const FLEETS = parseFleets(`version: 1
fleets:
  lab:
    proof: [claim]
    claimParam: /lab/claim
    devicePattern: 'lab_[a-z0-9]{4,28}'
    profile:
      name: 'Lab {device}'
      assetType: lab_kit
      assetGroup: lab
      product: lab_kit
      properties:
        rate: 5
`)

let emulator: ThingerEmulator
let requestCount = 0

beforeAll(async () => {
  emulator = await startThingerEmulator({ port: 0, accounts: [{ username: USERNAME, tokens: [{ token: TOKEN }] }] })
})
afterAll(async () => {
  await emulator.close()
})
beforeEach(() => {
  emulator.reset()
  vi.spyOn(process.stdout, 'write').mockImplementation(() => true)
})

/** A fresh handler is a fresh container: it knows of no asset type, group or product yet. */
function coldHandler(): ProvisionHandler {
  const ssm = ssmHolding({ '/thinger-provisioner/dev/thinger-token': TOKEN, '/lab/claim': CLAIM }).client
  return createProvisionHandler({ env: { THINGER_API_URL: emulator.url, THINGER_USERNAME: USERNAME }, fleets: FLEETS, ssmClient: ssm })
}

async function claim(handler: ProvisionHandler, device: string): Promise<number> {
  const context = { awsRequestId: `r${++requestCount}`, functionName: 'provision', getRemainingTimeInMillis: () => 10_000 } as unknown as Context
  const response = (await handler(apiEvent(JSON.stringify({ device, fleet: 'lab', claim: CLAIM })), context)) as APIGatewayProxyStructuredResultV2
  return response.statusCode ?? 0
}

describe.each(Object.keys(NAMED_VARIANTS))('Function: provision handler, profile steps that run once per container [Thinger variant %s]', (variant) => {
  beforeAll(() => emulator.setVariant(variant))
  afterAll(() => emulator.setVariant('documented'))

  it.each<[string, FaultRule]>([
    ['the asset type', { method: 'POST', path: '/types$', action: 'status', status: 503, times: 1 }],
    ['the asset group', { method: 'POST', path: '/groups$', action: 'status', status: 503, times: 1 }],
    ['the product', { method: 'POST', path: '/products$', action: 'status', status: 503, times: 1 }],
    ['reading the asset type', { method: 'GET', path: '/types/lab_kit$', action: 'status', status: 503, times: 3 }],
  ])('answers 503 when creating %s fails, and the retry creates everything exactly once', async (_label, fault) => {
    // Prepare
    const handler = coldHandler()
    emulator.setFaults([fault])

    // Act
    const failed = await claim(handler, 'lab_kit1')
    emulator.setFaults([])
    const retried = await claim(handler, 'lab_kit1')

    // Assess
    expect(failed).toBe(503)
    expect(retried).toBe(201)
    const state = emulator.resources(USERNAME)
    expect(state.types.map((t) => t.type)).toEqual(['lab_kit'])
    expect(state.groups.map((g) => g.group)).toEqual(['lab'])
    expect(state.products.map((p) => p.product)).toEqual(['lab_kit'])
    expect(state.devices.map((d) => [d.device, d.asset_type, d.asset_group, d.product])).toEqual([['lab_kit1', 'lab_kit', 'lab', 'lab_kit']])
    expect(Object.keys(state.properties.lab_kit1 ?? {}).sort()).toEqual(['provisioning', 'rate'])
  })

  it('reads the shared resources once per container, not once per device', async () => {
    // Prepare
    const handler = coldHandler()
    await claim(handler, 'lab_kit2')
    emulator.clearCalls()

    // Act
    const status = await claim(handler, 'lab_kit3')

    // Assess: device, property, record
    expect(status).toBe(201)
    expect(emulator.calls().map((c) => `${c.method} ${c.path.replace(/^\/v\d\/users\/acme/, '')}`)).toEqual([
      'POST /devices',
      'POST /devices/lab_kit3/properties',
      'POST /devices/lab_kit3/properties',
    ])
  })
})
