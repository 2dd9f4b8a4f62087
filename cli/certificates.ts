import { createHash, randomBytes } from 'node:crypto'
import { AsnConvert, OctetString } from '@peculiar/asn1-schema'
import {
  AlgorithmIdentifier,
  AttributeTypeAndValue,
  AttributeValue,
  AuthorityKeyIdentifier,
  BasicConstraints,
  Certificate,
  ExtendedKeyUsage,
  Extension,
  Extensions,
  GeneralName,
  KeyIdentifier,
  KeyUsage,
  KeyUsageFlags,
  Name,
  RelativeDistinguishedName,
  SubjectAlternativeName,
  SubjectKeyIdentifier,
  SubjectPublicKeyInfo,
  TBSCertificate,
  Validity,
  Version,
} from '@peculiar/asn1-x509'

const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2'
const SHA256_WITH_RSA = '1.2.840.113549.1.1.11'
const COMMON_NAME = '2.5.4.3'
const ORGANIZATION = '2.5.4.10'
const SERIAL_BYTES = 16
/** id-kp-clientAuth: what a device certificate is for. */
export const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2'

/** Signs a to-be-signed certificate: a KMS key (`MessageType: RAW`) or a key in memory. */
export interface CertificateSigner {
  /** `ecdsa-sha256` signatures are DER (what KMS and node:crypto return, and what X.509 carries). */
  algorithm: 'ecdsa-sha256' | 'rsa-sha256'
  sign(toBeSigned: Buffer): Promise<Buffer>
}

/** What a certificate says. Keys are SubjectPublicKeyInfo DER (`KeyObject.export({ type: 'spki', format: 'der' })`). */
export interface CertificateTemplate {
  subject: { commonName: string; organization?: string }
  /** The issuer's subject (or its exact Name, read from its certificate) and key; absent: self-signed. */
  issuer?: { subject: { commonName: string; organization?: string } | Name; publicKey: Buffer }
  publicKey: Buffer
  notBefore: Date
  notAfter: Date
  ca: boolean
  pathLength?: number
  /** Absent: no key usage extension at all. */
  keyUsage?: Array<keyof typeof KeyUsageFlags>
  extKeyUsage?: string[]
  dnsNames?: string[]
  /** Hex; absent: 128 random bits. */
  serial?: string
}

/**
 * Builds and signs an X.509 v3 certificate; returns its DER. The signer sees the to-be-signed
 * bytes only, so the CA's private key may stay in KMS.
 */
export async function buildCertificate(template: CertificateTemplate, signer: CertificateSigner): Promise<Buffer> {
  const signatureAlgorithm = new AlgorithmIdentifier({ algorithm: signer.algorithm === 'ecdsa-sha256' ? ECDSA_WITH_SHA256 : SHA256_WITH_RSA })
  // RFC 4055: sha256WithRSAEncryption carries an explicit NULL parameter; ECDSA carries none.
  if (signer.algorithm === 'rsa-sha256') signatureAlgorithm.parameters = null
  const issuer = template.issuer ?? { subject: template.subject, publicKey: template.publicKey }
  const extensions = new Extensions([
    extension('2.5.29.19', true, new BasicConstraints({ cA: template.ca, ...(template.pathLength === undefined ? {} : { pathLenConstraint: template.pathLength }) })),
    extension('2.5.29.14', false, new SubjectKeyIdentifier(keyIdentifier(template.publicKey))),
    extension('2.5.29.35', false, new AuthorityKeyIdentifier({ keyIdentifier: new KeyIdentifier(keyIdentifier(issuer.publicKey)) })),
  ])
  if (template.keyUsage !== undefined) {
    const flags = template.keyUsage.reduce((all, usage) => all | KeyUsageFlags[usage], 0)
    extensions.push(extension('2.5.29.15', true, new KeyUsage(flags)))
  }
  if (template.extKeyUsage !== undefined) extensions.push(extension('2.5.29.37', false, new ExtendedKeyUsage(template.extKeyUsage)))
  if (template.dnsNames !== undefined && template.dnsNames.length > 0) {
    extensions.push(extension('2.5.29.17', false, new SubjectAlternativeName(template.dnsNames.map((dNSName) => new GeneralName({ dNSName })))))
  }
  const tbsCertificate = new TBSCertificate({
    version: Version.v3,
    serialNumber: serialBytes(template.serial),
    signature: signatureAlgorithm,
    issuer: issuer.subject instanceof Name ? issuer.subject : toName(issuer.subject),
    validity: new Validity({ notBefore: template.notBefore, notAfter: template.notAfter }),
    subject: toName(template.subject),
    subjectPublicKeyInfo: AsnConvert.parse(template.publicKey, SubjectPublicKeyInfo),
    extensions,
  })
  const toBeSigned = Buffer.from(AsnConvert.serialize(tbsCertificate))
  const signature = await signer.sign(toBeSigned)
  const certificate = new Certificate({ tbsCertificate, signatureAlgorithm, signatureValue: toArrayBuffer(signature) })
  return Buffer.from(AsnConvert.serialize(certificate))
}

/** A certificate's DER as PEM text. */
export function toPem(der: Buffer, label = 'CERTIFICATE'): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? []
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`
}

/** The subject Name and SubjectPublicKeyInfo of a certificate (what issuing under it needs). */
export function readIssuer(der: Buffer): { subject: Name; publicKey: Buffer } {
  const { tbsCertificate } = AsnConvert.parse(der, Certificate)
  return { subject: tbsCertificate.subject, publicKey: Buffer.from(AsnConvert.serialize(tbsCertificate.subjectPublicKeyInfo)) }
}

function extension(extnID: string, critical: boolean, value: unknown): Extension {
  return new Extension({ extnID, critical, extnValue: new OctetString(AsnConvert.serialize(value)) })
}

function toName(subject: { commonName: string; organization?: string }): Name {
  const rdn = (type: string, value: string) => new RelativeDistinguishedName([new AttributeTypeAndValue({ type, value: new AttributeValue({ utf8String: value }) })])
  return new Name([...(subject.organization === undefined ? [] : [rdn(ORGANIZATION, subject.organization)]), rdn(COMMON_NAME, subject.commonName)])
}

// RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits (an identifier, not a security function).
function keyIdentifier(spki: Buffer): ArrayBuffer {
  const info = AsnConvert.parse(spki, SubjectPublicKeyInfo)
  return toArrayBuffer(createHash('sha1').update(Buffer.from(info.subjectPublicKey)).digest())
}

function serialBytes(serialHex: string | undefined): ArrayBuffer {
  const bytes = serialHex === undefined ? randomBytes(SERIAL_BYTES) : Buffer.from(serialHex.length % 2 ? `0${serialHex}` : serialHex, 'hex')
  // A positive INTEGER: clear the top bit of a random serial; prefix a zero byte to a given one.
  if (serialHex === undefined) bytes[0] = ((bytes[0] as number) & 0x7f) | 0x01
  return toArrayBuffer((bytes[0] as number) & 0x80 ? Buffer.concat([Buffer.alloc(1), bytes]) : bytes)
}

function toArrayBuffer(bytes: Buffer): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer
}
