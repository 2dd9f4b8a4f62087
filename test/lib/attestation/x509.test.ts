import { type KeyObject, sign, X509Certificate } from 'node:crypto'
import fc from 'fast-check'
import { beforeAll, describe, expect, it } from 'vitest'
import { buildCertificate, CLIENT_AUTH } from '../../../cli/certificates.js'
import { DER_TAG, encodeElement, readChildren, readWhole } from '../../../lib/attestation/der.js'
import { signedMessage } from '../../../lib/attestation/keys.js'
import { parseCertificate, parseTrustAnchors, type TrustAnchor, verifyCertificateSignature, verifyDeviceCertificate } from '../../../lib/attestation/x509.js'
import { CertificateError, ConfigError, ProvisionerError } from '../../../lib/errors.js'
import { type Issued, issue, memorySigner, newCa, newKeyPair, signWithCertificateKey } from '../../support/pki.js'
import { captureError } from '../capture-error.js'

const DEVICE = 'x5_sensor_0001'
const HOUR_MS = 3600_000
const nowSeconds = () => Math.floor(Date.now() / 1000)

let ca: Issued
let anchors: TrustAnchor[]
let device: Issued

const verify = (leaf: Buffer, chain: Buffer[] = [], options: { device?: string; deviceIdFrom?: 'cn' | 'dns'; trusted?: TrustAnchor[] } = {}) =>
  verifyDeviceCertificate(leaf, chain, options.trusted ?? anchors, { device: options.device ?? DEVICE, deviceIdFrom: options.deviceIdFrom ?? 'cn', nowSeconds: nowSeconds() })

// AlgorithmIdentifier DER: ecdsa-with-SHA256, and ecdsa-with-SHA1 (which the service refuses).
const ECDSA_WITH_SHA256 = Buffer.from('300a06082a8648ce3d040302', 'hex')
const ECDSA_WITH_SHA1 = Buffer.from('300906072a8648ce3d0401', 'hex')
const derOf = (tag: number, ...parts: Buffer[]) => encodeElement({ tag, content: Buffer.concat(parts) })

/** `leaf` with the tbsCertificate's own signature algorithm replaced, signed again by `issuerKey` with ECDSA-SHA256. */
function withInnerAlgorithm(leaf: Buffer, issuerKey: KeyObject, innerAlgorithm: Buffer): Buffer {
  const [tbs, outerAlgorithm] = readChildren(readWhole(leaf, DER_TAG.sequence))
  // version [0], serial, signature, ...
  const fields = readChildren(tbs!.content).map((field, index) => (index === 2 ? innerAlgorithm : encodeElement(field)))
  const signedPart = derOf(DER_TAG.sequence, ...fields)
  return derOf(DER_TAG.sequence, signedPart, encodeElement(outerAlgorithm!), derOf(DER_TAG.bitString, Buffer.from([0]), sign('sha256', signedPart, issuerKey)))
}

const codeOf = (operation: () => unknown): string => {
  const error = captureError(operation)
  expect(error).toBeInstanceOf(ProvisionerError)
  return (error as ProvisionerError).code
}

beforeAll(async () => {
  ca = await newCa()
  anchors = parseTrustAnchors(ca.pem, 'fleets.test.x509.caFile')
  device = await issue(ca, DEVICE)
})

describe('Function: verifyDeviceCertificate', () => {
  it('accepts a P-256 device certificate issued by the trusted CA, naming the device in its CN', () => {
    // Act
    const key = verify(device.der)

    // Assess
    expect(key.keyType).toBe('ec-p256')
    expect(key.fingerprint).toMatch(/^[0-9a-f]{64}$/)
    expect(key.serial).toMatch(/^[0-9a-f]+$/)
  })

  it('accepts one intermediate, and the trusted CA sent along as if it were one', async () => {
    // Prepare
    const intermediate = await issue(ca, 'Factory line 1', { ca: true, keyUsage: ['keyCertSign'], extKeyUsage: undefined })
    const leaf = await issue(intermediate, DEVICE)

    // Act
    const viaIntermediate = verify(leaf.der, [intermediate.der])
    const withRoot = verify(device.der, [ca.der])

    // Assess
    expect(viaIntermediate.keyType).toBe('ec-p256')
    expect(withRoot.keyType).toBe('ec-p256')
  })

  it('binds the device ID to a DNS SAN when the fleet says so, and then ignores the CN', async () => {
    // Prepare
    const leaf = await issue(ca, 'Some sensor', { dnsNames: ['other', DEVICE] })

    // Act
    const key = verify(leaf.der, [], { deviceIdFrom: 'dns' })

    // Assess
    expect(key.keyType).toBe('ec-p256')
    expect(codeOf(() => verify(leaf.der, [], { deviceIdFrom: 'cn' }))).toBe('certificate_device_mismatch')
    expect(codeOf(() => verify(device.der, [], { deviceIdFrom: 'dns' }))).toBe('certificate_device_mismatch')
  })

  it('accepts an RSA 2048 device certificate (keys in the ESP32 Digital Signature peripheral)', async () => {
    // Prepare
    const leaf = await issue(ca, DEVICE, { keys: newKeyPair({ type: 'rsa', bits: 2048 }) })

    // Act
    const key = verify(leaf.der)

    // Assess
    expect(key.keyType).toBe('rsa')
  })

  it('refuses each failed check with its own code', async () => {
    // Prepare
    const otherCa = await newCa({ subject: ca.subject })
    const hourAgo = new Date(Date.now() - HOUR_MS)
    const cases: Array<[string, Buffer, Buffer[], string?]> = [
      ['untrusted CA (same name, other key)', (await issue(otherCa, DEVICE)).der, [], 'certificate_untrusted'],
      ['expired', (await issue(ca, DEVICE, { notBefore: new Date(Date.now() - 3 * HOUR_MS), notAfter: hourAgo })).der, [], 'certificate_expired'],
      ['not yet valid', (await issue(ca, DEVICE, { notBefore: new Date(Date.now() + HOUR_MS), notAfter: new Date(Date.now() + 2 * HOUR_MS) })).der, [], 'certificate_not_yet_valid'],
      ['a CA certificate as the leaf', (await issue(ca, DEVICE, { ca: true, keyUsage: ['keyCertSign', 'digitalSignature'] })).der, [], 'certificate_not_leaf'],
      ['key usage without digitalSignature', (await issue(ca, DEVICE, { keyUsage: ['keyEncipherment'] })).der, [], 'certificate_key_usage'],
      ['extended key usage serverAuth only', (await issue(ca, DEVICE, { extKeyUsage: ['1.3.6.1.5.5.7.3.1'] })).der, [], 'certificate_key_usage'],
      ['an RSA 1024 key', (await issue(ca, DEVICE, { keys: newKeyPair({ type: 'rsa', bits: 1024 }) })).der, [], 'certificate_key_not_allowed'],
      ['a P-384 device key', (await issue(ca, DEVICE, { keys: newKeyPair({ type: 'ec', curve: 'secp384r1' }) })).der, [], 'certificate_key_not_allowed'],
      ['a secp256k1 key', (await issue(ca, DEVICE, { keys: newKeyPair({ type: 'ec', curve: 'secp256k1' }) })).der, [], 'certificate_key_not_allowed'],
      ['an Ed25519 key', (await issue(ca, DEVICE, { keys: newKeyPair({ type: 'ed25519' }) })).der, [], 'certificate_key_not_allowed'],
      ['device A’s certificate for device B', (await issue(ca, 'x5_sensor_0002')).der, [], 'certificate_device_mismatch'],
      ['two intermediates', device.der, [ca.der, ca.der], 'certificate_chain_too_long'],
      ['not DER', Buffer.from('not a certificate'), [], 'certificate_malformed'],
      ['bytes after the certificate', Buffer.concat([device.der, Buffer.from([0])]), [], 'certificate_malformed'],
      ['a truncated certificate', device.der.subarray(0, device.der.length - 10), [], 'certificate_malformed'],
    ]

    // Act
    const codes = cases.map(([name, leaf, chain]) => [name, codeOf(() => verify(leaf, chain))])

    // Assess
    expect(codes).toEqual(cases.map(([name, , , code]) => [name, code]))
  })

  it('refuses a chain longer than the trusted CA’s path length, and an intermediate that is no CA', async () => {
    // Prepare
    const rootNoIntermediates = await newCa({ pathLength: 0 })
    const intermediate = await issue(rootNoIntermediates, 'Factory line 2', { ca: true, keyUsage: ['keyCertSign'], extKeyUsage: undefined })
    const leaf = await issue(intermediate, DEVICE)
    const notCa = await issue(ca, 'Not a CA', { keyUsage: ['digitalSignature', 'keyCertSign'] })
    const leafOfNotCa = await issue(notCa, DEVICE)
    const cannotSign = await issue(ca, 'Cannot sign', { ca: true, keyUsage: ['digitalSignature'], extKeyUsage: undefined })
    const leafOfCannotSign = await issue(cannotSign, DEVICE)

    // Act
    const tooLong = codeOf(() => verify(leaf.der, [intermediate.der], { trusted: parseTrustAnchors(rootNoIntermediates.pem, 'ca') }))
    const notCaCode = codeOf(() => verify(leafOfNotCa.der, [notCa.der]))
    const cannotSignCode = codeOf(() => verify(leafOfCannotSign.der, [cannotSign.der]))

    // Assess
    expect([tooLong, notCaCode, cannotSignCode]).toEqual(['certificate_chain_too_long', 'certificate_untrusted', 'certificate_key_usage'])
  })

  it('refuses an expired intermediate and a leaf the intermediate did not issue', async () => {
    // Prepare
    const expired = await issue(ca, 'Old line', { ca: true, keyUsage: ['keyCertSign'], extKeyUsage: undefined, notBefore: new Date(Date.now() - 3 * HOUR_MS), notAfter: new Date(Date.now() - HOUR_MS) })
    const leaf = await issue(expired, DEVICE)
    const intermediate = await issue(ca, 'Line 3', { ca: true, keyUsage: ['keyCertSign'], extKeyUsage: undefined })

    // Act
    const expiredCode = codeOf(() => verify(leaf.der, [expired.der]))
    const wrongIssuer = codeOf(() => verify(device.der, [intermediate.der]))

    // Assess
    expect([expiredCode, wrongIssuer]).toEqual(['certificate_expired', 'certificate_untrusted'])
  })

  it('parses a CA certificate once per container (by its SHA-256) and a device certificate every time', async () => {
    // Prepare
    const intermediate = await issue(ca, 'Factory line 4', { ca: true, keyUsage: ['keyCertSign'], extKeyUsage: undefined })

    // Act
    const first = parseCertificate(intermediate.der)
    const again = parseCertificate(Buffer.from(intermediate.der))
    const leafFirst = parseCertificate(device.der)
    const leafAgain = parseCertificate(device.der)

    // Assess
    expect(again).toBe(first)
    expect(leafAgain).not.toBe(leafFirst)
    expect(leafAgain).toEqual(leafFirst)
  })

  it('checks a cached intermediate’s validity on every request: verified once, refused once it has expired', async () => {
    // Prepare: an intermediate valid for two more hours, a device certificate valid for a day
    const intermediate = await issue(ca, 'Line 5', { ca: true, keyUsage: ['keyCertSign'], extKeyUsage: undefined, notAfter: new Date(Date.now() + 2 * HOUR_MS) })
    const leaf = await issue(intermediate, DEVICE)
    const at = (seconds: number) => verifyDeviceCertificate(leaf.der, [intermediate.der], anchors, { device: DEVICE, deviceIdFrom: 'cn', nowSeconds: seconds })

    // Act
    const now = at(nowSeconds())
    const later = codeOf(() => at(nowSeconds() + 3 * 3600))
    const nowAgain = at(nowSeconds())

    // Assess
    expect(now.fingerprint).toBe(nowAgain.fingerprint)
    expect(later).toBe('certificate_expired')
  })

  it('does not take a cached intermediate for a certificate it did not issue', async () => {
    // Prepare: an intermediate of another CA, seen (and cached) first under that CA
    const otherCa = await newCa()
    const foreign = await issue(otherCa, 'Foreign line', { ca: true, keyUsage: ['keyCertSign'], extKeyUsage: undefined })
    const leaf = await issue(foreign, DEVICE)
    verifyDeviceCertificate(leaf.der, [foreign.der], parseTrustAnchors(otherCa.pem, 'other'), { device: DEVICE, deviceIdFrom: 'cn', nowSeconds: nowSeconds() })

    // Act
    const code = codeOf(() => verify(leaf.der, [foreign.der]))

    // Assess
    expect(code).toBe('certificate_untrusted')
  })

  it('decides whether the CA issued a certificate as node:crypto does, reading it from its DER only', async () => {
    // Prepare: all signed by the trusted CA's key
    const spki = (key: KeyObject) => key.export({ type: 'spki', format: 'der' }) as Buffer
    const stranger = newKeyPair()
    const template = { subject: { commonName: DEVICE }, publicKey: spki(newKeyPair().publicKey), notBefore: new Date(Date.now() - HOUR_MS), notAfter: new Date(Date.now() + HOUR_MS), ca: false, keyUsage: ['digitalSignature' as const], extKeyUsage: [CLIENT_AUTH] }
    const cases: Array<[string, Buffer]> = [
      ['issued as usual', device.der],
      ['signed again with the same algorithm inside', withInnerAlgorithm(device.der, ca.privateKey, ECDSA_WITH_SHA256)],
      ['SHA-1 named inside the tbsCertificate, SHA-256 outside', withInnerAlgorithm(device.der, ca.privateKey, ECDSA_WITH_SHA1)],
      ['an authority key identifier of another key', await buildCertificate({ ...template, issuer: { subject: ca.subject, publicKey: spki(stranger.publicKey) } }, memorySigner(ca.privateKey))],
      ['another issuer name', await buildCertificate({ ...template, issuer: { subject: { commonName: 'Another CA' }, publicKey: spki(ca.publicKey) } }, memorySigner(ca.privateKey))],
      ['the signature of another key', (await issue({ ...ca, privateKey: stranger.privateKey }, DEVICE)).der],
    ]
    const caView = new X509Certificate(ca.der)

    // Act
    const verdicts = cases.map(([name, leaf]) => {
      try {
        verify(leaf)
        return [name, 'accepted']
      } catch (error) {
        return [name, (error as ProvisionerError).code]
      }
    })
    const nodeVerdicts = cases.map(([name, leaf]) => {
      const view = new X509Certificate(leaf)
      return [name, view.checkIssued(caView) && view.verify(caView.publicKey) ? 'accepted' : 'certificate_untrusted']
    })

    // Assess
    expect(verdicts).toEqual([
      ['issued as usual', 'accepted'],
      ['signed again with the same algorithm inside', 'accepted'],
      ['SHA-1 named inside the tbsCertificate, SHA-256 outside', 'certificate_untrusted'],
      ['an authority key identifier of another key', 'certificate_untrusted'],
      ['another issuer name', 'certificate_untrusted'],
      ['the signature of another key', 'certificate_untrusted'],
    ])
    expect(verdicts).toEqual(nodeVerdicts)
    expect(parseCertificate(device.der).publicKey?.equals(device.publicKey)).toBe(true)
  })

  it('answers only CertificateError for any byte of the certificate changed, removed or added', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.record({ kind: fc.constant('flip' as const), index: fc.nat(device.der.length - 1), mask: fc.integer({ min: 1, max: 255 }) }),
          fc.record({ kind: fc.constant('cut' as const), index: fc.nat(device.der.length - 1), length: fc.integer({ min: 1, max: 40 }) }),
          fc.record({ kind: fc.constant('insert' as const), index: fc.nat(device.der.length - 1), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
        ),
        (mutation) => {
          const bytes = Buffer.from(device.der)
          let mutated: Buffer
          if (mutation.kind === 'flip') {
            bytes[mutation.index] = (bytes[mutation.index] as number) ^ mutation.mask
            mutated = bytes
          } else if (mutation.kind === 'cut') {
            mutated = Buffer.concat([bytes.subarray(0, mutation.index), bytes.subarray(mutation.index + mutation.length)])
          } else {
            mutated = Buffer.concat([bytes.subarray(0, mutation.index), Buffer.from(mutation.bytes), bytes.subarray(mutation.index)])
          }
          try {
            verify(mutated)
          } catch (error) {
            if (!(error instanceof CertificateError)) throw error
          }
        },
      ),
      { numRuns: 300 },
    )
  })
})

describe('Function: parseCertificate', () => {
  it('reads serial, validity, CN, SANs and key usage from the DER', async () => {
    // Prepare
    const leaf = await issue(ca, DEVICE, { serial: '00ff01', dnsNames: ['a', 'b'], notBefore: new Date('2030-01-02T03:04:05Z'), notAfter: new Date('2051-01-01T00:00:00Z') })

    // Act
    const parsed = parseCertificate(leaf.der)

    // Assess
    expect(parsed).toMatchObject({ serial: 'ff01', commonNames: [DEVICE], dnsNames: ['a', 'b'], isCa: false, notBefore: Date.UTC(2030, 0, 2, 3, 4, 5) / 1000, notAfter: Date.UTC(2051, 0, 1) / 1000 })
  })
})

describe('Function: parseTrustAnchors', () => {
  it('throws ConfigError naming the setting for text without a CA certificate', async () => {
    // Prepare
    const cases = ['', 'no PEM here', device.pem, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----', undefined]

    // Act
    const errors = cases.map((value) => captureError(() => parseTrustAnchors(value, 'fleets.factory.x509.caParam')))

    // Assess
    for (const error of errors) {
      expect(error).toBeInstanceOf(ConfigError)
      expect((error as ConfigError).setting).toBe('fleets.factory.x509.caParam')
    }
  })

  it('reads every CA of a bundle', async () => {
    // Prepare
    const second = await newCa()

    // Act
    const parsed = parseTrustAnchors(`${ca.pem}\n${second.pem}`, 'ca')

    // Assess
    expect(parsed.map((anchor) => anchor.fingerprint)).toHaveLength(2)
  })
})

describe('Function: verifyCertificateSignature', () => {
  it('accepts r‖s of P-256 and PKCS#1 v1.5 of RSA over the signed message, and nothing else', async () => {
    // Prepare
    const rsa = await issue(ca, DEVICE, { keys: newKeyPair({ type: 'rsa', bits: 2048 }) })
    const timestamp = nowSeconds()
    const p256Key = verify(device.der)
    const rsaKey = verify(rsa.der)
    const good = signWithCertificateKey(device.privateKey, DEVICE, timestamp, 2)
    const { sign } = await import('node:crypto')
    const derEncoded = sign('sha256', Buffer.from(signedMessage(DEVICE, timestamp, 2)), device.privateKey).toString('base64')

    // Act
    verifyCertificateSignature(p256Key, signedMessage(DEVICE, timestamp, 2), good)
    verifyCertificateSignature(rsaKey, signedMessage(DEVICE, timestamp), signWithCertificateKey(rsa.privateKey, DEVICE, timestamp))
    const refused = [
      codeOf(() => verifyCertificateSignature(p256Key, signedMessage(DEVICE, timestamp, 1), good)),
      codeOf(() => verifyCertificateSignature(p256Key, signedMessage(DEVICE, timestamp + 1, 2), good)),
      codeOf(() => verifyCertificateSignature(p256Key, signedMessage(DEVICE, timestamp, 2), derEncoded)),
      codeOf(() => verifyCertificateSignature(rsaKey, signedMessage(DEVICE, timestamp, 2), good)),
    ]

    // Assess
    expect(refused).toEqual(['invalid_signature', 'invalid_signature', 'invalid_signature', 'invalid_signature'])
  })
})
