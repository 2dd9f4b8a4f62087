import { createECDH, createHash, createPrivateKey, generateKeyPairSync } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import {
  AnswerKeyError,
  answerMessage,
  answerPublicPoint,
  generateAnswerKey,
  parseAnswerKey,
  parseAnswerPublicKey,
  requestBodyDigest,
  type SignedAnswer,
  signAnswer,
  verifyAnswerSignature,
} from '../../../lib/attestation/answer-signature.js'
import { ConfigError } from '../../../lib/errors.js'
import { captureError } from '../capture-error.js'

// The answer-signature test vector, read from docs/protocol.md so that the document stays true;
// clients/c/test checks the same values.
const PROTOCOL = readFileSync('docs/protocol.md', 'utf8')
const VECTOR = PROTOCOL.slice(PROTOCOL.indexOf('### Test vector (answer signature)'))
const cell = (label: string) => {
  const row = VECTOR.split('\n').find((line) => line.startsWith(`| ${label}`))
  const value = row?.split('|')[2]?.trim()
  if (value === undefined) throw new Error(`docs/protocol.md has no answer-signature vector row "${label}"`)
  return value.replaceAll('`', '')
}
// The request body is the sealing vector's.
const SEALING_BODY = /\| request body \| `([^`]+)` \|/.exec(PROTOCOL)![1]!
const SCALAR_HEX = cell('answer key scalar')
const PUBLIC_KEY = cell('answer public key')
const BODY_SHA256 = cell('request body SHA-256')
const [USERNAME, DEVICE, HOST, CREATED] = cell('username, device, host, created').split(', ')
const SEALED = cell('sealed')
const SIGNATURE = cell('one valid signature')
const VECTOR_ANSWER: SignedAnswer = { username: USERNAME!, device: DEVICE!, host: HOST!, sealed: SEALED, created: CREATED === 'true' }

/** The vector's private key, from its scalar. */
function vectorKey() {
  const ecdh = createECDH('prime256v1')
  ecdh.setPrivateKey(Buffer.from(SCALAR_HEX, 'hex'))
  const point = ecdh.getPublicKey()
  const jwk = { kty: 'EC', crv: 'P-256', d: Buffer.from(SCALAR_HEX, 'hex').toString('base64url'), x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33).toString('base64url') }
  return createPrivateKey({ key: jwk, format: 'jwk' })
}

describe('The answer-signature test vector of docs/protocol.md', () => {
  it('names a test key derived from its label, the sealing vector’s request body and its hash', () => {
    // Assess
    expect(SCALAR_HEX).toBe(createHash('sha256').update('thinger-provisioner test answer key').digest('hex'))
    expect(requestBodyDigest(SEALING_BODY)).toBe(BODY_SHA256)
    expect(Buffer.byteLength(SEALING_BODY)).toBe(125)
    expect(answerPublicPoint(vectorKey()).toString('base64')).toBe(PUBLIC_KEY)
    expect(answerMessage(VECTOR_ANSWER, BODY_SHA256).length).toBe(Number(/^(\d+) bytes$/.exec(cell('signed message'))![1]))
  })

  it('verifies the given signature under the given public key', () => {
    // Act
    const valid = verifyAnswerSignature(VECTOR_ANSWER, BODY_SHA256, SIGNATURE, [parseAnswerPublicKey(PUBLIC_KEY)])

    // Assess
    expect(valid).toBe(true)
  })

  it('signs with the vector key so that the vector public key verifies, with a fresh signature each time', () => {
    // Act
    const first = signAnswer(VECTOR_ANSWER, BODY_SHA256, vectorKey())
    const second = signAnswer(VECTOR_ANSWER, BODY_SHA256, vectorKey())

    // Assess
    expect(first).toMatch(/^[A-Za-z0-9+/]{86}==$/)
    expect(first).not.toBe(second)
    expect(verifyAnswerSignature(VECTOR_ANSWER, BODY_SHA256, first, [parseAnswerPublicKey(PUBLIC_KEY)])).toBe(true)
    expect(verifyAnswerSignature(VECTOR_ANSWER, BODY_SHA256, second, [parseAnswerPublicKey(Buffer.from(PUBLIC_KEY, 'base64').toString('hex'))])).toBe(true)
  })
})

describe('Function: verifyAnswerSignature', () => {
  const publicKeys = () => [parseAnswerPublicKey(PUBLIC_KEY)]

  it.each([
    ['username', { username: 'mallory' }],
    ['device', { device: 'esp32_000000000000' }],
    ['host', { host: 'evil.example.com' }],
    ['sealed value', { sealed: SEALED.replace('AQEAAQ', 'AQEAAg') }],
    ['created', { created: false }],
    ['field kind (the same value as credential)', { sealed: undefined, credential: SEALED }],
  ])('refuses the vector answer with a changed %s', (_name, change) => {
    // Act
    const valid = verifyAnswerSignature({ ...VECTOR_ANSWER, ...change } as SignedAnswer, BODY_SHA256, SIGNATURE, publicKeys())

    // Assess
    expect(valid).toBe(false)
  })

  it('refuses the vector answer to a second request body (a replay of a signed answer)', () => {
    // Prepare
    const secondBody = SEALING_BODY.replace('1764150000', '1764150001')

    // Act
    const valid = verifyAnswerSignature(VECTOR_ANSWER, requestBodyDigest(secondBody), SIGNATURE, publicKeys())

    // Assess
    expect(valid).toBe(false)
  })

  it('accepts a text answer’s created line as the JSON boolean', () => {
    // Act
    const valid = verifyAnswerSignature({ ...VECTOR_ANSWER, created: 'true' }, BODY_SHA256, SIGNATURE, publicKeys())

    // Assess
    expect(valid).toBe(true)
  })

  it.each([
    ['missing', undefined],
    ['empty', ''],
    ['not base64', '!'.repeat(88)],
    ['DER-encoded', Buffer.alloc(70, 1).toString('base64')],
    ['zeros', Buffer.alloc(64).toString('base64')],
    ['a number', 42],
  ])('refuses a signature that is %s', (_name, signature) => {
    // Act
    const valid = verifyAnswerSignature(VECTOR_ANSWER, BODY_SHA256, signature, publicKeys())

    // Assess
    expect(valid).toBe(false)
  })

  it('accepts under either of two pinned keys (a rotation) and refuses under a stranger’s', () => {
    // Prepare
    const current = parseAnswerKey(generateAnswerKey(), 'ANSWER_KEY_PARAM')
    const next = parseAnswerKey(generateAnswerKey(), 'ANSWER_KEY_PARAM')
    const stranger = parseAnswerKey(generateAnswerKey(), 'ANSWER_KEY_PARAM')
    const pinned = [current, next].map((key) => parseAnswerPublicKey(answerPublicPoint(key).toString('base64')))
    const answer: SignedAnswer = { username: 'acme', device: 'x5_a', host: 'h', credential: 'c'.repeat(24), created: false }

    // Act
    const verdicts = [current, next, stranger].map((key) => verifyAnswerSignature(answer, BODY_SHA256, signAnswer(answer, BODY_SHA256, key), pinned))

    // Assess
    expect(verdicts).toEqual([true, true, false])
  })

  it('refuses an answer that carries both or neither of credential and sealed', () => {
    // Prepare
    const key = vectorKey()
    const both = { ...VECTOR_ANSWER, credential: 'c'.repeat(24) }

    // Act
    const error = captureError(() => signAnswer(both, BODY_SHA256, key))

    // Assess
    expect(error).toBeInstanceOf(AnswerKeyError)
    expect(verifyAnswerSignature(both, BODY_SHA256, SIGNATURE, publicKeys())).toBe(false)
    expect(verifyAnswerSignature({ ...VECTOR_ANSWER, sealed: undefined }, BODY_SHA256, SIGNATURE, publicKeys())).toBe(false)
  })
})

describe('Function: parseAnswerKey', () => {
  it('reads what generateAnswerKey makes, a P-256 key whose public point is 65 bytes', () => {
    // Act
    const key = parseAnswerKey(`${generateAnswerKey()}\n`, 'ANSWER_KEY_PARAM')

    // Assess
    expect(key.asymmetricKeyDetails?.namedCurve).toBe('prime256v1')
    expect(answerPublicPoint(key)).toHaveLength(65)
  })

  it.each([
    ['empty', ''],
    ['not a string', 42],
    ['not base64 DER', 'not a key at all'],
    ['a PEM key', generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ format: 'pem', type: 'pkcs8' }) as string],
    ['a P-384 key', generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64')],
    ['an Ed25519 key', generateKeyPairSync('ed25519').privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64')],
  ])('throws a ConfigError naming the setting, not the value, for %s', (_name, value) => {
    // Act
    const error = captureError(() => parseAnswerKey(value, 'ANSWER_KEY_PARAM'))

    // Assess
    expect(error).toBeInstanceOf(ConfigError)
    expect((error as ConfigError).setting).toBe('ANSWER_KEY_PARAM')
    expect((error as ConfigError).detail).toMatch(/^setting ANSWER_KEY_PARAM: /)
    if (typeof value === 'string' && value.length > 8) expect((error as ConfigError).detail).not.toContain(value.slice(0, 40))
  })
})

describe('Function: parseAnswerPublicKey', () => {
  it.each([
    ['empty', ''],
    ['33 bytes (compressed)', Buffer.concat([Buffer.from([2]), Buffer.alloc(32, 7)]).toString('base64')],
    ['a point off the curve', Buffer.concat([Buffer.from([4]), Buffer.alloc(64, 7)]).toString('base64')],
    ['base64 with junk', `${PUBLIC_KEY}!`],
  ])('throws AnswerKeyError for %s', (_name, text) => {
    // Act
    const error = captureError(() => parseAnswerPublicKey(text))

    // Assess
    expect(error).toBeInstanceOf(AnswerKeyError)
  })
})
