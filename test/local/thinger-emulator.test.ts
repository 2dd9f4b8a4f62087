import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startThingerEmulator } from '../../local/thinger-emulator.js'
import type { ThingerEmulator } from '../../local/thinger-emulator.js'

const USER = 'alice'
const TOKEN = 'token-alice-all'
const READ_ONLY_TOKEN = 'token-alice-read'
const OTHER_USER = 'bob'
const OTHER_TOKEN = 'token-bob'
const LIMITED_USER = 'carol'
const LIMITED_TOKEN = 'token-carol'
const CREDENTIAL = 'first-Secret-1'
const DEVICES_PATH = `/v1/users/${USER}/devices`

interface CallOptions {
  token?: string | null
  body?: unknown
  rawBody?: string
  signal?: AbortSignal
}

describe('Module: thinger-emulator', () => {
  let emulator: ThingerEmulator

  const call = async (method: string, path: string, options: CallOptions = {}): Promise<Response> => {
    const token = options.token === undefined ? TOKEN : options.token
    const headers: Record<string, string> = { 'content-type': 'application/json' }
    if (token !== null) headers.authorization = `Bearer ${token}`
    const body = options.rawBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body))
    return fetch(`${emulator.url}${path}`, {
      method,
      headers,
      ...(body === undefined ? {} : { body }),
      ...(options.signal === undefined ? {} : { signal: options.signal })
    })
  }

  const createGeneric = (device: string, credentials = CREDENTIAL): Promise<Response> =>
    call('POST', DEVICES_PATH, { body: { device, type: 'Generic', credentials } })

  beforeAll(async () => {
    emulator = await startThingerEmulator({
      port: 0,
      accounts: [
        { username: USER, tokens: [{ token: TOKEN }, { token: READ_ONLY_TOKEN, allow: ['ListDevices', 'ReadDevice'] }] },
        { username: OTHER_USER, tokens: [{ token: OTHER_TOKEN }] },
        { username: LIMITED_USER, tokens: [{ token: LIMITED_TOKEN }], maxDevices: 1 }
      ]
    })
  })

  beforeEach(() => {
    emulator.reset()
    emulator.setLatencyMs(0)
  })

  afterAll(async () => {
    await emulator.close()
  })

  describe('authentication', () => {
    it('answers 401 when the token is missing or unknown', async () => {
      // Act
      const missing = await call('GET', DEVICES_PATH, { token: null })
      const unknown = await call('GET', DEVICES_PATH, { token: 'nope' })

      // Assess
      expect(missing.status).toBe(401)
      expect(await missing.json()).toEqual({ error: { message: 'unauthorized' } })
      expect(unknown.status).toBe(401)
    })

    it('answers 403 when the token belongs to another account', async () => {
      // Act
      const response = await call('GET', DEVICES_PATH, { token: OTHER_TOKEN })

      // Assess
      expect(response.status).toBe(403)
      expect(await response.json()).toEqual({ error: { message: 'forbidden' } })
    })

    it('answers 403 when the token lacks the permission, before validating the body', async () => {
      // Act
      const response = await call('POST', DEVICES_PATH, { token: READ_ONLY_TOKEN, rawBody: 'not json' })

      // Assess
      expect(response.status).toBe(403)
      expect(emulator.devices(USER)).toEqual([])
    })

    it('accepts the legacy ?authorization= query form', async () => {
      // Prepare
      await createGeneric('esp32-a')

      // Act
      const response = await call('GET', `${DEVICES_PATH}?authorization=${TOKEN}`, { token: null })

      // Assess
      expect(response.status).toBe(200)
      expect(await response.json()).toHaveLength(1)
    })
  })

  describe('create and read', () => {
    it('answers 200 with {} on create, and GET shows the device without its credential', async () => {
      // Act
      const created = await call('POST', DEVICES_PATH, {
        body: { device: 'esp32-a', type: 'Generic', credentials: CREDENTIAL, name: 'Kitchen', asset_group: 'sensors' }
      })
      const read = await call('GET', `${DEVICES_PATH}/esp32-a`)

      // Assess
      expect(created.status).toBe(200)
      expect(await created.json()).toEqual({})
      expect(read.status).toBe(200)
      const text = await read.text()
      expect(JSON.parse(text)).toEqual({
        device: 'esp32-a',
        name: 'Kitchen',
        description: '',
        type: 'Generic',
        enabled: true,
        asset_group: 'sensors',
        created: expect.any(Number),
        modified: expect.any(Number)
      })
      expect(text).not.toContain(CREDENTIAL)
      expect(emulator.checkLogin(USER, 'esp32-a', CREDENTIAL)).toEqual({ ok: true })
    })

    it('answers 404 with an error body when the device is missing', async () => {
      // Act
      const response = await call('GET', `${DEVICES_PATH}/ghost`)

      // Assess
      expect(response.status).toBe(404)
      expect(await response.json()).toEqual({ error: { message: 'device not found' } })
    })

    it('answers 400 when the device already exists, and the original credential still logs in', async () => {
      // Prepare
      await createGeneric('esp32-a')

      // Act
      const duplicate = await createGeneric('esp32-a', 'second-Secret-2')

      // Assess
      expect(duplicate.status).toBe(400)
      expect(emulator.checkLogin(USER, 'esp32-a', CREDENTIAL)).toEqual({ ok: true })
      expect(emulator.checkLogin(USER, 'esp32-a', 'second-Secret-2')).toEqual({ ok: false, reason: 'bad_credential' })
    })

    it('answers 400 when the body has an unknown field, and creates nothing', async () => {
      // Act
      const response = await call('POST', DEVICES_PATH, { body: { device: 'esp32-a', credentials: CREDENTIAL, colour: 'red' } })

      // Assess
      expect(response.status).toBe(400)
      expect(await response.json()).toEqual({ error: { message: expect.any(String) } })
      expect(emulator.device(USER, 'esp32-a')).toBeUndefined()
    })

    it('answers 400 when the credentials have 5 characters', async () => {
      // Act
      const response = await createGeneric('esp32-a', '12345')

      // Assess
      expect(response.status).toBe(400)
      expect(emulator.device(USER, 'esp32-a')).toBeUndefined()
    })

    it.each([
      ['a device ID with a dot', { device: 'esp32.a', credentials: CREDENTIAL }],
      ['a device ID of 33 characters', { device: 'a'.repeat(33), credentials: CREDENTIAL }],
      ['no device ID', { credentials: CREDENTIAL }],
      ['no type and no credentials', { device: 'esp32-a' }],
      ['an HTTP device with credentials', { device: 'esp32-a', type: 'HTTP', credentials: CREDENTIAL }],
      ['an unknown type', { device: 'esp32-a', type: 'Lora', credentials: CREDENTIAL }],
      ['enabled as a string', { device: 'esp32-a', credentials: CREDENTIAL, enabled: 'true' }],
      ['a bad asset_type', { device: 'esp32-a', credentials: CREDENTIAL, asset_type: 'a b' }],
      ['a name of 256 characters', { device: 'esp32-a', credentials: CREDENTIAL, name: 'n'.repeat(256) }],
      ['a JSON array', [{ device: 'esp32-a', credentials: CREDENTIAL }]]
    ])('answers 400 when the create body has %s', async (_case, body) => {
      // Act
      const response = await call('POST', DEVICES_PATH, { body })

      // Assess
      expect(response.status).toBe(400)
      expect(emulator.devices(USER)).toEqual([])
    })

    it('answers 400 when the body is not JSON', async () => {
      // Act
      const response = await call('POST', DEVICES_PATH, { rawBody: '{"device":' })

      // Assess
      expect(response.status).toBe(400)
    })

    it('creates an HTTP device without credentials, which cannot log in', async () => {
      // Act
      const response = await call('POST', DEVICES_PATH, { body: { device: 'webhook', type: 'HTTP', description: 'a hook' } })

      // Assess
      expect(response.status).toBe(200)
      expect(emulator.device(USER, 'webhook')).toMatchObject({ type: 'HTTP', description: 'a hook' })
      expect(emulator.checkLogin(USER, 'webhook', 'anything')).toEqual({ ok: false, reason: 'not_a_credential_device' })
    })

    it('answers 400 when the account reached maxDevices', async () => {
      // Prepare
      const first = await call('POST', `/v1/users/${LIMITED_USER}/devices`, {
        token: LIMITED_TOKEN,
        body: { device: 'one', credentials: CREDENTIAL }
      })

      // Act
      const second = await call('POST', `/v1/users/${LIMITED_USER}/devices`, {
        token: LIMITED_TOKEN,
        body: { device: 'two', credentials: CREDENTIAL }
      })

      // Assess
      expect(first.status).toBe(200)
      expect(second.status).toBe(400)
      expect(emulator.devices(LIMITED_USER).map((view) => view.device)).toEqual(['one'])
    })

    it('answers 413 when the body exceeds 64 KiB', async () => {
      // Act
      const response = await call('POST', DEVICES_PATH, { body: { device: 'esp32-a', credentials: CREDENTIAL, name: 'x'.repeat(70_000) } })

      // Assess
      expect(response.status).toBe(413)
    })

    it('answers 404 with a JSON error on an unknown route', async () => {
      // Act
      const response = await call('GET', `/v1/users/${USER}/buckets`)

      // Assess
      expect(response.status).toBe(404)
      expect(await response.json()).toEqual({ error: { message: expect.any(String) } })
    })
  })

  describe('update and delete', () => {
    it('replaces the credential on PUT: the old one is refused, the new one accepted', async () => {
      // Prepare
      await createGeneric('esp32-a')

      // Act
      const response = await call('PUT', `${DEVICES_PATH}/esp32-a`, { body: { credentials: 'brand-New-3' } })

      // Assess
      expect(response.status).toBe(200)
      expect(emulator.checkLogin(USER, 'esp32-a', CREDENTIAL)).toEqual({ ok: false, reason: 'bad_credential' })
      expect(emulator.checkLogin(USER, 'esp32-a', 'brand-New-3')).toEqual({ ok: true })
    })

    it.each([
      ['device', { device: 'esp32-b' }],
      ['type', { type: 'MQTT' }],
      ['an unknown field', { colour: 'red' }]
    ])('answers 400 when the update body has %s', async (_case, body) => {
      // Prepare
      await createGeneric('esp32-a')

      // Act
      const response = await call('PUT', `${DEVICES_PATH}/esp32-a`, { body })

      // Assess
      expect(response.status).toBe(400)
      expect(emulator.device(USER, 'esp32-a')).toMatchObject({ device: 'esp32-a', type: 'Generic' })
    })

    it('clears an asset field set to "" and keeps the others', async () => {
      // Prepare
      await call('POST', DEVICES_PATH, { body: { device: 'esp32-a', credentials: CREDENTIAL, product: 'p1', asset_type: 't1' } })

      // Act
      const response = await call('PUT', `${DEVICES_PATH}/esp32-a`, { body: { product: '', name: 'renamed' } })

      // Assess
      expect(response.status).toBe(200)
      const view = emulator.device(USER, 'esp32-a')
      expect(view).toMatchObject({ name: 'renamed', asset_type: 't1' })
      expect(view).not.toHaveProperty('product')
    })

    it('answers 404 when updating or deleting a missing device', async () => {
      // Act
      const update = await call('PUT', `${DEVICES_PATH}/ghost`, { body: { name: 'x' } })
      const remove = await call('DELETE', `${DEVICES_PATH}/ghost`)

      // Assess
      expect(update.status).toBe(404)
      expect(remove.status).toBe(404)
    })

    it('deletes a device', async () => {
      // Prepare
      await createGeneric('esp32-a')

      // Act
      const response = await call('DELETE', `${DEVICES_PATH}/esp32-a`)

      // Assess
      expect(response.status).toBe(200)
      expect(emulator.device(USER, 'esp32-a')).toBeUndefined()
      expect(emulator.checkLogin(USER, 'esp32-a', CREDENTIAL)).toEqual({ ok: false, reason: 'unknown_device' })
    })

    it('refuses the login of a disabled device', async () => {
      // Prepare
      await createGeneric('esp32-a')

      // Act
      await call('PUT', `${DEVICES_PATH}/esp32-a`, { body: { enabled: false } })
      const login = await fetch(`${emulator.url}/__emulator/login`, {
        method: 'POST',
        body: JSON.stringify({ username: USER, device: 'esp32-a', credential: CREDENTIAL })
      })

      // Assess
      expect(login.status).toBe(401)
      expect(await login.json()).toEqual({ ok: false, reason: 'disabled' })
    })
  })

  describe('list', () => {
    it('filters on name as a substring of the device ID or name, and pages with count and index', async () => {
      // Prepare
      await createGeneric('esp1')
      await createGeneric('esp10')
      await call('POST', DEVICES_PATH, { body: { device: 'other', credentials: CREDENTIAL, name: 'my esp' } })
      await createGeneric('pump')

      // Act
      const filtered = await call('GET', `${DEVICES_PATH}?name=esp`)
      const paged = await call('GET', `${DEVICES_PATH}?count=2&index=1`)

      // Assess
      expect((await filtered.json() as { device: string }[]).map((view) => view.device)).toEqual(['esp1', 'esp10', 'other'])
      expect((await paged.json() as { device: string }[]).map((view) => view.device)).toEqual(['esp10', 'other'])
    })
  })

  describe('recording', () => {
    it('records calls without the query string, so a token never lands in the record', async () => {
      // Prepare
      await createGeneric('esp32-a')

      // Act
      await call('GET', `${DEVICES_PATH}?authorization=${TOKEN}&name=esp`, { token: null })
      await fetch(`${emulator.url}/__emulator/calls`)
      const overHttp = await (await fetch(`${emulator.url}/__emulator/calls`)).text()

      // Assess
      expect(emulator.calls()).toEqual([
        { method: 'POST', path: DEVICES_PATH, status: 200, at: expect.any(Number) },
        { method: 'GET', path: DEVICES_PATH, status: 200, at: expect.any(Number) }
      ])
      expect(JSON.stringify(emulator.calls())).not.toContain(TOKEN)
      expect(overHttp).not.toContain(TOKEN)
    })

    it('never returns the credential hash from any view', async () => {
      // Prepare
      await createGeneric('esp32-a')

      // Act
      const admin = await (await fetch(`${emulator.url}/__emulator/devices/${USER}/esp32-a`)).json()
      const list = await (await call('GET', DEVICES_PATH)).json()

      // Assess
      const allowedKeys = ['device', 'name', 'description', 'type', 'enabled', 'created', 'modified']
      expect(Object.keys(admin as object).sort()).toEqual([...allowedKeys].sort())
      expect(Object.keys((list as object[])[0] as object).sort()).toEqual([...allowedKeys].sort())
      expect(Object.keys(emulator.device(USER, 'esp32-a') as object).sort()).toEqual([...allowedKeys].sort())
    })
  })

  describe('faults', () => {
    it('answers the status with Retry-After and does not perform the operation', async () => {
      // Prepare
      emulator.setFaults([{ method: 'POST', path: '/devices$', action: 'status', status: 429, retryAfterSeconds: 7 }])

      // Act
      const response = await createGeneric('esp32-a')

      // Assess
      expect(response.status).toBe(429)
      expect(response.headers.get('retry-after')).toBe('7')
      expect(await response.json()).toEqual({ error: { message: expect.any(String) } })
      expect(emulator.device(USER, 'esp32-a')).toBeUndefined()
      expect(emulator.calls().map((recorded) => recorded.status)).toEqual([429])
    })

    it('delays then performs the call on a latency fault', async () => {
      // Prepare
      emulator.setFaults([{ action: 'latency', latencyMs: 120 }])
      const startedMs = Date.now()

      // Act
      const response = await createGeneric('esp32-a')

      // Assess
      expect(response.status).toBe(200)
      expect(Date.now() - startedMs).toBeGreaterThanOrEqual(110)
      expect(emulator.device(USER, 'esp32-a')).toBeDefined()
    })

    it('adds the fixed latency of setLatencyMs to every API call', async () => {
      // Prepare
      emulator.setLatencyMs(80)
      const startedMs = Date.now()

      // Act
      const response = await call('GET', DEVICES_PATH)

      // Assess
      expect(response.status).toBe(200)
      expect(Date.now() - startedMs).toBeGreaterThanOrEqual(70)
    })

    it('makes fetch reject on a reset fault, and records no status', async () => {
      // Prepare
      emulator.setFaults([{ action: 'reset' }])

      // Act
      const attempt = createGeneric('esp32-a')

      // Assess
      await expect(attempt).rejects.toThrow()
      expect(emulator.device(USER, 'esp32-a')).toBeUndefined()
      expect(emulator.calls()[0]).toMatchObject({ method: 'POST', status: null })
    })

    it('applies a rule only `times` times, and never with probability 0', async () => {
      // Prepare
      emulator.setFaults([
        { path: '/never', action: 'status', status: 500, probability: 0 },
        { method: 'GET', action: 'status', status: 503, times: 2 }
      ])

      // Act
      const statuses = []
      for (let attempt = 0; attempt < 3; attempt++) statuses.push((await call('GET', DEVICES_PATH)).status)
      const neverPath = await call('GET', `/v1/users/${USER}/devices/never`)

      // Assess
      expect(statuses).toEqual([503, 503, 200])
      expect(neverPath.status).toBe(404)
    })

    it('answers 400 when a fault rule is invalid', async () => {
      // Act
      const response = await fetch(`${emulator.url}/__emulator/faults`, {
        method: 'PUT',
        body: JSON.stringify([{ action: 'status' }])
      })

      // Assess
      expect(response.status).toBe(400)
      expect(() => emulator.setFaults([{ action: 'explode' as 'reset' }])).toThrow()
    })

    it('leaves admin routes alone', async () => {
      // Prepare
      emulator.setFaults([{ action: 'status', status: 500 }])

      // Act
      const response = await fetch(`${emulator.url}/__emulator/calls`)

      // Assess
      expect(response.status).toBe(200)
    })

    it('hangs until the client gives up, and close() still returns promptly', async () => {
      // Prepare
      const hanging = await startThingerEmulator({ accounts: [{ username: USER, tokens: [{ token: TOKEN }] }] })
      hanging.setFaults([{ action: 'hang' }])

      // Act
      const attempt = fetch(`${hanging.url}${DEVICES_PATH}`, {
        headers: { authorization: `Bearer ${TOKEN}` },
        signal: AbortSignal.timeout(150)
      })
      const second = fetch(`${hanging.url}${DEVICES_PATH}`, { headers: { authorization: `Bearer ${TOKEN}` } })
      second.catch(() => undefined)

      // Assess
      await expect(attempt).rejects.toMatchObject({ name: 'TimeoutError' })
      const closingMs = Date.now()
      await hanging.close()
      expect(Date.now() - closingMs).toBeLessThan(500)
      await expect(second).rejects.toThrow()
    })
  })
})
