import { AttestationError, CertificateError, ConfigError } from '../errors.js'
import type { DenyList } from './fleet.js'

const CERTIFICATE_ENTRY = /^(serial:[0-9a-f]{1,40}|sha256:[0-9a-f]{64})$/

/** What a missing deny-list parameter stands for: nothing revoked. */
export const EMPTY_DENY_LIST_JSON = JSON.stringify({ version: 1, devices: [], retiredKeyVersions: [] } satisfies DenyList)

/**
 * Reads a fleet's deny list as stored in SSM (JSON, already parsed or not).
 * @throws ConfigError naming the parameter's field when it is not a deny list: refusing every
 *   request is safer than provisioning a device that was revoked.
 */
export function parseDenyList(value: unknown, setting: string): DenyList {
  let list = value
  if (typeof list === 'string') {
    try {
      list = JSON.parse(list)
    } catch {
      throw new ConfigError(setting, 'the deny list is not JSON')
    }
  }
  const candidate = list as Partial<DenyList> | null
  if (
    typeof candidate !== 'object' ||
    candidate === null ||
    candidate.version !== 1 ||
    !Array.isArray(candidate.devices) ||
    !candidate.devices.every((d) => typeof d === 'string') ||
    !Array.isArray(candidate.retiredKeyVersions) ||
    !candidate.retiredKeyVersions.every((v) => Number.isInteger(v)) ||
    (candidate.certificates !== undefined && (!Array.isArray(candidate.certificates) || !candidate.certificates.every((c) => typeof c === 'string' && CERTIFICATE_ENTRY.test(c))))
  ) {
    throw new ConfigError(setting, 'the deny list must be {"version":1,"devices":[...],"retiredKeyVersions":[...]} with optional "certificates":["serial:<hex>"|"sha256:<hex>",...]')
  }
  return candidate as DenyList
}

/**
 * Refuses a revoked device, or a device key of a retired version.
 * @throws AttestationError `device_revoked` or `key_revoked`.
 */
export function checkNotRevoked(list: DenyList, device: string, keyVersion: number | undefined): void {
  if (list.devices.includes(device)) throw new AttestationError('device_revoked', 'this device has been revoked')
  if (keyVersion !== undefined && list.retiredKeyVersions.includes(keyVersion)) {
    throw new AttestationError('key_revoked', 'the key version of this device has been retired')
  }
}

/**
 * Refuses a revoked device certificate, named in the deny list by its serial or its SHA-256
 * fingerprint (`serial:<hex>`, `sha256:<hex>`).
 * @throws CertificateError `certificate_revoked`.
 */
export function checkCertificateNotRevoked(list: DenyList, certificate: { serial: string; fingerprint: string }): void {
  const revoked = list.certificates ?? []
  if (revoked.includes(`serial:${certificate.serial}`) || revoked.includes(`sha256:${certificate.fingerprint}`)) {
    throw new CertificateError('certificate_revoked', 'this certificate has been revoked')
  }
}
