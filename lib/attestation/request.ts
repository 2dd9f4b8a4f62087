import { AttestationError, ValidationError } from '../errors.js'
import { DEFAULT_FLEET, type Fleet, type Proof } from '../fleets/fleet.js'

const THINGER_DEVICE_ID_PATTERN = /^[A-Za-z0-9_-]{1,32}$/
const FLEET_NAME_PATTERN = /^[a-z0-9_-]{1,32}$/
// Standard base64 of exactly 32 bytes: 43 characters and one padding '='.
const SIGNATURE_PATTERN = /^[A-Za-z0-9+/]{43}=$/
const MAX_CLAIM_CHARS = 256
const MAX_META_KEYS = 16
const META_KEY_PATTERN = /^[a-z0-9_]{1,32}$/
const MAX_META_VALUE_CHARS = 64
// Control, format (bidi overrides, zero-width), private-use, unassigned and surrogate code points,
// line and paragraph separators, and the angle brackets of markup: meta is printed and shown.
const UNPRINTABLE_META = /[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Cs}\p{Zl}\p{Zp}<>]/u
const MAX_KEY_VERSION = 999
const ALLOWED_FIELDS = new Set(['device', 'timestamp', 'signature', 'keyVersion', 'claim', 'fleet', 'meta', 'version', 'certificate', 'chain'])
// Canonical standard base64 (padding included) of a certificate or a certificate key's signature.
const BASE64_PATTERN = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/
// An RSA-4096 signature is 512 bytes, 684 characters of base64.
const MAX_CERTIFICATE_SIGNATURE_CHARS = 684
// The body limit (4096 bytes) bounds certificates; this only bounds what the parser looks at.
const MAX_CHAIN_ENTRIES = 4

/** A provisioning request (device protocol version 1, or 2 for a sealed answer), shape-checked. */
export interface ProvisionRequest {
  device: string
  fleet: string
  /** 2: the answer's credential is sealed to the device (docs/protocol.md), and device keys sign "v2"; absent: version 1. */
  version?: 2
  meta: Record<string, string>
  proof:
    | { kind: 'hmac'; timestamp: number; signature: string; keyVersion: number }
    | { kind: 'claim'; claim: string }
    | { kind: 'x509'; timestamp: number; signature: string; certificate: Buffer; chain: Buffer[] }
}

/**
 * Checks that a parsed JSON body is a provisioning request: `device` with either `timestamp` and
 * `signature` (a device key) or `claim` (a fleet's claim secret), and optionally `fleet` and `meta`.
 * @throws ValidationError `invalid_request` naming the first field that is wrong.
 */
export function parseProvisionRequest(body: unknown): ProvisionRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ValidationError('the body must be a JSON object')
  }
  const record = body as Record<string, unknown>
  for (const field of Object.keys(record)) {
    if (!ALLOWED_FIELDS.has(field)) throw new ValidationError(`unknown field "${field.slice(0, 32)}"`)
  }
  const { device, timestamp, signature, keyVersion, claim, fleet, meta, version, certificate, chain } = record
  if (typeof device !== 'string') throw new ValidationError('"device" must be a string')
  if (!THINGER_DEVICE_ID_PATTERN.test(device)) {
    throw new ValidationError('"device" must match ^[A-Za-z0-9_-]{1,32}$')
  }
  if (fleet !== undefined && (typeof fleet !== 'string' || !FLEET_NAME_PATTERN.test(fleet))) {
    throw new ValidationError('"fleet" must match ^[a-z0-9_-]{1,32}$')
  }
  if (version !== undefined && version !== 1 && version !== 2) throw new ValidationError('"version" must be 1 or 2')
  const request = { device, fleet: (fleet as string | undefined) ?? DEFAULT_FLEET, ...(version === 2 ? { version: 2 as const } : {}), meta: parseMeta(meta) }
  if (certificate === undefined && chain !== undefined) throw new ValidationError('"chain" comes only with "certificate"')
  if (claim !== undefined) {
    if (timestamp !== undefined || signature !== undefined || keyVersion !== undefined || certificate !== undefined) {
      throw new ValidationError('send either "claim" or "timestamp", "signature" (and "keyVersion"), not both')
    }
    if (typeof claim !== 'string' || claim.length === 0 || claim.length > MAX_CLAIM_CHARS) {
      throw new ValidationError(`"claim" must be a string of 1 to ${MAX_CLAIM_CHARS} characters`)
    }
    return { ...request, proof: { kind: 'claim', claim } }
  }
  if (typeof timestamp !== 'number' || !Number.isSafeInteger(timestamp) || timestamp < 0) {
    throw new ValidationError('"timestamp" must be a non-negative integer (Unix seconds)')
  }
  if (typeof signature !== 'string') throw new ValidationError('"signature" must be a string')
  if (certificate !== undefined) {
    if (keyVersion !== undefined) throw new ValidationError('"keyVersion" does not come with "certificate"')
    if (signature.length > MAX_CERTIFICATE_SIGNATURE_CHARS || !BASE64_PATTERN.test(signature) || signature === '') {
      throw new ValidationError(`"signature" must be standard base64 of at most ${MAX_CERTIFICATE_SIGNATURE_CHARS} characters`)
    }
    return { ...request, proof: { kind: 'x509', timestamp, signature, certificate: readBase64Der(certificate, '"certificate"'), chain: parseChain(chain) } }
  }
  if (!SIGNATURE_PATTERN.test(signature)) {
    throw new ValidationError('"signature" must be the base64 of 32 bytes')
  }
  if (keyVersion !== undefined && (typeof keyVersion !== 'number' || !Number.isInteger(keyVersion) || keyVersion < 1 || keyVersion > MAX_KEY_VERSION)) {
    throw new ValidationError(`"keyVersion" must be an integer from 1 to ${MAX_KEY_VERSION}`)
  }
  return { ...request, proof: { kind: 'hmac', timestamp, signature, keyVersion: (keyVersion as number | undefined) ?? 1 } }
}

function parseChain(chain: unknown): Buffer[] {
  if (chain === undefined) return []
  if (!Array.isArray(chain) || chain.length > MAX_CHAIN_ENTRIES) throw new ValidationError(`"chain" must be an array of at most ${MAX_CHAIN_ENTRIES} certificates`)
  return chain.map((entry, index) => readBase64Der(entry, `"chain[${index}]"`))
}

function readBase64Der(value: unknown, field: string): Buffer {
  if (typeof value !== 'string' || value === '' || !BASE64_PATTERN.test(value)) throw new ValidationError(`${field} must be a DER certificate in standard base64`)
  return Buffer.from(value, 'base64')
}

function parseMeta(meta: unknown): Record<string, string> {
  if (meta === undefined) return {}
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) throw new ValidationError('"meta" must be an object')
  const entries = Object.entries(meta)
  if (entries.length > MAX_META_KEYS) throw new ValidationError(`"meta" may have at most ${MAX_META_KEYS} keys`)
  // Built from entries, so a `__proto__` key stays an own key (an assignment would set the prototype and drop it).
  const result: Array<[string, string]> = []
  for (const [key, value] of entries) {
    if (!META_KEY_PATTERN.test(key)) throw new ValidationError('"meta" keys must match ^[a-z0-9_]{1,32}$')
    if (typeof value !== 'string' || value.length === 0 || value.length > MAX_META_VALUE_CHARS) {
      throw new ValidationError(`"meta" values must be strings of 1 to ${MAX_META_VALUE_CHARS} characters`)
    }
    if (UNPRINTABLE_META.test(value)) {
      throw new ValidationError(`"meta" value of "${key}" must be printable text, without control or format characters or < >`)
    }
    result.push([key, value])
  }
  return Object.fromEntries(result)
}

/**
 * Finds the request's fleet and checks what needs no secret: the fleet exists, accepts this kind
 * of proof, allows this device ID, and declares every meta key sent (with its pattern).
 * @throws AttestationError `unknown_fleet`, `proof_not_accepted`, `sealing_required`,
 *   `unknown_key_version` or `device_not_allowed`; ValidationError `invalid_request` for meta the
 *   fleet does not accept.
 */
export function admitToFleet(request: ProvisionRequest, fleets: ReadonlyMap<string, Fleet>): Fleet {
  const fleet = fleets.get(request.fleet)
  if (fleet === undefined) throw new AttestationError('unknown_fleet', 'this service has no such fleet')
  if (!fleet.proof.includes(request.proof.kind as Proof)) {
    throw new AttestationError('proof_not_accepted', `this fleet does not accept ${{ claim: 'claim secrets', hmac: 'device keys', x509: 'certificates' }[request.proof.kind]}`)
  }
  if (fleet.sealing === 'required' && request.version !== 2) {
    throw new AttestationError('sealing_required', 'this fleet answers only protocol v2 requests, whose credential is sealed')
  }
  if (request.proof.kind === 'hmac' && !(fleet.keyVersions ?? [1]).includes(request.proof.keyVersion)) {
    throw new AttestationError('unknown_key_version', 'this fleet has no such key version')
  }
  if (!fleet.devicePattern.test(request.device)) {
    throw new AttestationError('device_not_allowed', 'this device ID is not allowed in this fleet')
  }
  for (const [key, value] of Object.entries(request.meta)) {
    // Own keys only: `constructor` or `__proto__` must not find Object.prototype's members.
    const rule = fleet.meta !== undefined && Object.hasOwn(fleet.meta, key) ? fleet.meta[key] : undefined
    if (rule === undefined) throw new ValidationError(`"meta" key "${key}" is not accepted by this fleet`)
    if (rule.pattern !== undefined && !rule.pattern.test(value)) throw new ValidationError(`"meta" value of "${key}" does not match this fleet's rule`)
  }
  return fleet
}
