// The state of one emulated account; the models below read and change it.
import type { JsonObject } from './fields.js'
import type { EmulatorResources, StoredDeviceView } from './types.js'

export const SEED_KINDS = ['types', 'groups', 'products', 'projects', 'dashboards'] as const
export const CATALOG_KINDS = ['buckets', 'groups', 'types', 'products', 'projects', 'dashboards'] as const
export const ASSET_FIELDS = ['asset_type', 'asset_group', 'product'] as const

export type CatalogKind = typeof CATALOG_KINDS[number]
export type AssetField = typeof ASSET_FIELDS[number]

export interface StoredSecret {
  salt: Buffer
  hash: Buffer
  iterations: number
}

export interface StoredDevice {
  view: StoredDeviceView
  secret?: StoredSecret
  /** Logged in (a successful login check) and not disabled since. */
  connected?: boolean
}

export interface StoredAccount {
  username: string
  maxDevices?: number
  devices: Map<string, StoredDevice>
  properties: Map<string, Map<string, JsonObject>>
  deviceProjects: Map<string, string[]>
  catalogs: Record<CatalogKind, Map<string, JsonObject>>
}

/** A copy of a device as Thinger returns it: never its credential nor the credential's hash. */
export const copyView = (view: StoredDeviceView): StoredDeviceView => ({
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

export function newAccount (username: string, maxDevices?: number): StoredAccount {
  return {
    username,
    ...(maxDevices === undefined ? {} : { maxDevices }),
    devices: new Map(),
    properties: new Map(),
    deviceProjects: new Map(),
    catalogs: { buckets: new Map(), groups: new Map(), types: new Map(), products: new Map(), projects: new Map(), dashboards: new Map() }
  }
}

export function snapshotAccount (account: StoredAccount): EmulatorResources {
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

