import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto'

const ENVELOPE_FORMAT = 1
const SEAL_LABEL = 'thinger-provisioner seal v1'
const NONCE_BYTES = 12
const TAG_BYTES = 16
const KEY_BYTES = 32
const HEADER_BYTES = 2
// A credential is at most 255 bytes (docs/protocol.md), so an envelope never needs more.
const MAX_PLAINTEXT_BYTES = 255

/**
 * The key agreement a sealed credential was made with; the envelope's second byte. `hmac` and
 * `claim` derive the key from a secret the device holds; later modes (an ECDH P-256 mode for
 * X.509 devices) add their own header after this byte, and nothing else of the format changes.
 */
export const SEAL_MODES = { hmac: 1, claim: 2, ecdh: 3 } as const
export type SealMode = keyof typeof SEAL_MODES

/** What a sealed credential is bound to besides its key: a machine in the middle cannot swap them. */
export interface SealBinding {
  username: string
  device: string
  host: string
}

/** A seal key and the mode it was derived in. */
export interface SealKey {
  mode: SealMode
  key: Buffer
  /** The mode's own header, written after the mode byte and authenticated with it (ECDH: the service's ephemeral public key). */
  modeHeader?: Buffer
}

/** Raised by {@link openSealed} when an envelope is malformed, of another mode, or does not authenticate. */
export class SealOpenError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'SealOpenError'
  }
}

/**
 * The seal key of a device-key (v2) request: HMAC-SHA256(device key, label, mode, device and the
 * signed timestamp), so each request's answer has its own key and only the device key opens it.
 */
export function deriveHmacSealKey(deviceKey: Buffer, device: string, timestamp: number): SealKey {
  return { mode: 'hmac', key: hmac(deviceKey, `${SEAL_LABEL}\nhmac\n${device}\n${timestamp}`) }
}

/**
 * The seal key of a claim request: HMAC-SHA256(UTF-8 claim secret, label, mode, device). Every
 * holder of the claim secret can derive it, and a claim request carries no timestamp, so this
 * only keeps the credential from those who see the answer without the request (docs/protocol.md).
 */
export function deriveClaimSealKey(claimSecret: string, device: string): SealKey {
  return { mode: 'claim', key: hmac(Buffer.from(claimSecret, 'utf8'), `${SEAL_LABEL}\nclaim\n${device}`) }
}

/**
 * Seals a credential to a device: AES-256-GCM under the seal key with a random 96-bit nonce, the
 * envelope header and the binding as associated data. Returns base64 of
 * `format | mode | nonce | ciphertext | tag` (docs/protocol.md). `nonce` is for test vectors only.
 */
export function sealCredential(credential: string, sealKey: SealKey, binding: SealBinding, nonce: Buffer = randomBytes(NONCE_BYTES)): string {
  const plaintext = Buffer.from(credential, 'utf8')
  if (plaintext.length === 0 || plaintext.length > MAX_PLAINTEXT_BYTES) throw new RangeError('a credential is 1 to 255 bytes')
  if (nonce.length !== NONCE_BYTES || sealKey.key.length !== KEY_BYTES) throw new RangeError('a seal needs a 32-byte key and a 12-byte nonce')
  const header = Buffer.concat([Buffer.from([ENVELOPE_FORMAT, SEAL_MODES[sealKey.mode]]), sealKey.modeHeader ?? Buffer.alloc(0)])
  const cipher = createCipheriv('aes-256-gcm', sealKey.key, nonce, { authTagLength: TAG_BYTES })
  cipher.setAAD(associatedData(header, binding))
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()])
  return Buffer.concat([header, nonce, ciphertext, cipher.getAuthTag()]).toString('base64')
}

/**
 * Opens a sealed credential (what a device does; the service never needs it).
 * @throws SealOpenError when the envelope is malformed, sealed in another mode, or does not
 * authenticate under this key and binding (a wrong key, or anything changed on the way).
 */
export function openSealed(sealed: string, sealKey: SealKey, binding: SealBinding): string {
  const envelope = Buffer.from(sealed, 'base64')
  const headerBytes = HEADER_BYTES + (sealKey.modeHeader?.length ?? 0)
  if (envelope.toString('base64') !== sealed || envelope.length < headerBytes + NONCE_BYTES + 1 + TAG_BYTES) {
    throw new SealOpenError('the sealed credential is not a well-formed envelope')
  }
  if (envelope[0] !== ENVELOPE_FORMAT || envelope[1] !== SEAL_MODES[sealKey.mode]) {
    throw new SealOpenError('the sealed credential has another format or mode')
  }
  const header = envelope.subarray(0, headerBytes)
  const nonce = envelope.subarray(headerBytes, headerBytes + NONCE_BYTES)
  const ciphertext = envelope.subarray(headerBytes + NONCE_BYTES, envelope.length - TAG_BYTES)
  const decipher = createDecipheriv('aes-256-gcm', sealKey.key, nonce, { authTagLength: TAG_BYTES })
  decipher.setAAD(associatedData(header, binding))
  decipher.setAuthTag(envelope.subarray(envelope.length - TAG_BYTES))
  try {
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString('utf8')
  } catch {
    throw new SealOpenError('the sealed credential does not open with this key')
  }
}

/**
 * A protocol v2 answer: the fields of the v1 answer in their order, with `sealed` in place of
 * `credential`, so the credential itself never leaves the service in clear.
 */
export function sealAnswer<T extends SealBinding & { credential: string }>(answer: T, sealKey: SealKey): Omit<T, 'credential'> & { sealed: string } {
  const { username, device, host } = answer
  const sealed = sealCredential(answer.credential, sealKey, { username, device, host })
  return Object.fromEntries(Object.entries(answer).map(([key, value]) => (key === 'credential' ? ['sealed', sealed] : [key, value]))) as Omit<T, 'credential'> & { sealed: string }
}

function associatedData(header: Buffer, binding: SealBinding): Buffer {
  return Buffer.concat([header, Buffer.from(`${binding.username}\n${binding.device}\n${binding.host}`, 'utf8')])
}

function hmac(key: Buffer, message: string): Buffer {
  return createHmac('sha256', key).update(message, 'utf8').digest()
}
