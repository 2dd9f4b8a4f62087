import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { buildCertificate, CLIENT_AUTH, type CertificateTemplate, toPem } from '../../cli/certificates.js'
import { DER_TAG, encodeElement, readChildren, readWhole } from '../../lib/attestation/der.js'
import { signWithCertificateKey } from '../../lib/attestation/keys.js'

const HOUR_MS = 3600_000

/** A key pair and the certificate made for it, as a test CA or device holds them. */
export interface Issued {
  privateKey: KeyObject
  publicKey: KeyObject
  der: Buffer
  pem: string
  subject: { commonName: string; organization?: string }
}

type KeySpec = { type: 'ec'; curve: 'prime256v1' | 'secp384r1' | 'secp256k1' } | { type: 'rsa'; bits: number } | { type: 'ed25519' }

/** A fresh key pair: P-256 unless told otherwise. */
export function newKeyPair(spec: KeySpec = { type: 'ec', curve: 'prime256v1' }): { privateKey: KeyObject; publicKey: KeyObject } {
  if (spec.type === 'ec') return generateKeyPairSync('ec', { namedCurve: spec.curve })
  if (spec.type === 'rsa') return generateKeyPairSync('rsa', { modulusLength: spec.bits })
  return generateKeyPairSync('ed25519')
}

const spki = (key: KeyObject): Buffer => key.export({ type: 'spki', format: 'der' }) as Buffer

/** A signer over a key in memory, as the CLI's local signing and the tests use. */
export function memorySigner(privateKey: KeyObject) {
  return { algorithm: privateKey.asymmetricKeyType === 'rsa' ? ('rsa-sha256' as const) : ('ecdsa-sha256' as const), sign: async (tbs: Buffer) => sign('sha256', tbs, privateKey) }
}

/** A self-signed CA, valid from an hour ago for a day unless the overrides say otherwise. */
export async function newCa(overrides: Partial<CertificateTemplate> & { keys?: { privateKey: KeyObject; publicKey: KeyObject } } = {}): Promise<Issued> {
  const { keys = newKeyPair(), ...template } = overrides
  const subject = template.subject ?? { commonName: `Test CA ${Math.random().toString(36).slice(2, 8)}`, organization: 'thinger-provisioner tests' }
  const der = await buildCertificate(
    { subject, publicKey: spki(keys.publicKey), notBefore: new Date(Date.now() - HOUR_MS), notAfter: new Date(Date.now() + 24 * HOUR_MS), ca: true, keyUsage: ['keyCertSign', 'cRLSign'], ...template },
    memorySigner(keys.privateKey),
  )
  return { ...keys, der, pem: toPem(der), subject }
}

/** A certificate issued by `issuer`: a device certificate for `commonName` unless the overrides say otherwise. */
export async function issue(
  issuer: Issued,
  commonName: string,
  overrides: Partial<CertificateTemplate> & { keys?: { privateKey: KeyObject; publicKey: KeyObject } } = {},
): Promise<Issued> {
  const { keys = newKeyPair(), ...template } = overrides
  const subject = template.subject ?? { commonName }
  const der = await buildCertificate(
    {
      subject,
      issuer: { subject: issuer.subject, publicKey: spki(issuer.publicKey) },
      publicKey: spki(keys.publicKey),
      notBefore: new Date(Date.now() - HOUR_MS),
      notAfter: new Date(Date.now() + 24 * HOUR_MS),
      ca: false,
      keyUsage: ['digitalSignature', 'keyAgreement'],
      extKeyUsage: [CLIENT_AUTH],
      ...template,
    },
    memorySigner(issuer.privateKey),
  )
  return { ...keys, der, pem: toPem(der), subject }
}

// The signature a device with a certificate key sends (docs/protocol.md): the device side's own, from lib/.
export { signWithCertificateKey }

/** The JSON body of a certificate request. */
export function certificateBody(device: Issued & { device: string }, options: { timestamp?: number; version?: 2; fleet?: string; chain?: Buffer[] } = {}): Record<string, unknown> & { device: string; timestamp: number } {
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000)
  return {
    device: device.device,
    ...(options.fleet ? { fleet: options.fleet } : {}),
    ...(options.version ? { version: options.version } : {}),
    timestamp,
    certificate: device.der.toString('base64'),
    ...(options.chain ? { chain: options.chain.map((der) => der.toString('base64')) } : {}),
    signature: signWithCertificateKey(device.privateKey, device.device, timestamp, options.version ?? 1),
  }
}

/** The local stack's CA (local/x509, LOCAL DEV ONLY), which the `factory` fleet trusts. */
export function localCa(): Issued {
  const privateKey = createPrivateKey(readFileSync('local/x509/ca.key.pem'))
  const pem = readFileSync('local/x509/ca.pem', 'utf8')
  return { privateKey, publicKey: createPublicKey(privateKey), pem, der: Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64'), subject: { commonName: 'thinger-provisioner LOCAL DEV ONLY CA', organization: 'thinger-provisioner' } }
}

/** A P-256 private key's scalar, 32 bytes big-endian: what tprov_key_from_p256() and the sketch's set-x509-key take. */
export function p256Scalar(key: KeyObject): Buffer {
  return Buffer.from(key.export({ format: 'jwk' }).d as string, 'base64url')
}

// The order of the P-256 group: (r, s) and (r, n - s) are both valid ECDSA signatures.
const P256_ORDER = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551')

/**
 * The twin of a certificate its CA signed with ECDSA P-256: the same to-be-signed part and the
 * signature (r, n - s), re-encoded. It verifies under the same CA, and its DER (hence its SHA-256)
 * differs: what anyone holding the certificate can make without any key.
 */
export function signatureTwin(der: Buffer): Buffer {
  const [tbs, algorithm, signature] = readChildren(readWhole(der, DER_TAG.sequence)) as [ReturnType<typeof readChildren>[number], ReturnType<typeof readChildren>[number], ReturnType<typeof readChildren>[number]]
  const [r, s] = readChildren(readWhole(signature.content.subarray(1), DER_TAG.sequence))
  const twinS = P256_ORDER - BigInt(`0x${s!.content.toString('hex')}`)
  let hex = twinS.toString(16)
  if (hex.length % 2) hex = `0${hex}`
  if (Number.parseInt(hex.slice(0, 2), 16) & 0x80) hex = `00${hex}`
  const ecdsaSignature = encodeElement({ tag: DER_TAG.sequence, content: Buffer.concat([encodeElement(r!), encodeElement({ tag: DER_TAG.integer, content: Buffer.from(hex, 'hex') })]) })
  const bitString = encodeElement({ tag: DER_TAG.bitString, content: Buffer.concat([Buffer.from([0]), ecdsaSignature]) })
  return encodeElement({ tag: DER_TAG.sequence, content: Buffer.concat([encodeElement(tbs), encodeElement(algorithm), bitString]) })
}
