import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const run = promisify(execFile)
const osls = createRequire(import.meta.url).resolve('osls/bin/serverless.js')
const MAX_BUNDLE_BYTES = 150 * 1024

interface Statement {
  Effect: string
  Action: string[]
  Resource: unknown[]
  Condition?: Record<string, Record<string, unknown>>
}

/** `npx osls package` as an operator runs it before deploying: no AWS credentials, no network. */
async function packageService(outDir: string, env: Record<string, string>): Promise<{ template: any }> {
  const { AWS_ACCESS_KEY_ID: _a, AWS_SECRET_ACCESS_KEY: _s, AWS_PROFILE: _p, AWS_SESSION_TOKEN: _t, THINGER_USERNAME: _u, ...clean } = process.env
  await run(process.execPath, [osls, 'package', '--stage', 'prod', '--region', 'eu-west-1', '--package', outDir], {
    cwd: process.cwd(),
    env: { ...clean, AWS_SHARED_CREDENTIALS_FILE: '/nonexistent', AWS_CONFIG_FILE: '/nonexistent', SLS_TELEMETRY_DISABLED: '1', ESBUILD_WORK_FOLDER: `${outDir}-build`.replace(`${tmpdir()}/`, '.esbuild/'), ...env },
    timeout: 120_000,
  })
  return { template: JSON.parse(readFileSync(join(outDir, 'cloudformation-template-update-stack.json'), 'utf8')) }
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

  it('grants SSM reads on exactly the token, the fleet key and the deny list, and nothing else on SSM', () => {
    // Act
    const ssmStatements = statements.filter((s) => s.Action.some((a) => a.startsWith('ssm:')))

    // Assess
    expect(ssmStatements).toHaveLength(1)
    expect(ssmStatements[0]!.Action.sort()).toEqual(['ssm:GetParameter', 'ssm:GetParameters'])
    const arns = ssmStatements[0]!.Resource.map((r) => JSON.stringify(r))
    expect(arns).toHaveLength(3)
    expect(arns[0]).toContain('":parameter","/acme/thinger-token"')
    expect(arns[1]).toContain('":parameter","/acme/fleet-key"')
    expect(arns[2]).toContain('":parameter","/acme/default-deny-list"')
    expect(arns.join()).not.toContain('*')
  })

  it('allows kms:Decrypt only through SSM in the stack’s region', () => {
    // Act
    const kms = statements.filter((s) => s.Action.some((a) => a.startsWith('kms:')))

    // Assess
    expect(kms).toHaveLength(1)
    expect(kms[0]!.Action).toEqual(['kms:Decrypt'])
    expect(kms[0]!.Condition).toEqual({ StringEquals: { 'kms:ViaService': 'ssm.eu-west-1.amazonaws.com' } })
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
    const { stdout: bundle } = await run('unzip', ['-p', join(other, 'thinger-provisioner.zip'), 'functions/provision.mjs'], { maxBuffer: 10_000_000 })

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
    ])
    expect(bundle).toContain('workshop_template')
    // The factory fleet's CA (local/x509/ca.pem) is compiled in: the function reads no file at run time.
    expect(bundle).toContain('MIIB8TCCAZegAwIBAgIBATAKBggqhkjOPQQDAjBO')
  }, 120_000)

  it('fails to package when the fleets file is wrong, naming the fleet and the field', async () => {
    // Prepare
    const other = mkdtempSync(join(tmpdir(), 'thinger-provisioner-package-'))
    const fleetsFile = join(other, 'fleets.yml')
    writeFileSync(fleetsFile, 'version: 1\nfleets:\n  sensors:\n    proof: [hmac]\n    keyParam: /k\n    profile:\n      bucket: { id: "{device}_data", resource: data, update: hourly }\n')

    // Act
    const failure = await packageService(join(other, 'out'), { THINGER_USERNAME: 'acme', FLEETS_FILE: fleetsFile }).then(
      () => undefined,
      (error: { stdout?: string; stderr?: string }) => `${error.stdout}${error.stderr}`,
    )

    // Assess
    rmSync(other, { recursive: true, force: true })
    expect(failure).toContain('fleet "sensors", field profile.bucket.update: must be one of interval, events')
  }, 120_000)

  it('fails to package, naming the setting, when THINGER_USERNAME is missing', async () => {
    // Prepare
    const other = mkdtempSync(join(tmpdir(), 'thinger-provisioner-package-'))

    // Act
    const failure = await packageService(other, {}).then(
      () => undefined,
      (error: { stdout?: string; stderr?: string }) => `${error.stdout}${error.stderr}`,
    )

    // Assess
    rmSync(other, { recursive: true, force: true })
    expect(failure).toContain('THINGER_USERNAME')
  }, 120_000)
})
