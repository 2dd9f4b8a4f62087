import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { signRequest, signedMessage } from '../../lib/attestation/keys.js'

// The figures docs/firmware.md and docs/protocol.md give, recomputed from the code that makes the
// bytes: a doc whose example or count drifts from the protocol fails here.
const VECTOR_DEVICE = 'esp32_a1b2c3d4e5f6'
const VECTOR_DEVICE_KEY = Buffer.from('slJ/UknDHHGumvra+RjeJHZq2Cp87+EN3n7coIJFlxA=', 'base64')
const VECTOR_TIMESTAMP = 1_764_150_000
const MAX_DEVICE_ID = 'd'.repeat(32)
const MAX_FLEET = 'f'.repeat(32)
const MAX_KEY_VERSION = 999
const API_HOST = 'abc123defg.execute-api.eu-west-1.amazonaws.com'
const CREDENTIAL_LENGTH = 24
const SEAL_OVERHEAD_BYTES = 2 + 12 + 16
const MAX_CREDENTIAL_BYTES = 255
const ECDH_HEADER_BYTES = 65

const firmware = readFileSync('docs/firmware.md', 'utf8')
const protocol = readFileSync('docs/protocol.md', 'utf8')

/** The numbers a sentence of a doc gives, found by a pattern whose groups are those numbers. */
function figures(text: string, pattern: RegExp): number[] {
  const match = pattern.exec(text)
  if (match === null) throw new Error(`the doc no longer says ${pattern}: keep the figure, or change this test with it`)
  return match.slice(1).map(Number)
}

const v1Body = (device = VECTOR_DEVICE, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ device, timestamp: VECTOR_TIMESTAMP, signature: signRequest(VECTOR_DEVICE_KEY, device, VECTOR_TIMESTAMP, 1), ...extra })
const v2Body = (device = VECTOR_DEVICE, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ device, timestamp: VECTOR_TIMESTAMP, signature: signRequest(VECTOR_DEVICE_KEY, device, VECTOR_TIMESTAMP, 2), ...extra, version: 2 })
const textSuccess = (username: string, device: string, created: boolean) =>
  `username=${username}\ndevice=${device}\ncredential=${'c'.repeat(CREDENTIAL_LENGTH)}\nhost=backend.thinger.io\ncreated=${created}\n`
const base64Length = (bytes: number) => 4 * Math.ceil(bytes / 3)

describe('Docs: firmware.md, the request', () => {
  const block = /## Request\n+```\n([\s\S]*?)```/.exec(firmware)![1]!
  const [head, body] = block.split('\n\n') as [string, string]

  it('shows the test vector\'s signed version 2 body, as the reference clients send it', () => {
    // Assess
    expect(body.trim()).toBe(v2Body())
  })

  it('gives the Content-Length of that body', () => {
    // Act
    const [contentLength] = figures(head, /^Content-Length: (\d+)$/m)

    // Assess
    expect(contentLength).toBe(Buffer.byteLength(body.trim()))
  })

  it('gives the body\'s size: so many bytes plus the device ID, and at most with a fleet and a key version', () => {
    // Act
    const [fixed, most] = figures(firmware, /in practice (\d+) bytes plus the device ID with a 10-digit timestamp,\s+(\d+) at most with a fleet and a key version/)

    // Assess
    expect(fixed).toBe(v2Body().length - VECTOR_DEVICE.length)
    expect(most).toBe(v2Body(MAX_DEVICE_ID, { keyVersion: MAX_KEY_VERSION, fleet: MAX_FLEET }).length)
  })
})

describe('Docs: firmware.md, bytes on the wire', () => {
  it('adds up the request row: the version 1 body, the four headers to the API host, the total', () => {
    // Prepare
    const body = v1Body()
    const headers = `POST /v1/provision HTTP/1.1\r\nHost: ${API_HOST}\r\nContent-Type: application/json\r\nAccept: text/plain\r\nContent-Length: ${body.length}\r\n\r\n`

    // Act
    const row = figures(firmware, /^\| request with `Host`, `Content-Type`, `Accept`, `Content-Length` \| (\d+) \| (\d+) \| (\d+) \|$/m)

    // Assess
    expect(row).toEqual([body.length, headers.length, body.length + headers.length])
  })

  it('gives the sizes of a request body and of a text success, with and without the IDs', () => {
    // Act
    const [fixed, most] = figures(firmware, /A version 1 request body is (\d+) bytes plus the device ID \((\d+) at most\)/)
    const [textFixed, textNotCreated] = figures(firmware, /credential and host `backend\.thinger\.io` is (\d+) bytes plus the username and the device ID \((\d+)\s+with `created=false`\)/)
    const [jsonBody] = figures(firmware, /^\| success, JSON, for comparison \| (\d+) \|/m)

    // Assess
    expect(fixed).toBe(v1Body().length - VECTOR_DEVICE.length)
    expect(most).toBe(v1Body(MAX_DEVICE_ID).length)
    expect(textFixed).toBe(textSuccess('', '', true).length)
    expect(textNotCreated).toBe(textSuccess('', '', false).length)
    expect(jsonBody).toBe(
      JSON.stringify({ username: 'acme', device: VECTOR_DEVICE, credential: 'c'.repeat(CREDENTIAL_LENGTH), host: 'backend.thinger.io', created: true }).length,
    )
  })
})

describe('Docs: protocol.md, lengths', () => {
  it.each([
    ['v1', 1],
    ['v2', 2],
  ] as const)('gives the length of the %s signed message of the test vector', (prefix, version) => {
    // Act
    const [bytes] = figures(protocol, new RegExp(`\\| signed message \\| \`"${prefix}\\\\n${VECTOR_DEVICE}\\\\n${VECTOR_TIMESTAMP}"\` \\((\\d+) bytes\\) \\|`))

    // Assess
    expect(bytes).toBe(Buffer.byteLength(signedMessage(VECTOR_DEVICE, VECTOR_TIMESTAMP, version)))
  })

  it('gives the largest sealed envelope in bytes and base64, per mode', () => {
    // Act
    const [largest, largestBase64, ecdh, ecdhBase64] = figures(protocol, /envelope is (\d+) bytes, (\d+) characters of base64, in modes 1 and 2; in mode 3, whose header is a\s+65-byte public key, (\d+) bytes \(2 \+ 65 \+ 12 \+ 255 \+ 16\), (\d+) characters of base64/)

    // Assess
    expect(largest).toBe(SEAL_OVERHEAD_BYTES + MAX_CREDENTIAL_BYTES)
    expect(largestBase64).toBe(base64Length(largest!))
    expect(ecdh).toBe(SEAL_OVERHEAD_BYTES + ECDH_HEADER_BYTES + MAX_CREDENTIAL_BYTES)
    expect(ecdhBase64).toBe(base64Length(ecdh!))
  })

  it('gives the signature\'s length in base64', () => {
    // Act
    const [characters] = figures(protocol, /standard base64 with padding \((\d+) characters\)/)

    // Assess
    expect(characters).toBe(signRequest(VECTOR_DEVICE_KEY, VECTOR_DEVICE, VECTOR_TIMESTAMP, 1).length)
  })
})
