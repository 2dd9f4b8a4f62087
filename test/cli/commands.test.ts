import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { decodeFleetKey, deriveDeviceKey } from '../../lib/attestation/keys.js'
import { MemorySsm, MemoryThinger, run } from './fakes.js'

const VECTOR_FLEET_KEY = 'dGhpbmdlci1wcm92aXNpb25lci10ZXN0LWZsZWV0LWtleS0wMDE='
const VECTOR_DEVICE = 'esp32_a1b2c3d4e5f6'
const VECTOR_DEVICE_KEY = 'slJ/UknDHHGumvra+RjeJHZq2Cp87+EN3n7coIJFlxA='
const TOKEN = 'thinger-token-that-must-never-be-printed'
// No fleets file: the settings of the first release describe the `default` fleet.
const ENV = {
  FLEETS_FILE: '',
  STAGE: 'prod',
  THINGER_USERNAME: 'acme',
  FLEET_KEY_VERSIONS: '1,2',
  SSM_CACHE_SECONDS: '60',
}
const KEY_PARAM = '/thinger-provisioner/prod/fleet-key'
const DENY_PARAM = '/thinger-provisioner/prod/default-deny-list'
const TOKEN_PARAM = '/thinger-provisioner/prod/thinger-token'

describe('Command: fleet-key create', () => {
  it('stores a random key of 32 bytes as a SecureString and does not print it', async () => {
    // Prepare
    const ssm = new MemorySsm()

    // Act
    const result = await run(['fleet-key', 'create'], { env: ENV, ssm })

    // Assess
    const stored = ssm.parameters.get(KEY_PARAM)!
    expect(result.code).toBe(0)
    expect(stored.type).toBe('SecureString')
    expect(decodeFleetKey(stored.value, 'test')).toHaveLength(32)
    expect(result.stdout).toContain(`created SecureString ${KEY_PARAM}`)
    expect(result.stdout + result.stderr).not.toContain(stored.value)
  })

  it('prints the key, and only it, on stdout with --print', async () => {
    // Prepare
    const ssm = new MemorySsm()

    // Act
    const result = await run(['fleet-key', 'create', '--print', '--bytes', '48'], { env: ENV, ssm })

    // Assess
    expect(result.stdout).toBe(`${ssm.parameters.get(KEY_PARAM)!.value}\n`)
    expect(Buffer.from(result.stdout.trim(), 'base64')).toHaveLength(48)
    expect(result.stderr).toContain('created SecureString')
  })

  it('never replaces an existing key', async () => {
    // Prepare
    const ssm = new MemorySsm()
    ssm.seed(KEY_PARAM, VECTOR_FLEET_KEY)

    // Act
    const result = await run(['fleet-key', 'create'], { env: ENV, ssm })

    // Assess
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('already exists; it was left as it is [already_exists]')
    expect(ssm.parameters.get(KEY_PARAM)!.value).toBe(VECTOR_FLEET_KEY)
  })

  it('creates key version N beside version 1 and tells to list it when the function does not read it yet', async () => {
    // Prepare
    const ssm = new MemorySsm()

    // Act
    const listed = await run(['fleet-key', 'create', '--key-version', '2'], { env: ENV, ssm })
    const unlisted = await run(['fleet-key', 'create', '--key-version', '3', '--kms-key-id', 'alias/fleet'], { env: ENV, ssm })

    // Assess
    expect(ssm.parameters.has(`${KEY_PARAM}-v2`)).toBe(true)
    expect(ssm.parameters.get(`${KEY_PARAM}-v3`)?.kmsKeyId).toBe('alias/fleet')
    expect(listed.stderr).toBe('')
    expect(unlisted.stderr).toContain('set FLEET_KEY_VERSIONS=1,2,3 and redeploy')
  })

  it('names the fleets-file field to edit when the fleet comes from a file', async () => {
    // Prepare
    const ssm = new MemorySsm()

    // Act
    const result = await run(['fleet-key', 'create', '--fleet', 'factory', '--key-version', '3'], { env: { FLEETS_FILE: 'test/e2e/fixtures/cli-fleets.yml' }, ssm })

    // Assess
    expect(result.code).toBe(0)
    expect(ssm.parameters.has('/thinger-provisioner/cli-e2e/factory/fleet-key-v3')).toBe(true)
    expect(result.stderr).toContain('keyVersions: [1, 2, 3] in fleet "factory" of the fleets file')
  })

  it.each([
    [['fleet-key', 'create', '--fleet', 'nope'], 'no fleet "nope"'],
    [['fleet-key', 'create', '--bytes', '16'], "option '--bytes <n>' argument '16' is invalid"],
    [['fleet-key', 'create', '--key-version', '0'], 'must be a whole number from 1 to 999'],
  ])('exits 2 on a usage error: %j', async (argv, message) => {
    // Act
    const result = await run(argv, { env: ENV })

    // Assess
    expect(result.code).toBe(2)
    expect(result.stderr).toContain(message)
  })

  it('exits 2 naming an invalid setting', async () => {
    // Act
    const result = await run(['fleet-key', 'create'], { env: { ...ENV, FLEET_KEY_PARAM: 'no-slash' } })

    // Assess
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('setting FLEET_KEY_PARAM: must be an SSM parameter path starting with /')
  })
})

describe('Command: keys derive', () => {
  let dir: string

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'keys-derive-'))
  })

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true })
  })

  it('prints one device key, read from the fleet key in SSM, without needing Thinger settings', async () => {
    // Prepare
    const ssm = new MemorySsm()
    ssm.seed(KEY_PARAM, VECTOR_FLEET_KEY)

    // Act
    const result = await run(['keys', 'derive', '--device', VECTOR_DEVICE, '--key-version', '1'], { env: { ...ENV, THINGER_USERNAME: undefined }, ssm })

    // Assess
    expect(result.code).toBe(0)
    expect(result.stdout).toBe(`${VECTOR_DEVICE_KEY}\n`)
    expect(result.stderr).not.toContain(VECTOR_FLEET_KEY)
  })

  it('derives from the highest listed key version by default and says what the device must send', async () => {
    // Prepare
    const ssm = new MemorySsm()
    const v2 = Buffer.alloc(32, 2).toString('base64')
    ssm.seed(KEY_PARAM, VECTOR_FLEET_KEY)
    ssm.seed(`${KEY_PARAM}-v2`, v2)

    // Act
    const result = await run(['keys', 'derive', '--device', VECTOR_DEVICE], { env: ENV, ssm })

    // Assess
    expect(result.stdout).toBe(`${deriveDeviceKey(Buffer.alloc(32, 2), VECTOR_DEVICE).toString('base64')}\n`)
    expect(result.stderr).toContain('"keyVersion": 2')
  })

  it('refuses a retired key version', async () => {
    // Prepare
    const ssm = new MemorySsm()
    ssm.seed(KEY_PARAM, VECTOR_FLEET_KEY)
    ssm.seed(DENY_PARAM, '{"version":1,"devices":[],"retiredKeyVersions":[1]}', 'String')

    // Act
    const result = await run(['keys', 'derive', '--device', VECTOR_DEVICE, '--key-version', '1'], { env: ENV, ssm })

    // Assess
    expect(result.code).toBe(1)
    expect(result.stdout).toBe('')
    expect(result.stderr).toContain('key version 1 of fleet "default" is retired')
  })

  it('says how to create a missing key version', async () => {
    // Act
    const result = await run(['keys', 'derive', '--device', VECTOR_DEVICE, '--key-version', '2'], { env: ENV })

    // Assess
    expect(result.code).toBe(1)
    expect(result.stderr).toContain(`SSM parameter ${KEY_PARAM}-v2 (create it with \`fleet-key create --fleet default --key-version 2\`)`)
  })

  it('reads the fleet key from a file on an air-gapped station, with no SSM at all', async () => {
    // Prepare
    writeFileSync(join(dir, 'fleet-key.b64'), `${VECTOR_FLEET_KEY}\n`)
    writeFileSync(join(dir, 'devices.csv'), `device\n${VECTOR_DEVICE}\n`)
    const noSsm = () => {
      throw new Error('SSM must not be used')
    }

    // Act
    const result = await run(
      ['keys', 'derive', '--csv', join(dir, 'devices.csv'), '--out', join(dir, 'keys.csv'), '--fleet-key-file', join(dir, 'fleet-key.b64'), '--key-version', '1'],
      { env: ENV, overrides: { ssm: noSsm } },
    )

    // Assess
    expect(result.code).toBe(0)
    expect(readFileSync(join(dir, 'keys.csv'), 'utf8')).toBe(`device,device_key,key_version\n${VECTOR_DEVICE},${VECTOR_DEVICE_KEY},1\n`)
    expect(result.stderr).toMatch(/derived 1 device keys \(key version 1 of fleet "default"\) in \d+\.\d s: [\d,]+ rows\/s/)
  })

  it('draws progress on a terminal and always ends with the rate', async () => {
    // Prepare
    writeFileSync(join(dir, 'fleet-key.b64'), VECTOR_FLEET_KEY)
    writeFileSync(join(dir, 'devices.csv'), ['device', ...Array.from({ length: 20_000 }, (_, i) => `dev_${i}`)].join('\n'))
    let clock = 0

    // Act
    const result = await run(['keys', 'derive', '--csv', join(dir, 'devices.csv'), '--out', join(dir, 'keys.csv'), '--fleet-key-file', join(dir, 'fleet-key.b64')], {
      env: ENV,
      tty: true,
      overrides: { now: () => (clock += 50) },
    })

    // Assess
    expect(result.code).toBe(0)
    expect(result.stderr).toMatch(/\r\x1b\[2K\[[#-]+\] +\d+%  [\d,]+ rows/)
    expect(result.stderr).toMatch(/\r\x1b\[2Kderived 20,000 device keys/)
  })

  it('exits 2 when --device is outside the fleet’s pattern, and when both modes are asked for', async () => {
    // Act
    const outside = await run(['keys', 'derive', '--device', 'esp32_1'], { env: { ...ENV, DEVICE_ID_PATTERN: 'gh_[0-9a-f]{12}' } })
    const both = await run(['keys', 'derive', '--device', 'a', '--csv', 'x.csv'], { env: ENV })

    // Assess
    expect(outside.code).toBe(2)
    expect(outside.stderr).toContain('does not match the fleet\'s devicePattern')
    expect(both.code).toBe(2)
    expect(both.stderr).toContain("option '--device <id>' cannot be used with option '--csv <file>'")
  })
})

describe('Command: revoke and unrevoke', () => {
  const setup = () => {
    const ssm = new MemorySsm()
    ssm.seed(TOKEN_PARAM, TOKEN)
    const thinger = new MemoryThinger()
    thinger.devices.set('dev_1', { device: 'dev_1', type: 'Generic', enabled: true })
    return { ssm, thinger }
  }

  it('adds the device to the deny list, disables it on Thinger.io, and says when it takes effect', async () => {
    // Prepare
    const { ssm, thinger } = setup()

    // Act
    const result = await run(['revoke', '--device', 'dev_1'], { env: ENV, ssm, thinger })

    // Assess
    expect(result.code).toBe(0)
    expect(JSON.parse(ssm.parameters.get(DENY_PARAM)!.value)).toEqual({ version: 1, devices: ['dev_1'], retiredKeyVersions: [] })
    expect(ssm.parameters.get(DENY_PARAM)!.type).toBe('String')
    expect(thinger.devices.get('dev_1')!.enabled).toBe(false)
    expect(thinger.tokens).toEqual([TOKEN])
    expect(result.stdout).toContain('within the function\'s SSM cache time (SSM_CACHE_SECONDS, 60 s in this environment)')
    expect(result.stdout).toContain('dev_1: disabled on Thinger.io')
    expect(result.stdout + result.stderr).not.toContain(TOKEN)
  })

  it('is idempotent, and fine with devices missing on Thinger.io', async () => {
    // Prepare
    const { ssm, thinger } = setup()
    await run(['revoke', '--device', 'dev_1'], { env: ENV, ssm, thinger })

    // Act
    const result = await run(['revoke', '--device', 'dev_1', '--device', 'dev_gone'], { env: ENV, ssm, thinger })

    // Assess
    expect(result.code).toBe(0)
    expect(result.stdout).toContain('device dev_1 of fleet "default": already in the deny list')
    expect(result.stdout).toContain('dev_gone: not on Thinger.io, nothing to disable')
    expect(JSON.parse(ssm.parameters.get(DENY_PARAM)!.value).devices).toEqual(['dev_1', 'dev_gone'])
  })

  it('deletes the device on Thinger.io with --delete, with the token of --token-param, once the function’s cache has the new deny list', async () => {
    // Prepare
    const { ssm, thinger } = setup()
    ssm.seed('/ops/admin-token', 'admin-token-value')

    // Act
    const result = await run(['revoke', '--device', 'dev_1', '--delete', '--token-param', '/ops/admin-token'], { env: { ...ENV, SSM_CACHE_SECONDS: '60' }, ssm, thinger })

    // Assess: disabled at once, deleted after SSM_CACHE_SECONDS and the function's timeout
    expect(result.code).toBe(0)
    expect(thinger.devices.has('dev_1')).toBe(false)
    expect(thinger.tokens).toEqual(['admin-token-value'])
    expect(result.stdout).toBe(
      'device dev_1 of fleet "default": added to the deny list /thinger-provisioner/prod/default-deny-list; refused with 403 device_revoked within the function\'s SSM cache time (SSM_CACHE_SECONDS, 60 s in this environment)\n' +
        'dev_1: disabled on Thinger.io\ndev_1: deleted on Thinger.io\n',
    )
    expect(result.sleptMs).toEqual([70_000])
    expect(result.stderr).toContain('waiting 70 s before deleting')
  })

  it('keeps the deny list updated and says to run again when Thinger.io refuses', async () => {
    // Prepare
    const { ssm, thinger } = setup()
    thinger.failWith = 403

    // Act
    const result = await run(['revoke', '--device', 'dev_1'], { env: ENV, ssm, thinger })

    // Assess
    expect(result.code).toBe(1)
    expect(JSON.parse(ssm.parameters.get(DENY_PARAM)!.value).devices).toEqual(['dev_1'])
    expect(result.stderr).toContain('answered 403: the token is refused or lacks the permission for this call; the deny list is already updated; run `revoke` again')
  })

  it('unrevokes: removes the device from the list and enables it again', async () => {
    // Prepare
    const { ssm, thinger } = setup()
    await run(['revoke', '--device', 'dev_1'], { env: ENV, ssm, thinger })

    // Act
    const result = await run(['unrevoke', '--device', 'dev_1'], { env: ENV, ssm, thinger })

    // Assess
    expect(result.code).toBe(0)
    expect(JSON.parse(ssm.parameters.get(DENY_PARAM)!.value).devices).toEqual([])
    expect(thinger.devices.get('dev_1')!.enabled).toBe(true)
    expect(result.stdout).toContain('dev_1: enabled again on Thinger.io')
  })

  it('retires a key version without touching Thinger.io, and refuses to retire the last one without --force', async () => {
    // Prepare
    const { ssm, thinger } = setup()

    // Act
    const retired = await run(['revoke', '--key-version', '1'], { env: ENV, ssm, thinger })
    const last = await run(['revoke', '--key-version', '2'], { env: ENV, ssm, thinger })
    const restored = await run(['unrevoke', '--key-version', '1'], { env: ENV, ssm, thinger })

    // Assess
    expect(retired.code).toBe(0)
    expect(retired.stdout).toContain('every device flashed with it is refused with 403 key_revoked')
    expect(last.code).toBe(2)
    expect(last.stderr).toContain('leaves fleet "default" no key version')
    expect(restored.code).toBe(0)
    expect(JSON.parse(ssm.parameters.get(DENY_PARAM)!.value).retiredKeyVersions).toEqual([])
    expect(thinger.tokens).toEqual([])
  })

  it.each([
    [['revoke'], 'revoke needs one of --device, --key-version or --certificate'],
    [['revoke', '--device', 'a', '--key-version', '1'], 'revoke takes one of --device, --key-version or --certificate, not several'],
    [['unrevoke', '--device', 'a', '--key-version', '1'], 'unrevoke takes one of --device, --key-version or --certificate, not several'],
    [['revoke', '--key-version', '1', '--delete'], '--delete applies to --device only'],
    [['revoke', '--device', 'a b'], 'is not a Thinger.io device ID'],
  ])('exits 2 on %j', async (argv, message) => {
    // Act
    const result = await run(argv, { env: ENV })

    // Assess
    expect(result.code).toBe(2)
    expect(result.stderr).toContain(message)
  })

  it('needs THINGER_USERNAME for devices', async () => {
    // Act
    const result = await run(['revoke', '--device', 'dev_1'], { env: { ...ENV, THINGER_USERNAME: undefined } })

    // Assess
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('setting THINGER_USERNAME: is required')
  })
})

describe('Command: status', () => {
  it('shows the Thinger.io device, its provisioning record and its deny-list state', async () => {
    // Prepare
    const ssm = new MemorySsm()
    ssm.seed(TOKEN_PARAM, TOKEN)
    ssm.seed(DENY_PARAM, '{"version":1,"devices":["dev_1"],"retiredKeyVersions":[1]}', 'String')
    const thinger = new MemoryThinger()
    thinger.devices.set('dev_1', { device: 'dev_1', type: 'Generic', enabled: false, created: 1_764_150_000_000 })
    thinger.properties.set('dev_1/provisioning', { fleet: 'default', provisionedAt: '2025-11-26T09:40:00.000Z', lastTimestamp: 1_764_150_000 })

    // Act
    const json = await run(['status', '--device', 'dev_1', '--json'], { env: ENV, ssm, thinger })
    const text = await run(['status', '--device', 'dev_1'], { env: ENV, ssm, thinger })

    // Assess
    expect(JSON.parse(json.stdout)).toEqual({
      fleet: 'default',
      device: 'dev_1',
      revoked: true,
      revokedIn: ['default'],
      denyListParam: DENY_PARAM,
      legacyCertificateEntries: [],
      keyVersions: [1, 2],
      retiredKeyVersions: [1],
      thinger: { device: 'dev_1', type: 'Generic', enabled: false, created: 1_764_150_000_000 },
      provisioning: { fleet: 'default', provisionedAt: '2025-11-26T09:40:00.000Z', lastTimestamp: 1_764_150_000 },
    })
    expect(text.stdout).toContain('deny list     REVOKED')
    expect(text.stdout).toContain('key versions  1 (retired), 2')
    expect(text.stdout).toContain('thinger.io    DISABLED, type Generic')
    expect(text.stdout).toContain('"lastTimestamp":1764150000')
  })

  it.each([
    ['factory', 'none (the fleet takes certificates of its CA)'],
    ['workshop', '1'],
  ])('says how fleet %s proves itself in its key versions line', async (fleet, line) => {
    // Prepare
    const ssm = new MemorySsm()
    ssm.seed(TOKEN_PARAM, TOKEN)

    // Act
    const text = await run(['status', '--fleet', fleet, '--device', fleet === 'factory' ? 'x5_kit0001' : 'ws_kit0001'], { env: { ...ENV, FLEETS_FILE: 'local/fleets.yml' }, ssm, thinger: new MemoryThinger() })

    // Assess
    expect(text.stderr).toBe('')
    expect(text.stdout).toContain(`key versions  ${line}\n`)
    expect(text.stdout).not.toContain('claim only')
  })

  it('shows a device revoked in another fleet, which the function refuses whichever fleet asks', async () => {
    // Prepare: fleets whose IDs overlap (test/e2e/fixtures/security-fleets.yml)
    const ssm = new MemorySsm()
    ssm.seed(TOKEN_PARAM, TOKEN)
    ssm.seed('/thinger-provisioner/local/security/alpha-deny-list', '{"version":1,"devices":["dev_1"],"retiredKeyVersions":[]}', 'String')
    const env = { ...ENV, FLEETS_FILE: 'test/e2e/fixtures/security-fleets.yml' }

    // Act
    const json = await run(['status', '--fleet', 'beta', '--device', 'dev_1', '--json'], { env, ssm, thinger: new MemoryThinger() })
    const text = await run(['status', '--fleet', 'beta', '--device', 'dev_1'], { env, ssm, thinger: new MemoryThinger() })

    // Assess
    expect(JSON.parse(json.stdout)).toMatchObject({ fleet: 'beta', revoked: false, revokedIn: ['alpha'] })
    expect(text.stdout).toContain('not revoked (/thinger-provisioner/local/security/beta-deny-list); REVOKED in fleet alpha, so refused in every fleet of this Thinger.io account')
  })

  it('names the fleet’s legacy sha256: certificate entries, which a re-encoded twin passes', async () => {
    // Prepare
    const ssm = new MemorySsm()
    ssm.seed(TOKEN_PARAM, TOKEN)
    ssm.seed(DENY_PARAM, JSON.stringify({ version: 1, devices: [], retiredKeyVersions: [], certificates: [`sha256:${'ab'.repeat(32)}`, 'serial:01'] }), 'String')

    // Act
    const json = await run(['status', '--device', 'dev_1', '--json'], { env: ENV, ssm, thinger: new MemoryThinger() })
    const text = await run(['status', '--device', 'dev_1'], { env: ENV, ssm, thinger: new MemoryThinger() })

    // Assess
    expect(JSON.parse(json.stdout).legacyCertificateEntries).toEqual([`sha256:${'ab'.repeat(32)}`])
    expect(text.stdout).toContain("certificates  1 legacy sha256: entry in the fleet's deny list miss the same certificate re-encoded: run revoke --fleet default --certificate FILE again for each")
  })

  it('counts a device revoked in a fleet of another Thinger.io account as not revoked there', async () => {
    // Prepare
    const dir = mkdtempSync(join(tmpdir(), 'status-accounts-'))
    const fleetsFile = join(dir, 'fleets.yml')
    writeFileSync(fleetsFile, `version: 1
fleets:
  own:
    proof: [claim]
    claimParam: /acme/own/claim
  mine_too:
    proof: [claim]
    claimParam: /acme/mine/claim
  customer:
    proof: [claim]
    claimParam: /acme/customer/claim
    thinger: { username: customer_b, tokenParam: /acme/customer/thinger-token }
`)
    const ssm = new MemorySsm()
    ssm.seed(TOKEN_PARAM, TOKEN)
    ssm.seed('/acme/customer/thinger-token', TOKEN)
    ssm.seed('/acme/customer/customer-deny-list', '{"version":1,"devices":["dev_1"],"retiredKeyVersions":[]}', 'String')
    ssm.seed('/acme/mine/mine_too-deny-list', '{"version":1,"devices":["dev_2"],"retiredKeyVersions":[]}', 'String')
    const env = { ...ENV, FLEETS_FILE: fleetsFile }

    // Act
    const other = await run(['status', '--fleet', 'own', '--device', 'dev_1', '--json'], { env, ssm, thinger: new MemoryThinger() })
    const same = await run(['status', '--fleet', 'own', '--device', 'dev_2', '--json'], { env, ssm, thinger: new MemoryThinger() })

    // Assess
    expect(JSON.parse(other.stdout)).toMatchObject({ revoked: false, revokedIn: [] })
    expect(JSON.parse(same.stdout)).toMatchObject({ revoked: false, revokedIn: ['mine_too'] })
  })

  it('escapes control, C1 and bidi characters that a device or Thinger.io stored, in text and JSON', async () => {
    // Prepare: what meta could store before the function refused it
    const ssm = new MemorySsm()
    ssm.seed(TOKEN_PARAM, TOKEN)
    const thinger = new MemoryThinger()
    const hostile = 'a\u001b[2J\u009b31m\u202egnp.exe\u200b<b>'
    thinger.devices.set('dev_1', { device: 'dev_1', type: 'Generic\u001b]0;x\u0007', enabled: true, name: hostile })
    thinger.properties.set('dev_1/provisioning', { fleet: 'default', meta: { site: hostile } })

    // Act
    const json = await run(['status', '--device', 'dev_1', '--json'], { env: ENV, ssm, thinger })
    const text = await run(['status', '--device', 'dev_1'], { env: ENV, ssm, thinger })

    // Assess
    for (const output of [json.stdout, text.stdout]) {
      expect(output).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u200b\u202e]/)
      expect(output).toContain('\\u202e')
    }
    expect(JSON.parse(json.stdout).provisioning.meta.site).toBe(hostile)
    expect(text.stdout).toContain('type Generic\\u001b]0;x\\u0007')
  })

  it('says so when the device does not exist', async () => {
    // Prepare
    const ssm = new MemorySsm()
    ssm.seed(TOKEN_PARAM, TOKEN)

    // Act
    const result = await run(['status', '--device', 'dev_9'], { env: ENV, ssm })

    // Assess
    expect(result.code).toBe(0)
    expect(result.stdout).toContain('thinger.io    no such device')
    expect(result.stdout).toContain('provisioning  no record')
  })

  it('fails clearly when the token parameter is missing', async () => {
    // Act
    const result = await run(['status', '--device', 'dev_9'], { env: ENV })

    // Assess
    expect(result.code).toBe(1)
    expect(result.stderr).toContain(`the Thinger.io token parameter ${TOKEN_PARAM} (THINGER_TOKEN_PARAM) does not exist`)
  })
})
