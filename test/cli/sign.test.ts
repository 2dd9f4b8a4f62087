import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { decodeFleetKey, verifySignature } from '../../lib/attestation/keys.js'
import { parseProvisionRequest } from '../../lib/attestation/request.js'
import { run } from './fakes.js'

const VECTOR_FLEET_KEY = 'dGhpbmdlci1wcm92aXNpb25lci10ZXN0LWZsZWV0LWtleS0wMDE='
const VECTOR_DEVICE = 'esp32_a1b2c3d4e5f6'
const VECTOR_TIMESTAMP = 1764150000
const VECTOR_DEVICE_KEY = 'slJ/UknDHHGumvra+RjeJHZq2Cp87+EN3n7coIJFlxA='
const VECTOR_SIGNATURE = 'ZHYss//dxmIMMb/zLDJIbEOChjZeGQgm3h3mDEmz+yA='

describe('Command: sign', () => {
  it('prints the protocol test vector’s body, needing no settings at all', async () => {
    // Act
    const result = await run(['sign', '--device', VECTOR_DEVICE, '--device-key', VECTOR_DEVICE_KEY, '--timestamp', String(VECTOR_TIMESTAMP)])

    // Assess
    expect(result.code).toBe(0)
    expect(result.stdout).toBe(`{"device":"${VECTOR_DEVICE}","timestamp":${VECTOR_TIMESTAMP},"signature":"${VECTOR_SIGNATURE}"}\n`)
  })

  it('prints a body the function accepts and whose signature verifies, with fleet, keyVersion and meta when given', async () => {
    // Act
    const result = await run(['sign', '--device', VECTOR_DEVICE, '--device-key', VECTOR_DEVICE_KEY, '--fleet', 'factory', '--key-version', '2', '--meta', 'site=north_3'])

    // Assess
    const body = JSON.parse(result.stdout)
    expect(body).toMatchObject({ device: VECTOR_DEVICE, fleet: 'factory', keyVersion: 2, timestamp: 1_764_150_000, meta: { site: 'north_3' } })
    expect(parseProvisionRequest(body).proof).toMatchObject({ kind: 'hmac', keyVersion: 2 })
    expect(() => verifySignature(decodeFleetKey(VECTOR_FLEET_KEY, 'test'), body.device, body.timestamp, body.signature)).not.toThrow()
  })

  it('reads the device key from a file', async () => {
    // Prepare
    const dir = mkdtempSync(join(tmpdir(), 'sign-'))
    writeFileSync(join(dir, 'device.key'), `${VECTOR_DEVICE_KEY}\n`)

    // Act
    const result = await run(['sign', '--device', VECTOR_DEVICE, '--device-key-file', join(dir, 'device.key'), '--timestamp', String(VECTOR_TIMESTAMP)])
    rmSync(dir, { recursive: true })

    // Assess
    expect(JSON.parse(result.stdout).signature).toBe(VECTOR_SIGNATURE)
  })

  it.each([
    [['sign', '--device', VECTOR_DEVICE, '--device-key', 'c2hvcnQ='], 'the device key must be the base64 of 32 bytes'],
    [['sign', '--device', 'not valid', '--device-key', VECTOR_DEVICE_KEY], '"device" must match'],
    [['sign', '--device', VECTOR_DEVICE, '--device-key', VECTOR_DEVICE_KEY, '--fleet', 'Bad Fleet'], '"fleet" must match'],
    [['sign', '--device', VECTOR_DEVICE], 'give either --device-key or --device-key-file'],
    [['sign', '--device-key', VECTOR_DEVICE_KEY], "required option '--device <id>' not specified"],
  ])('exits 2 without printing a body: %j', async (argv, message) => {
    // Act
    const result = await run(argv)

    // Assess
    expect(result.code).toBe(2)
    expect(result.stdout).toBe('')
    expect(result.stderr).toContain(message)
    expect(result.stderr).not.toContain(VECTOR_DEVICE_KEY)
  })
})
