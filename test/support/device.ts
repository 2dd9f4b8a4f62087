import { randomBytes } from 'node:crypto'
import { decodeFleetKey, deriveDeviceKey, signRequest } from '../../lib/attestation/keys.js'
import { LOCAL_FLEET_KEY } from '../../local/defaults.js'

/** A fresh device ID for one test, inside the e2e stack's DEVICE_ID_PATTERN. */
export function newDeviceId(prefix = 'e2e'): string {
  return `${prefix}_${randomBytes(8).toString('hex')}`
}

/** The JSON body a device with the local fleet's derived key would send. */
export function signedBody(device: string, options: { timestamp?: number; fleetKey?: string } = {}): { device: string; timestamp: number; signature: string } {
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000)
  const deviceKey = deriveDeviceKey(decodeFleetKey(options.fleetKey ?? LOCAL_FLEET_KEY, 'fleet key'), device)
  return { device, timestamp, signature: signRequest(deviceKey, device, timestamp) }
}

/** The base64 device key a factory would flash, for secret-scanning assertions. */
export function deviceKeyOf(device: string, fleetKey: string = LOCAL_FLEET_KEY): string {
  return deriveDeviceKey(decodeFleetKey(fleetKey, 'fleet key'), device).toString('base64')
}
