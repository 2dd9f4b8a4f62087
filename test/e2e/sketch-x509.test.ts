import { execFile, spawnSync } from 'node:child_process'
import { generateKeyPairSync, type KeyObject, randomBytes, X509Certificate } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { requestBodyDigest, signAnswer } from '../../lib/attestation/answer-signature.js'
import { sealCredential } from '../../lib/attestation/seal.js'
import { deriveEcdhSealKey, toPoint } from '../../lib/attestation/seal-ecdh.js'
import { deviceKeyOf, newDeviceId } from '../support/device.js'
import { emulatorClient } from '../support/emulator-client.js'
import { issue, localCa, newCa, p256Scalar } from '../support/pki.js'

const run = promisify(execFile)
const MAC = '246f28a1b2c3'
const toolchain = spawnSync('sh', ['-c', 'echo "#include <mbedtls/x509_crt.h>" | c++ -x c++ -E - >/dev/null'], { stdio: 'ignore' }).status === 0
if (!toolchain && process.env.REQUIRE_C_CLIENT === '1') throw new Error('the sketch run on the host is required (REQUIRE_C_CLIENT=1) but a C++ compiler or the mbedTLS headers are missing')
if (!toolchain) console.warn('SKIPPED: the sketch run on the host needs a C++ compiler and the mbedTLS headers (Debian: libmbedtls-dev)')

/** What set-x509-key takes: the private scalar in base64 (what the README's station script sends). */
const scalar = (key: KeyObject): string => p256Scalar(key).toString('base64')

/**
 * The ESP32 sketch built with PROVISIONING_X509 (fleet `factory`), run on the host
 * (extras/host-check/station.cpp: plain TCP instead of TLS, NVS in a file) against the running
 * stack: the factory writes its key and certificate over the serial commands, and the sketch's
 * own request (tprov_build_request with the certificate, one write) and answer handling
 * (tprov_parse_answer, ECDH-sealed and signed by the stack's answer key, which the build pins)
 * provision it under the certificate's common name.
 */
describe.skipIf(!toolchain)('Sketch (run on the host): an X.509 device, and the default build, provision against the running service', () => {
  const service = new URL(inject('provisionUrl'))
  const emulator = emulatorClient(inject('thingerUrl'))
  let dir: string

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sketch-x509-'))
    // The X.509 builds pin the running stack's answer key (their answers could be forged otherwise).
    await run('make', ['-C', 'clients/c', 'sketch-station', `BUILD_DIR=${dir}`, `SKETCH_STATION_ANSWER_KEY=${inject('answerPublicKey')}`], { timeout: 180_000 })
  }, 200_000)

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  /** Boots the sketch with Wi-Fi up, sends the factory lines, lets it run; its serial output and NVS. */
  async function board(name: string, lines: string[], variant: 'x509' | 'nvs' = 'x509', mac = MAC, port = service.port) {
    const child = execFile(join(dir, `sketch-station-${variant}`), [join(dir, `${name}.nvs`), mac], { env: { ...process.env, SKETCH_STATION_SERVICE: `127.0.0.1:${port}` }, timeout: 120_000 })
    child.stdin!.end(lines.map((line) => `${line}\n`).join(''))
    let stdout = ''
    let stderr = ''
    child.stdout!.on('data', (chunk) => (stdout += chunk))
    child.stderr!.on('data', (chunk) => (stderr += chunk))
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
    expect(stderr).toBe('')
    const nvs = new Map(readFileSync(join(dir, `${name}.nvs`), 'utf8').trimEnd().split('\n').map((line) => line.split(' ') as [string, string]))
    const text = (key: string) => Buffer.from((nvs.get(key) ?? '-').slice(1), 'hex').toString('utf8').replace(/\0$/, '')
    return { code, stderr, lines: stdout.trimEnd().split('\n'), nvs, text }
  }

  it('provisions a new device under its certificate’s common name in one Thinger call; the sealed credential opens and logs in', async () => {
    // Prepare
    const device = newDeviceId('x5')
    const issued = await issue(localCa(), device)
    const callsBefore = await emulator.callCount()

    // Act
    const result = await board('new', [`set-x509-key ${scalar(issued.privateKey)}`, `set-cert ${issued.der.toString('base64')}`])

    // Assess
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    expect(result.lines.slice(0, 3)).toEqual(['[PROVISION] device (none), key absent, certificate absent: write the key and certificate at the factory (send: set-x509-key KEY, then set-cert CERT [CHAIN]), credentials none', 'ok', 'ok'])
    expect(result.lines).toContain(`[PROVISION] provisioning ${device}`)
    expect(result.lines).toContain(`[PROVISION] provisioned ${device} for account ${result.text('username')} on ${new URL(inject('thingerUrl')).host} (new device)`)
    expect(result.lines.slice(-5)).toEqual([`device=${device}`, 'mac=24:6f:28:a1:b2:c3', 'key=present', 'certificate=present', 'provisioned=yes'])
    expect((await emulator.callCount()) - callsBefore).toBe(1)
    expect(result.text('device')).toBe(device)
    expect(result.lines.join('\n')).not.toContain(result.text('credential'))
    expect(await emulator.login(device, result.text('credential'))).toBe(200)
  })

  it('is refused for a certificate of a CA the fleet does not trust: the service’s code on the serial port, nothing stored, no Thinger call', async () => {
    // Prepare
    const device = newDeviceId('x5')
    const issued = await issue(await newCa(), device)
    const callsBefore = await emulator.callCount()

    // Act
    const result = await board('untrusted', [`set-x509-key ${scalar(issued.privateKey)}`, `set-cert ${issued.der.toString('base64')}`])

    // Assess
    expect(result.code).toBe(0)
    expect(result.lines).toContain('[PROVISION] refused (HTTP 403, certificate_untrusted)')
    expect(result.lines.slice(-1)).toEqual(['provisioned=no'])
    expect(result.nvs.has('credential')).toBe(false)
    expect((await emulator.callCount()) - callsBefore).toBe(0)
  })

  it('refuses an answer a party in the middle made from the certificate alone (mode 3, unsigned or signed by its own key): nothing stored', async () => {
    // Prepare
    const device = newDeviceId('x5')
    const issued = await issue(localCa(), device)
    const devicePoint = toPoint(new X509Certificate(issued.der).publicKey)
    const forger = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    let signer: KeyObject | undefined
    const middle = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (chunk: Buffer) => chunks.push(chunk))
      req.on('end', () => {
        const request = Buffer.concat(chunks)
        const { timestamp } = JSON.parse(request.toString('utf8')) as { timestamp: number }
        const binding = { username: 'mallory', device, host: 'evil.example.com' }
        const answer = { ...binding, sealed: sealCredential('ForgedCredential0123456789', deriveEcdhSealKey(devicePoint, device, timestamp), binding), created: true }
        const signature = signer === undefined ? '' : `answer_signature=${signAnswer(answer, requestBodyDigest(request), signer)}\n`
        const body = `username=${answer.username}\ndevice=${device}\nsealed=${answer.sealed}\nhost=${answer.host}\ncreated=true\n${signature}`
        res.writeHead(201, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) })
        res.end(body)
      })
    })
    await new Promise<void>((resolve) => middle.listen(0, '127.0.0.1', resolve))
    const port = String((middle.address() as AddressInfo).port)
    const factory = [`set-x509-key ${scalar(issued.privateKey)}`, `set-cert ${issued.der.toString('base64')}`]

    // Act
    const unsigned = await board('forged-unsigned', factory, 'x509', MAC, port)
    signer = forger.privateKey
    const foreign = await board('forged-foreign', factory, 'x509', MAC, port)
    await new Promise((resolve) => middle.close(resolve))

    // Assess
    for (const result of [unsigned, foreign]) {
      expect(result.code).toBe(0)
      expect(result.lines).toContain('[PROVISION] refused an answer not signed by the pinned answer key (HTTP 201, TPROV_ERR_ANSWER_SIGNATURE)')
      expect(result.lines.slice(-1)).toEqual(['provisioned=no'])
      expect(result.nvs.has('credential')).toBe(false)
      expect(result.lines.join('\n')).not.toContain('evil.example.com')
    }
  })

  it('the default build (device key in NVS, set-key) still provisions, from the same static request buffer', async () => {
    // Prepare
    const mac = randomBytes(6).toString('hex')
    const device = `esp32_${mac}`
    const callsBefore = await emulator.callCount()

    // Act
    const first = await board('hmac', [`set-key ${deviceKeyOf(device)}`], 'nvs', mac)
    const callsForNew = (await emulator.callCount()) - callsBefore

    // Assess
    expect(first.code).toBe(0)
    expect(first.lines).toContain(`[PROVISION] provisioned ${device} for account ${first.text('username')} on ${new URL(inject('thingerUrl')).host} (new device)`)
    expect(first.lines.slice(-3)).toEqual([`device=${device}`, 'key=present', 'provisioned=yes'])
    expect(callsForNew).toBe(1)
    expect(await emulator.login(device, first.text('credential'))).toBe(200)
  })
})
