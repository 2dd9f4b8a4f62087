import { execFile, spawnSync } from 'node:child_process'
import type { KeyObject } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { newDeviceId } from '../support/device.js'
import { emulatorClient } from '../support/emulator-client.js'
import { issue, type Issued, localCa, newCa, newKeyPair } from '../support/pki.js'

const run = promisify(execFile)
const CLIENT = 'clients/c/build/provision'
/** The same client built against mbedTLS 3.6 (`make -C clients/c mbedtls3`), the version of ESP-IDF 5. */
const CLIENT_MBEDTLS3 = 'clients/c/build/mbedtls3/provision'
if (process.env.REQUIRE_MBEDTLS3 === '1' && !existsSync(CLIENT_MBEDTLS3)) throw new Error(`REQUIRE_MBEDTLS3=1 but ${CLIENT_MBEDTLS3} is missing: run make -C clients/c mbedtls3`)
if (!existsSync(CLIENT_MBEDTLS3)) console.warn(`SKIPPED: the C client against mbedTLS 3 (${CLIENT_MBEDTLS3}; make -C clients/c mbedtls3 builds it)`)
const clients: Array<[string, string]> = [['mbedTLS 2.28 (the host’s)', CLIENT], ...(existsSync(CLIENT_MBEDTLS3) ? [['mbedTLS 3.6', CLIENT_MBEDTLS3] as [string, string]] : [])]
const HOUR_MS = 3600_000
const toolchain = spawnSync('make', ['-C', 'clients/c', '-q', 'all'], { stdio: 'ignore' }).status !== 2 && spawnSync('sh', ['-c', 'echo "#include <mbedtls/x509_crt.h>\n#include <curl/curl.h>" | cc -E - >/dev/null'], { stdio: 'ignore' }).status === 0

if (!toolchain) {
  if (process.env.REQUIRE_C_CLIENT === '1') throw new Error('the C client is required (REQUIRE_C_CLIENT=1) but make, a C compiler, mbedTLS or libcurl headers are missing')
  console.warn('SKIPPED: the C client X.509 suite needs make, a C compiler and the mbedTLS and libcurl headers (Debian: libmbedtls-dev libcurl4-openssl-dev)')
}

const keyPem = (key: KeyObject, type: 'pkcs8' | 'sec1' = 'pkcs8') => key.export({ type, format: 'pem' }) as string

/**
 * The Linux C client with an X.509 certificate and its P-256 key (--cert/--key) against the
 * running stack's `factory` fleet: it signs with the core's default P-256 key, opens the answer
 * sealed to that key (ECDH, envelope mode 3) and saves a credential that logs in.
 */
describe.skipIf(!toolchain)('The C client with an X.509 certificate (--cert/--key) against the running service', () => {
  const serviceUrl = inject('provisionUrl').replace(/\/v1\/provision$/, '')
  const emulator = emulatorClient(inject('thingerUrl'))
  let dir: string

  beforeAll(async () => {
    await run('make', ['-C', 'clients/c', 'all'], { timeout: 120_000 })
    dir = mkdtempSync(join(tmpdir(), 'c-x509-'))
  }, 150_000)

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  /** Writes the PEM files of a device and runs the client; the exit code, output and saved fields. */
  async function provision(files: { cert: string; key: string }, args: string[] = [], client = CLIENT) {
    const name = Math.random().toString(16).slice(2)
    const cert = join(dir, `${name}.pem`)
    const key = join(dir, `${name}.key`)
    const out = join(dir, `${name}.credentials`)
    writeFileSync(cert, files.cert)
    writeFileSync(key, files.key, { mode: 0o600 })
    let result: { code: number; stdout: string; stderr: string }
    try {
      const { stdout, stderr } = await run(client, ['--url', serviceUrl, '--cert', cert, '--key', key, '--answer-key', inject('answerPublicKey'), '--fleet', 'factory', '--out', out, '--max-attempts', '1', ...args], { timeout: 60_000 })
      result = { code: 0, stdout, stderr }
    } catch (error) {
      const failed = error as { code: number; stdout: string; stderr: string }
      result = { code: failed.code, stdout: failed.stdout, stderr: failed.stderr }
    }
    const saved = existsSync(out) ? Object.fromEntries(readFileSync(out, 'utf8').trim().split('\n').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)])) : undefined
    return { ...result, saved, out }
  }

  it.each(clients)('built against %s, provisions a new device in one Thinger call, its ID taken from the certificate; the sealed credential opens and logs in, and provisioning again replaces it', async (_mbedtls, client) => {
    // Prepare
    const device = newDeviceId('x5')
    const issued = await issue(localCa(), device)
    const callsBefore = await emulator.callCount()

    // Act
    const first = await provision({ cert: issued.pem, key: keyPem(issued.privateKey) }, [], client)
    const callsForNew = (await emulator.callCount()) - callsBefore
    // Right after the creation the service asks the device to come back a few seconds later
    // (replayed, with a Retry-After): the client follows it.
    const second = await provision({ cert: issued.pem, key: keyPem(issued.privateKey, 'sec1') }, ['--max-attempts', '5'], client)

    // Assess
    expect(first.stderr).toBe('')
    expect([first.code, second.code]).toEqual([0, 0])
    expect(first.saved).toMatchObject({ device, created: 'true', host: new URL(inject('thingerUrl')).host })
    expect(statSync(first.out).mode & 0o777).toBe(0o600)
    expect(first.stdout).toContain(`device=${device}\n`)
    expect(first.stdout).not.toContain(first.saved!.credential)
    expect(callsForNew).toBe(1)
    expect(second.saved).toMatchObject({ device, created: 'false' })
    expect(second.saved!.credential).not.toBe(first.saved!.credential)
    expect(await emulator.login(device, second.saved!.credential!)).toBe(200)
    expect(await emulator.login(device, first.saved!.credential!)).toBe(401)
    const state = await emulator.resources<{ properties: Record<string, Record<string, unknown>> }>()
    expect(state.properties[device]?.provisioning).toMatchObject({ fleet: 'factory', proof: 'x509' })
  })

  it('sends the intermediate CA that follows the device certificate in --cert', async () => {
    // Prepare
    const root = localCa()
    const intermediate = await issue(root, 'Factory line 2 intermediate', { subject: { commonName: 'Factory line 2 intermediate', organization: 'thinger-provisioner tests' }, ca: true, pathLength: 0, keyUsage: ['keyCertSign'], extKeyUsage: undefined })
    const device = newDeviceId('x5')
    const issued = await issue(intermediate, device)

    // Act
    const result = await provision({ cert: issued.pem + intermediate.pem, key: keyPem(issued.privateKey) })

    // Assess
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    expect(await emulator.login(device, result.saved!.credential!)).toBe(200)
  })

  it.each([
    ['another device’s certificate', async () => ({ issued: await issue(localCa(), newDeviceId('x5')), args: ['--device', newDeviceId('x5')] }), 'certificate_device_mismatch'],
    ['an expired certificate', async () => ({ issued: await issue(localCa(), newDeviceId('x5'), { notBefore: new Date(Date.now() - 48 * HOUR_MS), notAfter: new Date(Date.now() - 24 * HOUR_MS) }), args: [] }), 'certificate_expired'],
    ['a certificate of another CA', async () => ({ issued: await issue(await newCa(), newDeviceId('x5')), args: [] }), 'certificate_untrusted'],
  ])('is refused with %s: exit 3, the service’s code, nothing saved and no Thinger call', async (_label, make, code) => {
    // Prepare
    const { issued, args } = await make()
    const callsBefore = await emulator.callCount()

    // Act
    const result = await provision({ cert: issued.pem, key: keyPem(issued.privateKey) }, args)

    // Assess
    expect(result.code).toBe(3)
    expect(result.stderr).toContain(`HTTP 403, error=${code}`)
    expect(result.saved).toBeUndefined()
    expect(await emulator.callCount()).toBe(callsBefore)
  })

  it.each([
    ['a key that is not the certificate’s', async (issued: Issued) => ({ cert: issued.pem, key: keyPem(newKeyPair().privateKey) }), '--key is not the private key of the certificate in --cert'],
    ['a P-384 key and certificate', async () => {
      const keys = newKeyPair({ type: 'ec', curve: 'secp384r1' })
      return { cert: (await issue(localCa(), newDeviceId('x5'), { keys })).pem, key: keyPem(keys.privateKey) }
    }, 'an EC key on another curve'],
    ['an RSA key with a sealed request', async () => {
      const keys = newKeyPair({ type: 'rsa', bits: 2048 })
      return { cert: (await issue(localCa(), newDeviceId('x5'), { keys })).pem, key: keyPem(keys.privateKey) }
    }, 'an RSA key cannot open sealed answers: add --unsealed'],
    ['a file that is not a certificate', async (issued: Issued) => ({ cert: 'not a certificate\n', key: keyPem(issued.privateKey) }), 'does not hold a PEM certificate'],
    ['two intermediates', async (issued: Issued) => ({ cert: issued.pem + localCa().pem + localCa().pem, key: keyPem(issued.privateKey) }), 'more than the device certificate and one intermediate'],
  ])('stops before sending anything with %s: exit 2 and one clear line', async (_label, make, message) => {
    // Prepare
    const files = await make(await issue(localCa(), newDeviceId('x5')))
    const callsBefore = await emulator.callCount()

    // Act
    const result = await provision(files)

    // Assess
    expect(result.code).toBe(2)
    expect(result.stderr).toContain(message)
    expect(result.stderr).not.toMatch(/Segmentation|Aborted|at \w+ \(/)
    expect(result.saved).toBeUndefined()
    expect(await emulator.callCount()).toBe(callsBefore)
  })
})
