import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ApiGatewayV2Client, GetApisCommand, GetIntegrationsCommand, GetRoutesCommand, GetStagesCommand } from '@aws-sdk/client-apigatewayv2'
import { CloudFormationClient, DescribeStacksCommand, GetTemplateCommand, ListStacksCommand } from '@aws-sdk/client-cloudformation'
import { CloudWatchClient, DescribeAlarmsCommand, ListDashboardsCommand } from '@aws-sdk/client-cloudwatch'
import { CloudWatchLogsClient, DescribeLogGroupsCommand } from '@aws-sdk/client-cloudwatch-logs'
import { GetRolePolicyCommand, IAMClient, ListRolePoliciesCommand, ListRolesCommand } from '@aws-sdk/client-iam'
import { GetFunctionCommand, GetPolicyCommand, LambdaClient, ListFunctionsCommand } from '@aws-sdk/client-lambda'
import { ListBucketsCommand, S3Client } from '@aws-sdk/client-s3'
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createDeployedPort } from '../../cli/deployed.js'
import { freePort } from '../support/ports.js'
import { cleanEnvironment } from '../support/package.js'

const run = (command: string, args: string[]) => spawnSync(command, args, { encoding: 'utf8' })
const motoInstalled = run('python3', ['-c', 'import moto.server']).status === 0

if (!motoInstalled) {
  if (process.env.REQUIRE_MOTO === '1') throw new Error('moto is required (REQUIRE_MOTO=1) but `python3 -c "import moto.server"` fails')
  console.warn('SKIPPED: the osls-deploy-against-moto suite needs moto (python3 -m moto.server), which is not installed here')
}

const osls = createRequire(import.meta.url).resolve('osls/bin/serverless.js')
const STAGE = 'ci'
const REGION = 'eu-west-1'
const ACCOUNT = '123456789012' // moto's
const SERVICE = 'thinger-provisioner'
const STACK = `${SERVICE}-${STAGE}`
const FUNCTION_NAME = `${STACK}-provision`
const MOTO_READY_TIMEOUT_MS = 90_000
const STEP_TIMEOUT_MS = 180_000
const TOKEN_PARAM = `/thinger-provisioner/${STAGE}/thinger-token`
const FLEET_KEY_PARAM = `/thinger-provisioner/${STAGE}/fleet-key`
const DENY_LIST_PARAM = `/thinger-provisioner/${STAGE}/revoked`
// Not given in the settings: the stage's default answer-key path, which the role must read too.
const ANSWER_KEY_PARAM = `/thinger-provisioner/${STAGE}/answer-key`

// The settings the stage is deployed with: every one must arrive, none carries a secret.
const SETTINGS: Record<string, string> = {
  THINGER_USERNAME: 'deploy_ci',
  THINGER_API_URL: 'https://ci-7q.example.net',
  FLEET_KEY_VERSIONS: '1,2',
  DENY_LIST_PARAM,
  REPLAY_PROTECTION: 'off',
  CLOCK_SKEW_SECONDS: '240',
  API_RATE_LIMIT: '41',
  API_BURST_LIMIT: '82',
  MONITORING: 'on',
  ALARM_EMAIL: 'ops@example.net',
  API_ACCESS_LOGS: 'on',
}

interface Step {
  code: number | null
  output: string
}

describe.skipIf(!motoInstalled)('Deployment: osls deploy, redeploy and remove against moto', () => {
  // Canaries: if any of these shows up in what was deployed, a secret leaked into it.
  const canaries = {
    token: `canary-token-${randomBytes(12).toString('hex')}`,
    fleetKey: randomBytes(32).toString('base64'),
    fleetKeyV2: randomBytes(32).toString('base64'),
  }
  const workDir = mkdtempSync(join(tmpdir(), 'thinger-provisioner-deploy-'))
  let moto: ChildProcess
  let endpoint: string
  let clients: { cfn: CloudFormationClient; lambda: LambdaClient; iam: IAMClient; api: ApiGatewayV2Client; cw: CloudWatchClient; logs: CloudWatchLogsClient; s3: S3Client }
  let firstDeploy: Step
  let info: Promise<Step>
  let builds = 0

  function oslsStep(args: string[], env: Record<string, string> = {}): Promise<Step> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [osls, ...args, '--stage', STAGE], {
        cwd: process.cwd(),
        env: {
          ...cleanEnvironment(),
          AWS_ENDPOINT_URL: endpoint,
          AWS_ACCESS_KEY_ID: 'moto',
          AWS_SECRET_ACCESS_KEY: 'moto',
          // Only the environment names the region: --region is not given.
          AWS_REGION: REGION,
          AWS_SHARED_CREDENTIALS_FILE: '/nonexistent',
          AWS_CONFIG_FILE: '/nonexistent',
          AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
          // osls polls the stack every 5 s by default; moto answers at once.
          SLS_AWS_MONITORING_FREQUENCY: '100',
          SLS_TELEMETRY_DISABLED: '1',
          SLS_NOTIFICATIONS_MODE: 'off',
          FORCE_COLOR: '0',
          // Each run builds in its own folder, so none empties another's (osls info runs beside a deploy).
          ESBUILD_WORK_FOLDER: `.esbuild/deploy-${process.pid}-${(builds += 1)}`,
          ...SETTINGS,
          ...env,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      let output = ''
      child.stdout.setEncoding('utf8').on('data', (chunk) => (output += chunk))
      child.stderr.setEncoding('utf8').on('data', (chunk) => (output += chunk))
      child.on('close', (code) => resolve({ code, output }))
    })
  }

  async function startMoto(): Promise<void> {
    const port = await freePort()
    endpoint = `http://127.0.0.1:${port}`
    moto = spawn('python3', ['test/deploy/moto_server.py', '-H', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] })
    let motoErrors = ''
    moto.stderr!.setEncoding('utf8').on('data', (chunk) => (motoErrors = (motoErrors + chunk).slice(-4000)))
    const config = { endpoint, region: REGION, credentials: { accessKeyId: 'moto', secretAccessKey: 'moto' } }
    const ssm = new SSMClient(config)
    const deadline = Date.now() + MOTO_READY_TIMEOUT_MS
    for (;;) {
      try {
        await ssm.send(new PutParameterCommand({ Name: TOKEN_PARAM, Value: canaries.token, Type: 'SecureString' }))
        break
      } catch (error) {
        if (moto.exitCode !== null) throw new Error(`test/deploy/moto_server.py exited: ${motoErrors}`)
        if (Date.now() > deadline) throw error
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
    }
    await ssm.send(new PutParameterCommand({ Name: FLEET_KEY_PARAM, Value: canaries.fleetKey, Type: 'SecureString' }))
    await ssm.send(new PutParameterCommand({ Name: `${FLEET_KEY_PARAM}-v2`, Value: canaries.fleetKeyV2, Type: 'SecureString' }))
    clients = {
      cfn: new CloudFormationClient(config),
      lambda: new LambdaClient(config),
      iam: new IAMClient(config),
      api: new ApiGatewayV2Client(config),
      cw: new CloudWatchClient(config),
      logs: new CloudWatchLogsClient(config),
      s3: new S3Client({ ...config, forcePathStyle: true }),
    }
  }

  const parameterArn = (name: string) => `arn:aws:ssm:${REGION}:${ACCOUNT}:parameter${name}`

  beforeAll(async () => {
    // The package is built while moto starts (one packaging at a time: osls package passes its zip
    // through the project's own .serverless/, so two at once would swap their artefacts).
    const [first] = await Promise.all([oslsStep(['package', '--package', join(workDir, 'first')]), startMoto()])
    expect(first.code).toBe(0)
    firstDeploy = await oslsStep(['deploy', '--package', join(workDir, 'first')])
    // `osls info` reads the stack while the tests below look at what was created.
    info = oslsStep(['info'])
  }, 2 * STEP_TIMEOUT_MS)

  afterAll(async () => {
    moto?.kill('SIGTERM')
    rmSync(workDir, { recursive: true, force: true })
    for (let build = 1; build <= builds; build++) rmSync(`.esbuild/deploy-${process.pid}-${build}`, { recursive: true, force: true })
  })

  it('deploys, printing the endpoint, with the region from AWS_REGION', () => {
    // Assess
    expect(firstDeploy.output).toContain(`Deploying ${SERVICE} to stage ${STAGE} (${REGION})`)
    expect(firstDeploy.output).toMatch(new RegExp(`endpoint: POST - https://[a-z0-9]+\\.execute-api\\.${REGION}\\.amazonaws\\.com/v1/provision`))
    expect(firstDeploy.code).toBe(0)
  })

  it('creates the function on nodejs22.x, arm64, 256 MB, 10 s, with every setting in its environment', async () => {
    // Act
    const { Configuration: fn } = await clients.lambda.send(new GetFunctionCommand({ FunctionName: FUNCTION_NAME }))

    // Assess
    expect(fn).toMatchObject({ Runtime: 'nodejs22.x', Architectures: ['arm64'], MemorySize: 256, Timeout: 10, Handler: 'functions/provision.handler' })
    expect(fn!.Environment!.Variables).toMatchObject({
      THINGER_USERNAME: 'deploy_ci',
      THINGER_API_URL: 'https://ci-7q.example.net',
      THINGER_TOKEN_PARAM: TOKEN_PARAM,
      FLEET_KEY_PARAM,
      FLEET_KEY_VERSIONS: '1,2',
      DENY_LIST_PARAM,
      REPLAY_PROTECTION: 'off',
      CLOCK_SKEW_SECONDS: '240',
      STAGE,
    })
  })

  it('lets the role read exactly the token, both fleet key versions, the deny list and the answer key, and decrypt only them through SSM', async () => {
    // Prepare
    const role = `${STACK}-${REGION}-lambdaRole`
    const { PolicyNames } = await clients.iam.send(new ListRolePoliciesCommand({ RoleName: role }))

    // Act
    const { PolicyDocument } = await clients.iam.send(new GetRolePolicyCommand({ RoleName: role, PolicyName: PolicyNames![0] }))
    const statements = readPolicy(decodeURIComponent(PolicyDocument!)).Statement as { Action: string[]; Resource: string | string[]; Condition?: any }[]

    // Assess
    const expected = [TOKEN_PARAM, FLEET_KEY_PARAM, `${FLEET_KEY_PARAM}-v2`, DENY_LIST_PARAM, ANSWER_KEY_PARAM].map(parameterArn)
    const ssm = statements.find((s) => [s.Action].flat().includes('ssm:GetParameters'))!
    expect([ssm.Action].flat()).toEqual(['ssm:GetParameters'])
    expect([ssm.Resource].flat()).toEqual(expected)
    const kms = statements.find((s) => [s.Action].flat().includes('kms:Decrypt'))!
    expect(kms.Condition.StringEquals).toEqual({ 'kms:ViaService': `ssm.${REGION}.amazonaws.com`, 'kms:EncryptionContext:PARAMETER_ARN': expected })
    expect(new Set(statements.flatMap((s) => [s.Action].flat()).map((a) => a.split(':')[0]))).toEqual(new Set(['kms', 'logs', 'ssm']))
  })

  it('shows doctor --deployed the running function: its settings and the parameters its role may read', async () => {
    // Prepare
    // moto 5.2.1 returns the document of a CloudFormation-made inline policy as a Python literal;
    // AWS returns URL-encoded JSON, which is what the port reads: translate moto's answer to it.
    const iam = {
      send: async (command: any) => {
        const output: any = await clients.iam.send(command)
        if (command instanceof GetRolePolicyCommand) output.PolicyDocument = encodeURIComponent(JSON.stringify(readPolicy(decodeURIComponent(output.PolicyDocument))))
        return output
      },
    }
    const port = createDeployedPort({ AWS_REGION: REGION }, { lambda: clients.lambda, iam: iam as any })

    // Act
    const deployed = await port.describe(FUNCTION_NAME)
    const missing = await port.describe(`${STACK}-absent`)

    // Assess
    expect(deployed!.environment).toMatchObject({ THINGER_USERNAME: SETTINGS.THINGER_USERNAME, DENY_LIST_PARAM, REPLAY_PROTECTION: 'off', SEALING: 'optional' })
    expect(deployed!.roleArn).toMatch(new RegExp(`:role/${STACK}-${REGION}-lambdaRole$`))
    const readable = deployed!.statements.filter((s) => [s.Action].flat().includes('ssm:GetParameters')).flatMap((s) => [s.Resource].flat())
    expect(readable).toEqual([TOKEN_PARAM, FLEET_KEY_PARAM, `${FLEET_KEY_PARAM}-v2`, DENY_LIST_PARAM, ANSWER_KEY_PARAM].map(parameterArn))
    expect(missing).toBeUndefined()
  })

  it('routes POST /v1/provision to an integration that invokes the function, which lets API Gateway invoke it', async () => {
    // Prepare
    const { Items: apis } = await clients.api.send(new GetApisCommand({}))
    const api = apis!.find((a) => a.Name === `${STAGE}-${SERVICE}`)!

    // Act
    const { Items: routes } = await clients.api.send(new GetRoutesCommand({ ApiId: api.ApiId! }))
    const { Items: integrations } = await clients.api.send(new GetIntegrationsCommand({ ApiId: api.ApiId! }))
    const { Configuration: fn } = await clients.lambda.send(new GetFunctionCommand({ FunctionName: FUNCTION_NAME }))
    const { Policy } = await clients.lambda.send(new GetPolicyCommand({ FunctionName: FUNCTION_NAME }))

    // Assess
    expect(routes!.map((r) => r.RouteKey)).toEqual(['POST /v1/provision'])
    const integration = integrations!.find((i) => routes![0]!.Target === `integrations/${i.IntegrationId}`)!
    expect(integration).toMatchObject({ IntegrationType: 'AWS_PROXY', PayloadFormatVersion: '2.0' })
    expect(integration.IntegrationUri).toBe(fn!.FunctionArn)
    const permission = JSON.parse(Policy!).Statement[0]
    expect(permission.Principal).toEqual({ Service: 'apigateway.amazonaws.com' })
    expect(permission.Action).toBe('lambda:InvokeFunction')
    expect(JSON.stringify(permission.Condition)).toContain(api.ApiId)
  })

  it('throttles the stage as API_RATE_LIMIT and API_BURST_LIMIT say, and logs its access as JSON', async () => {
    // Prepare
    const { Items: apis } = await clients.api.send(new GetApisCommand({}))

    // Act
    const { Items: stages } = await clients.api.send(new GetStagesCommand({ ApiId: apis!.find((a) => a.Name === `${STAGE}-${SERVICE}`)!.ApiId! }))

    // Assess
    expect(stages).toHaveLength(1)
    const { ThrottlingRateLimit, ThrottlingBurstLimit } = stages![0]!.DefaultRouteSettings!
    expect([Number(ThrottlingRateLimit), Number(ThrottlingBurstLimit)]).toEqual([41, 82])
    const format = JSON.parse(stages![0]!.AccessLogSettings!.Format!)
    expect(format).toMatchObject({ requestId: '$context.requestId', sourceIp: '$context.identity.sourceIp', status: '$context.status' })
  })

  it('publishes the endpoint in the stack outputs and through osls info', async () => {
    // Act
    const { Stacks } = await clients.cfn.send(new DescribeStacksCommand({ StackName: STACK }))
    const shown = await info

    // Assess
    const url = Stacks![0]!.Outputs!.find((o) => o.OutputKey === 'HttpApiUrl')!.OutputValue!
    expect(url).toMatch(new RegExp(`^https://[a-z0-9]+\\.execute-api\\.${REGION}\\.amazonaws\\.com$`))
    expect(shown.output).toContain(`endpoint: POST - ${url}/v1/provision`)
    expect(shown.output).toContain(`stage: ${STAGE}`)
    expect(shown.code).toBe(0)
  }, STEP_TIMEOUT_MS)

  it('creates the alarms, the dashboard and the access log group', async () => {
    // Act
    const { MetricAlarms } = await clients.cw.send(new DescribeAlarmsCommand({ AlarmNamePrefix: STACK }))
    const { DashboardEntries } = await clients.cw.send(new ListDashboardsCommand({ DashboardNamePrefix: STACK }))
    const { logGroups } = await clients.logs.send(new DescribeLogGroupsCommand({}))

    // Assess
    expect(MetricAlarms!.map((a) => a.AlarmName!.slice(STACK.length + 1)).sort()).toEqual([
      'api-429-rate',
      'api-5xx-rate',
      'duration-near-timeout',
      'internal-errors',
      'lambda-errors',
      'lambda-throttles',
      'upstream-unavailable-rate',
    ])
    expect(new Set(MetricAlarms!.map((a) => a.AlarmActions!.join()))).toEqual(new Set([expect.stringMatching(/^arn:aws:sns:eu-west-1:123456789012:/)]))
    expect(DashboardEntries!.map((d) => d.DashboardName)).toEqual([STACK])
    expect(logGroups!.map((g) => [g.logGroupName, g.retentionInDays])).toEqual(
      expect.arrayContaining([
        [`/aws/lambda/${FUNCTION_NAME}`, 30],
        [`/aws/http-api/${STACK}`, 30],
      ]),
    )
  })

  it('puts no secret in the function, the template, the state file or the zip', async () => {
    // Prepare
    const { Configuration } = await clients.lambda.send(new GetFunctionCommand({ FunctionName: FUNCTION_NAME }))
    const { TemplateBody } = await clients.cfn.send(new GetTemplateCommand({ StackName: STACK }))
    const state = readFileSync(join(workDir, 'first', 'serverless-state.json'), 'utf8')
    const zip = run('unzip', ['-p', join(workDir, 'first', `${SERVICE}.zip`)]).stdout

    // Act
    const everything = [JSON.stringify(Configuration), TemplateBody!, state, zip]

    // Assess
    expect(zip.length).toBeGreaterThan(10_000)
    for (const text of everything) {
      for (const secret of Object.values(canaries)) expect(text).not.toContain(secret)
    }
  })

  it('skips a second deploy of the same package, then deploys a change', async () => {
    // Act
    const again = await oslsStep(['deploy', '--package', join(workDir, 'first')])
    const changed = await oslsStep(['deploy'], { CLOCK_SKEW_SECONDS: '120' })
    const { Configuration: fn } = await clients.lambda.send(new GetFunctionCommand({ FunctionName: FUNCTION_NAME }))

    // Assess
    expect(again.output).toContain('No changes to deploy. Deployment skipped.')
    expect(again.code).toBe(0)
    expect(changed.output).toContain('Service deployed to stack')
    expect(changed.code).toBe(0)
    expect(fn!.Environment!.Variables!.CLOCK_SKEW_SECONDS).toBe('120')
    expect(fn!.Architectures).toEqual(['arm64'])
  }, 2 * STEP_TIMEOUT_MS)

  it('osls remove leaves nothing behind', async () => {
    // Act
    const removed = await oslsStep(['remove'])

    // Assess
    expect(removed.output).toContain('has been successfully removed')
    expect(removed.code).toBe(0)
    const { StackSummaries } = await clients.cfn.send(new ListStacksCommand({}))
    expect(StackSummaries!.filter((s) => s.StackStatus !== 'DELETE_COMPLETE')).toEqual([])
    expect((await clients.lambda.send(new ListFunctionsCommand({}))).Functions).toEqual([])
    expect((await clients.api.send(new GetApisCommand({}))).Items).toEqual([])
    expect((await clients.iam.send(new ListRolesCommand({}))).Roles!.filter((r) => r.RoleName!.startsWith(SERVICE))).toEqual([])
    expect((await clients.logs.send(new DescribeLogGroupsCommand({}))).logGroups).toEqual([])
    expect((await clients.cw.send(new DescribeAlarmsCommand({}))).MetricAlarms).toEqual([])
    expect((await clients.cw.send(new ListDashboardsCommand({}))).DashboardEntries).toEqual([])
    expect((await clients.s3.send(new ListBucketsCommand({}))).Buckets ?? []).toEqual([])
  }, STEP_TIMEOUT_MS)
})

/** An inline role policy as moto 5.2.1 returns it: JSON, or the Python text of the same dictionary. */
function readPolicy(text: string): any {
  try {
    return JSON.parse(text)
  } catch {
    return JSON.parse(text.replace(/'/g, '"').replace(/\bTrue\b/g, 'true').replace(/\bFalse\b/g, 'false'))
  }
}
