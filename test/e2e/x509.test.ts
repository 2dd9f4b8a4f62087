import { describe, expect, inject, it } from 'vitest'
import { openEcdhSealed } from '../../lib/attestation/seal-ecdh.js'
import { LOCAL_USERNAME } from '../../local/defaults.js'
import { newDeviceId } from '../support/device.js'
import { emulatorClient } from '../support/emulator-client.js'
import { certificateBody, issue, type Issued, localCa, newCa, newKeyPair } from '../support/pki.js'

const provisionUrl = inject('provisionUrl')
const thingerUrl = inject('thingerUrl')
const emulator = emulatorClient(thingerUrl)
const host = new URL(thingerUrl).host
const HOUR_MS = 3600_000

async function post(body: unknown): Promise<{ status: number; json: Record<string, any> }> {
  const response = await fetch(provisionUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: response.status, json: (await response.json()) as Record<string, any> }
}

const factoryDevice = async (overrides: Parameters<typeof issue>[2] = {}, issuer = localCa()) => {
  const device = newDeviceId('x5')
  return { ...(await issue(issuer, device, overrides)), device }
}

describe('X.509 devices against the running stack (fleet factory)', () => {
  it('provisions a device with a P-256 key and a certificate of the fleet CA in one Thinger call; the sealed answer opens and logs in', async () => {
    // Prepare
    const device = await factoryDevice()
    const body = { ...certificateBody(device, { version: 2 }), fleet: 'factory' }
    const callsBefore = await emulator.callCount()

    // Act
    const answer = await post(body)

    // Assess
    expect(answer.status).toBe(201)
    expect(await emulator.callCount()).toBe(callsBefore + 1)
    expect(answer.json.credential).toBeUndefined()
    const credential = openEcdhSealed(answer.json.sealed, device.privateKey, device.device, Number(body.timestamp), { username: LOCAL_USERNAME, device: device.device, host })
    expect(await emulator.login(device.device, credential)).toBe(200)
  })

  it('refuses each bad certificate with its code and no Thinger call', async () => {
    // Prepare
    const ca = localCa()
    const stranger = await newCa({ subject: ca.subject })
    const deviceA = await factoryDevice()
    const signed = (device: Issued & { device: string }) => ({ ...certificateBody(device, { version: 2 }), fleet: 'factory' })
    const cases: Array<[string, unknown, string]> = [
      ['expired', signed(await factoryDevice({ notBefore: new Date(Date.now() - 3 * HOUR_MS), notAfter: new Date(Date.now() - HOUR_MS) })), 'certificate_expired'],
      ['not yet valid', signed(await factoryDevice({ notBefore: new Date(Date.now() + HOUR_MS) })), 'certificate_not_yet_valid'],
      ['untrusted CA', signed(await factoryDevice({}, stranger)), 'certificate_untrusted'],
      ['a CA certificate as leaf', signed(await factoryDevice({ ca: true, keyUsage: ['keyCertSign', 'digitalSignature'] })), 'certificate_not_leaf'],
      ['wrong key usage', signed(await factoryDevice({ keyUsage: ['keyEncipherment'] })), 'certificate_key_usage'],
      ['weak key', signed(await factoryDevice({ keys: newKeyPair({ type: 'rsa', bits: 1024 }) })), 'certificate_key_not_allowed'],
      ['device A’s certificate for device B', { ...signed(deviceA), device: newDeviceId('x5') }, 'certificate_device_mismatch'],
      ['chain too long', { ...signed(deviceA), chain: [ca.der, ca.der].map((der) => der.toString('base64')) }, 'certificate_chain_too_long'],
      ['malformed DER', { ...signed(deviceA), certificate: Buffer.from('not DER at all').toString('base64') }, 'certificate_malformed'],
    ]
    const callsBefore = await emulator.callCount()

    // Act
    const codes: Array<[string, string]> = []
    for (const [name, body] of cases) codes.push([name, (await post(body)).json.error?.code])

    // Assess
    expect(codes).toEqual(cases.map(([name, , code]) => [name, code]))
    expect(await emulator.callCount()).toBe(callsBefore)
  })
})
