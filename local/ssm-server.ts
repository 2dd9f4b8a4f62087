// The local stack's SSM endpoint (`npm start`). Why our own next to moto, which the tests use as
// the third-party reference: `npm ci && npm start` must need nothing but Node (moto is Python), start
// in milliseconds inside the stack's process, and count the calls for the benchmark. So it speaks
// only what the function and the command line send (GetParameters, GetParameter, PutParameter, in
// SSM's JSON 1.1 protocol), with SSM's own answers and errors for them; everything else is refused
// as an unknown operation. Behaviour against the real service is checked against moto
// (test/e2e/ssm-moto.test.ts, test/e2e/cli.test.ts).
import { createHmac, randomBytes, randomUUID } from 'node:crypto'
import { createServer } from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { closeServer } from './close-server.js'

const DEFAULT_HOST = '127.0.0.1'
const DEFAULT_REGION = 'us-east-1'
const DEFAULT_PARAMETER_TYPE = 'SecureString'
const ACCOUNT_ID = '000000000000'
const TARGET_PREFIX = 'AmazonSSM.'
const JSON_CONTENT_TYPE = 'application/x-amz-json-1.1'
const SIGV4_PREFIX = 'AWS4-HMAC-SHA256'
const MAX_BODY_BYTES = 1024 * 1024
const MAX_NAME_CHARS = 1011
const MAX_NAMES_PER_GET = 10
const MAX_STANDARD_VALUE_CHARS = 4096
const MAX_ADVANCED_VALUE_CHARS = 8192
const MAX_RECORDED_CALLS = 1000
const PARAMETER_TYPES = ['String', 'SecureString', 'StringList'] as const
const NAME_PATTERN = /^[A-Za-z0-9_.\-/]+$/
const RESERVED_PREFIX_PATTERN = /^\/?(aws|ssm)/i
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

/** One request the local SSM received: names only, never values. */
export interface SsmCall {
  operation: string
  names: string[]
  status: number
  /** Epoch milliseconds at which the request arrived. */
  at: number
}

/** A running local SSM endpoint. */
export interface LocalSsm {
  /** `http://HOST:PORT`, the value for `AWS_ENDPOINT_URL_SSM`. */
  readonly url: string
  /** The requests received so far (the last 1000), for the benchmark's call counts. */
  calls(): SsmCall[]
  clearCalls(): void
  /** Stops listening and drops every connection. */
  close(): Promise<void>
}

type ParameterType = (typeof PARAMETER_TYPES)[number]
type Input = Record<string, unknown>

interface StoredParameter {
  version: number
  value: string
  type: ParameterType
  advanced: boolean
  modifiedAtMs: number
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

/**
 * Starts an HTTP endpoint speaking SSM's JSON 1.1 protocol for GetParameters, GetParameter and
 * PutParameter, holding the latest version of each parameter in memory.
 * @throws TypeError when a seed is invalid; rejects when the port cannot be bound.
 */
export async function startLocalSsm(options: { parameters?: SsmParameterSeed[]; port?: number; host?: string; region?: string } = {}): Promise<LocalSsm> {
  const host = options.host ?? DEFAULT_HOST
  const region = options.region ?? DEFAULT_REGION
  const parameters = new Map<string, StoredParameter>()
  // Keyed per instance: undecrypted values are opaque and reveal nothing about the plaintext.
  const ciphertextKey = randomBytes(32)
  const recorded: SsmCall[] = []
  const sockets = new Set<Socket>()

  for (const seed of options.parameters ?? []) {
    try {
      validateWritableName(seed.name)
      validateValue(seed.value, false)
    } catch (error) {
      throw new TypeError((error as Error).message)
    }
    const type = seed.type ?? DEFAULT_PARAMETER_TYPE
    if (!isParameterType(type)) throw new TypeError(`Unknown parameter type ${String(type)}`)
    parameters.set(seed.name, { version: 1, value: seed.value, type, advanced: false, modifiedAtMs: Date.now() })
  }

  const describe = (name: string, stored: StoredParameter, withDecryption: boolean): Input => ({
    Name: name,
    Type: stored.type,
    Value:
      stored.type === 'SecureString' && !withDecryption
        ? Buffer.concat([CIPHERTEXT_HEADER, createHmac('sha256', ciphertextKey).update(`${name}\0${stored.version}\0${stored.value}`).digest()]).toString('base64')
        : stored.value,
    Version: stored.version,
    LastModifiedDate: stored.modifiedAtMs / 1000,
    ARN: `arn:aws:ssm:${region}:${ACCOUNT_ID}:parameter${name.startsWith('/') ? name : `/${name}`}`,
    DataType: 'text',
  })

  const operations: Record<string, (input: Input) => Input> = {
    GetParameters(input) {
      const names = readStringArray(input, 'Names', 'names')
      if (names.length < 1 || names.length > MAX_NAMES_PER_GET) {
        throw new SsmError(
          'ValidationException',
          `1 validation error detected: Value at 'names' failed to satisfy constraint: Member must have length between 1 and ${MAX_NAMES_PER_GET}`,
        )
      }
      const withDecryption = readBoolean(input, 'WithDecryption', 'withDecryption')
      const found: Input[] = []
      const invalid: string[] = []
      for (const name of new Set(names)) {
        validateName(name)
        const stored = parameters.get(name)
        if (stored === undefined) invalid.push(name)
        else found.push(describe(name, stored, withDecryption))
      }
      return { Parameters: found, InvalidParameters: invalid }
    },

    GetParameter(input) {
      const name = readString(input, 'Name', 'name', true)
      validateName(name)
      const stored = parameters.get(name)
      if (stored === undefined) throw new SsmError('ParameterNotFound', `Parameter ${name} not found.`)
      return { Parameter: describe(name, stored, readBoolean(input, 'WithDecryption', 'withDecryption')) }
    },

    PutParameter(input) {
      const name = readString(input, 'Name', 'name', true)
      const value = readString(input, 'Value', 'value', true)
      const type = readString(input, 'Type', 'type', false)
      const tier = readString(input, 'Tier', 'tier', false)
      const existing = parameters.get(name)
      // A parameter once Advanced stays Advanced, as in SSM.
      const advanced = tier === 'Advanced' || existing?.advanced === true
      validateWritableName(name)
      validateValue(value, advanced)
      if (type !== undefined && !isParameterType(type)) {
        throw new SsmError(
          'ValidationException',
          `1 validation error detected: Value '${type}' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [${PARAMETER_TYPES.join(', ')}]`,
        )
      }
      if (existing !== undefined && !readBoolean(input, 'Overwrite', 'overwrite')) {
        throw new SsmError('ParameterAlreadyExists', 'The parameter already exists. To overwrite this value, set the overwrite option in the request to true.')
      }
      const effectiveType = type ?? existing?.type
      if (effectiveType === undefined) throw new SsmError('ValidationException', 'A parameter type is required when you create a parameter.')
      const version = (existing?.version ?? 0) + 1
      parameters.set(name, { version, value, type: effectiveType, advanced, modifiedAtMs: Date.now() })
      return { Version: version, Tier: advanced ? 'Advanced' : 'Standard' }
    },
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const target = headerOf(req, 'x-amz-target')
    const operation = target.startsWith(TARGET_PREFIX) ? target.slice(TARGET_PREFIX.length) : target
    const call: SsmCall = { operation, names: [], status: 0, at: Date.now() }
    recorded.push(call)
    if (recorded.length > MAX_RECORDED_CALLS) recorded.shift()

    const send = (status: number, body: Input, errorType?: string): void => {
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

    try {
      const input = parseBody(await readBody(req))
      call.names = namesIn(input)
      if (!headerOf(req, 'authorization').startsWith(SIGV4_PREFIX)) throw new SsmError('MissingAuthenticationTokenException', 'Missing Authentication Token')
      const run = req.method === 'POST' && target.startsWith(TARGET_PREFIX) ? operations[operation] : undefined
      if (run === undefined) throw new SsmError('UnknownOperationException', `Unknown operation ${operation}`)
      if (input instanceof SsmError) throw input
      send(200, run(input))
    } catch (error) {
      const known = error instanceof SsmError ? error : new SsmError('InternalServerError', 'Internal server error', 500)
      send(known.status, { __type: known.type, message: known.message }, known.type)
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
  let closing: Promise<void> | undefined

  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    calls: () => recorded.map((call) => ({ ...call, names: [...call.names] })),
    clearCalls: () => {
      recorded.length = 0
    },
    close: () => (closing ??= closeServer(server, sockets, new Set())),
  }
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
  const names = [input.Name, ...(Array.isArray(input.Names) ? input.Names : [])]
  return names.filter((name): name is string => typeof name === 'string')
}

function headerOf(req: IncomingMessage, name: string): string {
  const value = req.headers[name]
  return (Array.isArray(value) ? value[0] : value) ?? ''
}

function missing(member: string): SsmError {
  return new SsmError('ValidationException', `1 validation error detected: Value null at '${member}' failed to satisfy constraint: Member must not be null`)
}

function readString(input: Input, key: string, member: string, required: true): string
function readString(input: Input, key: string, member: string, required: false): string | undefined
function readString(input: Input, key: string, member: string, required: boolean): string | undefined {
  const value = input[key]
  if (value === undefined || value === null) {
    if (required) throw missing(member)
    return undefined
  }
  if (typeof value !== 'string') throw new SsmError('SerializationException', `${key} must be a string`)
  return value
}

function readStringArray(input: Input, key: string, member: string): string[] {
  const value = input[key]
  if (value === undefined || value === null) throw missing(member)
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) throw new SsmError('SerializationException', `${key} must be a list of strings`)
  return value
}

function readBoolean(input: Input, key: string, member: string): boolean {
  const value = input[key]
  if (value === undefined || value === null) return false
  if (typeof value !== 'boolean') throw new SsmError('SerializationException', `${member} must be a boolean`)
  return value
}

function validateName(name: string): void {
  if (name.length < 1 || name.length > MAX_NAME_CHARS) throw new SsmError('ValidationException', `Parameter name must be 1 to ${MAX_NAME_CHARS} characters long.`)
  if (!NAME_PATTERN.test(name)) throw new SsmError('ValidationException', NAME_RULES_MESSAGE)
  if (name.includes('/')) {
    if (!name.startsWith('/')) throw new SsmError('ValidationException', 'Parameter name must be a fully qualified name.')
    if (name.slice(1).split('/').some((level) => level === '')) throw new SsmError('ValidationException', NAME_RULES_MESSAGE)
  }
}

function validateWritableName(name: string): void {
  validateName(name)
  if (RESERVED_PREFIX_PATTERN.test(name)) throw new SsmError('ValidationException', NAME_RULES_MESSAGE)
}

function validateValue(value: string, advanced: boolean): void {
  if (value.length < 1) {
    throw new SsmError('ValidationException', "1 validation error detected: Value at 'value' failed to satisfy constraint: Member must have length greater than or equal to 1")
  }
  if (!advanced && value.length > MAX_STANDARD_VALUE_CHARS) {
    throw new SsmError(
      'ValidationException',
      `Standard tier parameters support a maximum parameter value of ${MAX_STANDARD_VALUE_CHARS} characters. To create a larger parameter value, upgrade the parameter to use the advanced-parameter tier.`,
    )
  }
  if (value.length > MAX_ADVANCED_VALUE_CHARS) {
    throw new SsmError('ValidationException', `Advanced tier parameters support a maximum parameter value of ${MAX_ADVANCED_VALUE_CHARS} characters.`)
  }
}

function isParameterType(type: string): type is ParameterType {
  return (PARAMETER_TYPES as readonly string[]).includes(type)
}
