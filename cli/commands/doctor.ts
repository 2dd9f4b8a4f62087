import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import type { Command } from 'commander'
import { answerPublicPoint, parseAnswerKey } from '../../lib/attestation/answer-signature.js'
import { decodeFleetKey } from '../../lib/attestation/keys.js'
import { parseTrustAnchors } from '../../lib/attestation/x509.js'
import { ConfigError } from '../../lib/errors.js'
import { type Fleet, keyVersionParam } from '../../lib/fleets/fleet.js'
import { PROVISIONING_PROPERTY } from '../../lib/provisioning/provision.js'
import type { ThingerAction } from '../../lib/thinger/actions.js'
import { parseCreated } from '../../lib/thinger/client.js'
import { requiredActionsOf } from '../../lib/thinger/policy.js'
import { groupByTarget } from '../../lib/thinger/targets.js'
import { stageOf } from '../../lib/config.js'
import type { CliContext } from '../context.js'
import { createDeployedPort, type PolicyStatement } from '../deployed.js'
import { loadDenyList } from '../deny-list.js'
import { legacyFingerprintEntries } from '../../lib/fleets/deny-list.js'
import { CliError, EXIT_INTERRUPTED } from '../errors.js'
import { findFleet, loadSettings } from '../settings.js'
import { regionOf } from '../region.js'

const PROBE_PREFIX = 'tp_doctor_'
// What `osls package` (and `osls deploy`) writes: the template whose role the function runs with.
const PACKAGED_TEMPLATE = '.serverless/cloudformation-template-update-stack.json'
const PROBE_CREDENTIAL_CHARS = 24
const CALL_TIMEOUT_MS = 10_000

type Result = 'ok' | 'warn' | 'fail' | 'skip'

/** One line of the doctor's table. */
export interface DoctorCheck {
  check: string
  result: Result
  detail: string
  fix?: string
}

/** What `doctor --json` prints. */
export interface DoctorReport {
  checks: DoctorCheck[]
  /** How the account's server behaves where Thinger's documents are silent; null where unseen. */
  variant: { duplicateCreateStatus: number | null; created: 'epoch-ms' | 'iso' | 'absent' | null; missingDevicePropertyStatus: number | null }
  probeDevice: string
}

interface DoctorOptions {
  fleet?: string
  endpoint?: string
  json?: boolean
  tokenParam?: string
  cleanupTokenParam?: string
  template?: string
  deployed?: boolean | string
}

interface Answer {
  status: number | 'network'
  json: unknown
}

/** `doctor`: checks a deployment's secrets, token, account and endpoint without provisioning a real device. */
export function registerDoctor(program: Command, context: CliContext): void {
  program
    .command('doctor')
    .summary('check the SSM parameters, the Thinger.io token and account, and the endpoint')
    .description(
      'check everything the function needs, against the real account and AWS, without provisioning a real device: ' +
        `the SSM parameters, the token's actions (harmless calls), a probe device (${PROBE_PREFIX}<random>: create, duplicate, read, ` +
        'credential, property, delete; left disabled, and named, when no token given may delete it: --cleanup-token-param), and the endpoint; prints each check with the fix of each failure. ' +
        'Exit codes: 0 all passed (warnings allowed), 1 a check failed, 2 usage or configuration error',
    )
    .option('--fleet <name>', 'only this fleet (default: every fleet of the deployment)')
    .option('--endpoint <url>', 'the deployed API (https://….amazonaws.com): an unsigned request must get invalid_request')
    .option('--json', 'print one JSON object instead of the table')
    .option('--token-param <name>', 'SSM parameter of the Thinger.io token to check (default: THINGER_TOKEN_PARAM)')
    .option('--template <file>', `the packaged CloudFormation template whose role must read every parameter (default: ${PACKAGED_TEMPLATE} when it exists)`)
    .option('--deployed [function]', 'also check the function that runs now, through Lambda and IAM: its settings against this shell\'s, and its role (default name: thinger-provisioner-<STAGE>-provision)')
    .option('--cleanup-token-param <name>', 'SSM parameter of a token with DeleteDevice, to remove the probe device (the function\'s token should not have it)')
    .action(async (options: DoctorOptions) => doctor(context, options))
}

async function doctor(context: CliContext, options: DoctorOptions): Promise<void> {
  const config = loadSettings(context.env, { thinger: true })
  const fleets = options.fleet === undefined ? [...config.fleets.values()] : [findFleet(config, options.fleet)]
  if (options.endpoint !== undefined && !/^https?:\/\/[^\s/]+/.test(options.endpoint)) throw new CliError('usage', '--endpoint must be an http(s) URL')
  const checks: DoctorCheck[] = []
  const add = (check: string, result: Result, detail: string, fix?: string) => checks.push({ check, result, detail, ...(fix ? { fix } : {}) })
  const report: DoctorReport = {
    checks,
    variant: { duplicateCreateStatus: null, created: null, missingDevicePropertyStatus: null },
    probeDevice: `${PROBE_PREFIX}${randomBytes(6).toString('hex')}`,
  }

  const ssm = context.ssm()
  const groups = groupByTarget(fleets)
  if (groups.length > 1 && (options.tokenParam !== undefined || options.cleanupTokenParam !== undefined)) {
    throw new CliError('usage', `these fleets use ${groups.length} Thinger.io accounts: give --fleet with --token-param or --cleanup-token-param`)
  }
  const tokens: Array<string | undefined> = []
  for (const { target } of groups) {
    const tokenParam = options.tokenParam ?? target.tokenParam
    const token = await readSecret(ssm, tokenParam)
    const what = groups.length === 1 ? 'ssm: token' : `ssm: token of ${target.username}@${new URL(target.apiUrl).host}`
    if (token === undefined) add(what, 'fail', `${tokenParam} does not exist or is empty`, `store the token: aws ssm put-parameter --name ${tokenParam} --type SecureString --value file://thinger-token.txt`)
    else add(what, 'ok', tokenParam)
    tokens.push(token)
  }
  await checkAnswerKey(ssm, config.answerKeyParam, add)
  await checkFleetSecrets(ssm, fleets, add)
  const needed = parametersOf(fleets, config.answerKeyParam)
  checkRole(options.template, needed, add)
  if (options.deployed !== undefined && options.deployed !== false) {
    const functionName = typeof options.deployed === 'string' ? options.deployed : `thinger-provisioner-${stageOf(context.env)}-provision`
    await checkDeployed(context, functionName, needed, add)
  }

  for (const [index, { target, fleets: members }] of groups.entries()) {
    const token = tokens[index]
    if (token === undefined) continue
    const cleanupToken = options.cleanupTokenParam === undefined ? token : await readSecret(ssm, options.cleanupTokenParam)
    if (cleanupToken === undefined) add('ssm: cleanup token', 'fail', `${options.cleanupTokenParam} does not exist or is empty`, 'store a token with DeleteDevice there, or leave --cleanup-token-param out')
    await checkThinger(target.apiUrl, target.username, token, cleanupToken ?? token, members, report, add)
  }
  if (options.endpoint !== undefined) await checkEndpoint(options.endpoint, add)
  addVariantWarnings(report, fleets, add)

  context.stdout.write(options.json ? `${JSON.stringify(report)}\n` : formatTable(report))
  if (checks.some((check) => check.result === 'fail')) throw new CliError('checks_failed', `${checks.filter((c) => c.result === 'fail').length} check(s) failed: see the fixes above`)
}

/** Every SSM parameter the function reads for these fleets, and the deployment's answer key. */
function parametersOf(fleets: Fleet[], answerKeyParam: string): string[] {
  const names = new Set<string>([answerKeyParam])
  for (const fleet of fleets) {
    names.add(fleet.thinger.tokenParam)
    if (fleet.keyParam !== undefined) for (const version of fleet.keyVersions ?? [1]) names.add(keyVersionParam(fleet.keyParam, version))
    if (fleet.claimParam !== undefined) names.add(fleet.claimParam)
    if (fleet.x509?.caParam !== undefined) names.add(fleet.x509.caParam)
    names.add(fleet.denyListParam)
  }
  return [...names]
}

/** The parameters the packaged template's role may read must include every one the fleets need. */
function checkRole(templateOption: string | undefined, needed: string[], add: Add): void {
  const file = templateOption ?? (existsSync(PACKAGED_TEMPLATE) ? PACKAGED_TEMPLATE : undefined)
  if (file === undefined) {
    add('role: reads the parameters', 'skip', `no packaged template (${PACKAGED_TEMPLATE})`, 'run npx osls package with the same settings, or pass --template')
    return
  }
  let readable: Set<string>
  try {
    const template = JSON.parse(readFileSync(file, 'utf8')) as { Resources?: Record<string, { Type?: string; Properties?: { Policies?: Array<{ PolicyDocument?: { Statement?: unknown[] } }> } }> }
    const statements = Object.values(template.Resources ?? {})
      .filter((resource) => resource.Type === 'AWS::IAM::Role')
      .flatMap((role) => role.Properties?.Policies ?? [])
      .flatMap((policy) => (policy.PolicyDocument?.Statement ?? []) as PolicyStatement[])
    readable = readableParameters(statements)
  } catch (error) {
    add('role: reads the parameters', 'fail', `${file} is not a CloudFormation template: ${(error as Error).message}`, 'run npx osls package again')
    return
  }
  const missing = needed.filter((name) => !readable.has(name))
  if (missing.length === 0) add('role: reads the parameters', 'ok', `${file}: the function's role may read all ${readable.size}`)
  else add('role: reads the parameters', 'fail', `${file}: the role may not read ${missing.join(', ')}`, 'deploy again with this fleets file and these settings (npx osls deploy)')
}

/** The SSM parameters that ssm:GetParameters statements allow. */
function readableParameters(statements: Array<{ Effect?: string; Action?: string | string[]; Resource?: unknown }>): Set<string> {
  const allowing = statements.filter((statement) => statement.Effect === 'Allow' && [statement.Action].flat().includes('ssm:GetParameters'))
  return new Set(allowing.flatMap((statement) => [statement.Resource].flat()).map(parameterOfArn).filter((name): name is string => name !== undefined))
}

// The settings serverless.yml hands the function, as the operator's shell names them (LOG_LEVEL
// arrives as POWERTOOLS_LOG_LEVEL). A setting reaches the function only through a deploy.
const FUNCTION_SETTINGS: ReadonlyArray<readonly [setting: string, variable: string]> = [
  ...[
    'THINGER_API_URL',
    'THINGER_USERNAME',
    'THINGER_DEVICE_HOST',
    'THINGER_TOKEN_PARAM',
    'FLEET_KEY_PARAM',
    'FLEET_KEY_VERSIONS',
    'DENY_LIST_PARAM',
    'ANSWER_KEY_PARAM',
    'REPLAY_PROTECTION',
    'SEALING',
    'DEVICE_ID_PATTERN',
    'CLOCK_SKEW_SECONDS',
    'SSM_CACHE_SECONDS',
    'THINGER_TIMEOUT_MS',
  ].map((name) => [name, name] as const),
  ['LOG_LEVEL', 'POWERTOOLS_LOG_LEVEL'],
]

/**
 * The function that runs now: that the settings of this shell are the ones it was deployed with,
 * and that its role (not only the packaged template's) may read every parameter the fleets need.
 */
async function checkDeployed(context: CliContext, functionName: string, needed: string[], add: Add): Promise<void> {
  const port = context.deployed?.() ?? createDeployedPort(context.env)
  const region = regionOf(context.env)
  let deployed: Awaited<ReturnType<typeof port.describe>>
  try {
    deployed = await port.describe(functionName)
  } catch (error) {
    add('deployed: function', 'fail', (error as Error).message, 'give doctor the credentials and region of the deployment (AWS_PROFILE, AWS_REGION); it needs lambda:GetFunctionConfiguration, iam:ListRolePolicies, iam:GetRolePolicy, iam:ListAttachedRolePolicies')
    return
  }
  if (deployed === undefined) {
    add('deployed: function', 'fail', `no function ${functionName} in ${region}`, `deploy it (npx osls deploy --stage ${stageOf(context.env)}), or name the deployment: STAGE, AWS_REGION, or --deployed <function>`)
    return
  }
  add('deployed: function', 'ok', `${functionName} in ${region}, role ${deployed.roleArn}`)

  const given = FUNCTION_SETTINGS.filter(([setting]) => (context.env[setting] ?? '') !== '')
  const differences = given.flatMap(([setting, variable]) => {
    const mine = context.env[setting] ?? ''
    const theirs = deployed.environment[variable] ?? ''
    return mine === theirs ? [] : [`${setting}: this shell ${JSON.stringify(mine)}, the function ${JSON.stringify(theirs)}`]
  })
  const compared = given.length
  if (differences.length > 0) {
    add('deployed: settings', 'fail', differences.join('; '), `settings reach the function only by a deploy: npx osls deploy --stage ${stageOf(context.env)} with these settings (or run doctor with the deployed ones)`)
  } else {
    add('deployed: settings', 'ok', compared === 0 ? 'no setting in this shell to compare (the defaults, or a fleets file)' : `the function runs with the ${compared} setting(s) of this shell`)
  }

  const readable = readableParameters(deployed.statements)
  const missing = needed.filter((name) => !readable.has(name))
  const attached = deployed.attachedPolicies.length > 0 ? ` (managed policies ${deployed.attachedPolicies.join(', ')} not read)` : ''
  if (missing.length === 0) add('deployed: role reads the parameters', 'ok', `its inline policies may read all ${needed.length}${attached}`)
  else add('deployed: role reads the parameters', 'fail', `the running function's role may not read ${missing.join(', ')}${attached}`, 'deploy again with this fleets file and these settings (npx osls deploy)')
}

// `arn:…:parameter/name` as a string or as the Fn::Join osls writes (its last part is the name).
function parameterOfArn(resource: unknown): string | undefined {
  if (typeof resource === 'string') return /:parameter(\/.*)$/.exec(resource)?.[1]
  const parts = (resource as { 'Fn::Join'?: [string, unknown[]] } | undefined)?.['Fn::Join']?.[1]
  const last = parts?.[parts.length - 1]
  return typeof last === 'string' && last.startsWith('/') ? last : undefined
}

async function readSecret(ssm: ReturnType<CliContext['ssm']>, name: string): Promise<string | undefined> {
  const stored = await ssm.getParameter(name)
  const value = stored?.value.trim() ?? ''
  return value === '' ? undefined : value
}

type Add = (check: string, result: Result, detail: string, fix?: string) => void

/** The answer key signs every success answer; without it devices that pin it refuse them all. */
async function checkAnswerKey(ssm: ReturnType<CliContext['ssm']>, name: string, add: Add): Promise<void> {
  const value = await readSecret(ssm, name)
  const fix = 'thinger-provisioner answer-key create, then pin `answer-key show` in the firmware (docs/operations.md)'
  if (value === undefined) {
    add('ssm: answer key', 'fail', `${name} does not exist: the function answers unsigned, and devices that pin the answer key refuse every answer`, fix)
    return
  }
  try {
    add('ssm: answer key', 'ok', `${name}: P-256, public key ${answerPublicPoint(parseAnswerKey(value, name)).toString('base64')}`)
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    add('ssm: answer key', 'fail', `${name} is not the base64 of a PKCS#8 P-256 private key: the function answers every request 500`, `delete it, then ${fix}`)
  }
}

async function checkFleetSecrets(ssm: ReturnType<CliContext['ssm']>, fleets: Fleet[], add: Add): Promise<void> {
  for (const fleet of fleets) {
    if (fleet.keyParam !== undefined && fleet.proof.includes('hmac')) {
      for (const version of fleet.keyVersions ?? [1]) {
        const name = keyVersionParam(fleet.keyParam, version)
        const value = await readSecret(ssm, name)
        const what = `ssm: fleet "${fleet.name}" key v${version}`
        const fix = `thinger-provisioner fleet-key create --fleet ${fleet.name} --key-version ${version}`
        if (value === undefined) add(what, 'fail', `${name} does not exist or is empty`, fix)
        else {
          try {
            decodeFleetKey(value, name)
            add(what, 'ok', name)
          } catch {
            add(what, 'fail', `${name} is not a base64 key of at least 32 bytes`, `replace it: ${fix} (after deleting the bad value)`)
          }
        }
      }
    }
    if (fleet.claimParam !== undefined && fleet.proof.includes('claim')) {
      const value = await readSecret(ssm, fleet.claimParam)
      if (value === undefined) add(`ssm: fleet "${fleet.name}" claim secret`, 'fail', `${fleet.claimParam} does not exist or is empty`, `aws ssm put-parameter --name ${fleet.claimParam} --type SecureString --value file://claim.txt`)
      else add(`ssm: fleet "${fleet.name}" claim secret`, 'ok', fleet.claimParam)
    }
    const caParam = fleet.x509?.caParam
    if (caParam !== undefined && fleet.proof.includes('x509')) {
      const value = await readSecret(ssm, caParam)
      const what = `ssm: fleet "${fleet.name}" CA certificates`
      const fix = `thinger-provisioner ca create --fleet ${fleet.name} (docs/x509.md)`
      if (value === undefined) add(what, 'fail', `${caParam} does not exist or is empty`, fix)
      else {
        try {
          add(what, 'ok', `${caParam}: ${parseTrustAnchors(value, caParam).length} CA certificate(s)`)
        } catch (error) {
          if (!(error instanceof ConfigError)) throw error
          add(what, 'fail', error.detail ?? `${caParam} holds no readable CA certificate`, `store the fleet's CA certificates (PEM) there, or ${fix} after deleting it`)
        }
      }
    }
    try {
      const { list } = await loadDenyList(ssm, fleet.denyListParam)
      add(`ssm: fleet "${fleet.name}" deny list`, 'ok', `${fleet.denyListParam}: ${list.devices.length} device(s), ${list.retiredKeyVersions.length} retired version(s)${list.certificates?.length ? `, ${list.certificates.length} certificate(s)` : ''}`)
      const legacy = legacyFingerprintEntries(list)
      if (legacy.length > 0) {
        add(
          `ssm: fleet "${fleet.name}" certificate revocations`,
          'warn',
          `${legacy.length} legacy sha256: entr${legacy.length === 1 ? 'y' : 'ies'} (${legacy.slice(0, 3).join(', ')}${legacy.length > 3 ? ', …' : ''}): each refuses one encoding of a certificate, not the same certificate with its signature re-encoded`,
          `run thinger-provisioner revoke --fleet ${fleet.name} --certificate FILE for each of those certificates: it writes key:<hex> and drops the sha256: entry (docs/operations.md, "Revoking a certificate")`,
        )
      }
    } catch (error) {
      if (!(error instanceof CliError)) throw error
      add(`ssm: fleet "${fleet.name}" deny list`, 'fail', error.message, `fix it with thinger-provisioner revoke/unrevoke --fleet ${fleet.name}, or delete ${fleet.denyListParam}`)
    }
  }
}

/** The token's actions, probed one by one, and the probe device's life; the probe is deleted, or disabled when the token may not delete it. */
async function checkThinger(apiUrl: string, username: string, token: string, cleanupToken: string, fleets: Fleet[], report: DoctorReport, add: Add): Promise<void> {
  const base = `${apiUrl.replace(/\/+$/, '')}`
  const user = `/users/${encodeURIComponent(username)}`
  const probe = report.probeDevice
  const device = `/v1${user}/devices/${probe}`
  const call = (method: string, path: string, body?: unknown, bearer = token) => request(`${base}${path}`, method, bearer, body)
  const required = new Set<ThingerAction>(requiredActionsOf(fleets).map(({ action }) => action))
  const missing = (action: ThingerAction) => `add ${action} to the token (thinger-provisioner token-policy prints them all)`
  const permission = (action: ThingerAction, answer: Answer, okStatuses: number[], detail: string): boolean => {
    if (typeof answer.status === 'number' && okStatuses.includes(answer.status)) {
      add(`token: ${action}`, 'ok', detail)
      return true
    }
    if (answer.status === 403) add(`token: ${action}`, required.has(action) ? 'fail' : 'warn', 'refused (403)', missing(action))
    else add(`token: ${action}`, 'fail', `unexpected answer ${answer.status}`, 'see the answer above; check THINGER_API_URL and the account')
    return false
  }

  const first = await call('GET', device)
  if (first.status === 401) {
    add('token: valid', 'fail', 'Thinger.io answers 401: the token is invalid, expired or for another server', 'create a token (thinger-provisioner token-policy) and store it in SSM')
    return
  }
  if (first.status === 'network') {
    add('thinger: reachable', 'fail', `no answer from ${base}`, 'check THINGER_API_URL')
    return
  }
  add('token: valid', 'ok', `accepted by ${base} for account ${username}`)
  if (!permission('ReadDeviceStatus', first, [404], 'reads a device (a missing one answers 404)')) return

  let created = false
  const cleanup = () => removeProbe(call, device, probe, token === cleanupToken ? undefined : cleanupToken, add)
  // Ctrl-C while the probe exists: remove it before leaving.
  const onSignal = () => {
    void (created ? cleanup() : Promise.resolve()).finally(() => process.exit(EXIT_INTERRUPTED))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    const credential = randomBytes(PROBE_CREDENTIAL_CHARS).toString('base64url').slice(0, PROBE_CREDENTIAL_CHARS)
    const create = await call('POST', `/v1${user}/devices`, { device: probe, type: 'Generic', credentials: credential, description: 'thinger-provisioner doctor probe, safe to delete' })
    created = create.status === 200
    if (!permission('CreateDevice', create, [200], `created the probe device ${probe}`)) return

    const duplicate = await call('POST', `/v1${user}/devices`, { device: probe, type: 'Generic', credentials: credential })
    if (duplicate.status === 400 || duplicate.status === 409) {
      report.variant.duplicateCreateStatus = duplicate.status
      add('variant: duplicate create', 'ok', `answers ${duplicate.status} (the service reads the device either way)`)
    } else add('variant: duplicate create', 'fail', `answers ${duplicate.status}`, 'the service cannot tell a duplicate; report this server behaviour')

    const read = await call('GET', device)
    const body = (read.json ?? {}) as Record<string, unknown>
    if (read.status === 200) {
      const form = typeof body.created === 'number' ? 'epoch-ms' : typeof body.created === 'string' ? 'iso' : 'absent'
      const usable = parseCreated(body.created) !== undefined
      report.variant.created = usable ? form : 'absent'
      add('variant: created', usable ? 'ok' : 'warn', `a device read carries ${usable ? form : `no usable created (${JSON.stringify(body.created ?? null)})`}; fields ${Object.keys(body).sort().join(', ')}`)
    } else add('variant: created', 'fail', `reading the probe answered ${read.status}`)

    permission('UpdateDevice', await call('PUT', device, { credentials: credential.split('').reverse().join('') }), [200], 'replaced the probe\'s credential')
    const properties = `/v3${user}/devices/${probe}/properties`
    const record = { doctor: true }
    const wrote = permission('CreateDeviceProperty', await call('POST', properties, { property: PROVISIONING_PROPERTY, value: record }), [200], `wrote the ${PROVISIONING_PROPERTY} property`)
    const readProperty = await call('GET', `${properties}/${PROVISIONING_PROPERTY}`)
    permission('ReadDeviceProperty', readProperty, wrote ? [200] : [200, 404], 'read it back')
    if (wrote && readProperty.status === 200 && JSON.stringify((readProperty.json as { value?: unknown })?.value) !== JSON.stringify(record)) {
      add('thinger: property round trip', 'fail', 'the value read back differs from the one written', 'report this server behaviour')
    }
    permission('UpdateDeviceProperty', await call('PUT', `${properties}/${PROVISIONING_PROPERTY}`, { value: record }), wrote ? [200] : [200, 404], 'updated it')
    const missingDevice = await call('GET', `/v3${user}/devices/${probe}_gone/properties/${PROVISIONING_PROPERTY}`)
    if (missingDevice.status === 404 || missingDevice.status === 500) {
      report.variant.missingDevicePropertyStatus = missingDevice.status
      add('variant: property of a missing device', 'ok', `answers ${missingDevice.status}`)
    }

    const projects = [...new Set(fleets.flatMap((fleet) => fleet.profile.projects ?? []))]
    if (projects.length > 0) {
      const assigned = await call('PUT', `${device}/projects`, projects.map((project) => `${username}@${project}`))
      if (assigned.status === 400) add('token: UpdateDeviceProjects', 'fail', `a project of ${projects.join(', ')} does not exist`, 'create the profile\'s projects in the console')
      else permission('UpdateDeviceProjects', assigned, [200], `assigned the probe to ${projects.join(', ')}`)
    }
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    if (created) await cleanup()
  }
  await checkProfileResources(call, user, fleets, permission, add)
}

async function removeProbe(call: (method: string, path: string, body?: unknown, bearer?: string) => Promise<Answer>, device: string, probe: string, cleanupToken: string | undefined, add: Add): Promise<void> {
  // A connected device cannot be deleted on some servers: the probe never connects, but disabling first costs nothing.
  await call('PUT', device, { enabled: false }, cleanupToken)
  const deleted = await call('DELETE', device, undefined, cleanupToken)
  if (deleted.status === 200 || deleted.status === 404) add('probe: removed', 'ok', `${probe} deleted`)
  else if (deleted.status === 403) {
    add('probe: removed', 'warn', `${probe} is disabled but not deleted: this token rightly lacks DeleteDevice`, `delete ${probe} in the console, or pass --cleanup-token-param with a token that has DeleteDevice`)
  } else add('probe: removed', 'fail', `deleting ${probe} answered ${deleted.status}`, `delete ${probe} in the console`)
}

async function checkProfileResources(
  call: (method: string, path: string, body?: unknown) => Promise<Answer>,
  user: string,
  fleets: Fleet[],
  permission: (action: ThingerAction, answer: Answer, okStatuses: number[], detail: string) => boolean,
  add: Add,
): Promise<void> {
  const shared = [
    ['types', 'assetType', 'ReadTypeConfig', 'CreateType'],
    ['groups', 'assetGroup', 'ReadGroupConfig', 'CreateGroup'],
    ['products', 'product', 'ReadProductConfig', 'CreateProduct'],
  ] as const
  for (const [kind, field, read, create] of shared) {
    const ids = [...new Set(fleets.map((fleet) => fleet.profile[field]).filter((id): id is string => typeof id === 'string' && id !== ''))]
    for (const id of ids) permission(read, await call('GET', `/v1${user}/${kind}/${encodeURIComponent(id)}`), [200, 404], `reads ${kind} ${id}`)
    // A create with an empty body is refused by validation (400) once the permission is checked: nothing is made.
    if (ids.length > 0) permission(create, await call('POST', `/v1${user}/${kind}`, {}), [400], `may create ${kind} (an empty body is refused, nothing made)`)
  }
  if (fleets.some((fleet) => fleet.profile.bucket)) {
    permission('ReadBucketConfig', await call('GET', `/v1${user}/buckets/${PROBE_PREFIX}bucket`), [404], 'reads buckets')
    permission('CreateBucket', await call('POST', `/v1${user}/buckets`, {}), [400], 'may create buckets (an empty body is refused, nothing made)')
  }
  for (const template of new Set(fleets.flatMap((fleet) => (fleet.profile.dashboard ? [fleet.profile.dashboard.template] : [])))) {
    const found = await call('GET', `/v1${user}/dashboards/${encodeURIComponent(template)}`)
    if (found.status === 404) add('thinger: dashboard template', 'fail', `the template dashboard ${template} does not exist`, `create dashboard ${template} in the console (the profile clones it)`)
    else permission('ReadDashboardConfig', found, [200], `reads the template ${template}`)
    permission('CloneDashboard', await call('POST', `/v1${user}/dashboards/${encodeURIComponent(template)}/clone`, {}), [400, 404], 'may clone it (an empty body is refused, nothing made)')
  }
}

async function checkEndpoint(endpoint: string, add: Add): Promise<void> {
  const url = `${endpoint.replace(/\/+$/, '').replace(/\/v1\/provision$/, '')}/v1/provision`
  const answer = await request(url, 'POST', undefined, {})
  const code = (answer.json as { error?: { code?: unknown } } | undefined)?.error?.code
  if (answer.status === 400 && code === 'invalid_request') add('endpoint: answers', 'ok', `${url}: an unsigned request gets invalid_request`)
  else add('endpoint: answers', 'fail', `${url} answered ${answer.status}${typeof code === 'string' ? ` ${code}` : ''}`, 'check the URL osls deploy printed, and the function\'s logs')
}

function addVariantWarnings(report: DoctorReport, fleets: Fleet[], add: Add): void {
  if (report.variant.created !== 'absent') return
  if (fleets.some((fleet) => fleet.replayProtection)) {
    add('variant: replay protection', 'warn', 'without created, a re-provisioned device without a record is fenced: one more round trip (replayed, retryAfter 1 s) before it gets in')
  }
  if (fleets.some((fleet) => fleet.reprovision === 'reject')) {
    add('variant: reject policy', 'warn', 'without created, an interrupted provisioning under reject is never resumed (already_provisioned)', 'delete such a device in the console so it can provision again')
  }
}

function formatTable(report: DoctorReport): string {
  const width = Math.max(...report.checks.map((check) => check.check.length))
  const lines = report.checks.map((check) => {
    const mark = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL', skip: 'skip' }[check.result]
    return `${check.check.padEnd(width)}  ${mark}  ${check.detail}${check.fix ? `\n${' '.repeat(width + 8)}fix: ${check.fix}` : ''}`
  })
  const v = report.variant
  lines.push(
    '',
    `Thinger variant: duplicate create ${v.duplicateCreateStatus ?? '?'}, created ${v.created ?? '?'}, property of a missing device ${v.missingDevicePropertyStatus ?? '?'}`,
  )
  return `${lines.join('\n')}\n`
}

async function request(url: string, method: string, token: string | undefined, body?: unknown): Promise<Answer> {
  try {
    const response = await fetch(url, {
      method,
      headers: { accept: 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
    })
    const text = await response.text()
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch {
      json = undefined
    }
    return { status: response.status, json }
  } catch {
    return { status: 'network', json: undefined }
  }
}
