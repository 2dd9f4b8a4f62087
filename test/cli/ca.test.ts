import { createPublicKey, generateKeyPairSync, type KeyObject, sign } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import type { KmsPort } from '../../cli/kms.js'
import { MemorySsm, run } from './fakes.js'

const ENV = { FLEETS_FILE: 'test/e2e/fixtures/x509-fleets.yml', STAGE: 'x509-e2e' }
const CA_PARAM = '/thinger-provisioner/x509-e2e/factory/ca'
const ALIAS = 'alias/thinger-provisioner/x509-e2e/factory-ca'

/** KMS in memory: P-256 signing keys by alias, as `ca create` makes them. */
class MemoryKms implements KmsPort {
  readonly keys = new Map<string, KeyObject>()
  readonly aliases = new Map<string, string>()

  async createSigningKey(input: { alias: string }): Promise<string> {
    const keyId = `key-${this.keys.size + 1}`
    this.keys.set(keyId, generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey)
    this.aliases.set(input.alias, keyId)
    return keyId
  }

  async findAlias(alias: string): Promise<string | undefined> {
    return this.aliases.get(alias)
  }

  async publicKey(keyId: string): Promise<Buffer> {
    return createPublicKey(this.keys.get(keyId)!).export({ type: 'spki', format: 'der' }) as Buffer
  }

  async sign(keyId: string, message: Buffer): Promise<Buffer> {
    return sign('sha256', message, this.keys.get(keyId)!)
  }
}

describe('Command: ca create and certs issue, when the CA certificate is gone but its KMS key is not', () => {
  it('certs issue names ca create, and ca create makes a new certificate with the existing key, after which certs issue works', async () => {
    // Prepare: a CA made once, then its SSM parameter lost (a fresh local stack's SSM starts empty)
    const kms = new MemoryKms()
    const first = await run(['ca', 'create', '--fleet', 'factory'], { env: ENV, ssm: new MemorySsm(), overrides: { kms: () => kms } })
    expect(first.code).toBe(0)
    const ssm = new MemorySsm()
    const options = { env: ENV, ssm, overrides: { kms: () => kms } }

    // Act
    const dir = mkdtempSync(join(tmpdir(), 'ca-'))
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
    writeFileSync(join(dir, 'devices.csv'), 'device\nkx_one\n')
    const issue = () => run(['certs', 'issue', '--fleet', 'factory', '--csv', join(dir, 'devices.csv'), '--out', join(dir, 'out')], options)
    const refused = await issue()
    const created = await run(['ca', 'create', '--fleet', 'factory'], options)

    // Assess: the way out is named, and it works with the key that was there
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain(`fleet "factory" has a CA key (KMS alias ${ALIAS}) but no CA certificate; \`ca create --fleet factory\` makes one with that key`)
    expect(created.code).toBe(0)
    expect(created.stdout).toContain('the key the alias already named (it had no CA certificate), not a new one')
    expect(kms.keys.size).toBe(1)
    const pem = ssm.parameters.get(CA_PARAM)!.value
    const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64')
    expect(der.includes(await kms.publicKey('key-1'))).toBe(true)
    const issued = await issue()
    expect(issued.stderr).toBe('')
    expect(issued.code).toBe(0)
  })

  it('refuses a second ca create while both are there, and names how to start over when only the certificate is', async () => {
    // Prepare
    const kms = new MemoryKms()
    const ssm = new MemorySsm()
    const options = { env: ENV, ssm, overrides: { kms: () => kms } }
    await run(['ca', 'create', '--fleet', 'factory'], options)

    // Act
    const again = await run(['ca', 'create', '--fleet', 'factory'], options)
    kms.aliases.clear()
    const orphan = await run(['ca', 'create', '--fleet', 'factory'], options)

    // Assess
    expect(again.code).toBe(1)
    expect(again.stderr).toContain(`fleet "factory" already has a CA certificate at SSM parameter ${CA_PARAM}; it was left as it is`)
    expect(orphan.code).toBe(1)
    expect(orphan.stderr).toContain(`no KMS alias ${ALIAS} (another stage, region or account?); it was left as it is. To start over with a new CA: aws ssm delete-parameter --name ${CA_PARAM}, then ca create again`)
    expect(kms.keys.size).toBe(1)
  })
})
