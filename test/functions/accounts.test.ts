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

  it('refuses a device ID revoked in a fleet of the same account only, and lets a broken deny list fail only its own account', async () => {
    // Prepare: three fleets whose IDs overlap, two on account acme (instance a), one on customer_b (instance b)
    const overlapping = `version: 1
fleets:
  own:
    proof: [claim]
    claimParam: /acme/own/claim
    devicePattern: 'dev_[a-z0-9]{4}'
    reprovision: rotate
  sibling:
    proof: [claim]
    claimParam: /acme/sibling/claim
    devicePattern: 'dev_[a-z0-9]{4}'
  customer:
    proof: [claim]
    claimParam: /acme/customer/claim
    devicePattern: 'dev_[a-z0-9]{4}'
    reprovision: rotate
    thinger:
      apiUrl: '${b.url}'
      username: customer_b
      tokenParam: /acme/customer/thinger-token
`
    const secrets = { '/thinger-provisioner/dev/thinger-token': 'token-a', '/acme/customer/thinger-token': 'token-b', '/acme/own/claim': CLAIM, '/acme/sibling/claim': CLAIM, '/acme/customer/claim': CLAIM }
    const list = (devices: string[]) => JSON.stringify({ version: 1, devices, retiredKeyVersions: [] })
    const output: string[] = []
    const keep = (chunk: string | Uint8Array) => {
      output.push(String(chunk))
      return true
    }
    vi.mocked(process.stdout.write).mockImplementation(keep)
    vi.spyOn(process.stderr, 'write').mockImplementation(keep)
    const handlerWith = (denyLists: Record<string, string>) =>
      createProvisionHandler({ env: { THINGER_API_URL: a.url, THINGER_USERNAME: 'acme' }, fleets: parseFleets(overlapping), ssmClient: ssmHolding({ ...secrets, ...denyLists }).client })
    const send = async (handler: ReturnType<typeof createProvisionHandler>, device: string, fleet: string) => {
      const context = { awsRequestId: `${fleet}-${device}`, functionName: 'provision', getRemainingTimeInMillis: () => 10_000 } as unknown as Context
      const response = (await handler(apiEvent(JSON.stringify({ device, fleet, claim: CLAIM })), context)) as APIGatewayProxyStructuredResultV2
      return [response.statusCode, JSON.parse(response.body as string).error?.code]
    }
    const revoked = handlerWith({ '/acme/customer/customer-deny-list': list(['dev_cust']), '/acme/sibling/sibling-deny-list': list(['dev_sibl']) })
    const customerListBroken = handlerWith({ '/acme/customer/customer-deny-list': '{"version":1,"devices":["dev_cust"' })
    const siblingListBroken = handlerWith({ '/acme/sibling/sibling-deny-list': 'not json' })

    // Act
    const answers = {
      revokedInOtherAccount: await send(revoked, 'dev_cust', 'own'),
      revokedInOwnAccount: await send(revoked, 'dev_sibl', 'own'),
      revokedThere: await send(revoked, 'dev_cust', 'customer'),
      otherAccountsListBroken: await send(customerListBroken, 'dev_ok01', 'own'),
      ownListBroken: await send(customerListBroken, 'dev_ok02', 'customer'),
      siblingsListBroken: await send(siblingListBroken, 'dev_ok03', 'own'),
      siblingsListBrokenOtherAccount: await send(siblingListBroken, 'dev_ok04', 'customer'),
    }

    // Assess
    expect(answers).toEqual({
      revokedInOtherAccount: [201, undefined],
      revokedInOwnAccount: [403, 'device_revoked'],
      revokedThere: [403, 'device_revoked'],
      otherAccountsListBroken: [201, undefined],
      ownListBroken: [500, 'internal_error'],
      siblingsListBroken: [500, 'internal_error'],
      siblingsListBrokenOtherAccount: [201, undefined],
    })
    const lines = output.join('').split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line))
    expect(lines.filter((line) => line.code === 'internal_error' && line.message === 'provision').map((line) => [line.fleet, line.detail])).toEqual([
      ['customer', expect.stringContaining('setting fleets.customer.denyListParam: the deny list is not JSON')],
      ['own', expect.stringContaining('setting fleets.sibling.denyListParam: the deny list is not JSON')],
    ])
    // What the internal-errors alarm counts (deploy/monitoring.cjs): Requests with outcome failed and code internal_error.
    expect(lines.filter((line) => line._aws && line.outcome === 'failed' && line.code === 'internal_error' && line.Requests === 1)).toHaveLength(2)
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
