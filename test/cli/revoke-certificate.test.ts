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

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'revoke-cert-'))
  const device = await issue(await newCa(), 'dev_1', { serial: '00ab12' })
  writeFileSync(join(dir, 'dev_1.pem'), device.pem)
  writeFileSync(join(dir, 'dev_1.der'), device.der)
  writeFileSync(join(dir, 'junk.pem'), 'not a certificate')
  ;({ fingerprint, serial } = parseCertificate(device.der))
})

describe('Command: revoke --certificate', () => {
  it('adds a certificate file’s fingerprint, a fingerprint and a serial to the deny list, keeping what it held', async () => {
    // Prepare
    const ssm = new MemorySsm()
    ssm.seed(DENY_PARAM, JSON.stringify({ version: 1, devices: ['dev_0'], retiredKeyVersions: [2] }), 'String')
    const upper = fingerprint.toUpperCase().match(/../g)!.join(':')

    // Act
    const result = await run(['revoke', '--certificate', join(dir, 'dev_1.pem'), '--certificate', `sha256:${upper}`, '--certificate', 'serial:00:AB:12'], { env: ENV, ssm, thinger: new MemoryThinger() })
    const again = await run(['revoke', '--certificate', join(dir, 'dev_1.der')], { env: ENV, ssm })

    // Assess
    expect(result.code).toBe(0)
    expect(serial).toBe('ab12')
    expect(JSON.parse(ssm.parameters.get(DENY_PARAM)!.value)).toEqual({ version: 1, devices: ['dev_0'], retiredKeyVersions: [2], certificates: [`serial:ab12`, `sha256:${fingerprint}`] })
    expect(result.stdout).toContain(`certificate sha256:${fingerprint} (${join(dir, 'dev_1.pem')}, serial ab12) of fleet "default": added to the deny list ${DENY_PARAM}; refused with 403 certificate_revoked`)
    expect(again.stdout).toContain('already in the deny list')
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
    [['revoke', '--certificate', 'ab12'], 'not a file, sha256:<fingerprint> or serial:<hex>'],
    [['revoke', '--certificate', 'sha256:abcd'], 'not a file, sha256:<fingerprint> or serial:<hex>'],
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
