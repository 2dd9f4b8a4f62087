import { describe, expect, it, vi } from 'vitest'
import { parseCreated, parseRetryAfter, type ThingerCallRecord, ThingerClient, type ThingerClientOptions } from '../../../lib/thinger/client.js'
import { ThingerHttpError, ThingerNetworkError, ThingerTimeoutError } from '../../../lib/thinger/errors.js'
import { captureRejection } from '../capture-error.js'

const BASE_URL = 'https://thinger.example.test'
const USERNAME = 'alice'
const TOKEN = 'tok_SECRET-account-token'
const DEVICE = 'esp32_a1b2c3d4e5f6'
const NOW_MS = Date.UTC(2025, 10, 26, 10, 0, 0)
const DEVICE_BODY = { device: DEVICE, type: 'Generic', enabled: true, name: 'Kitchen' }

interface RecordedRequest {
  url: string
  method: string | undefined
  headers: Headers
  body: string | undefined
  signal: AbortSignal | undefined
}
type Reply = (request: RecordedRequest) => Response | Promise<Response>

const json = (status: number, body?: unknown, headers: Record<string, string> = {}): Reply => () =>
  new Response(body === undefined ? null : JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } })

const networkFailure = (code: string): Reply => () => {
  throw new TypeError('fetch failed', { cause: Object.assign(new Error(`connect ${code}`), { code }) })
}

/** Never answers; rejects with the signal's reason once the client's timeout aborts it, as the platform fetch does. */
const hang: Reply = ({ signal }) =>
  new Promise<Response>((_resolve, reject) => {
    signal?.addEventListener('abort', () => reject(signal.reason), { once: true })
  })

/** A fetch answering with `replies` in order; the last one repeats. */
function scriptedFetch(...replies: Reply[]) {
  const requests: RecordedRequest[] = []
  const fetch = (async (input: string | URL | Request, init: RequestInit = {}) => {
    const request: RecordedRequest = {
      url: String(input),
      method: init.method,
      headers: new Headers(init.headers),
      body: typeof init.body === 'string' ? init.body : undefined,
      signal: init.signal ?? undefined,
    }
    requests.push(request)
    const reply = replies.length > 1 ? replies.shift() : replies[0]
    if (reply === undefined) throw new Error('no reply scripted')
    return reply(request)
  }) as typeof globalThis.fetch
  return { fetch, requests }
}

function createClient(fetch: typeof globalThis.fetch, options: Partial<ThingerClientOptions> = {}) {
  const sleep = vi.fn(async (_ms: number) => {})
  const calls: ThingerCallRecord[] = []
  const client = new ThingerClient({
    baseUrl: BASE_URL,
    username: USERNAME,
    token: TOKEN,
    fetch,
    sleep,
    random: () => 0.5,
    now: () => NOW_MS,
    onCall: (record) => calls.push(record),
    ...options,
  })
  return { client, sleep, calls }
}

describe('Class: ThingerClient', () => {
  describe('requests', () => {
    it('sends the token as a Bearer header and never in the URL', async () => {
      // Prepare
      const { fetch, requests } = scriptedFetch(json(200, DEVICE_BODY), json(200, {}), json(200, {}))
      const { client } = createClient(fetch)

      // Act
      await client.getDevice(DEVICE)
      await client.createDevice({ device: DEVICE, type: 'Generic', credentials: 'c' })
      await client.updateDevice(DEVICE, { credentials: 'c' })

      // Assess
      expect(requests).toHaveLength(3)
      for (const request of requests) {
        expect(request.headers.get('authorization')).toBe(`Bearer ${TOKEN}`)
        expect(request.headers.get('accept')).toBe('application/json')
        expect(request.url).not.toContain(TOKEN)
        expect(request.url).not.toContain('authorization')
      }
    })

    it('URL-encodes the username and device in the path, and drops trailing slashes of the base URL', async () => {
      // Prepare
      const { fetch, requests } = scriptedFetch(json(200, DEVICE_BODY), json(200, {}), json(200, {}))
      const { client } = createClient(fetch, { baseUrl: `${BASE_URL}/api//`, username: 'al ice/x' })

      // Act
      await client.getDevice('dev 1/../x?y#z')
      await client.createDevice({ device: 'd', type: 'Generic', credentials: 'c' })
      await client.updateDevice('a%b', { credentials: 'c' })

      // Assess
      expect(requests.map((request) => `${request.method} ${request.url}`)).toEqual([
        `GET ${BASE_URL}/api/v1/users/al%20ice%2Fx/devices/dev%201%2F..%2Fx%3Fy%23z`,
        `POST ${BASE_URL}/api/v1/users/al%20ice%2Fx/devices`,
        `PUT ${BASE_URL}/api/v1/users/al%20ice%2Fx/devices/a%25b`,
      ])
    })

    it('sends JSON bodies with a content type on create and update, and none on read', async () => {
      // Prepare
      const { fetch, requests } = scriptedFetch(json(200, DEVICE_BODY), json(200, {}), json(200, {}))
      const { client } = createClient(fetch)

      // Act
      await client.getDevice(DEVICE)
      await client.createDevice({ device: DEVICE, type: 'Generic', credentials: 'secret-credential' })
      await client.updateDevice(DEVICE, { credentials: 'other-credential' })

      // Assess
      const [read, create, update] = requests
      expect(read?.body).toBeUndefined()
      expect(read?.headers.get('content-type')).toBeNull()
      expect(create?.headers.get('content-type')).toBe('application/json')
      expect(JSON.parse(create?.body ?? '')).toEqual({ device: DEVICE, type: 'Generic', credentials: 'secret-credential' })
      expect(update?.headers.get('content-type')).toBe('application/json')
      expect(JSON.parse(update?.body ?? '')).toEqual({ credentials: 'other-credential' })
    })
  })

  describe('getDevice', () => {
    it('returns the device Thinger describes', async () => {
      // Prepare
      const { fetch } = scriptedFetch(json(200, DEVICE_BODY))
      const { client } = createClient(fetch)

      // Act
      const device = await client.getDevice(DEVICE)

      // Assess
      expect(device).toEqual(DEVICE_BODY)
    })

    it.each([
      ['epoch milliseconds', 1761659843288, 1761659843288],
      ['an ISO string', '2025-10-28T13:57:23.288Z', 1761659843288],
      ['an ISO string with an offset', '2025-10-28T14:57:23.288+01:00', 1761659843288],
      ['seconds, not milliseconds', 1761659843, undefined],
      ['a date without a time zone', '2025-10-28T13:57:23', undefined],
      ['text', 'yesterday', undefined],
      ['null', null, undefined],
    ])('reads created given as %s', async (_label, created, expected) => {
      // Prepare
      const { fetch } = scriptedFetch(json(200, { ...DEVICE_BODY, created }))
      const { client } = createClient(fetch)

      // Act
      const device = await client.getDevice(DEVICE)

      // Assess
      expect(device?.created).toBe(expected)
      expect(device).toEqual(expected === undefined ? DEVICE_BODY : { ...DEVICE_BODY, created: expected })
    })

    it('returns undefined when Thinger answers 404, without retrying', async () => {
      // Prepare
      const { fetch, requests } = scriptedFetch(json(404, { error: { message: 'device not found' } }))
      const { client, sleep } = createClient(fetch)

      // Act
      const device = await client.getDevice(DEVICE)

      // Assess
      expect(device).toBeUndefined()
      expect(requests).toHaveLength(1)
      expect(sleep).not.toHaveBeenCalled()
    })

    it('throws ThingerHttpError 502 when a 200 body is not JSON', async () => {
      // Prepare
      const { fetch } = scriptedFetch(() => new Response('<html>', { status: 200 }))
      const { client } = createClient(fetch)

      // Act
      const error = await captureRejection(() => client.getDevice(DEVICE))

      // Assess
      expect(error).toBeInstanceOf(ThingerHttpError)
      expect(error).toMatchObject({ status: 502 })
      expect((error as ThingerHttpError).upstreamMessage).toMatch(/^unreadable body: /)
    })
  })

  describe('updateDevice', () => {
    it('returns true when Thinger accepts the update', async () => {
      // Prepare
      const { fetch } = scriptedFetch(() => new Response(null, { status: 204 }))
      const { client } = createClient(fetch)

      // Act & Assess
      expect(await client.updateDevice(DEVICE, { credentials: 'c' })).toBe(true)
    })

    it('returns false when Thinger answers 404, without retrying', async () => {
      // Prepare
      const { fetch, requests } = scriptedFetch(json(404, { error: { message: 'device not found' } }))
      const { client } = createClient(fetch)

      // Act & Assess
      expect(await client.updateDevice(DEVICE, { credentials: 'c' })).toBe(false)
      expect(requests).toHaveLength(1)
    })

    it('is retried on 503 like a read', async () => {
      // Prepare
      const { fetch, requests } = scriptedFetch(json(503), json(200, {}))
      const { client, sleep } = createClient(fetch)

      // Act
      const updated = await client.updateDevice(DEVICE, { credentials: 'c' })

      // Assess
      expect(updated).toBe(true)
      expect(requests.map((request) => request.method)).toEqual(['PUT', 'PUT'])
      expect(sleep).toHaveBeenCalledTimes(1)
    })
  })

  describe('retries', () => {
    it('retries a read on 503 and returns the later answer, waiting the backoff', async () => {
      // Prepare
      const { fetch, requests } = scriptedFetch(json(503), json(200, DEVICE_BODY))
      const { client, sleep } = createClient(fetch)

      // Act
      const device = await client.getDevice(DEVICE)

      // Assess
      expect(device).toEqual(DEVICE_BODY)
      expect(requests).toHaveLength(2)
      // random 0.5 × min(1000, 100 × 2^0)
      expect(sleep.mock.calls).toEqual([[50]])
    })

    it('waits Retry-After seconds when they are longer than the backoff', async () => {
      // Prepare
      const { fetch } = scriptedFetch(json(503, undefined, { 'retry-after': '2' }), json(200, DEVICE_BODY))
      const { client, sleep } = createClient(fetch, { retry: { maxRetryAfterMs: 5000 } })

      // Act
      await client.getDevice(DEVICE)

      // Assess
      expect(sleep.mock.calls).toEqual([[2000]])
    })

    it('gives up at once when Retry-After is longer than maxRetryAfterMs, so the device waits instead of the function', async () => {
      // Prepare
      const { fetch, requests } = scriptedFetch(json(503, undefined, { 'retry-after': '2' }), json(200, DEVICE_BODY))
      const { client, sleep } = createClient(fetch, { retry: { maxRetryAfterMs: 1000 } })

      // Act
      const error = await client.getDevice(DEVICE).catch((e: unknown) => e)

      // Assess
      expect(error).toBeInstanceOf(ThingerHttpError)
      expect((error as ThingerHttpError).retryAfterSeconds).toBe(2)
      expect(requests).toHaveLength(1)
      expect(sleep).not.toHaveBeenCalled()
    })

    it('waits the backoff when it is longer than Retry-After', async () => {
      // Prepare
      const { fetch } = scriptedFetch(json(429, undefined, { 'retry-after': '0' }), json(200, DEVICE_BODY))
      const { client, sleep } = createClient(fetch, { random: () => 1, retry: { baseDelayMs: 300 } })

      // Act
      await client.getDevice(DEVICE)

      // Assess
      expect(sleep.mock.calls).toEqual([[300]])
    })

    it('reads Retry-After given as an HTTP date', async () => {
      // Prepare
      const retryAt = new Date(NOW_MS + 3000).toUTCString()
      const { fetch } = scriptedFetch(json(503, undefined, { 'retry-after': retryAt }), json(200, DEVICE_BODY))
      const { client, sleep } = createClient(fetch, { retry: { maxRetryAfterMs: 5000 } })

      // Act
      await client.getDevice(DEVICE)

      // Assess
      expect(sleep.mock.calls).toEqual([[3000]])
    })

    it('doubles the backoff ceiling on each retry up to maxDelayMs', async () => {
      // Prepare
      const { fetch, requests } = scriptedFetch(json(503), json(503), json(503), json(503), json(503), json(200, DEVICE_BODY))
      const { client, sleep } = createClient(fetch, { random: () => 1, retry: { limit: 5, baseDelayMs: 100, maxDelayMs: 1000 } })

      // Act
      await client.getDevice(DEVICE)

      // Assess
      expect(requests).toHaveLength(6)
      expect(sleep.mock.calls).toEqual([[100], [200], [400], [800], [1000]])
    })

    it('throws ThingerHttpError after retry.limit retries of a read', async () => {
      // Prepare
      const { fetch, requests } = scriptedFetch(json(503, { error: { message: 'maintenance' } }, { 'retry-after': '1' }))
      const { client, sleep } = createClient(fetch, { retry: { limit: 2 } })

      // Act
      const error = await captureRejection(() => client.getDevice(DEVICE))

      // Assess
      expect(error).toBeInstanceOf(ThingerHttpError)
      expect(error).toMatchObject({ status: 503, retryAfterSeconds: 1, upstreamMessage: 'maintenance' })
      expect(requests).toHaveLength(3)
      expect(sleep).toHaveBeenCalledTimes(2)
    })

    it('makes one attempt only when retry.limit is 0', async () => {
      // Prepare
      const { fetch, requests } = scriptedFetch(json(503))
      const { client, sleep } = createClient(fetch, { retry: { limit: 0 } })

      // Act
      const error = await captureRejection(() => client.getDevice(DEVICE))

      // Assess
      expect(error).toMatchObject({ status: 503 })
      expect(requests).toHaveLength(1)
      expect(sleep).not.toHaveBeenCalled()
    })

    it.each([408, 429, 500, 502, 504])('retries a read on %i', async (status) => {
      // Prepare
      const { fetch, requests } = scriptedFetch(json(status), json(200, DEVICE_BODY))
      const { client } = createClient(fetch)

      // Act
      const device = await client.getDevice(DEVICE)

      // Assess
      expect(device).toEqual(DEVICE_BODY)
      expect(requests).toHaveLength(2)
    })

    it.each([400, 401, 403, 409])('does not retry a read on %i', async (status) => {
      // Prepare
      const { fetch, requests } = scriptedFetch(json(status, { error: { message: 'no' } }), json(200, DEVICE_BODY))
      const { client, sleep } = createClient(fetch)

      // Act
      const error = await captureRejection(() => client.getDevice(DEVICE))

      // Assess
      expect(error).toBeInstanceOf(ThingerHttpError)
      expect(error).toMatchObject({ status, upstreamMessage: 'no' })
      expect(requests).toHaveLength(1)
      expect(sleep).not.toHaveBeenCalled()
    })

    it('retries a read after a network failure', async () => {
      // Prepare
      const { fetch, requests } = scriptedFetch(networkFailure('ECONNRESET'), json(200, DEVICE_BODY))
      const { client } = createClient(fetch)

      // Act
      const device = await client.getDevice(DEVICE)

      // Assess
      expect(device).toEqual(DEVICE_BODY)
      expect(requests).toHaveLength(2)
    })

    it('never retries a create, even on 503', async () => {
      // Prepare
      const { fetch, requests } = scriptedFetch(json(503, undefined, { 'retry-after': '1' }), json(200, {}))
      const { client, sleep } = createClient(fetch)

      // Act
      const error = await captureRejection(() => client.createDevice({ device: DEVICE, type: 'Generic', credentials: 'c' }))

      // Assess
      expect(error).toBeInstanceOf(ThingerHttpError)
      expect(error).toMatchObject({ status: 503, retryAfterSeconds: 1, message: 'Thinger.io CreateDevice (POST) answered 503' })
      expect(requests).toHaveLength(1)
      expect(sleep).not.toHaveBeenCalled()
    })

    it('never retries a create after a network failure', async () => {
      // Prepare
      const { fetch, requests } = scriptedFetch(networkFailure('ECONNRESET'), json(200, {}))
      const { client } = createClient(fetch)

      // Act
      const error = await captureRejection(() => client.createDevice({ device: DEVICE, type: 'Generic', credentials: 'c' }))

      // Assess
      expect(error).toBeInstanceOf(ThingerNetworkError)
      expect(requests).toHaveLength(1)
    })
  })

  describe('errors', () => {
    it('throws ThingerHttpError 400 carrying Thinger\'s error message when a create is refused', async () => {
      // Prepare
      const { fetch } = scriptedFetch(json(400, { error: { message: 'device already exists' } }))
      const { client } = createClient(fetch)

      // Act
      const error = await captureRejection(() => client.createDevice({ device: DEVICE, type: 'Generic', credentials: 'c' }))

      // Assess
      expect(error).toBeInstanceOf(ThingerHttpError)
      expect(error).toMatchObject({ status: 400, upstreamMessage: 'device already exists', retryAfterSeconds: undefined })
    })

    it('shortens Thinger\'s error message to 200 characters', async () => {
      // Prepare
      const { fetch } = scriptedFetch(json(400, { error: { message: 'x'.repeat(5000) } }))
      const { client } = createClient(fetch)

      // Act
      const error = await captureRejection(() => client.createDevice({ device: DEVICE, type: 'Generic', credentials: 'c' }))

      // Assess
      expect((error as ThingerHttpError).upstreamMessage).toBe('x'.repeat(200))
    })

    it.each([
      ['not JSON', () => new Response('Bad Request', { status: 400 })],
      ['empty', () => new Response(null, { status: 400 })],
      ['JSON without error.message', json(400, { message: 'flat' })],
      ['JSON with a non-string message', json(400, { error: { message: 42 } })],
      ['JSON null', json(400, null)],
    ])('leaves upstreamMessage undefined when the error body is %s', async (_label, reply) => {
      // Prepare
      const { fetch } = scriptedFetch(reply)
      const { client } = createClient(fetch)

      // Act
      const error = await captureRejection(() => client.createDevice({ device: DEVICE, type: 'Generic', credentials: 'c' }))

      // Assess
      expect(error).toBeInstanceOf(ThingerHttpError)
      expect(error).toMatchObject({ status: 400, upstreamMessage: undefined })
    })

    it('throws ThingerNetworkError naming the system error code when the connection fails', async () => {
      // Prepare
      const { fetch } = scriptedFetch(networkFailure('ECONNREFUSED'))
      const { client } = createClient(fetch, { retry: { limit: 0 } })

      // Act
      const error = await captureRejection(() => client.getDevice(DEVICE))

      // Assess
      expect(error).toBeInstanceOf(ThingerNetworkError)
      expect((error as Error).message).toBe('Thinger.io ReadDeviceStatus (GET) failed: ECONNREFUSED')
      expect((error as Error).message).not.toContain(TOKEN)
    })

    it('throws ThingerTimeoutError when the call outlasts timeoutMs', async () => {
      // Prepare
      const { fetch, requests } = scriptedFetch(hang)
      const { client } = createClient(fetch, { timeoutMs: 20 })

      // Act
      const error = await captureRejection(() => client.createDevice({ device: DEVICE, type: 'Generic', credentials: 'c' }))

      // Assess
      expect(error).toBeInstanceOf(ThingerTimeoutError)
      expect((error as Error).message).toBe('Thinger.io CreateDevice (POST) timed out after 20 ms')
      expect(requests).toHaveLength(1)
      expect(requests[0]?.signal?.aborted).toBe(true)
    })

    it('retries a read that timed out', async () => {
      // Prepare
      const { fetch, requests } = scriptedFetch(hang, json(200, DEVICE_BODY))
      const { client } = createClient(fetch, { timeoutMs: 20 })

      // Act
      const device = await client.getDevice(DEVICE)

      // Assess
      expect(device).toEqual(DEVICE_BODY)
      expect(requests).toHaveLength(2)
    })

    it('gives a call no more time than is left before the deadline', async () => {
      // Prepare
      const { fetch } = scriptedFetch(hang)
      const { client } = createClient(fetch, { timeoutMs: 5000, deadlineMs: NOW_MS + 20 })

      // Act
      const error = await captureRejection(() => client.createDevice({ device: DEVICE, type: 'Generic', credentials: 'c' }))

      // Assess
      expect(error).toBeInstanceOf(ThingerTimeoutError)
      expect((error as Error).message).toBe('Thinger.io CreateDevice (POST) timed out after 20 ms')
    })

    it.each([
      ['already past', NOW_MS - 1],
      ['exactly now', NOW_MS],
    ])('throws ThingerTimeoutError without calling fetch when the deadline is %s', async (_label, deadlineMs) => {
      // Prepare
      const { fetch, requests } = scriptedFetch(json(200, DEVICE_BODY))
      const { client, calls } = createClient(fetch, { deadlineMs })

      // Act
      const error = await captureRejection(() => client.getDevice(DEVICE))

      // Assess
      expect(error).toBeInstanceOf(ThingerTimeoutError)
      expect((error as Error).message).toBe('Thinger.io ReadDeviceStatus (GET) timed out after 0 ms')
      expect(requests).toHaveLength(0)
      expect(calls).toEqual([])
    })

    it('does not attempt a retry whose wait would reach the deadline', async () => {
      // Prepare
      const { fetch, requests } = scriptedFetch(json(503, undefined, { 'retry-after': '1' }), json(200, DEVICE_BODY))
      const { client, sleep } = createClient(fetch, { deadlineMs: NOW_MS + 1000 })

      // Act
      const error = await captureRejection(() => client.getDevice(DEVICE))

      // Assess
      expect(error).toBeInstanceOf(ThingerHttpError)
      expect(error).toMatchObject({ status: 503, retryAfterSeconds: 1 })
      expect(requests).toHaveLength(1)
      expect(sleep).not.toHaveBeenCalled()
    })

    it('attempts a retry whose wait ends before the deadline', async () => {
      // Prepare
      const { fetch, requests } = scriptedFetch(json(503, undefined, { 'retry-after': '1' }), json(200, DEVICE_BODY))
      const { client, sleep } = createClient(fetch, { deadlineMs: NOW_MS + 1001 })

      // Act
      const device = await client.getDevice(DEVICE)

      // Assess
      expect(device).toEqual(DEVICE_BODY)
      expect(requests).toHaveLength(2)
      expect(sleep.mock.calls).toEqual([[1000]])
    })
  })

  describe('onCall', () => {
    it('records each finished call with its status and duration', async () => {
      // Prepare
      let clockMs = NOW_MS
      const advance = (ms: number, reply: Reply): Reply => (request) => {
        clockMs += ms
        return reply(request)
      }
      const { fetch } = scriptedFetch(
        advance(30, json(503)),
        advance(40, json(200, DEVICE_BODY)),
        advance(15, networkFailure('ECONNRESET')),
        advance(5, json(404)),
      )
      const { client, calls } = createClient(fetch, { now: () => clockMs, retry: { limit: 0 } })

      // Act
      await captureRejection(() => client.getDevice(DEVICE))
      await client.getDevice(DEVICE)
      await captureRejection(() => client.createDevice({ device: DEVICE, type: 'Generic', credentials: 'c' }))
      await client.updateDevice(DEVICE, { credentials: 'c' })

      // Assess
      expect(calls).toEqual([
        { method: 'GET', operation: 'ReadDeviceStatus', status: 503, durationMs: 30 },
        { method: 'GET', operation: 'ReadDeviceStatus', status: 200, durationMs: 40 },
        { method: 'POST', operation: 'CreateDevice', status: 'network', durationMs: 15 },
        { method: 'PUT', operation: 'UpdateDevice', status: 404, durationMs: 5 },
      ])
    })

    it('records a timeout and each retry', async () => {
      // Prepare
      const { fetch } = scriptedFetch(hang, json(500), json(200, DEVICE_BODY))
      const { client, calls } = createClient(fetch, { timeoutMs: 20 })

      // Act
      await client.getDevice(DEVICE)

      // Assess
      expect(calls.map((call) => call.status)).toEqual(['timeout', 500, 200])
    })
  })
})

describe('Function: parseRetryAfter', () => {
  it.each([
    ['absent', null, undefined],
    ['empty', '', undefined],
    ['zero seconds', '0', 0],
    ['delta-seconds', '120', 120],
    ['delta-seconds with whitespace', ' 7 ', 7],
    ['not a number or date', 'soon', undefined],
    ['digits followed by letters', '120abc', undefined],
    ['exponent notation', '1e3', undefined],
    ['a negative number', '-1', undefined],
    ['a fraction', '1.5', undefined],
    ['a date that is not an IMF-fixdate', '2026-11-26', undefined],
  ])('reads %s (%j) as %j', (_label, value, expected) => {
    // Act & Assess
    expect(parseRetryAfter(value, NOW_MS)).toBe(expected)
  })

  it.each([
    ['an HTTP date 3 s ahead', new Date(NOW_MS + 3000).toUTCString(), 3],
    ['an HTTP date in the past', new Date(NOW_MS - 60_000).toUTCString(), 0],
    ['an HTTP date equal to now', new Date(NOW_MS).toUTCString(), 0],
  ])('reads %s', (_label, value, expected) => {
    // Act & Assess
    expect(parseRetryAfter(value, NOW_MS)).toBe(expected)
  })

  it('rounds a fractional wait up to the next second', () => {
    // Prepare
    const value = new Date(NOW_MS + 2000).toUTCString()

    // Act & Assess
    expect(parseRetryAfter(value, NOW_MS + 500)).toBe(2)
    expect(parseRetryAfter(value, NOW_MS + 1)).toBe(2)
  })
})

describe('Function: parseCreated', () => {
  it('returns undefined when created is absent', () => {
    expect(parseCreated(undefined)).toBeUndefined()
  })
})
