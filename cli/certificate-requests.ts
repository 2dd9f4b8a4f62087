import { createPublicKey, verify } from 'node:crypto'
import { CertificationRequest, CertificationRequestInfo } from '@peculiar/asn1-csr'
import { AsnConvert } from '@peculiar/asn1-schema'
import { AlgorithmIdentifier, AttributeTypeAndValue, AttributeValue, Name, RelativeDistinguishedName, SubjectPublicKeyInfo } from '@peculiar/asn1-x509'
import { CliError } from './errors.js'

const COMMON_NAME = '2.5.4.3'
const HASH_BY_SIGNATURE_ALGORITHM: Record<string, string> = {
  '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
}
const PEM_REQUEST = /-----BEGIN (?:NEW )?CERTIFICATE REQUEST-----([A-Za-z0-9+/=\s]+?)-----END (?:NEW )?CERTIFICATE REQUEST-----/

/** What a certificate request (PKCS#10) asks for, once its proof of possession verified. */
export interface CertificateRequest {
  commonName: string
  /** SubjectPublicKeyInfo DER. */
  publicKey: Buffer
  keyType: 'ec-p256' | 'rsa'
}

/**
 * Reads a CSR (PEM or DER, or base64 DER as a CSV cell holds it): its subject CN and key, after
 * checking its signature by that key (the device holds the private key) and that the key is one
 * the function accepts (P-256, or RSA of 2048 to 4096 bits).
 * @throws CliError `invalid_certificate_request`, naming what is wrong.
 */
export function readCertificateRequest(input: Buffer | string): CertificateRequest {
  const text = typeof input === 'string' ? input : input.toString('latin1')
  const pem = PEM_REQUEST.exec(text)
  const der = pem ? Buffer.from((pem[1] as string).replace(/\s+/g, ''), 'base64') : typeof input === 'string' ? Buffer.from(input.trim(), 'base64') : input
  let request: CertificationRequest
  try {
    request = AsnConvert.parse(der, CertificationRequest)
  } catch {
    throw new CliError('invalid_certificate_request', 'not a PKCS#10 certificate request (PEM or DER)')
  }
  const infoBytes = Buffer.from(request.certificationRequestInfoRaw ?? AsnConvert.serialize(request.certificationRequestInfo))
  const info = AsnConvert.parse(infoBytes, CertificationRequestInfo)
  const publicKey = Buffer.from(AsnConvert.serialize(info.subjectPKInfo))
  const commonNames = info.subject.flatMap((rdn) => rdn.filter((attribute) => attribute.type === COMMON_NAME).map((attribute) => attribute.value.toString()))
  if (commonNames.length !== 1) throw new CliError('invalid_certificate_request', 'the request must name exactly one subject CN (the device ID)')
  let key
  try {
    key = createPublicKey({ key: publicKey, format: 'der', type: 'spki' })
  } catch {
    throw new CliError('invalid_certificate_request', `the request of ${commonNames[0]} carries no readable public key`)
  }
  const details = key.asymmetricKeyDetails
  const keyType = key.asymmetricKeyType === 'ec' && details?.namedCurve === 'prime256v1' ? 'ec-p256' : key.asymmetricKeyType === 'rsa' && (details?.modulusLength ?? 0) >= 2048 && (details?.modulusLength ?? 0) <= 4096 ? 'rsa' : undefined
  if (keyType === undefined) throw new CliError('invalid_certificate_request', `the request of ${commonNames[0]} has a key the service does not accept (P-256, or RSA of 2048 to 4096 bits)`)
  const hash = HASH_BY_SIGNATURE_ALGORITHM[request.signatureAlgorithm.algorithm]
  if (hash === undefined || !verify(hash, infoBytes, key, Buffer.from(request.signature))) {
    throw new CliError('invalid_certificate_request', `the request of ${commonNames[0]} is not signed by its own key`)
  }
  return { commonName: commonNames[0] as string, publicKey, keyType }
}

/** Builds a CSR signed by `sign` (what a device or secure element does; the tests use it). */
export async function buildCertificateRequest(commonName: string, publicKey: Buffer, algorithm: 'ecdsa-sha256' | 'rsa-sha256', sign: (info: Buffer) => Promise<Buffer>): Promise<Buffer> {
  const info = new CertificationRequestInfo({
    subject: new Name([new RelativeDistinguishedName([new AttributeTypeAndValue({ type: COMMON_NAME, value: new AttributeValue({ utf8String: commonName }) })])]),
    subjectPKInfo: AsnConvert.parse(publicKey, SubjectPublicKeyInfo),
  })
  const infoBytes = Buffer.from(AsnConvert.serialize(info))
  const signatureAlgorithm = new AlgorithmIdentifier({ algorithm: algorithm === 'ecdsa-sha256' ? '1.2.840.10045.4.3.2' : '1.2.840.113549.1.1.11' })
  if (algorithm === 'rsa-sha256') signatureAlgorithm.parameters = null
  const signature = await sign(infoBytes)
  const request = new CertificationRequest({ certificationRequestInfo: info, signatureAlgorithm, signature: signature.buffer.slice(signature.byteOffset, signature.byteOffset + signature.byteLength) as ArrayBuffer })
  return Buffer.from(AsnConvert.serialize(request))
}
