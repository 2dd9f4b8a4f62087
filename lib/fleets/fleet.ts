import type { DeviceIdSource } from '../attestation/x509.js'

/** How a device proves it may join a fleet. */
export type Proof = 'hmac' | 'claim' | 'x509'

/** How a fleet checks device certificates (the `x509` of a fleet in the fleets file). */
export interface X509Settings {
  /** The fleets file's `caFile`, as written there (relative to the fleets file): where `ca create` puts a new CA. */
  caFile?: string
  /** The trusted CA certificates (PEM), compiled in at build from the fleets file's `caFile`. */
  caCertificates?: string
  /** Or an SSM String parameter holding them (PEM). */
  caParam?: string
  /** Where the device ID is in the certificate: the subject's common name, or a DNS name among the SANs. */
  deviceId: DeviceIdSource
}

/** What a new device of a fleet becomes on Thinger.io (the `profile` of a fleet in the fleets file). */
export interface Profile {
  type: 'Generic' | 'MQTT'
  name?: string
  description?: string
  assetType?: string
  assetGroup?: string
  product?: string
  projects?: string[]
  properties?: Record<string, unknown>
  bucket?: { id: string; name?: string; description?: string; resource: string; update: 'interval' | 'events'; interval?: number }
  dashboard?: { template: string; id: string; name?: string }
}

/** One fleet as the validated fleets file describes it (see deploy/fleets.schema.json). */
export interface FleetDefinition {
  proof: Proof[]
  /** SSM parameter of key version 1; version N lives at {@link keyVersionParam}. */
  keyParam?: string
  /** Key versions devices may sign with (a retired one is listed in the deny list instead). */
  keyVersions?: number[]
  claimParam?: string
  /** Present when `proof` has `x509`. */
  x509?: X509Settings
  /** SSM String parameter holding the fleet's deny list (JSON, see {@link DenyList}); missing means empty. */
  denyListParam: string
  /** Refuse a request whose timestamp is not newer than the last one accepted for the device. */
  replayProtection: boolean
  devicePattern: string
  reprovision: 'rotate' | 'reject'
  /**
   * `required`: only protocol v2 requests, whose answer carries the credential sealed to the
   * device; `optional` (also when absent): v1 requests get it in clear, v2 requests sealed.
   */
  sealing?: 'required' | 'optional'
  profile: Profile
  /** The meta keys devices of this fleet may send, each optionally with a pattern and a default. */
  meta?: Record<string, MetaKeyDefinition>
  /** The Thinger.io account or instance of this fleet's devices; each field defaults to the deployment's setting. */
  thinger?: Partial<ThingerTarget>
}

/** One accepted meta key: `pattern` (a regular expression the whole value must match) and `default` (used by templates when a request leaves the key out). */
export interface MetaKeyDefinition {
  pattern?: string
  default?: string
}

/** Where a fleet's devices live on Thinger.io, and the SSM parameter of the token for it. */
export interface ThingerTarget {
  apiUrl: string
  username: string
  tokenParam: string
  deviceHost: string
}

/** The validated fleets file, as compiled into the bundle. */
export interface FleetsDefinition {
  version: 1
  fleets: Record<string, FleetDefinition>
}

/** A fleet ready to serve requests. */
export interface Fleet extends Omit<FleetDefinition, 'devicePattern' | 'meta' | 'thinger'> {
  name: string
  devicePattern: RegExp
  /** The accepted meta keys, patterns compiled and anchored; absent or empty: the fleet accepts no meta. */
  meta?: Record<string, { pattern?: RegExp; default?: string }>
  /** The fleet's Thinger.io target, its defaults filled in from the deployment's settings. */
  thinger: ThingerTarget
}

/** The fleet a request without `fleet` belongs to. */
export const DEFAULT_FLEET = 'default'

/**
 * True when every new device of this fleet needs its provisioning record at once: a profile
 * element, or the `reject` policy, whose record tells a finished device from one whose
 * provisioning was interrupted. Replay protection needs a record only in two cases the flow
 * decides itself: a re-provisioned device, and a new one whose clock runs ahead of the service's.
 */
export function needsProvisioningRecord(fleet: Pick<Fleet, 'profile' | 'reprovision'>): boolean {
  const { type: _type, ...elements } = fleet.profile
  return fleet.reprovision === 'reject' || Object.values(elements).some((value) => value !== undefined)
}

/**
 * True when the devices of two fleets live in the same Thinger.io account (the same API URL and
 * username): one space of device IDs, so a device ID revoked in one is refused by the other.
 */
export function sameThingerAccount(a: Pick<Fleet, 'thinger'>, b: Pick<Fleet, 'thinger'>): boolean {
  return a.thinger.apiUrl === b.thinger.apiUrl && a.thinger.username === b.thinger.username
}

/** Where key version `version` of a fleet lives: version 1 at `keyParam`, later ones beside it. */
export function keyVersionParam(keyParam: string, version: number): string {
  return version === 1 ? keyParam : `${keyParam}-v${version}`
}

/** A fleet's deny list as stored in SSM: revoked devices and retired key versions. */
export interface DenyList {
  version: 1
  devices: string[]
  retiredKeyVersions: number[]
  /**
   * Revoked certificates, each matched against every certificate of a device's path: `key:<hex>`
   * (SHA-256 of the subjectPublicKeyInfo), `serial:<hex>`, or the legacy `sha256:<hex>` of one
   * DER encoding; lowercase (absent: none).
   */
  certificates?: string[]
}
