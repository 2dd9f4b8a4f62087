import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { decodeFleetKey, verifySignature } from '../../lib/attestation/keys.js'
import { parseProvisionRequest } from '../../lib/attestation/request.js'
import { deriveHmacSealKey, sealAnswer } from '../../lib/attestation/seal.js'
import { run } from './fakes.js'

// The sealing test vector (docs/protocol.md).
const VECTOR_FLEET_KEY = 'dGhpbmdlci1wcm92aXNpb25lci10ZXN0LWZsZWV0LWtleS0wMDE='
const DEVICE = 'esp32_a1b2c3d4e5f6'
const TIMESTAMP = 1764150000
const DEVICE_KEY = 'slJ/UknDHHGumvra+RjeJHZq2Cp87+EN3n7coIJFlxA='
const SIGNATURE_V2 = 'zXIu2qxo13N67KGnC7D8mv6F38HGNbJlsBOSSrKLmdA='
const SEALED_ANSWER = { username: 'acme', device: DEVICE, sealed: 'AQEAAQIDBAUGBwgJCgvAbgqIbyh2XhGXWg3ZDzbAaRCewti+w3wMslflAGzlPfBBqmJ3DL2K', host: 'backend.thinger.io', created: true }
const CREDENTIAL = 'Vb3kq0TnW8xYz1LmP4rS7uHc'

function files(contents: Record<string, unknown>): Record<string, string> {
  const dir = mkdtempSync(join(tmpdir(), 'open-'))
  return Object.fromEntries(Object.entries(contents).map(([name, value]) => {
    writeFileSync(join(dir, name), typeof value === 'string' ? value : JSON.stringify(value))
    return [name, join(dir, name)]
  }))
}

describe('Command: sign --sealed', () => {
  it('prints the sealing test vector’s body: "version": 2 and the v2 signature, which the function accepts', async () => {
    // Act
    const result = await run(['sign', '--device', DEVICE, '--device-key', DEVICE_KEY, '--timestamp', String(TIMESTAMP), '--sealed'])

    // Assess
    expect(result.stdout).toBe(`{"device":"${DEVICE}","version":2,"timestamp":${TIMESTAMP},"signature":"${SIGNATURE_V2}"}\n`)
    const body = JSON.parse(result.stdout)
    expect(parseProvisionRequest(body).version).toBe(2)
    expect(() => verifySignature(decodeFleetKey(VECTOR_FLEET_KEY, 'test'), DEVICE, TIMESTAMP, body.signature, 2)).not.toThrow()
  })
})

describe('Command: open', () => {
  const signed = { device: DEVICE, version: 2, timestamp: TIMESTAMP, signature: SIGNATURE_V2 }

  it('opens the test vector’s sealed answer with the device key, device and timestamp from the request', async () => {
    // Prepare
    const f = files({ 'request.json': signed, 'answer.json': SEALED_ANSWER })

    // Act
    const result = await run(['open', '--request', f['request.json']!, '--answer', f['answer.json']!, '--device-key', DEVICE_KEY])

    // Assess
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    expect(result.stdout).toBe(`${JSON.stringify({ username: 'acme', device: DEVICE, host: 'backend.thinger.io', created: true, credential: CREDENTIAL })}\n`)
  })

  it('opens with --device and --timestamp instead of --request', async () => {
    // Prepare
    const f = files({ 'answer.json': SEALED_ANSWER, 'device.key': `${DEVICE_KEY}\n` })

    // Act
    const result = await run(['open', '--device', DEVICE, '--timestamp', String(TIMESTAMP), '--answer', f['answer.json']!, '--device-key-file', f['device.key']!])

    // Assess
    expect(JSON.parse(result.stdout).credential).toBe(CREDENTIAL)
  })

  it.each([
    ['another timestamp', { answer: SEALED_ANSWER, args: ['--device', DEVICE, '--timestamp', String(TIMESTAMP + 1)] }, 1, '[sealed_not_opened]'],
    ['a host changed on the way', { answer: { ...SEALED_ANSWER, host: 'evil.example.com' }, args: ['--device', DEVICE, '--timestamp', String(TIMESTAMP)] }, 1, '[sealed_not_opened]'],
    ['an answer for another device', { answer: { ...SEALED_ANSWER, device: 'esp32_000000000000' }, args: ['--device', DEVICE, '--timestamp', String(TIMESTAMP)] }, 2, 'the answer is for device "esp32_000000000000"'],
    ['a credential in clear', { answer: { username: 'acme', device: DEVICE, credential: CREDENTIAL, host: 'h', created: true }, args: ['--device', DEVICE, '--timestamp', String(TIMESTAMP)] }, 1, 'the answer carries the credential in clear: the request was not sealed (sign --sealed) [not_sealed]'],
    ['a refusal', { answer: { error: { code: 'sealing_required', message: 'this fleet answers only protocol v2 requests' } }, args: ['--device', DEVICE, '--timestamp', String(TIMESTAMP)] }, 1, 'the answer is a refusal: sealing_required (this fleet answers only protocol v2 requests) [refused_answer]'],
    ['an answer that is not JSON', { answer: '<html>502</html>', args: ['--device', DEVICE, '--timestamp', String(TIMESTAMP)] }, 2, '--answer is not JSON'],
    ['a v1 request', { answer: SEALED_ANSWER, request: { ...signed, version: undefined }, args: [] }, 2, 'is not a sealed request'],
    ['neither --request nor --timestamp', { answer: SEALED_ANSWER, args: ['--device', DEVICE] }, 2, 'give --request, or --device and --timestamp'],
  ])('refuses %s with its code, printing no credential', async (_label, { answer, args, request }: { answer: unknown; args: string[]; request?: unknown }, code, message) => {
    // Prepare
    const f = files({ 'answer.json': answer, 'request.json': request ?? signed })

    // Act
    const result = await run(['open', '--answer', f['answer.json']!, '--device-key', DEVICE_KEY, ...(request ? ['--request', f['request.json']!] : []), ...args])

    // Assess
    expect(result.code).toBe(code)
    expect(result.stderr).toContain(message)
    expect(result.stdout).toBe('')
  })

  it('opens what the service seals for a fresh request', async () => {
    // Prepare
    const deviceKey = Buffer.from(DEVICE_KEY, 'base64')
    const answer = sealAnswer({ username: 'acme', device: DEVICE, credential: 'Fresh0Credential0123456789', host: 'acme.aws.thinger.io:25204', created: false }, deriveHmacSealKey(deviceKey, DEVICE, 1_800_000_000))
    const f = files({ 'answer.json': answer })

    // Act
    const result = await run(['open', '--device', DEVICE, '--timestamp', '1800000000', '--answer', f['answer.json']!, '--device-key', DEVICE_KEY])

    // Assess
    expect(JSON.parse(result.stdout)).toEqual({ username: 'acme', device: DEVICE, host: 'acme.aws.thinger.io:25204', created: false, credential: 'Fresh0Credential0123456789' })
  })
})
