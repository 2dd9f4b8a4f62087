import { ConfigError } from '../lib/errors.js'
import { parseDenyList } from '../lib/fleets/deny-list.js'
import type { DenyList } from '../lib/fleets/fleet.js'
import { CliError } from './errors.js'
import type { SsmPort } from './ssm.js'

/** The largest value of a Standard SSM parameter; a longer deny list is stored as Advanced. */
export const STANDARD_TIER_MAX_BYTES = 4096
/** The largest value of an Advanced SSM parameter. */
export const ADVANCED_TIER_MAX_BYTES = 8192

/** A deny list as read from SSM, with the parameter version the read saw (0: no parameter yet). */
export interface StoredDenyList {
  list: DenyList
  version: number
  /** When the parameter was last written (epoch ms), when SSM says. */
  lastModifiedMs?: number
}

/** The outcome of one edit: the new list and the entries that actually changed (none when repeated). */
export interface DenyListEdit<T> {
  list: DenyList
  changed: T[]
}

/** An empty deny list: what a missing parameter stands for. */
export function emptyDenyList(): DenyList {
  return { version: 1, devices: [], retiredKeyVersions: [] }
}

/** Adds devices to the deny list (revoke) or removes them (unrevoke); the list stays sorted. */
export function setDevicesRevoked(list: DenyList, devices: string[], revoked: boolean): DenyListEdit<string> {
  const current = new Set(list.devices)
  const changed = [...new Set(devices)].filter((device) => current.has(device) !== revoked)
  for (const device of changed) {
    if (revoked) current.add(device)
    else current.delete(device)
  }
  return { list: { ...list, devices: [...current].sort() }, changed }
}

/** Adds certificate entries (`key:<hex>`, `serial:<hex>`, legacy `sha256:<hex>`) to the deny list (revoke) or removes them; the list stays sorted. */
export function setCertificatesRevoked(list: DenyList, entries: string[], revoked: boolean): DenyListEdit<string> {
  const current = new Set(list.certificates ?? [])
  const changed = [...new Set(entries)].filter((entry) => current.has(entry) !== revoked)
  for (const entry of changed) {
    if (revoked) current.add(entry)
    else current.delete(entry)
  }
  const { certificates: _previous, ...rest } = list
  return { list: current.size > 0 ? { ...rest, certificates: [...current].sort() } : rest, changed }
}

/** Retires key versions (every device flashed with one is refused) or restores them; the list stays sorted. */
export function setKeyVersionsRetired(list: DenyList, versions: number[], retired: boolean): DenyListEdit<number> {
  const current = new Set(list.retiredKeyVersions)
  const changed = [...new Set(versions)].filter((version) => current.has(version) !== retired)
  for (const version of changed) {
    if (retired) current.add(version)
    else current.delete(version)
  }
  return { list: { ...list, retiredKeyVersions: [...current].sort((a, b) => a - b) }, changed }
}

/**
 * The SSM value of a deny list, and the tier it needs.
 * @throws CliError `deny_list_too_large` beyond what an Advanced parameter holds.
 */
export function encodeDenyList(list: DenyList): { value: string; bytes: number; tier: 'Standard' | 'Advanced' } {
  const value = JSON.stringify({ version: 1, devices: list.devices, retiredKeyVersions: list.retiredKeyVersions, ...(list.certificates?.length ? { certificates: list.certificates } : {}) })
  const bytes = Buffer.byteLength(value, 'utf8')
  if (bytes > ADVANCED_TIER_MAX_BYTES) {
    throw new CliError(
      'deny_list_too_large',
      `the deny list would be ${bytes} bytes, more than the ${ADVANCED_TIER_MAX_BYTES} an SSM parameter holds: ` +
        'unrevoke devices that are gone for good (destroyed or back in your hands: an unrevoked key can provision again), ' +
        'or move their fleet to a new key version and retire the old one (docs/operations.md, "When the deny list is full")',
    )
  }
  return { value, bytes, tier: bytes > STANDARD_TIER_MAX_BYTES ? 'Advanced' : 'Standard' }
}

/**
 * Reads a fleet's deny list; a missing parameter is an empty list.
 * @throws CliError `invalid_deny_list` when the parameter holds something else (it is not overwritten).
 */
export async function loadDenyList(ssm: SsmPort, param: string): Promise<StoredDenyList> {
  const stored = await ssm.getParameter(param)
  if (stored === undefined) return { list: emptyDenyList(), version: 0 }
  try {
    const list = parseDenyList(stored.value, param)
    return {
      list: { version: 1, devices: [...list.devices], retiredKeyVersions: [...list.retiredKeyVersions], ...(list.certificates?.length ? { certificates: [...list.certificates] } : {}) },
      version: stored.version,
      ...(stored.lastModifiedMs === undefined ? {} : { lastModifiedMs: stored.lastModifiedMs }),
    }
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    throw new CliError('invalid_deny_list', `SSM parameter ${param} is not a deny list (${error.detail ?? 'unreadable'}); fix or delete it by hand first`)
  }
}

/**
 * Writes a fleet's deny list over the version that was read (SSM String, Advanced tier when it
 * needs more than 4096 bytes).
 * @returns a warning when someone else wrote the parameter in between (SSM has no conditional write).
 * @throws CliError `deny_list_too_large`, or what {@link SsmPort.putParameter} throws.
 */
export async function saveDenyList(ssm: SsmPort, param: string, read: StoredDenyList, list: DenyList): Promise<string | undefined> {
  const { value, tier } = encodeDenyList(list)
  const { version } = await ssm.putParameter({ name: param, value, type: 'String', overwrite: true, ...(tier === 'Advanced' ? { tier } : {}) })
  if (version !== 0 && version !== read.version + 1) {
    return `${param} changed while this command ran (version ${read.version} read, ${version} written): another change may have been overwritten; check it with \`aws ssm get-parameter --name ${param}\``
  }
  return undefined
}
