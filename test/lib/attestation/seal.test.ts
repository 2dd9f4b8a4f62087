import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { decodeFleetKey, deriveDeviceKey, signRequest } from '../../../lib/attestation/keys.js'
import { deriveClaimSealKey, deriveHmacSealKey, openSealed, sealAnswer, sealCredential, SealOpenError } from '../../../lib/attestation/seal.js'

// The sealing test vector of docs/protocol.md; clients/c/test checks the same values.
const VECTOR_FLEET_KEY = 'dGhpbmdlci1wcm92aXNpb25lci10ZXN0LWZsZWV0LWtleS0wMDE='
const VECTOR_DEVICE = 'esp32_a1b2c3d4e5f6'
const VECTOR_TIMESTAMP = 1764150000
const VECTOR_SIGNATURE_V2 = 'zXIu2qxo13N67KGnC7D8mv6F38HGNbJlsBOSSrKLmdA='
const VECTOR_SEAL_KEY_HEX = '9d16cd777ea267c75af22b6496456f8470a4660daad59cb7f66c24a4a73f998d'
const VECTOR_NONCE = Buffer.from('000102030405060708090a0b', 'hex')
const VECTOR_BINDING = { username: 'acme', device: VECTOR_DEVICE, host: 'backend.thinger.io' }
const VECTOR_CREDENTIAL = 'Vb3kq0TnW8xYz1LmP4rS7uHc'
const VECTOR_SEALED = 'AQEAAQIDBAUGBwgJCgvAbgqIbyh2XhGXWg3ZDzbAaRCewti+w3wMslflAGzlPfBBqmJ3DL2K'
const VECTOR_CLAIM = 'workshop-claim-secret-0001'
const VECTOR_CLAIM_SEALED = 'AQIAAQIDBAUGBwgJCguh/f7sv85TRWnDUn3B+dYycgg5e2UNcdOFJCfLo/y0Ocwqbe+c/K4W'

const vectorDeviceKey = (): Buffer => deriveDeviceKey(decodeFleetKey(VECTOR_FLEET_KEY, 'fleet key'), VECTOR_DEVICE)
const vectorSealKey = () => deriveHmacSealKey(vectorDeviceKey(), VECTOR_DEVICE, VECTOR_TIMESTAMP)

const flipByte = (base64: string, index: number): string => {
  const bytes = Buffer.from(base64, 'base64')
  bytes[index] = (bytes[index] as number) ^ 0x01
  return bytes.toString('base64')
}

describe('Function: sealCredential (the protocol test vector)', () => {
  it('signs the v2 message and derives the seal key of the vector', () => {
    // Act
    const signature = signRequest(vectorDeviceKey(), VECTOR_DEVICE, VECTOR_TIMESTAMP, 2)
    const sealKey = vectorSealKey()

    // Assess
    expect(signature).toBe(VECTOR_SIGNATURE_V2)
    expect(sealKey.key.toString('hex')).toBe(VECTOR_SEAL_KEY_HEX)
  })

  it('seals the vector credential with the vector nonce to the vector envelope, and opens it', () => {
    // Act
    const sealed = sealCredential(VECTOR_CREDENTIAL, vectorSealKey(), VECTOR_BINDING, VECTOR_NONCE)

    // Assess
    expect(sealed).toBe(VECTOR_SEALED)
    expect(openSealed(VECTOR_SEALED, vectorSealKey(), VECTOR_BINDING)).toBe(VECTOR_CREDENTIAL)
  })

  it('seals in claim mode with a key every holder of the claim secret derives', () => {
    // Act
    const sealed = sealCredential(VECTOR_CREDENTIAL, deriveClaimSealKey(VECTOR_CLAIM, 'ws_kit0001'), { ...VECTOR_BINDING, device: 'ws_kit0001' }, VECTOR_NONCE)

    // Assess
    expect(sealed).toBe(VECTOR_CLAIM_SEALED)
  })

  it('draws a fresh nonce for every answer, so two seals of one credential differ', () => {
    // Act
    const first = sealCredential(VECTOR_CREDENTIAL, vectorSealKey(), VECTOR_BINDING)
    const second = sealCredential(VECTOR_CREDENTIAL, vectorSealKey(), VECTOR_BINDING)

    // Assess
    expect(first).not.toBe(second)
    expect(openSealed(second, vectorSealKey(), VECTOR_BINDING)).toBe(VECTOR_CREDENTIAL)
  })
})

describe('Function: openSealed', () => {
  it.each([
    ['the username', { ...VECTOR_BINDING, username: 'mallory' }],
    ['the device', { ...VECTOR_BINDING, device: 'esp32_000000000000' }],
    ['the host', { ...VECTOR_BINDING, host: 'evil.example.com' }],
  ])('throws SealOpenError when a machine in the middle swapped %s', (_label, binding) => {
    expect(() => openSealed(VECTOR_SEALED, vectorSealKey(), binding)).toThrow(SealOpenError)
  })

  it('throws SealOpenError for any changed byte of the envelope', () => {
    const length = Buffer.from(VECTOR_SEALED, 'base64').length
    for (let index = 0; index < length; index++) {
      expect(() => openSealed(flipByte(VECTOR_SEALED, index), vectorSealKey(), VECTOR_BINDING)).toThrow(SealOpenError)
    }
  })

  it('throws SealOpenError for the key of another request, another device, or the claim mode', () => {
    const deviceKey = vectorDeviceKey()
    for (const key of [
      deriveHmacSealKey(deviceKey, VECTOR_DEVICE, VECTOR_TIMESTAMP + 1),
      deriveHmacSealKey(deviceKey, 'esp32_000000000000', VECTOR_TIMESTAMP),
      deriveHmacSealKey(Buffer.alloc(32, 9), VECTOR_DEVICE, VECTOR_TIMESTAMP),
      { mode: 'claim' as const, key: vectorSealKey().key },
    ]) {
      expect(() => openSealed(VECTOR_SEALED, key, VECTOR_BINDING)).toThrow(SealOpenError)
    }
  })

  it.each([
    ['empty', ''],
    ['too short for a tag', Buffer.alloc(20, 1).toString('base64')],
    ['not canonical base64', `${VECTOR_SEALED.slice(0, -1)}L`],
    ['of another format', flipByte(VECTOR_SEALED, 0)],
  ])('throws SealOpenError for an envelope that is %s', (_label, sealed) => {
    expect(() => openSealed(sealed, vectorSealKey(), VECTOR_BINDING)).toThrow(SealOpenError)
  })

  it('opens what it sealed, for any credential, device and timestamp', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[!-~]{1,255}$/),
        fc.stringMatching(/^[A-Za-z0-9_-]{1,32}$/),
        fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        (credential, device, timestamp, key) => {
          const sealKey = deriveHmacSealKey(Buffer.from(key), device, timestamp)
          const binding = { username: 'acme', device, host: 'h.example:25206' }
          expect(openSealed(sealCredential(credential, sealKey, binding), sealKey, binding)).toBe(credential)
        },
      ),
    )
  })
})

describe('Function: sealAnswer', () => {
  it('keeps the answer’s order with sealed in place of credential, and no credential in clear', () => {
    // Act
    const answer = sealAnswer({ username: 'acme', device: VECTOR_DEVICE, credential: VECTOR_CREDENTIAL, host: 'backend.thinger.io', created: true }, vectorSealKey())

    // Assess
    expect(Object.keys(answer)).toEqual(['username', 'device', 'sealed', 'host', 'created'])
    expect(JSON.stringify(answer)).not.toContain(VECTOR_CREDENTIAL)
    expect(openSealed(answer.sealed, vectorSealKey(), VECTOR_BINDING)).toBe(VECTOR_CREDENTIAL)
  })
})
