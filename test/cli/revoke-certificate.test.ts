import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { parseCertificate } from '../../lib/attestation/x509.js'
import { issue, newCa } from '../support/pki.js'
import { MemorySsm, MemoryThinger, run } from './fakes.js'

const ENV = { FLEETS_FILE: '', STAGE: 'prod', THINGER_USERNAME: 'acme', SSM_CACHE_SECONDS: '60' }
const DENY_PARAM = '/thinger-provisioner/prod/default-deny-list'

let dir: string
let fingerprint: string
let serial: string
let keyId: string

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'revoke-cert-'))
  const device = await issue(await newCa(), 'dev_1', { serial: '00ab12' })
  writeFileSync(join(dir, 'dev_1.pem'), device.pem)
  writeFileSync(join(dir, 'dev_1.der'), device.der)
  writeFileSync(join(dir, 'junk.pem'), 'not a certificate')
  ;({ fingerprint, serial, keyId } = parseCertificate(device.der))
})

describe('Command: revoke --certificate', () => {
  it('adds a certificate file’s key, a key and a serial to the deny list, keeping what it held', async () => {
    // Prepare
    const ssm = new MemorySsm()
    ssm.seed(DENY_PARAM, JSON.stringify({ version: 1, devices: ['dev_0'], retiredKeyVersions: [2] }), 'String')
    const upper = 'cd'.repeat(32).toUpperCase().match(/../g)!.join(':')

    // Act
    const result = await run(['revoke', '--certificate', join(dir, 'dev_1.pem'), '--certificate', `key:${upper}`, '--certificate', 'serial:00:AB:12'], { env: ENV, ssm, thinger: new MemoryThinger() })
    const again = await run(['revoke', '--certificate', join(dir, 'dev_1.der')], { env: ENV, ssm })

    // Assess
    expect(result.code).toBe(0)
    expect(serial).toBe('ab12')
    expect(JSON.parse(ssm.parameters.get(DENY_PARAM)!.value)).toEqual({ version: 1, devices: ['dev_0'], retiredKeyVersions: [2], certificates: [`key:${'cd'.repeat(32)}`, `key:${keyId}`, 'serial:ab12'].sort() })
    expect(result.stdout).toContain(`certificate key:${keyId} (${join(dir, 'dev_1.pem')}, serial ab12) of fleet "default": added to the deny list ${DENY_PARAM}; refused with 403 certificate_revoked (every certificate of this key, however encoded)`)
    expect(result.stdout).toContain('certificate serial:ab12 of fleet "default": added to the deny list')
    expect(result.stdout).toContain('from any CA the fleet trusts: every device under such an intermediate too')
    expect(again.stdout).toContain('already in the deny list')
  })

  it('replaces the legacy sha256: entry of a file revoked again, and unrevoke of the file removes both', async () => {
    // Prepare
    const ssm = new MemorySsm()
    ssm.seed(DENY_PARAM, JSON.stringify({ version: 1, devices: [], retiredKeyVersions: [], certificates: [`sha256:${fingerprint}`, 'serial:01'] }), 'String')

    // Act
    const migrated = await run(['revoke', '--certificate', join(dir, 'dev_1.pem')], { env: ENV, ssm })
    const afterMigration = JSON.parse(ssm.parameters.get(DENY_PARAM)!.value)
    ssm.seed(DENY_PARAM, JSON.stringify({ version: 1, devices: [], retiredKeyVersions: [], certificates: [`key:${keyId}`, `sha256:${fingerprint}`] }), 'String')
    const unrevoked = await run(['unrevoke', '--certificate', join(dir, 'dev_1.der')], { env: ENV, ssm })
    const legacyUnrevoked = await run(['unrevoke', '--certificate', `sha256:${fingerprint}`], { env: ENV, ssm })

    // Assess
    expect(migrated.code).toBe(0)
    expect(afterMigration.certificates).toEqual([`key:${keyId}`, 'serial:01'])
    expect(migrated.stdout).toContain(`replaces sha256:${fingerprint}, which missed the certificate re-encoded`)
    expect(unrevoked.code).toBe(0)
    expect(JSON.parse(ssm.parameters.get(DENY_PARAM)!.value)).toEqual({ version: 1, devices: [], retiredKeyVersions: [] })
    expect(legacyUnrevoked.stdout).toContain('not in the deny list')
  })

  it('keeps revoked certificates when a device is revoked, and removes them with unrevoke', async () => {
    // Prepare
    const ssm = new MemorySsm()
    ssm.seed('/thinger-provisioner/prod/thinger-token', 'token-value-x')
    await run(['revoke', '--certificate', 'serial:ab12'], { env: ENV, ssm })
    const thinger = new MemoryThinger()
    thinger.devices.set('dev_2', { device: 'dev_2', type: 'Generic', enabled: true })

    // Act
    await run(['revoke', '--device', 'dev_2'], { env: ENV, ssm, thinger })
    const kept = JSON.parse(ssm.parameters.get(DENY_PARAM)!.value)
    const unrevoked = await run(['unrevoke', '--certificate', 'serial:ab12'], { env: ENV, ssm })

    // Assess
    expect(kept.certificates).toEqual(['serial:ab12'])
    expect(unrevoked.code).toBe(0)
    expect(JSON.parse(ssm.parameters.get(DENY_PARAM)!.value)).toEqual({ version: 1, devices: ['dev_2'], retiredKeyVersions: [] })
  })

  it.each([
    [['revoke', '--certificate', 'ab12'], 'not a file, key:<hex>, serial:<hex>'],
    [['revoke', '--certificate', 'sha256:abcd'], 'not a file, key:<hex>, serial:<hex>'],
    [['revoke', '--certificate', 'key:abcd'], 'not a file, key:<hex>, serial:<hex>'],
    [['revoke', '--certificate', `sha256:${'ab'.repeat(32)}`], 'a sha256: fingerprint misses the certificate re-encoded with the other form of its signature'],
    [['revoke', '--certificate', `serial:${'ab'.repeat(21)}`], 'a serial is at most 20 bytes'],
    [['revoke', '--certificate', 'JUNK'], 'not a file'],
    [['revoke', '--certificate', 'serial:ab', '--device', 'dev_1'], 'takes one of --device, --key-version or --certificate, not several'],
    [['revoke', '--certificate', 'serial:ab', '--delete'], '--delete applies to --device only'],
  ])('refuses %j with one clear line and changes nothing', async (argv, message) => {
    // Prepare
    const ssm = new MemorySsm()

    // Act
    const result = await run(argv, { env: ENV, ssm })

    // Assess
    expect(result.code).toBe(2)
    expect(result.stderr).toContain(message)
    expect(result.stderr.trim().split('\n')).toHaveLength(1)
    expect(ssm.writes).toEqual([])
  })

  it('refuses a file that is no certificate', async () => {
    // Act
    const result = await run(['revoke', '--certificate', join(dir, 'junk.pem')], { env: ENV, ssm: new MemorySsm() })

    // Assess
    expect([result.code, result.stderr]).toEqual([2, expect.stringContaining('is not a DER X.509 certificate')])
  })
})
