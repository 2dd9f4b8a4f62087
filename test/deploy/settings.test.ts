import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Context } from 'aws-lambda'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createProvisionHandler } from '../../functions/provision.js'
import { loadConfig } from '../../lib/config.js'
import { apiEvent } from '../support/lambda.js'
import { captureProcessOutput } from '../support/output.js'
import { PACKAGE_TIMEOUT_MS, packageService, readBundle } from '../support/package.js'

interface Packaged {
  template: any
  bundle: string
}

/** The names in the first column of README.md's settings table. */
function documentedSettings(): string[] {
  const readme = readFileSync('README.md', 'utf8')
  const section = readme.slice(readme.indexOf('\n## Settings'), readme.indexOf('\n## ', readme.indexOf('\n## Settings') + 1))
  return [...section.matchAll(/^\| `([A-Z0-9_]+)` \|/gm)].map((match) => match[1]!)
}

const functionEnvironment = (packaged: Packaged): Record<string, string> => packaged.template.Resources.ProvisionLambdaFunction.Properties.Environment.Variables
const resourcesOfType = (packaged: Packaged, type: string): any[] => Object.values(packaged.template.Resources).filter((r: any) => r.Type === type)

// A value for every documented setting that nothing else in the template or bundle could produce.
// A setting missing here fails the test: document a setting, and say here where it must arrive.
const DISTINCTIVE: Record<string, string> = {
  THINGER_API_URL: 'https://settings-check-7q.example.net',
  THINGER_USERNAME: 'settings_user_7q',
  THINGER_DEVICE_HOST: 'devices-7q.example.net:25204',
  THINGER_TOKEN_PARAM: '/settings-7q/thinger-token',
  FLEETS_FILE: 'packaged separately below',
  FLEET_KEY_PARAM: '/settings-7q/keys/fleet-key',
  FLEET_KEY_VERSIONS: '2,5',
  DENY_LIST_PARAM: '/settings-7q/deny/revoked',
  ANSWER_KEY_PARAM: '/settings-7q/answers/signing-key',
  DEVICE_ID_PATTERN: 'gh7q_[0-9a-f]{12}',
  REPLAY_PROTECTION: 'off',
  SEALING: 'required',
  CLOCK_SKEW_SECONDS: '421',
  SSM_CACHE_SECONDS: '77',
  THINGER_TIMEOUT_MS: '4321',
  LOG_LEVEL: 'DEBUG',
  API_RATE_LIMIT: '37',
  API_BURST_LIMIT: '73',
  RESERVED_CONCURRENCY: '13',
  MONITORING: 'on',
  ALARM_TOPIC_ARN: 'arn:aws:sns:eu-west-1:123456789012:ops-7q',
  ALARM_EMAIL: 'ops-7q@example.net',
  API_ACCESS_LOGS: 'on',
}
// Settings that cannot share the first package with the others: packaged together in a second one.
const SECOND_PACKAGE = ['FLEETS_FILE', 'ALARM_EMAIL']

// Where a setting arrives when not as the function's environment variable of the same name.
const ARRIVES: Record<string, (packaged: Packaged, value: string) => void> = {
  LOG_LEVEL: (p, value) => expect(functionEnvironment(p).POWERTOOLS_LOG_LEVEL).toBe(value),
  API_RATE_LIMIT: (p, value) => expect(String(p.template.Resources.HttpApiStage.Properties.DefaultRouteSettings.ThrottlingRateLimit)).toBe(value),
  API_BURST_LIMIT: (p, value) => expect(String(p.template.Resources.HttpApiStage.Properties.DefaultRouteSettings.ThrottlingBurstLimit)).toBe(value),
  RESERVED_CONCURRENCY: (p, value) => expect(String(p.template.Resources.ProvisionLambdaFunction.Properties.ReservedConcurrentExecutions)).toBe(value),
  MONITORING: (p) => expect(resourcesOfType(p, 'AWS::CloudWatch::Alarm').length).toBeGreaterThanOrEqual(7),
  ALARM_TOPIC_ARN: (p, value) => {
    expect(resourcesOfType(p, 'AWS::SNS::Topic')).toEqual([])
    for (const alarm of resourcesOfType(p, 'AWS::CloudWatch::Alarm')) expect(alarm.Properties.AlarmActions).toEqual([value])
  },
  ALARM_EMAIL: (p, value) => expect(resourcesOfType(p, 'AWS::SNS::Subscription').map((r) => r.Properties)).toEqual([{ TopicArn: { Ref: 'AlarmTopic' }, Protocol: 'email', Endpoint: value }]),
  API_ACCESS_LOGS: (p) => expect(JSON.parse(p.template.Resources.HttpApiStage.Properties.AccessLogSettings.Format)).toMatchObject({ requestId: '$context.requestId', status: '$context.status' }),
}

describe('Deployment: every setting of the README reaches the deployed function', () => {
  const outDirs: string[] = []
  let packaged: Packaged
  let secondPackage: Packaged
  const fleetsDir = mkdtempSync(join(tmpdir(), 'thinger-provisioner-settings-'))

  async function packageWith(env: Record<string, string>): Promise<Packaged> {
    const outDir = mkdtempSync(join(tmpdir(), 'thinger-provisioner-settings-'))
    outDirs.push(outDir)
    const { template } = await packageService(outDir, env)
    return { template, bundle: await readBundle(outDir) }
  }

  beforeAll(async () => {
    const fleetsFile = join(fleetsDir, 'fleets.yml')
    writeFileSync(fleetsFile, 'version: 1\nfleets:\n  orchard7q:\n    proof: [hmac]\n    keyParam: /settings-7q/orchard/fleet-key\n')
    const first = Object.fromEntries(Object.entries(DISTINCTIVE).filter(([name]) => !SECOND_PACKAGE.includes(name)))
    packaged = await packageWith(first)
    secondPackage = await packageWith({ THINGER_USERNAME: DISTINCTIVE.THINGER_USERNAME!, MONITORING: 'on', ALARM_EMAIL: DISTINCTIVE.ALARM_EMAIL!, FLEETS_FILE: fleetsFile })
  }, PACKAGE_TIMEOUT_MS)

  afterAll(() => {
    for (const dir of [...outDirs, fleetsDir]) rmSync(dir, { recursive: true, force: true })
  })

  it('knows a distinctive value for each setting the README documents', () => {
    // Act
    const documented = documentedSettings()

    // Assess
    expect(documented.length).toBeGreaterThanOrEqual(21)
    expect(documented.filter((name) => !(name in DISTINCTIVE))).toEqual([])
  })

  it.each(documentedSettings().filter((name) => name !== 'FLEETS_FILE'))('%s arrives in the packaged template', (name) => {
    // Act
    const value = DISTINCTIVE[name]!
    const where = SECOND_PACKAGE.includes(name) ? secondPackage : packaged

    // Assess
    if (ARRIVES[name]) ARRIVES[name](where, value)
    else expect(functionEnvironment(where)[name]).toBe(value)
  })

  it('FLEETS_FILE arrives compiled into the bundle', () => {
    // Assess
    expect(secondPackage.bundle).toContain('orchard7q')
    expect(secondPackage.bundle).toContain('/settings-7q/orchard/fleet-key')
    expect(packaged.bundle).not.toContain('orchard7q')
  })

  it('the function reads the settings-defined fleet from its packaged environment as the operator set it', () => {
    // Act
    const config = loadConfig(functionEnvironment(packaged), null)

    // Assess
    const fleet = config.fleets.get('default')!
    expect(fleet).toMatchObject({
      keyParam: DISTINCTIVE.FLEET_KEY_PARAM,
      keyVersions: [2, 5],
      denyListParam: DISTINCTIVE.DENY_LIST_PARAM,
      replayProtection: false,
      sealing: 'required',
    })
    expect(fleet.devicePattern.test('gh7q_0123456789ab')).toBe(true)
    expect(config).toMatchObject({
      thingerApiUrl: DISTINCTIVE.THINGER_API_URL,
      thingerUsername: DISTINCTIVE.THINGER_USERNAME,
      thingerDeviceHost: DISTINCTIVE.THINGER_DEVICE_HOST,
      thingerTokenParam: DISTINCTIVE.THINGER_TOKEN_PARAM,
      answerKeyParam: DISTINCTIVE.ANSWER_KEY_PARAM,
      clockSkewSeconds: 421,
      ssmCacheSeconds: 77,
      thingerTimeoutMs: 4321,
    })
  })

  it('the alarms watch the metrics the packaged function writes: its namespace, its dimensions, its stage', async () => {
    // Prepare: the function as deployed, from its packaged environment; a request it refuses
    // before reading SSM still writes its metric line.
    const output: string[] = []
    captureProcessOutput(output)
    const handler = createProvisionHandler({ env: functionEnvironment(packaged) })

    // Act
    await handler(apiEvent('{"device":'), { awsRequestId: 'r1', getRemainingTimeInMillis: () => 10_000 } as unknown as Context)
    vi.restoreAllMocks()

    // Assess
    const emf = output.join('').split('\n').filter((line) => line.includes('"_aws"')).map((line) => JSON.parse(line))
    expect(emf).toHaveLength(1)
    const written = emf[0]._aws.CloudWatchMetrics[0]
    const watched = resourcesOfType(packaged, 'AWS::CloudWatch::Alarm').flatMap((alarm) => [alarm.Properties, ...(alarm.Properties.Metrics ?? []).map((m: any) => m.MetricStat?.Metric ?? {})]).filter((metric) => metric.Namespace === written.Namespace)
    const requestMetrics = watched.filter((metric) => metric.MetricName === 'Requests')
    expect(requestMetrics.length).toBeGreaterThanOrEqual(3)
    for (const metric of requestMetrics) {
      expect(metric.Dimensions.map((d: any) => d.Name).sort()).toEqual([...written.Dimensions[0]].sort())
      const stage = metric.Dimensions.find((d: any) => d.Name === 'stage').Value
      expect([stage, emf[0].stage]).toEqual(['prod', 'prod'])
      expect(metric.Dimensions.find((d: any) => d.Name === 'service').Value).toBe(emf[0].service)
    }
  })

  it('lets the function read exactly the parameters its settings name', () => {
    // Act
    const statements = packaged.template.Resources.IamRoleLambdaExecution.Properties.Policies[0].PolicyDocument.Statement as { Action: string[]; Resource: any[] }[]
    const ssm = statements.find((s) => s.Action.includes('ssm:GetParameters'))!

    // Assess
    expect(ssm.Resource.map((r) => r['Fn::Join'][1].at(-1)).sort()).toEqual([
      '/settings-7q/answers/signing-key',
      '/settings-7q/deny/revoked',
      '/settings-7q/keys/fleet-key-v2',
      '/settings-7q/keys/fleet-key-v5',
      '/settings-7q/thinger-token',
    ])
  })

  it('without the optional settings, the function gets the documented defaults', async () => {
    // Act
    const defaults = await packageWith({ THINGER_USERNAME: 'acme' })

    // Assess
    expect(functionEnvironment(defaults)).toMatchObject({
      FLEET_KEY_VERSIONS: '1',
      DENY_LIST_PARAM: '/thinger-provisioner/prod/default-deny-list',
      ANSWER_KEY_PARAM: '/thinger-provisioner/prod/answer-key',
      REPLAY_PROTECTION: 'on',
      SEALING: 'optional',
    })
    expect(resourcesOfType(defaults, 'AWS::Lambda::Function')).toHaveLength(1)
    expect(resourcesOfType(defaults, 'AWS::CloudWatch::Alarm')).toEqual([])
    expect(defaults.template.Resources.HttpApiStage.Properties.AccessLogSettings).toBeUndefined()
  }, PACKAGE_TIMEOUT_MS)
})
