import { createRequire } from 'node:module'
import { GetParametersCommand } from '@aws-sdk/client-ssm'
import type { APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createProvisionHandler } from '../../functions/provision.js'
import { startThingerEmulator, type ThingerEmulator } from '../../local/thinger-emulator.js'
import { apiEvent } from '../support/lambda.js'
import { ssmHolding } from '../support/ssm.js'
import { MemorySsm, run } from '../cli/fakes.js'
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const { parseFleets, parameterNames } = createRequire(import.meta.url)('../../deploy/fleets.cjs') as {
  parseFleets: (text: string) => unknown
  parameterNames: (fleets: unknown, tokenParam: string, envFleet: unknown) => string[]
}

const CLAIM = 'accounts-test-claim-secret'
// {{B}} is the second instance's URL, known once it listens.
const FLEETS_YML = `version: 1
fleets:
  own:
    proof: [claim]
    claimParam: /acme/own/claim
    devicePattern: 'own_[a-z0-9]{4}'
  customer:
    proof: [claim]
    claimParam: /acme/customer/claim
    devicePattern: 'cus_[a-z0-9]{4}'
    reprovision: rotate
    thinger:
      apiUrl: '{{B}}'
      username: customer_b
      tokenParam: /acme/customer/thinger-token
`

let a: ThingerEmulator
let b: ThingerEmulator
let fleetsText: string

beforeAll(async () => {
  a = await startThingerEmulator({ port: 0, accounts: [{ username: 'acme', tokens: [{ token: 'token-a' }] }] })
  b = await startThingerEmulator({ port: 0, accounts: [{ username: 'customer_b', tokens: [{ token: 'token-b' }] }] })
  fleetsText = FLEETS_YML.replace('{{B}}', b.url)
  vi.spyOn(process.stdout, 'write').mockImplementation(() => true)
})
afterAll(async () => {
  vi.restoreAllMocks()
  await a.close()
  await b.close()
})

describe('Function: provision handler, fleets on several Thinger.io accounts', () => {
  it('creates each device in its fleet\'s account with one Thinger call, reading every token in one SSM call', async () => {
    // Prepare
    const ssm = ssmHolding({
      '/thinger-provisioner/dev/thinger-token': 'token-a',
      '/acme/customer/thinger-token': 'token-b',
      '/acme/own/claim': CLAIM,
      '/acme/customer/claim': CLAIM,
    })
    const handler = createProvisionHandler({ env: { THINGER_API_URL: a.url, THINGER_USERNAME: 'acme' }, fleets: parseFleets(fleetsText), ssmClient: ssm.client })
    const send = async (device: string, fleet: string) => {
      const context = { awsRequestId: device, functionName: 'provision', getRemainingTimeInMillis: () => 10_000 } as unknown as Context
      const response = (await handler(apiEvent(JSON.stringify({ device, fleet, claim: CLAIM })), context)) as APIGatewayProxyStructuredResultV2
      return { status: response.statusCode, json: JSON.parse(response.body as string) }
    }

    // Act
    const own = await send('own_0001', 'own')
    const customer = await send('cus_0001', 'customer')

    // Assess
    expect(own).toMatchObject({ status: 201, json: { username: 'acme', host: new URL(a.url).host } })
    expect(customer).toMatchObject({ status: 201, json: { username: 'customer_b', host: new URL(b.url).host } })
    expect(a.devices('acme').map((d) => d.device)).toEqual(['own_0001'])
    expect(b.devices('customer_b').map((d) => d.device)).toEqual(['cus_0001'])
    expect(b.checkLogin('customer_b', 'cus_0001', customer.json.credential)).toEqual({ ok: true })
    expect(b.calls().map((c) => `${c.method} ${c.path}`)).toEqual(['POST /v1/users/customer_b/devices'])
    const reads = ssm.mock.commandCalls(GetParametersCommand)
    expect(reads).toHaveLength(1)
    expect(reads[0]!.args[0].input.Names).toEqual(expect.arrayContaining(['/thinger-provisioner/dev/thinger-token', '/acme/customer/thinger-token']))
  })

  it('lets the function\'s IAM policy read exactly the tokens the fleets use', () => {
    // Act
    const names = parameterNames(parseFleets(fleetsText), '/thinger-provisioner/dev/thinger-token', undefined)

    // Assess
    expect(names).toEqual(expect.arrayContaining(['/thinger-provisioner/dev/thinger-token', '/acme/customer/thinger-token']))
    expect(parameterNames(parseFleets(fleetsText.replace(/ {2}own:[\s\S]*?(?= {2}customer:)/, '')), '/thinger-provisioner/dev/thinger-token', undefined))
      .not.toContain('/thinger-provisioner/dev/thinger-token')
  })

  it('refuses an unknown field in a fleet\'s thinger target when the fleets file is read', () => {
    // Act & Assess
    expect(() => parseFleets(fleetsText.replace('username: customer_b', 'username: customer_b\n      token: oops'))).toThrow(/thinger/)
  })

  it('points status and token-policy at the fleet\'s own account', async () => {
    // Prepare
    const dir = mkdtempSync(join(tmpdir(), 'accounts-'))
    const file = join(dir, 'fleets.yml')
    writeFileSync(file, fleetsText)
    const ssm = new MemorySsm()
    ssm.seed('/acme/customer/thinger-token', 'token-b')
    const env = { FLEETS_FILE: file, STAGE: 'dev', THINGER_USERNAME: 'acme', THINGER_API_URL: a.url }
    const { ThingerClient } = await import('../../lib/thinger/client.js')

    try {
      // Act
      const status = await run(['status', '--fleet', 'customer', '--device', 'cus_0001', '--json'], { env, ssm, overrides: { thinger: (options) => new ThingerClient(options) } })
      const policy = await run(['token-policy', '--json'], { env, ssm })

      // Assess
      expect(status.stderr).toBe('')
      expect(JSON.parse(status.stdout).thinger).toMatchObject({ device: 'cus_0001', type: 'Generic' })
      const targets = JSON.parse(policy.stdout) as Array<{ username: string; tokenParam: string; fleets: string[] }>
      expect(targets.map((target) => [target.username, target.tokenParam, target.fleets])).toEqual([
        ['acme', '/thinger-provisioner/dev/thinger-token', ['own']],
        ['customer_b', '/acme/customer/thinger-token', ['customer']],
      ])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
