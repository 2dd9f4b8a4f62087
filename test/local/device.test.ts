import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { generateKeyPairSync, verify, X509Certificate } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, onTestFinished, vi } from 'vitest'
import { answerPublicPoint, generateAnswerKey, parseAnswerKey, requestBodyDigest, signAnswer, type SignedAnswer } from '../../lib/attestation/answer-signature.js'
import { signedMessage } from '../../lib/attestation/keys.js'
import { freePort } from '../support/ports.js'
import { hasStackTrace, PROGRAM_TEST_LIMIT_MS, runProgram } from '../support/program.js'

const PLAYER = 'local/device.ts'
const DEVICE = 'esp32_a1b2c3d4e5f6'
// The stand-in services answer in clear, as a service before sealing does (protocol v1).
const UNSEALED = '--unsealed'

type Handler = (request: IncomingMessage, body: string) => { status: number; body: unknown; type?: string }

/** A stand-in for a provisioning service or an emulator: answers from a script and records what it was asked. */
async function fakeServer(handler: Handler): Promise<{ server: Server; port: number; requests: { method: string; path: string; body: string }[] }> {
  const requests: { method: string; path: string; body: string }[] = []
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    let body = ''
    request.setEncoding('utf8').on('data', (chunk: string) => (body += chunk))
    request.on('end', () => {
      requests.push({ method: request.method ?? '', path: request.url ?? '', body })
      const answer = handler(request, body)
      response.writeHead(answer.status, { 'content-type': answer.type ?? 'application/json' })
      response.end(typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { server, port: (server.address() as AddressInfo).port, requests }
}

const ANSWER_KEY = parseAnswerKey(generateAnswerKey(), 'test')
const ANSWER_PUBLIC_KEY = answerPublicPoint(ANSWER_KEY).toString('base64')
const OTHER_KEY = parseAnswerKey(generateAnswerKey(), 'test')

/** A v1 success answer signed over the request body it answers, with `key`. */
const signedSuccess = (key = ANSWER_KEY, bodyOf = (body: string) => body) => (_request: IncomingMessage, body: string) => {
  const answer = success('127.0.0.1:1').body as SignedAnswer
  return { status: 201, body: { ...answer, answerSignature: signAnswer(answer, requestBodyDigest(bodyOf(body)), key) } }
}

const success = (host: string) => ({ status: 201, body: { username: 'demo', device: DEVICE, credential: 'c'.repeat(24), host, created: true } })

describe('Program: npm run device', { timeout: PROGRAM_TEST_LIMIT_MS }, () => {
  const servers: Server[] = []
  let emptyPort: number

  // The key a running `npm start` may have left for the player must not decide these tests.
  beforeAll(() => void vi.stubEnv('ANSWER_KEY_FILE', join(tmpdir(), 'no-answer-key-here.pub')))
  afterAll(() => void vi.unstubAllEnvs())

  beforeEach(async () => {
    emptyPort = await freePort()
  })

  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))))
  })

  async function serve(handler: Handler) {
    const fake = await fakeServer(handler)
    servers.push(fake.server)
    return fake
  }

  it.each([
    ['an unknown option', [DEVICE, '--bogus'], /^device: unknown option '--bogus'$/m],
    ['a --meta without =', [DEVICE, '--meta', 'nokv'], /^device: --meta takes KEY=VALUE, got "nokv"$/m],
    ['a --url that is not a URL', [DEVICE, '--url', 'localhost:3000'], /^device: --url must be an absolute http\(s\) URL/m],
    ['no device ID', [], /^device: a device ID is required$/m],
  ])('exits 2 with one line and the usage for %s', async (_name, args, message) => {
    // Act
    const run = await runProgram(PLAYER, args, { HTTP_PORT: String(emptyPort) })

    // Assess
    expect(run.code).toBe(2)
    expect(run.stderr).toMatch(message)
    expect(run.stderr).toMatch(/^Usage: npm run device -- <deviceId>/m)
    expect(hasStackTrace(run.stderr)).toBe(false)
    expect(run.stdout).toBe('')
  })

  it.each([
    ['--cert without --key', ['--cert', 'local/x509/ca.pem'], 'device: --cert and --key come together: the certificate and its private key'],
    ['--cert with --claim', ['--cert', 'local/x509/ca.pem', '--key', 'local/x509/ca.key.pem', '--claim'], 'device: --cert proves with a certificate: not with --claim, --device-key or --fleet-key'],
    ['a --cert that is not a certificate', ['--cert', 'local/x509/ca.key.pem', '--key', 'local/x509/ca.key.pem'], 'device: --cert local/x509/ca.key.pem is not an X.509 certificate (PEM or DER)'],
    ['a --cert that does not exist', ['--cert', 'no-such.pem', '--key', 'local/x509/ca.key.pem'], 'device: --cert no-such.pem: ENOENT'],
  ])('exits 2 with one line for %s', async (_name, args, message) => {
    // Act
    const run = await runProgram(PLAYER, ['x5_test01', ...args], { HTTP_PORT: String(emptyPort) })

    // Assess
    expect(run.code).toBe(2)
    expect(run.stderr.split('\n')[0]).toBe(message)
    expect(hasStackTrace(run.stderr)).toBe(false)
  })

  it('exits 2 when --key is not the key of --cert, quoting neither', async () => {
    // Prepare: the local CA's certificate with a key of its own
    const dir = mkdtempSync(join(tmpdir(), 'player-'))
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
    writeFileSync(join(dir, 'other.pem'), generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }))

    // Act
    const run = await runProgram(PLAYER, ['x5_test01', '--cert', 'local/x509/ca.pem', '--key', join(dir, 'other.pem')], { HTTP_PORT: String(emptyPort) })

    // Assess
    expect(run.code).toBe(2)
    expect(run.stderr.trim()).toBe(`device: --key ${join(dir, 'other.pem')} is not the key of the certificate in --cert local/x509/ca.pem`)
    expect(run.stderr).not.toContain('PRIVATE KEY')
  })

  it('proves with a certificate of the local dev CA for --fleet factory, CN the device ID, signed by its key', async () => {
    // Prepare
    const fake = await serve(() => ({ status: 403, body: { error: { code: 'proof_not_accepted', message: 'no' } } }))

    // Act
    const run = await runProgram(PLAYER, ['x5_test01', '--fleet', 'factory', '--url', `http://127.0.0.1:${fake.port}`])

    // Assess: the request a device of the factory fleet sends, verified as the function does
    expect(run.code).toBe(1)
    expect(run.stdout).toContain('certificate: CN=x5_test01, P-256, issued just now by the local dev CA')
    const body = JSON.parse(fake.requests[0]!.body) as { device: string; fleet: string; version: number; timestamp: number; certificate: string; signature: string }
    expect(Object.keys(body).sort()).toEqual(['certificate', 'device', 'fleet', 'signature', 'timestamp', 'version'])
    expect(body).toMatchObject({ device: 'x5_test01', fleet: 'factory', version: 2 })
    const certificate = new X509Certificate(Buffer.from(body.certificate, 'base64'))
    expect(certificate.subject).toBe('CN=x5_test01')
    expect(certificate.verify(new X509Certificate(readFileSync('local/x509/ca.pem')).publicKey)).toBe(true)
    const message = Buffer.from(signedMessage('x5_test01', body.timestamp, 2), 'utf8')
    expect(verify('sha256', message, { key: certificate.publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(body.signature, 'base64'))).toBe(true)
  })

  it('exits 2 naming --fleet-key when it is not a fleet key, without quoting it', async () => {
    // Act
    const run = await runProgram(PLAYER, [DEVICE, '--fleet-key', 'not-base64!'], { HTTP_PORT: String(emptyPort) })

    // Assess
    expect(run.code).toBe(2)
    expect(run.stderr.trim()).toBe('device: --fleet-key must be the base64 of at least 32 bytes')
  })

  it('exits 2 naming HTTP_PORT when it is not a port', async () => {
    // Act
    const run = await runProgram(PLAYER, [DEVICE], { HTTP_PORT: 'abc' })

    // Assess
    expect(run.code).toBe(2)
    expect(run.stderr.trim()).toBe('device: HTTP_PORT must be a port number from 1 to 65535, got "abc"')
  })

  it('sends to HTTP_PORT and says in one line that nothing answers there when the stack is not running', async () => {
    // Act
    const run = await runProgram(PLAYER, [DEVICE], { HTTP_PORT: String(emptyPort) })

    // Assess
    expect(run.code).toBe(1)
    expect(run.stderr.trim()).toBe(`device: no answer from http://127.0.0.1:${emptyPort}/v1/provision (connection refused): is \`npm start\` running, on this HTTP_PORT?`)
    expect(hasStackTrace(run.stderr)).toBe(false)
  })

  it('checks the login on the emulator the answer names, not on the default port', async () => {
    // Prepare
    const emulator = await serve(() => ({ status: 200, body: { ok: true } }))
    const service = await serve(() => success(`127.0.0.1:${emulator.port}`))

    // Act
    const run = await runProgram(PLAYER, [DEVICE, UNSEALED, '--url', `http://127.0.0.1:${service.port}`], { HTTP_PORT: undefined, THINGER_EMULATOR_PORT: undefined })

    // Assess
    expect(run.code).toBe(0)
    expect(run.stdout).toContain('HTTP 201')
    expect(run.stdout).toContain(`login check: the emulator accepts demo/${DEVICE} with the returned credential`)
    expect(emulator.requests).toEqual([{ method: 'POST', path: '/__emulator/login', body: JSON.stringify({ username: 'demo', device: DEVICE, credential: 'c'.repeat(24) }) }])
  })

  it('checks the login on THINGER_EMULATOR_PORT when the answer names a host that is not local', async () => {
    // Prepare
    const emulator = await serve(() => ({ status: 401, body: { ok: false, reason: 'bad_credential' } }))
    const service = await serve(() => success('devices.example.com'))

    // Act
    const run = await runProgram(PLAYER, [DEVICE, UNSEALED], { HTTP_PORT: String(service.port), THINGER_EMULATOR_PORT: String(emulator.port) })

    // Assess
    expect(run.code).toBe(1)
    expect(run.stdout).toContain(`login check FAILED: the emulator refuses demo/${DEVICE} (bad_credential)`)
    expect(emulator.requests).toHaveLength(1)
  })

  it('says in one line that no emulator answers the login check, pointing at --no-login-check', async () => {
    // Prepare
    const service = await serve(() => success('devices.example.com'))

    // Act
    const run = await runProgram(PLAYER, [DEVICE, UNSEALED], { HTTP_PORT: String(service.port), THINGER_EMULATOR_PORT: String(emptyPort) })

    // Assess
    expect(run.code).toBe(1)
    expect(run.stderr.trim()).toBe(`device: login check: no Thinger.io emulator at http://127.0.0.1:${emptyPort} (connection refused); against a deployed service add --no-login-check`)
  })

  it('posts to /v1/provision once when --url already ends in it', async () => {
    // Prepare
    const service = await serve(() => success('127.0.0.1:1'))

    // Act
    const run = await runProgram(PLAYER, [DEVICE, UNSEALED, '--url', `http://127.0.0.1:${service.port}/v1/provision/`, '--no-login-check'])

    // Assess
    expect(run.code).toBe(0)
    expect(service.requests.map((request) => request.path)).toEqual(['/v1/provision'])
  })

  it('reports a crashed function as a failure, never as its HTTP 200, and prints none of its body', async () => {
    // Prepare: what serverless-offline answers when the function's bundle is gone
    const crash = {
      errorMessage: "Error: Cannot find module '/project/.esbuild/.build/functions/provision.ts'\nRequire stack:\n- /project/node_modules/x.cjs",
      errorType: 'Error',
      stackTrace: ['Runtime.ImportModuleError: Error: Cannot find module', 'at _loadUserApp (/project/node_modules/UserFunction.js:275:13)'],
    }
    const service = await serve(() => ({ status: 200, body: crash }))

    // Act
    const run = await runProgram(PLAYER, [DEVICE, UNSEALED], { HTTP_PORT: String(service.port) })

    // Assess
    expect(run.code).toBe(1)
    expect(run.stdout).toBe('')
    expect(run.stderr).toMatch(/^device: the function crashed \(HTTP 200, Error: Cannot find module '[^']+'\); its log is in the terminal of `npm start`\n$/)
    expect(run.stderr).not.toContain('Require stack')
  })

  it('exits 1 when a 2xx answer holds no credentials', async () => {
    // Prepare
    const service = await serve(() => ({ status: 200, body: { hello: 'world' } }))

    // Act
    const run = await runProgram(PLAYER, [DEVICE, UNSEALED], { HTTP_PORT: String(service.port) })

    // Assess
    expect(run.code).toBe(1)
    expect(run.stderr).toContain('device: the answer holds no credentials')
  })

  it('prints a refusal and exits 1', async () => {
    // Prepare
    const refusal = { error: { code: 'device_not_allowed', message: 'no', retryable: false }, requestId: 'r1' }
    const service = await serve(() => ({ status: 403, body: refusal }))

    // Act
    const run = await runProgram(PLAYER, [DEVICE, UNSEALED], { HTTP_PORT: String(service.port) })

    // Assess
    expect(run.code).toBe(1)
    expect(run.stdout).toBe(`HTTP 403\n${JSON.stringify(refusal)}\n`)
  })

  it('signs again with the server time after clock_skew, telling it on stderr only', async () => {
    // Prepare
    let calls = 0
    const service = await serve(() =>
      ++calls === 1
        ? { status: 401, body: 'error=clock_skew\nserver_time=1764150000\nrequest_id=r1\n', type: 'text/plain' }
        : { status: 201, body: `username=demo\ndevice=${DEVICE}\ncredential=${'c'.repeat(24)}\nhost=127.0.0.1:1\ncreated=true\n`, type: 'text/plain' },
    )

    // Act
    const run = await runProgram(PLAYER, [DEVICE, UNSEALED, '--text', '--timestamp', '5', '--no-login-check'], { HTTP_PORT: String(service.port) })

    // Assess
    expect(run.code).toBe(0)
    expect(run.stderr).toBe("clock_skew: signing again with the server's time 1764150000\n")
    expect(run.stdout).toMatch(/^HTTP 201\nusername=demo\n/)
    expect(service.requests.map((request) => JSON.parse(request.body).timestamp)).toEqual([5, 1764150000])
  })

  it('sends every --meta pair', async () => {
    // Prepare
    const service = await serve(() => success('127.0.0.1:1'))

    // Act
    const run = await runProgram(PLAYER, [DEVICE, UNSEALED, '--meta', 'site=lab_2', '--meta', 'note=a=b', '--no-login-check'], { HTTP_PORT: String(service.port) })

    // Assess
    expect(run.code).toBe(0)
    expect(JSON.parse(service.requests[0]!.body).meta).toEqual({ site: 'lab_2', note: 'a=b' })
  })

  describe('answer signatures', () => {
    it('accepts an answer signed over the request it sent under the pinned key, given as base64 or as a file', async () => {
      // Prepare
      const service = await serve(signedSuccess())
      const keyFile = join(tmpdir(), `answer-key-${process.pid}.pub`)
      writeFileSync(keyFile, `${ANSWER_PUBLIC_KEY}\n`)

      // Act
      const runs = [await runProgram(PLAYER, [DEVICE, UNSEALED, '--no-login-check', '--answer-key', ANSWER_PUBLIC_KEY], { HTTP_PORT: String(service.port) })]
      runs.push(await runProgram(PLAYER, [DEVICE, UNSEALED, '--no-login-check', '--answer-key', keyFile], { HTTP_PORT: String(service.port) }))
      runs.push(await runProgram(PLAYER, [DEVICE, UNSEALED, '--no-login-check'], { HTTP_PORT: String(service.port), ANSWER_KEY_FILE: keyFile }))

      // Assess
      for (const run of runs) {
        expect(run.stderr).toBe('')
        expect(run.code).toBe(0)
        expect(run.stdout).toContain('answer signature: verified under the pinned answer key')
      }
    })

    it('accepts under the second of two pinned keys (a rotation)', async () => {
      // Prepare
      const service = await serve(signedSuccess(OTHER_KEY))

      // Act
      const run = await runProgram(PLAYER, [DEVICE, UNSEALED, '--no-login-check', '--answer-key', ANSWER_PUBLIC_KEY, '--answer-key', answerPublicPoint(OTHER_KEY).toString('base64')], { HTTP_PORT: String(service.port) })

      // Assess
      expect(run.code).toBe(0)
    })

    it.each([
      ['signed by another key', signedSuccess(OTHER_KEY), /^device: refused: the answer signature does not verify under the pinned answer key/],
      ['signed for another request (a replayed signed answer)', signedSuccess(ANSWER_KEY, (body) => body.replace('"timestamp":', '"timestamp":1')), /^device: refused: the answer signature does not verify/],
      ['unsigned', () => success('127.0.0.1:1'), /^device: refused: the answer carries no answer signature/],
    ])('refuses an answer %s with one line and exit 1, before any login check', async (_name, handler, message) => {
      // Prepare
      const emulator = await serve(() => ({ status: 200, body: { ok: true } }))
      const service = await serve(handler)

      // Act
      const run = await runProgram(PLAYER, [DEVICE, UNSEALED, '--answer-key', ANSWER_PUBLIC_KEY, '--emulator', `http://127.0.0.1:${emulator.port}`], { HTTP_PORT: String(service.port) })

      // Assess
      expect(run.code).toBe(1)
      expect(run.stderr).toMatch(message)
      expect(run.stderr.split('\n')).toHaveLength(2)
      expect(emulator.requests).toEqual([])
    })

    it.each([
      ['not a key', ['--answer-key', 'not-a-key'], /^device: --answer-key not-a-key: an answer public key is the base64 of a 65-byte uncompressed P-256 point/],
      ['three keys', ['--answer-key', ANSWER_PUBLIC_KEY, '--answer-key', ANSWER_PUBLIC_KEY, '--answer-key', ANSWER_PUBLIC_KEY], /^device: --answer-key: at most 2 keys/],
    ])('exits 2 for an --answer-key that is %s, before sending anything', async (_name, args, message) => {
      // Prepare
      const service = await serve(signedSuccess())

      // Act
      const run = await runProgram(PLAYER, [DEVICE, UNSEALED, ...args], { HTTP_PORT: String(service.port) })

      // Assess
      expect(run.code).toBe(2)
      expect(run.stderr).toMatch(message)
      expect(service.requests).toEqual([])
    })
  })
})
