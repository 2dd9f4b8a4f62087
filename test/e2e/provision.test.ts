import { readFileSync } from 'node:fs'
import { afterAll, describe, expect, inject, it } from 'vitest'
import { LOCAL_FLEET_KEY, LOCAL_THINGER_TOKEN, LOCAL_USERNAME } from '../../local/defaults.js'
import { deviceKeyOf, newDeviceId, signedBody } from '../support/device.js'
import { emulatorClient } from '../support/emulator-client.js'
import { describeEachVariant } from './variants.js'

const provisionUrl = inject('provisionUrl')
const thingerUrl = inject('thingerUrl')
const secretsSeen = new Set<string>([LOCAL_THINGER_TOKEN, LOCAL_FLEET_KEY])

async function provision(body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; json: any; text: string }> {
  const response = await fetch(provisionUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
  const text = await response.text()
  let json: any
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  if (typeof json?.credential === 'string') secretsSeen.add(json.credential)
  return { status: response.status, headers: response.headers, json, text }
}

/**
 * Provisions the way docs/firmware.md tells a device to: a fresh timestamp; on `replayed` sign
 * again with the service's time, or after the wait it asks for (at most a few seconds after a
 * device was created: its creating request must not be replayable).
 */
async function provisionLikeFirmware(device: string) {
  let timestamp = Math.floor(Date.now() / 1000)
  for (let attempt = 1; ; attempt++) {
    const answer = await signedProvision(device, { timestamp })
    const error = answer.json?.error
    if (attempt >= 3 || answer.status !== 401 || error?.code !== 'replayed') return answer
    if (typeof error.serverTime === 'number') {
      timestamp = error.serverTime
    } else {
      await new Promise((resolve) => setTimeout(resolve, error.retryAfter * 1000))
      timestamp = Math.floor(Date.now() / 1000)
    }
  }
}

async function signedProvision(device: string, options: { timestamp?: number } = {}) {
  const body = signedBody(device, options)
  secretsSeen.add(body.signature)
  secretsSeen.add(deviceKeyOf(device))
  return provision(body)
}

const { login, callCount } = emulatorClient(thingerUrl)

async function thingerCallsFor(device: string): Promise<Array<{ method: string; path: string; status: number | null }>> {
  const calls = (await (await fetch(`${thingerUrl}/__emulator/calls`)).json()) as Array<{ method: string; path: string; status: number | null }>
  return calls.filter((call) => call.path.endsWith(`/devices/${device}`) || call.path.endsWith('/devices'))
    .filter((call) => call.path.includes(device) || call.method === 'POST')
}

async function devicesOnThinger(): Promise<Array<{ device: string }>> {
  return (await (await fetch(`${thingerUrl}/__emulator/devices/${LOCAL_USERNAME}`)).json()) as Array<{ device: string }>
}

describeEachVariant('POST /v1/provision (local stack over HTTP)', () => {
  it('creates a new device with 201 and a credential that logs in, in one Thinger call', async () => {
    // Prepare
    const device = newDeviceId()
    const before = await callCount()

    // Act
    const response = await signedProvision(device)

    // Assess
    expect(response.status).toBe(201)
    expect(response.json).toEqual({ username: LOCAL_USERNAME, device, credential: expect.stringMatching(/^[A-Za-z0-9]{24}$/), host: expect.any(String), created: true, answerSignature: expect.stringMatching(/^[A-Za-z0-9+/]{86}==$/) })
    expect(response.headers.get('cache-control')).toBe('no-store')
    expect(await login(device, response.json.credential)).toBe(200)
    expect((await devicesOnThinger()).filter((d) => d.device === device)).toHaveLength(1)
    const calls = await thingerCallsFor(device)
    expect(calls.map((c) => `${c.method} ${c.status}`)).toContain('POST 200')
    expect((await callCount()) - before).toBeGreaterThanOrEqual(1)
  })

  it('re-provisions an existing device with 200 and a new credential; the old one stops working', async () => {
    // Prepare
    const device = newDeviceId()
    const first = await signedProvision(device)
    expect(first.status).toBe(201)

    // Act: the same device again, as firmware does it (docs/firmware.md: follow `replayed`)
    const second = await provisionLikeFirmware(device)

    // Assess
    expect(second.status).toBe(200)
    expect(second.json.created).toBe(false)
    expect(second.json.credential).not.toBe(first.json.credential)
    expect(await login(device, second.json.credential)).toBe(200)
    expect(await login(device, first.json.credential)).toBe(401)
    expect((await devicesOnThinger()).filter((d) => d.device === device)).toHaveLength(1)
  })

  it('answers in key=value lines for Accept: text/plain', async () => {
    // Prepare
    const device = newDeviceId()
    const body = signedBody(device)

    // Act
    const response = await provision(body, { accept: 'text/plain' })

    // Assess
    expect(response.status).toBe(201)
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/)
    const lines = response.text.split('\n')
    expect(lines[0]).toBe(`username=${LOCAL_USERNAME}`)
    expect(lines[1]).toBe(`device=${device}`)
    expect(lines[2]).toMatch(/^credential=[A-Za-z0-9]{24}$/)
    expect(lines[4]).toBe('created=true')
    expect(lines[5]).toMatch(/^answer_signature=[A-Za-z0-9+/]{86}==$/)
    secretsSeen.add(lines[2]!.slice('credential='.length))
    expect(await login(device, lines[2]!.slice('credential='.length))).toBe(200)
  })

  it('leaves exactly one device when 20 requests for one new device arrive at once', async () => {
    // Prepare: 20 distinct timestamps, as a device retrying in a loop would sign
    const device = newDeviceId()
    const now = Math.floor(Date.now() / 1000)

    // Act
    const responses = await Promise.all(Array.from({ length: 20 }, (_, i) => signedProvision(device, { timestamp: now - 20 + i })))

    // Assess: one creates; the others replace the credential, or are refused as older than one already accepted
    const statuses = responses.map((r) => r.status)
    expect(statuses.filter((s) => s === 201)).toHaveLength(1)
    expect(statuses.every((s) => s === 200 || s === 201 || s === 401)).toBe(true)
    expect(responses.filter((r) => r.status === 401).every((r) => r.json.error.code === 'replayed')).toBe(true)
    expect((await devicesOnThinger()).filter((d) => d.device === device)).toHaveLength(1)
    const granted = responses.filter((r) => r.status < 300)
    const working = await Promise.all(granted.map((r) => login(device, r.json.credential)))
    expect(working.filter((status) => status === 200)).toHaveLength(1)
  })

  it('refuses a replayed request with 401 replayed, and the credential it first gave keeps working', async () => {
    // Prepare
    const device = newDeviceId()
    const body = signedBody(device)
    const first = await provision(body)
    secretsSeen.add(body.signature)

    // Act
    const replay = await provision(body)

    // Assess
    expect(first.status).toBe(201)
    expect(replay.status).toBe(401)
    expect(replay.json.error).toMatchObject({ code: 'replayed', retryable: true })
    expect(replay.json.error.serverTime ?? replay.json.error.retryAfter).toEqual(expect.any(Number))
    expect(await login(device, first.json.credential)).toBe(200)
  })

  describe('refuses, and Thinger sees no call, when', () => {
    const cases: Array<[string, () => Promise<{ status: number; json: any; text: string; headers: Headers }>, number, string]> = [
      ['the signature is wrong', () => provision({ ...signedBody(newDeviceId()), signature: signedBody(newDeviceId()).signature }), 401, 'invalid_signature'],
      ['the key belongs to another fleet', () => provision(signedBody(newDeviceId(), { fleetKey: 'dGhpbmdlci1wcm92aXNpb25lci10ZXN0LWZsZWV0LWtleS0wMDE=' })), 401, 'invalid_signature'],
      ['the timestamp is stale', () => signedProvision(newDeviceId(), { timestamp: Math.floor(Date.now() / 1000) - 3600 }), 401, 'clock_skew'],
      ['the device is outside its fleet’s pattern', () => provision({ ...signedBody(newDeviceId('other')), fleet: 'workshop' }), 403, 'device_not_allowed'],
      ['the device ID breaks Thinger’s rule', () => provision(signedBody('e2e_has space')), 400, 'invalid_request'],
      ['the body is not JSON', () => provision('{"device": '), 400, 'invalid_request'],
      ['the body is a JSON array', () => provision('[]'), 400, 'invalid_request'],
      ['a field is missing', () => provision({ device: newDeviceId(), timestamp: 1 }), 400, 'invalid_request'],
      ['a field is unknown', () => provision({ ...signedBody(newDeviceId()), admin: true }), 400, 'invalid_request'],
      ['the timestamp is a string', () => provision({ ...signedBody(newDeviceId()), timestamp: '1764150000' }), 400, 'invalid_request'],
      ['the content type is not JSON', () => provision(JSON.stringify(signedBody(newDeviceId())), { 'content-type': 'text/plain' }), 415, 'unsupported_media_type'],
      ['the body is over 4 KiB', () => provision(JSON.stringify({ ...signedBody(newDeviceId()), pad: 'x'.repeat(5000) })), 413, 'payload_too_large'],
    ]

    it.each(cases)('%s', async (_name, send, status, code) => {
      // Prepare
      const before = await callCount()

      // Act
      const response = await send()

      // Assess
      expect(response.status).toBe(status)
      expect(response.json).toEqual({
        error: { code, message: expect.any(String), retryable: false, ...(code === 'clock_skew' ? { serverTime: expect.any(Number) } : {}) },
        requestId: expect.any(String),
      })
      expect(await callCount()).toBe(before)
    })
  })

  it('gives the server time on clock_skew so a device without a clock succeeds at once', async () => {
    // Prepare
    const device = newDeviceId()
    const refused = await signedProvision(device, { timestamp: 0 })
    expect(refused.status).toBe(401)

    // Act
    const retried = await signedProvision(device, { timestamp: refused.json.error.serverTime })

    // Assess
    expect(retried.status).toBe(201)
  })

  describe('when Thinger.io misbehaves', () => {
    afterAll(async () => {
      await fetch(`${thingerUrl}/__emulator/faults`, { method: 'DELETE' })
    })

    it('answers 503 upstream_unavailable with Retry-After, and a retry then succeeds', async () => {
      // Prepare
      const device = newDeviceId()
      await fetch(`${thingerUrl}/__emulator/faults`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify([{ path: `/devices(/${device})?$`, action: 'status', status: 503, retryAfterSeconds: 2 }]),
      })

      // Act
      const refused = await signedProvision(device)
      await fetch(`${thingerUrl}/__emulator/faults`, { method: 'DELETE' })
      const retried = await signedProvision(device)

      // Assess
      expect(refused.status).toBe(503)
      expect(refused.json.error).toMatchObject({ code: 'upstream_unavailable', retryable: true })
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(2)
      expect(retried.status === 200 || retried.status === 201).toBe(true)
      expect(await login(device, retried.json.credential)).toBe(200)
    })

    it('answers 502 upstream_error when Thinger refuses the token', async () => {
      // Prepare
      const device = newDeviceId()
      await fetch(`${thingerUrl}/__emulator/faults`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify([{ method: 'POST', action: 'status', status: 401, times: 1 }]),
      })

      // Act
      const response = await signedProvision(device)

      // Assess
      expect(response.status).toBe(502)
      expect(response.json.error).toMatchObject({ code: 'upstream_error', retryable: false })
      expect(response.text).not.toContain(LOCAL_THINGER_TOKEN)
    })
  })

  it('never writes a secret to the function logs', async () => {
    // Prepare: give the offline process a moment to flush the last lines
    await new Promise((resolve) => setTimeout(resolve, 300))
    const logs = readFileSync(inject('offlineLogFile'), 'utf8')

    // Act
    const leaked = [...secretsSeen].filter((secret) => logs.includes(secret))

    // Assess
    expect(logs).toContain('"message":"provision"')
    expect(secretsSeen.size).toBeGreaterThan(10)
    expect(leaked).toEqual([])
  })
})
