import { createHash, createPublicKey, type KeyObject, verify as verifySignatureBytes, X509Certificate, constants as cryptoConstants } from 'node:crypto'
import { AttestationError, CertificateError, ConfigError } from '../errors.js'
import { DER_TAG, DerError, type DerElement, encodeElement, expectTag, oidToString, readChildren, readElement, readTime, readUnsignedHex, readWhole } from './der.js'

// At most one intermediate between the device certificate and a trusted CA (docs/protocol.md).
const MAX_INTERMEDIATES = 1
const MIN_RSA_BITS = 2048
const MAX_RSA_BITS = 4096
// RFC 5280 4.1.2.2: a serial is at most 20 octets; a longer one could not be named in a deny list.
const MAX_SERIAL_OCTETS = 20
const P256_SIGNATURE_BYTES = 64
const PEM_BLOCK = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----/g
const OID = {
  commonName: '2.5.4.3',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  certificatePolicies: '2.5.29.32',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  anyExtendedKeyUsage: '2.5.29.37.0',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const
// Critical extensions this service understands (RFC 5280 6.1.4: refuse a certificate with any other).
const UNDERSTOOD_CRITICAL = new Set<string>([OID.subjectKeyIdentifier, OID.keyUsage, OID.subjectAltName, OID.basicConstraints, OID.certificatePolicies, OID.authorityKeyIdentifier, OID.extKeyUsage])
// ecdsa-with-SHA256/384/512 and sha256/384/512WithRSAEncryption: nothing with SHA-1 or MD5.
const SIGNATURE_ALGORITHMS = new Map<string, { hash: string; keyType: 'ec' | 'rsa' }>([
  ['1.2.840.10045.4.3.2', { hash: 'sha256', keyType: 'ec' }],
  ['1.2.840.10045.4.3.3', { hash: 'sha384', keyType: 'ec' }],
  ['1.2.840.10045.4.3.4', { hash: 'sha512', keyType: 'ec' }],
  ['1.2.840.113549.1.1.11', { hash: 'sha256', keyType: 'rsa' }],
  ['1.2.840.113549.1.1.12', { hash: 'sha384', keyType: 'rsa' }],
  ['1.2.840.113549.1.1.13', { hash: 'sha512', keyType: 'rsa' }],
])
// id-ecPublicKey with the named curve P-256, and the uncompressed point's prefix and coordinate size.
const EC_PUBLIC_KEY = '1.2.840.10045.2.1'
const P256_CURVE = '1.2.840.10045.3.1.7'
const UNCOMPRESSED_POINT = 0x04
const P256_COORDINATE_BYTES = 32
// The context-specific tags of AuthorityKeyIdentifier (RFC 5280 4.2.1.1).
const AKI_KEY_IDENTIFIER = 0x80
const KEY_USAGE_BIT = { digitalSignature: 0, keyCertSign: 5 } as const
// CA certificates (trust anchors, intermediates) a container has parsed, by the SHA-256 of their
// DER, and issuer signatures over them it has verified: a fleet's few CAs are parsed and checked
// once per container, not on every request that sends them. Device certificates are not kept.
// Bounded: past the limit the cache starts again rather than growing.
const MAX_CACHED_CAS = 64
const parsedCas = new Map<string, ParsedCertificate>()
const verifiedIssuances = new Set<string>()
// node:crypto's view of a certificate, made only where the DER reader's own checks do not decide
// (every CA once, for its strict parse; a chain whose names or key identifiers it does not compare).
const nodeViews = new WeakMap<ParsedCertificate, X509Certificate>()
// Keys imported as P-256 coordinates: their kind is known without asking OpenSSL for their details.
const p256Keys = new WeakSet<KeyObject>()

/** How a fleet binds a device ID to its certificate: the subject's common name, or a DNS name among the SANs. */
export type DeviceIdSource = 'cn' | 'dns'

/** The fields of a certificate the checks read, from its DER. */
export interface ParsedCertificate {
  der: Buffer
  /** Its subjectPublicKeyInfo as node:crypto reads it; undefined when node:crypto cannot. */
  publicKey: KeyObject | undefined
  /** The DER of the tbsCertificate: what the issuer signed. */
  tbs: Buffer
  /** The issuer's signature over `tbs`, as in the certificate's BIT STRING. */
  signatureValue: Buffer
  /** The signature algorithm outside the tbsCertificate is the one inside (RFC 5280 4.1.1.2). */
  signatureAlgorithmsAgree: boolean
  /** The DER of the issuer and subject names. */
  issuerName: Buffer
  subjectName: Buffer
  subjectKeyIdentifier: Buffer | undefined
  /** The authority key identifier's keyIdentifier, and whether it also names the issuer by name and serial. */
  authorityKeyIdentifier: Buffer | undefined
  authorityNamedByIssuerAndSerial: boolean
  /** Lowercase hex, without leading zero bytes. */
  serial: string
  /** SHA-256 of the DER, lowercase hex: one encoding of the certificate (an ECDSA signature has two). */
  fingerprint: string
  /** SHA-256 of the subjectPublicKeyInfo DER, lowercase hex: the key, whatever encodes the certificate. */
  keyId: string
  /** How many octets the serial's INTEGER takes in the DER. */
  serialOctets: number
  notBefore: number
  notAfter: number
  isCa: boolean
  pathLength: number | undefined
  /** The key usage bit string, absent when the certificate has no such extension. */
  keyUsage: Buffer | undefined
  extKeyUsage: string[] | undefined
  commonNames: string[]
  dnsNames: string[]
  signatureAlgorithm: string
  /** The subjectPublicKey bits (for an EC key, its X9.62 point). */
  publicKeyBits: Buffer
}

/** A fleet's trusted CA certificate, checked when the fleet's settings were read. */
export type TrustAnchor = ParsedCertificate

/** The public key a device signs with, once its certificate is verified. */
export interface VerifiedDeviceKey {
  publicKey: KeyObject
  /** For P-256 keys: the X9.62 point, what ECDH sealing takes. */
  point: Buffer
  keyType: 'ec-p256' | 'rsa'
  serial: string
  fingerprint: string
  /** SHA-256 of the device certificate's subjectPublicKeyInfo DER: what identifies the device. */
  keyId: string
  /** Every certificate of the verified path: the device certificate, its intermediate if any, the trusted CA. */
  path: CertificateIdentity[]
}

/** What names one certificate in a deny list (docs/x509.md, "Revoking a certificate"). */
export interface CertificateIdentity {
  serial: string
  fingerprint: string
  keyId: string
  /** Where it sits in the path. */
  role: 'device' | 'intermediate' | 'ca'
}

/**
 * Parses one DER certificate strictly with the DER reader, all of it and nothing after it. A CA
 * certificate must also be read by node:crypto (once per container: it is kept); a device
 * certificate is read once, from its DER only, and its issuer's signature is checked over the
 * exact bytes of its tbsCertificate.
 * @throws CertificateError `certificate_malformed`.
 */
export function parseCertificate(der: Buffer, what = 'the certificate'): ParsedCertificate {
  const fingerprint = createHash('sha256').update(der).digest('hex')
  const known = parsedCas.get(fingerprint)
  if (known !== undefined && known.der.equals(der)) return known
  let envelope: ReturnType<typeof readElement> | undefined
  try {
    envelope = readElement(der)
  } catch {
    envelope = undefined
  }
  if (envelope?.tag !== DER_TAG.sequence) throw new CertificateError('certificate_malformed', `${what} is not a DER X.509 certificate`)
  if (envelope.end !== der.length) throw new CertificateError('certificate_malformed', `${what} has bytes after its end`)
  let parsed: ParsedCertificate
  try {
    parsed = { der, fingerprint, ...readFields(der) }
  } catch (error) {
    if (error instanceof DerError) throw new CertificateError('certificate_malformed', `${what} is malformed: ${error.message}`)
    throw error
  }
  if (!parsed.isCa) return parsed
  // A copy: the cache outlives the request whose buffer this is.
  const kept = { ...parsed, der: Buffer.from(der) }
  let view: X509Certificate
  try {
    view = new X509Certificate(kept.der)
  } catch {
    throw new CertificateError('certificate_malformed', `${what} is not a DER X.509 certificate`)
  }
  nodeViews.set(kept, view)
  if (parsedCas.size >= MAX_CACHED_CAS) parsedCas.clear()
  parsedCas.set(fingerprint, kept)
  return kept
}

function readFields(der: Buffer): Omit<ParsedCertificate, 'der' | 'fingerprint'> {
  const parts = readChildren(readWhole(der, DER_TAG.sequence))
  if (parts.length !== 3) throw new DerError('a certificate is a tbsCertificate, a signature algorithm and a signature')
  const [tbs, signatureAlgorithm, signatureBits] = parts as [DerElement, DerElement, DerElement]
  const fields = readChildren(expectTag(tbs, DER_TAG.sequence, 'tbsCertificate').content)
  // The version is an explicit [0] before the serial; v1 certificates omit it.
  const offset = fields[0]?.tag === 0xa0 ? 1 : 0
  const serial = readUnsignedHex(fields[offset], 'serial number')
  const innerSignatureAlgorithm = expectTag(fields[offset + 1], DER_TAG.sequence, 'signature')
  const issuer = expectTag(fields[offset + 2], DER_TAG.sequence, 'issuer')
  const validity = readChildren(expectTag(fields[offset + 3], DER_TAG.sequence, 'validity').content)
  const subject = expectTag(fields[offset + 4], DER_TAG.sequence, 'subject')
  const publicKeyInfoElement = expectTag(fields[offset + 5], DER_TAG.sequence, 'subjectPublicKeyInfo')
  const publicKeyInfo = readChildren(publicKeyInfoElement.content)
  const publicKeyBits = expectTag(publicKeyInfo[1], DER_TAG.bitString, 'subjectPublicKey').content
  const signatureValue = expectTag(signatureBits, DER_TAG.bitString, 'signature value').content
  if (signatureValue[0] !== 0) throw new DerError('signature value: a bit string of whole octets expected')
  const publicKeyInfoDer = encodeElement(publicKeyInfoElement)
  const extensionsField = fields.slice(offset + 6).find((field) => field.tag === 0xa3)
  const extensions = readExtensions(extensionsField)
  const basicConstraints = extensions.get(OID.basicConstraints)
  const constraints = basicConstraints === undefined ? [] : readChildren(readWhole(basicConstraints, DER_TAG.sequence))
  const isCa = constraints[0]?.tag === DER_TAG.boolean && constraints[0].content[0] === 0xff
  const pathLengthField = constraints.find((element) => element.tag === DER_TAG.integer)
  const keyUsage = extensions.get(OID.keyUsage)
  const extKeyUsage = extensions.get(OID.extKeyUsage)
  const subjectAltName = extensions.get(OID.subjectAltName)
  const subjectKeyIdentifier = extensions.get(OID.subjectKeyIdentifier)
  const authorityKeyIdentifier = extensions.get(OID.authorityKeyIdentifier)
  const authorityFields = authorityKeyIdentifier === undefined ? [] : readChildren(readWhole(authorityKeyIdentifier, DER_TAG.sequence))
  return {
    publicKey: readPublicKey(publicKeyInfoDer, publicKeyInfo[0], publicKeyBits),
    tbs: encodeElement(tbs),
    signatureValue: signatureValue.subarray(1),
    signatureAlgorithmsAgree: innerSignatureAlgorithm.content.equals(expectTag(signatureAlgorithm, DER_TAG.sequence, 'signature algorithm').content),
    issuerName: encodeElement(issuer),
    subjectName: encodeElement(subject),
    subjectKeyIdentifier: subjectKeyIdentifier === undefined ? undefined : readWhole(subjectKeyIdentifier, DER_TAG.octetString),
    authorityKeyIdentifier: authorityFields.find((field) => field.tag === AKI_KEY_IDENTIFIER)?.content,
    authorityNamedByIssuerAndSerial: authorityFields.some((field) => field.tag !== AKI_KEY_IDENTIFIER),
    serial,
    serialOctets: (fields[offset] as DerElement).content.length,
    keyId: createHash('sha256').update(publicKeyInfoDer).digest('hex'),
    notBefore: readTime(validity[0]),
    notAfter: readTime(validity[1]),
    isCa,
    pathLength: pathLengthField === undefined ? undefined : readPathLength(pathLengthField),
    keyUsage: keyUsage === undefined ? undefined : readWhole(keyUsage, DER_TAG.bitString),
    extKeyUsage: extKeyUsage === undefined ? undefined : readChildren(readWhole(extKeyUsage, DER_TAG.sequence)).map((oid) => oidToString(expectTag(oid, DER_TAG.oid, 'extended key usage').content)),
    commonNames: readCommonNames(subject),
    dnsNames: subjectAltName === undefined ? [] : readChildren(readWhole(subjectAltName, DER_TAG.sequence)).filter((name) => name.tag === 0x82).map((name) => name.content.toString('latin1')),
    publicKeyBits: publicKeyBits.subarray(1),
    signatureAlgorithm: oidToString(expectTag(readChildren(expectTag(signatureAlgorithm, DER_TAG.sequence, 'signature algorithm').content)[0], DER_TAG.oid, 'signature algorithm').content),
  }
}

/**
 * The certificate's key as node:crypto reads it. A P-256 point goes in as a JWK: OpenSSL checks it
 * is on the curve either way, and importing the coordinates takes half the time of decoding the
 * subjectPublicKeyInfo, the largest part of a device certificate's parse.
 */
function readPublicKey(publicKeyInfoDer: Buffer, algorithm: DerElement | undefined, bits: Buffer): KeyObject | undefined {
  try {
    const [type, curve] = readChildren(expectTag(algorithm, DER_TAG.sequence, 'key algorithm').content)
    const point = bits.subarray(1)
    if (
      type?.tag === DER_TAG.oid && oidToString(type.content) === EC_PUBLIC_KEY &&
      curve?.tag === DER_TAG.oid && oidToString(curve.content) === P256_CURVE &&
      bits[0] === 0 && point.length === 1 + 2 * P256_COORDINATE_BYTES && point[0] === UNCOMPRESSED_POINT
    ) {
      const x = point.subarray(1, 1 + P256_COORDINATE_BYTES).toString('base64url')
      const y = point.subarray(1 + P256_COORDINATE_BYTES).toString('base64url')
      const key = createPublicKey({ key: { kty: 'EC', crv: 'P-256', x, y }, format: 'jwk' })
      p256Keys.add(key)
      return key
    }
    return createPublicKey({ key: publicKeyInfoDer, format: 'der', type: 'spki' })
  } catch {
    // A key node:crypto cannot read is no key this service accepts (keyKind).
    return undefined
  }
}

function readPathLength(field: DerElement): number {
  if (((field.content[0] ?? 0) & 0x80) !== 0) throw new DerError('negative path length')
  const hex = readUnsignedHex(field, 'path length')
  return hex.length > 8 ? Number.MAX_SAFE_INTEGER : Number.parseInt(hex, 16)
}

function readExtensions(field: DerElement | undefined): Map<string, Buffer> {
  const extensions = new Map<string, Buffer>()
  if (field === undefined) return extensions
  for (const extension of readChildren(readWhole(field.content, DER_TAG.sequence))) {
    const parts = readChildren(expectTag(extension, DER_TAG.sequence, 'extension').content)
    const oid = oidToString(expectTag(parts[0], DER_TAG.oid, 'extension id').content)
    const critical = parts.length === 3 && parts[1]?.tag === DER_TAG.boolean && parts[1].content[0] === 0xff
    const value = expectTag(parts[parts.length - 1], DER_TAG.octetString, 'extension value').content
    if (extensions.has(oid)) throw new DerError(`extension ${oid} appears twice`)
    if (critical && !UNDERSTOOD_CRITICAL.has(oid)) throw new DerError(`critical extension ${oid} is not understood`)
    extensions.set(oid, value)
  }
  return extensions
}

function readCommonNames(subject: DerElement): string[] {
  const names: string[] = []
  for (const relativeName of readChildren(subject.content)) {
    for (const attribute of readChildren(expectTag(relativeName, DER_TAG.set, 'subject').content)) {
      const [type, value] = readChildren(expectTag(attribute, DER_TAG.sequence, 'subject attribute').content)
      if (oidToString(expectTag(type, DER_TAG.oid, 'attribute type').content) !== OID.commonName || value === undefined) continue
      if (value.tag !== DER_TAG.utf8String && value.tag !== DER_TAG.printableString && value.tag !== DER_TAG.ia5String) throw new DerError('common name of an unexpected string type')
      names.push(value.content.toString(value.tag === DER_TAG.utf8String ? 'utf8' : 'latin1'))
    }
  }
  return names
}

/** The DER of each `CERTIFICATE` block of PEM text, in order (none: an empty list). */
export function pemCertificates(pem: string): Buffer[] {
  return [...pem.matchAll(PEM_BLOCK)].map(([, body]) => Buffer.from((body as string).replace(/\s+/g, ''), 'base64'))
}

/**
 * Reads a fleet's trusted CA certificates (PEM, one or more): each must be a CA allowed to sign
 * certificates, with a key this service accepts.
 * @throws ConfigError naming the setting; a certificate is public, so the reason may quote it.
 */
export function parseTrustAnchors(pem: unknown, setting: string): TrustAnchor[] {
  if (typeof pem !== 'string') throw new ConfigError(setting, 'the CA certificates are not PEM text')
  const anchors: TrustAnchor[] = []
  for (const der of pemCertificates(pem)) {
    let anchor: ParsedCertificate
    try {
      anchor = parseCertificate(der)
    } catch (error) {
      throw new ConfigError(setting, `CA certificate ${anchors.length + 1}: ${(error as Error).message}`)
    }
    if (!anchor.isCa || !hasKeyUsage(anchor, KEY_USAGE_BIT.keyCertSign)) throw new ConfigError(setting, `CA certificate ${anchors.length + 1} is not a CA that may sign certificates`)
    if (keyKind(anchor.publicKey) === undefined) throw new ConfigError(setting, `CA certificate ${anchors.length + 1} has a key this service does not accept`)
    anchors.push(anchor)
  }
  if (anchors.length === 0) throw new ConfigError(setting, 'holds no PEM certificate')
  return anchors
}

/**
 * Verifies a device certificate (and at most one intermediate) for `device`, at `nowSeconds`:
 * a chain to a trusted CA within every path length, each certificate in its validity, a leaf
 * that is not a CA and may sign, a key this service accepts, and the device ID bound to it.
 * Certificates are public, so the checks run before the device's signature is looked at.
 * @throws CertificateError with a code per failed check (docs/protocol.md).
 */
export function verifyDeviceCertificate(
  certificate: Buffer,
  chain: readonly Buffer[],
  anchors: readonly TrustAnchor[],
  options: { device: string; deviceIdFrom: DeviceIdSource; nowSeconds: number },
): VerifiedDeviceKey {
  if (chain.length > MAX_INTERMEDIATES) throw new CertificateError('certificate_chain_too_long', `send at most ${MAX_INTERMEDIATES} intermediate certificate`)
  const leaf = parseCertificate(certificate)
  const sent = chain.map((der, index) => parseCertificate(der, `intermediate certificate ${index + 1}`))
  // A device that sends the trusted CA itself as its intermediate needs no such intermediate.
  const intermediates = sent.filter((candidate) => !anchors.some((anchor) => anchor.fingerprint === candidate.fingerprint))
  const path = [leaf, ...intermediates]
  const top = path[path.length - 1] as ParsedCertificate
  const anchor = anchors.find((candidate) => isIssuedBy(top, candidate))
  if (anchor === undefined) throw new CertificateError('certificate_untrusted', 'the certificate does not chain to a CA this fleet trusts')
  if (anchor.pathLength !== undefined && intermediates.length > anchor.pathLength) {
    throw new CertificateError('certificate_chain_too_long', 'the chain is longer than the trusted CA allows')
  }
  for (const intermediate of intermediates) {
    if (!intermediate.isCa) throw new CertificateError('certificate_untrusted', 'the intermediate certificate is not a CA')
    if (!hasKeyUsage(intermediate, KEY_USAGE_BIT.keyCertSign)) throw new CertificateError('certificate_key_usage', 'the intermediate certificate may not sign certificates')
    // Checked before its key verifies anything, so a hostile key costs nothing.
    if (keyKind(intermediate.publicKey) === undefined) throw new CertificateError('certificate_key_not_allowed', 'the intermediate certificate has a key this service does not accept')
  }
  for (const certificateInPath of [leaf, ...intermediates]) {
    if (certificateInPath.serialOctets > MAX_SERIAL_OCTETS) {
      throw new CertificateError('certificate_malformed', `${certificateInPath === leaf ? 'the certificate' : 'the intermediate certificate'} has a serial longer than ${MAX_SERIAL_OCTETS} octets (RFC 5280 4.1.2.2)`)
    }
  }
  if (intermediates.length > 0 && !isIssuedBy(leaf, intermediates[0] as ParsedCertificate)) {
    throw new CertificateError('certificate_untrusted', 'the certificate was not issued by the intermediate sent with it')
  }
  for (const certificateInPath of [anchor, ...intermediates, leaf]) {
    const what = certificateInPath === leaf ? 'the certificate' : certificateInPath === anchor ? 'the trusted CA certificate' : 'the intermediate certificate'
    if (options.nowSeconds < certificateInPath.notBefore) throw new CertificateError('certificate_not_yet_valid', `${what} is not valid yet at the service's clock`)
    if (options.nowSeconds > certificateInPath.notAfter) throw new CertificateError('certificate_expired', `${what} has expired`)
  }
  if (leaf.isCa) throw new CertificateError('certificate_not_leaf', 'a CA certificate cannot identify a device')
  if (!hasKeyUsage(leaf, KEY_USAGE_BIT.digitalSignature)) throw new CertificateError('certificate_key_usage', 'the certificate’s key usage does not allow signatures')
  if (leaf.extKeyUsage !== undefined && !leaf.extKeyUsage.includes(OID.clientAuth) && !leaf.extKeyUsage.includes(OID.anyExtendedKeyUsage)) {
    throw new CertificateError('certificate_key_usage', 'the certificate’s extended key usage does not allow client authentication')
  }
  const keyType = keyKind(leaf.publicKey)
  if (leaf.publicKey === undefined || (keyType !== 'ec-p256' && keyType !== 'rsa')) throw new CertificateError('certificate_key_not_allowed', `the certificate’s key must be ECDSA P-256 or RSA of ${MIN_RSA_BITS} to ${MAX_RSA_BITS} bits`)
  const bound = options.deviceIdFrom === 'cn' ? leaf.commonNames.length === 1 && leaf.commonNames[0] === options.device : leaf.dnsNames.includes(options.device)
  if (!bound) {
    throw new CertificateError('certificate_device_mismatch', `the certificate is not this device’s (its ${options.deviceIdFrom === 'cn' ? 'subject common name' : 'DNS names'} must be the device ID)`)
  }
  const identities = [
    identityOf(leaf, 'device'),
    ...intermediates.map((intermediate) => identityOf(intermediate, 'intermediate')),
    identityOf(anchor, 'ca'),
  ]
  return { publicKey: leaf.publicKey, point: leaf.publicKeyBits, keyType, serial: leaf.serial, fingerprint: leaf.fingerprint, keyId: leaf.keyId, path: identities }
}

function identityOf(certificate: ParsedCertificate, role: CertificateIdentity['role']): CertificateIdentity {
  return { serial: certificate.serial, fingerprint: certificate.fingerprint, keyId: certificate.keyId, role }
}

/**
 * Checks a device's signature over the signed message with its certificate's key: ECDSA P-256
 * with SHA-256 as the 64 bytes r‖s, or RSASSA-PKCS1-v1_5 with SHA-256 (docs/protocol.md).
 * @throws AttestationError `invalid_signature`.
 */
export function verifyCertificateSignature(key: VerifiedDeviceKey, message: string, signature: string): void {
  const given = Buffer.from(signature, 'base64')
  const expectedBytes = key.keyType === 'ec-p256' ? P256_SIGNATURE_BYTES : Math.ceil((key.publicKey.asymmetricKeyDetails?.modulusLength ?? 0) / 8)
  const valid =
    given.length === expectedBytes &&
    given.toString('base64') === signature &&
    verifySignatureBytes(
      'sha256',
      Buffer.from(message, 'utf8'),
      key.keyType === 'ec-p256' ? { key: key.publicKey, dsaEncoding: 'ieee-p1363' } : { key: key.publicKey, padding: cryptoConstants.RSA_PKCS1_PADDING },
      given,
    )
  if (!valid) throw new AttestationError('invalid_signature', 'the signature does not match the certificate’s key')
}

/**
 * The deny-list entries that name a certificate: `key:<hex>` (its key, what `revoke --certificate`
 * writes), `serial:<hex>` and the legacy `sha256:<hex>` (lowercase, no colons).
 */
export function certificateDenyEntries(certificate: Pick<CertificateIdentity, 'serial' | 'fingerprint' | 'keyId'>): string[] {
  return [`key:${certificate.keyId}`, `serial:${certificate.serial}`, `sha256:${certificate.fingerprint}`]
}

/**
 * Whether `issuer` issued `child`: OpenSSL's X509_check_issued and X509_verify. When the names are
 * the same bytes and the authority key identifier has no name and serial, the checks run on the
 * DER as read (the names, the key identifiers, the issuer's key usage, the signature over the
 * tbsCertificate with the issuer's key); otherwise node:crypto compares names its own way.
 */
function isIssuedBy(child: ParsedCertificate, issuer: ParsedCertificate): boolean {
  const algorithm = SIGNATURE_ALGORITHMS.get(child.signatureAlgorithm)
  if (algorithm === undefined) return false
  const issuance = `${child.fingerprint}>${issuer.fingerprint}`
  if (verifiedIssuances.has(issuance)) return true
  let issued: boolean
  try {
    if (child.issuerName.equals(issuer.subjectName) && !child.authorityNamedByIssuerAndSerial) {
      issued =
        child.signatureAlgorithmsAgree &&
        (child.authorityKeyIdentifier === undefined || issuer.subjectKeyIdentifier === undefined || child.authorityKeyIdentifier.equals(issuer.subjectKeyIdentifier)) &&
        hasKeyUsage(issuer, KEY_USAGE_BIT.keyCertSign) &&
        issuer.publicKey?.asymmetricKeyType === algorithm.keyType &&
        verifySignatureBytes(
          algorithm.hash,
          child.tbs,
          algorithm.keyType === 'ec' ? { key: issuer.publicKey, dsaEncoding: 'der' } : { key: issuer.publicKey, padding: cryptoConstants.RSA_PKCS1_PADDING },
          child.signatureValue,
        )
    } else {
      const childView = nodeViewOf(child)
      const issuerView = nodeViewOf(issuer)
      issued = childView.checkIssued(issuerView) && childView.verify(issuerView.publicKey)
    }
  } catch {
    return false
  }
  if (issued && child.isCa) {
    if (verifiedIssuances.size >= MAX_CACHED_CAS) verifiedIssuances.clear()
    verifiedIssuances.add(issuance)
  }
  return issued
}

function nodeViewOf(certificate: ParsedCertificate): X509Certificate {
  let view = nodeViews.get(certificate)
  if (view === undefined) {
    view = new X509Certificate(certificate.der)
    nodeViews.set(certificate, view)
  }
  return view
}

function hasKeyUsage(certificate: ParsedCertificate, bit: number): boolean {
  // No key usage extension: RFC 5280 leaves the key unrestricted.
  if (certificate.keyUsage === undefined) return true
  const byte = certificate.keyUsage[1 + (bit >> 3)]
  return byte !== undefined && (byte & (0x80 >> (bit & 7))) !== 0
}

/** The keys this service accepts: P-256 and RSA for devices, P-384 too for CAs. */
function keyKind(key: KeyObject | undefined): 'ec-p256' | 'ec-p384' | 'rsa' | undefined {
  if (key === undefined) return undefined
  if (p256Keys.has(key)) return 'ec-p256'
  const details = key.asymmetricKeyDetails
  if (key.asymmetricKeyType === 'ec') {
    if (details?.namedCurve === 'prime256v1') return 'ec-p256'
    return details?.namedCurve === 'secp384r1' ? 'ec-p384' : undefined
  }
  if (key.asymmetricKeyType === 'rsa') {
    const bits = details?.modulusLength ?? 0
    return bits >= MIN_RSA_BITS && bits <= MAX_RSA_BITS ? 'rsa' : undefined
  }
  return undefined
}
