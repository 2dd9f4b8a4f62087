import { createHmac, randomBytes, randomUUID } from 'node:crypto'
import { createServer } from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { closeServer } from './close-server.js'

const DEFAULT_HOST = '127.0.0.1'
const DEFAULT_REGION = 'us-east-1'
const DEFAULT_CLI_PORT = 4583
const DEFAULT_PARAMETER_TYPE = 'SecureString'
const ACCOUNT_ID = '000000000000'
const TARGET_PREFIX = 'AmazonSSM.'
const JSON_CONTENT_TYPE = 'application/x-amz-json-1.1'
const SIGV4_PREFIX = 'AWS4-HMAC-SHA256'
const MAX_BODY_BYTES = 1024 * 1024
const MAX_NAME_CHARS = 1011
const MAX_HIERARCHY_LEVELS = 15
const MAX_VALUE_CHARS = 4096
const MAX_NAMES_PER_GET = 10
const MAX_RESULTS_PER_PAGE = 10
const MAX_RECORDED_CALLS = 1000
const PARAMETER_TYPES = ['String', 'SecureString', 'StringList'] as const
const FAULT_ACTIONS = ['throttle', 'error', 'latency', 'reset', 'hang'] as const
const NAME_PATTERN = /^[A-Za-z0-9_.\-/]+$/
const RESERVED_PREFIX_PATTERN = /^\/?(aws|ssm)/i
const ARN_PATTERN = /^arn:aws[a-z-]*:ssm:[a-z0-9-]*:\d{12}:parameter(\/.+)$/
const VERSION_SELECTOR_PATTERN = /^[1-9]\d{0,8}$/
// The first bytes of a KMS ciphertext blob, so an undecrypted SecureString looks like real SSM's.
const CIPHERTEXT_HEADER = Buffer.from([0x01, 0x02, 0x02, 0x00, 0x78])
const NAME_RULES_MESSAGE =
  'Parameter name: can\'t be prefixed with "aws" or "ssm" (case-insensitive). If formed as a path, it can ' +
  'consist of sub-paths divided by slash symbol; each sub-path can be formed as a mix of letters, numbers and ' +
  'the following 3 symbols .-_'

/** A parameter the local SSM holds from its start. */
export interface SsmParameterSeed {
  name: string
  value: string
  /** Defaults to SecureString. */
  type?: 'String' | 'SecureString' | 'StringList'
}

/**
 * A fault injected before an operation runs. Rules are tried in order; a `latency` rule delays and
 * lets the next rules apply, any other action ends the request. `latencyMs` on another action delays it.
 */
export interface SsmFaultRule {
  /** An operation such as `GetParameters`; absent matches every operation. */
  operation?: string
  action: 'throttle' | 'error' | 'latency' | 'reset' | 'hang'
  latencyMs?: number
  /** Chance in [0, 1] that a matching request is hit; defaults to 1. */
  probability?: number
  /** How many requests the rule hits before it is spent; absent means unlimited. */
  times?: number
}

/** One request the local SSM received: names only, never values. `status` is null when nothing was answered. */
export interface SsmCall {
  operation: string
  names: string[]
  status: number | null
  /** Epoch milliseconds at which the request arrived. */
  at: number
}

/** A running local SSM endpoint and the controls tests and tools use on it. */
export interface LocalSsm {
  /** `http://HOST:PORT`, the value for `AWS_ENDPOINT_URL_SSM`. */
  readonly url: string
  calls(): SsmCall[]
  clearCalls(): void
  /** Replaces every fault rule. @throws TypeError on a malformed rule. */
  setFaults(rules: SsmFaultRule[]): void
  /** Stores a value as a new version, overwriting silently. @throws TypeError on an invalid name, value or type. */
  put(name: string, value: string, type?: SsmParameterSeed['type']): void
  /** The latest version in plaintext, or undefined. */
  get(name: string): { value: string; type: string; version: number } | undefined
  delete(name: string): void
  /** Stops listening and drops every connection, hung ones included. */
  close(): Promise<void>
}

type ParameterType = (typeof PARAMETER_TYPES)[number]
type Input = Record<string, unknown>

interface StoredVersion {
  version: number
  value: string
  type: ParameterType
  modifiedAtMs: number
}

interface ArmedFault {
  rule: SsmFaultRule
  remaining: number
}

interface NameReference {
  name: string
  version?: number
  selector?: string
}

class SsmError extends Error {
  readonly type: string
  readonly status: number

  constructor(type: string, message: string, status = 400) {
    super(message)
    this.type = type
    this.status = status
  }
}

class ParameterStore {
  readonly #region: string
  readonly #parameters = new Map<string, StoredVersion[]>()
  // Keyed per instance: undecrypted values are opaque and reveal nothing about the plaintext.
  readonly #ciphertextKey = randomBytes(32)

  constructor(region: string) {
    this.#region = region
  }

  latest(name: string): StoredVersion | undefined {
    return this.#parameters.get(name)?.at(-1)
  }

  has(name: string): boolean {
    return this.#parameters.has(name)
  }

  put(name: string, value: string, type: ParameterType): number {
    const versions = this.#parameters.get(name) ?? []
    const version = (versions.at(-1)?.version ?? 0) + 1
    versions.push({ version, value, type, modifiedAtMs: Date.now() })
    this.#parameters.set(name, versions)
    return version
  }

  delete(name: string): boolean {
    return this.#parameters.delete(name)
  }

  names(): string[] {
    return [...this.#parameters.keys()].sort()
  }

  resolve(reference: NameReference): { name: string; stored: StoredVersion } | 'no-parameter' | 'no-version' {
    const name = this.#resolveName(reference.name)
    const versions = name === undefined ? undefined : this.#parameters.get(name)
    if (name === undefined || versions === undefined) return 'no-parameter'
    const stored = reference.version === undefined ? versions.at(-1) : versions.find((v) => v.version === reference.version)
    return stored === undefined ? 'no-version' : { name, stored }
  }

  describe(name: string, stored: StoredVersion, withDecryption: boolean, selector?: string): Input {
    const path = name.startsWith('/') ? name : `/${name}`
    return {
      Name: name,
      Type: stored.type,
      Value: stored.type === 'SecureString' && !withDecryption ? this.#encrypt(name, stored) : stored.value,
      Version: stored.version,
      ...(selector === undefined ? {} : { Selector: selector }),
      LastModifiedDate: stored.modifiedAtMs / 1000,
      ARN: `arn:aws:ssm:${this.#region}:${ACCOUNT_ID}:parameter${path}`,
      DataType: 'text',
    }
  }

  // An ARN names "foo" and "/foo" alike as "parameter/foo"; the hierarchical one wins, as it is the usual case.
  #resolveName(name: string): string | undefined {
    if (this.#parameters.has(name)) return name
    const bare = name.slice(1)
    return name.startsWith('/') && !bare.includes('/') && this.#parameters.has(bare) ? bare : undefined
  }

  #encrypt(name: string, stored: StoredVersion): string {
    const mac = createHmac('sha256', this.#ciphertextKey).update(`${name}\0${stored.version}\0${stored.value}`)
    return Buffer.concat([CIPHERTEXT_HEADER, mac.digest()]).toString('base64')
  }
}

/**
 * Starts an HTTP endpoint speaking the SSM JSON 1.1 protocol for GetParameter, GetParameters,
 * GetParametersByPath, PutParameter and DeleteParameter, holding parameters in memory.
 * @throws TypeError when a seed is invalid; rejects when the port cannot be bound.
 */
export async function startLocalSsm(
  options: { parameters?: SsmParameterSeed[]; port?: number; host?: string; region?: string } = {},
): Promise<LocalSsm> {
  const host = options.host ?? DEFAULT_HOST
  const store = new ParameterStore(options.region ?? DEFAULT_REGION)
  const recorded: SsmCall[] = []
  const sockets = new Set<Socket>()
  const timers = new Set<NodeJS.Timeout>()
  let faults: ArmedFault[] = []

  const putDirectly = (name: string, value: string, type?: SsmParameterSeed['type']): void => {
    try {
      validateWritableName(name)
      validateValue(value)
    } catch (error) {
      throw new TypeError(error instanceof Error ? error.message : String(error))
    }
    if (type !== undefined && !isParameterType(type)) throw new TypeError(`Unknown parameter type ${String(type)}`)
    store.put(name, value, type ?? store.latest(name)?.type ?? DEFAULT_PARAMETER_TYPE)
  }
  for (const seed of options.parameters ?? []) putDirectly(seed.name, seed.value, seed.type)

  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => {
        timers.delete(timer)
        resolve()
      }, ms)
      timers.add(timer)
    })

  const applyFaults = (rules: SsmFaultRule[]): void => {
    rules.forEach(validateFaultRule)
    faults = rules.map((rule) => ({ rule: { ...rule }, remaining: rule.times ?? Number.POSITIVE_INFINITY }))
  }

  // Test-only routes for other processes (the local stack's users, benchmarks): the same controls as the returned object.
  const handleAdmin = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const answer = (status: number, body: unknown): void => {
      const payload = JSON.stringify(body)
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) })
      res.end(payload)
    }
    const route = `${req.method} ${req.url?.split('?')[0]}`
    if (route === 'GET /__ssm/calls') return answer(200, recorded)
    if (route === 'DELETE /__ssm/calls') {
      recorded.length = 0
      return answer(200, {})
    }
    if (route === 'DELETE /__ssm/faults') {
      faults = []
      return answer(200, {})
    }
    if (route === 'PUT /__ssm/faults') {
      try {
        const rules = JSON.parse((await readBody(req))?.toString('utf8') ?? '') as unknown
        if (!Array.isArray(rules)) throw new TypeError('the body must be a JSON array of fault rules')
        applyFaults(rules as SsmFaultRule[])
        return answer(200, {})
      } catch (error) {
        return answer(400, { error: { message: error instanceof Error ? error.message : String(error) } })
      }
    }
    return answer(404, { error: { message: `no admin route ${route}` } })
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (req.url?.startsWith('/__ssm/')) return handleAdmin(req, res)
    const target = headerOf(req, 'x-amz-target')
    const operation = target.startsWith(TARGET_PREFIX) ? target.slice(TARGET_PREFIX.length) : target
    const call: SsmCall = { operation, names: [], status: null, at: Date.now() }
    recorded.push(call)
    if (recorded.length > MAX_RECORDED_CALLS) recorded.shift()

    const send = (status: number, body: Input, errorType?: string): void => {
      // A client that gave up during injected latency got no answer, so the call keeps status null.
      if (res.headersSent || res.destroyed) return
      call.status = status
      const payload = JSON.stringify(body)
      res.writeHead(status, {
        'content-type': JSON_CONTENT_TYPE,
        'content-length': Buffer.byteLength(payload),
        'x-amzn-requestid': randomUUID(),
        ...(errorType === undefined ? {} : { 'x-amzn-errortype': errorType }),
      })
      res.end(payload)
    }
    const fail = (error: SsmError): void => send(error.status, { __type: error.type, message: error.message }, error.type)

    try {
      const input = parseBody(await readBody(req))
      call.names = namesIn(input)
      if (!headerOf(req, 'authorization').startsWith(SIGV4_PREFIX)) {
        throw new SsmError('MissingAuthenticationTokenException', 'Missing Authentication Token')
      }
      const run = req.method === 'POST' && target.startsWith(TARGET_PREFIX) ? OPERATIONS[operation] : undefined
      if (run === undefined) throw new SsmError('UnknownOperationException', `Unknown operation ${operation}`)
      if (input instanceof SsmError) throw input

      for (const fault of faults) {
        const { rule } = fault
        if (rule.operation !== undefined && rule.operation !== operation) continue
        if (fault.remaining <= 0 || Math.random() >= (rule.probability ?? 1)) continue
        fault.remaining -= 1
        if (rule.latencyMs !== undefined) await sleep(rule.latencyMs)
        if (rule.action === 'latency') continue
        if (rule.action === 'hang') return
        if (rule.action === 'reset') {
          req.socket.resetAndDestroy()
          return
        }
        throw rule.action === 'throttle'
          ? new SsmError('ThrottlingException', 'Rate exceeded')
          : new SsmError('InternalServerError', 'Injected fault: internal server error', 500)
      }
      send(200, run(store, input))
    } catch (error) {
      fail(error instanceof SsmError ? error : new SsmError('InternalServerError', 'Internal server error', 500))
    }
  }

  const server = createServer((req, res) => void handle(req, res))
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const { port } = server.address() as AddressInfo
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`
  let closing: Promise<void> | undefined

  return {
    url,
    calls: () => recorded.map((call) => ({ ...call, names: [...call.names] })),
    clearCalls: () => {
      recorded.length = 0
    },
    setFaults: (rules) => {
      applyFaults(rules)
    },
    put: putDirectly,
    get: (name) => {
      const latest = store.latest(name)
      return latest === undefined ? undefined : { value: latest.value, type: latest.type, version: latest.version }
    },
    delete: (name) => {
      store.delete(name)
    },
    close: () => {
      closing ??= closeServer(server, sockets, timers)
      return closing
    },
  }
}

const OPERATIONS: Record<string, (store: ParameterStore, input: Input) => Input> = {
  GetParameter(store, input) {
    const raw = readString(input, 'Name', 'name', true)
    const reference = parseNameReference(raw)
    const found = store.resolve(reference)
    if (found === 'no-parameter') throw new SsmError('ParameterNotFound', `Parameter ${raw} not found.`)
    if (found === 'no-version') {
      throw new SsmError('ParameterVersionNotFound', `Systems Manager could not find version ${reference.version} of ${reference.name}.`)
    }
    return { Parameter: store.describe(found.name, found.stored, readDecryption(input), reference.selector) }
  },

  GetParameters(store, input) {
    const names = readStringArray(input, 'Names', 'names')
    if (names.length < 1 || names.length > MAX_NAMES_PER_GET) {
      throw new SsmError(
        'ValidationException',
        `1 validation error detected: Value at 'names' failed to satisfy constraint: Member must have length ` +
          `between 1 and ${MAX_NAMES_PER_GET}`,
      )
    }
    const withDecryption = readDecryption(input)
    const parameters: Input[] = []
    const invalid: string[] = []
    for (const raw of new Set(names)) {
      const reference = parseNameReference(raw)
      const found = store.resolve(reference)
      if (typeof found === 'string') invalid.push(raw)
      else parameters.push(store.describe(found.name, found.stored, withDecryption, reference.selector))
    }
    return { Parameters: parameters, InvalidParameters: invalid }
  },

  GetParametersByPath(store, input) {
    const path = normalizePath(readString(input, 'Path', 'path', true))
    const recursive = readBoolean(input, 'Recursive', 'recursive')
    const withDecryption = readDecryption(input)
    const maxResults = readInteger(input, 'MaxResults', 'maxResults') ?? MAX_RESULTS_PER_PAGE
    if (maxResults < 1 || maxResults > MAX_RESULTS_PER_PAGE) {
      throw new SsmError(
        'ValidationException',
        `1 validation error detected: Value '${maxResults}' at 'maxResults' failed to satisfy constraint: ` +
          `Member must have value between 1 and ${MAX_RESULTS_PER_PAGE}`,
      )
    }
    const filters = input.ParameterFilters
    if (Array.isArray(filters) && filters.length > 0) {
      throw new SsmError('ValidationException', 'ParameterFilters are not supported by the local SSM')
    }
    const token = readString(input, 'NextToken', 'nextToken', false)
    const after = token === undefined ? undefined : decodeNextToken(token, path, recursive)

    const prefix = path === '/' ? '/' : `${path}/`
    const matching = store
      .names()
      .filter((name) => name.startsWith(prefix) && (recursive || !name.slice(prefix.length).includes('/')))
      .filter((name) => after === undefined || name > after)
    const page = matching.slice(0, maxResults)
    const last = page.at(-1)
    const parameters = page.map((name) => store.describe(name, store.latest(name) as StoredVersion, withDecryption))
    return matching.length > page.length && last !== undefined
      ? { Parameters: parameters, NextToken: encodeNextToken(path, recursive, last) }
      : { Parameters: parameters }
  },

  PutParameter(store, input) {
    const name = readString(input, 'Name', 'name', true)
    const value = readString(input, 'Value', 'value', true)
    const type = readString(input, 'Type', 'type', false)
    const overwrite = readBoolean(input, 'Overwrite', 'overwrite')
    validateWritableName(name)
    validateValue(value)
    if (type !== undefined && !isParameterType(type)) {
      throw new SsmError(
        'ValidationException',
        `1 validation error detected: Value '${type}' at 'type' failed to satisfy constraint: Member must satisfy ` +
          `enum value set: [${PARAMETER_TYPES.join(', ')}]`,
      )
    }
    const existing = store.latest(name)
    if (existing !== undefined && !overwrite) {
      throw new SsmError(
        'ParameterAlreadyExists',
        'The parameter already exists. To overwrite this value, set the overwrite option in the request to true.',
      )
    }
    const effectiveType = type ?? existing?.type
    if (effectiveType === undefined) {
      throw new SsmError('ValidationException', 'A parameter type is required when you create a parameter.')
    }
    return { Version: store.put(name, value, effectiveType), Tier: 'Standard' }
  },

  DeleteParameter(store, input) {
    const raw = readString(input, 'Name', 'name', true)
    const reference = parseNameReference(raw)
    if (reference.selector !== undefined) throw new SsmError('ValidationException', NAME_RULES_MESSAGE)
    const found = store.resolve(reference)
    if (typeof found === 'string') throw new SsmError('ParameterNotFound', `Parameter ${raw} not found.`)
    store.delete(found.name)
    return {}
  },
}

async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size <= MAX_BODY_BYTES) chunks.push(chunk)
  }
  return size > MAX_BODY_BYTES ? undefined : Buffer.concat(chunks)
}

// A body that cannot be read as an object is reported only after authentication and the operation are checked.
function parseBody(body: Buffer | undefined): Input | SsmError {
  if (body === undefined) return new SsmError('SerializationException', `Request body exceeds ${MAX_BODY_BYTES} bytes`)
  if (body.length === 0) return {}
  try {
    const parsed: unknown = JSON.parse(body.toString('utf8'))
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) return parsed as Input
  } catch {
    // Reported below, as real SSM does, without echoing the body.
  }
  return new SsmError('SerializationException', 'Request body is not a JSON object')
}

function namesIn(input: Input | SsmError): string[] {
  if (input instanceof SsmError) return []
  const names = [input.Name, input.Path, ...(Array.isArray(input.Names) ? input.Names : [])]
  return names.filter((name): name is string => typeof name === 'string')
}

function headerOf(req: IncomingMessage, name: string): string {
  const value = req.headers[name]
  return (Array.isArray(value) ? value[0] : value) ?? ''
}

function readString(input: Input, key: string, member: string, required: true): string
function readString(input: Input, key: string, member: string, required: false): string | undefined
function readString(input: Input, key: string, member: string, required: boolean): string | undefined {
  const value = input[key]
  if (value === undefined || value === null) {
    if (!required) return undefined
    throw new SsmError(
      'ValidationException',
      `1 validation error detected: Value null at '${member}' failed to satisfy constraint: Member must not be null`,
    )
  }
  if (typeof value !== 'string') throw new SsmError('SerializationException', `${key} must be a string`)
  return value
}

function readStringArray(input: Input, key: string, member: string): string[] {
  const value = input[key]
  if (value === undefined || value === null) {
    throw new SsmError(
      'ValidationException',
      `1 validation error detected: Value null at '${member}' failed to satisfy constraint: Member must not be null`,
    )
  }
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) {
    throw new SsmError('SerializationException', `${key} must be a list of strings`)
  }
  return value
}

function readBoolean(input: Input, key: string, member: string): boolean {
  const value = input[key]
  if (value === undefined || value === null) return false
  if (typeof value !== 'boolean') throw new SsmError('SerializationException', `${member} must be a boolean`)
  return value
}

function readDecryption(input: Input): boolean {
  return readBoolean(input, 'WithDecryption', 'withDecryption')
}

function readInteger(input: Input, key: string, member: string): number | undefined {
  const value = input[key]
  if (value === undefined || value === null) return undefined
  if (!Number.isInteger(value)) throw new SsmError('SerializationException', `${member} must be an integer`)
  return value as number
}

function parseNameReference(raw: string): NameReference {
  const arn = ARN_PATTERN.exec(raw)
  const unqualified = arn?.[1] ?? raw
  const [name = '', selector, ...extra] = unqualified.split(':')
  if (extra.length > 0) throw new SsmError('ValidationException', NAME_RULES_MESSAGE)
  validateName(name)
  if (selector === undefined) return { name }
  if (!VERSION_SELECTOR_PATTERN.test(selector)) {
    throw new SsmError('ValidationException', `Selector :${selector} is not a version; the local SSM has no labels`)
  }
  return { name, version: Number(selector), selector: `:${selector}` }
}

function validateName(name: string): void {
  if (name.length < 1 || name.length > MAX_NAME_CHARS) {
    throw new SsmError('ValidationException', `Parameter name must be 1 to ${MAX_NAME_CHARS} characters long.`)
  }
  if (!NAME_PATTERN.test(name)) throw new SsmError('ValidationException', NAME_RULES_MESSAGE)
  if (name.includes('/')) {
    if (!name.startsWith('/')) throw new SsmError('ValidationException', 'Parameter name must be a fully qualified name.')
    const levels = name.slice(1).split('/')
    if (levels.some((level) => level === '')) throw new SsmError('ValidationException', NAME_RULES_MESSAGE)
    if (levels.length > MAX_HIERARCHY_LEVELS) {
      throw new SsmError(
        'HierarchyLevelLimitExceededException',
        `A hierarchy can have a maximum of ${MAX_HIERARCHY_LEVELS} levels.`,
      )
    }
  }
}

function validateWritableName(name: string): void {
  validateName(name)
  if (RESERVED_PREFIX_PATTERN.test(name)) throw new SsmError('ValidationException', NAME_RULES_MESSAGE)
}

function validateValue(value: string): void {
  if (value.length < 1) {
    throw new SsmError(
      'ValidationException',
      "1 validation error detected: Value at 'value' failed to satisfy constraint: Member must have length " +
        'greater than or equal to 1',
    )
  }
  if (value.length > MAX_VALUE_CHARS) {
    throw new SsmError(
      'ValidationException',
      `Standard tier parameters support a maximum parameter value of ${MAX_VALUE_CHARS} characters. To create a ` +
        'larger parameter value, upgrade the parameter to use the advanced-parameter tier.',
    )
  }
}

function normalizePath(path: string): string {
  if (!path.startsWith('/')) {
    throw new SsmError(
      'ValidationException',
      'The parameter doesn\'t meet the parameter name requirements. The parameter name must begin with a forward slash "/".',
    )
  }
  if (path === '/') return path
  const trimmed = path.endsWith('/') ? path.slice(0, -1) : path
  validateName(trimmed)
  return trimmed
}

function encodeNextToken(path: string, recursive: boolean, after: string): string {
  return Buffer.from(JSON.stringify({ path, recursive, after })).toString('base64url')
}

function decodeNextToken(token: string, path: string, recursive: boolean): string {
  try {
    const decoded: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'))
    const fields = decoded as { path?: unknown; recursive?: unknown; after?: unknown }
    if (fields.path === path && fields.recursive === recursive && typeof fields.after === 'string') return fields.after
  } catch {
    // Any undecodable token is as invalid as one from another query.
  }
  throw new SsmError('InvalidNextToken', 'The specified token isn\'t valid.')
}

function isParameterType(type: string): type is ParameterType {
  return (PARAMETER_TYPES as readonly string[]).includes(type)
}

function validateFaultRule(rule: SsmFaultRule): void {
  if (!(FAULT_ACTIONS as readonly string[]).includes(rule.action)) {
    throw new TypeError(`Unknown fault action ${String(rule.action)}`)
  }
  if (rule.action === 'latency' && rule.latencyMs === undefined) throw new TypeError('A latency fault needs latencyMs')
  if (rule.latencyMs !== undefined && !(Number.isFinite(rule.latencyMs) && rule.latencyMs >= 0)) {
    throw new TypeError('latencyMs must be a non-negative number')
  }
  if (rule.probability !== undefined && !(rule.probability >= 0 && rule.probability <= 1)) {
    throw new TypeError('probability must be between 0 and 1')
  }
  if (rule.times !== undefined && !(Number.isInteger(rule.times) && rule.times >= 0)) {
    throw new TypeError('times must be a non-negative integer')
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: String(DEFAULT_CLI_PORT) },
      host: { type: 'string', default: DEFAULT_HOST },
      region: { type: 'string', default: DEFAULT_REGION },
      param: { type: 'string', multiple: true, default: [] },
    },
  })
  const port = Number(values.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new TypeError(`--port ${values.port} is not a port`)
  const parameters = values.param.map((pair): SsmParameterSeed => {
    const separator = pair.indexOf('=')
    if (separator < 1) throw new TypeError(`--param needs NAME=VALUE, got one without "="`)
    return { name: pair.slice(0, separator), value: pair.slice(separator + 1) }
  })
  const ssm = await startLocalSsm({ parameters, port, host: values.host, region: values.region })
  console.log(ssm.url)
  const stop = (): void => void ssm.close()
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error)
    process.exitCode = 1
  })
}
