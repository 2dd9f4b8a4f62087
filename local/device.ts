import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { buildCertificate, CLIENT_AUTH, readIssuer } from '../cli/certificates.js'
import { AnswerKeyError, MAX_PINNED_ANSWER_KEYS, parseAnswerPublicKey, requestBodyDigest, type SignedAnswer, verifyAnswerSignature } from '../lib/attestation/answer-signature.js'
import { decodeFleetKey, deriveDeviceKey, signRequest, signWithCertificateKey } from '../lib/attestation/keys.js'
import { deriveClaimSealKey, deriveHmacSealKey, openSealed, type SealBinding, type SealKey } from '../lib/attestation/seal.js'
import { openEcdhSealed } from '../lib/attestation/seal-ecdh.js'
import { pemCertificates } from '../lib/attestation/x509.js'
import { DEFAULT_HTTP_PORT, DEFAULT_THINGER_PORT, LOCAL_ANSWER_KEY_FILE, LOCAL_FLEET_KEY, LOCAL_WORKSHOP_CLAIM_SECRET, LOCAL_WORKSHOP_FLEET_KEY } from './defaults.js'
import { LocalSettingError, readPort } from './settings.js'

// `npm run device`: plays a device against the local stack (or a deployed service with --url).
// Exit codes as the operators' command line: 0 done, 1 failed, 2 usage or configuration error.
const EXIT_FAILURE = 1
const EXIT_USAGE = 2
// The local stack's fleet keys, so `--fleet workshop` needs nothing else.
const LOCAL_FLEET_KEYS: Record<string, string> = { default: LOCAL_FLEET_KEY, workshop: LOCAL_WORKSHOP_FLEET_KEY }
const DEVICE_KEY_BYTES = 32
const MAX_RETRY_AFTER_SECONDS = 60
const PROVISION_PATH = '/v1/provision'
const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]'])
// The local stack's fleets that trust its dev CA (local/fleets.yml): the player issues itself a
// certificate of that CA for them, so `--fleet factory` needs nothing else.
const LOCAL_X509_FLEETS = new Set(['factory'])
const PROJECT_DIR = join(dirname(fileURLToPath(import.meta.url)), '..')
const LOCAL_CA_DIR = join(PROJECT_DIR, 'local', 'x509')
const LOCAL_CERTIFICATE_DAYS = 1
const DAY_MS = 86_400_000

const USAGE = `Usage: npm run device -- <deviceId> [options]

Plays a device: derives its key, signs a provisioning request, sends it, prints the answer and,
against the local stack, proves the returned credential logs in to the Thinger.io emulator.

Options:
  --url URL            provisioning service (default http://127.0.0.1:$HTTP_PORT, HTTP_PORT ${DEFAULT_HTTP_PORT})
  --fleet NAME         the fleet to join (default: the service's default fleet)
  --claim              prove membership with the fleet's claim secret instead of a device key
  --claim-secret S     the claim secret (default: the local workshop fleet's development secret)
  --meta KEY=VALUE     a meta value for the fleet's profile templates (repeatable)
  --device-key KEY     the device's own key, base64 (default: derived from --fleet-key)
  --fleet-key KEY      fleet key, base64 (default: the local stack's development key of --fleet)
  --cert FILE          prove with this X.509 device certificate (PEM or DER; its CN is the device
                       ID for a fleet with deviceId: cn) and sign with --key; for --fleet factory
                       the player issues itself one of the local dev CA (local/x509) when not given
  --key FILE           the certificate's private key (PEM: P-256 for sealed answers, or RSA)
  --emulator URL       Thinger.io emulator for the login check (default: the host the answer names
                       when it is local, else http://127.0.0.1:$THINGER_EMULATOR_PORT, ${DEFAULT_THINGER_PORT})
  --no-login-check     skip the login check (for a deployed service against real Thinger.io)
  --timestamp N        sign this Unix time instead of the clock's (to try clock_skew)
  --text               ask for the text response (Accept: text/plain) that small firmware parses
  --unsealed           protocol v1: the credential comes in clear (default: v2, sealed to the
                       device's key and opened here, docs/protocol.md)
  --answer-key KEY     the service's answer public key to pin, base64 as \`answer-key show\` prints
                       it, or a file holding it; twice for a rotation (default, without --url: the
                       key \`npm start\` wrote to $ANSWER_KEY_FILE, ${LOCAL_ANSWER_KEY_FILE}). Every
                       answer must carry a valid signature under it; without one, claim and
                       certificate answers are refused (whoever saw the request, or the
                       certificate, could have sealed them)
  -h, --help           this help

Exit codes: 0 provisioned (and logged in), 1 refused or failed, 2 usage or configuration error.`

/** A failure the player reports as one line. */
class PlayerError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT_FAILURE,
    readonly showUsage = false,
  ) {
    super(message)
  }
}

interface Answer {
  status: number
  text: string
  /** The fields of the answer, from JSON or from `key=value` lines; undefined when it is neither. */
  fields: Record<string, unknown> | undefined
}

async function main(argv: string[]): Promise<number> {
  const options = await parseOptions(argv)
  if (options === 'help') {
    console.log(USAGE)
    return 0
  }
  const { device, endpoint, text } = options
  let signedAt = options.timestamp ?? Math.floor(Date.now() / 1000)
  let sentBody = ''
  const provision = (timestamp: number) => {
    signedAt = timestamp
    sentBody = options.body(timestamp)
    return send(endpoint, text, sentBody)
  }

  let answer = await provision(signedAt)
  // What firmware does (docs/firmware.md): on clock_skew, or replayed with the server's time, sign
  // again with that time; on replayed with retry_after (a device created seconds ago), wait and sign
  // again. Twice at most.
  for (let retries = 0; retries < 2 && answer.status === 401; retries++) {
    const error = errorFields(answer, text)
    let timestamp: number
    if ((error.code === 'clock_skew' || error.code === 'replayed') && error.serverTime !== undefined) {
      console.error(`${error.code}: signing again with the server's time ${error.serverTime}`)
      timestamp = error.serverTime
    } else if (error.code === 'replayed' && error.retryAfter !== undefined) {
      const waitSeconds = Math.min(error.retryAfter, MAX_RETRY_AFTER_SECONDS)
      console.error(`replayed: the device was created moments ago; waiting ${waitSeconds} s as the service asks`)
      await new Promise((resolve) => setTimeout(resolve, waitSeconds * 1000))
      timestamp = Math.floor(Date.now() / 1000)
    } else {
      break
    }
    answer = await provision(timestamp)
  }

  checkNotCrashed(answer)
  console.log(`HTTP ${answer.status}`)
  console.log(answer.text.trimEnd())
  if (answer.status < 200 || answer.status > 299) return EXIT_FAILURE
  const fields = answer.fields ?? {}
  const opener = options.opener(signedAt)
  // Before anything of the answer is opened or used: only the service can have signed it.
  checkAnswerSignature(fields, sentBody, options.answerKeys, opener)
  if (opener !== undefined) fields.credential = openCredential(fields, opener)
  const credentials = ['username', 'device', 'credential', 'host'].map((name) => fields[name])
  if (!credentials.every((value) => typeof value === 'string' && value !== '')) {
    throw new PlayerError(`the answer holds no credentials (username, device, credential, host): not a provisioning service at ${endpoint}?`)
  }
  const [username, provisioned, credential, host] = credentials as string[]
  if (provisioned !== device) throw new PlayerError(`the answer is for device ${provisioned}, not ${device}`)
  if (!options.loginCheck) return 0
  return loginCheck(options.emulator ?? emulatorFor(host!), username!, device, credential!)
}

interface PlayerOptions {
  device: string
  endpoint: string
  text: boolean
  timestamp: number | undefined
  emulator: string | undefined
  loginCheck: boolean
  /** The service's answer public keys the player pins (none: unsigned v1 and device-key answers are accepted, as the C core does). */
  answerKeys: KeyObject[]
  /** What opens the answer to a request signed at `timestamp`; undefined for protocol v1 (--unsealed). */
  opener(timestamp: number): Opener | undefined
  body(timestamp: number): string
}

/** Opens a sealed credential, and says with what. */
interface Opener {
  mode: SealKey['mode']
  open(sealed: string, binding: SealBinding): string
  says: string
}

/** A device's certificate and the private key that signs for it. */
interface CertificateIdentity {
  der: Buffer
  privateKey: KeyObject
}

async function parseOptions(argv: string[]): Promise<PlayerOptions | 'help'> {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        url: { type: 'string' },
        fleet: { type: 'string' },
        claim: { type: 'boolean', default: false },
        'claim-secret': { type: 'string' },
        meta: { type: 'string', multiple: true, default: [] },
        'device-key': { type: 'string' },
        'fleet-key': { type: 'string' },
        cert: { type: 'string' },
        key: { type: 'string' },
        emulator: { type: 'string' },
        'no-login-check': { type: 'boolean', default: false },
        timestamp: { type: 'string' },
        text: { type: 'boolean', default: false },
        unsealed: { type: 'boolean', default: false },
        'answer-key': { type: 'string', multiple: true, default: [] },
        help: { type: 'boolean', short: 'h', default: false },
      },
    })
  } catch (error) {
    // Node's message goes on to explain `--` for positionals that start with a dash: the first sentence says it.
    throw new PlayerError((error as Error).message.split(/\.\s/)[0]!.replace(/^Unknown/, 'unknown'), EXIT_USAGE, true)
  }
  const { values, positionals } = parsed
  if (values.help) return 'help'
  const device = positionals[0]
  if (device === undefined) throw new PlayerError('a device ID is required', EXIT_USAGE, true)
  if (positionals.length > 1) throw new PlayerError(`one device ID only (also given: ${positionals.slice(1).join(' ')})`, EXIT_USAGE, true)

  const meta: Record<string, string> = {}
  for (const pair of values.meta) {
    const equals = pair.indexOf('=')
    if (equals < 1) throw new PlayerError(`--meta takes KEY=VALUE, got "${pair}"`, EXIT_USAGE, true)
    meta[pair.slice(0, equals)] = pair.slice(equals + 1)
  }
  let timestamp: number | undefined
  if (values.timestamp !== undefined) {
    if (!/^\d{1,12}$/.test(values.timestamp)) throw new PlayerError('--timestamp takes a Unix time in seconds', EXIT_USAGE, true)
    timestamp = Number(values.timestamp)
  }
  const claim = values.claim || values['claim-secret'] !== undefined ? (values['claim-secret'] ?? LOCAL_WORKSHOP_CLAIM_SECRET) : undefined
  if ((values.cert === undefined) !== (values.key === undefined)) throw new PlayerError('--cert and --key come together: the certificate and its private key', EXIT_USAGE, true)
  const wantsCertificate = values.cert !== undefined || (LOCAL_X509_FLEETS.has(values.fleet ?? '') && claim === undefined && values['device-key'] === undefined && values['fleet-key'] === undefined)
  if (wantsCertificate && (claim !== undefined || values['device-key'] !== undefined || values['fleet-key'] !== undefined)) {
    throw new PlayerError('--cert proves with a certificate: not with --claim, --device-key or --fleet-key', EXIT_USAGE, true)
  }
  const certificate = !wantsCertificate ? undefined : values.cert === undefined ? await issueLocalCertificate(device) : readCertificateIdentity(values.cert, values.key!)
  const deviceKey =
    claim === undefined && certificate === undefined
      ? readDeviceKey(device, values['device-key'], values['fleet-key'] ?? LOCAL_FLEET_KEYS[values.fleet ?? 'default'] ?? LOCAL_FLEET_KEY)
      : undefined
  const baseUrl = values.url === undefined ? `http://127.0.0.1:${readPort('HTTP_PORT', DEFAULT_HTTP_PORT)}` : readUrl('--url', values.url)
  const emulator = values.emulator === undefined ? undefined : readUrl('--emulator', values.emulator)
  const version = values.unsealed ? 1 : 2
  const answerKeys = readAnswerKeys(values['answer-key'], values.url === undefined)

  return {
    device,
    // A URL copied from the banner or from osls's output already ends in the route.
    endpoint: `${baseUrl.replace(/\/+$/, '').replace(new RegExp(`${PROVISION_PATH}$`), '')}${PROVISION_PATH}`,
    text: values.text,
    timestamp,
    emulator,
    loginCheck: !values['no-login-check'],
    answerKeys,
    opener: (signedAt) => {
      if (version === 1) return undefined
      if (certificate !== undefined) {
        return {
          mode: 'ecdh',
          open: (sealed, binding) => openEcdhSealed(sealed, certificate.privateKey, device, signedAt, binding),
          says: "sealed: opened with the certificate's private key; whoever replays this request gets only what they cannot open",
        }
      }
      return deviceKey === undefined
        ? sealedWith(deriveClaimSealKey(claim!, device), 'sealed: opened with the claim secret (every holder of it could: docs/protocol.md)')
        : sealedWith(deriveHmacSealKey(deviceKey, device, signedAt), 'sealed: opened with the device key; whoever replays this request gets only what they cannot open')
    },
    body: (signedAt) =>
      JSON.stringify({
        device,
        ...(certificate !== undefined
          ? { timestamp: signedAt, certificate: certificate.der.toString('base64'), signature: signWithCertificateKey(certificate.privateKey, device, signedAt, version) }
          : deviceKey === undefined
            ? { claim }
            : { timestamp: signedAt, signature: signRequest(deviceKey, device, signedAt, version) }),
        ...(version === 2 ? { version } : {}),
        ...(values.fleet ? { fleet: values.fleet } : {}),
        ...(values.meta.length > 0 ? { meta } : {}),
      }),
  }
}

/**
 * The pinned answer keys: each --answer-key (a key or a file holding one), else, against the local
 * stack, the one `npm start` wrote.
 */
function readAnswerKeys(given: string[], localStack: boolean): KeyObject[] {
  if (given.length > MAX_PINNED_ANSWER_KEYS) throw new PlayerError(`--answer-key: at most ${MAX_PINNED_ANSWER_KEYS} keys (the current one and, during a rotation, the next)`, EXIT_USAGE)
  const defaultFile = resolve(PROJECT_DIR, process.env.ANSWER_KEY_FILE || LOCAL_ANSWER_KEY_FILE)
  const sources = given.length > 0 ? given : localStack && existsSync(defaultFile) ? [defaultFile] : []
  return sources.map((source) => {
    let text = source
    try {
      if (existsSync(source)) text = readFileSync(source, 'utf8')
      return parseAnswerPublicKey(text)
    } catch (error) {
      const reason = error instanceof AnswerKeyError ? error.message : (error as Error).message
      throw new PlayerError(`--answer-key ${source.length > 100 ? `${source.slice(0, 100)}…` : source}: ${reason}`, EXIT_USAGE)
    }
  })
}

/**
 * What a device does before it keeps anything (docs/protocol.md, "Answer signatures"): with pinned
 * keys, the answer must carry a signature over its fields and this exact request body that one of
 * them verifies; without, only answers nobody in the middle can forge (v1 in clear, mode 1) pass.
 */
function checkAnswerSignature(fields: Record<string, unknown>, requestBody: string, answerKeys: KeyObject[], opener: Opener | undefined): void {
  if (answerKeys.length === 0) {
    if (opener?.mode === 'claim') {
      throw new PlayerError('refused: a sealed claim answer is trusted only under a pinned answer key (--answer-key, from `answer-key show`): whoever saw the request could have sealed it')
    }
    // As the C core: a certificate's key is public, so anyone could have sealed to it.
    if (opener?.mode === 'ecdh') {
      throw new PlayerError("refused: an answer sealed to a certificate's key is trusted only under a pinned answer key (--answer-key, from `answer-key show`): the certificate is public, anyone could have sealed it")
    }
    console.log('answer signature: not checked (no answer key pinned: --answer-key)')
    return
  }
  const signature = fields.answerSignature ?? fields.answer_signature
  if (signature === undefined) {
    throw new PlayerError('refused: the answer carries no answer signature (a service without its answer key, or a party in the middle); nothing was kept')
  }
  if (!verifyAnswerSignature(fields as unknown as SignedAnswer, requestBodyDigest(requestBody), signature, answerKeys)) {
    throw new PlayerError('refused: the answer signature does not verify under the pinned answer key (a party in the middle, or another deployment); nothing was kept')
  }
  console.log('answer signature: verified under the pinned answer key')
}

/** Opens the sealed credential of a v2 answer with what the request that got it holds. */
function openCredential(fields: Record<string, unknown>, opener: Opener): string {
  if (typeof fields.sealed !== 'string') {
    throw new PlayerError('the answer carries no sealed credential: a service from before sealing? (try --unsealed)')
  }
  let credential: string
  try {
    credential = opener.open(fields.sealed, { username: String(fields.username), device: String(fields.device), host: String(fields.host) })
  } catch (error) {
    throw new PlayerError(`the sealed credential does not open: ${(error as Error).message} (a wrong key, or the answer was changed on the way)`)
  }
  console.log(opener.says)
  return credential
}

function sealedWith(sealKey: SealKey, says: string): Opener {
  return { mode: sealKey.mode, open: (sealed, binding) => openSealed(sealed, sealKey, binding), says }
}

/** The signature a device with a certificate sends (docs/protocol.md): P-256 as r‖s, RSA as PKCS#1 v1.5. */
/**
 * A fresh P-256 key and a certificate for it, CN = the device ID, issued in memory by the local
 * stack's dev CA (local/x509, LOCAL DEV ONLY): what a factory would have flashed.
 */
async function issueLocalCertificate(device: string): Promise<CertificateIdentity> {
  const ca = createPrivateKey(readFileSync(join(LOCAL_CA_DIR, 'ca.key.pem')))
  const caDer = firstPemCertificate(readFileSync(join(LOCAL_CA_DIR, 'ca.pem'), 'utf8'))
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
  const now = Date.now()
  const der = await buildCertificate(
    {
      subject: { commonName: device },
      issuer: readIssuer(caDer),
      publicKey: publicKey.export({ type: 'spki', format: 'der' }),
      notBefore: new Date(now - DAY_MS),
      notAfter: new Date(now + LOCAL_CERTIFICATE_DAYS * DAY_MS),
      ca: false,
      keyUsage: ['digitalSignature', 'keyAgreement'],
      extKeyUsage: [CLIENT_AUTH],
    },
    { algorithm: 'ecdsa-sha256', sign: async (tbs) => sign('sha256', tbs, ca) },
  )
  console.log(`certificate: CN=${device}, P-256, issued just now by the local dev CA (local/x509, LOCAL DEV ONLY); --cert/--key for your own`)
  return { der, privateKey }
}

function readCertificateIdentity(certFile: string, keyFile: string): CertificateIdentity {
  const read = (file: string, option: string) => {
    try {
      return readFileSync(file)
    } catch (error) {
      throw new PlayerError(`${option} ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, EXIT_USAGE)
    }
  }
  const certText = read(certFile, '--cert')
  const der = certText.toString('latin1').includes('-----BEGIN CERTIFICATE-----') ? firstPemCertificate(certText.toString('utf8')) : certText
  let publicKey: Buffer
  try {
    publicKey = readIssuer(der).publicKey
  } catch {
    throw new PlayerError(`--cert ${certFile} is not an X.509 certificate (PEM or DER)`, EXIT_USAGE)
  }
  let privateKey: KeyObject
  try {
    privateKey = createPrivateKey(read(keyFile, '--key'))
  } catch (error) {
    if (error instanceof PlayerError) throw error
    throw new PlayerError(`--key ${keyFile} is not a private key in PEM (unencrypted PKCS#8, SEC1 or PKCS#1)`, EXIT_USAGE)
  }
  if (!createPublicKey(privateKey).export({ type: 'spki', format: 'der' }).equals(publicKey)) {
    throw new PlayerError(`--key ${keyFile} is not the key of the certificate in --cert ${certFile}`, EXIT_USAGE)
  }
  return { der, privateKey }
}

function firstPemCertificate(pem: string): Buffer {
  return pemCertificates(pem)[0] ?? Buffer.alloc(0)
}

function readDeviceKey(device: string, deviceKey: string | undefined, fleetKey: string): Buffer {
  if (deviceKey !== undefined) {
    const key = Buffer.from(deviceKey, 'base64')
    if (key.length !== DEVICE_KEY_BYTES || key.toString('base64') !== deviceKey.trim()) {
      throw new PlayerError(`--device-key must be the base64 of ${DEVICE_KEY_BYTES} bytes, as \`keys derive\` prints it`, EXIT_USAGE)
    }
    return key
  }
  try {
    return deriveDeviceKey(decodeFleetKey(fleetKey, '--fleet-key'), device)
  } catch {
    throw new PlayerError('--fleet-key must be the base64 of at least 32 bytes', EXIT_USAGE)
  }
}

function readUrl(option: string, value: string): string {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new PlayerError(`${option} must be an absolute http(s) URL, got "${value}"`, EXIT_USAGE, true)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new PlayerError(`${option} must be an absolute http(s) URL, got "${value}"`, EXIT_USAGE, true)
  return `${url.origin}${url.pathname}`
}

async function send(endpoint: string, text: boolean, body: string): Promise<Answer> {
  let response: Response
  try {
    response = await fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: text ? 'text/plain' : 'application/json' },
      body,
    })
  } catch (error) {
    const hint = new URL(endpoint).hostname === '127.0.0.1' ? ': is `npm start` running, on this HTTP_PORT?' : ''
    throw new PlayerError(`no answer from ${endpoint} (${reasonOf(error)})${hint}`)
  }
  const answerText = await response.text()
  return { status: response.status, text: answerText, fields: parseFields(answerText) }
}

function parseFields(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text)
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined
  } catch {
    const lines = text.trim().split('\n')
    if (lines[0] === '' || !lines.every((line) => /^[a-z_]+=/.test(line))) return undefined
    return Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]))
  }
}

function errorFields(answer: Answer, text: boolean): { code?: unknown; serverTime?: number; retryAfter?: number } {
  const fields = (text ? answer.fields : (answer.fields?.error as Record<string, unknown> | undefined)) ?? {}
  const number = (value: unknown) => (Number.isFinite(Number(value)) && Number(value) > 0 ? Number(value) : undefined)
  return text
    ? { code: fields.error, serverTime: number(fields.server_time), retryAfter: number(fields.retry_after) }
    : { code: fields.code, serverTime: number(fields.serverTime), retryAfter: number(fields.retryAfter) }
}

/**
 * serverless-offline answers a function that crashed (a module that does not load, an uncaught
 * throw) with a Lambda error report, often as HTTP 200: never pass it off as an answer.
 */
function checkNotCrashed(answer: Answer): void {
  const fields = answer.fields
  if (fields === undefined || typeof fields.errorMessage !== 'string' || 'error' in fields) return
  const type = typeof fields.errorType === 'string' ? fields.errorType : 'Error'
  const summary = fields.errorMessage.split('\n')[0]!.replace(/^Error: /, '').slice(0, 200)
  throw new PlayerError(`the function crashed (HTTP ${answer.status}, ${type}: ${summary}); its log is in the terminal of \`npm start\``)
}

function emulatorFor(host: string): string {
  const hostname = host.replace(/:\d+$/, '')
  if (LOOPBACK_HOSTS.has(hostname)) return `http://${host}`
  return `http://127.0.0.1:${readPort('THINGER_EMULATOR_PORT', DEFAULT_THINGER_PORT)}`
}

async function loginCheck(emulator: string, username: string, device: string, credential: string): Promise<number> {
  let verdict: unknown
  try {
    const login = await fetch(`${emulator.replace(/\/+$/, '')}/__emulator/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username, device, credential }),
    })
    verdict = await login.json()
  } catch (error) {
    throw new PlayerError(`login check: no Thinger.io emulator at ${emulator} (${reasonOf(error)}); against a deployed service add --no-login-check`)
  }
  const check = verdict as { ok?: unknown; reason?: unknown }
  if (check?.ok === true) {
    console.log(`login check: the emulator accepts ${username}/${device} with the returned credential`)
    return 0
  }
  if (typeof check?.reason !== 'string') throw new PlayerError(`login check: ${emulator} is not a Thinger.io emulator (unexpected answer)`)
  console.log(`login check FAILED: the emulator refuses ${username}/${device} (${check.reason})`)
  return EXIT_FAILURE
}

function reasonOf(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } })?.cause
  if (cause?.code === 'ECONNREFUSED') return 'connection refused'
  return cause?.code ?? cause?.message ?? (error as Error)?.message ?? String(error)
}

try {
  process.exitCode = await main(process.argv.slice(2))
} catch (error) {
  const known = error instanceof LocalSettingError ? new PlayerError(error.message, EXIT_USAGE) : error
  if (known instanceof PlayerError) {
    console.error(`device: ${known.message}`)
    if (known.showUsage) console.error(`${USAGE.split('\n')[0]}   (--help for every option)`)
    process.exitCode = known.exitCode
  } else {
    // Only the class and message, as the command line does: a bug still gets one line.
    console.error(`device: unexpected ${(error as Error)?.name ?? 'Error'}: ${(error as Error)?.message ?? String(error)}`)
    process.exitCode = EXIT_FAILURE
  }
}
