import { createHmac, type KeyObject, randomBytes, sign, timingSafeEqual } from 'node:crypto'
import { AttestationError, ConfigError } from '../errors.js'

const MIN_FLEET_KEY_BYTES = 32
const SIGNATURE_BYTES = 32
const MIN_CLAIM_SECRET_CHARS = 16
const BASE64_PATTERN = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/**
 * Decodes the fleet key as stored in SSM (base64 of at least 32 random bytes).
 * @throws ConfigError when the stored value is not such a key; the value itself is never quoted.
 */
export function decodeFleetKey(storedValue: unknown, setting: string): Buffer {
  if (typeof storedValue !== 'string' || !BASE64_PATTERN.test(storedValue.trim())) {
    throw new ConfigError(setting, 'the parameter value is not base64')
  }
  const key = Buffer.from(storedValue.trim(), 'base64')
  if (key.length < MIN_FLEET_KEY_BYTES) {
    throw new ConfigError(setting, `the fleet key must be at least ${MIN_FLEET_KEY_BYTES} bytes`)
  }
  return key
}

/**
 * Derives a device's key from the fleet key: HMAC-SHA256(fleetKey, UTF-8 device ID), the scheme of
 * Azure DPS symmetric-key enrollment groups. The factory flashes its base64 form into the device.
 */
export function deriveDeviceKey(fleetKey: Buffer, device: string): Buffer {
  return createHmac('sha256', fleetKey).update(device, 'utf8').digest()
}

/** The protocol versions a device may sign: 2 asks for a sealed credential, and the signature covers that choice. */
export type ProtocolVersion = 1 | 2

/** The exact bytes a device signs: `"v1\n" + device + "\n" + timestamp` (`"v2\n…"` for a sealed answer). */
export function signedMessage(device: string, timestamp: number, version: ProtocolVersion = 1): string {
  return `v${version}\n${device}\n${timestamp}`
}

/** Signs a provisioning request with a device key; returns the base64 signature a device sends. */
export function signRequest(deviceKey: Buffer, device: string, timestamp: number, version: ProtocolVersion = 1): string {
  return requestMac(deviceKey, device, timestamp, version).toString('base64')
}

/** Signs a provisioning request with a certificate's private key, as a device does: P-256 as r‖s, RSA as PKCS#1 v1.5. */
export function signWithCertificateKey(privateKey: KeyObject, device: string, timestamp: number, version: ProtocolVersion = 1): string {
  const message = Buffer.from(signedMessage(device, timestamp, version), 'utf8')
  return sign('sha256', message, privateKey.asymmetricKeyType === 'ec' ? { key: privateKey, dsaEncoding: 'ieee-p1363' } : privateKey).toString('base64')
}

function requestMac(deviceKey: Buffer, device: string, timestamp: number, version: ProtocolVersion): Buffer {
  return createHmac('sha256', deviceKey).update(signedMessage(device, timestamp, version), 'utf8').digest()
}

/**
 * Checks a request's signature against the key derived for its device, in constant time. The
 * version is part of the signed message, so a v2 request stripped to v1 no longer verifies.
 * @throws AttestationError `invalid_signature` when it does not match.
 */
export function verifySignature(fleetKey: Buffer, device: string, timestamp: number, signature: string, version: ProtocolVersion = 1): void {
  const expected = requestMac(deriveDeviceKey(fleetKey, device), device, timestamp, version)
  const given = Buffer.from(signature, 'base64')
  // Length is not secret (always 32 for a well-formed signature); the comparison of contents is.
  // The round trip refuses the other spellings base64 allows in the last character's unused bits.
  const canonical = given.toString('base64') === signature
  if (given.length !== SIGNATURE_BYTES || !timingSafeEqual(given, expected) || !canonical) {
    throw new AttestationError('invalid_signature', 'the signature does not match the device key')
  }
}

/**
 * Refuses a timestamp further than `skewSeconds` from the server's clock.
 * @throws AttestationError `clock_skew`, carrying the server time so a device without a clock can retry.
 */
export function checkClock(timestamp: number, nowSeconds: number, skewSeconds: number): void {
  if (Math.abs(timestamp - nowSeconds) > skewSeconds) {
    throw new AttestationError('clock_skew', `the timestamp is more than ${skewSeconds} s from the server clock`, {
      serverTime: nowSeconds,
    })
  }
}

/**
 * Checks a fleet's claim secret in constant time: both sides are hashed with a random key first,
 * so neither their contents nor their lengths show in the comparison's timing.
 * @throws AttestationError `invalid_claim` when it does not match.
 */
export function verifyClaim(given: string, stored: string): void {
  const key = randomBytes(32)
  const digest = (value: string) => createHmac('sha256', key).update(value, 'utf8').digest()
  if (!timingSafeEqual(digest(given), digest(stored))) {
    throw new AttestationError('invalid_claim', 'the claim secret is not this fleet’s')
  }
}

/**
 * Reads a fleet's claim secret as stored in SSM.
 * @throws ConfigError when it is shorter than 16 characters; the value itself is never quoted.
 */
export function decodeClaimSecret(storedValue: unknown, setting: string): string {
  if (typeof storedValue !== 'string' || storedValue.trim().length < MIN_CLAIM_SECRET_CHARS) {
    throw new ConfigError(setting, `the claim secret must be at least ${MIN_CLAIM_SECRET_CHARS} characters`)
  }
  return storedValue.trim()
}
