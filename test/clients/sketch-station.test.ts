import { spawnSync } from 'node:child_process'
import type { KeyObject } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Issued, issue, localCa, newCa, newKeyPair, p256Scalar } from '../support/pki.js'

// Two C++ builds linked with mbedTLS on a busy machine: a limit for a hung compiler, not a speed assertion.
const BUILD_LIMIT_MS = 180_000
const MAC = '246f28a1b2c3'
const toolchain = spawnSync('sh', ['-c', 'echo "#include <mbedtls/x509_crt.h>" | c++ -x c++ -E - >/dev/null'], { stdio: 'ignore' }).status === 0
if (!toolchain && process.env.REQUIRE_C_CLIENT === '1') throw new Error('the sketch run on the host is required (REQUIRE_C_CLIENT=1) but a C++ compiler or the mbedTLS headers are missing')

/** What set-x509-key takes: the private scalar in base64 (what the README's station script sends). */
const scalar = (key: KeyObject): string => p256Scalar(key).toString('base64')

/**
 * The example sketch built with PROVISIONING_X509 and run on the host (extras/host-check/station.cpp),
 * played by a factory station over its serial commands: what it accepts, what it refuses with which
 * code, and what NVS holds after a reboot. The request a device built this way sends is the C core's
 * (test/e2e/c-client-x509.test.ts runs the same core against the service).
 */
describe.skipIf(!toolchain)('Sketch: the X.509 factory commands (set-x509-key, set-cert), run on the host', () => {
  let dir: string
  let ca: Issued

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sketch-station-'))
    const make = spawnSync('make', ['-C', 'clients/c', 'sketch-station', `BUILD_DIR=${dir}`], { encoding: 'utf8', timeout: BUILD_LIMIT_MS })
    if (make.status !== 0) throw new Error(`make sketch-station failed:\n${make.stderr}`)
    ca = localCa()
  }, BUILD_LIMIT_MS)

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  /** Boots the sketch on the NVS of `board`, sends the lines, returns the boot line and the answers. */
  function station(board: string, lines: string[], variant: 'x509' | 'x509-mac' = 'x509') {
    const run = spawnSync(join(dir, `sketch-station-${variant}`), [join(dir, `${board}.nvs`), MAC], { input: lines.map((line) => `${line}\n`).join(''), encoding: 'utf8' })
    expect(run.stderr).toBe('')
    expect(run.status).toBe(0)
    const out = run.stdout.trimEnd().split('\n')
    return { boot: out.filter((line) => line.startsWith('[PROVISION]')), answers: out.filter((line) => !line.startsWith('[PROVISION]')) }
  }
  const nvs = (board: string) => new Map(readFileSync(join(dir, `${board}.nvs`), 'utf8').trimEnd().split('\n').map((line) => line.split(' ') as [string, string]))
  const b64 = (der: Buffer) => der.toString('base64')

  it('takes the key, then a certificate of the fleet CA for it, and provisions under the certificate’s common name after a reboot', async () => {
    // Prepare
    const keys = newKeyPair()
    const device = await issue(ca, 'x5_246f28a1b2c3', { keys })

    // Act
    const first = station('good', ['id', `set-x509-key ${scalar(keys.privateKey)}`, `set-cert ${b64(device.der)}`, 'id'])
    const reboot = station('good', ['id'])

    // Assess
    expect(first.boot).toEqual(['[PROVISION] device (none), key absent, certificate absent: write the key and certificate at the factory (send: set-x509-key KEY, then set-cert CERT [CHAIN]), credentials none'])
    expect(first.answers).toEqual([
      'device=', 'mac=24:6f:28:a1:b2:c3', 'key=absent', 'certificate=absent', 'provisioned=no',
      'ok',
      'ok',
      'device=x5_246f28a1b2c3', 'mac=24:6f:28:a1:b2:c3', 'key=present', 'certificate=present', 'provisioned=no',
    ])
    expect(reboot.boot).toEqual(['[PROVISION] device x5_246f28a1b2c3, key present, certificate present, credentials none'])
    expect(reboot.answers).toEqual(['device=x5_246f28a1b2c3', 'mac=24:6f:28:a1:b2:c3', 'key=present', 'certificate=present', 'provisioned=no'])
    expect(nvs('good').get('x509_key')).toBe(`-${p256Scalar(keys.privateKey).toString('hex')}`)
    expect(nvs('good').get('x509_cert')).toBe(`-${device.der.toString('hex')}`)
  })

  it('refuses each bad key or certificate with its code, stores nothing of it, and never prints the key', async () => {
    // Prepare
    const keys = newKeyPair()
    const order = Buffer.from('ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551', 'hex')
    const otherKey = await issue(ca, 'x5_246f28a1b2c3')
    const badId = await issue(ca, 'x5 246f28a1b2c3!', { keys })
    const otherCa = await newCa()
    const strangerChain = await newCa()
    const unrelated = await issue(otherCa, 'x5_246f28a1b2c3', { keys })
    const large = await issue(ca, 'x5_246f28a1b2c3', { keys, dnsNames: Array.from({ length: 82 }, (_, i) => `name-${i}.devices.example.com`) })

    // Act
    const { answers } = station('bad', [
      `set-cert ${b64(otherKey.der)}`,
      'set-x509-key AAAA',
      `set-x509-key ${Buffer.alloc(32).toString('base64')}`,
      `set-x509-key ${order.toString('base64')}`,
      `set-x509-key ${Buffer.alloc(33, 1).toString('base64')}`,
      'set-key QEqC1wQ1Pc4unBUm3FJ40Po3zluFCIMnst8SMStN2dA=',
      `set-x509-key ${scalar(keys.privateKey)}`,
      `set-x509-key ${scalar(newKeyPair().privateKey)}`,
      `set-cert ${b64(otherKey.der)}`,
      'set-cert not*base64',
      `set-cert ${b64(Buffer.from('not a certificate'))}`,
      `set-cert ${b64(badId.der)}`,
      `set-cert ${b64(unrelated.der)} ${b64(strangerChain.der)}`,
      `set-cert ${b64(unrelated.der)} ${b64(Buffer.from('not a certificate'))}`,
      `set-cert ${b64(large.der)}`,
      `set-cert ${'A'.repeat(4100)}`,
      'id',
    ])

    // Assess
    expect(large.der.length).toBeGreaterThan(2816)
    expect(answers).toEqual([
      'error=no_key',
      'error=invalid_key',
      'error=invalid_key',
      'error=invalid_key',
      'error=invalid_key',
      'error=x509_device (send: set-x509-key KEY, then set-cert CERT [CHAIN])',
      'ok',
      'error=key_already_set',
      'error=key_mismatch',
      'error=invalid_certificate',
      'error=invalid_certificate',
      'error=certificate_device_id',
      'error=chain_mismatch',
      'error=invalid_chain',
      'error=certificate_too_large',
      'error=line_too_long',
      'device=', 'mac=24:6f:28:a1:b2:c3', 'key=present', 'certificate=absent', 'provisioned=no',
    ])
    expect([...nvs('bad').keys()]).toEqual(['x509_key'])
    expect(nvs('bad').get('x509_key')).toBe(`-${p256Scalar(keys.privateKey).toString('hex')}`)
  })

  it('takes an intermediate beside the certificate, and a renewed certificate for the same key replaces both', async () => {
    // Prepare
    const keys = newKeyPair()
    const intermediateKeys = newKeyPair()
    const intermediate = await issue(ca, 'Factory line 2', { keys: intermediateKeys, ca: true, keyUsage: ['keyCertSign'], extKeyUsage: undefined })
    const device = await issue(intermediate, 'x5_246f28a1b2c3', { keys })
    const renewed = await issue(ca, 'x5_246f28a1b2c3', { keys })

    // Act
    const chained = station('chain', [`set-x509-key ${scalar(keys.privateKey)}`, `set-cert ${b64(device.der)} ${b64(intermediate.der)}`])
    const stored = nvs('chain')
    const renewal = station('chain', [`set-cert ${b64(renewed.der)}`, 'id'])

    // Assess
    expect(chained.answers).toEqual(['ok', 'ok'])
    expect(stored.get('x509_chain')).toBe(`-${intermediate.der.toString('hex')}`)
    expect(renewal.answers).toEqual(['ok', 'device=x5_246f28a1b2c3', 'mac=24:6f:28:a1:b2:c3', 'key=present', 'certificate=present', 'provisioned=no'])
    expect(nvs('chain').get('x509_cert')).toBe(`-${renewed.der.toString('hex')}`)
    expect(nvs('chain').has('x509_chain')).toBe(false)
  })

  it('checks at boot what a factory wrote by other means (an NVS image): a certificate of another key is reported, not used', async () => {
    // Prepare
    const keys = newKeyPair()
    const other = await issue(ca, 'x5_246f28a1b2c3')
    const d = p256Scalar(keys.privateKey)
    writeFileSync(join(dir, 'image.nvs'), `x509_cert -${other.der.toString('hex')}\nx509_key -${d.toString('hex')}\n`)

    // Act
    const { boot, answers } = station('image', ['id'])

    // Assess
    expect(boot).toEqual(['[PROVISION] device (none), key present, certificate key_mismatch: write the key and certificate at the factory (send: set-x509-key KEY, then set-cert CERT [CHAIN]), credentials none'])
    expect(answers).toEqual(['device=', 'mac=24:6f:28:a1:b2:c3', 'key=present', 'certificate=key_mismatch', 'provisioned=no'])
  })

  it('with PROVISIONING_X509_MAC_DEVICE_ID keeps the MAC’s device ID and takes only a certificate that names it (CN or DNS name)', async () => {
    // Prepare
    const keys = newKeyPair()
    const otherDevice = await issue(ca, 'x5_246f28a1b2c3', { keys })
    const byDnsName = await issue(ca, 'line 2 board', { keys, dnsNames: ['esp32_246f28a1b2c3'] })

    // Act
    const { boot, answers } = station('mac', ['id', `set-x509-key ${scalar(keys.privateKey)}`, `set-cert ${b64(otherDevice.der)}`, `set-cert ${b64(byDnsName.der)}`, 'id'], 'x509-mac')

    // Assess
    expect(boot[0]).toMatch(/^\[PROVISION\] device esp32_246f28a1b2c3, key absent, certificate absent: /)
    expect(answers).toEqual([
      'device=esp32_246f28a1b2c3', 'mac=24:6f:28:a1:b2:c3', 'key=absent', 'certificate=absent', 'provisioned=no',
      'ok',
      'error=certificate_device_mismatch',
      'ok',
      'device=esp32_246f28a1b2c3', 'mac=24:6f:28:a1:b2:c3', 'key=present', 'certificate=present', 'provisioned=no',
    ])
  })
})
