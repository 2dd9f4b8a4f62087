import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  checkClock,
  decodeFleetKey,
  deriveDeviceKey,
  signedMessage,
  signRequest,
  verifySignature,
} from '../../../lib/attestation/keys.js'
import { AttestationError, ConfigError } from '../../../lib/errors.js'
import { captureError } from '../capture-error.js'

// The protocol test vector: firmware authors check their implementation against these exact values.
const VECTOR_FLEET_KEY = 'dGhpbmdlci1wcm92aXNpb25lci10ZXN0LWZsZWV0LWtleS0wMDE='
const VECTOR_DEVICE = 'esp32_a1b2c3d4e5f6'
const VECTOR_TIMESTAMP = 1764150000
const VECTOR_DEVICE_KEY = 'slJ/UknDHHGumvra+RjeJHZq2Cp87+EN3n7coIJFlxA='
const VECTOR_SIGNATURE = 'ZHYss//dxmIMMb/zLDJIbEOChjZeGQgm3h3mDEmz+yA='
const OTHER_FLEET_KEY = Buffer.alloc(32, 7).toString('base64')
const SETTING = 'FLEET_KEY_PARAM'
const NOW_SECONDS = 1_764_150_000
const SKEW_SECONDS = 300

const fleetKey = (): Buffer => decodeFleetKey(VECTOR_FLEET_KEY, SETTING)

const flipBit = (base64: string, bit: number): string => {
  const bytes = Buffer.from(base64, 'base64')
  bytes[bit >> 3] = (bytes[bit >> 3] as number) ^ (1 << (bit & 7))
  return bytes.toString('base64')
}

const expectInvalidSignature = (error: unknown): void => {
  expect(error).toBeInstanceOf(AttestationError)
  expect(error).toMatchObject({ code: 'invalid_signature', statusCode: 401, retryable: false })
}

const deviceIds = fc.stringMatching(/^[A-Za-z0-9_-]{1,32}$/)
const timestamps = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })
const fleetKeys = fc.uint8Array({ minLength: 32, maxLength: 96 }).map((bytes) => Buffer.from(bytes))

describe('Function: decodeFleetKey', () => {
  it('decodes the base64 of a key of at least 32 bytes', () => {
    // Act
    const key = decodeFleetKey(VECTOR_FLEET_KEY, SETTING)

    // Assess
    expect(key).toEqual(Buffer.from('thinger-provisioner-test-fleet-key-001', 'utf8'))
  })

  it('accepts exactly 32 bytes and ignores surrounding whitespace', () => {
    // Prepare
    const stored = `  ${Buffer.alloc(32, 1).toString('base64')}\n`

    // Act
    const key = decodeFleetKey(stored, SETTING)

    // Assess
    expect(key).toEqual(Buffer.alloc(32, 1))
  })

  it.each([
    ['not base64', 'this is not base64 at all, is it? #secret-value'],
    ['base64url', Buffer.alloc(33, 0xfb).toString('base64url')],
    ['bad padding', `${Buffer.alloc(33, 9).toString('base64')}=`],
    ['31 bytes', Buffer.alloc(31, 0xab).toString('base64')],
    ['empty', ''],
  ])('throws ConfigError naming the setting when the value is %s, without quoting it', (_label, stored) => {
    // Act
    const error = captureError(() => decodeFleetKey(stored, SETTING))

    // Assess
    expect(error).toBeInstanceOf(ConfigError)
    const configError = error as ConfigError
    expect(configError).toMatchObject({ setting: SETTING, code: 'internal_error', statusCode: 500, message: 'internal error' })
    expect(configError.detail).toContain(SETTING)
    if (stored !== '') {
      expect(configError.message).not.toContain(stored)
      expect(configError.detail).not.toContain(stored)
      expect(JSON.stringify(configError)).not.toContain(stored)
    }
  })

  it('says why a short key is refused', () => {
    // Act
    const error = captureError(() => decodeFleetKey(Buffer.alloc(31).toString('base64'), SETTING)) as ConfigError

    // Assess
    expect(error.detail).toBe(`setting ${SETTING}: the fleet key must be at least 32 bytes`)
  })

  it.each([
    ['a number', 42],
    ['undefined', undefined],
    ['null', null],
    ['a Buffer', Buffer.alloc(32)],
    ['an object', { Value: VECTOR_FLEET_KEY }],
  ])('throws ConfigError when the value is %s', (_label, stored) => {
    // Act
    const error = captureError(() => decodeFleetKey(stored, SETTING))

    // Assess
    expect(error).toBeInstanceOf(ConfigError)
    expect(error).toMatchObject({ setting: SETTING, detail: `setting ${SETTING}: the parameter value is not base64` })
  })
})

describe('Function: deriveDeviceKey', () => {
  it('derives the device key of the protocol test vector', () => {
    // Act
    const deviceKey = deriveDeviceKey(fleetKey(), VECTOR_DEVICE)

    // Assess
    expect(deviceKey.toString('base64')).toBe(VECTOR_DEVICE_KEY)
  })

  it('derives different keys for different devices', () => {
    // Act
    const first = deriveDeviceKey(fleetKey(), 'esp32_a1b2c3d4e5f6')
    const second = deriveDeviceKey(fleetKey(), 'esp32_a1b2c3d4e5f7')

    // Assess
    expect(first.equals(second)).toBe(false)
  })
})

describe('Function: signedMessage', () => {
  it('joins the protocol version, device and timestamp with newlines', () => {
    // Act
    const message = signedMessage(VECTOR_DEVICE, VECTOR_TIMESTAMP)

    // Assess
    expect(message).toBe('v1\nesp32_a1b2c3d4e5f6\n1764150000')
  })
})

describe('Function: signRequest', () => {
  it('produces the signature of the protocol test vector', () => {
    // Prepare
    const deviceKey = Buffer.from(VECTOR_DEVICE_KEY, 'base64')

    // Act
    const signature = signRequest(deviceKey, VECTOR_DEVICE, VECTOR_TIMESTAMP)

    // Assess
    expect(signature).toBe(VECTOR_SIGNATURE)
  })
})

describe('Function: verifySignature', () => {
  it('accepts the protocol test vector', () => {
    // Act & Assess
    expect(() => verifySignature(fleetKey(), VECTOR_DEVICE, VECTOR_TIMESTAMP, VECTOR_SIGNATURE)).not.toThrow()
  })

  it('throws invalid_signature when the device is changed', () => {
    // Act
    const error = captureError(() => verifySignature(fleetKey(), 'esp32_a1b2c3d4e5f7', VECTOR_TIMESTAMP, VECTOR_SIGNATURE))

    // Assess
    expectInvalidSignature(error)
    expect((error as Error).message).toBe('the signature does not match the device key')
  })

  it('throws invalid_signature when the timestamp is changed by one second', () => {
    // Act
    const error = captureError(() => verifySignature(fleetKey(), VECTOR_DEVICE, VECTOR_TIMESTAMP + 1, VECTOR_SIGNATURE))

    // Assess
    expectInvalidSignature(error)
  })

  it('throws invalid_signature when one bit of the signature is flipped', () => {
    // Act
    const error = captureError(() => verifySignature(fleetKey(), VECTOR_DEVICE, VECTOR_TIMESTAMP, flipBit(VECTOR_SIGNATURE, 0)))

    // Assess
    expectInvalidSignature(error)
  })

  it('throws invalid_signature when the request was signed under another fleet key', () => {
    // Prepare
    const other = decodeFleetKey(OTHER_FLEET_KEY, SETTING)

    // Act
    const error = captureError(() => verifySignature(other, VECTOR_DEVICE, VECTOR_TIMESTAMP, VECTOR_SIGNATURE))

    // Assess
    expectInvalidSignature(error)
  })

  it('throws invalid_signature when the device signs with the fleet key instead of its derived key', () => {
    // Prepare
    const signature = signRequest(fleetKey(), VECTOR_DEVICE, VECTOR_TIMESTAMP)

    // Act
    const error = captureError(() => verifySignature(fleetKey(), VECTOR_DEVICE, VECTOR_TIMESTAMP, signature))

    // Assess
    expectInvalidSignature(error)
  })

  it.each([
    ['empty', ''],
    ['31 bytes', Buffer.alloc(31).toString('base64')],
    ['33 bytes', Buffer.alloc(33).toString('base64')],
    ['64 bytes', Buffer.alloc(64).toString('base64')],
  ])('throws invalid_signature, not a RangeError, when the signature is %s', (_label, signature) => {
    // Act
    const error = captureError(() => verifySignature(fleetKey(), VECTOR_DEVICE, VECTOR_TIMESTAMP, signature))

    // Assess
    expectInvalidSignature(error)
  })

  it('accepts what signRequest produced with the derived key, for any device, timestamp and fleet key', () => {
    fc.assert(
      fc.property(fleetKeys, deviceIds, timestamps, (key, device, timestamp) => {
        // Prepare
        const signature = signRequest(deriveDeviceKey(key, device), device, timestamp)

        // Act & Assess
        expect(signature).toHaveLength(44)
        verifySignature(key, device, timestamp, signature)
      }),
      { numRuns: 200 },
    )
  })

  it('throws invalid_signature when any single bit of a valid signature is flipped', () => {
    fc.assert(
      fc.property(fleetKeys, deviceIds, timestamps, fc.integer({ min: 0, max: 255 }), (key, device, timestamp, bit) => {
        // Prepare
        const signature = flipBit(signRequest(deriveDeviceKey(key, device), device, timestamp), bit)

        // Act
        const error = captureError(() => verifySignature(key, device, timestamp, signature))

        // Assess
        expectInvalidSignature(error)
      }),
      { numRuns: 300 },
    )
  })

  it('refuses every one of the 256 single-bit flips of the test vector signature', () => {
    for (let bit = 0; bit < 256; bit++) {
      // Act
      const error = captureError(() => verifySignature(fleetKey(), VECTOR_DEVICE, VECTOR_TIMESTAMP, flipBit(VECTOR_SIGNATURE, bit)))

      // Assess
      expectInvalidSignature(error)
    }
  })

  it.each(['yB=', 'yC=', 'yD='])('refuses the non-canonical spelling …%s of the test vector signature', (ending) => {
    // Prepare
    const spelling = VECTOR_SIGNATURE.slice(0, -3) + ending

    // Act
    const error = captureError(() => verifySignature(fleetKey(), VECTOR_DEVICE, VECTOR_TIMESTAMP, spelling))

    // Assess
    expect(Buffer.from(spelling, 'base64').equals(Buffer.from(VECTOR_SIGNATURE, 'base64'))).toBe(true)
    expectInvalidSignature(error)
  })
})

describe('Function: checkClock', () => {
  it.each([
    ['equal to the server clock', NOW_SECONDS],
    ['exactly the skew behind', NOW_SECONDS - SKEW_SECONDS],
    ['exactly the skew ahead', NOW_SECONDS + SKEW_SECONDS],
  ])('accepts a timestamp %s', (_label, timestamp) => {
    // Act & Assess
    expect(() => checkClock(timestamp, NOW_SECONDS, SKEW_SECONDS)).not.toThrow()
  })

  it.each([
    ['one second more than the skew behind', NOW_SECONDS - SKEW_SECONDS - 1],
    ['one second more than the skew ahead', NOW_SECONDS + SKEW_SECONDS + 1],
    ['zero (a device without a clock)', 0],
  ])('throws clock_skew carrying the server time when the timestamp is %s', (_label, timestamp) => {
    // Act
    const error = captureError(() => checkClock(timestamp, NOW_SECONDS, SKEW_SECONDS))

    // Assess
    expect(error).toBeInstanceOf(AttestationError)
    expect(error).toMatchObject({
      code: 'clock_skew',
      statusCode: 401,
      serverTime: NOW_SECONDS,
      message: 'the timestamp is more than 300 s from the server clock',
    })
  })
})
