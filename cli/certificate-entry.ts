import { existsSync, readFileSync } from 'node:fs'
import { parseCertificate } from '../lib/attestation/x509.js'
import { CertificateError } from '../lib/errors.js'
import { CliError } from './errors.js'

const FINGERPRINT = /^sha256:((?:[0-9a-fA-F]{2}:?){31}[0-9a-fA-F]{2})$/
const KEY = /^key:((?:[0-9a-fA-F]{2}:?){31}[0-9a-fA-F]{2})$/
const SERIAL = /^serial:((?:[0-9a-fA-F]{1,2}:?)*[0-9a-fA-F]{1,2})$/
const MAX_SERIAL_BYTES = 20
const PEM = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----/

/** What a `--certificate` value names in the deny list. */
export interface CertificateEntry {
  /** The entry `revoke` writes and `unrevoke` removes. */
  entry: string
  /** Other entries naming the same certificate that `unrevoke` removes too, and `revoke` replaces: its legacy `sha256:` fingerprint. */
  alsoNaming: string[]
  /** The file and what it holds, for the report. */
  source?: string
  /** The certificate is a CA's: revoking it refuses every certificate issued under it. */
  isCa?: boolean
}

/**
 * The deny-list entry a `--certificate` value names: a certificate file (PEM or DER: its key,
 * `key:<hex>`, the SHA-256 of its subjectPublicKeyInfo, which every encoding of the certificate
 * and every other certificate of the same key share), `key:<hex>`, `serial:<hex>` (colons allowed,
 * any case), or, for `unrevoke` only, a legacy `sha256:<hex>` fingerprint.
 * @throws CliError `usage` for anything else, naming the value.
 */
export function certificateDenyEntry(value: string, options: { revoking: boolean }): CertificateEntry {
  const key = KEY.exec(value)
  if (key) return { entry: `key:${(key[1] as string).replace(/:/g, '').toLowerCase()}`, alsoNaming: [] }
  const fingerprint = FINGERPRINT.exec(value)
  if (fingerprint) {
    // A fingerprint names one DER encoding: the same certificate with its ECDSA signature re-encoded as (r, n - s) has another.
    if (options.revoking) throw new CliError('usage', `--certificate ${value}: a sha256: fingerprint misses the certificate re-encoded with the other form of its signature; revoke the certificate file or key:<hex> (the function's log line shows it as certificateKey)`)
    return { entry: `sha256:${(fingerprint[1] as string).replace(/:/g, '').toLowerCase()}`, alsoNaming: [] }
  }
  const serial = SERIAL.exec(value)
  if (serial) {
    const hex = (serial[1] as string).replace(/:/g, '').toLowerCase().replace(/^(00)+(?=..)/, '')
    const normalized = hex.length % 2 ? `0${hex}` : hex
    if (normalized.length / 2 > MAX_SERIAL_BYTES) throw new CliError('usage', `--certificate ${value}: a serial is at most ${MAX_SERIAL_BYTES} bytes`)
    return { entry: `serial:${normalized}`, alsoNaming: [] }
  }
  if (!existsSync(value)) throw new CliError('usage', `--certificate ${value}: not a file, key:<hex>, serial:<hex>${options.revoking ? '' : ' or sha256:<fingerprint>'}`)
  const bytes = readFileSync(value)
  const pem = PEM.exec(bytes.toString('latin1'))
  const der = pem ? Buffer.from((pem[1] as string).replace(/\s+/g, ''), 'base64') : bytes
  try {
    const certificate = parseCertificate(der)
    return { entry: `key:${certificate.keyId}`, alsoNaming: [`sha256:${certificate.fingerprint}`], source: `${value}, serial ${certificate.serial}`, isCa: certificate.isCa }
  } catch (error) {
    if (error instanceof CertificateError) throw new CliError('usage', `--certificate ${value}: ${error.message}`)
    throw error
  }
}
