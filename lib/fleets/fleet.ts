/** How a device proves it may join a fleet. */
export type Proof = 'hmac' | 'claim'

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
  keyParam?: string
  claimParam?: string
  devicePattern: string
  reprovision: 'rotate' | 'reject'
  profile: Profile
}

/** The validated fleets file, as compiled into the bundle. */
export interface FleetsDefinition {
  version: 1
  fleets: Record<string, FleetDefinition>
}

/** A fleet ready to serve requests. */
export interface Fleet extends Omit<FleetDefinition, 'devicePattern'> {
  name: string
  devicePattern: RegExp
}

/** The fleet a request without `fleet` belongs to. */
export const DEFAULT_FLEET = 'default'

/**
 * True when provisioning a device of this fleet takes more than creating it: a profile element,
 * or the `reject` policy, whose completion record is what tells a finished device from one whose
 * provisioning was interrupted.
 */
export function needsProvisioningRecord(fleet: Pick<Fleet, 'profile' | 'reprovision'>): boolean {
  const { type: _type, ...elements } = fleet.profile
  return fleet.reprovision === 'reject' || Object.values(elements).some((value) => value !== undefined)
}
