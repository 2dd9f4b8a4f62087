import { execFile, spawnSync } from 'node:child_process'
import { createPrivateKey, createPublicKey, randomBytes, sign, X509Certificate } from 'node:crypto'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { DeleteParameterCommand, GetParameterCommand, PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildCertificateRequest } from '../../cli/certificate-requests.js'
import { answerPublicPoint, generateAnswerKey, parseAnswerKey } from '../../lib/attestation/answer-signature.js'
import { openEcdhSealed } from '../../lib/attestation/seal-ecdh.js'
import { parseCertificate, parseTrustAnchors, verifyDeviceCertificate } from '../../lib/attestation/x509.js'
import { LOCAL_STAGE, LOCAL_THINGER_TOKEN, LOCAL_USERNAME, parameterNames } from '../../local/defaults.js'
import { type LocalStack, startLocalStack } from '../../local/stack.js'
import { type Moto, motoInstalled, reportMissingMoto, runCliProcess, startMoto } from '../support/moto.js'
import { newKeyPair, signWithCertificateKey } from '../support/pki.js'
import { freePort } from '../support/ports.js'

const CACHE_WAIT_MS = 1500
const run = promisify(execFile)
const cClient = spawnSync('sh', ['-c', 'echo "#include <mbedtls/x509_crt.h>\n#include <curl/curl.h>" | cc -E - >/dev/null'], { stdio: 'ignore' }).status === 0
const FLEET = 'factory'
const CA_PARAM = '/thinger-provisioner/x509-e2e/factory/ca'
reportMissingMoto('the X.509 command line suite')

describe.skipIf(!motoInstalled)('X.509 against moto’s KMS and the local stack: ca create, certs issue and sign, provisioning, revocation', () => {
  const suffix = randomBytes(3).toString('hex')
  const issued = Array.from({ length: 12 }, (_, index) => `kx_i${index}_${suffix}`)
  const requested = Array.from({ length: 4 }, (_, index) => `kx_s${index}_${suffix}`)
  const requestKeys = new Map<string, ReturnType<typeof newKeyPair>>()
  let moto: Moto | undefined
  let ssm: SSMClient
  let stack: LocalStack | undefined
  let env: NodeJS.ProcessEnv
  let dir: string

  const cli = (...args: string[]) => runCliProcess(env, args)

  async function provision(device: string, privateKeyPem: string | ReturnType<typeof newKeyPair>['privateKey'], certificatePem: string) {
    const privateKey = typeof privateKeyPem === 'string' ? createPrivateKey(privateKeyPem) : privateKeyPem
    const timestamp = Math.floor(Date.now() / 1000)
    const certificate = certificatePem.replace(/-----[^-]+-----|\s/g, '')
    const body = { device, fleet: FLEET, version: 2, timestamp, certificate, signature: signWithCertificateKey(privateKey, device, timestamp, 2) }
    const response = await fetch(`${stack!.url}/v1/provision`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    const json = (await response.json()) as any
    return { status: response.status, json, credential: () => openEcdhSealed(json.sealed, privateKey, device, timestamp, { username: LOCAL_USERNAME, device, host: new URL(stack!.thinger.url).host }) }
  }

  // The deployment's answer key, seeded into this suite's SSM; the C client pins its public half.
  const answerKey = generateAnswerKey()
  const answerPublicKey = answerPublicPoint(parseAnswerKey(answerKey, 'answer key')).toString('base64')

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'x509-e2e-'))
    moto = await startMoto(async (endpoint) => {
      ssm = new SSMClient({ endpoint, region: 'us-east-1', credentials: { accessKeyId: 'moto', secretAccessKey: 'moto' } })
      await ssm.send(new PutParameterCommand({ Name: parameterNames(LOCAL_STAGE).thingerTokenParam, Value: LOCAL_THINGER_TOKEN, Type: 'SecureString', Overwrite: true }))
      await ssm.send(new PutParameterCommand({ Name: parameterNames(LOCAL_STAGE).answerKeyParam, Value: answerKey, Type: 'SecureString', Overwrite: true }))
    })
    const { endpoint } = moto
    env = {
      PATH: process.env.PATH,
      NODE_NO_WARNINGS: '1',
      FLEETS_FILE: 'test/e2e/fixtures/x509-fleets.yml',
      STAGE: 'x509-e2e',
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'moto',
      AWS_SECRET_ACCESS_KEY: 'moto',
      AWS_ENDPOINT_URL_SSM: endpoint,
      AWS_ENDPOINT_URL_KMS: endpoint,
      SSM_CACHE_SECONDS: '1',
    }
  }, 60_000)

  afterAll(async () => {
    await stack?.close()
    moto?.stop()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('creates the fleet CA in KMS and stores its self-signed certificate where the fleet reads it, once', async () => {
    // Act
    const created = await cli('ca', 'create', '--fleet', FLEET)
    const again = await cli('ca', 'create', '--fleet', FLEET)

    // Assess
    expect([created.code, again.code]).toEqual([0, 1])
    expect(created.stdout).toContain(`alias/thinger-provisioner/x509-e2e/${FLEET}-ca): ECC_NIST_P256, sign only`)
    expect(again.stderr).toContain('already has a CA certificate')
    const stored = (await ssm.send(new GetParameterCommand({ Name: CA_PARAM }))).Parameter
    expect(stored?.Type).toBe('String')
    const [anchor] = parseTrustAnchors(stored?.Value, CA_PARAM)
    const self = new X509Certificate(anchor!.der)
    expect(self.verify(self.publicKey)).toBe(true)
    expect(anchor?.pathLength).toBe(0)
  })

  it('gets out of the circle when the CA parameter is gone but the KMS alias is not: certs issue names ca create, which signs a new certificate with the same key', async () => {
    // Prepare: what a fresh local SSM (or a deleted parameter) leaves
    const before = (await ssm.send(new GetParameterCommand({ Name: CA_PARAM }))).Parameter!.Value!
    await ssm.send(new DeleteParameterCommand({ Name: CA_PARAM }))
    writeFileSync(join(dir, 'one.csv'), 'device\nkx_circle\n')

    // Act
    const refused = await cli('certs', 'issue', '--fleet', FLEET, '--csv', join(dir, 'one.csv'), '--out', join(dir, 'circle'))
    const created = await cli('ca', 'create', '--fleet', FLEET)

    // Assess
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain(`but no CA certificate; \`ca create --fleet ${FLEET}\` makes one with that key`)
    expect(created.code).toBe(0)
    expect(created.stdout).toContain('the key the alias already named (it had no CA certificate), not a new one')
    const after = (await ssm.send(new GetParameterCommand({ Name: CA_PARAM }))).Parameter!.Value!
    const [old] = parseTrustAnchors(before, CA_PARAM)
    const [renewed] = parseTrustAnchors(after, CA_PARAM)
    expect(renewed!.publicKey!.export({ type: 'spki', format: 'der' })).toEqual(old!.publicKey!.export({ type: 'spki', format: 'der' }))
  })

  it('issues a key and a certificate per device of a CSV, reports the rate, and resumes without redoing any', async () => {
    // Prepare
    writeFileSync(join(dir, 'devices.csv'), `device\n${issued.join('\n')}\n`)

    // Act
    const first = await cli('certs', 'issue', '--fleet', FLEET, '--csv', join(dir, 'devices.csv'), '--out', join(dir, 'issued'), '--parallel', '4')
    rmSync(join(dir, 'issued', `${issued[0]}.pem`))
    const resumed = await cli('certs', 'issue', '--fleet', FLEET, '--csv', join(dir, 'devices.csv'), '--out', join(dir, 'issued'))

    // Assess
    expect([first.code, resumed.code]).toEqual([0, 0])
    expect(first.stdout).toMatch(/issued 12 certificates of fleet "factory" into .* \([\d.]+ certificates\/s, 4 KMS calls in flight\)/)
    expect(resumed.stdout).toContain('issued 1 certificates')
    expect(resumed.stdout).toContain('11 already there, skipped')
    const anchors = parseTrustAnchors((await ssm.send(new GetParameterCommand({ Name: CA_PARAM }))).Parameter?.Value, CA_PARAM)
    for (const device of issued) {
      const der = Buffer.from(readFileSync(join(dir, 'issued', `${device}.pem`), 'utf8').replace(/-----[^-]+-----|\s/g, ''), 'base64')
      const key = verifyDeviceCertificate(der, [], anchors, { device, deviceIdFrom: 'cn', nowSeconds: Math.floor(Date.now() / 1000) })
      expect(key.point).toEqual(Buffer.from((createPublicKey(createPrivateKey(readFileSync(join(dir, 'issued', `${device}.key`)))).export({ format: 'der', type: 'spki' }) as Buffer).subarray(-65)))
    }
    expect(readdirSync(join(dir, 'issued')).filter((name) => name.endsWith('.partial'))).toEqual([])
  })

  it('signs the devices’ own requests from a folder, and names each request it refuses', async () => {
    // Prepare
    mkdirSync(join(dir, 'csr'))
    for (const device of requested) {
      const keys = newKeyPair()
      requestKeys.set(device, keys)
      const csr = await buildCertificateRequest(device, keys.publicKey.export({ type: 'spki', format: 'der' }) as Buffer, 'ecdsa-sha256', async (info) => sign('sha256', info, keys.privateKey))
      writeFileSync(join(dir, 'csr', `${device}.csr`), csr)
    }
    const stranger = newKeyPair()
    const forged = await buildCertificateRequest(`kx_forged_${suffix}`, newKeyPair().publicKey.export({ type: 'spki', format: 'der' }) as Buffer, 'ecdsa-sha256', async (info) => sign('sha256', info, stranger.privateKey))
    writeFileSync(join(dir, 'csr', 'forged.csr'), forged)

    // Act
    const signed = await cli('certs', 'sign', '--fleet', FLEET, '--csr', join(dir, 'csr'), '--out', join(dir, 'signed'))

    // Assess
    expect(signed.code).toBe(1)
    expect(signed.stdout).toContain('signed 4 certificates')
    expect(signed.stderr).toContain(`forged.csr: the request of kx_forged_${suffix} is not signed by its own key`)
    expect(readdirSync(join(dir, 'signed')).sort()).toEqual(requested.map((device) => `${device}.pem`).sort())
  })

  it('provisions devices with KMS-signed certificates through the stack (one Thinger call each, sealed answers) and refuses a revoked one', async () => {
    // Prepare
    stack = await startLocalStack({
      httpPort: await freePort(),
      lambdaPort: await freePort(),
      thingerPort: 0,
      ssmEndpoint: env.AWS_ENDPOINT_URL_SSM!,
      fleetsFile: 'test/e2e/fixtures/x509-fleets.yml',
      env: { SSM_CACHE_SECONDS: '1' },
      onOutput: () => undefined,
    })
    const issuedDevice = issued[1]!
    const requestedDevice = requested[0]!

    // Act
    const fromIssue = await provision(issuedDevice, readFileSync(join(dir, 'issued', `${issuedDevice}.key`), 'utf8'), readFileSync(join(dir, 'issued', `${issuedDevice}.pem`), 'utf8'))
    const fromSign = await provision(requestedDevice, requestKeys.get(requestedDevice)!.privateKey, readFileSync(join(dir, 'signed', `${requestedDevice}.pem`), 'utf8'))
    const callsAfterProvisioning = stack.thinger.calls().length
    const revoked = await cli('revoke', '--fleet', FLEET, '--certificate', join(dir, 'signed', `${requested[1]}.pem`))
    await new Promise((resolve) => setTimeout(resolve, CACHE_WAIT_MS))
    const refused = await provision(requested[1]!, requestKeys.get(requested[1]!)!.privateKey, readFileSync(join(dir, 'signed', `${requested[1]}.pem`), 'utf8'))

    // Assess
    expect([fromIssue.status, fromSign.status]).toEqual([201, 201])
    expect(callsAfterProvisioning).toBe(2)
    expect(stack.thinger.checkLogin(LOCAL_USERNAME, issuedDevice, fromIssue.credential())).toEqual({ ok: true })
    expect(stack.thinger.checkLogin(LOCAL_USERNAME, requestedDevice, fromSign.credential())).toEqual({ ok: true })
    expect(revoked.code).toBe(0)
    expect([refused.status, refused.json.error?.code]).toEqual([403, 'certificate_revoked'])
    expect(stack.thinger.calls().length).toBe(callsAfterProvisioning)
    expect(parseCertificate(Buffer.from(readFileSync(join(dir, 'signed', `${requested[1]}.pem`), 'utf8').replace(/-----[^-]+-----|\s/g, ''), 'base64')).isCa).toBe(false)
  })

  it.skipIf(!cClient)('the Linux C client provisions with the key and certificate certs issue made (sealed), and with an RSA key whose request certs sign signed (unsealed fleet)', async () => {
    // Prepare
    await run('make', ['-C', 'clients/c', 'build/provision'], { timeout: 120_000 })
    const issuedDevice = issued[2]!
    const rsaDevice = `kx_rsa_${suffix}`
    const rsaKeys = newKeyPair({ type: 'rsa', bits: 2048 })
    mkdirSync(join(dir, 'rsa'))
    writeFileSync(join(dir, 'rsa', `${rsaDevice}.csr`), await buildCertificateRequest(rsaDevice, rsaKeys.publicKey.export({ type: 'spki', format: 'der' }) as Buffer, 'rsa-sha256', async (info) => sign('sha256', info, rsaKeys.privateKey)))
    writeFileSync(join(dir, 'rsa', `${rsaDevice}.key`), rsaKeys.privateKey.export({ type: 'pkcs1', format: 'pem' }) as string, { mode: 0o600 })
    const signed = await cli('certs', 'sign', '--fleet', FLEET, '--csr', join(dir, 'rsa', `${rsaDevice}.csr`), '--out', join(dir, 'rsa'))
    const client = (...args: string[]) => run('clients/c/build/provision', ['--url', stack!.url, '--max-attempts', '1', '--answer-key', answerPublicKey, ...args], { timeout: 60_000 })
    const callsBefore = stack!.thinger.calls().length

    // Act
    const fromIssue = await client('--cert', join(dir, 'issued', `${issuedDevice}.pem`), '--key', join(dir, 'issued', `${issuedDevice}.key`), '--fleet', FLEET, '--out', join(dir, 'issued.credentials'))
    const fromRsa = await client('--cert', join(dir, 'rsa', `${rsaDevice}.pem`), '--key', join(dir, 'rsa', `${rsaDevice}.key`), '--fleet', 'legacy', '--unsealed', '--out', join(dir, 'rsa.credentials'))

    // Assess
    expect([signed.code, signed.stderr]).toEqual([0, ''])
    expect([fromIssue.stderr, fromRsa.stderr]).toEqual(['', ''])
    expect(stack!.thinger.calls().length - callsBefore).toBe(2)
    const credential = (file: string) => readFileSync(join(dir, file), 'utf8').match(/^credential=(.+)$/m)?.[1] ?? ''
    expect(stack!.thinger.checkLogin(LOCAL_USERNAME, issuedDevice, credential('issued.credentials'))).toEqual({ ok: true })
    expect(stack!.thinger.checkLogin(LOCAL_USERNAME, rsaDevice, credential('rsa.credentials'))).toEqual({ ok: true })
  })
})
