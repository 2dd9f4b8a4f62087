import { execFile, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { decodeFleetKey, deriveDeviceKey } from '../../lib/attestation/keys.js'
import { LOCAL_FLEET_KEY } from '../../local/defaults.js'
import { VECTOR_CA_PEM, VECTOR_CERTIFICATE, VECTOR_DEVICE, VECTOR_DEVICE_KEY_PEM, VECTOR_ECDH_SEALED } from '../support/x509-vector.js'

const run = promisify(execFile)
const CLIENT = 'clients/c/build/asan/provision'
const DEVICE = 'esp32_0badc0ffee00'
const toolchain = spawnSync('sh', ['-c', 'printf "#include <mbedtls/gcm.h>\\n#include <curl/curl.h>\\nint main(void) { return 0; }\\n" | cc -fsanitize=address,undefined -x c -o /dev/null -'], { stdio: 'ignore' }).status === 0

if (!toolchain) {
  if (process.env.REQUIRE_C_CLIENT === '1') throw new Error('the C client is required (REQUIRE_C_CLIENT=1) but a C compiler with sanitizers, mbedTLS or libcurl headers are missing')
  console.warn('SKIPPED: the hostile-service C client suite needs a C compiler with AddressSanitizer and UBSan and the mbedTLS and libcurl headers')
}

/**
 * A hostile provisioning service: every answer is the text body given, with the status given.
 * The C client, built with AddressSanitizer and UBSan, must refuse what is wrong without
 * undefined behaviour and without writing or printing what the server sent.
 */
describe.skipIf(!toolchain)('The C client (clients/c, sanitized) against a hostile service', () => {
  let server: Server
  let url: string
  let dir: string
  let answer: { status: number; body: string } = { status: 500, body: '' }

  beforeAll(async () => {
    await run('make', ['-C', 'clients/c', 'build/asan/provision'], { timeout: 180_000 })
    dir = mkdtempSync(join(tmpdir(), 'c-hostile-'))
    server = createServer((req, res) => {
      req.resume()
      req.on('end', () => {
        res.writeHead(answer.status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(answer.body) })
        res.end(answer.body)
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  }, 200_000)

  afterAll(async () => {
    await new Promise((resolve) => server?.close(resolve))
    rmSync(dir, { recursive: true, force: true })
  })

  async function provision(extraArgs: string[] = [], identity: string[] = ['--device', DEVICE]): Promise<{ code: number; output: string; out: string }> {
    const out = join(dir, `credentials-${Math.random().toString(16).slice(2)}`)
    const key = deriveDeviceKey(decodeFleetKey(LOCAL_FLEET_KEY, 'fleet key'), DEVICE).toString('base64')
    // Leaks in libcurl's global state are not this test's subject; UB and memory errors are.
    const env = { ...process.env, THINGER_DEVICE_KEY: key, ASAN_OPTIONS: 'detect_leaks=0', UBSAN_OPTIONS: 'print_stacktrace=1' }
    try {
      const { stdout, stderr } = await run(CLIENT, ['--url', url, ...identity, '--out', out, '--max-attempts', '1', ...extraArgs], { env, timeout: 60_000 })
      return { code: 0, output: stdout + stderr, out }
    } catch (error) {
      const failed = error as { code: number; stdout: string; stderr: string }
      return { code: failed.code, output: failed.stdout + failed.stderr, out }
    }
  }

  it.each([
    ['just above the largest allowed server_time', '253402300800'],
    ['2^63, which wrapped to the most negative offset before', '9223372036854775808'],
    ['2^64 - 1', '18446744073709551615'],
  ])('refuses a clock_skew whose server_time is %s, without undefined behaviour', async (_label, serverTime) => {
    // Prepare
    answer = { status: 401, body: `error=clock_skew\nserver_time=${serverTime}\n` }

    // Act
    const result = await provision()

    // Assess
    expect(result.output).not.toMatch(/runtime error|AddressSanitizer/)
    expect(result.code).toBe(5)
    expect(result.output).toContain('not a protocol answer (TPROV_ERR_RESPONSE_VALUE)')
  })

  it('follows the largest allowed server_time at most twice, then gives up, without undefined behaviour', async () => {
    // Prepare
    answer = { status: 401, body: 'error=clock_skew\nserver_time=253402300799\n' }

    // Act
    const result = await provision()

    // Assess
    expect(result.output).not.toMatch(/runtime error|AddressSanitizer/)
    expect(result.code).toBe(3)
    expect(result.output).toContain('refused even with the server')
  })

  const answerWith = (username: string, host: string): string => `username=${username}\ndevice=${DEVICE}\ncredential=AbCdEfGh0123456789abcdef\nhost=${host}\ncreated=true\n`
  it.each([
    ['a username with a bidi override', answerWith('\u202eacme', 'backend.thinger.io'), '\u202e'],
    ['a username with markup', answerWith('<script>', 'backend.thinger.io'), '<script>'],
    ['a host with a path', answerWith('acme', 'evil.example/x'), 'evil.example'],
    ['a host with a port out of range', answerWith('acme', 'evil.example:99999'), 'evil.example'],
  ].flatMap(([label, body, hostile]) => [
    [`${label} (sealed request)`, body, hostile, []],
    [`${label} (--unsealed request)`, body, hostile, ['--unsealed']],
  ]) as Array<[string, string, string, string[]]>)('refuses an answer with %s, and neither saves nor prints it', async (_label, body, hostile, extraArgs) => {
    // Prepare
    answer = { status: 201, body }

    // Act
    const result = await provision(extraArgs)

    // Assess
    expect(result.output).not.toMatch(/runtime error|AddressSanitizer/)
    expect(result.code).toBe(5)
    expect(result.output).not.toContain(hostile)
    expect(existsSync(result.out)).toBe(false)
  })

  describe('with an X.509 certificate and its P-256 key (--cert/--key)', () => {
    const envelope = Buffer.from(VECTOR_ECDH_SEALED, 'base64')
    const changed = (at: number, value: number) => Buffer.from(envelope.map((byte, index) => (index === at ? value : byte))).toString('base64')
    const sealedAnswer = (sealed: string) => `username=acme\ndevice=${VECTOR_DEVICE}\nsealed=${sealed}\nhost=backend.thinger.io\ncreated=true\n`
    let identity: string[]

    beforeAll(() => {
      const cert = join(dir, 'vector.pem')
      const key = join(dir, 'vector.key')
      writeFileSync(cert, `-----BEGIN CERTIFICATE-----\n${VECTOR_CERTIFICATE.replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE-----\n${VECTOR_CA_PEM}`)
      writeFileSync(key, VECTOR_DEVICE_KEY_PEM, { mode: 0o600 })
      identity = ['--cert', cert, '--key', key]
    })

    it.each([
      ['the test vector’s answer, sealed for another timestamp', VECTOR_ECDH_SEALED, 'does not open'],
      ['an ephemeral key off the curve', changed(40, envelope[40]! ^ 1), "no key agreement with the answer's ephemeral key"],
      ['a compressed ephemeral key', changed(2, 0x02), 'does not open'],
      ['a device-key (hmac mode) envelope', changed(1, 0x01), 'does not open'],
      ['an unknown mode', changed(1, 0x09), 'does not open'],
      ['an envelope cut inside the ephemeral key', envelope.subarray(0, 40).toString('base64'), 'does not open'],
      ['the largest envelope the parser takes, of garbage', Buffer.concat([envelope.subarray(0, 67), Buffer.alloc(350 - 67, 0x41)]).toString('base64'), 'does not open'],
    ])('refuses %s without undefined behaviour, and saves nothing', async (_label, sealed, message) => {
      // Prepare
      answer = { status: 201, body: sealedAnswer(sealed) }

      // Act
      const result = await provision([], identity)

      // Assess
      expect(result.output).not.toMatch(/runtime error|AddressSanitizer/)
      expect(result.code).toBe(5)
      expect(result.output).toContain(message)
      expect(existsSync(result.out)).toBe(false)
    })

    it('refuses a credential in clear to a sealed X.509 request (a downgrade)', async () => {
      // Prepare
      answer = { status: 201, body: `username=acme\ndevice=${VECTOR_DEVICE}\ncredential=AbCdEfGh0123456789abcdef\nhost=backend.thinger.io\ncreated=true\n` }

      // Act
      const result = await provision([], identity)

      // Assess
      expect(result.output).not.toMatch(/runtime error|AddressSanitizer/)
      expect(result.code).toBe(5)
      expect(result.output).toContain('a downgrade')
      expect(existsSync(result.out)).toBe(false)
    })
  })
})
