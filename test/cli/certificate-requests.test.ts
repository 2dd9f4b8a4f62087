import { sign } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { buildCertificateRequest, readCertificateRequest } from '../../cli/certificate-requests.js'
import { toPem } from '../../cli/certificates.js'
import { CliError } from '../../cli/errors.js'
import { newKeyPair } from '../support/pki.js'
import { captureError } from '../lib/capture-error.js'

const spki = (keys: ReturnType<typeof newKeyPair>) => keys.publicKey.export({ type: 'spki', format: 'der' }) as Buffer
const requestOf = async (commonName: string, keys = newKeyPair(), signer = keys) =>
  buildCertificateRequest(commonName, spki(keys), keys.privateKey.asymmetricKeyType === 'rsa' ? 'rsa-sha256' : 'ecdsa-sha256', async (info) => sign('sha256', info, signer.privateKey))

describe('Function: readCertificateRequest', () => {
  it('reads the CN and key of a request signed by its own key, as DER, PEM or base64', async () => {
    // Prepare
    const keys = newKeyPair()
    const der = await requestOf('kx_sensor_1', keys)

    // Act
    const read = [readCertificateRequest(der), readCertificateRequest(toPem(der, 'CERTIFICATE REQUEST')), readCertificateRequest(der.toString('base64'))]

    // Assess
    for (const request of read) expect(request).toEqual({ commonName: 'kx_sensor_1', publicKey: spki(keys), keyType: 'ec-p256' })
  })

  it('accepts an RSA 2048 request (the ESP32 Digital Signature peripheral)', async () => {
    // Act
    const request = readCertificateRequest(await requestOf('kx_rsa', newKeyPair({ type: 'rsa', bits: 2048 })))

    // Assess
    expect(request.keyType).toBe('rsa')
  })

  it('refuses a request signed by another key, with a weak key, or not a request at all', async () => {
    // Prepare
    const cases = [
      await requestOf('kx_forged', newKeyPair(), newKeyPair()),
      await requestOf('kx_weak', newKeyPair({ type: 'rsa', bits: 1024 })),
      await requestOf('kx_k1', newKeyPair({ type: 'ec', curve: 'secp256k1' })),
      Buffer.from('not a request'),
    ]

    // Act
    const errors = cases.map((bytes) => captureError(() => readCertificateRequest(bytes)))

    // Assess
    expect(errors.map((error) => [(error as CliError).code, (error as CliError).message])).toEqual([
      ['invalid_certificate_request', 'the request of kx_forged is not signed by its own key'],
      ['invalid_certificate_request', 'the request of kx_weak has a key the service does not accept (P-256, or RSA of 2048 to 4096 bits)'],
      ['invalid_certificate_request', 'the request of kx_k1 has a key the service does not accept (P-256, or RSA of 2048 to 4096 bits)'],
      ['invalid_certificate_request', 'not a PKCS#10 certificate request (PEM or DER)'],
    ])
  })
})
