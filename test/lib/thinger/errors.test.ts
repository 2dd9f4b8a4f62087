import { describe, expect, it } from 'vitest'
import { UpstreamUnavailableError } from '../../../lib/errors.js'
import { isRetryableThingerError, ThingerHttpError, ThingerNetworkError, ThingerTimeoutError } from '../../../lib/thinger/errors.js'

const http = (status: number): ThingerHttpError => new ThingerHttpError('GET', 'ReadDeviceStatus', status)

describe('Function: isRetryableThingerError', () => {
  it.each([
    ['HTTP 400', http(400), false],
    ['HTTP 401', http(401), false],
    ['HTTP 403', http(403), false],
    ['HTTP 404', http(404), false],
    ['HTTP 408', http(408), true],
    ['HTTP 409', http(409), false],
    ['HTTP 422', http(422), false],
    ['HTTP 429', http(429), true],
    ['HTTP 499', http(499), false],
    ['HTTP 500', http(500), true],
    ['HTTP 502', http(502), true],
    ['HTTP 503', http(503), true],
    ['HTTP 504', http(504), true],
    ['a network error', new ThingerNetworkError('GET', 'ReadDeviceStatus', new Error('x')), true],
    ['a timeout', new ThingerTimeoutError('GET', 'ReadDeviceStatus', 5000), true],
    ['a plain Error', new Error('503'), false],
    ['a TypeError', new TypeError('fetch failed'), false],
    ['an UpstreamUnavailableError', new UpstreamUnavailableError('down'), false],
    ['an object that looks like an HTTP error', { status: 503 }, false],
    ['undefined', undefined, false],
    ['a string', 'timeout', false],
  ])('answers for %s: %s', (_label, error, expected) => {
    // Act & Assess
    expect(isRetryableThingerError(error)).toBe(expected)
  })
})

describe('Class: ThingerHttpError', () => {
  it('names the operation, method and status', () => {
    // Act
    const error = new ThingerHttpError('POST', 'CreateDevice', 400, 3, 'device already exists')

    // Assess
    expect(error).toBeInstanceOf(Error)
    expect(error).toMatchObject({
      name: 'ThingerHttpError',
      message: 'Thinger.io CreateDevice (POST) answered 400',
      status: 400,
      retryAfterSeconds: 3,
      upstreamMessage: 'device already exists',
    })
  })
})

describe('Class: ThingerNetworkError', () => {
  it('names the system error code of the cause when there is one', () => {
    // Prepare
    const cause = new TypeError('fetch failed', { cause: Object.assign(new Error('getaddrinfo'), { code: 'ENOTFOUND' }) })

    // Act
    const error = new ThingerNetworkError('GET', 'ReadDeviceStatus', cause)

    // Assess
    expect(error).toMatchObject({ name: 'ThingerNetworkError', message: 'Thinger.io ReadDeviceStatus (GET) failed: ENOTFOUND' })
    expect(error.cause).toBe(cause)
  })

  it.each([
    ['an Error with its own code', Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }), 'ECONNRESET'],
    ['an Error without a code, by its class only', new TypeError('socket hang up'), 'TypeError'],
    ['an Error whose code is not a system code, by its class only', Object.assign(new Error('x'), { code: 'Bearer tok' }), 'Error'],
    ['a string', 'boom', 'unknown error'],
    ['undefined', undefined, 'unknown error'],
  ])('describes %s', (_label, cause, description) => {
    // Act
    const error = new ThingerNetworkError('PUT', 'UpdateDevice', cause)

    // Assess
    expect(error.message).toBe(`Thinger.io UpdateDevice (PUT) failed: ${description}`)
  })

  it('never quotes the message of its cause, which could hold a header', () => {
    // Prepare
    const cause = new Error('request to https://x failed, headers {"authorization":"Bearer tok_SECRET"}')

    // Act
    const error = new ThingerNetworkError('GET', 'ReadDeviceStatus', cause)

    // Assess
    expect(error.message).not.toContain('tok_SECRET')
    expect(error.message).toBe('Thinger.io ReadDeviceStatus (GET) failed: Error')
  })
})

describe('Class: ThingerTimeoutError', () => {
  it('names the time the call was given', () => {
    // Act
    const error = new ThingerTimeoutError('GET', 'ReadDeviceStatus', 1500)

    // Assess
    expect(error).toMatchObject({ name: 'ThingerTimeoutError', message: 'Thinger.io ReadDeviceStatus (GET) timed out after 1500 ms' })
  })
})
