import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { admitToFleet, parseProvisionRequest } from '../../../lib/attestation/request.js'
import type { Fleet } from '../../../lib/fleets/fleet.js'

/** The device-pattern check as a fleet of its own applies it. */
function checkDeviceAllowed(device: string, devicePattern: RegExp): void {
  const fleet: Fleet = { name: 'default', proof: ['hmac'], keyParam: '/k', denyListParam: '/d', replayProtection: true, devicePattern, reprovision: 'rotate', profile: { type: 'Generic' }, thinger: { apiUrl: 'https://backend.thinger.io', username: 'acme', tokenParam: '/t', deviceHost: 'backend.thinger.io' } }
  admitToFleet({ device, fleet: 'default', meta: {}, proof: { kind: 'hmac', timestamp: 0, signature: '', keyVersion: 1 } }, new Map([['default', fleet]]))
}
import { loadConfig } from '../../../lib/config.js'
import { AttestationError, ValidationError } from '../../../lib/errors.js'
import { captureError } from '../capture-error.js'

const DEVICE = 'esp32_a1b2c3d4e5f6'
const TIMESTAMP = 1764150000
const SIGNATURE = 'ZHYss//dxmIMMb/zLDJIbEOChjZeGQgm3h3mDEmz+yA='
const VALID = { device: DEVICE, timestamp: TIMESTAMP, signature: SIGNATURE }

const expectInvalidRequest = (error: unknown, message?: string): void => {
  expect(error).toBeInstanceOf(ValidationError)
  expect(error).toMatchObject({ code: 'invalid_request', statusCode: 400, retryable: false })
  if (message !== undefined) expect((error as Error).message).toBe(message)
}

describe('Function: parseProvisionRequest', () => {
  it('returns the fields of a valid request, in the default fleet with no meta', () => {
    // Act
    const request = parseProvisionRequest({ ...VALID })

    // Assess
    expect(request).toEqual({ device: DEVICE, fleet: 'default', meta: {}, proof: { kind: 'hmac', timestamp: TIMESTAMP, signature: SIGNATURE, keyVersion: 1 } })
  })

  it.each([
    ['a 1-character device', 'a'],
    ['a 32-character device', 'A'.repeat(32)],
    ['a device with every allowed kind of character', 'aZ09_-'],
  ])('accepts %s', (_label, device) => {
    // Act
    const request = parseProvisionRequest({ ...VALID, device })

    // Assess
    expect(request.device).toBe(device)
  })

  it.each([
    ['0', 0],
    ['Number.MAX_SAFE_INTEGER', Number.MAX_SAFE_INTEGER],
  ])('accepts the timestamp %s', (_label, timestamp) => {
    // Act
    const request = parseProvisionRequest({ ...VALID, timestamp })

    // Assess
    expect(request.proof).toMatchObject({ kind: 'hmac', timestamp })
  })

  it('returns a new object without the prototype or extra state of the body', () => {
    // Prepare
    const body = JSON.parse(JSON.stringify(VALID)) as Record<string, unknown>

    // Act
    const request = parseProvisionRequest(body)

    // Assess
    expect(request).not.toBe(body)
    expect(Object.keys(request).sort()).toEqual(['device', 'fleet', 'meta', 'proof'])
  })

  it.each([
    ['a string', 'device=esp32'],
    ['a number', 42],
    ['a boolean', true],
    ['null', null],
    ['undefined', undefined],
    ['an array', [VALID]],
    ['an empty array', []],
  ])('throws invalid_request when the body is %s', (_label, body) => {
    // Act
    const error = captureError(() => parseProvisionRequest(body))

    // Assess
    expectInvalidRequest(error, 'the body must be a JSON object')
  })

  it('throws invalid_request naming an unknown field', () => {
    // Act
    const error = captureError(() => parseProvisionRequest({ ...VALID, credential: 'x' }))

    // Assess
    expectInvalidRequest(error, 'unknown field "credential"')
  })

  it('throws invalid_request quoting at most 32 characters of an unknown field name', () => {
    // Act
    const error = captureError(() => parseProvisionRequest({ ...VALID, ['x'.repeat(1000)]: 1 }))

    // Assess
    expectInvalidRequest(error, `unknown field "${'x'.repeat(32)}"`)
  })

  it('throws invalid_request for a "__proto__" key coming from JSON.parse', () => {
    // Prepare
    const body = JSON.parse(`{"device":"${DEVICE}","timestamp":${TIMESTAMP},"signature":"${SIGNATURE}","__proto__":{"x":1}}`)

    // Act
    const error = captureError(() => parseProvisionRequest(body))

    // Assess
    expectInvalidRequest(error, 'unknown field "__proto__"')
  })

  it.each([
    ['missing', undefined],
    ['a number', 12345],
    ['null', null],
    ['an array', [DEVICE]],
  ])('throws invalid_request when device is %s', (_label, device) => {
    // Prepare
    const body: Record<string, unknown> = { ...VALID, device }
    if (device === undefined) delete body.device

    // Act
    const error = captureError(() => parseProvisionRequest(body))

    // Assess
    expectInvalidRequest(error, '"device" must be a string')
  })

  it.each([
    ['empty', ''],
    ['33 characters', 'a'.repeat(33)],
    ['with a space', 'esp32 a1b2'],
    ['with a dot', 'esp32.a1b2'],
    ['with a slash', 'esp32/a1b2'],
    ['with a trailing newline', `${DEVICE}\n`],
    ['with a non-ASCII letter', 'esp32_é'],
    ['with a colon', 'esp32:a1'],
  ])('throws invalid_request when device is %s', (_label, device) => {
    // Act
    const error = captureError(() => parseProvisionRequest({ ...VALID, device }))

    // Assess
    expectInvalidRequest(error, '"device" must match ^[A-Za-z0-9_-]{1,32}$')
  })

  it.each([
    ['missing', undefined],
    ['a float', 1764150000.5],
    ['negative', -1],
    ['a numeric string', '1764150000'],
    ['an unsafe integer', Number.MAX_SAFE_INTEGER + 1],
    ['1e21', 1e21],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['null', null],
    ['a boolean', true],
  ])('throws invalid_request when timestamp is %s', (_label, timestamp) => {
    // Prepare
    const body: Record<string, unknown> = { ...VALID, timestamp }
    if (timestamp === undefined) delete body.timestamp

    // Act
    const error = captureError(() => parseProvisionRequest(body))

    // Assess
    expectInvalidRequest(error, '"timestamp" must be a non-negative integer (Unix seconds)')
  })

  it.each([
    ['missing', undefined],
    ['a number', 1],
    ['null', null],
    ['an array of bytes', [1, 2, 3]],
  ])('throws invalid_request when signature is %s', (_label, signature) => {
    // Prepare
    const body: Record<string, unknown> = { ...VALID, signature }
    if (signature === undefined) delete body.signature

    // Act
    const error = captureError(() => parseProvisionRequest(body))

    // Assess
    expectInvalidRequest(error, '"signature" must be a string')
  })

  it.each([
    ['empty', ''],
    ['one character short', SIGNATURE.slice(1)],
    ['one character long', `${SIGNATURE}A`],
    ['without its padding', SIGNATURE.replace(/=$/, '')],
    ['the base64 of 64 bytes', Buffer.alloc(64).toString('base64')],
    ['hex of 32 bytes', Buffer.alloc(32, 0xab).toString('hex')],
    ['base64url of 32 bytes, 44 characters', `${Buffer.from(SIGNATURE, 'base64').toString('base64url')}=`],
    ['44 characters with a space', `${SIGNATURE.slice(0, 20)} ${SIGNATURE.slice(21)}`],
    ['44 characters with padding in the middle', `${SIGNATURE.slice(0, 20)}=${SIGNATURE.slice(21)}`],
    ['44 characters with a non-ASCII letter', `é${SIGNATURE.slice(1)}`],
    ['44 characters that decode to 31 bytes', `${'A'.repeat(42)}==`],
    ['44 characters that decode to 33 bytes', 'A'.repeat(44)],
  ])('throws invalid_request when signature is %s', (_label, signature) => {
    // Act
    const error = captureError(() => parseProvisionRequest({ ...VALID, signature }))

    // Assess
    expectInvalidRequest(error, '"signature" must be the base64 of 32 bytes')
  })

  it('reports the first wrong field, in the order device, timestamp, signature', () => {
    // Act
    const error = captureError(() => parseProvisionRequest({ device: 1, timestamp: 'x', signature: 2 }))

    // Assess
    expectInvalidRequest(error, '"device" must be a string')
  })

  it('never throws anything but ValidationError for an arbitrary JSON value', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (body) => {
        // Act
        try {
          parseProvisionRequest(body)
        } catch (error) {
          // Assess
          expect(error).toBeInstanceOf(ValidationError)
        }
      }),
      { numRuns: 500 },
    )
  })

  it('never throws anything but ValidationError for an object with arbitrary values in the known fields', () => {
    const fieldValue = fc.oneof(fc.jsonValue(), fc.constant(DEVICE), fc.constant(TIMESTAMP), fc.constant(SIGNATURE), fc.constant('default'), fc.constant({ site: 'lab' }))
    fc.assert(
      fc.property(
        fc.record({ device: fieldValue, timestamp: fieldValue, signature: fieldValue, claim: fieldValue, fleet: fieldValue, meta: fieldValue }, { requiredKeys: [] }),
        (body) => {
          // Act
          try {
            const request = parseProvisionRequest(body)

            // Assess
            expect(request.device).toBe(body.device)
            expect(request.fleet).toBe(body.fleet ?? 'default')
            if (request.proof.kind === 'hmac') expect(request.proof).toMatchObject({ kind: 'hmac', timestamp: body.timestamp, signature: body.signature })
            else expect(request.proof).toEqual({ kind: 'claim', claim: body.claim })
          } catch (error) {
            expect(error).toBeInstanceOf(ValidationError)
          }
        },
      ),
      { numRuns: 500 },
    )
  })

  it('accepts every well-formed request', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[A-Za-z0-9_-]{1,32}$/),
        fc.maxSafeNat(),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        (device, timestamp, bytes) => {
          // Prepare
          const body = { device, timestamp, signature: Buffer.from(bytes).toString('base64') }

          // Act
          const request = parseProvisionRequest(body)

          // Assess
          expect(request).toEqual({ device: body.device, fleet: 'default', meta: {}, proof: { kind: 'hmac', timestamp: body.timestamp, signature: body.signature, keyVersion: 1 } })
        },
      ),
      { numRuns: 300 },
    )
  })
})

describe('Function: checkDeviceAllowed', () => {
  const pattern = loadConfig({ DEVICE_ID_PATTERN: 'esp32_[0-9a-f]{12}', THINGER_USERNAME: 'x' }).fleets.get('default')!.devicePattern

  it('accepts a device matching the operator pattern', () => {
    // Act & Assess
    expect(() => checkDeviceAllowed(DEVICE, pattern)).not.toThrow()
  })

  it.each([
    ['with a prefix', `x${DEVICE}`],
    ['with a suffix', `${DEVICE}x`],
    ['with upper-case hex', 'esp32_A1B2C3D4E5F6'],
    ['one hex digit short', DEVICE.slice(0, -1)],
    ['of another family', 'esp8266_a1b2c3d4e5f6'],
  ])('throws device_not_allowed for a device %s', (_label, device) => {
    // Act
    const error = captureError(() => checkDeviceAllowed(device, pattern))

    // Assess
    expect(error).toBeInstanceOf(AttestationError)
    expect(error).toMatchObject({
      code: 'device_not_allowed',
      statusCode: 403,
      message: 'this device ID is not allowed in this fleet',
      serverTime: undefined,
    })
  })

  it('anchors an alternation as a whole, so neither branch matches a longer ID', () => {
    // Prepare
    const alternation = loadConfig({ DEVICE_ID_PATTERN: 'esp32_[0-9a-f]{12}|test-[0-9]+', THINGER_USERNAME: 'x' }).fleets.get('default')!.devicePattern

    // Act
    const refusedPrefix = captureError(() => checkDeviceAllowed(`x${DEVICE}`, alternation))
    const refusedSuffix = captureError(() => checkDeviceAllowed('test-1x', alternation))

    // Assess
    expect(() => checkDeviceAllowed(DEVICE, alternation)).not.toThrow()
    expect(() => checkDeviceAllowed('test-17', alternation)).not.toThrow()
    expect(refusedPrefix).toMatchObject({ code: 'device_not_allowed' })
    expect(refusedSuffix).toMatchObject({ code: 'device_not_allowed' })
  })

  it('accepts any protocol-valid device under the default pattern', () => {
    // Prepare
    const defaultPattern = loadConfig({ THINGER_USERNAME: 'x' }).fleets.get('default')!.devicePattern

    // Act & Assess
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9_-]{1,32}$/), (device) => {
        checkDeviceAllowed(device, defaultPattern)
      }),
      { numRuns: 200 },
    )
    expect(captureError(() => checkDeviceAllowed('a'.repeat(33), defaultPattern))).toMatchObject({ code: 'device_not_allowed' })
  })
})
