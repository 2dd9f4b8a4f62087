import { type CertificateIdentity, certificateDenyEntries } from '../attestation/x509.js'
import { AttestationError, CertificateError, ConfigError } from '../errors.js'
import type { DenyList } from './fleet.js'

const CERTIFICATE_ENTRY = /^(key:[0-9a-f]{64}|serial:[0-9a-f]{1,40}|sha256:[0-9a-f]{64})$/
const LEGACY_FINGERPRINT_ENTRY = /^sha256:/

// A list's certificate entries as a set, once per parsed list (the function keeps parsed lists per SSM value).
const certificateSets = new WeakMap<readonly string[], Set<string>>()

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
    throw new ConfigError(setting, 'the deny list must be {"version":1,"devices":[...],"retiredKeyVersions":[...]} with optional "certificates":["key:<hex>"|"serial:<hex>"|"sha256:<hex>",...] (lowercase hex)')
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
 * Refuses a certificate path of which any certificate (the device's, its intermediate, the
 * trusted CA) is named in the deny list: by its key (`key:<hex>`, what `revoke --certificate`
 * writes), or by the SHA-256 of its DER (`sha256:<hex>`, the legacy entry: it misses a re-encoded
 * twin); a bare serial (`serial:<hex>`) is matched against every certificate the device sent, its
 * own and its intermediate's (a serial is unique only per issuer, so this errs towards refusing),
 * never against the trusted CA's own serial (often 1), which would refuse the whole fleet.
 * @throws CertificateError `certificate_revoked`.
 */
export function checkCertificateNotRevoked(list: DenyList, path: readonly CertificateIdentity[]): void {
  const entries = list.certificates
  if (entries === undefined || entries.length === 0) return
  let revoked = certificateSets.get(entries)
  if (revoked === undefined) {
    revoked = new Set(entries)
    certificateSets.set(entries, revoked)
  }
  for (const certificate of path) {
    const names = certificateDenyEntries(certificate).filter((entry) => certificate.role !== 'ca' || !entry.startsWith('serial:'))
    if (names.some((entry) => revoked.has(entry))) {
      throw new CertificateError('certificate_revoked', certificate.role === 'device' ? 'this certificate has been revoked' : `the ${certificate.role === 'ca' ? 'CA' : 'intermediate'} certificate of this chain has been revoked`)
    }
  }
}

/** The deny list's legacy `sha256:` entries: each refuses one encoding of a certificate, not its re-encoded twin (docs/operations.md). */
export function legacyFingerprintEntries(list: DenyList): string[] {
  return (list.certificates ?? []).filter((entry) => LEGACY_FINGERPRINT_ENTRY.test(entry))
}
