import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import type { APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createProvisionHandler } from '../../functions/provision.js'
import { loadConfig } from '../../lib/config.js'
import { actionsOfPolicy, requiredActionsOf, tokenPolicy } from '../../lib/thinger/policy.js'
import { LOCAL_FLEET_KEY, LOCAL_FLEETS_FILE, LOCAL_WORKSHOP_CLAIM_SECRET, LOCAL_WORKSHOP_FLEET_KEY } from '../../local/defaults.js'
import { startThingerEmulator, type ThingerEmulator } from '../../local/thinger-emulator.js'
import { signedBody } from '../support/device.js'
import { apiEvent } from '../support/lambda.js'
import { ssmHolding } from '../support/ssm.js'
import { tokensLackingEach, tokenWithout } from '../support/tokens.js'
import { markDescription } from '../../lib/provisioning/fleet-mark.js'
import { dashboardDescription } from '../../lib/provisioning/plan.js'

const { parseFleets } = createRequire(import.meta.url)('../../deploy/fleets.cjs') as { parseFleets: (text: string, file: string) => unknown }

const USERNAME = 'acme'
const ADMIN_TOKEN = 'policy-test-admin-token'
const FLEETS = parseFleets(readFileSync(LOCAL_FLEETS_FILE, 'utf8'), LOCAL_FLEETS_FILE)
const ENV = { THINGER_USERNAME: USERNAME }
// What `thinger-provisioner token-policy` prints for the local fleets file.
const POLICY = tokenPolicy(requiredActionsOf(loadConfig(ENV, FLEETS).fleets.values()).map(({ action }) => action))
const POLICY_ACTIONS = actionsOfPolicy(POLICY)
// Created, resumed; created, provisioned again twice.
const SUCCESS = [201, 200, 201, 200, 200]

let emulator: ThingerEmulator
let requestCount = 0

beforeAll(async () => {
  emulator = await startThingerEmulator({
    port: 0,
    accounts: [{
      username: USERNAME,
      tokens: tokensLackingEach(POLICY_ACTIONS, ADMIN_TOKEN),
    }],
  })
  vi.spyOn(process.stdout, 'write').mockImplementation(() => true)
})
afterAll(async () => {
  vi.restoreAllMocks()
  await emulator.close()
})

async function admin(method: string, path: string, body: unknown): Promise<void> {
  const response = await fetch(`${emulator.url}/${path.startsWith('v3') ? '' : 'v1/'}${path.replace(/^v3\//, 'v3/')}`.replace('/v1/v3/', '/v3/'), {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  expect(response.status, `${method} ${path}`).toBe(200)
}

/**
 * Every kind of call the function makes for the local fleets: a new workshop kit (its whole
 * profile), a kit whose provisioning was interrupted with every element already made (the
 * confirming reads and updates), and a default-fleet device created, then provisioned again twice.
 * Returns the statuses of the provisioning requests.
 */
async function runScenario(token: string): Promise<number[]> {
  emulator.reset()
  emulator.seed(USERNAME, {
    projects: [{ project: 'workshop', name: 'Workshop' }],
    dashboards: [{ dashboard: 'workshop_template', name: 'Template', widgets: [] }],
  })
  const ssm = ssmHolding({
    '/thinger-provisioner/dev/thinger-token': token,
    '/thinger-provisioner/local/fleet-key': LOCAL_FLEET_KEY,
    '/thinger-provisioner/local/workshop/claim-secret': LOCAL_WORKSHOP_CLAIM_SECRET,
    '/thinger-provisioner/local/workshop/fleet-key': LOCAL_WORKSHOP_FLEET_KEY,
  }).client
  const handler = createProvisionHandler({ env: { ...ENV, THINGER_API_URL: emulator.url }, fleets: FLEETS, ssmClient: ssm })
  const send = async (body: Record<string, unknown>): Promise<number> => {
    const context = { awsRequestId: `p${++requestCount}`, functionName: 'provision', getRemainingTimeInMillis: () => 10_000 } as unknown as Context
    const response = (await handler(apiEvent(JSON.stringify(body)), context)) as APIGatewayProxyStructuredResultV2
    return response.statusCode ?? 0
  }
  const statuses = [await send({ device: 'ws_kit1', fleet: 'workshop', claim: LOCAL_WORKSHOP_CLAIM_SECRET })]

  // ws_kit2: a provisioning that made everything but its record, then lost its answer.
  // Created as the function creates it: marked with its fleet in the description.
  await admin('POST', `users/${USERNAME}/devices`, { device: 'ws_kit2', type: 'Generic', credentials: 'interrupted-1', description: markDescription('Workshop kit', 'workshop') })
  await admin('POST', `v3/users/${USERNAME}/devices/ws_kit2/properties`, { property: 'firmware_channel', value: 'beta' })
  await admin('POST', `users/${USERNAME}/buckets`, {
    bucket: 'ws_kit2_data', name: 'x', enabled: true, config: { source: 'device', device: 'ws_kit2', resource: 'data', update: 'interval', interval: 60 },
  })
  await admin('POST', `users/${USERNAME}/dashboards/workshop_template/clone`, { dashboard: 'ws_kit2_dash', name: 'x', description: dashboardDescription('ws_kit2') })
  statuses.push(await send({ device: 'ws_kit2', fleet: 'workshop', claim: LOCAL_WORKSHOP_CLAIM_SECRET }))

  const now = Math.floor(Date.now() / 1000)
  for (const timestamp of [now, now + 30, now + 60]) statuses.push(await send(signedBody('dev_policy1', { timestamp })))
  return statuses
}

describe('Policy: the token permissions token-policy prints for the local fleets', () => {
  it('lets every kind of provisioning succeed with exactly those actions', async () => {
    // Act
    const statuses = await runScenario(tokenWithout('none'))

    // Assess
    expect(statuses).toEqual(SUCCESS)
    expect(emulator.calls().filter((call) => call.status === 401 || call.status === 403)).toEqual([])
  })

  it.each(POLICY_ACTIONS)('fails some provisioning when the token lacks %s', async (removed) => {
    // Act
    const statuses = await runScenario(tokenWithout(removed))

    // Assess
    expect(statuses).not.toEqual(SUCCESS)
    expect(emulator.calls().some((call) => call.status === 403)).toBe(true)
  })
})
