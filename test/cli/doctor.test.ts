import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { generateAnswerKey } from '../../lib/attestation/answer-signature.js'
import { loadConfig } from '../../lib/config.js'
import { requiredActionsOf } from '../../lib/thinger/policy.js'
import { LOCAL_FLEET_KEY, LOCAL_FLEETS_FILE, LOCAL_WORKSHOP_CLAIM_SECRET, LOCAL_WORKSHOP_FLEET_KEY } from '../../local/defaults.js'
import { NAMED_VARIANTS, startThingerEmulator, type ThingerEmulator } from '../../local/thinger-emulator.js'
import type { DoctorReport } from '../../cli/commands/doctor.js'
import type { DeployedFunction, DeployedPort, PolicyStatement } from '../../cli/deployed.js'
import { createRequire } from 'node:module'
import { tokensLackingEach, tokenWithout } from '../support/tokens.js'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MemorySsm, run } from './fakes.js'

const { loadFleets } = createRequire(import.meta.url)('../../deploy/fleets.cjs') as { loadFleets: (env: NodeJS.ProcessEnv) => unknown }

const USERNAME = 'acme'
const TOKEN_PARAM = '/thinger-provisioner/prod/thinger-token'
const CLEANUP_PARAM = '/thinger-provisioner/prod/operator-token'
const ANSWER_KEY_PARAM = '/thinger-provisioner/prod/answer-key'
const ANSWER_KEY = generateAnswerKey()
const ADMIN_TOKEN = 'doctor-admin-token'
const ENV_BASE = { FLEETS_FILE: LOCAL_FLEETS_FILE, STAGE: 'prod', THINGER_USERNAME: USERNAME }
const ACTIONS = requiredActionsOf(loadConfig(ENV_BASE, loadFleets(ENV_BASE)).fleets.values()).map(({ action }) => action)

let emulator: ThingerEmulator
let endpoint: Server
let endpointUrl: string

beforeAll(async () => {
  emulator = await startThingerEmulator({
    port: 0,
    accounts: [{
      username: USERNAME,
      tokens: tokensLackingEach(ACTIONS, ADMIN_TOKEN),
    }],
  })
  // Stands in for the deployed API: the function answers an unsigned request like this.
  endpoint = createServer((req, res) => {
    res.writeHead(req.url === '/v1/provision' ? 400 : 404, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ error: { code: req.url === '/v1/provision' ? 'invalid_request' : 'not_found' } }))
  })
  await new Promise<void>((resolve) => endpoint.listen(0, '127.0.0.1', resolve))
  endpointUrl = `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}`
})
afterAll(async () => {
  await emulator.close()
  await new Promise((resolve) => endpoint.close(resolve))
})
beforeEach(() => {
  emulator.reset()
  emulator.seed(USERNAME, { projects: [{ project: 'workshop', name: 'Workshop' }], dashboards: [{ dashboard: 'workshop_template', name: 'T', widgets: [] }] })
})

function ssmWith(token: string, extra: Record<string, string> = {}): MemorySsm {
  const ssm = new MemorySsm()
  const values: Record<string, string> = {
    [TOKEN_PARAM]: token,
    [ANSWER_KEY_PARAM]: ANSWER_KEY,
    '/thinger-provisioner/local/fleet-key': LOCAL_FLEET_KEY,
    '/thinger-provisioner/local/workshop/fleet-key': LOCAL_WORKSHOP_FLEET_KEY,
    '/thinger-provisioner/local/workshop/claim-secret': LOCAL_WORKSHOP_CLAIM_SECRET,
    ...extra,
  }
  for (const [name, value] of Object.entries(values)) ssm.seed(name, value)
  return ssm
}

const PARAMETERS = [
  TOKEN_PARAM,
  ANSWER_KEY_PARAM,
  '/thinger-provisioner/local/fleet-key',
  '/thinger-provisioner/local/default-deny-list',
  '/thinger-provisioner/local/workshop/fleet-key',
  '/thinger-provisioner/local/workshop/claim-secret',
  '/thinger-provisioner/local/workshop/workshop-deny-list',
  '/thinger-provisioner/local/factory-deny-list',
]

/** A packaged template whose function role may read `names`, as osls writes it. */
function templateReading(names: string[]): string {
  const file = join(mkdtempSync(join(tmpdir(), 'doctor-')), 'template.json')
  const arn = (name: string) => ({ 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':ssm:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, ':parameter', name]] })
  writeFileSync(file, JSON.stringify({
    Resources: {
      IamRoleLambdaExecution: {
        Type: 'AWS::IAM::Role',
        Properties: { Policies: [{ PolicyDocument: { Statement: [{ Effect: 'Allow', Action: ['ssm:GetParameters', 'ssm:GetParameter'], Resource: names.map(arn) }] } }] },
      },
    },
  }))
  return file
}

async function doctor(ssm: MemorySsm, ...args: string[]) {
  const result = await run(['doctor', '--json', '--endpoint', endpointUrl, '--template', templateReading(PARAMETERS), ...args], { env: { ...ENV_BASE, THINGER_API_URL: emulator.url }, ssm })
  return { ...result, report: result.stdout === '' ? undefined : (JSON.parse(result.stdout) as DoctorReport) }
}

describe.each(Object.entries(NAMED_VARIANTS))('Command: doctor against the emulator [Thinger variant %s]', (name, variant) => {
  beforeEach(() => emulator.setVariant(name))

  it('passes with exactly the token-policy actions, reports the variant, and removes its probe device', async () => {
    // Act
    const { code, report, stderr } = await doctor(ssmWith(tokenWithout('none'), { [CLEANUP_PARAM]: ADMIN_TOKEN }), '--cleanup-token-param', CLEANUP_PARAM)

    // Assess
    expect(stderr).toBe('')
    expect(code).toBe(0)
    expect(report!.checks.filter((check) => check.result === 'fail')).toEqual([])
    expect(report!.variant).toEqual({ duplicateCreateStatus: variant.duplicateCreateStatus, created: variant.created, missingDevicePropertyStatus: variant.missingDevicePropertyStatus })
    expect(report!.checks).toContainEqual(expect.objectContaining({ check: 'endpoint: answers', result: 'ok' }))
    expect(report!.checks).toContainEqual(expect.objectContaining({ check: 'probe: removed', result: 'ok' }))
    expect(emulator.devices(USERNAME)).toEqual([])
    if (variant.created === 'absent') expect(report!.checks).toContainEqual(expect.objectContaining({ check: 'variant: reject policy', result: 'warn' }))
  })

  it('warns, and says what to delete, when no token may delete the probe', async () => {
    // Act
    const { code, report } = await doctor(ssmWith(tokenWithout('none')))

    // Assess
    expect(code).toBe(0)
    expect(report!.checks).toContainEqual(expect.objectContaining({ check: 'probe: removed', result: 'warn', fix: expect.stringContaining(report!.probeDevice) }))
    expect(emulator.devices(USERNAME).map((device) => [device.device, device.enabled])).toEqual([[report!.probeDevice, false]])
  })
})

describe('Command: doctor with a token that lacks one action', () => {
  it.each(ACTIONS)('fails naming %s as the fix, and leaves no probe behind', async (removed) => {
    // Act
    const { code, report, stderr } = await doctor(ssmWith(tokenWithout(removed), { [CLEANUP_PARAM]: ADMIN_TOKEN }), '--cleanup-token-param', CLEANUP_PARAM)

    // Assess
    expect(code).toBe(1)
    expect(stderr).toContain('[checks_failed]')
    expect(report!.checks).toContainEqual(expect.objectContaining({ result: 'fail', fix: expect.stringContaining(`add ${removed} to the token`) }))
    expect(emulator.devices(USERNAME)).toEqual([])
  })
})

describe('Command: doctor, secrets and token', () => {
  it('tells an invalid token (401) from a missing permission, and a missing fleet key from a bad one', async () => {
    // Prepare
    const ssm = ssmWith('not-a-token', { '/thinger-provisioner/local/fleet-key': 'c2hvcnQ=' })
    ssm.parameters.delete('/thinger-provisioner/local/workshop/claim-secret')

    // Act
    const { code, report } = await doctor(ssm)

    // Assess
    expect(code).toBe(1)
    const byCheck = Object.fromEntries(report!.checks.map((check) => [check.check, check]))
    expect(byCheck['token: valid']).toMatchObject({ result: 'fail', detail: expect.stringContaining('401') })
    expect(byCheck['ssm: fleet "default" key v1']).toMatchObject({ result: 'fail', detail: expect.stringContaining('not a base64 key') })
    expect(byCheck['ssm: fleet "workshop" claim secret']).toMatchObject({ result: 'fail', fix: expect.stringContaining('put-parameter') })
    expect(emulator.devices(USERNAME)).toEqual([])
  })

  it('fails naming a parameter the packaged template\'s role may not read', async () => {
    // Act
    const { code, report } = await doctor(ssmWith(tokenWithout('none')), '--template', templateReading(PARAMETERS.slice(1)))

    // Assess
    expect(code).toBe(1)
    expect(report!.checks).toContainEqual(expect.objectContaining({ check: 'role: reads the parameters', result: 'fail', detail: expect.stringContaining(`may not read ${TOKEN_PARAM}`) }))
  })

  it('prints a table with the fix under each failure, and exits 2 for an unknown fleet', async () => {
    // Act
    const table = await run(['doctor', '--fleet', 'default'], { env: { ...ENV_BASE, THINGER_API_URL: emulator.url }, ssm: ssmWith(tokenWithout('ReadDeviceStatus')) })
    const unknown = await run(['doctor', '--fleet', 'nope'], { env: { ...ENV_BASE, THINGER_API_URL: emulator.url }, ssm: ssmWith('x') })

    // Assess
    expect(table.code).toBe(1)
    expect(table.stdout).toMatch(/token: ReadDeviceStatus +FAIL +refused \(403\)\n +fix: add ReadDeviceStatus to the token/)
    expect(unknown.code).toBe(2)
  })
})

describe('Command: doctor, a fleet whose CA certificates are in SSM', () => {
  const CA_PARAM = '/thinger-provisioner/prod/factory/ca'
  const DENY_PARAM = '/thinger-provisioner/prod/factory/factory-deny-list'
  const fleetsFile = join(mkdtempSync(join(tmpdir(), 'doctor-x509-')), 'fleets.yml')
  writeFileSync(fleetsFile, `version: 1\nfleets:\n  factory:\n    proof: [x509]\n    x509:\n      caParam: ${CA_PARAM}\n`)
  const caPem = readFileSync('local/x509/ca.pem', 'utf8')

  async function doctorOfFactory(ca: string | undefined, readable = [TOKEN_PARAM, ANSWER_KEY_PARAM, CA_PARAM, DENY_PARAM]) {
    const ssm = ssmWith(tokenWithout('none'), { [CLEANUP_PARAM]: ADMIN_TOKEN, ...(ca === undefined ? {} : { [CA_PARAM]: ca }) })
    const env = { STAGE: 'prod', THINGER_USERNAME: USERNAME, FLEETS_FILE: fleetsFile, THINGER_API_URL: emulator.url }
    const result = await run(['doctor', '--json', '--cleanup-token-param', CLEANUP_PARAM, '--template', templateReading(readable)], { env, ssm })
    const report = JSON.parse(result.stdout) as DoctorReport
    return { code: result.code, check: report.checks.find((check) => check.check === 'ssm: fleet "factory" CA certificates'), role: report.checks.find((check) => check.check === 'role: reads the parameters') }
  }

  it('passes with the CA certificates there, and fails, naming the fix, when they are missing or not CA certificates', async () => {
    // Act
    const present = await doctorOfFactory(caPem)
    const missing = await doctorOfFactory(undefined)
    const wrong = await doctorOfFactory('not a certificate')

    // Assess
    expect(present.code).toBe(0)
    expect(present.check).toMatchObject({ result: 'ok', detail: `${CA_PARAM}: 1 CA certificate(s)` })
    expect(missing.code).toBe(1)
    expect(missing.check).toMatchObject({ result: 'fail', detail: expect.stringContaining(`${CA_PARAM} does not exist`), fix: expect.stringContaining('ca create --fleet factory') })
    expect(wrong.code).toBe(1)
    expect(wrong.check).toMatchObject({ result: 'fail', detail: expect.stringContaining('holds no PEM certificate') })
    expect(emulator.devices(USERNAME)).toEqual([])
  })

  it('fails when the packaged template\'s role may not read the CA parameter', async () => {
    // Act
    const { code, role } = await doctorOfFactory(caPem, [TOKEN_PARAM, ANSWER_KEY_PARAM, DENY_PARAM])

    // Assess
    expect(code).toBe(1)
    expect(role).toMatchObject({ result: 'fail', detail: expect.stringContaining(`may not read ${CA_PARAM}`) })
  })
})

describe('Command: doctor, the answer key', () => {
  const answerKeyCheck = (report: DoctorReport | undefined) => report?.checks.find((check) => check.check === 'ssm: answer key')

  it('passes with a P-256 key there, showing its public half and never the key', async () => {
    // Act
    const { report, stdout } = await doctor(ssmWith(tokenWithout('none'), { [CLEANUP_PARAM]: ADMIN_TOKEN }), '--cleanup-token-param', CLEANUP_PARAM)

    // Assess
    expect(answerKeyCheck(report)).toMatchObject({ result: 'ok', detail: expect.stringMatching(new RegExp(`^${ANSWER_KEY_PARAM}: P-256, public key [A-Za-z0-9+/]{87}=$`)) })
    expect(stdout).not.toContain(ANSWER_KEY)
  })

  it.each([
    ['missing', undefined, 'does not exist: the function answers unsigned'],
    ['not a key', 'bm90IGFuIGFuc3dlciBrZXk=', 'is not the base64 of a PKCS#8 P-256 private key'],
  ])('fails when it is %s, with `answer-key create` as the fix, without quoting the value', async (_label, value, detail) => {
    // Prepare
    const ssm = ssmWith(tokenWithout('none'), { [CLEANUP_PARAM]: ADMIN_TOKEN })
    ssm.parameters.delete(ANSWER_KEY_PARAM)
    if (value !== undefined) ssm.seed(ANSWER_KEY_PARAM, value)

    // Act
    const { code, report, stdout } = await doctor(ssm, '--cleanup-token-param', CLEANUP_PARAM)

    // Assess
    expect(code).toBe(1)
    expect(answerKeyCheck(report)).toMatchObject({ result: 'fail', detail: expect.stringContaining(detail), fix: expect.stringContaining('thinger-provisioner answer-key create') })
    if (value !== undefined) expect(stdout).not.toContain(value)
  })

  it('fails when the packaged template\'s role may not read the answer key', async () => {
    // Act
    const result = await run(['doctor', '--json', '--template', templateReading(PARAMETERS.filter((name) => name !== ANSWER_KEY_PARAM)), '--cleanup-token-param', CLEANUP_PARAM], {
      env: { ...ENV_BASE, THINGER_API_URL: emulator.url },
      ssm: ssmWith(tokenWithout('none'), { [CLEANUP_PARAM]: ADMIN_TOKEN }),
    })

    // Assess
    const role = (JSON.parse(result.stdout) as DoctorReport).checks.find((check) => check.check === 'role: reads the parameters')
    expect(role).toMatchObject({ result: 'fail', detail: expect.stringContaining(`may not read ${ANSWER_KEY_PARAM}`) })
  })
})

describe('Command: doctor --deployed (the function that runs now, through Lambda and IAM)', () => {
  const ROLE_ARN = 'arn:aws:iam::123456789012:role/thinger-provisioner-prod-eu-west-1-lambdaRole'
  const reading = (names: string[]): PolicyStatement[] => [
    { Effect: 'Allow', Action: ['ssm:GetParameters'], Resource: names.map((name) => `arn:aws:ssm:eu-west-1:123456789012:parameter${name}`) },
    { Effect: 'Allow', Action: ['logs:PutLogEvents'], Resource: 'arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/x:*' },
  ]

  /** A deployed function with the shell's settings and a role that reads every parameter, unless `overrides` say otherwise; `asked` collects the names doctor looked up. */
  function deployedPort(overrides: Partial<DeployedFunction> | 'absent' | Error = {}, asked: string[] = []): () => DeployedPort {
    return () => ({
      async describe(name) {
        asked.push(name)
        if (overrides === 'absent') return undefined
        if (overrides instanceof Error) throw overrides
        return { environment: { STAGE: 'prod', THINGER_USERNAME: USERNAME, THINGER_API_URL: emulator.url, SEALING: 'optional' }, roleArn: ROLE_ARN, statements: reading(PARAMETERS), attachedPolicies: [], ...overrides }
      },
    })
  }

  async function doctorDeployed(port: () => DeployedPort, env: Record<string, string> = {}, ...args: string[]) {
    const result = await run(['doctor', '--json', '--endpoint', endpointUrl, '--template', templateReading(PARAMETERS), '--deployed', ...args], {
      env: { ...ENV_BASE, THINGER_API_URL: emulator.url, AWS_REGION: 'eu-west-1', ...env },
      ssm: ssmWith(tokenWithout('none'), { [CLEANUP_PARAM]: ADMIN_TOKEN }),
      overrides: { deployed: port },
    })
    const report = result.stdout === '' ? undefined : (JSON.parse(result.stdout) as DoctorReport)
    return { ...result, rows: report?.checks.filter((check) => check.check.startsWith('deployed:')) ?? [] }
  }

  it('passes when the function runs with this shell’s settings and its role reads every parameter; it looks up the stage’s function', async () => {
    // Prepare
    const asked: string[] = []

    // Act
    const { code, rows } = await doctorDeployed(deployedPort({}, asked), {}, '--cleanup-token-param', CLEANUP_PARAM)

    // Assess
    expect(code).toBe(0)
    expect(asked).toEqual(['thinger-provisioner-prod-provision'])
    expect(rows.map(({ check, result }) => [check, result])).toEqual([
      ['deployed: function', 'ok'],
      ['deployed: settings', 'ok'],
      ['deployed: role reads the parameters', 'ok'],
    ])
    expect(rows[0]!.detail).toBe(`thinger-provisioner-prod-provision in eu-west-1, role ${ROLE_ARN}`)
    expect(rows[1]!.detail).toBe('the function runs with the 2 setting(s) of this shell')
  })

  it('fails naming each setting of this shell the running function does not have, both values shown', async () => {
    // Act
    const { code, rows, stderr } = await doctorDeployed(deployedPort(), { SEALING: 'required', CLOCK_SKEW_SECONDS: '120', LOG_LEVEL: 'DEBUG' })

    // Assess
    expect(code).toBe(1)
    expect(stderr).toContain('[checks_failed]')
    expect(rows.find((row) => row.check === 'deployed: settings')).toEqual({
      check: 'deployed: settings',
      result: 'fail',
      detail: 'SEALING: this shell "required", the function "optional"; CLOCK_SKEW_SECONDS: this shell "120", the function ""; LOG_LEVEL: this shell "DEBUG", the function ""',
      fix: 'settings reach the function only by a deploy: npx osls deploy --stage prod with these settings (or run doctor with the deployed ones)',
    })
  })

  it('fails naming the parameters the running function’s role may not read, even when the packaged template may', async () => {
    // Act
    const { code, rows } = await doctorDeployed(deployedPort({ statements: reading(PARAMETERS.filter((name) => !name.includes('claim-secret'))), attachedPolicies: ['ReadOnlyAccess'] }))

    // Assess
    expect(code).toBe(1)
    expect(rows.find((row) => row.check === 'deployed: role reads the parameters')).toMatchObject({
      result: 'fail',
      detail: "the running function's role may not read /thinger-provisioner/local/workshop/claim-secret (managed policies ReadOnlyAccess not read)",
    })
  })

  it.each([
    ['not deployed', 'absent' as const, 'no function thinger-provisioner-prod-provision in eu-west-1', 'deploy it (npx osls deploy --stage prod)'],
    ['unreadable without credentials', new Error('no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY'), 'no AWS credentials', 'lambda:GetFunctionConfiguration'],
  ])('fails with one row and its fix when the function is %s', async (_label, state, detail, fix) => {
    // Act
    const { code, rows } = await doctorDeployed(deployedPort(state))

    // Assess
    expect(code).toBe(1)
    expect(rows).toEqual([{ check: 'deployed: function', result: 'fail', detail: expect.stringContaining(detail), fix: expect.stringContaining(fix) }])
  })

  it('looks up the function --deployed names, and leaves the deployed checks out without the option', async () => {
    // Prepare
    const asked: string[] = []

    // Act
    await doctorDeployed(deployedPort({}, asked), {}, 'my-provisioner-fn')
    const without = await run(['doctor', '--json', '--endpoint', endpointUrl, '--template', templateReading(PARAMETERS)], { env: { ...ENV_BASE, THINGER_API_URL: emulator.url }, ssm: ssmWith(tokenWithout('none')), overrides: { deployed: deployedPort({}, asked) } })

    // Assess
    expect(asked).toEqual(['my-provisioner-fn'])
    expect((JSON.parse(without.stdout) as DoctorReport).checks.filter((check) => check.check.startsWith('deployed:'))).toEqual([])
  })
})
