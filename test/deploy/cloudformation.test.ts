import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { packageService, readBundle } from '../support/package.js'

const run = promisify(execFile)
const MAX_BUNDLE_BYTES = 150 * 1024

interface Statement {
  Effect: string
  Action: string[]
  Resource: unknown[]
  Condition?: Record<string, Record<string, unknown>>
}

describe('Deployment: osls package', () => {
  let outDir: string
  let template: any
  let statements: Statement[]

  beforeAll(async () => {
    outDir = mkdtempSync(join(tmpdir(), 'thinger-provisioner-package-'))
    ;({ template } = await packageService(outDir, { THINGER_USERNAME: 'acme', THINGER_TOKEN_PARAM: '/acme/thinger-token', FLEET_KEY_PARAM: '/acme/fleet-key' }))
    statements = template.Resources.IamRoleLambdaExecution.Properties.Policies[0].PolicyDocument.Statement
  }, 120_000)

  afterAll(() => {
    rmSync(outDir, { recursive: true, force: true })
  })

  it('grants SSM reads (one batched GetParameters) on exactly the token, the fleet key, the deny list and the answer key, and nothing else on SSM', () => {
    // Act
    const ssmStatements = statements.filter((s) => s.Action.some((a) => a.startsWith('ssm:')))

    // Assess
    expect(ssmStatements).toHaveLength(1)
    expect(ssmStatements[0]!.Action).toEqual(['ssm:GetParameters'])
    const arns = ssmStatements[0]!.Resource.map((r) => JSON.stringify(r))
    expect(arns).toHaveLength(4)
    expect(arns[0]).toContain('":parameter","/acme/thinger-token"')
    expect(arns[1]).toContain('":parameter","/acme/fleet-key"')
    expect(arns[2]).toContain('":parameter","/acme/default-deny-list"')
    // The stage's answer key (ANSWER_KEY_PARAM unset: its default), a SecureString like the others.
    expect(arns[3]).toContain('":parameter","/thinger-provisioner/prod/answer-key"')
    expect(arns.join()).not.toContain('*')
  })

  it('allows kms:Decrypt only through SSM in the stack’s own region, and only for those parameters', () => {
    // Act
    const kms = statements.filter((s) => s.Action.some((a) => a.startsWith('kms:')))
    const ssm = statements.find((s) => s.Action.includes('ssm:GetParameters'))!

    // Assess
    expect(kms).toHaveLength(1)
    expect(kms[0]!.Action).toEqual(['kms:Decrypt'])
    expect(kms[0]!.Condition).toEqual({
      StringEquals: {
        'kms:ViaService': { 'Fn::Join': ['', ['ssm.', { Ref: 'AWS::Region' }, '.', { Ref: 'AWS::URLSuffix' }]] },
        'kms:EncryptionContext:PARAMETER_ARN': ssm.Resource,
      },
    })
  })

  it('grants nothing beyond logs, SSM and KMS', () => {
    // Act
    const services = new Set(statements.flatMap((s) => s.Action.map((a) => a.split(':')[0])))

    // Assess
    expect([...services].sort()).toEqual(['kms', 'logs', 'ssm'])
  })

  it('runs on nodejs22.x, arm64, with a timeout well under API Gateway’s 30 s, and no secret in its configuration', () => {
    // Act
    const fn = template.Resources.ProvisionLambdaFunction.Properties

    // Assess
    expect(fn.Runtime).toBe('nodejs22.x')
    expect(fn.Architectures).toEqual(['arm64'])
    expect(fn.Timeout).toBeLessThanOrEqual(15)
    expect(fn.Environment.Variables).toMatchObject({ THINGER_USERNAME: 'acme', THINGER_TOKEN_PARAM: '/acme/thinger-token', FLEET_KEY_PARAM: '/acme/fleet-key' })
    expect(Object.keys(fn.Environment.Variables).filter((k) => /TOKEN$|KEY$|SECRET/.test(k))).toEqual([])
  })

  it('routes POST /v1/provision through an HTTP API', () => {
    // Act
    const routes = Object.values(template.Resources).filter((r: any) => r.Type === 'AWS::ApiGatewayV2::Route') as any[]

    // Assess
    expect(routes.map((r) => r.Properties.RouteKey)).toEqual(['POST /v1/provision'])
  })

  it('ships a minified bundle under 150 KB without the AWS SDK', async () => {
    // Prepare
    const { stdout } = await run('unzip', ['-l', join(outDir, 'thinger-provisioner.zip')])

    // Act
    const files = stdout.split('\n').filter((line) => /\d{4}-\d\d-\d\d|\d\d-\d\d-\d{4}/.test(line)).map((line) => line.trim().split(/\s+/))
    const bundle = files.find((parts) => parts.at(-1) === 'functions/provision.mjs')

    // Assess
    expect(bundle).toBeDefined()
    expect(Number(bundle![0])).toBeLessThan(MAX_BUNDLE_BYTES)
    expect(files.map((parts) => parts.at(-1))).toEqual(['functions/provision.mjs'])
  })

  it('throttles the HTTP API at 100 requests per second with bursts of 200, and reserves no concurrency, by default', () => {
    // Act
    const stage = template.Resources.HttpApiStage.Properties
    const fn = template.Resources.ProvisionLambdaFunction.Properties

    // Assess
    expect(stage.DefaultRouteSettings).toEqual({ ThrottlingBurstLimit: 200, ThrottlingRateLimit: 100 })
    expect(fn.ReservedConcurrentExecutions).toBeUndefined()
  })

  it('takes reserved concurrency and throttling from the environment', async () => {
    // Prepare
    const other = mkdtempSync(join(tmpdir(), 'thinger-provisioner-package-'))

    // Act
    const { template: tuned } = await packageService(other, { THINGER_USERNAME: 'acme', RESERVED_CONCURRENCY: '25', API_RATE_LIMIT: '40', API_BURST_LIMIT: '80' })

    // Assess
    rmSync(other, { recursive: true, force: true })
    expect(Number(tuned.Resources.ProvisionLambdaFunction.Properties.ReservedConcurrentExecutions)).toBe(25)
    const settings = tuned.Resources.HttpApiStage.Properties.DefaultRouteSettings
    expect([Number(settings.ThrottlingRateLimit), Number(settings.ThrottlingBurstLimit)]).toEqual([40, 80])
  }, 120_000)

  it('grants reads of every parameter a fleets file names, and compiles the fleets into the bundle', async () => {
    // Prepare
    const other = mkdtempSync(join(tmpdir(), 'thinger-provisioner-package-'))

    // Act
    const { template: withFleets } = await packageService(other, { THINGER_USERNAME: 'acme', FLEETS_FILE: 'local/fleets.yml', THINGER_TOKEN_PARAM: '/acme/thinger-token' })
    const bundle = await readBundle(other)

    // Assess
    rmSync(other, { recursive: true, force: true })
    const ssmStatement = (withFleets.Resources.IamRoleLambdaExecution.Properties.Policies[0].PolicyDocument.Statement as Statement[]).find((st) => st.Action.includes('ssm:GetParameters'))!
    const names = ssmStatement.Resource.map((r: any) => r['Fn::Join'][1].at(-1))
    expect(names.sort()).toEqual([
      '/acme/thinger-token',
      '/thinger-provisioner/local/default-deny-list',
      '/thinger-provisioner/local/factory-deny-list',
      '/thinger-provisioner/local/fleet-key',
      '/thinger-provisioner/local/workshop/claim-secret',
      '/thinger-provisioner/local/workshop/fleet-key',
      '/thinger-provisioner/local/workshop/workshop-deny-list',
      '/thinger-provisioner/prod/answer-key',
    ])
    expect(bundle).toContain('workshop_template')
    // The factory fleet's CA (local/x509/ca.pem) is compiled in: the function reads no file at run time.
    expect(bundle).toContain('MIIB8TCCAZegAwIBAgIBATAKBggqhkjOPQQDAjBO')
  }, 120_000)

  async function failureOf(env: Record<string, string>): Promise<{ code: number; output: string }> {
    const other = mkdtempSync(join(tmpdir(), 'thinger-provisioner-package-'))
    try {
      await packageService(join(other, 'out'), env)
      return { code: 0, output: '' }
    } catch (error) {
      const failed = error as { code?: number; stdout?: string; stderr?: string }
      return { code: failed.code ?? -1, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` }
    } finally {
      rmSync(other, { recursive: true, force: true })
    }
  }

  it('fails to package when the fleets file is wrong, in one line naming the file, the fleet and the field', async () => {
    // Prepare
    const other = mkdtempSync(join(tmpdir(), 'thinger-provisioner-fleets-'))
    const fleetsFile = join(other, 'fleets.yml')
    writeFileSync(fleetsFile, 'version: 1\nfleets:\n  sensors:\n    proof: [hmac]\n    keyParam: /k\n    profile:\n      bucket: { id: "{device}_data", resource: data, update: hourly }\n')

    // Act
    const failure = await failureOf({ THINGER_USERNAME: 'acme', FLEETS_FILE: fleetsFile })

    // Assess
    rmSync(other, { recursive: true, force: true })
    expect(failure.code).toBe(1)
    expect(failure.output.trim().split('\n')).toEqual([expect.stringMatching(/^✖ fleets file .*fleets\.yml is invalid: fleet "sensors", field profile\.bucket\.update: must be one of interval, events$/)])
  }, 120_000)

  it.each([
    [{}, '✖ THINGER_USERNAME is not set: set it to the Thinger.io account the devices are created in, e.g. THINGER_USERNAME=acme npx osls deploy'],
    [{ THINGER_USERNAME: 'acme corp' }, '✖ THINGER_USERNAME "acme corp" is not a Thinger.io user name: letters, digits, _ and -, at most 32'],
    [{ THINGER_USERNAME: 'acme', MONITORING: 'yes' }, '✖ MONITORING must be on or off (found "yes")'],
    [{ THINGER_USERNAME: 'acme', MONITORING: 'on', ALARM_TOPIC_ARN: 'ops' }, '✖ ALARM_TOPIC_ARN must be the ARN of an SNS topic (arn:aws:sns:<region>:<account>:<name>)'],
  ])('fails to package with %o in one line saying what to set', async (env, line) => {
    // Act
    const failure = await failureOf(env)

    // Assess
    expect(failure.code).toBe(1)
    expect(failure.output.trim()).toBe(line)
  }, 120_000)
})
