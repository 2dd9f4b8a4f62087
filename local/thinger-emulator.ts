import { pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto'
import { createServer, STATUS_CODES } from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'

/** A permission of Thinger's device API, as named in a token's `allow` list. */
export type ThingerAction = 'ListDevices' | 'ReadDevice' | 'CreateDevice' | 'UpdateDevice' | 'DeleteDevice'

/** A device type Thinger accepts on create; only `Generic` and `MQTT` devices hold a credential. */
export type ThingerDeviceType = 'Generic' | 'MQTT' | 'HTTP' | 'Virtual'

/** An access token of an emulated account; `allow` defaults to every {@link ThingerAction}. */
export interface EmulatorToken {
  token: string
  allow?: ThingerAction[]
}

/** An emulated Thinger account, its tokens, and an optional device limit. */
export interface EmulatorAccount {
  username: string
  tokens: EmulatorToken[]
  maxDevices?: number
}

/** The accounts the emulator knows, and how hard it hashes device credentials. */
export interface ThingerEmulatorOptions {
  accounts: EmulatorAccount[]
  hashIterations?: number
}

/** A fault injected into matching API calls; the first active matching rule wins. */
export interface FaultRule {
  method?: string
  path?: string
  action: 'status' | 'latency' | 'reset' | 'hang'
  status?: number
  retryAfterSeconds?: number
  latencyMs?: number
  probability?: number
  times?: number
}

/** One Thinger API call as the emulator saw it; the path never carries the query string. */
export interface RecordedCall {
  method: string
  path: string
  status: number | null
  at: number
}

/** A device as Thinger returns it: never its credential nor the credential's hash. */
export interface StoredDeviceView {
  device: string
  name: string
  description: string
  type: ThingerDeviceType
  enabled: boolean
  asset_type?: string
  asset_group?: string
  product?: string
  created: number
  modified: number
}

/** Why a device login would be refused. */
export type LoginRefusal = 'unknown_device' | 'bad_credential' | 'disabled' | 'not_a_credential_device'

/** The answer a device connection check would get. */
export type LoginCheck = { ok: true } | { ok: false; reason: LoginRefusal }

/** A running emulator of Thinger's device REST API, with controls for tests and benchmarks. */
export interface ThingerEmulator {
  readonly url: string
  calls(): RecordedCall[]
  clearCalls(): void
  reset(): void
  setFaults(rules: FaultRule[]): void
  setLatencyMs(ms: number): void
  checkLogin(username: string, device: string, credential: string): LoginCheck
  device(username: string, device: string): Readonly<StoredDeviceView> | undefined
  devices(username: string): Readonly<StoredDeviceView>[]
  close(): Promise<void>
}

// Thinger hashes with far more iterations; the emulator only needs the shape of a salted hash,
// and benchmarks create thousands of devices, where 1000 iterations keep a create under 1 ms.
const DEFAULT_HASH_ITERATIONS = 1000
const HASH_KEY_BYTES = 32
const HASH_SALT_BYTES = 16
const MAX_BODY_BYTES = 64 * 1024
const MAX_TEXT_CHARS = 255
const MIN_CREATE_CREDENTIAL_CHARS = 6
const MIN_UPDATE_CREDENTIAL_CHARS = 1
const DEFAULT_HOST = '127.0.0.1'
const DEFAULT_PORT = 0
const DEFAULT_CLI_PORT = 8787
const ADMIN_PREFIX = '/__emulator'
const RESOURCE_ID_PATTERN = /^[a-zA-Z0-9_-]{1,32}$/
const API_ROUTE_PATTERN = /^\/v1\/users\/([^/]+)\/devices(?:\/([^/]+))?$/
const ALL_ACTIONS: readonly ThingerAction[] = ['ListDevices', 'ReadDevice', 'CreateDevice', 'UpdateDevice', 'DeleteDevice']
const COLLECTION_ACTIONS = new Map<string, ThingerAction>([['GET', 'ListDevices'], ['POST', 'CreateDevice']])
const DEVICE_ACTIONS = new Map<string, ThingerAction>([['GET', 'ReadDevice'], ['PUT', 'UpdateDevice'], ['DELETE', 'DeleteDevice']])
const DEVICE_TYPES: readonly ThingerDeviceType[] = ['Generic', 'MQTT', 'HTTP', 'Virtual']
const CREDENTIAL_DEVICE_TYPES: readonly ThingerDeviceType[] = ['Generic', 'MQTT']
const ASSET_FIELDS = ['asset_type', 'asset_group', 'product'] as const
const CREATE_FIELDS = new Set(['device', 'type', 'credentials', 'name', 'description', 'enabled', ...ASSET_FIELDS])
const UPDATE_FIELDS = new Set(['credentials', 'name', 'description', 'enabled', ...ASSET_FIELDS])
const IMMUTABLE_FIELDS = new Set(['device', 'type'])
const FAULT_FIELDS = new Set(['method', 'path', 'action', 'status', 'retryAfterSeconds', 'latencyMs', 'probability', 'times'])
const FAULT_ACTIONS = new Set(['status', 'latency', 'reset', 'hang'])
const LOOPBACK_HOSTS = new Set(['localhost', '::1', '[::1]'])
const USAGE = 'usage: tsx local/thinger-emulator.ts --user NAME --token TOKEN [--port 8787] [--host 127.0.0.1] [--max-devices N]'

type JsonObject = Record<string, unknown>

interface StoredSecret {
  salt: Buffer
  hash: Buffer
  iterations: number
}

interface StoredDevice {
  view: StoredDeviceView
  secret?: StoredSecret
}

interface TokenGrant {
  username: string
  allow: ReadonlySet<ThingerAction>
}

interface ActiveFault {
  rule: FaultRule
  pathPattern?: RegExp
  remaining: number
}

interface Reply {
  status: number
  body: unknown
  headers?: Record<string, string>
}

class EmulatorHttpError extends Error {
  constructor (readonly status: number, message: string) {
    super(message)
  }
}

const badRequest = (message: string): EmulatorHttpError => new EmulatorHttpError(400, message)

const errorBody = (message: string): JsonObject => ({ error: { message } })

const isObject = (value: unknown): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

const countChars = (text: string): number => [...text].length

const copyView = (view: StoredDeviceView): StoredDeviceView => ({
  device: view.device,
  name: view.name,
  description: view.description,
  type: view.type,
  enabled: view.enabled,
  ...(view.asset_type === undefined ? {} : { asset_type: view.asset_type }),
  ...(view.asset_group === undefined ? {} : { asset_group: view.asset_group }),
  ...(view.product === undefined ? {} : { product: view.product }),
  created: view.created,
  modified: view.modified
})

function rejectFields (body: JsonObject, allowed: ReadonlySet<string>): void {
  for (const key of Object.keys(body)) {
    if (IMMUTABLE_FIELDS.has(key) && !allowed.has(key)) throw badRequest(`'${key}' cannot be changed`)
    if (!allowed.has(key)) throw badRequest(`unknown field '${key}'`)
  }
}

function readText (body: JsonObject, field: string, minChars: number, maxChars: number): string | undefined {
  if (!Object.hasOwn(body, field)) return undefined
  const value = body[field]
  if (typeof value !== 'string' || countChars(value) < minChars || countChars(value) > maxChars) {
    throw badRequest(`'${field}' must be a string of ${minChars} to ${maxChars} characters`)
  }
  return value
}

function readBoolean (body: JsonObject, field: string): boolean | undefined {
  if (!Object.hasOwn(body, field)) return undefined
  const value = body[field]
  if (typeof value !== 'boolean') throw badRequest(`'${field}' must be a boolean`)
  return value
}

function readResourceId (body: JsonObject, field: string, allowEmpty: boolean): string | undefined {
  if (!Object.hasOwn(body, field)) return undefined
  const value = body[field]
  if (typeof value === 'string' && (RESOURCE_ID_PATTERN.test(value) || (allowEmpty && value === ''))) return value
  throw badRequest(`'${field}' must match ${RESOURCE_ID_PATTERN.source}${allowEmpty ? ' or be empty' : ''}`)
}

function parseJsonObject (text: string): JsonObject {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw badRequest('invalid JSON body')
  }
  if (!isObject(parsed)) throw badRequest('body must be a JSON object')
  return parsed
}

function readBody (req: IncomingMessage): Promise<string> {
  if (Number(req.headers['content-length']) > MAX_BODY_BYTES) {
    return Promise.reject(new EmulatorHttpError(413, 'request body too large'))
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let sizeBytes = 0
    req.on('data', (chunk: Buffer) => {
      sizeBytes += chunk.length
      // Keep draining past the cap so the 413 reaches a client that is still sending.
      if (sizeBytes <= MAX_BODY_BYTES) chunks.push(chunk)
    })
    req.on('end', () => {
      if (sizeBytes > MAX_BODY_BYTES) reject(new EmulatorHttpError(413, 'request body too large'))
      else resolve(Buffer.concat(chunks).toString('utf8'))
    })
    req.on('error', reject)
    req.on('close', () => reject(new Error('request closed before its body ended')))
  })
}

function sendJson (res: ServerResponse, reply: Reply): void {
  if (res.headersSent || res.destroyed) return
  const json = JSON.stringify(reply.body)
  res.writeHead(reply.status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(json)),
    ...reply.headers
  })
  res.end(json)
}

function hashCredential (credential: string, iterations: number): StoredSecret {
  const salt = randomBytes(HASH_SALT_BYTES)
  return { salt, iterations, hash: pbkdf2Sync(credential, salt, iterations, HASH_KEY_BYTES, 'sha256') }
}

function verifyCredential (credential: string, secret: StoredSecret): boolean {
  const candidate = pbkdf2Sync(credential, secret.salt, secret.iterations, HASH_KEY_BYTES, 'sha256')
  return timingSafeEqual(candidate, secret.hash)
}

function parseFaultRules (input: unknown): ActiveFault[] {
  if (!Array.isArray(input)) throw badRequest('faults must be an array of rules')
  return input.map((rule: unknown, index): ActiveFault => {
    const fail = (message: string): EmulatorHttpError => badRequest(`fault ${index}: ${message}`)
    if (!isObject(rule)) throw fail('must be an object')
    for (const key of Object.keys(rule)) if (!FAULT_FIELDS.has(key)) throw fail(`unknown field '${key}'`)
    const { method, path, action, status, retryAfterSeconds, latencyMs, probability, times } = rule
    if (typeof action !== 'string' || !FAULT_ACTIONS.has(action)) throw fail("'action' must be status, latency, reset or hang")
    if (method !== undefined && (typeof method !== 'string' || method === '')) throw fail("'method' must be a non-empty string")
    let pathPattern: RegExp | undefined
    if (path !== undefined) {
      if (typeof path !== 'string') throw fail("'path' must be a RegExp source")
      try {
        pathPattern = new RegExp(path)
      } catch {
        throw fail("'path' is not a valid RegExp")
      }
    }
    if (action === 'status' && !(Number.isInteger(status) && (status as number) >= 200 && (status as number) <= 599)) {
      throw fail("'status' must be an integer from 200 to 599")
    }
    if (action !== 'status' && (status !== undefined || retryAfterSeconds !== undefined)) {
      throw fail("'status' and 'retryAfterSeconds' apply to action 'status' only")
    }
    if (retryAfterSeconds !== undefined && !(Number.isInteger(retryAfterSeconds) && (retryAfterSeconds as number) >= 0)) {
      throw fail("'retryAfterSeconds' must be a non-negative integer")
    }
    if (action === 'latency' && !(typeof latencyMs === 'number' && Number.isFinite(latencyMs) && latencyMs >= 0)) {
      throw fail("'latencyMs' must be a non-negative number")
    }
    if (action !== 'latency' && latencyMs !== undefined) throw fail("'latencyMs' applies to action 'latency' only")
    if (probability !== undefined && !(typeof probability === 'number' && probability >= 0 && probability <= 1)) {
      throw fail("'probability' must be a number from 0 to 1")
    }
    if (times !== undefined && !(Number.isInteger(times) && (times as number) >= 0)) {
      throw fail("'times' must be a non-negative integer")
    }
    return {
      rule: structuredClone(rule) as unknown as FaultRule,
      ...(pathPattern === undefined ? {} : { pathPattern }),
      remaining: times === undefined ? Infinity : (times as number)
    }
  })
}

function validateOptions (options: ThingerEmulatorOptions): void {
  if (!Array.isArray(options.accounts)) throw new TypeError('accounts must be an array')
  const seenTokens = new Set<string>()
  const seenUsers = new Set<string>()
  for (const account of options.accounts) {
    if (!RESOURCE_ID_PATTERN.test(account.username)) throw new TypeError(`username '${account.username}' must match ${RESOURCE_ID_PATTERN.source}`)
    if (seenUsers.has(account.username)) throw new TypeError(`username '${account.username}' is listed twice`)
    seenUsers.add(account.username)
    if (account.maxDevices !== undefined && !(Number.isInteger(account.maxDevices) && account.maxDevices >= 0)) {
      throw new TypeError('maxDevices must be a non-negative integer')
    }
    for (const grant of account.tokens) {
      if (typeof grant.token !== 'string' || grant.token === '') throw new TypeError('tokens must be non-empty strings')
      // A token identifies its account, so two accounts cannot share one.
      if (seenTokens.has(grant.token)) throw new TypeError('a token is listed twice')
      seenTokens.add(grant.token)
      for (const action of grant.allow ?? []) {
        if (!ALL_ACTIONS.includes(action)) throw new TypeError(`unknown action '${String(action)}'`)
      }
    }
  }
  const iterations = options.hashIterations
  if (iterations !== undefined && !(Number.isInteger(iterations) && iterations >= 1)) {
    throw new TypeError('hashIterations must be a positive integer')
  }
}

const isLoopback = (host: string): boolean => LOOPBACK_HOSTS.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host)

/**
 * Starts an emulator of Thinger.io's device REST API on loopback and resolves once it listens.
 * Throws a TypeError on invalid options or a non-loopback host (the admin routes have no auth).
 */
async function startThingerEmulator (
  options: ThingerEmulatorOptions & { port?: number; host?: string }
): Promise<ThingerEmulator> {
  validateOptions(options)
  const host = options.host ?? DEFAULT_HOST
  if (!isLoopback(host)) throw new TypeError(`host '${host}' is not a loopback address`)
  const hashIterations = options.hashIterations ?? DEFAULT_HASH_ITERATIONS

  const grants = new Map<string, TokenGrant>()
  const accounts = new Map<string, { maxDevices?: number; devices: Map<string, StoredDevice> }>()
  for (const account of options.accounts) {
    accounts.set(account.username, {
      ...(account.maxDevices === undefined ? {} : { maxDevices: account.maxDevices }),
      devices: new Map()
    })
    for (const grant of account.tokens) {
      grants.set(grant.token, { username: account.username, allow: new Set(grant.allow ?? ALL_ACTIONS) })
    }
  }

  let recorded: RecordedCall[] = []
  let faults: ActiveFault[] = []
  let latencyMs = 0
  const sockets = new Set<Socket>()
  const timers = new Set<NodeJS.Timeout>()
  let closing: Promise<void> | undefined

  const sleep = (ms: number): Promise<void> => new Promise((resolve) => {
    const timer = setTimeout(() => {
      timers.delete(timer)
      resolve()
    }, ms)
    timers.add(timer)
  })

  function pickFault (method: string, pathname: string): FaultRule | undefined {
    for (const fault of faults) {
      if (fault.remaining <= 0) continue
      if (fault.rule.method !== undefined && fault.rule.method.toUpperCase() !== method.toUpperCase()) continue
      if (fault.pathPattern !== undefined && !fault.pathPattern.test(pathname)) continue
      // A rule that loses its draw lets later rules match, and is not spent.
      if (Math.random() >= (fault.rule.probability ?? 1)) continue
      fault.remaining -= 1
      return fault.rule
    }
    return undefined
  }

  function authorize (req: IncomingMessage, url: URL, user: string, action: ThingerAction): void {
    const header = req.headers.authorization
    const token = header === undefined
      ? url.searchParams.get('authorization') ?? undefined
      : /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1]
    const grant = token === undefined ? undefined : grants.get(token)
    if (grant === undefined) throw new EmulatorHttpError(401, 'unauthorized')
    // Malformed IDs answer 404 (after the 401): no such user or device can exist.
    if (!RESOURCE_ID_PATTERN.test(user)) throw new EmulatorHttpError(404, 'user not found')
    if (grant.username !== user || !grant.allow.has(action)) throw new EmulatorHttpError(403, 'forbidden')
  }

  function devicesOf (username: string): Map<string, StoredDevice> {
    const account = accounts.get(username)
    if (account === undefined) throw new EmulatorHttpError(404, 'user not found')
    return account.devices
  }

  function findDevice (username: string, deviceId: string): StoredDevice {
    const stored = RESOURCE_ID_PATTERN.test(deviceId) ? devicesOf(username).get(deviceId) : undefined
    if (stored === undefined) throw new EmulatorHttpError(404, 'device not found')
    return stored
  }

  function listDevices (username: string, query: URLSearchParams): Reply {
    const readPaging = (name: string): number | undefined => {
      const raw = query.get(name)
      if (raw === null) return undefined
      if (!/^\d+$/.test(raw)) throw badRequest(`'${name}' must be a non-negative integer`)
      return Number(raw)
    }
    const count = readPaging('count')
    // `index` is taken as the number of devices to skip; Thinger's exact paging is unconfirmed.
    const index = readPaging('index') ?? 0
    const name = query.get('name')?.toLowerCase()
    const exactFilters = (['type', ...ASSET_FIELDS] as const)
      .map((field) => [field, query.get(field)] as const)
      .filter((pair): pair is readonly [typeof pair[0], string] => pair[1] !== null)
    const matching = [...devicesOf(username).values()]
      .map((stored) => stored.view)
      .filter((view) => name === undefined ||
        view.device.toLowerCase().includes(name) || view.name.toLowerCase().includes(name))
      .filter((view) => exactFilters.every(([field, value]) => view[field] === value))
    const page = matching.slice(index, count === undefined ? undefined : index + count)
    return { status: 200, body: page.map(copyView) }
  }

  function createDevice (username: string, body: JsonObject): Reply {
    rejectFields(body, CREATE_FIELDS)
    const deviceId = readResourceId(body, 'device', false)
    if (deviceId === undefined) throw badRequest("'device' is required")
    const type = body.type ?? 'Generic'
    if (typeof type !== 'string' || !DEVICE_TYPES.includes(type as ThingerDeviceType)) {
      throw badRequest(`'type' must be one of ${DEVICE_TYPES.join(', ')}`)
    }
    // The schema's oneOf: Generic/MQTT need credentials; HTTP/Virtual must not carry them.
    // A body without `type` is taken as Generic, so it needs credentials too.
    const takesCredential = CREDENTIAL_DEVICE_TYPES.includes(type as ThingerDeviceType)
    let credential: string | undefined
    if (takesCredential) {
      credential = readText(body, 'credentials', MIN_CREATE_CREDENTIAL_CHARS, MAX_TEXT_CHARS)
      if (credential === undefined) throw badRequest(`'credentials' is required for ${type} devices`)
    } else if (Object.hasOwn(body, 'credentials')) {
      throw badRequest(`'credentials' is not allowed for ${type} devices`)
    }
    const description = readText(body, 'description', takesCredential ? 0 : 1, MAX_TEXT_CHARS) ?? ''
    const name = readText(body, 'name', 0, MAX_TEXT_CHARS) ?? ''
    const enabled = readBoolean(body, 'enabled') ?? true
    const assets: Partial<Record<typeof ASSET_FIELDS[number], string>> = {}
    for (const field of ASSET_FIELDS) {
      const value = readResourceId(body, field, false)
      if (value !== undefined) assets[field] = value
    }

    const account = accounts.get(username)
    const devices = devicesOf(username)
    if (devices.has(deviceId)) throw badRequest('device already exists')
    if (account?.maxDevices !== undefined && devices.size >= account.maxDevices) {
      throw badRequest('device limit reached for this account')
    }
    const now = Date.now()
    devices.set(deviceId, {
      view: { device: deviceId, name, description, type: type as ThingerDeviceType, enabled, ...assets, created: now, modified: now },
      ...(credential === undefined ? {} : { secret: hashCredential(credential, hashIterations) })
    })
    return { status: 200, body: {} }
  }

  function updateDevice (stored: StoredDevice, body: JsonObject): Reply {
    rejectFields(body, UPDATE_FIELDS)
    const credential = readText(body, 'credentials', MIN_UPDATE_CREDENTIAL_CHARS, MAX_TEXT_CHARS)
    if (credential !== undefined && !CREDENTIAL_DEVICE_TYPES.includes(stored.view.type)) {
      throw badRequest(`'credentials' is not allowed for ${stored.view.type} devices`)
    }
    const name = readText(body, 'name', 0, MAX_TEXT_CHARS)
    const description = readText(body, 'description', 0, MAX_TEXT_CHARS)
    const enabled = readBoolean(body, 'enabled')
    const assets = ASSET_FIELDS.map((field) => [field, readResourceId(body, field, true)] as const)

    const view = stored.view
    if (credential !== undefined) stored.secret = hashCredential(credential, hashIterations)
    if (name !== undefined) view.name = name
    if (description !== undefined) view.description = description
    if (enabled !== undefined) view.enabled = enabled
    for (const [field, value] of assets) {
      if (value === '') delete view[field]
      else if (value !== undefined) view[field] = value
    }
    view.modified = Date.now()
    return { status: 200, body: {} }
  }

  async function answerApi (req: IncomingMessage, url: URL): Promise<Reply> {
    const match = API_ROUTE_PATTERN.exec(url.pathname)
    if (match === null) throw new EmulatorHttpError(404, 'not found')
    let user: string
    let deviceId: string | undefined
    try {
      user = decodeURIComponent(match[1] ?? '')
      deviceId = match[2] === undefined ? undefined : decodeURIComponent(match[2])
    } catch {
      throw new EmulatorHttpError(404, 'not found')
    }
    const action = (deviceId === undefined ? COLLECTION_ACTIONS : DEVICE_ACTIONS).get(req.method ?? 'GET')
    if (action === undefined) throw new EmulatorHttpError(404, 'not found')
    authorize(req, url, user, action)

    switch (action) {
      case 'ListDevices':
        return listDevices(user, url.searchParams)
      case 'ReadDevice':
        return { status: 200, body: copyView(findDevice(user, deviceId as string).view) }
      case 'CreateDevice':
        return createDevice(user, parseJsonObject(await readBody(req)))
      case 'UpdateDevice': {
        const stored = findDevice(user, deviceId as string)
        return updateDevice(stored, parseJsonObject(await readBody(req)))
      }
      case 'DeleteDevice':
        findDevice(user, deviceId as string)
        devicesOf(user).delete(deviceId as string)
        return { status: 200, body: {} }
    }
  }

  async function answerAdmin (req: IncomingMessage, route: string): Promise<Reply> {
    const method = req.method ?? 'GET'
    const readJson = async (): Promise<unknown> => {
      try {
        return JSON.parse(await readBody(req))
      } catch (error) {
        throw error instanceof EmulatorHttpError ? error : badRequest('invalid JSON body')
      }
    }
    const deviceMatch = /^\/devices\/([^/]+)(?:\/([^/]+))?$/.exec(route)
    if (method === 'GET' && deviceMatch !== null) {
      let user: string
      let deviceId: string | undefined
      try {
        user = decodeURIComponent(deviceMatch[1] ?? '')
        deviceId = deviceMatch[2] === undefined ? undefined : decodeURIComponent(deviceMatch[2])
      } catch {
        throw new EmulatorHttpError(404, 'not found')
      }
      if (deviceId === undefined) return { status: 200, body: emulator.devices(user) }
      const view = emulator.device(user, deviceId)
      return view === undefined ? { status: 404, body: errorBody('device not found') } : { status: 200, body: view }
    }
    switch (`${method} ${route}`) {
      case 'GET /calls':
        return { status: 200, body: emulator.calls() }
      case 'DELETE /calls':
        emulator.clearCalls()
        return { status: 200, body: {} }
      case 'POST /login': {
        const body = await readJson()
        if (!isObject(body) || !['username', 'device', 'credential'].every((key) => typeof body[key] === 'string')) {
          throw badRequest('body must be {"username","device","credential"} strings')
        }
        const check = emulator.checkLogin(body.username as string, body.device as string, body.credential as string)
        return { status: check.ok ? 200 : 401, body: check }
      }
      case 'POST /reset':
        emulator.reset()
        return { status: 200, body: {} }
      case 'PUT /faults':
        emulator.setFaults(await readJson() as FaultRule[])
        return { status: 200, body: {} }
      case 'DELETE /faults':
        emulator.setFaults([])
        return { status: 200, body: {} }
      case 'PUT /latency': {
        const body = await readJson()
        if (!isObject(body)) throw badRequest('body must be {"ms": N}')
        emulator.setLatencyMs(body.ms as number)
        return { status: 200, body: {} }
      }
      default:
        throw new EmulatorHttpError(404, 'not found')
    }
  }

  async function settle (answer: () => Promise<Reply>): Promise<Reply> {
    try {
      return await answer()
    } catch (error) {
      if (error instanceof EmulatorHttpError) return { status: error.status, body: errorBody(error.message) }
      return { status: 500, body: errorBody('internal error') }
    }
  }

  async function handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://emulator.invalid')
    if (url.pathname === ADMIN_PREFIX || url.pathname.startsWith(`${ADMIN_PREFIX}/`)) {
      sendJson(res, await settle(() => answerAdmin(req, url.pathname.slice(ADMIN_PREFIX.length))))
      return
    }

    const call: RecordedCall = { method: req.method ?? 'GET', path: url.pathname, status: null, at: Date.now() }
    recorded.push(call)
    const fault = pickFault(call.method, call.path)
    if (fault?.action === 'reset') {
      req.socket.destroy()
      return
    }
    if (fault?.action === 'hang') return
    const delayMs = latencyMs + (fault?.action === 'latency' ? fault.latencyMs ?? 0 : 0)
    if (delayMs > 0) await sleep(delayMs)

    const reply: Reply = fault?.action === 'status'
      ? {
          status: fault.status ?? 500,
          body: errorBody(STATUS_CODES[fault.status ?? 500]?.toLowerCase() ?? 'emulated fault'),
          ...(fault.retryAfterSeconds === undefined ? {} : { headers: { 'retry-after': String(fault.retryAfterSeconds) } })
        }
      : await settle(() => answerApi(req, url))
    call.status = reply.status
    sendJson(res, reply)
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => sendJson(res, { status: 500, body: errorBody('internal error') }))
  })
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? DEFAULT_PORT, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const { port } = server.address() as AddressInfo

  const emulator: ThingerEmulator = {
    url: `http://${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${port}`,
    calls: () => recorded.map((call) => ({ ...call })),
    clearCalls: () => {
      recorded = []
    },
    reset: () => {
      for (const account of accounts.values()) account.devices.clear()
      recorded = []
      faults = []
    },
    setFaults: (rules) => {
      faults = parseFaultRules(rules)
    },
    setLatencyMs: (ms) => {
      if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) throw badRequest('latency must be a non-negative number of ms')
      latencyMs = ms
    },
    checkLogin: (username, deviceId, credential) => {
      const stored = accounts.get(username)?.devices.get(deviceId)
      if (stored === undefined) return { ok: false, reason: 'unknown_device' }
      if (stored.secret === undefined) return { ok: false, reason: 'not_a_credential_device' }
      // The credential is checked first so that only its holder learns the device is disabled.
      if (!verifyCredential(credential, stored.secret)) return { ok: false, reason: 'bad_credential' }
      if (!stored.view.enabled) return { ok: false, reason: 'disabled' }
      return { ok: true }
    },
    device: (username, deviceId) => {
      const stored = accounts.get(username)?.devices.get(deviceId)
      return stored === undefined ? undefined : copyView(stored.view)
    },
    devices: (username) => [...(accounts.get(username)?.devices.values() ?? [])].map((stored) => copyView(stored.view)),
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        for (const timer of timers) clearTimeout(timer)
        timers.clear()
        server.close(() => resolve())
        // Hanging calls never end by themselves: cut every connection so close() returns.
        server.closeAllConnections()
        for (const socket of sockets) socket.destroy()
      })
      return closing
    }
  }
  return emulator
}

async function runFromCommandLine (args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      port: { type: 'string', default: String(DEFAULT_CLI_PORT) },
      host: { type: 'string', default: DEFAULT_HOST },
      user: { type: 'string' },
      token: { type: 'string' },
      'max-devices': { type: 'string' }
    }
  })
  if (values.user === undefined || values.token === undefined) throw new TypeError(USAGE)
  const port = Number(values.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new TypeError(`invalid port '${values.port}'\n${USAGE}`)
  const maxDevices = values['max-devices'] === undefined ? undefined : Number(values['max-devices'])
  const emulator = await startThingerEmulator({
    accounts: [{ username: values.user, tokens: [{ token: values.token }], ...(maxDevices === undefined ? {} : { maxDevices }) }],
    port,
    host: values.host
  })
  console.log(emulator.url)
  const stop = (): void => {
    void emulator.close()
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runFromCommandLine(process.argv.slice(2)).catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error)
    process.exit(1)
  })
}

export { startThingerEmulator }
