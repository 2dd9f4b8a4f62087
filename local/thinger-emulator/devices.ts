// Devices: create, read, update, delete, their projects, and the credential a device logs in with.
import { pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto'
import { ASSET_FIELDS, type AssetField, copyView, type StoredAccount, type StoredDevice, type StoredSecret } from './account.js'
import { badRequest, EmulatorHttpError } from './errors.js'
import { type JsonObject, MAX_TEXT_CHARS, readBoolean, readResourceId, readText, rejectFields, RESOURCE_ID_PATTERN } from './fields.js'
import { readAssetRefs } from './resources.js'
import type { LoginCheck, StoredDeviceView, ThingerDeviceType } from './types.js'
import type { ThingerVariant } from './variants.js'

const HASH_KEY_BYTES = 32
const HASH_SALT_BYTES = 16
const MIN_CREATE_CREDENTIAL_CHARS = 6
const MIN_UPDATE_CREDENTIAL_CHARS = 1
// The pattern of UpdateDeviceProjects items: unlike resource IDs, no hyphen on either side.
const DEVICE_PROJECT_PATTERN = /^([a-zA-Z0-9_]{1,32})@([a-zA-Z0-9_]{1,32})$/
const DEVICE_TYPES: readonly ThingerDeviceType[] = ['Generic', 'MQTT', 'HTTP', 'Virtual']
const CREDENTIAL_DEVICE_TYPES: readonly ThingerDeviceType[] = ['Generic', 'MQTT']
const CREATE_FIELDS = new Set(['device', 'type', 'credentials', 'name', 'description', 'enabled', ...ASSET_FIELDS])
const UPDATE_FIELDS = new Set(['credentials', 'name', 'description', 'enabled', ...ASSET_FIELDS])

export function findDeviceIn (account: StoredAccount, deviceId: string): StoredDevice {
  const stored = RESOURCE_ID_PATTERN.test(deviceId) ? account.devices.get(deviceId) : undefined
  if (stored === undefined) throw new EmulatorHttpError(404, 'device not found')
  return stored
}

/** A device as reading it answers: `created` in the form the variant gives it. */
export function renderDevice (view: StoredDeviceView, variant: ThingerVariant): Record<string, unknown> {
  const { created, ...rest } = copyView(view)
  if (variant.created === 'absent') return rest
  if (variant.created === 'epoch-ms') return { ...rest, created }
  return { ...rest, created: new Date(created).toISOString(), modified: new Date(rest.modified).toISOString() }
}

export function listDevices (account: StoredAccount, query: URLSearchParams): StoredDeviceView[] {
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
  return page.map(copyView)
}

export function createDevice (account: StoredAccount, body: JsonObject, hashIterations: number, variant: ThingerVariant): void {
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
  const devices = account.devices
  if (devices.has(deviceId)) throw new EmulatorHttpError(variant.duplicateCreateStatus, 'device already exists')
  if (account.maxDevices !== undefined && devices.size >= account.maxDevices) {
    throw badRequest('device limit reached for this account')
  }
  const assets = Object.fromEntries(readAssetRefs(body, false, account, variant.autoCreateAssets)) as Partial<Record<AssetField, string>>

  const now = Date.now()
  devices.set(deviceId, {
    view: { device: deviceId, name, description, type: type as ThingerDeviceType, enabled, ...assets, created: now, modified: now },
    ...(credential === undefined ? {} : { secret: hashCredential(credential, hashIterations) })
  })
}

export function updateDevice (account: StoredAccount, stored: StoredDevice, body: JsonObject, hashIterations: number, variant: ThingerVariant): void {
  rejectFields(body, UPDATE_FIELDS)
  const credential = readText(body, 'credentials', MIN_UPDATE_CREDENTIAL_CHARS, MAX_TEXT_CHARS)
  if (credential !== undefined && !CREDENTIAL_DEVICE_TYPES.includes(stored.view.type)) {
    throw badRequest(`'credentials' is not allowed for ${stored.view.type} devices`)
  }
  const name = readText(body, 'name', 0, MAX_TEXT_CHARS)
  const description = readText(body, 'description', 0, MAX_TEXT_CHARS)
  const enabled = readBoolean(body, 'enabled')
  const assets = readAssetRefs(body, true, account, variant.autoCreateAssets)

  const view = stored.view
  if (credential !== undefined) stored.secret = hashCredential(credential, hashIterations)
  if (name !== undefined) view.name = name
  if (description !== undefined) view.description = description
  if (enabled !== undefined) view.enabled = enabled
  // Disabling a device disconnects it (server changelog 4.0.0); a new credential applies to the next login only.
  if (enabled === false) stored.connected = false
  for (const [field, value] of assets) {
    if (value === '') delete view[field]
    else view[field] = value
  }
  view.modified = Date.now()
}

export function deleteDevice (account: StoredAccount, deviceId: string, variant: ThingerVariant): void {
  const stored = findDeviceIn(account, deviceId)
  if (stored.connected === true && variant.deleteConnected === 'refused') throw badRequest('the device is connected')
  account.devices.delete(deviceId)
  account.properties.delete(deviceId)
  account.deviceProjects.delete(deviceId)
}

/**
 * Replaces the projects of a device with `["user@project", ...]`. Projects shared by another
 * account are not emulated: each item must name a project of the device's own account.
 */
export function assignProjects (account: StoredAccount, deviceId: string, input: unknown): void {
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

export function hashCredential (credential: string, iterations: number): StoredSecret {
  const salt = randomBytes(HASH_SALT_BYTES)
  return { salt, iterations, hash: pbkdf2Sync(credential, salt, iterations, HASH_KEY_BYTES, 'sha256') }
}

export function verifyCredential (credential: string, secret: StoredSecret): boolean {
  const candidate = pbkdf2Sync(credential, secret.salt, secret.iterations, HASH_KEY_BYTES, 'sha256')
  return timingSafeEqual(candidate, secret.hash)
}


/** What a device logging in with (device, credential) would be told. */
export function checkLogin (account: StoredAccount | undefined, deviceId: string, credential: string): LoginCheck {
  const stored = account?.devices.get(deviceId)
  if (stored === undefined) return { ok: false, reason: 'unknown_device' }
  if (stored.secret === undefined) return { ok: false, reason: 'not_a_credential_device' }
  // The credential is checked first so that only its holder learns the device is disabled.
  if (!verifyCredential(credential, stored.secret)) return { ok: false, reason: 'bad_credential' }
  if (!stored.view.enabled) return { ok: false, reason: 'disabled' }
  // A device that logged in stays connected until it is disabled or deleted.
  stored.connected = true
  return { ok: true }
}
