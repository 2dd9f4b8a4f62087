import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { signedMessage } from '../../../lib/attestation/keys.js'
import { openSealed, sealAnswer, sealCredential, SealOpenError } from '../../../lib/attestation/seal.js'
import { deriveEcdhSealKey, openEcdhSealed, toPoint } from '../../../lib/attestation/seal-ecdh.js'
import { parseTrustAnchors, verifyCertificateSignature, verifyDeviceCertificate } from '../../../lib/attestation/x509.js'
import { newKeyPair } from '../../support/pki.js'
import * as V from '../../support/x509-vector.js'

const vectorDeviceKey = () => createPrivateKey(V.VECTOR_DEVICE_KEY_PEM)
const vectorSealKey = () => deriveEcdhSealKey(toPoint(createPublicKey(vectorDeviceKey())), V.VECTOR_DEVICE, V.VECTOR_TIMESTAMP, Buffer.from(V.VECTOR_EPHEMERAL_KEY_HEX, 'hex'))

describe('The X.509 test vector of docs/protocol.md', () => {
  it('is the local stack’s CA, and its certificate and signature verify at the vector’s time', () => {
    // Prepare
    const anchors = parseTrustAnchors(V.VECTOR_CA_PEM, 'vector')

    // Act
    const key = verifyDeviceCertificate(Buffer.from(V.VECTOR_CERTIFICATE, 'base64'), [], anchors, { device: V.VECTOR_DEVICE, deviceIdFrom: 'cn', nowSeconds: V.VECTOR_TIMESTAMP })
    verifyCertificateSignature(key, signedMessage(V.VECTOR_DEVICE, V.VECTOR_TIMESTAMP, 2), V.VECTOR_SIGNATURE_V2)

    // Assess
    expect(new X509Certificate(readFileSync('local/x509/ca.pem')).fingerprint256).toBe(new X509Certificate(V.VECTOR_CA_PEM).fingerprint256)
    expect(key.serial).toBe('1001')
    expect(key.point).toEqual(toPoint(createPublicKey(vectorDeviceKey())))
    expect(Buffer.from((vectorDeviceKey().export({ format: 'jwk' }) as { d: string }).d, 'base64url').toString('hex')).toBe(V.VECTOR_DEVICE_KEY_HEX)
    expect(Buffer.from((createPrivateKey(V.VECTOR_EPHEMERAL_KEY_PEM).export({ format: 'jwk' }) as { d: string }).d, 'base64url').toString('hex')).toBe(V.VECTOR_EPHEMERAL_KEY_HEX)
  })

  it('derives the vector seal key and seals the vector credential to the vector envelope', () => {
    // Act
    const sealKey = vectorSealKey()
    const sealed = sealCredential(V.VECTOR_CREDENTIAL, sealKey, V.VECTOR_BINDING, Buffer.from(V.VECTOR_NONCE_HEX, 'hex'))

    // Assess
    expect(sealKey.key.toString('hex')).toBe(V.VECTOR_ECDH_SEAL_KEY_HEX)
    expect(sealed).toBe(V.VECTOR_ECDH_SEALED)
    expect(openEcdhSealed(sealed, vectorDeviceKey(), V.VECTOR_DEVICE, V.VECTOR_TIMESTAMP, V.VECTOR_BINDING)).toBe(V.VECTOR_CREDENTIAL)
  })
})

describe('Function: deriveEcdhSealKey', () => {
  it('seals each answer with a fresh ephemeral key that only the certificate’s private key opens', () => {
    // Prepare
    const device = newKeyPair()
    const stranger = newKeyPair()
    const answer = { username: 'acme', device: 'x5_a', credential: 'c'.repeat(24), host: 'h', created: true }

    // Act
    const first = sealAnswer(answer, deriveEcdhSealKey(toPoint(device.publicKey), 'x5_a', 100))
    const second = sealAnswer(answer, deriveEcdhSealKey(toPoint(device.publicKey), 'x5_a', 100))

    // Assess
    expect(first.sealed.slice(0, 90)).not.toBe(second.sealed.slice(0, 90))
    expect(openEcdhSealed(first.sealed, device.privateKey, 'x5_a', 100, answer)).toBe(answer.credential)
    expect(() => openEcdhSealed(first.sealed, stranger.privateKey, 'x5_a', 100, answer)).toThrow(SealOpenError)
    expect(() => openEcdhSealed(first.sealed, device.privateKey, 'x5_a', 101, answer)).toThrow(SealOpenError)
    expect(() => openEcdhSealed(first.sealed, device.privateKey, 'x5_a', 100, { ...answer, host: 'evil' })).toThrow(SealOpenError)
  })

  it('opens nothing but the vector when any byte of the envelope changes, and only with SealOpenError', () => {
    fc.assert(
      fc.property(fc.nat(Buffer.from(V.VECTOR_ECDH_SEALED, 'base64').length - 1), fc.integer({ min: 1, max: 255 }), (index, mask) => {
        const bytes = Buffer.from(V.VECTOR_ECDH_SEALED, 'base64')
        bytes[index] = (bytes[index] as number) ^ mask
        expect(() => openEcdhSealed(bytes.toString('base64'), vectorDeviceKey(), V.VECTOR_DEVICE, V.VECTOR_TIMESTAMP, V.VECTOR_BINDING)).toThrow(SealOpenError)
      }),
      { numRuns: 200 },
    )
  })

  it('is not opened as an HMAC-mode envelope, nor an HMAC envelope as an ECDH one', () => {
    // Prepare
    const key = vectorSealKey()

    // Act / Assess
    expect(() => openSealed(V.VECTOR_ECDH_SEALED, { mode: 'hmac', key: key.key }, V.VECTOR_BINDING)).toThrow(SealOpenError)
    const hmacSealed = sealCredential(V.VECTOR_CREDENTIAL, { mode: 'hmac', key: key.key }, V.VECTOR_BINDING)
    expect(() => openEcdhSealed(hmacSealed, vectorDeviceKey(), V.VECTOR_DEVICE, V.VECTOR_TIMESTAMP, V.VECTOR_BINDING)).toThrow(SealOpenError)
  })
})
