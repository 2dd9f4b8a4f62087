import { ConfigError } from './errors.js'
import { DEFAULT_FLEET, type Fleet, type FleetsDefinition, type ThingerTarget } from './fleets/fleet.js'

const DEFAULT_THINGER_API_URL = 'https://backend.thinger.io'
const DEFAULT_STAGE = 'dev'
const DEFAULT_DEVICE_ID_PATTERN = '^[A-Za-z0-9_-]{1,32}$'
const DEFAULT_CLOCK_SKEW_SECONDS = 300
const DEFAULT_SSM_CACHE_SECONDS = 300
const DEFAULT_THINGER_TIMEOUT_MS = 5000
const THINGER_USERNAME_PATTERN = /^[A-Za-z0-9_-]{1,32}$/
const SSM_PARAMETER_NAME_PATTERN = /^\/[A-Za-z0-9_.\-/]{1,2047}$/
const HOST_PATTERN = /^[A-Za-z0-9.-]{1,253}(:\d{1,5})?$/
// Replaced at build time by esbuild's `define` (serverless.yml) with the validated fleets file, or null.
const BUNDLED_FLEETS: unknown = process.env.THINGER_PROVISIONER_FLEETS

/** Everything the service is told by its operator, validated. */
export interface Config {
  thingerApiUrl: string
  thingerUsername: string
  thingerDeviceHost: string
  thingerTokenParam: string
  /** The SSM parameter of the deployment's answer key, which signs every success answer (docs/protocol.md, "Answer signatures"). */
  answerKeyParam: string
  /** The fleets this deployment serves, by name: from the fleets file, or the `default` fleet the settings describe. */
  fleets: Map<string, Fleet>
  fleetsSource: 'file' | 'environment'
  clockSkewSeconds: number
  ssmCacheSeconds: number
  thingerTimeoutMs: number
}

/** The deployment's stage (STAGE, `dev` when unset): it names the SSM parameters and is a dimension of every metric. */
export function stageOf(env: NodeJS.ProcessEnv): string {
  return env.STAGE || DEFAULT_STAGE
}

/**
 * Reads and validates the settings from the environment. This is the only reader of
 * `process.env` in `lib/`.
 * @throws ConfigError naming the first setting that is missing or invalid.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, bundledFleets: unknown = BUNDLED_FLEETS): Config {
  const stage = stageOf(env)
  const thingerApiUrl = readUrl(env, 'THINGER_API_URL', DEFAULT_THINGER_API_URL)
  const thingerUsername = env.THINGER_USERNAME ?? ''
  if (!THINGER_USERNAME_PATTERN.test(thingerUsername)) {
    throw new ConfigError('THINGER_USERNAME', thingerUsername ? 'must match ^[A-Za-z0-9_-]{1,32}$' : 'is required')
  }
  const thingerDeviceHost = env.THINGER_DEVICE_HOST || new URL(thingerApiUrl).host
  if (!HOST_PATTERN.test(thingerDeviceHost)) {
    throw new ConfigError('THINGER_DEVICE_HOST', 'must be a host name, optionally with :port')
  }
  const thingerTokenParam = readParamName(env, 'THINGER_TOKEN_PARAM', `/thinger-provisioner/${stage}/thinger-token`)
  const deployment: ThingerTarget = { apiUrl: thingerApiUrl, username: thingerUsername, tokenParam: thingerTokenParam, deviceHost: thingerDeviceHost }
  return {
    thingerApiUrl,
    thingerUsername,
    thingerDeviceHost,
    thingerTokenParam,
    answerKeyParam: readParamName(env, 'ANSWER_KEY_PARAM', `/thinger-provisioner/${stage}/answer-key`),
    fleets: readFleets(env, stage, bundledFleets, deployment),
    fleetsSource: bundledFleets === null || bundledFleets === undefined ? 'environment' : 'file',
    clockSkewSeconds: readInteger(env, 'CLOCK_SKEW_SECONDS', DEFAULT_CLOCK_SKEW_SECONDS, 1, 86_400),
    ssmCacheSeconds: readInteger(env, 'SSM_CACHE_SECONDS', DEFAULT_SSM_CACHE_SECONDS, 1, 86_400),
    thingerTimeoutMs: readInteger(env, 'THINGER_TIMEOUT_MS', DEFAULT_THINGER_TIMEOUT_MS, 100, 25_000),
  }
}

function readFleets(env: NodeJS.ProcessEnv, stage: string, bundled: unknown, deployment: ThingerTarget): Map<string, Fleet> {
  const definition = (typeof bundled === 'string' ? parseJson(bundled) : bundled) as FleetsDefinition | null | undefined
  if (definition === null || definition === undefined) {
    // No fleets file: the first release's settings describe the one fleet.
    const keyParam = readParamName(env, 'FLEET_KEY_PARAM', `/thinger-provisioner/${stage}/fleet-key`)
    return new Map([
      [
        DEFAULT_FLEET,
        {
          name: DEFAULT_FLEET,
          proof: ['hmac'],
          keyParam,
          keyVersions: readKeyVersions(env, 'FLEET_KEY_VERSIONS'),
          denyListParam: readParamName(env, 'DENY_LIST_PARAM', `${keyParam.slice(0, keyParam.lastIndexOf('/'))}/default-deny-list`),
          replayProtection: readSwitch(env, 'REPLAY_PROTECTION', true),
          sealing: readSealing(env),
          devicePattern: readPattern(env, 'DEVICE_ID_PATTERN', DEFAULT_DEVICE_ID_PATTERN),
          reprovision: 'rotate',
          profile: { type: 'Generic' },
          thinger: deployment,
        },
      ],
    ])
  }
  const fleets = new Map<string, Fleet>()
  for (const [name, fleet] of Object.entries(definition.fleets ?? {})) {
    const { meta, ...rest } = fleet
    const accepted = Object.fromEntries(
      Object.entries(meta ?? {}).map(([key, rule]) => [
        key,
        {
          ...(rule.pattern === undefined ? {} : { pattern: readPattern({ pattern: rule.pattern }, 'pattern', '', `fleets.${name}.meta.${key}.pattern`) }),
          ...(rule.default === undefined ? {} : { default: rule.default }),
        },
      ]),
    )
    fleets.set(name, {
      ...rest,
      name,
      meta: accepted,
      devicePattern: readPattern({ pattern: fleet.devicePattern }, 'pattern', DEFAULT_DEVICE_ID_PATTERN, `fleets.${name}.devicePattern`),
      thinger: fleetTarget(fleet.thinger, deployment),
    })
  }
  return fleets
}

/**
 * A fleet's own Thinger.io target over the deployment's: a fleet naming another API URL gets that
 * URL's host for its devices unless it names one.
 */
function fleetTarget(own: Partial<ThingerTarget> | undefined, deployment: ThingerTarget): ThingerTarget {
  if (own === undefined) return deployment
  const apiUrl = own.apiUrl ?? deployment.apiUrl
  return {
    apiUrl,
    username: own.username ?? deployment.username,
    tokenParam: own.tokenParam ?? deployment.tokenParam,
    deviceHost: own.deviceHost ?? (own.apiUrl === undefined ? deployment.deviceHost : new URL(apiUrl).host),
  }
}

function readKeyVersions(env: NodeJS.ProcessEnv, name: string): number[] {
  const raw = env[name] || '1'
  if (!/^\d{1,3}(,\d{1,3})*$/.test(raw.replace(/\s+/g, ''))) throw new ConfigError(name, 'must be a comma-separated list of key versions, such as 1,2')
  const versions = [...new Set(raw.replace(/\s+/g, '').split(',').map(Number))].sort((a, b) => a - b)
  if (versions.includes(0)) throw new ConfigError(name, 'key versions start at 1')
  return versions
}

/** SEALING: whether the one fleet of the environment answers v1 (credential in clear) requests too. */
function readSealing(env: NodeJS.ProcessEnv): 'required' | 'optional' {
  const raw = (env.SEALING ?? '').toLowerCase()
  if (raw === '') return 'optional'
  if (raw === 'required' || raw === 'optional') return raw
  throw new ConfigError('SEALING', 'must be required or optional')
}

function readSwitch(env: NodeJS.ProcessEnv, name: string, fallback: boolean): boolean {
  const raw = (env[name] ?? '').toLowerCase()
  if (raw === '') return fallback
  if (['on', 'true', '1'].includes(raw)) return true
  if (['off', 'false', '0'].includes(raw)) return false
  throw new ConfigError(name, 'must be on or off')
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    throw new ConfigError('THINGER_PROVISIONER_FLEETS', 'is not the JSON of a fleets file')
  }
}

function readUrl(env: NodeJS.ProcessEnv, name: string, fallback: string): string {
  const raw = env[name] || fallback
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw new ConfigError(name, 'must be an absolute http(s) URL')
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new ConfigError(name, 'must be an absolute http(s) URL')
  }
  if (url.username || url.password || url.search || url.hash) {
    throw new ConfigError(name, 'must not carry credentials, a query or a fragment')
  }
  return url.href.replace(/\/+$/, '')
}

function readParamName(env: NodeJS.ProcessEnv, name: string, fallback: string): string {
  const value = env[name] || fallback
  if (!SSM_PARAMETER_NAME_PATTERN.test(value)) {
    throw new ConfigError(name, 'must be an SSM parameter path starting with /')
  }
  return value
}

function readPattern(env: NodeJS.ProcessEnv, name: string, fallback: string, setting = name): RegExp {
  const source = env[name] || fallback
  try {
    // Compiled alone first, so a value like `a)|(b` cannot escape the anchors added next.
    new RegExp(source)
    // Anchored as a whole, so `esp32_[0-9a-f]{12}` cannot be satisfied by a longer ID that merely contains it.
    return new RegExp(`^(?:${source})$`)
  } catch {
    throw new ConfigError(setting, 'must be a valid regular expression')
  }
}

function readInteger(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name]
  if (raw === undefined || raw === '') return fallback
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `must be a whole number from ${min} to ${max}`)
  const value = Number(raw)
  if (value < min || value > max) throw new ConfigError(name, `must be a whole number from ${min} to ${max}`)
  return value
}
