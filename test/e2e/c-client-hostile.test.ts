import { execFile, spawnSync } from 'node:child_process'
import { createECDH, createHash, createPrivateKey, generateKeyPairSync, type KeyObject, sign, X509Certificate } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { decodeFleetKey, deriveDeviceKey } from '../../lib/attestation/keys.js'
import { deriveClaimSealKey, deriveHmacSealKey, type SealKey, sealCredential } from '../../lib/attestation/seal.js'
import { deriveEcdhSealKey, toPoint } from '../../lib/attestation/seal-ecdh.js'
import { LOCAL_FLEET_KEY } from '../../local/defaults.js'
import { VECTOR_CA_PEM, VECTOR_CERTIFICATE, VECTOR_DEVICE, VECTOR_DEVICE_KEY_PEM, VECTOR_ECDH_SEALED } from '../support/x509-vector.js'

const run = promisify(execFile)
const CLIENT = 'clients/c/build/asan/provision'
const DEVICE = 'esp32_0badc0ffee00'
const DEVICE_KEY = deriveDeviceKey(decodeFleetKey(LOCAL_FLEET_KEY, 'fleet key'), DEVICE)

/** The answer key of the protocol's test vector (docs/protocol.md): the one the client pins here. */
function answerKeyPair(scalar: Buffer): { privateKey: KeyObject; publicB64: string } {
  const ecdh = createECDH('prime256v1')
  ecdh.setPrivateKey(scalar)
  const point = ecdh.getPublicKey()
  const jwk = { kty: 'EC', crv: 'P-256', d: scalar.toString('base64url'), x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33).toString('base64url') }
  return { privateKey: createPrivateKey({ key: jwk, format: 'jwk' }), publicB64: point.toString('base64') }
}
const SERVICE = answerKeyPair(createHash('sha256').update('thinger-provisioner test answer key').digest())
/** A party in the middle: its own key, unknown to the device. */
const FORGER = generateKeyPairSync('ec', { namedCurve: 'P-256' })

interface AnswerFields {
  username: string
  device: string
  host: string
  field: 'credential' | 'sealed'
  value: string
  created: boolean
}

/** The answer's signature as the service makes it (docs/protocol.md, Answer signatures), over the exact request body. */
function signAnswer(privateKey: KeyObject, request: Buffer, a: AnswerFields): string {
  const message = ['thinger-provisioner answer v1', createHash('sha256').update(request).digest('hex'), a.username, a.device, a.host, a.field, a.value, String(a.created)].join('\n')
  return sign('sha256', Buffer.from(message, 'utf8'), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64')
}

function textAnswer(a: AnswerFields, signature?: string): string {
  const signed = signature === undefined ? '' : `answer_signature=${signature}\n`
  return `username=${a.username}\ndevice=${a.device}\n${a.field}=${a.value}\nhost=${a.host}\ncreated=${a.created}\n${signed}`
}

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
  type Answer = { status: number; body: string }
  /** The next answer: fixed, or made from the request body (to seal to its timestamp, to sign it). */
  let answer: Answer | ((request: Buffer) => Answer) = { status: 500, body: '' }
  let requests = 0

  beforeAll(async () => {
    await run('make', ['-C', 'clients/c', 'build/asan/provision'], { timeout: 180_000 })
    dir = mkdtempSync(join(tmpdir(), 'c-hostile-'))
    server = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (chunk: Buffer) => chunks.push(chunk))
      req.on('end', () => {
        requests++
        const { status, body } = typeof answer === 'function' ? answer(Buffer.concat(chunks)) : answer
        res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) })
        res.end(body)
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
    const key = DEVICE_KEY.toString('base64')
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
    // Signed by the pinned answer key: what these cases test is the envelope, past the signature.
    const sealedAnswer = (sealed: string) => (request: Buffer): Answer => {
      const fields: AnswerFields = { username: 'acme', device: VECTOR_DEVICE, host: 'backend.thinger.io', field: 'sealed', value: sealed, created: true }
      return { status: 201, body: textAnswer(fields, signAnswer(SERVICE.privateKey, request, fields)) }
    }
    let identity: string[]

    beforeAll(() => {
      const cert = join(dir, 'vector.pem')
      const key = join(dir, 'vector.key')
      writeFileSync(cert, `-----BEGIN CERTIFICATE-----\n${VECTOR_CERTIFICATE.replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE-----\n${VECTOR_CA_PEM}`)
      writeFileSync(key, VECTOR_DEVICE_KEY_PEM, { mode: 0o600 })
      identity = ['--cert', cert, '--key', key, '--answer-key', SERVICE.publicB64]
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
      answer = sealedAnswer(sealed)

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
  describe('answers forged by a party in the middle (issue 17, finding 3)', () => {
    const CLAIM_SECRET = 'workshop-claim-secret-0001'
    const certificate = new X509Certificate(Buffer.from(VECTOR_CERTIFICATE, 'base64'))
    let cert: string
    let certKey: string

    beforeAll(() => {
      cert = join(dir, 'forged-vector.pem')
      certKey = join(dir, 'forged-vector.key')
      writeFileSync(cert, `-----BEGIN CERTIFICATE-----\n${VECTOR_CERTIFICATE.replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE-----\n${VECTOR_CA_PEM}`)
      writeFileSync(certKey, VECTOR_DEVICE_KEY_PEM, { mode: 0o600 })
    })

    type Mode = 'v1' | 'hmac' | 'claim' | 'ecdh'
    const device = (mode: Mode) => (mode === 'ecdh' ? VECTOR_DEVICE : DEVICE)
    const identityFor = (mode: Mode): string[] => {
      if (mode === 'ecdh') return ['--cert', cert, '--key', certKey]
      return ['--device', DEVICE, ...(mode === 'v1' ? ['--unsealed'] : [])]
    }
    /** The seal key each mode is made with, from the request: a forger knows the claim secret (it travels in claim requests) and the certificate's public key; the device key it does not, so mode 1 is sealed here as the service would. */
    const sealKeyFor = (mode: Exclude<Mode, 'v1'>, request: Buffer): SealKey => {
      const { timestamp } = JSON.parse(request.toString('utf8')) as { timestamp: number }
      if (mode === 'hmac') return deriveHmacSealKey(DEVICE_KEY, DEVICE, timestamp)
      if (mode === 'claim') return deriveClaimSealKey(CLAIM_SECRET, DEVICE)
      return deriveEcdhSealKey(toPoint(certificate.publicKey), VECTOR_DEVICE, timestamp)
    }
    /** An answer in the mode, with a credential and host of the forger's choice, signed by signer over signedRequest (default: the request itself), or unsigned. */
    const answerIn = (mode: Mode, signer: KeyObject | undefined, signedRequest?: Buffer) => (request: Buffer): Answer => {
      const binding = { username: 'mallory', device: device(mode), host: 'evil.example.com' }
      const credential = 'ForgedCredential0123456789'
      const fields: AnswerFields =
        mode === 'v1' ? { ...binding, field: 'credential', value: credential, created: true } : { ...binding, field: 'sealed', value: sealCredential(credential, sealKeyFor(mode, request), binding), created: true }
      return { status: 201, body: textAnswer(fields, signer === undefined ? undefined : signAnswer(signer, signedRequest ?? request, fields)) }
    }

    it.each([
      ['v1 (--unsealed), unsigned', 'v1', undefined],
      ['v1 (--unsealed), signed by another key', 'v1', FORGER.privateKey],
      ['mode 1 (hmac), unsigned', 'hmac', undefined],
      ['mode 1 (hmac), signed by another key', 'hmac', FORGER.privateKey],
      ['mode 2 (claim), sealed with the claim secret, signed by another key', 'claim', FORGER.privateKey],
      ["mode 3 (ECDH), sealed to the certificate's public key, unsigned", 'ecdh', undefined],
      ["mode 3 (ECDH), sealed to the certificate's public key, signed by another key", 'ecdh', FORGER.privateKey],
    ] as Array<[string, Mode, KeyObject | undefined]>)('refuses a forged answer in %s with --answer-key: exit 5, nothing saved', async (_label, mode, signer) => {
      // Prepare
      answer = answerIn(mode, signer)

      // Act
      const result = await provision(['--answer-key', SERVICE.publicB64], identityFor(mode))

      // Assess
      expect(result.output).not.toMatch(/runtime error|AddressSanitizer/)
      expect(result.code).toBe(5)
      expect(result.output).toContain('not signed by the pinned answer key')
      expect(result.output).not.toContain('evil.example.com')
      expect(existsSync(result.out)).toBe(false)
    })

    it('refuses an answer the service signed for another request (a replay): exit 5, nothing saved', async () => {
      // Prepare
      const earlier = Buffer.from(`{"device":"${DEVICE}","timestamp":1764150000,"signature":"zXIu2qxo13N67KGnC7D8mv6F38HGNbJlsBOSSrKLmdA=","version":2}`)
      answer = answerIn('hmac', SERVICE.privateKey, earlier)

      // Act
      const result = await provision(['--answer-key', SERVICE.publicB64], identityFor('hmac'))

      // Assess
      expect(result.code).toBe(5)
      expect(result.output).toContain('not signed by the pinned answer key')
      expect(existsSync(result.out)).toBe(false)
    })

    it('refuses a forged mode-2 (claim) answer without an answer key too: exit 5, nothing saved', async () => {
      // Prepare
      answer = answerIn('claim', undefined)

      // Act
      const result = await provision([], identityFor('claim'))

      // Assess
      expect(result.code).toBe(5)
      expect(result.output).toContain('no answer key is pinned')
      expect(existsSync(result.out)).toBe(false)
    })

    it("refuses a sealed X.509 run without an answer key before sending anything (it accepted a forged mode-3 answer before): exit 2, nothing saved", async () => {
      // Prepare
      answer = answerIn('ecdh', undefined)
      const before = requests

      // Act
      const result = await provision([], identityFor('ecdh'))

      // Assess
      expect(result.code).toBe(2)
      expect(result.output).toContain('needs the service\'s answer key')
      expect(requests).toBe(before)
      expect(existsSync(result.out)).toBe(false)
    })

    it.each([
      ['v1 (--unsealed)', 'v1'],
      ['mode 1 (hmac)', 'hmac'],
      ['mode 3 (ECDH)', 'ecdh'],
    ] as Array<[string, Mode]>)('accepts the genuine signed answer in %s and saves it', async (_label, mode) => {
      // Prepare
      answer = answerIn(mode, SERVICE.privateKey)

      // Act
      const result = await provision(['--answer-key', SERVICE.publicB64], identityFor(mode))

      // Assess
      expect(result.output).not.toMatch(/runtime error|AddressSanitizer/)
      expect(result.code).toBe(0)
      expect(readFileSync(result.out, 'utf8')).toContain('credential=ForgedCredential0123456789')
    })

    it('accepts the answer of either pinned key during a rotation, the key given in a file', async () => {
      // Prepare
      const keyFile = join(dir, 'answer-key.b64')
      writeFileSync(keyFile, `${SERVICE.publicB64}\n`)
      const next = answerKeyPair(createHash('sha256').update('the next answer key').digest())
      answer = answerIn('hmac', SERVICE.privateKey)

      // Act
      const old = await provision(['--answer-key', next.publicB64, '--answer-key', keyFile], identityFor('hmac'))
      answer = answerIn('hmac', next.privateKey)
      const rotated = await provision(['--answer-key', next.publicB64, '--answer-key', keyFile], identityFor('hmac'))
      const dropped = await provision(['--answer-key', keyFile], identityFor('hmac'))

      // Assess
      expect([old.code, rotated.code, dropped.code]).toEqual([0, 0, 5])
    })

    it('refuses a malformed --answer-key or a third one as a usage error, before sending anything', async () => {
      // Prepare
      const before = requests
      const offCurve = Buffer.from(SERVICE.publicB64, 'base64')
      offCurve[64]! ^= 1

      // Act
      const results = await Promise.all([
        provision(['--answer-key', offCurve.toString('base64')], identityFor('hmac')),
        provision(['--answer-key', 'not-a-key'], identityFor('hmac')),
        provision(['--answer-key', SERVICE.publicB64, '--answer-key', SERVICE.publicB64, '--answer-key', SERVICE.publicB64], identityFor('hmac')),
      ])

      // Assess
      expect(results.map((r) => r.code)).toEqual([2, 2, 2])
      expect(requests).toBe(before)
    })
  })
})
