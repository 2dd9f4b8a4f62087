import { AttestationError, ValidationError } from '../errors.js'

const THINGER_DEVICE_ID_PATTERN = /^[A-Za-z0-9_-]{1,32}$/
// Standard base64 of exactly 32 bytes: 43 characters and one padding '='.
const SIGNATURE_PATTERN = /^[A-Za-z0-9+/]{43}=$/
const ALLOWED_FIELDS = new Set(['device', 'timestamp', 'signature'])

/** A provisioning request, version 1 of the device protocol, shape-checked. */
export interface ProvisionRequest {
  device: string
  timestamp: number
  signature: string
}

/**
 * Checks that a parsed JSON body is a version 1 provisioning request.
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
  const { device, timestamp, signature } = record
  if (typeof device !== 'string') throw new ValidationError('"device" must be a string')
  if (!THINGER_DEVICE_ID_PATTERN.test(device)) {
    throw new ValidationError('"device" must match ^[A-Za-z0-9_-]{1,32}$')
  }
  if (typeof timestamp !== 'number' || !Number.isSafeInteger(timestamp) || timestamp < 0) {
    throw new ValidationError('"timestamp" must be a non-negative integer (Unix seconds)')
  }
  if (typeof signature !== 'string') throw new ValidationError('"signature" must be a string')
  if (!SIGNATURE_PATTERN.test(signature)) {
    throw new ValidationError('"signature" must be the base64 of 32 bytes')
  }
  return { device, timestamp, signature }
}

/**
 * Refuses a device ID outside the operator's `DEVICE_ID_PATTERN`.
 * @throws AttestationError `device_not_allowed`.
 */
export function checkDeviceAllowed(device: string, pattern: RegExp): void {
  if (!pattern.test(device)) {
    throw new AttestationError('device_not_allowed', 'this device ID is not allowed by this service')
  }
}
