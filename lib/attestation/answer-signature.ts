import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign, verify } from 'node:crypto'
import { ConfigError } from '../errors.js'

const MESSAGE_LABEL = 'thinger-provisioner answer v1'
const CURVE = 'P-256'
const POINT_BYTES = 65
const COORDINATE_BYTES = 32
const SIGNATURE_BYTES = 64
/** Keys a firmware may pin at once: the current one and, during a rotation, the next (docs/operations.md). */
export const MAX_PINNED_ANSWER_KEYS = 2

/** The fields of a success answer an answer signature covers: the credential in clear (v1) or sealed (v2). */
export interface SignedAnswer {
  username: string
  device: string
  host: string
  credential?: string
  sealed?: string
  /** A boolean in JSON, `true` or `false` in text answers. */
  created: boolean | string
}

/** Raised when a value given for an answer's public key is not one, or an answer cannot be checked. */
export class AnswerKeyError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'AnswerKeyError'
  }
}

/** Lowercase hex SHA-256 of the exact request body bytes the device sent (what an answer is bound to). */
export function requestBodyDigest(body: Buffer | string): string {
  return createHash('sha256').update(body).digest('hex')
}

/**
 * The message an answer signature covers (docs/protocol.md, "Answer signatures"): the label, the
 * request body's digest, username, device, host, which of `credential` or `sealed` the answer
 * carries and its value, and `created`, joined by newlines with none at the end.
 * @throws AnswerKeyError when the answer carries both or neither of `credential` and `sealed`.
 */
export function answerMessage(answer: SignedAnswer, requestDigest: string): Buffer {
  const hasCredential = typeof answer.credential === 'string'
  const hasSealed = typeof answer.sealed === 'string'
  if (hasCredential === hasSealed) throw new AnswerKeyError('an answer carries exactly one of credential and sealed')
  const field = hasSealed ? 'sealed' : 'credential'
  const lines = [MESSAGE_LABEL, requestDigest, answer.username, answer.device, answer.host, field, hasSealed ? answer.sealed : answer.credential, String(answer.created)]
  return Buffer.from(lines.join('\n'), 'utf8')
}

/**
 * Signs a success answer with the deployment's answer key: ECDSA P-256 / SHA-256 over
 * {@link answerMessage}, raw `r ‖ s` (64 bytes) in standard base64.
 */
export function signAnswer(answer: SignedAnswer, requestDigest: string, answerKey: KeyObject): string {
  return sign('sha256', answerMessage(answer, requestDigest), { key: answerKey, dsaEncoding: 'ieee-p1363' }).toString('base64')
}

/**
 * True when `signature` is a valid answer signature of this answer to this request under one of
 * the pinned public keys (what a device does before it keeps anything). A missing or malformed
 * signature, or an answer without exactly one of `credential` and `sealed`, is false.
 */
export function verifyAnswerSignature(answer: SignedAnswer, requestDigest: string, signature: unknown, publicKeys: readonly KeyObject[]): boolean {
  if (typeof signature !== 'string') return false
  const raw = Buffer.from(signature, 'base64')
  if (raw.length !== SIGNATURE_BYTES || raw.toString('base64') !== signature) return false
  let message: Buffer
  try {
    message = answerMessage(answer, requestDigest)
  } catch {
    return false
  }
  return publicKeys.some((key) => verify('sha256', message, { key, dsaEncoding: 'ieee-p1363' }, raw))
}

/**
 * Reads the answer key from its SSM value: base64 of a PKCS#8 DER P-256 private key.
 * @throws ConfigError naming `setting` when it is anything else (the value itself is never quoted).
 */
export function parseAnswerKey(value: unknown, setting: string): KeyObject {
  if (typeof value !== 'string' || value.trim() === '') throw new ConfigError(setting, 'the answer key is empty')
  const der = Buffer.from(value.trim(), 'base64')
  let key: KeyObject
  try {
    key = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })
  } catch {
    throw new ConfigError(setting, 'is not the base64 of a PKCS#8 DER private key (create one with `thinger-provisioner answer-key create`)')
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new ConfigError(setting, 'the answer key must be an EC P-256 key (create one with `thinger-provisioner answer-key create`)')
  }
  return key
}

/** A new answer key, as its SSM value (base64 of the PKCS#8 DER P-256 private key). */
export function generateAnswerKey(): string {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
  return privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64')
}

/** The public half of an answer key (given the private or the public key) as firmware pins it: the 65-byte uncompressed point `04 ‖ x ‖ y`. */
export function answerPublicPoint(key: KeyObject): Buffer {
  const { x, y } = (key.type === 'public' ? key : createPublicKey(key)).export({ format: 'jwk' })
  return Buffer.concat([Buffer.from([0x04]), Buffer.from(x as string, 'base64url'), Buffer.from(y as string, 'base64url')])
}

/**
 * Reads a pinned answer public key: base64 (or hex) of the 65-byte uncompressed P-256 point that
 * `answer-key show` prints.
 * @throws AnswerKeyError when it is not a point on P-256.
 */
export function parseAnswerPublicKey(text: string): KeyObject {
  const trimmed = text.trim()
  const hex = /^04[0-9a-fA-F]{128}$/.test(trimmed)
  const point = Buffer.from(trimmed, hex ? 'hex' : 'base64')
  if (point.length !== POINT_BYTES || point[0] !== 0x04 || (!hex && point.toString('base64') !== trimmed)) {
    throw new AnswerKeyError('an answer public key is the base64 of a 65-byte uncompressed P-256 point, as `answer-key show` prints it')
  }
  try {
    return createPublicKey({
      key: { kty: 'EC', crv: CURVE, x: point.subarray(1, 1 + COORDINATE_BYTES).toString('base64url'), y: point.subarray(1 + COORDINATE_BYTES).toString('base64url') },
      format: 'jwk',
    })
  } catch {
    throw new AnswerKeyError('the answer public key is not a point on P-256')
  }
}
