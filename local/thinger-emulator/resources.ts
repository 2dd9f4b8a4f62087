// Account resources: buckets, asset groups and types, products, projects and dashboards, each a
// flat catalog of the account with the same five operations.
import { ASSET_FIELDS, type AssetField, type CatalogKind, SEED_KINDS, type StoredAccount } from './account.js'
import { badRequest, EmulatorHttpError } from './errors.js'
import {
  assignDefined, isObject, type JsonObject, keepDefined, labelErrors, MAX_TEXT_CHARS, NO_FIELDS, readArray, readBoolean,
  readChoice, readResourceId, readText, rejectFields, requireFields, requireObject, requireResourceId, requireText,
  RESOURCE_ID_PATTERN
} from './fields.js'
import type { ThingerAction } from './types.js'

const MAX_TOPIC_CHARS = 512
const MAX_BUCKET_TAGS = 5
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
const SEED_FIELDS = new Set<string>(SEED_KINDS)
const ASSET_CATALOGS = { asset_type: 'types', asset_group: 'groups', product: 'products' } as const

// A catalog is a flat collection of one account (buckets, groups …); `create` and `update`
// receive a body whose fields were already checked against `createFields` or `updateFields`.
export interface CatalogRules {
  noun: string
  idField: string
  actions: { list: ThingerAction; create: ThingerAction; read: ThingerAction; update: ThingerAction; remove: ThingerAction }
  createFields: ReadonlySet<string>
  updateFields: ReadonlySet<string>
  unemulatedFields?: ReadonlySet<string>
  create: (body: JsonObject, account: StoredAccount) => JsonObject
  update: (record: JsonObject, body: JsonObject, account: StoredAccount) => void
}

/**
 * Reads the asset references of a device or bucket body; `""` (where allowed) clears one.
 * A missing asset type or group is created when `autoCreate` says so (what Thinger's changelog
 * 2.9.9 says of devices); otherwise, and always for a product, the reference is refused (400).
 */
export function readAssetRefs (body: JsonObject, allowEmpty: boolean, account: StoredAccount, autoCreate = false): [AssetField, string][] {
  const refs: [AssetField, string][] = []
  const created: [CatalogKind, string][] = []
  for (const field of ASSET_FIELDS) {
    const id = readResourceId(body, field, allowEmpty)
    if (id === undefined) continue
    const kind = ASSET_CATALOGS[field]
    if (id !== '' && !account.catalogs[kind].has(id)) {
      if (!autoCreate || kind === 'products') throw badRequest(`${field} '${id}' does not exist`)
      created.push([kind, id])
    }
    refs.push([field, id])
  }
  // Only once every reference was read, so that a refused body creates nothing.
  for (const [kind, id] of created) account.catalogs[kind].set(id, { [CATALOGS[kind].idField]: id, name: id, description: '' })
  return refs
}

export function applyAssetRefs (target: JsonObject, refs: readonly [AssetField, string][]): void {
  for (const [field, id] of refs) {
    if (id === '') delete target[field]
    else target[field] = id
  }
}

export function readDeviceSource (config: JsonObject, account: StoredAccount): void {
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

export function parseBucketConfig (input: unknown, account: StoredAccount): JsonObject {
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

export function parseRetention (input: unknown): JsonObject {
  if (!isObject(input)) throw badRequest('must be a JSON object')
  rejectFields(input, RETENTION_FIELDS, NO_FIELDS)
  if (Object.hasOwn(input, 'period') && !(Number.isInteger(input.period) && (input.period as number) >= 0)) {
    throw badRequest("'period' must be a non-negative integer")
  }
  readChoice(input, 'unit', RETENTION_UNITS)
  return structuredClone(input)
}

export function readBucketFields (body: JsonObject, account: StoredAccount): JsonObject {
  return keepDefined({
    name: readText(body, 'name', 0, MAX_TEXT_CHARS),
    description: readText(body, 'description', 0, MAX_TEXT_CHARS),
    enabled: readBoolean(body, 'enabled'),
    config: Object.hasOwn(body, 'config') ? labelErrors('config', () => parseBucketConfig(body.config, account)) : undefined,
    backend: readChoice(body, 'backend', BUCKET_BACKENDS),
    retention: Object.hasOwn(body, 'retention') ? labelErrors('retention', () => parseRetention(body.retention)) : undefined
  })
}

export const readNaming = (body: JsonObject, maxChars: number): JsonObject => keepDefined({
  name: readText(body, 'name', 0, maxChars),
  description: readText(body, 'description', 0, maxChars)
})

export function readProjectConfig (body: JsonObject): JsonObject | undefined {
  if (!Object.hasOwn(body, 'config')) return undefined
  return labelErrors('config', () => {
    const config = requireObject(body.config)
    rejectFields(config, PROJECT_CONFIG_FIELDS, NO_FIELDS)
    readBoolean(config, 'limit_bucket_access')
    return structuredClone(config)
  })
}

export function readDashboardFields (body: JsonObject): JsonObject {
  const opaque = DASHBOARD_OPAQUE_FIELDS.filter((field) => Object.hasOwn(body, field)).map((field) => [field, body[field]])
  return structuredClone(keepDefined({
    name: readText(body, 'name', 1, MAX_TEXT_CHARS),
    description: readText(body, 'description', 0, MAX_TEXT_CHARS),
    widgets: readArray(body, 'widgets'),
    tabs: readArray(body, 'tabs'),
    ...Object.fromEntries(opaque)
  }))
}

export const CATALOGS: Record<CatalogKind, CatalogRules> = {
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

export function findEntry (account: StoredAccount, kind: CatalogKind, id: string): JsonObject {
  const record = RESOURCE_ID_PATTERN.test(id) ? account.catalogs[kind].get(id) : undefined
  if (record === undefined) throw new EmulatorHttpError(404, `${CATALOGS[kind].noun} not found`)
  return record
}

export function createEntry (account: StoredAccount, kind: CatalogKind, input: unknown): void {
  const rules = CATALOGS[kind]
  const body = requireObject(input)
  rejectFields(body, rules.createFields, NO_FIELDS, rules.unemulatedFields)
  const id = requireResourceId(body, rules.idField)
  const record = { [rules.idField]: id, ...rules.create(body, account) }
  if (account.catalogs[kind].has(id)) throw badRequest(`${rules.noun} already exists`)
  account.catalogs[kind].set(id, record)
}

export function updateEntry (account: StoredAccount, kind: CatalogKind, id: string, input: unknown): void {
  const rules = CATALOGS[kind]
  const record = findEntry(account, kind, id)
  const body = requireObject(input)
  rejectFields(body, rules.updateFields, new Set([rules.idField]), rules.unemulatedFields)
  rules.update(record, body, account)
}

export function deleteEntry (account: StoredAccount, kind: CatalogKind, id: string): void {
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

export function cloneDashboard (account: StoredAccount, sourceId: string, input: unknown): void {
  const source = findEntry(account, 'dashboards', sourceId)
  const body = requireObject(input)
  rejectFields(body, CLONE_FIELDS, NO_FIELDS)
  const target = requireResourceId(body, 'dashboard')
  const fields = keepDefined({ ...readNaming(body, MAX_TEXT_CHARS), enabled: readBoolean(body, 'enabled') })
  if (account.catalogs.dashboards.has(target)) throw badRequest('dashboard already exists')
  account.catalogs.dashboards.set(target, { ...structuredClone(source), dashboard: target, ...fields })
}

export function seedAccount (account: StoredAccount, input: unknown): void {
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

