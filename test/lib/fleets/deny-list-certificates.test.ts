import { describe, expect, it } from 'vitest'
import { checkCertificateNotRevoked, legacyFingerprintEntries, parseDenyList } from '../../../lib/fleets/deny-list.js'
import { CertificateError, ConfigError } from '../../../lib/errors.js'
import { captureError } from '../capture-error.js'

const FINGERPRINT = 'ab'.repeat(32)
const KEY = '12'.repeat(32)

describe('Function: checkCertificateNotRevoked', () => {
  it('refuses a certificate path of which any certificate is named by its key, serial or legacy fingerprint, and only those (a serial never matches the trusted CA)', () => {
    // Prepare
    const list = parseDenyList(JSON.stringify({ version: 1, devices: [], retiredKeyVersions: [], certificates: [`key:${KEY}`, 'serial:1f', `sha256:${FINGERPRINT}`] }), 'deny')
    const other = { serial: '20', fingerprint: 'cd'.repeat(32), keyId: 'ef'.repeat(32) }
    const path = (named: Partial<typeof other>, role: 'device' | 'intermediate' | 'ca' = 'device') =>
      role === 'device' ? [{ ...other, ...named, role }, { ...other, role: 'ca' as const }] : [{ ...other, role: 'device' as const }, { ...other, ...named, role }]

    // Act
    const refused = [
      path({ keyId: KEY }),
      path({ serial: '1f' }),
      path({ fingerprint: FINGERPRINT }),
      path({ keyId: KEY }, 'intermediate'),
      path({ serial: '1f' }, 'intermediate'),
      path({ fingerprint: FINGERPRINT }, 'ca'),
    ].map((each) => captureError(() => checkCertificateNotRevoked(list, each)))
    checkCertificateNotRevoked(list, path({}))
    checkCertificateNotRevoked(list, path({ serial: '1f' }, 'ca'))
    checkCertificateNotRevoked(parseDenyList(JSON.stringify({ version: 1, devices: [], retiredKeyVersions: [] }), 'deny'), path({ keyId: KEY }))

    // Assess
    expect(refused.map((error) => (error as CertificateError).code)).toEqual(Array(6).fill('certificate_revoked'))
    expect((refused[3] as CertificateError).message).toBe('the intermediate certificate of this chain has been revoked')
  })

  it('lists the legacy sha256: entries, which miss a re-encoded twin', () => {
    // Act
    const legacy = legacyFingerprintEntries({ version: 1, devices: [], retiredKeyVersions: [], certificates: [`key:${KEY}`, 'serial:1f', `sha256:${FINGERPRINT}`] })

    // Assess
    expect(legacy).toEqual([`sha256:${FINGERPRINT}`])
  })

  it('refuses to read a deny list whose certificates are not key:<hex>, serial:<hex> or sha256:<hex>', () => {
    // Prepare
    const bad = [['1f'], ['serial:1F'], ['sha256:abc'], ['key:abc'], [`key:${FINGERPRINT.toUpperCase()}`], [1], 'serial:1f']

    // Act
    const errors = bad.map((certificates) => captureError(() => parseDenyList(JSON.stringify({ version: 1, devices: [], retiredKeyVersions: [], certificates }), 'deny')))

    // Assess
    for (const error of errors) expect(error).toBeInstanceOf(ConfigError)
  })
})
