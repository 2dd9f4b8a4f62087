// The emulator's public shapes: what Thinger's REST API returns, and the handle tests drive.
import type { ThingerVariant } from './variants.js'

export type { ThingerVariant } from './variants.js'

/**
 * A permission of Thinger's REST API, as named in a token's `allow` list: the OpenAPI summary of
 * the operation (`GET /v1/users/{user}/devices/{device}` is `ReadDeviceStatus`: there is no `ReadDevice`).
 */
export type ThingerAction =
  | 'ListDevices' | 'ReadDeviceStatus' | 'CreateDevice' | 'UpdateDevice' | 'DeleteDevice' | 'UpdateDeviceProjects'
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

/** The accounts the emulator knows, how hard it hashes device credentials, and how it behaves where Thinger's documents are silent. */
export interface ThingerEmulatorOptions {
  accounts: EmulatorAccount[]
  hashIterations?: number
  /** A name of NAMED_VARIANTS or switches over the documented behaviour (the default). */
  variant?: string | Partial<ThingerVariant>
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

export type SeedEntry<View, Required extends keyof View> = Pick<View, Required> & Partial<Omit<View, Required>>

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
  /** Switches the behaviour (a name or switches over the documented one); kept across reset(). */
  setVariant(variant: string | Partial<ThingerVariant>): void
  variant(): ThingerVariant
  checkLogin(username: string, device: string, credential: string): LoginCheck
  device(username: string, device: string): Readonly<StoredDeviceView> | undefined
  devices(username: string): Readonly<StoredDeviceView>[]
  resources(username: string): EmulatorResources
  seed(username: string, fixtures: EmulatorSeed): void
  close(): Promise<void>
}

