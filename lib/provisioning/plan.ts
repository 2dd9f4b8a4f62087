import { ConfigError, ValidationError } from '../errors.js'
import type { Fleet } from '../fleets/fleet.js'
import type { CreateDeviceBody } from '../thinger/client.js'
import { markDescription, markLength } from './fleet-mark.js'

const RESOURCE_ID_PATTERN = /^[A-Za-z0-9_-]{1,32}$/
const MAX_TEXT_CHARS = 255
const PLACEHOLDER = /\{(device|fleet|meta\.([a-z0-9_]{1,32}))\}/g

/** Everything one device of a fleet must end up with on Thinger.io, with templates filled in. */
export interface ProvisioningPlan {
  device: Omit<CreateDeviceBody, 'credentials'>
  shared: Array<{ kind: 'types' | 'groups' | 'products'; id: string }>
  properties: Array<{ property: string; value: unknown }>
  bucket?: { bucket: string; name: string; description: string; enabled: true; config: Record<string, unknown> }
  dashboard?: { template: string; dashboard: string; name: string; description: string }
  projects: string[]
  /** The `provisioning` property, written last: its presence marks a device whose provisioning finished. */
  record: { fleet: string; meta: Record<string, string> }
  /** Whether every new device gets the record (see needsProvisioningRecord). */
  recordNewDevices: boolean
}

/**
 * Fills in a fleet's profile for one device and checks the result, before any Thinger.io call.
 * Texts may use the request's meta (or the defaults the fleet declares); IDs only `{device}` and
 * `{fleet}`, so no device can choose another's bucket or dashboard.
 * @throws ValidationError when a text needs a meta key the request lacks, or would be too long.
 */
export function planProvisioning(fleet: Fleet, device: string, meta: Record<string, string>, recordProvisioning: boolean): ProvisioningPlan {
  const profile = fleet.profile
  const fill = (template: string, what: string, idOnly: boolean) =>
    template.replace(PLACEHOLDER, (_match, name: string, metaKey?: string) => {
      if (metaKey === undefined) return name === 'device' ? device : fleet.name
      // The build refuses this (deploy/fleets.cjs); a definition handed in some other way too.
      if (idOnly) throw new ConfigError(`fleets.${fleet.name}`, `the ${what} uses {meta.${metaKey}}; IDs may use {device} and {fleet} only`)
      const value = Object.hasOwn(meta, metaKey) ? meta[metaKey] : fleet.meta !== undefined && Object.hasOwn(fleet.meta, metaKey) ? fleet.meta[metaKey]?.default : undefined
      if (value === undefined) throw new ValidationError(`"meta" must have "${metaKey}": this fleet's ${what} uses it`)
      return value
    })
  const text = (template: string | undefined, what: string, reserved = 0) => {
    if (template === undefined) return undefined
    const value = fill(template, what, false)
    if (value.length > MAX_TEXT_CHARS - reserved) throw new ValidationError(`the fleet profile's ${what} would be longer than ${MAX_TEXT_CHARS - reserved} characters with this meta`)
    return value
  }
  const id = (template: string, what: string) => {
    const value = fill(template, what, true)
    if (!RESOURCE_ID_PATTERN.test(value)) throw new ValidationError(`the fleet profile's ${what} would not be a valid Thinger.io ID for this device`)
    return value
  }

  const deviceBody: ProvisioningPlan['device'] = { device, type: profile.type }
  const name = text(profile.name, 'device name')
  if (name !== undefined) deviceBody.name = name
  deviceBody.description = markDescription(text(profile.description, 'device description', markLength(fleet.name)), fleet.name)
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
      name: text(bucket.name, 'bucket name') ?? `${device} data`,
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
      description: dashboardDescription(device),
    }
  }
  return plan
}

/** The description a device's dashboard is cloned with: it names the device it belongs to. */
export function dashboardDescription(device: string): string {
  return `Dashboard of device ${device} (thinger-provisioner)`
}
