import { pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto'
import { createServer, STATUS_CODES } from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { closeServer } from './close-server.js'

/**
 * A permission of Thinger's REST API, as named in a token's `allow` list: the OpenAPI summary of
 * the operation, except `ReadDevice`, the emulator's older name for `ReadDeviceStatus`.
 */
export type ThingerAction =
  | 'ListDevices' | 'ReadDevice' | 'CreateDevice' | 'UpdateDevice' | 'DeleteDevice' | 'UpdateDeviceProjects'
  | 'ListDeviceProperties' | 'ReadDeviceProperty' | 'CreateDeviceProperty' | 'UpdateDeviceProperty' | 'DeleteDeviceProperty'
  | 'ListBuckets' | 'ReadBucketConfig' | 'CreateBucket' | 'UpdateBucket' | 'DeleteBucket'
  | 'ListGroups' | 'ReadGroupConfig' | 'CreateGroup' | 'UpdateGroup' | 'DeleteGroup'
  | 'ListTypes' | 'ReadTypeConfig' | 'CreateType' | 'UpdateType' | 'DeleteType'
  | 'ListProducts' | 'ReadProductConfig' | 'CreateProduct' | 'UpdateProduct' | 'DeleteProduct'
  | 'ListProjects' | 'ReadProjectConfig' | 'CreateProject' | 'UpdateProject' | 'DeleteProject'
  | 'ListDashboards' | 'ReadDashboardConfig' | 'CreateDashboard' | 'UpdateDashboard' | 'DeleteDashboard' | 'CloneDashboard'

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

/** A device property as Thinger returns it; `value` is any JSON. */
export interface DevicePropertyView {
  property: string
  name: string
  description: string
  value: unknown
  type?: '' | 'configuration'
}

/** What feeds a data bucket: a device resource (sampled or on events), an MQTT topic, or writes. */
export type BucketConfig =
  | { source: 'device'; device: string; resource: string; update: 'interval'; interval: number; tags?: string[]; user?: string }
  | { source: 'device'; device: string; resource: string; update: 'events' | 'none'; tags?: string[]; user?: string }
  | { source: 'mqtt'; topic: string; tags?: string[] }
  | { source: 'write' | 'api'; tags?: string[] }

/** A data bucket as Thinger returns its configuration. */
export interface BucketView {
  bucket: string
  name: string
  description: string
  enabled: boolean
  config: BucketConfig
  backend?: '' | 'mongodb' | 'influxdb' | 'dynamodb'
  retention?: { period?: number; unit?: 'hours' | 'days' | 'weeks' | 'months' | 'years' }
  asset_type?: string
  asset_group?: string
  product?: string
}

/** An asset group; `parent` names another group of the same account. */
export interface AssetGroupView {
  group: string
  name: string
  description: string
  parent?: string
}

/** An asset type. */
export interface AssetTypeView {
  type: string
  name: string
  description: string
}

/** A product, as far as the emulator keeps it (no config, profile nor services). */
export interface ProductView {
  product: string
  name: string
  description: string
  enabled: boolean
}

/** A project. */
export interface ProjectView {
  project: string
  name: string
  description: string
  config?: { limit_bucket_access?: boolean }
}

/** A dashboard; everything but its ID, name and description is kept as opaque JSON. */
export interface DashboardView {
  dashboard: string
  name: string
  description: string
  widgets: unknown[]
  tabs?: unknown[]
  controls?: unknown
  functions?: unknown
  placeholders?: unknown
  properties?: unknown
  enabled?: boolean
}

/** A plain-JSON copy of everything an emulated account holds; never a credential nor its hash. */
export interface EmulatorResources {
  devices: StoredDeviceView[]
  properties: Record<string, Record<string, unknown>>
  buckets: BucketView[]
  groups: AssetGroupView[]
  types: AssetTypeView[]
  products: ProductView[]
  projects: ProjectView[]
  deviceProjects: Record<string, string[]>
  dashboards: DashboardView[]
}

type SeedEntry<View, Required extends keyof View> = Pick<View, Required> & Partial<Omit<View, Required>>

/** Fixtures for {@link ThingerEmulator.seed}: each entry is the body of the matching create call. */
export interface EmulatorSeed {
  types?: SeedEntry<AssetTypeView, 'type'>[]
  groups?: SeedEntry<AssetGroupView, 'group'>[]
  products?: SeedEntry<ProductView, 'product' | 'name'>[]
  projects?: SeedEntry<ProjectView, 'project' | 'name'>[]
  dashboards?: SeedEntry<Omit<DashboardView, 'enabled'>, 'dashboard' | 'name' | 'widgets'>[]
}

/** Why a device login would be refused. */
export type LoginRefusal = 'unknown_device' | 'bad_credential' | 'disabled' | 'not_a_credential_device'

/** The answer a device connection check would get. */
export type LoginCheck = { ok: true } | { ok: false; reason: LoginRefusal }

/** A running emulator of Thinger's REST API (devices and what provisioning profiles use), with controls for tests. */
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
  resources(username: string): EmulatorResources
  seed(username: string, fixtures: EmulatorSeed): void
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
// The pattern of UpdateDeviceProjects items: unlike resource IDs, no hyphen on either side.
const DEVICE_PROJECT_PATTERN = /^([a-zA-Z0-9_]{1,32})@([a-zA-Z0-9_]{1,32})$/
const MAX_TOPIC_CHARS = 512
const MAX_BUCKET_TAGS = 5
// A record, so that the compiler checks that every action is listed.
const ACTION_NAMES: Record<ThingerAction, true> = {
  ListDevices: true, ReadDevice: true, CreateDevice: true, UpdateDevice: true, DeleteDevice: true, UpdateDeviceProjects: true,
  ListDeviceProperties: true, ReadDeviceProperty: true, CreateDeviceProperty: true, UpdateDeviceProperty: true, DeleteDeviceProperty: true,
  ListBuckets: true, ReadBucketConfig: true, CreateBucket: true, UpdateBucket: true, DeleteBucket: true,
  ListGroups: true, ReadGroupConfig: true, CreateGroup: true, UpdateGroup: true, DeleteGroup: true,
  ListTypes: true, ReadTypeConfig: true, CreateType: true, UpdateType: true, DeleteType: true,
  ListProducts: true, ReadProductConfig: true, CreateProduct: true, UpdateProduct: true, DeleteProduct: true,
  ListProjects: true, ReadProjectConfig: true, CreateProject: true, UpdateProject: true, DeleteProject: true,
  ListDashboards: true, ReadDashboardConfig: true, CreateDashboard: true, UpdateDashboard: true, DeleteDashboard: true, CloneDashboard: true
}
const ALL_ACTIONS = Object.keys(ACTION_NAMES) as readonly ThingerAction[]
const DEVICE_TYPES: readonly ThingerDeviceType[] = ['Generic', 'MQTT', 'HTTP', 'Virtual']
const CREDENTIAL_DEVICE_TYPES: readonly ThingerDeviceType[] = ['Generic', 'MQTT']
const ASSET_FIELDS = ['asset_type', 'asset_group', 'product'] as const
const CREATE_FIELDS = new Set(['device', 'type', 'credentials', 'name', 'description', 'enabled', ...ASSET_FIELDS])
const UPDATE_FIELDS = new Set(['credentials', 'name', 'description', 'enabled', ...ASSET_FIELDS])
const IMMUTABLE_FIELDS = new Set(['device', 'type'])
const NO_FIELDS: ReadonlySet<string> = new Set()
const PROPERTY_FIELDS = new Set(['property', 'value', 'name', 'description', 'type'])
const PROPERTY_UPDATE_FIELDS = new Set(['value', 'name', 'description', 'type'])
const PROPERTY_UNEMULATED_FIELDS = new Set(['form', 'perm'])
const PROPERTY_TYPES = ['', 'configuration'] as const
const BUCKET_FIELDS = new Set(['bucket', 'name', 'description', 'enabled', 'config', 'backend', 'retention', ...ASSET_FIELDS])
const BUCKET_UPDATE_FIELDS = new Set([...BUCKET_FIELDS].filter((field) => field !== 'bucket'))
const BUCKET_SOURCE_FIELDS = new Map<string, ReadonlySet<string>>([
  ['device', new Set(['source', 'device', 'resource', 'update', 'interval', 'tags', 'user'])],
  ['mqtt', new Set(['source', 'topic', 'tags'])],
  ['write', new Set(['source', 'tags'])],
  ['api', new Set(['source', 'tags'])]
])
const BUCKET_UPDATES = ['interval', 'events', 'none'] as const
const BUCKET_BACKENDS = ['', 'mongodb', 'influxdb', 'dynamodb'] as const
const RETENTION_FIELDS = new Set(['period', 'unit'])
const RETENTION_UNITS = ['hours', 'days', 'weeks', 'months', 'years'] as const
const GROUP_FIELDS = new Set(['group', 'name', 'description', 'parent'])
const TYPE_FIELDS = new Set(['type', 'name', 'description'])
const NAMING_FIELDS = new Set(['name', 'description'])
const PRODUCT_FIELDS = new Set(['product', 'name', 'description', 'enabled'])
const PRODUCT_UPDATE_FIELDS = new Set(['name', 'description', 'enabled'])
const PRODUCT_UNEMULATED_FIELDS = new Set(['config', 'profile', 'services'])
const PROJECT_FIELDS = new Set(['project', 'name', 'description', 'config'])
const PROJECT_UPDATE_FIELDS = new Set(['name', 'description', 'config'])
const PROJECT_CONFIG_FIELDS = new Set(['limit_bucket_access'])
const DASHBOARD_OPAQUE_FIELDS = ['controls', 'functions', 'placeholders', 'properties'] as const
const DASHBOARD_UPDATE_FIELDS = new Set(['name', 'description', 'widgets', 'tabs', ...DASHBOARD_OPAQUE_FIELDS])
const DASHBOARD_FIELDS = new Set(['dashboard', ...DASHBOARD_UPDATE_FIELDS])
const CLONE_FIELDS = new Set(['dashboard', 'name', 'description', 'enabled'])
const CATALOG_KINDS = ['buckets', 'groups', 'types', 'products', 'projects', 'dashboards'] as const
const SEED_KINDS = ['types', 'groups', 'products', 'projects', 'dashboards'] as const
const SEED_FIELDS = new Set<string>(SEED_KINDS)
const ASSET_CATALOGS = { asset_type: 'types', asset_group: 'groups', product: 'products' } as const
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

type CatalogKind = typeof CATALOG_KINDS[number]
type AssetField = typeof ASSET_FIELDS[number]

interface StoredAccount {
  username: string
  maxDevices?: number
  devices: Map<string, StoredDevice>
  properties: Map<string, Map<string, JsonObject>>
  deviceProjects: Map<string, string[]>
  catalogs: Record<CatalogKind, Map<string, JsonObject>>
}

// A catalog is a flat collection of one account (buckets, groups …); `create` and `update`
// receive a body whose fields were already checked against `createFields` or `updateFields`.
interface CatalogRules {
  noun: string
  idField: string
  actions: { list: ThingerAction; create: ThingerAction; read: ThingerAction; update: ThingerAction; remove: ThingerAction }
  createFields: ReadonlySet<string>
  updateFields: ReadonlySet<string>
  unemulatedFields?: ReadonlySet<string>
  create: (body: JsonObject, account: StoredAccount) => JsonObject
  update: (record: JsonObject, body: JsonObject, account: StoredAccount) => void
}

interface RouteCall {
  account: StoredAccount
  device: string
  id: string
  query: URLSearchParams
  readJson: () => Promise<unknown>
}

interface RouteRule {
  pattern: RegExp
  params: readonly ('device' | 'id')[]
  methods: Partial<Record<string, readonly [ThingerAction, (call: RouteCall) => Reply | Promise<Reply>]>>
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

const keepDefined = (fields: JsonObject): JsonObject =>
  Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined))

function assignDefined (target: JsonObject, fields: JsonObject): void {
  Object.assign(target, keepDefined(fields))
}

function rejectFields (
  body: JsonObject,
  allowed: ReadonlySet<string>,
  immutable: ReadonlySet<string> = IMMUTABLE_FIELDS,
  unemulated: ReadonlySet<string> = NO_FIELDS
): void {
  for (const key of Object.keys(body)) {
    if (allowed.has(key)) continue
    if (immutable.has(key)) throw badRequest(`'${key}' cannot be changed`)
    // Valid for Thinger, but refused so that the service cannot come to rely on what is not emulated.
    if (unemulated.has(key)) throw badRequest(`'${key}' is not emulated`)
    throw badRequest(`unknown field '${key}'`)
  }
}

function labelErrors<T> (label: string, read: () => T): T {
  try {
    return read()
  } catch (error) {
    throw error instanceof EmulatorHttpError ? badRequest(`${label}: ${error.message}`) : error
  }
}

function readText (body: JsonObject, field: string, minChars: number, maxChars: number): string | undefined {
  if (!Object.hasOwn(body, field)) return undefined
  const value = body[field]
  if (typeof value !== 'string' || countChars(value) < minChars || countChars(value) > maxChars) {
    throw badRequest(Number.isFinite(maxChars)
      ? `'${field}' must be a string of ${minChars} to ${maxChars} characters`
      : `'${field}' must be a string`)
  }
  return value
}

function requireText (body: JsonObject, field: string, minChars: number, maxChars: number): string {
  const value = readText(body, field, minChars, maxChars)
  if (value === undefined) throw badRequest(`'${field}' is required`)
  return value
}

function readArray (body: JsonObject, field: string): unknown[] | undefined {
  if (!Object.hasOwn(body, field)) return undefined
  const value = body[field]
  if (!Array.isArray(value)) throw badRequest(`'${field}' must be an array`)
  return value
}

function readChoice<T extends string> (body: JsonObject, field: string, choices: readonly T[]): T | undefined {
  if (!Object.hasOwn(body, field)) return undefined
  const value = body[field]
  if (typeof value !== 'string' || !choices.includes(value as T)) {
    throw badRequest(`'${field}' must be one of ${choices.map((choice) => JSON.stringify(choice)).join(', ')}`)
  }
  return value as T
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

function requireResourceId (body: JsonObject, field: string): string {
  const value = readResourceId(body, field, false)
  if (value === undefined) throw badRequest(`'${field}' is required`)
  return value
}

function requireObject (body: unknown): JsonObject {
  if (!isObject(body)) throw badRequest('body must be a JSON object')
  return body
}

function parseJson (text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    throw badRequest('invalid JSON body')
  }
}

function decodeSegments (match: RegExpExecArray): string[] {
  try {
    return match.slice(1).map((segment) => decodeURIComponent(segment ?? ''))
  } catch {
    throw new EmulatorHttpError(404, 'not found')
  }
}

function newAccount (username: string, maxDevices?: number): StoredAccount {
  return {
    username,
    ...(maxDevices === undefined ? {} : { maxDevices }),
    devices: new Map(),
    properties: new Map(),
    deviceProjects: new Map(),
    catalogs: { buckets: new Map(), groups: new Map(), types: new Map(), products: new Map(), projects: new Map(), dashboards: new Map() }
  }
}

/**
 * Reads the asset references of a device or bucket body; `""` (where allowed) clears one.
 * Whether Thinger accepts a reference to a missing asset type, group or product is unconfirmed:
 * the emulator refuses it (400), a conservative choice, so a service that passes here creates them
 * first and works against either behaviour.
 */
function readAssetRefs (body: JsonObject, allowEmpty: boolean, account: StoredAccount): [AssetField, string][] {
  const refs: [AssetField, string][] = []
  for (const field of ASSET_FIELDS) {
    const id = readResourceId(body, field, allowEmpty)
    if (id === undefined) continue
    if (id !== '' && !account.catalogs[ASSET_CATALOGS[field]].has(id)) throw badRequest(`${field} '${id}' does not exist`)
    refs.push([field, id])
  }
  return refs
}

function applyAssetRefs (target: JsonObject, refs: readonly [AssetField, string][]): void {
  for (const [field, id] of refs) {
    if (id === '') delete target[field]
    else target[field] = id
  }
}

function readDeviceSource (config: JsonObject, account: StoredAccount): void {
  const device = requireResourceId(config, 'device')
  requireText(config, 'resource', 0, MAX_TEXT_CHARS)
  const update = readChoice(config, 'update', BUCKET_UPDATES)
  if (update === undefined) throw badRequest("'update' is required")
  if (update === 'interval' && typeof config.interval !== 'number') throw badRequest("'interval' must be a number when 'update' is interval")
  if (update !== 'interval' && Object.hasOwn(config, 'interval')) throw badRequest("'interval' applies to update 'interval' only")
  // As conservative as asset references (see readAssetRefs): the source device must exist
  // already, and a device of another account is not emulated.
  const owner = readResourceId(config, 'user', false) ?? account.username
  if (owner !== account.username) throw badRequest("a device of another account ('user') is not emulated")
  if (!account.devices.has(device)) throw badRequest(`device '${device}' does not exist`)
}

function parseBucketConfig (input: unknown, account: StoredAccount): JsonObject {
  if (!isObject(input)) throw badRequest('must be a JSON object')
  const fields = typeof input.source === 'string' ? BUCKET_SOURCE_FIELDS.get(input.source) : undefined
  if (fields === undefined) throw badRequest(`'source' must be one of ${[...BUCKET_SOURCE_FIELDS.keys()].join(', ')}`)
  rejectFields(input, fields, NO_FIELDS)
  const tags = readArray(input, 'tags')
  if (tags !== undefined && (tags.length > MAX_BUCKET_TAGS || !tags.every((tag) => typeof tag === 'string' && RESOURCE_ID_PATTERN.test(tag)))) {
    throw badRequest(`'tags' must hold at most ${MAX_BUCKET_TAGS} resource IDs`)
  }
  if (input.source === 'mqtt') requireText(input, 'topic', 0, MAX_TOPIC_CHARS)
  if (input.source === 'device') readDeviceSource(input, account)
  return structuredClone(input)
}

function parseRetention (input: unknown): JsonObject {
  if (!isObject(input)) throw badRequest('must be a JSON object')
  rejectFields(input, RETENTION_FIELDS, NO_FIELDS)
  if (Object.hasOwn(input, 'period') && !(Number.isInteger(input.period) && (input.period as number) >= 0)) {
    throw badRequest("'period' must be a non-negative integer")
  }
  readChoice(input, 'unit', RETENTION_UNITS)
  return structuredClone(input)
}

function readBucketFields (body: JsonObject, account: StoredAccount): JsonObject {
  return keepDefined({
    name: readText(body, 'name', 0, MAX_TEXT_CHARS),
    description: readText(body, 'description', 0, MAX_TEXT_CHARS),
    enabled: readBoolean(body, 'enabled'),
    config: Object.hasOwn(body, 'config') ? labelErrors('config', () => parseBucketConfig(body.config, account)) : undefined,
    backend: readChoice(body, 'backend', BUCKET_BACKENDS),
    retention: Object.hasOwn(body, 'retention') ? labelErrors('retention', () => parseRetention(body.retention)) : undefined
  })
}

const readNaming = (body: JsonObject, maxChars: number): JsonObject => keepDefined({
  name: readText(body, 'name', 0, maxChars),
  description: readText(body, 'description', 0, maxChars)
})

function readProjectConfig (body: JsonObject): JsonObject | undefined {
  if (!Object.hasOwn(body, 'config')) return undefined
  return labelErrors('config', () => {
    const config = requireObject(body.config)
    rejectFields(config, PROJECT_CONFIG_FIELDS, NO_FIELDS)
    readBoolean(config, 'limit_bucket_access')
    return structuredClone(config)
  })
}

function readDashboardFields (body: JsonObject): JsonObject {
  const opaque = DASHBOARD_OPAQUE_FIELDS.filter((field) => Object.hasOwn(body, field)).map((field) => [field, body[field]])
  return structuredClone(keepDefined({
    name: readText(body, 'name', 1, MAX_TEXT_CHARS),
    description: readText(body, 'description', 0, MAX_TEXT_CHARS),
    widgets: readArray(body, 'widgets'),
    tabs: readArray(body, 'tabs'),
    ...Object.fromEntries(opaque)
  }))
}

function requireFields (fields: JsonObject, required: readonly string[]): void {
  for (const field of required) if (!Object.hasOwn(fields, field)) throw badRequest(`'${field}' is required`)
}

const CATALOGS: Record<CatalogKind, CatalogRules> = {
  buckets: {
    noun: 'bucket',
    idField: 'bucket',
    actions: { list: 'ListBuckets', create: 'CreateBucket', read: 'ReadBucketConfig', update: 'UpdateBucket', remove: 'DeleteBucket' },
    createFields: BUCKET_FIELDS,
    updateFields: BUCKET_UPDATE_FIELDS,
    create: (body, account) => {
      const fields = readBucketFields(body, account)
      requireFields(fields, ['name', 'enabled', 'config'])
      return { name: '', description: '', ...fields, ...Object.fromEntries(readAssetRefs(body, false, account)) }
    },
    update: (record, body, account) => {
      const fields = readBucketFields(body, account)
      const refs = readAssetRefs(body, true, account)
      assignDefined(record, fields)
      applyAssetRefs(record, refs)
    }
  },
  groups: {
    noun: 'group',
    idField: 'group',
    actions: { list: 'ListGroups', create: 'CreateGroup', read: 'ReadGroupConfig', update: 'UpdateGroup', remove: 'DeleteGroup' },
    createFields: GROUP_FIELDS,
    updateFields: NAMING_FIELDS,
    create: (body, account) => {
      const naming = readNaming(body, Infinity)
      const parent = readResourceId(body, 'parent', false)
      if (parent !== undefined && !account.catalogs.groups.has(parent)) throw badRequest(`parent group '${parent}' does not exist`)
      return { name: '', description: '', ...naming, ...(parent === undefined ? {} : { parent }) }
    },
    update: (record, body) => assignDefined(record, readNaming(body, Infinity))
  },
  types: {
    noun: 'type',
    idField: 'type',
    actions: { list: 'ListTypes', create: 'CreateType', read: 'ReadTypeConfig', update: 'UpdateType', remove: 'DeleteType' },
    createFields: TYPE_FIELDS,
    updateFields: NAMING_FIELDS,
    create: (body) => ({ name: '', description: '', ...readNaming(body, Infinity) }),
    update: (record, body) => assignDefined(record, readNaming(body, Infinity))
  },
  products: {
    noun: 'product',
    idField: 'product',
    actions: { list: 'ListProducts', create: 'CreateProduct', read: 'ReadProductConfig', update: 'UpdateProduct', remove: 'DeleteProduct' },
    createFields: PRODUCT_FIELDS,
    updateFields: PRODUCT_UPDATE_FIELDS,
    unemulatedFields: PRODUCT_UNEMULATED_FIELDS,
    create: (body) => {
      const naming = readNaming(body, MAX_TEXT_CHARS)
      requireFields(naming, ['name'])
      return { name: '', description: '', ...naming, enabled: readBoolean(body, 'enabled') ?? true }
    },
    update: (record, body) => assignDefined(record, { ...readNaming(body, MAX_TEXT_CHARS), enabled: readBoolean(body, 'enabled') })
  },
  projects: {
    noun: 'project',
    idField: 'project',
    actions: { list: 'ListProjects', create: 'CreateProject', read: 'ReadProjectConfig', update: 'UpdateProject', remove: 'DeleteProject' },
    createFields: PROJECT_FIELDS,
    updateFields: PROJECT_UPDATE_FIELDS,
    create: (body) => {
      const naming = readNaming(body, MAX_TEXT_CHARS)
      requireFields(naming, ['name'])
      return keepDefined({ name: '', description: '', ...naming, config: readProjectConfig(body) })
    },
    update: (record, body) => assignDefined(record, { ...readNaming(body, MAX_TEXT_CHARS), config: readProjectConfig(body) })
  },
  dashboards: {
    noun: 'dashboard',
    idField: 'dashboard',
    actions: { list: 'ListDashboards', create: 'CreateDashboard', read: 'ReadDashboardConfig', update: 'UpdateDashboard', remove: 'DeleteDashboard' },
    createFields: DASHBOARD_FIELDS,
    updateFields: DASHBOARD_UPDATE_FIELDS,
    create: (body) => {
      const fields = readDashboardFields(body)
      requireFields(fields, ['name', 'widgets'])
      return { name: '', description: '', ...fields }
    },
    update: (record, body) => assignDefined(record, readDashboardFields(body))
  }
}

function findEntry (account: StoredAccount, kind: CatalogKind, id: string): JsonObject {
  const record = RESOURCE_ID_PATTERN.test(id) ? account.catalogs[kind].get(id) : undefined
  if (record === undefined) throw new EmulatorHttpError(404, `${CATALOGS[kind].noun} not found`)
  return record
}

function createEntry (account: StoredAccount, kind: CatalogKind, input: unknown): void {
  const rules = CATALOGS[kind]
  const body = requireObject(input)
  rejectFields(body, rules.createFields, NO_FIELDS, rules.unemulatedFields)
  const id = requireResourceId(body, rules.idField)
  const record = { [rules.idField]: id, ...rules.create(body, account) }
  if (account.catalogs[kind].has(id)) throw badRequest(`${rules.noun} already exists`)
  account.catalogs[kind].set(id, record)
}

function updateEntry (account: StoredAccount, kind: CatalogKind, id: string, input: unknown): void {
  const rules = CATALOGS[kind]
  const record = findEntry(account, kind, id)
  const body = requireObject(input)
  rejectFields(body, rules.updateFields, new Set([rules.idField]), rules.unemulatedFields)
  rules.update(record, body, account)
}

function deleteEntry (account: StoredAccount, kind: CatalogKind, id: string): void {
  findEntry(account, kind, id)
  account.catalogs[kind].delete(id)
  // Devices, buckets and groups keep references to a deleted asset type, group or product (what
  // Thinger does is unconfirmed); a deleted project leaves the devices it held.
  if (kind !== 'projects') return
  const assignment = `${account.username}@${id}`
  for (const [deviceId, projects] of account.deviceProjects) {
    const kept = projects.filter((project) => project !== assignment)
    if (kept.length === 0) account.deviceProjects.delete(deviceId)
    else account.deviceProjects.set(deviceId, kept)
  }
}

function cloneDashboard (account: StoredAccount, sourceId: string, input: unknown): void {
  const source = findEntry(account, 'dashboards', sourceId)
  const body = requireObject(input)
  rejectFields(body, CLONE_FIELDS, NO_FIELDS)
  const target = requireResourceId(body, 'dashboard')
  const fields = keepDefined({ ...readNaming(body, MAX_TEXT_CHARS), enabled: readBoolean(body, 'enabled') })
  if (account.catalogs.dashboards.has(target)) throw badRequest('dashboard already exists')
  account.catalogs.dashboards.set(target, { ...structuredClone(source), dashboard: target, ...fields })
}

function findDeviceIn (account: StoredAccount, deviceId: string): StoredDevice {
  const stored = RESOURCE_ID_PATTERN.test(deviceId) ? account.devices.get(deviceId) : undefined
  if (stored === undefined) throw new EmulatorHttpError(404, 'device not found')
  return stored
}

function readPropertyFields (body: JsonObject): JsonObject {
  return keepDefined({
    name: readText(body, 'name', 0, MAX_TEXT_CHARS),
    description: readText(body, 'description', 0, MAX_TEXT_CHARS),
    value: Object.hasOwn(body, 'value') ? structuredClone(body.value) : undefined,
    type: readChoice(body, 'type', PROPERTY_TYPES)
  })
}

function parseProperty (input: unknown): JsonObject {
  if (!isObject(input)) throw badRequest('a property must be a JSON object')
  rejectFields(input, PROPERTY_FIELDS, NO_FIELDS, PROPERTY_UNEMULATED_FIELDS)
  const property = requireResourceId(input, 'property')
  const fields = readPropertyFields(input)
  requireFields(fields, ['value'])
  return { property, name: '', description: '', ...fields }
}

function createProperties (account: StoredAccount, deviceId: string, input: unknown): void {
  findDeviceIn(account, deviceId)
  // CreateDeviceProperty takes one property or an array of them; the array is all or nothing.
  const parsed = Array.isArray(input)
    ? input.map((item, index) => labelErrors(`property ${index}`, () => parseProperty(item)))
    : [parseProperty(input)]
  const stored = account.properties.get(deviceId) ?? new Map<string, JsonObject>()
  const ids = parsed.map((property) => property.property as string)
  if (ids.some((id, index) => stored.has(id) || ids.indexOf(id) !== index)) throw badRequest('property already exists')
  for (const property of parsed) stored.set(property.property as string, property)
  if (stored.size > 0) account.properties.set(deviceId, stored)
}

function findProperty (account: StoredAccount, deviceId: string, propertyId: string): JsonObject {
  findDeviceIn(account, deviceId)
  const property = account.properties.get(deviceId)?.get(propertyId)
  if (property === undefined) throw new EmulatorHttpError(404, 'property not found')
  return property
}

function updateProperty (account: StoredAccount, deviceId: string, propertyId: string, input: unknown): void {
  const property = findProperty(account, deviceId, propertyId)
  const body = requireObject(input)
  rejectFields(body, PROPERTY_UPDATE_FIELDS, new Set(['property']), PROPERTY_UNEMULATED_FIELDS)
  const fields = readPropertyFields(body)
  requireFields(fields, ['value'])
  assignDefined(property, fields)
}

function deleteProperty (account: StoredAccount, deviceId: string, propertyId: string): void {
  findProperty(account, deviceId, propertyId)
  const properties = account.properties.get(deviceId)
  properties?.delete(propertyId)
  if (properties?.size === 0) account.properties.delete(deviceId)
}

/**
 * Replaces the projects of a device with `["user@project", ...]`. Projects shared by another
 * account are not emulated: each item must name a project of the device's own account.
 */
function assignProjects (account: StoredAccount, deviceId: string, input: unknown): void {
  findDeviceIn(account, deviceId)
  if (!Array.isArray(input)) throw badRequest('body must be a JSON array of "user@project" strings')
  const projects: string[] = []
  for (const item of input) {
    const match = typeof item === 'string' ? DEVICE_PROJECT_PATTERN.exec(item) : null
    if (match === null) throw badRequest(`${JSON.stringify(item)} must match ${DEVICE_PROJECT_PATTERN.source}`)
    if (match[1] !== account.username || !account.catalogs.projects.has(match[2] ?? '')) {
      throw badRequest(`project '${item as string}' does not exist`)
    }
    if (!projects.includes(item as string)) projects.push(item as string)
  }
  if (projects.length === 0) account.deviceProjects.delete(deviceId)
  else account.deviceProjects.set(deviceId, projects)
}

function snapshotAccount (account: StoredAccount): EmulatorResources {
  const catalog = <View>(kind: CatalogKind): View[] =>
    [...account.catalogs[kind].values()].map((record) => structuredClone(record) as unknown as View)
  return {
    devices: [...account.devices.values()].map((stored) => copyView(stored.view)),
    properties: Object.fromEntries([...account.properties].map(([deviceId, properties]) => [
      deviceId,
      Object.fromEntries([...properties].map(([propertyId, property]) => [propertyId, structuredClone(property.value)]))
    ])),
    buckets: catalog('buckets'),
    groups: catalog('groups'),
    types: catalog('types'),
    products: catalog('products'),
    projects: catalog('projects'),
    deviceProjects: Object.fromEntries([...account.deviceProjects].map(([deviceId, projects]) => [deviceId, [...projects]])),
    dashboards: catalog('dashboards')
  }
}

function seedAccount (account: StoredAccount, input: unknown): void {
  const fixtures = requireObject(input)
  rejectFields(fixtures, SEED_FIELDS, NO_FIELDS)
  // Staged on copies, so that a rejected entry leaves the account as it was.
  const staged: StoredAccount = { ...account, catalogs: { ...account.catalogs } }
  for (const kind of SEED_KINDS) {
    const entries = readArray(fixtures, kind)
    if (entries === undefined) continue
    staged.catalogs[kind] = new Map(account.catalogs[kind])
    entries.forEach((entry, index) => labelErrors(`${kind}[${index}]`, () => createEntry(staged, kind, entry)))
  }
  account.catalogs = staged.catalogs
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
 * Starts an emulator of Thinger.io's REST API (devices, and the properties, buckets, assets,
 * products, projects and dashboards of provisioning profiles) on loopback; resolves once it listens.
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
  const accounts = new Map<string, StoredAccount>()
  for (const account of options.accounts) {
    accounts.set(account.username, newAccount(account.username, account.maxDevices))
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

  function accountOf (username: string): StoredAccount {
    const account = accounts.get(username)
    if (account === undefined) throw new EmulatorHttpError(404, 'user not found')
    return account
  }

  function listDevices (account: StoredAccount, query: URLSearchParams): Reply {
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
    const matching = [...account.devices.values()]
      .map((stored) => stored.view)
      .filter((view) => name === undefined ||
        view.device.toLowerCase().includes(name) || view.name.toLowerCase().includes(name))
      .filter((view) => exactFilters.every(([field, value]) => view[field] === value))
    const page = matching.slice(index, count === undefined ? undefined : index + count)
    return { status: 200, body: page.map(copyView) }
  }

  function createDevice (account: StoredAccount, body: JsonObject): Reply {
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
    const assets = Object.fromEntries(readAssetRefs(body, false, account)) as Partial<Record<AssetField, string>>

    const devices = account.devices
    if (devices.has(deviceId)) throw badRequest('device already exists')
    if (account.maxDevices !== undefined && devices.size >= account.maxDevices) {
      throw badRequest('device limit reached for this account')
    }
    const now = Date.now()
    devices.set(deviceId, {
      view: { device: deviceId, name, description, type: type as ThingerDeviceType, enabled, ...assets, created: now, modified: now },
      ...(credential === undefined ? {} : { secret: hashCredential(credential, hashIterations) })
    })
    return { status: 200, body: {} }
  }

  function updateDevice (account: StoredAccount, stored: StoredDevice, body: JsonObject): Reply {
    rejectFields(body, UPDATE_FIELDS)
    const credential = readText(body, 'credentials', MIN_UPDATE_CREDENTIAL_CHARS, MAX_TEXT_CHARS)
    if (credential !== undefined && !CREDENTIAL_DEVICE_TYPES.includes(stored.view.type)) {
      throw badRequest(`'credentials' is not allowed for ${stored.view.type} devices`)
    }
    const name = readText(body, 'name', 0, MAX_TEXT_CHARS)
    const description = readText(body, 'description', 0, MAX_TEXT_CHARS)
    const enabled = readBoolean(body, 'enabled')
    const assets = readAssetRefs(body, true, account)

    const view = stored.view
    if (credential !== undefined) stored.secret = hashCredential(credential, hashIterations)
    if (name !== undefined) view.name = name
    if (description !== undefined) view.description = description
    if (enabled !== undefined) view.enabled = enabled
    for (const [field, value] of assets) {
      if (value === '') delete view[field]
      else view[field] = value
    }
    view.modified = Date.now()
    return { status: 200, body: {} }
  }

  const ok = (body: unknown = {}): Reply => ({ status: 200, body })

  function deleteDevice (account: StoredAccount, deviceId: string): Reply {
    findDeviceIn(account, deviceId)
    account.devices.delete(deviceId)
    account.properties.delete(deviceId)
    account.deviceProjects.delete(deviceId)
    return ok()
  }

  const catalogRoutes = CATALOG_KINDS.flatMap((kind): RouteRule[] => {
    const { actions } = CATALOGS[kind]
    return [
      {
        pattern: new RegExp(`^/v1/users/([^/]+)/${kind}$`),
        params: [],
        methods: {
          GET: [actions.list, ({ account }) => ok([...account.catalogs[kind].values()].map((record) => structuredClone(record)))],
          POST: [actions.create, async ({ account, readJson }) => {
            createEntry(account, kind, await readJson())
            return ok()
          }]
        }
      },
      {
        pattern: new RegExp(`^/v1/users/([^/]+)/${kind}/([^/]+)$`),
        params: ['id'],
        methods: {
          GET: [actions.read, ({ account, id }) => ok(structuredClone(findEntry(account, kind, id)))],
          PUT: [actions.update, async ({ account, id, readJson }) => {
            findEntry(account, kind, id)
            updateEntry(account, kind, id, await readJson())
            return ok()
          }],
          DELETE: [actions.remove, ({ account, id }) => {
            deleteEntry(account, kind, id)
            return ok()
          }]
        }
      }
    ]
  })

  // Handlers look their target up before reading the body: a missing target answers 404 whatever the body.
  const routes: readonly RouteRule[] = [
    {
      pattern: /^\/v1\/users\/([^/]+)\/devices$/,
      params: [],
      methods: {
        GET: ['ListDevices', ({ account, query }) => listDevices(account, query)],
        POST: ['CreateDevice', async ({ account, readJson }) => createDevice(account, requireObject(await readJson()))]
      }
    },
    {
      pattern: /^\/v1\/users\/([^/]+)\/devices\/([^/]+)$/,
      params: ['device'],
      methods: {
        GET: ['ReadDevice', ({ account, device }) => ok(copyView(findDeviceIn(account, device).view))],
        PUT: ['UpdateDevice', async ({ account, device, readJson }) => {
          const stored = findDeviceIn(account, device)
          return updateDevice(account, stored, requireObject(await readJson()))
        }],
        DELETE: ['DeleteDevice', ({ account, device }) => deleteDevice(account, device)]
      }
    },
    {
      pattern: /^\/v1\/users\/([^/]+)\/devices\/([^/]+)\/projects$/,
      params: ['device'],
      methods: {
        PUT: ['UpdateDeviceProjects', async ({ account, device, readJson }) => {
          findDeviceIn(account, device)
          assignProjects(account, device, await readJson())
          return ok()
        }]
      }
    },
    {
      pattern: /^\/v3\/users\/([^/]+)\/devices\/([^/]+)\/properties$/,
      params: ['device'],
      methods: {
        GET: ['ListDeviceProperties', ({ account, device }) => {
          findDeviceIn(account, device)
          return ok([...account.properties.get(device)?.values() ?? []].map((property) => structuredClone(property)))
        }],
        POST: ['CreateDeviceProperty', async ({ account, device, readJson }) => {
          findDeviceIn(account, device)
          createProperties(account, device, await readJson())
          return ok()
        }]
      }
    },
    {
      pattern: /^\/v3\/users\/([^/]+)\/devices\/([^/]+)\/properties\/([^/]+)$/,
      params: ['device', 'id'],
      methods: {
        GET: ['ReadDeviceProperty', ({ account, device, id }) => ok(structuredClone(findProperty(account, device, id)))],
        PUT: ['UpdateDeviceProperty', async ({ account, device, id, readJson }) => {
          findProperty(account, device, id)
          updateProperty(account, device, id, await readJson())
          return ok()
        }],
        DELETE: ['DeleteDeviceProperty', ({ account, device, id }) => {
          deleteProperty(account, device, id)
          return ok()
        }]
      }
    },
    ...catalogRoutes,
    {
      pattern: /^\/v1\/users\/([^/]+)\/dashboards\/([^/]+)\/clone$/,
      params: ['id'],
      methods: {
        POST: ['CloneDashboard', async ({ account, id, readJson }) => {
          findEntry(account, 'dashboards', id)
          cloneDashboard(account, id, await readJson())
          return ok()
        }]
      }
    }
  ]

  async function answerApi (req: IncomingMessage, url: URL): Promise<Reply> {
    for (const route of routes) {
      const match = route.pattern.exec(url.pathname)
      if (match === null) continue
      const handler = route.methods[req.method ?? 'GET']
      if (handler === undefined) break
      const [user = '', ...values] = decodeSegments(match)
      const [action, answer] = handler
      authorize(req, url, user, action)
      const call: RouteCall = { account: accountOf(user), device: '', id: '', query: url.searchParams, readJson: async () => parseJson(await readBody(req)) }
      route.params.forEach((param, index) => {
        call[param] = values[index] ?? ''
      })
      return answer(call)
    }
    throw new EmulatorHttpError(404, 'not found')
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
    const resourcesMatch = /^\/resources\/([^/]+)$/.exec(route)
    if (method === 'GET' && resourcesMatch !== null) {
      const [user = ''] = decodeSegments(resourcesMatch)
      return { status: 200, body: emulator.resources(user) }
    }
    const seedMatch = /^\/seed\/([^/]+)$/.exec(route)
    if (method === 'POST' && seedMatch !== null) {
      const [user = ''] = decodeSegments(seedMatch)
      const fixtures = await readJson()
      emulator.seed(user, fixtures as EmulatorSeed)
      return { status: 200, body: {} }
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
      for (const account of accounts.values()) {
        account.devices.clear()
        account.properties.clear()
        account.deviceProjects.clear()
        for (const kind of CATALOG_KINDS) account.catalogs[kind].clear()
      }
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
    resources: (username) => snapshotAccount(accounts.get(username) ?? newAccount(username)),
    seed: (username, fixtures) => {
      seedAccount(accountOf(username), fixtures)
    },
    close: () => {
      closing ??= closeServer(server, sockets, timers)
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
