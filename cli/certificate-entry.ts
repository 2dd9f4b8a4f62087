import { existsSync, readFileSync } from 'node:fs'
import { parseCertificate } from '../lib/attestation/x509.js'
import { CertificateError } from '../lib/errors.js'
import { CliError } from './errors.js'

const FINGERPRINT = /^sha256:((?:[0-9a-fA-F]{2}:?){31}[0-9a-fA-F]{2})$/
const SERIAL = /^serial:((?:[0-9a-fA-F]{1,2}:?)*[0-9a-fA-F]{1,2})$/
const MAX_SERIAL_BYTES = 20
const PEM = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----/

/**
 * The deny-list entry a `--certificate` value names: a certificate file (PEM or DER: its exact
 * SHA-256 fingerprint), `sha256:<hex>` or `serial:<hex>` (colons allowed, any case).
 * @throws CliError `usage` for anything else, naming the value.
 */
export function certificateDenyEntry(value: string): { entry: string; source?: string } {
  const fingerprint = FINGERPRINT.exec(value)
  if (fingerprint) return { entry: `sha256:${(fingerprint[1] as string).replace(/:/g, '').toLowerCase()}` }
  const serial = SERIAL.exec(value)
  if (serial) {
    const hex = (serial[1] as string).replace(/:/g, '').toLowerCase().replace(/^(00)+(?=..)/, '')
    const normalized = hex.length % 2 ? `0${hex}` : hex
    if (normalized.length / 2 > MAX_SERIAL_BYTES) throw new CliError('usage', `--certificate ${value}: a serial is at most ${MAX_SERIAL_BYTES} bytes`)
    return { entry: `serial:${normalized}` }
  }
  if (!existsSync(value)) throw new CliError('usage', `--certificate ${value}: not a file, sha256:<fingerprint> or serial:<hex>`)
  const bytes = readFileSync(value)
  const pem = PEM.exec(bytes.toString('latin1'))
  const der = pem ? Buffer.from((pem[1] as string).replace(/\s+/g, ''), 'base64') : bytes
  try {
    const certificate = parseCertificate(der)
    return { entry: `sha256:${certificate.fingerprint}`, source: `${value}, serial ${certificate.serial}` }
  } catch (error) {
    if (error instanceof CertificateError) throw new CliError('usage', `--certificate ${value}: ${error.message}`)
    throw error
  }
}
