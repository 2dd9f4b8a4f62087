import { ValidationError } from '../errors.js'
import type { Fleet } from '../fleets/fleet.js'
import type { CreateDeviceBody } from '../thinger/client.js'

const RESOURCE_ID_PATTERN = /^[A-Za-z0-9_-]{1,32}$/
const MAX_TEXT_CHARS = 255
const PLACEHOLDER = /\{(device|fleet|meta\.([a-z0-9_]{1,32}))\}/g

/** Everything one device of a fleet must end up with on Thinger.io, with templates filled in. */
export interface ProvisioningPlan {
  device: Omit<CreateDeviceBody, 'credentials'>
  shared: Array<{ kind: 'types' | 'groups' | 'products'; id: string }>
  properties: Array<{ property: string; value: unknown }>
  bucket?: { bucket: string; name: string; description: string; enabled: true; config: Record<string, unknown> }
  dashboard?: { template: string; dashboard: string; name: string }
  projects: string[]
  /** The `provisioning` property, written last: its presence marks a device whose provisioning finished. */
  record: { fleet: string; meta: Record<string, string> }
  /** Whether every new device gets the record (see needsProvisioningRecord). */
  recordNewDevices: boolean
}

/**
 * Fills in a fleet's profile for one device and checks the result, before any Thinger.io call.
 * @throws ValidationError when `meta` makes a resource ID or a text invalid.
 */
export function planProvisioning(fleet: Fleet, device: string, meta: Record<string, string>, recordProvisioning: boolean): ProvisioningPlan {
  const profile = fleet.profile
  const fill = (template: string) => template.replace(PLACEHOLDER, (_match, name: string, metaKey?: string) => (metaKey === undefined ? (name === 'device' ? device : fleet.name) : (meta[metaKey] ?? '')))
  const text = (template: string | undefined, what: string) => {
    if (template === undefined) return undefined
    const value = fill(template)
    if (value.length > MAX_TEXT_CHARS) throw new ValidationError(`the fleet profile's ${what} would be longer than ${MAX_TEXT_CHARS} characters with this meta`)
    return value
  }
  const id = (template: string, what: string) => {
    const value = fill(template)
    if (!RESOURCE_ID_PATTERN.test(value)) throw new ValidationError(`the fleet profile's ${what} would not be a valid Thinger.io ID for this device and meta`)
    return value
  }

  const deviceBody: ProvisioningPlan['device'] = { device, type: profile.type }
  const name = text(profile.name, 'device name')
  const description = text(profile.description, 'device description')
  if (name !== undefined) deviceBody.name = name
  if (description !== undefined) deviceBody.description = description
  if (profile.assetType) deviceBody.asset_type = profile.assetType
  if (profile.assetGroup) deviceBody.asset_group = profile.assetGroup
  if (profile.product) deviceBody.product = profile.product

  const plan: ProvisioningPlan = {
    device: deviceBody,
    shared: [
      ...(profile.assetType ? [{ kind: 'types' as const, id: profile.assetType }] : []),
      ...(profile.assetGroup ? [{ kind: 'groups' as const, id: profile.assetGroup }] : []),
      ...(profile.product ? [{ kind: 'products' as const, id: profile.product }] : []),
    ],
    properties: Object.entries(profile.properties ?? {}).map(([property, value]) => ({ property, value })),
    projects: [...(profile.projects ?? [])],
    record: { fleet: fleet.name, meta },
    recordNewDevices: recordProvisioning,
  }
  if (profile.bucket) {
    const bucket = profile.bucket
    plan.bucket = {
      bucket: id(bucket.id, 'bucket ID'),
      name: text(bucket.name, 'bucket name') ?? fill('{device} data'),
      description: text(bucket.description, 'bucket description') ?? `Data of ${device}, created by thinger-provisioner`,
      enabled: true,
      config: {
        source: 'device',
        device,
        resource: bucket.resource,
        update: bucket.update,
        ...(bucket.update === 'interval' ? { interval: bucket.interval } : {}),
      },
    }
  }
  if (profile.dashboard) {
    plan.dashboard = {
      template: profile.dashboard.template,
      dashboard: id(profile.dashboard.id, 'dashboard ID'),
      name: text(profile.dashboard.name, 'dashboard name') ?? device,
    }
  }
  return plan
}
