import { createECDH, createHmac, createPublicKey, diffieHellman, type KeyObject } from 'node:crypto'
import { openSealed, type SealBinding, type SealKey, SealOpenError } from './seal.js'

const ECDH_LABEL = 'thinger-provisioner seal v1\necdh'
const POINT_BYTES = 65
const COORDINATE_BYTES = 32
// format | mode, then the service's ephemeral public key.
const POINT_OFFSET = 2

/**
 * The seal key of a certificate (X.509, protocol v2) request, sealed to the certificate's P-256
 * key: the service makes an ephemeral P-256 key per answer; the key is
 * HMAC-SHA256(ECDH shared x-coordinate, label, device, signed timestamp). The ephemeral public key
 * (uncompressed, 65 bytes) goes in the envelope after the mode byte, authenticated with it; only
 * the holder of the certificate's private key can compute the same key (docs/protocol.md).
 * `devicePoint` is the certificate's public key as an X9.62 point (the bits of its
 * SubjectPublicKeyInfo); node:crypto's ECDH class takes it as is, at half the cost of KeyObjects.
 * `ephemeralScalar` (32 bytes) is for test vectors only.
 * @throws Error when the point is not on P-256 (a verified certificate's key always is).
 */
export function deriveEcdhSealKey(devicePoint: Buffer, device: string, timestamp: number, ephemeralScalar?: Buffer): SealKey {
  const ephemeral = createECDH('prime256v1')
  if (ephemeralScalar === undefined) ephemeral.generateKeys()
  else ephemeral.setPrivateKey(ephemeralScalar)
  const sharedSecret = ephemeral.computeSecret(devicePoint)
  return { mode: 'ecdh', key: ecdhSealKey(sharedSecret, device, timestamp), modeHeader: ephemeral.getPublicKey() }
}

/**
 * Opens a credential sealed to a P-256 key (what a device with a certificate does).
 * @throws SealOpenError when the envelope is malformed, of another mode, or does not open with this key.
 */
export function openEcdhSealed(sealed: string, devicePrivateKey: KeyObject, device: string, timestamp: number, binding: SealBinding): string {
  const envelope = Buffer.from(sealed, 'base64')
  if (envelope.length < POINT_OFFSET + POINT_BYTES) throw new SealOpenError('the sealed credential is not a well-formed envelope')
  const point = envelope.subarray(POINT_OFFSET, POINT_OFFSET + POINT_BYTES)
  let sharedSecret: Buffer
  try {
    sharedSecret = diffieHellman({ privateKey: devicePrivateKey, publicKey: fromPoint(point) })
  } catch {
    throw new SealOpenError('the sealed credential carries no valid P-256 key')
  }
  return openSealed(sealed, { mode: 'ecdh', key: ecdhSealKey(sharedSecret, device, timestamp), modeHeader: Buffer.from(point) }, binding)
}

function ecdhSealKey(sharedSecret: Buffer, device: string, timestamp: number): Buffer {
  return createHmac('sha256', sharedSecret).update(`${ECDH_LABEL}\n${device}\n${timestamp}`, 'utf8').digest()
}

/** A P-256 public key as the uncompressed X9.62 point `0x04 ‖ x ‖ y`. */
export function toPoint(publicKey: KeyObject): Buffer {
  const { x, y } = publicKey.export({ format: 'jwk' })
  return Buffer.concat([Buffer.from([0x04]), Buffer.from(x as string, 'base64url'), Buffer.from(y as string, 'base64url')])
}

function fromPoint(point: Buffer): KeyObject {
  if (point[0] !== 0x04) throw new SealOpenError('not an uncompressed point')
  const x = point.subarray(1, 1 + COORDINATE_BYTES).toString('base64url')
  const y = point.subarray(1 + COORDINATE_BYTES).toString('base64url')
  return createPublicKey({ key: { kty: 'EC', crv: 'P-256', x, y }, format: 'jwk' })
}
