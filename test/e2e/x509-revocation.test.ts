import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseCertificate } from '../../lib/attestation/x509.js'
import { LOCAL_FLEETS_FILE, LOCAL_STAGE, LOCAL_USERNAME } from '../../local/defaults.js'
import { type LocalStack, startLocalStack } from '../../local/stack.js'
import { newDeviceId } from '../support/device.js'
import { runCliProcess } from '../support/moto.js'
import { certificateBody, issue, type Issued, localCa, signatureTwin } from '../support/pki.js'
import { freePort } from '../support/ports.js'

// The function caches SSM values for SSM_CACHE_SECONDS=1: a revocation is seen after this wait.
const CACHE_WAIT_MS = 1500

/**
 * Issue 17, findings 1 and 2, against the running stack (local/fleets.yml, fleet `factory`): the
 * operator revokes with the command line, the holder of the revoked device's flash tries again.
 */
describe('X.509 revocation by identity against the running stack (fleet factory)', () => {
  let stack: LocalStack
  let dir: string
  let env: NodeJS.ProcessEnv
  const ca = localCa()

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'x509-revocation-'))
    stack = await startLocalStack({ httpPort: await freePort(), lambdaPort: await freePort(), thingerPort: 0, ssmPort: 0, env: { SSM_CACHE_SECONDS: '1' }, onOutput: () => undefined })
    env = {
      PATH: process.env.PATH,
      NODE_NO_WARNINGS: '1',
      STAGE: LOCAL_STAGE,
      FLEETS_FILE: LOCAL_FLEETS_FILE,
      SSM_CACHE_SECONDS: '1',
      AWS_ENDPOINT_URL_SSM: stack.ssmEndpoint,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
      THINGER_USERNAME: LOCAL_USERNAME,
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    }
  }, 120_000)
  afterAll(async () => {
    await stack?.close()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  async function post(device: Issued & { device: string }, chain?: Buffer[]): Promise<{ status: number; code: string | undefined }> {
    const body = { ...certificateBody(device, { version: 2, ...(chain ? { chain } : {}) }), fleet: 'factory' }
    const response = await fetch(`${stack.url}/v1/provision`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    const json = (await response.json()) as { error?: { code?: string } }
    return { status: response.status, code: json.error?.code }
  }
  const device = async (issuer: Issued = ca, overrides: Parameters<typeof issue>[2] = {}) => {
    const id = newDeviceId('x5')
    return { ...(await issue(issuer, id, overrides)), device: id }
  }
  const intermediate = (name: string) => issue(ca, name, { ca: true, keyUsage: ['keyCertSign'], extKeyUsage: undefined })
  async function revoke(...values: string[]) {
    const result = await runCliProcess(env, ['revoke', '--fleet', 'factory', ...values.flatMap((value) => ['--certificate', value])])
    expect(result.code, result.stderr).toBe(0)
    await new Promise((resolve) => setTimeout(resolve, CACHE_WAIT_MS))
    return result
  }
  const file = (name: string, certificate: Issued) => {
    const path = join(dir, `${name}.pem`)
    writeFileSync(path, certificate.pem)
    return path
  }

  it('refuses the re-encoded twin of a certificate revoked with revoke --certificate FILE, with no Thinger call', async () => {
    // Prepare: the device provisioned once; its flash was dumped
    const stolen = await device()
    expect((await post(stolen)).status).toBe(201)
    const twin = { ...stolen, der: signatureTwin(stolen.der) }

    // Act
    const revoked = await revoke(file('stolen', stolen))
    const callsBefore = stack.thinger.calls().length
    const original = await post(stolen)
    const reEncoded = await post(twin)

    // Assess
    expect(parseCertificate(twin.der).fingerprint).not.toBe(parseCertificate(stolen.der).fingerprint)
    expect([original, reEncoded]).toEqual([
      { status: 403, code: 'certificate_revoked' },
      { status: 403, code: 'certificate_revoked' },
    ])
    expect(stack.thinger.calls().length).toBe(callsBefore)
    expect(revoked.stdout).toContain(`certificate key:${parseCertificate(stolen.der).keyId}`)
  })

  it('refuses every device under an intermediate revoked by file or by serial, and no other', async () => {
    // Prepare: two factory lines, each with its issuing CA under the fleet CA
    const [lineA, lineB, lineC] = await Promise.all([intermediate('Line A'), intermediate('Line B'), intermediate('Line C')])
    const seen = await device(lineA)
    expect((await post(seen, [lineA.der])).status).toBe(201)
    const [neverSeen, underB, underC] = await Promise.all([device(lineA), device(lineB), device(lineC)])

    // Act
    await revoke(file('line-a', lineA), `serial:${parseCertificate(lineB.der).serial}`)
    const callsBefore = stack.thinger.calls().length
    const answers = [await post(seen, [lineA.der]), await post(neverSeen, [lineA.der]), await post(underB, [lineB.der])]
    const refusedCalls = stack.thinger.calls().length - callsBefore
    const other = await post(underC, [lineC.der])

    // Assess
    expect(answers).toEqual(Array(3).fill({ status: 403, code: 'certificate_revoked' }))
    expect(refusedCalls).toBe(0)
    expect(other.status).toBe(201)
  })
})
