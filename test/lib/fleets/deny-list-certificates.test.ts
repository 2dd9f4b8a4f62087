import { describe, expect, it } from 'vitest'
import { checkCertificateNotRevoked, parseDenyList } from '../../../lib/fleets/deny-list.js'
import { CertificateError, ConfigError } from '../../../lib/errors.js'
import { captureError } from '../capture-error.js'

const FINGERPRINT = 'ab'.repeat(32)

describe('Function: checkCertificateNotRevoked', () => {
  it('refuses a certificate named by its serial or its fingerprint, and only those', () => {
    // Prepare
    const list = parseDenyList(JSON.stringify({ version: 1, devices: [], retiredKeyVersions: [], certificates: ['serial:1f', `sha256:${FINGERPRINT}`] }), 'deny')

    // Act
    const bySerial = captureError(() => checkCertificateNotRevoked(list, { serial: '1f', fingerprint: 'cd'.repeat(32) }))
    const byFingerprint = captureError(() => checkCertificateNotRevoked(list, { serial: '20', fingerprint: FINGERPRINT }))
    checkCertificateNotRevoked(list, { serial: '20', fingerprint: 'cd'.repeat(32) })
    checkCertificateNotRevoked(parseDenyList(JSON.stringify({ version: 1, devices: [], retiredKeyVersions: [] }), 'deny'), { serial: '1f', fingerprint: FINGERPRINT })

    // Assess
    expect([bySerial, byFingerprint].map((error) => (error as CertificateError).code)).toEqual(['certificate_revoked', 'certificate_revoked'])
  })

  it('refuses to read a deny list whose certificates are not serial:<hex> or sha256:<hex>', () => {
    // Prepare
    const bad = [['1f'], ['serial:1F'], ['sha256:abc'], [1], 'serial:1f']

    // Act
    const errors = bad.map((certificates) => captureError(() => parseDenyList(JSON.stringify({ version: 1, devices: [], retiredKeyVersions: [], certificates }), 'deny')))

    // Assess
    for (const error of errors) expect(error).toBeInstanceOf(ConfigError)
  })
})
