import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startThingerEmulator } from '../../local/thinger-emulator.js'
import type { ThingerAction, ThingerEmulator } from '../../local/thinger-emulator.js'

const USER = 'alice'
const TOKEN = 'token-alice-all'
const READ_ONLY_TOKEN = 'token-alice-read'
const OTHER_USER = 'bob'
const OTHER_TOKEN = 'token-bob'
const LIMITED_USER = 'carol'
const LIMITED_TOKEN = 'token-carol'
const CREDENTIAL = 'first-Secret-1'
const DEVICES_PATH = `/v1/users/${USER}/devices`
const V1 = `/v1/users/${USER}`
const PROPERTIES_PATH = `/v3/users/${USER}/devices/esp32-a/properties`
const INTERVAL_BUCKET = {
  bucket: 'esp32_a_data',
  name: 'ESP32 A data',
  enabled: true,
  config: { source: 'device', device: 'esp32-a', resource: 'data', update: 'interval', interval: 60 }
}
const TEMPLATE_WIDGETS = [{ type: 'chart', sources: [{ device: '{{device}}', resource: 'data' }] }]

// Every operation added for provisioning profiles, valid once `prepareWorld` has run.
const OPERATIONS: [ThingerAction, string, string, unknown?][] = [
  ['UpdateDeviceProjects', 'PUT', `${DEVICES_PATH}/esp32-a/projects`, [`${USER}@site1`]],
  ['ListDeviceProperties', 'GET', PROPERTIES_PATH],
  ['CreateDeviceProperty', 'POST', PROPERTIES_PATH, { property: 'mode', value: 'eco' }],
  ['ReadDeviceProperty', 'GET', `${PROPERTIES_PATH}/colour`],
  ['UpdateDeviceProperty', 'PUT', `${PROPERTIES_PATH}/colour`, { value: 'blue' }],
  ['DeleteDeviceProperty', 'DELETE', `${PROPERTIES_PATH}/colour`],
  ['ListBuckets', 'GET', `${V1}/buckets`],
  ['CreateBucket', 'POST', `${V1}/buckets`, { ...INTERVAL_BUCKET, bucket: 'second' }],
  ['ReadBucketConfig', 'GET', `${V1}/buckets/esp32_a_data`],
  ['UpdateBucket', 'PUT', `${V1}/buckets/esp32_a_data`, { enabled: false }],
  ['DeleteBucket', 'DELETE', `${V1}/buckets/esp32_a_data`],
  ['ListGroups', 'GET', `${V1}/groups`],
  ['CreateGroup', 'POST', `${V1}/groups`, { group: 'hall' }],
  ['ReadGroupConfig', 'GET', `${V1}/groups/kitchen`],
  ['UpdateGroup', 'PUT', `${V1}/groups/kitchen`, { name: 'Cuisine' }],
  ['DeleteGroup', 'DELETE', `${V1}/groups/kitchen`],
  ['ListTypes', 'GET', `${V1}/types`],
  ['CreateType', 'POST', `${V1}/types`, { type: 'pump' }],
  ['ReadTypeConfig', 'GET', `${V1}/types/sensor`],
  ['UpdateType', 'PUT', `${V1}/types/sensor`, { description: 'measures' }],
  ['DeleteType', 'DELETE', `${V1}/types/sensor`],
  ['ListProducts', 'GET', `${V1}/products`],
  ['CreateProduct', 'POST', `${V1}/products`, { product: 'valve', name: 'Valve' }],
  ['ReadProductConfig', 'GET', `${V1}/products/thermo`],
  ['UpdateProduct', 'PUT', `${V1}/products/thermo`, { enabled: false }],
  ['DeleteProduct', 'DELETE', `${V1}/products/thermo`],
  ['ListProjects', 'GET', `${V1}/projects`],
  ['CreateProject', 'POST', `${V1}/projects`, { project: 'site2', name: 'Site 2' }],
  ['ReadProjectConfig', 'GET', `${V1}/projects/site1`],
  ['UpdateProject', 'PUT', `${V1}/projects/site1`, { name: 'Main site' }],
  ['DeleteProject', 'DELETE', `${V1}/projects/site1`],
  ['ListDashboards', 'GET', `${V1}/dashboards`],
  ['CreateDashboard', 'POST', `${V1}/dashboards`, { dashboard: 'other', name: 'Other', widgets: [] }],
  ['ReadDashboardConfig', 'GET', `${V1}/dashboards/tpl`],
  ['UpdateDashboard', 'PUT', `${V1}/dashboards/tpl`, { widgets: [] }],
  ['DeleteDashboard', 'DELETE', `${V1}/dashboards/tpl`],
  ['CloneDashboard', 'POST', `${V1}/dashboards/tpl/clone`, { dashboard: 'esp32_a_dash', name: 'ESP32 A' }]
]

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

  // One of everything: device esp32-a with property colour and bucket esp32_a_data, type sensor,
  // group kitchen, product thermo, project site1 and the template dashboard tpl.
  const prepareWorld = async (): Promise<void> => {
    await createGeneric('esp32-a')
    emulator.seed(USER, {
      types: [{ type: 'sensor', name: 'Sensor' }],
      groups: [{ group: 'kitchen', name: 'Kitchen' }],
      products: [{ product: 'thermo', name: 'Thermostat' }],
      projects: [{ project: 'site1', name: 'Site 1' }],
      dashboards: [{ dashboard: 'tpl', name: 'Template', widgets: TEMPLATE_WIDGETS }]
    })
    const property = await call('POST', PROPERTIES_PATH, { body: { property: 'colour', value: 'red' } })
    const bucket = await call('POST', `${V1}/buckets`, { body: INTERVAL_BUCKET })
    expect([property.status, bucket.status]).toEqual([200, 200])
  }

  beforeAll(async () => {
    emulator = await startThingerEmulator({
      port: 0,
      accounts: [
        {
          username: USER,
          tokens: [
            { token: TOKEN },
            { token: READ_ONLY_TOKEN, allow: ['ListDevices', 'ReadDeviceStatus'] },
            ...OPERATIONS.map(([action]) => ({ token: `only-${action}`, allow: [action] }))
          ]
        },
        { username: OTHER_USER, tokens: [{ token: OTHER_TOKEN }] },
        { username: LIMITED_USER, tokens: [{ token: LIMITED_TOKEN }], maxDevices: 1 }
      ]
    })
  })

  beforeEach(() => {
    emulator.reset()
    emulator.setLatencyMs(0)
    emulator.setVariant('documented')
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
      // Prepare
      emulator.seed(USER, { groups: [{ group: 'sensors' }] })

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
      const response = await call('GET', `/v1/users/${USER}/alarms`)

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
      emulator.seed(USER, { types: [{ type: 't1' }], products: [{ product: 'p1', name: 'P1' }] })
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

  describe('authorization of the provisioning-profile routes', () => {
    it.each(OPERATIONS)('guards %s: 401 without a token, 403 without the action, 200 with it', async (action, method, path, body) => {
      // Prepare
      await prepareWorld()

      // Act
      const missing = await call(method, path, { token: null, body })
      const forbidden = await call(method, path, { token: READ_ONLY_TOKEN, body })
      const allowed = await call(method, path, { token: `only-${action}`, body })

      // Assess
      expect([missing.status, forbidden.status, allowed.status]).toEqual([401, 403, 200])
    })

    it('answers 403 to a token of another account, and accepts ?authorization=', async () => {
      // Prepare
      await prepareWorld()

      // Act
      const foreign = await call('GET', `${V1}/buckets`, { token: OTHER_TOKEN })
      const query = await call('GET', `${PROPERTIES_PATH}?authorization=${TOKEN}`, { token: null })

      // Assess
      expect(foreign.status).toBe(403)
      expect(query.status).toBe(200)
    })

    it('answers 404 to a method the route does not have, and to a malformed ID', async () => {
      // Act
      const method = await call('PATCH', `${PROPERTIES_PATH}/colour`, { body: { value: 1 } })
      const malformed = await call('GET', `${V1}/buckets/bad.id`)

      // Assess
      expect(method.status).toBe(404)
      expect(malformed.status).toBe(404)
      expect(await malformed.json()).toEqual({ error: { message: 'bucket not found' } })
    })

    it('throws when a token allows an unknown action', async () => {
      // Act
      const starting = startThingerEmulator({ accounts: [{ username: USER, tokens: [{ token: TOKEN, allow: ['ReadBucket' as ThingerAction] }] }] })

      // Assess
      await expect(starting).rejects.toThrow(TypeError)
    })

    it('throws for ReadDevice, which is not a Thinger action (reading a device is ReadDeviceStatus)', async () => {
      // Act
      const starting = startThingerEmulator({ accounts: [{ username: USER, tokens: [{ token: TOKEN, allow: ['ReadDevice' as ThingerAction] }] }] })

      // Assess
      await expect(starting).rejects.toThrow("unknown action 'ReadDevice'")
    })
  })

  describe('device properties', () => {
    it('creates a property with any JSON value, then lists, reads, updates and deletes it', async () => {
      // Prepare
      await createGeneric('esp32-a')
      const value = { thresholds: [1, 2.5], unit: 'C', nested: { on: true, none: null } }

      // Act
      const created = await call('POST', PROPERTIES_PATH, { body: { property: 'config', value, name: 'Config' } })
      const list = await call('GET', PROPERTIES_PATH)
      const read = await call('GET', `${PROPERTIES_PATH}/config`)
      const updated = await call('PUT', `${PROPERTIES_PATH}/config`, { body: { value: 42, type: 'configuration' } })
      const afterUpdate = await (await call('GET', `${PROPERTIES_PATH}/config`)).json()
      const deleted = await call('DELETE', `${PROPERTIES_PATH}/config`)
      const afterDelete = await call('GET', `${PROPERTIES_PATH}/config`)

      // Assess
      expect(created.status).toBe(200)
      expect(await created.json()).toEqual({})
      const view = { property: 'config', name: 'Config', description: '', value }
      expect(await list.json()).toEqual([view])
      expect(await read.json()).toEqual(view)
      expect(updated.status).toBe(200)
      expect(afterUpdate).toEqual({ ...view, value: 42, type: 'configuration' })
      expect(deleted.status).toBe(200)
      expect(afterDelete.status).toBe(404)
      expect(await afterDelete.json()).toEqual({ error: { message: 'property not found' } })
    })

    it('accepts null as a value, and an array of properties all at once', async () => {
      // Prepare
      await createGeneric('esp32-a')

      // Act
      const response = await call('POST', PROPERTIES_PATH, { body: [{ property: 'a', value: null }, { property: 'b', value: [1] }] })

      // Assess
      expect(response.status).toBe(200)
      expect(emulator.resources(USER).properties).toEqual({ 'esp32-a': { a: null, b: [1] } })
    })

    it('answers 404 when the device is missing, whatever the body', async () => {
      // Act
      const create = await call('POST', `/v3/users/${USER}/devices/ghost/properties`, { body: { property: 'a', value: 1 } })
      const invalid = await call('POST', `/v3/users/${USER}/devices/ghost/properties`, { rawBody: 'not json' })
      const list = await call('GET', `/v3/users/${USER}/devices/ghost/properties`)
      const read = await call('GET', `/v3/users/${USER}/devices/ghost/properties/a`)

      // Assess
      expect([create.status, invalid.status, list.status, read.status]).toEqual([404, 404, 404, 404])
      expect(await create.json()).toEqual({ error: { message: 'device not found' } })
    })

    it('answers 404 when updating or deleting a missing property', async () => {
      // Prepare
      await createGeneric('esp32-a')

      // Act
      const update = await call('PUT', `${PROPERTIES_PATH}/ghost`, { body: { value: 1 } })
      const remove = await call('DELETE', `${PROPERTIES_PATH}/ghost`)

      // Assess
      expect([update.status, remove.status]).toEqual([404, 404])
    })

    it('answers 400 when the property already exists, and keeps its value', async () => {
      // Prepare
      await prepareWorld()

      // Act
      const duplicate = await call('POST', PROPERTIES_PATH, { body: { property: 'colour', value: 'green' } })

      // Assess
      expect(duplicate.status).toBe(400)
      expect(await duplicate.json()).toEqual({ error: { message: 'property already exists' } })
      expect(emulator.resources(USER).properties['esp32-a']).toEqual({ colour: 'red' })
    })

    it.each([
      ['an unknown field', { property: 'a', value: 1, colour: 'red' }],
      ['no value', { property: 'a' }],
      ['no property ID', { value: 1 }],
      ['a property ID with a dot', { property: 'a.b', value: 1 }],
      ['a name of 256 characters', { property: 'a', value: 1, name: 'n'.repeat(256) }],
      ['an unknown type', { property: 'a', value: 1, type: 'secret' }],
      ['a form, which is not emulated', { property: 'a', value: 1, form: { fields: [] } }],
      ['a string', 'a'],
      ['an array with a repeated ID', [{ property: 'a', value: 1 }, { property: 'a', value: 2 }]],
      ['an array with one bad item', [{ property: 'a', value: 1 }, { property: 'b' }]]
    ])('answers 400 when the create body has %s, and creates nothing', async (_case, body) => {
      // Prepare
      await createGeneric('esp32-a')

      // Act
      const response = await call('POST', PROPERTIES_PATH, { body })

      // Assess
      expect(response.status).toBe(400)
      expect(await response.json()).toEqual({ error: { message: expect.any(String) } })
      expect(emulator.resources(USER).properties).toEqual({})
    })

    it.each([
      ['no value', { name: 'x' }],
      ['the property ID', { property: 'colour', value: 'blue' }],
      ['an unknown field', { value: 'blue', colour: 'red' }],
      ['perm, which is not emulated', { value: 'blue', perm: { hidden: ['member'] } }]
    ])('answers 400 when the update body has %s, and keeps the value', async (_case, body) => {
      // Prepare
      await prepareWorld()

      // Act
      const response = await call('PUT', `${PROPERTIES_PATH}/colour`, { body })

      // Assess
      expect(response.status).toBe(400)
      expect(emulator.resources(USER).properties['esp32-a']).toEqual({ colour: 'red' })
    })

    it('deletes the properties and project list of a deleted device, so a new device starts empty', async () => {
      // Prepare
      await prepareWorld()
      await call('PUT', `${DEVICES_PATH}/esp32-a/projects`, { body: [`${USER}@site1`] })

      // Act
      await call('DELETE', `${DEVICES_PATH}/esp32-a`)
      await createGeneric('esp32-a')
      const list = await call('GET', PROPERTIES_PATH)

      // Assess
      expect(await list.json()).toEqual([])
      expect(emulator.resources(USER)).toMatchObject({ properties: {}, deviceProjects: {} })
    })
  })

  describe('buckets', () => {
    it('creates a bucket fed by a device every interval, and GET returns its configuration', async () => {
      // Prepare
      await createGeneric('esp32-a')

      // Act
      const created = await call('POST', `${V1}/buckets`, { body: INTERVAL_BUCKET })
      const read = await call('GET', `${V1}/buckets/esp32_a_data`)
      const list = await call('GET', `${V1}/buckets`)

      // Assess
      expect(created.status).toBe(200)
      expect(await created.json()).toEqual({})
      const view = { ...INTERVAL_BUCKET, description: '' }
      expect(await read.json()).toEqual(view)
      expect(await list.json()).toEqual([view])
    })

    it('creates a bucket fed on device events, with the optional fields', async () => {
      // Prepare
      await prepareWorld()
      const body = {
        bucket: 'events',
        name: 'Events',
        description: 'every event',
        enabled: false,
        config: { source: 'device', device: 'esp32-a', resource: 'alarm', update: 'events', tags: ['site'] },
        backend: 'mongodb',
        retention: { period: 3, unit: 'months' },
        asset_type: 'sensor',
        asset_group: 'kitchen',
        product: 'thermo'
      }

      // Act
      const response = await call('POST', `${V1}/buckets`, { body })

      // Assess
      expect(response.status).toBe(200)
      expect(emulator.resources(USER).buckets).toContainEqual(body)
    })

    it('answers 400 when the bucket already exists, and keeps the original', async () => {
      // Prepare
      await prepareWorld()

      // Act
      const duplicate = await call('POST', `${V1}/buckets`, { body: { ...INTERVAL_BUCKET, name: 'Other' } })

      // Assess
      expect(duplicate.status).toBe(400)
      expect(await duplicate.json()).toEqual({ error: { message: 'bucket already exists' } })
      expect(emulator.resources(USER).buckets).toEqual([{ ...INTERVAL_BUCKET, description: '' }])
    })

    const deviceConfig = INTERVAL_BUCKET.config
    it.each([
      ['an unknown field', { ...INTERVAL_BUCKET, colour: 'red' }],
      ['no enabled', { ...INTERVAL_BUCKET, enabled: undefined }],
      ['no name', { ...INTERVAL_BUCKET, name: undefined }],
      ['no config', { ...INTERVAL_BUCKET, config: undefined }],
      ['a bucket ID of 33 characters', { ...INTERVAL_BUCKET, bucket: 'b'.repeat(33) }],
      ['a description of 256 characters', { ...INTERVAL_BUCKET, description: 'd'.repeat(256) }],
      ['an unknown config field', { ...INTERVAL_BUCKET, config: { ...deviceConfig, colour: 'red' } }],
      ['an unknown source', { ...INTERVAL_BUCKET, config: { ...deviceConfig, source: 'lora' } }],
      ['update interval without an interval', { ...INTERVAL_BUCKET, config: { ...deviceConfig, interval: undefined } }],
      ['an interval as a string', { ...INTERVAL_BUCKET, config: { ...deviceConfig, interval: '60' } }],
      ['update events with an interval', { ...INTERVAL_BUCKET, config: { ...deviceConfig, update: 'events' } }],
      ['an unknown update', { ...INTERVAL_BUCKET, config: { ...deviceConfig, update: 'daily' } }],
      ['no resource', { ...INTERVAL_BUCKET, config: { ...deviceConfig, resource: undefined } }],
      ['a device that does not exist', { ...INTERVAL_BUCKET, config: { ...deviceConfig, device: 'ghost' } }],
      ['a device of another user', { ...INTERVAL_BUCKET, config: { ...deviceConfig, user: OTHER_USER } }],
      ['6 tags', { ...INTERVAL_BUCKET, config: { ...deviceConfig, tags: ['a', 'b', 'c', 'd', 'e', 'f'] } }],
      ['an asset type that does not exist', { ...INTERVAL_BUCKET, asset_type: 'ghost' }],
      ['an unknown backend', { ...INTERVAL_BUCKET, backend: 'sqlite' }],
      ['a fractional retention period', { ...INTERVAL_BUCKET, retention: { period: 1.5, unit: 'days' } }]
    ])('answers 400 when the create body has %s, and creates nothing', async (_case, body) => {
      // Prepare
      await createGeneric('esp32-a')

      // Act
      const response = await call('POST', `${V1}/buckets`, { body })

      // Assess
      expect(response.status).toBe(400)
      expect(await response.json()).toEqual({ error: { message: expect.any(String) } })
      expect(emulator.resources(USER).buckets).toEqual([])
    })

    it('updates name and config, sets and clears an asset reference', async () => {
      // Prepare
      await prepareWorld()
      await call('PUT', `${V1}/buckets/esp32_a_data`, { body: { asset_group: 'kitchen' } })

      // Act
      const response = await call('PUT', `${V1}/buckets/esp32_a_data`, {
        body: { name: 'Renamed', asset_group: '', config: { source: 'write' } }
      })

      // Assess
      expect(response.status).toBe(200)
      expect(emulator.resources(USER).buckets).toEqual([{ ...INTERVAL_BUCKET, description: '', name: 'Renamed', config: { source: 'write' } }])
    })

    it.each([
      ['the bucket ID', { bucket: 'other' }],
      ['an unknown field', { colour: 'red' }],
      ['a group that does not exist', { asset_group: 'ghost' }],
      ['enabled as a string', { enabled: 'false' }]
    ])('answers 400 when the update body has %s, and changes nothing', async (_case, body) => {
      // Prepare
      await prepareWorld()

      // Act
      const response = await call('PUT', `${V1}/buckets/esp32_a_data`, { body })

      // Assess
      expect(response.status).toBe(400)
      expect(emulator.resources(USER).buckets).toEqual([{ ...INTERVAL_BUCKET, description: '' }])
    })

    it('answers 404 for a missing bucket and deletes an existing one', async () => {
      // Prepare
      await prepareWorld()

      // Act
      const read = await call('GET', `${V1}/buckets/ghost`)
      const update = await call('PUT', `${V1}/buckets/ghost`, { body: { enabled: false } })
      const removeMissing = await call('DELETE', `${V1}/buckets/ghost`)
      const remove = await call('DELETE', `${V1}/buckets/esp32_a_data`)

      // Assess
      expect([read.status, update.status, removeMissing.status, remove.status]).toEqual([404, 404, 404, 200])
      expect(emulator.resources(USER).buckets).toEqual([])
    })
  })

  describe('asset types, asset groups, products and projects', () => {
    it.each([
      ['types', { type: 'pump', name: 'Pump', description: 'moves water' }, { name: 'Big pump' }],
      ['groups', { group: 'hall', name: 'Hall', description: 'ground floor', parent: 'kitchen' }, { description: '' }],
      ['products', { product: 'valve', name: 'Valve', description: 'v2', enabled: false }, { enabled: true }],
      ['projects', { project: 'site2', name: 'Site 2', description: 'north', config: { limit_bucket_access: true } }, { name: 'North' }]
    ])('creates, reads, lists, updates and deletes %s', async (kind, body, update) => {
      // Prepare
      await prepareWorld()
      const id = Object.values(body)[0] as string
      const path = `${V1}/${kind}`

      // Act
      const created = await call('POST', path, { body })
      const read = await (await call('GET', `${path}/${id}`)).json()
      const list = await (await call('GET', path)).json() as unknown[]
      const updated = await call('PUT', `${path}/${id}`, { body: update })
      const afterUpdate = await (await call('GET', `${path}/${id}`)).json()
      const deleted = await call('DELETE', `${path}/${id}`)
      const afterDelete = await call('GET', `${path}/${id}`)

      // Assess
      expect(created.status).toBe(200)
      expect(read).toEqual(body)
      expect(list).toHaveLength(2)
      expect(list[1]).toEqual(body)
      expect(updated.status).toBe(200)
      expect(afterUpdate).toEqual({ ...body, ...update })
      expect(deleted.status).toBe(200)
      expect(afterDelete.status).toBe(404)
    })

    it.each([
      ['types', { type: 'pump' }, { type: 'pump', name: '', description: '' }],
      ['groups', { group: 'hall' }, { group: 'hall', name: '', description: '' }],
      ['products', { product: 'valve', name: 'Valve' }, { product: 'valve', name: 'Valve', description: '', enabled: true }],
      ['projects', { project: 'site2', name: 'Site 2' }, { project: 'site2', name: 'Site 2', description: '' }]
    ])('fills the defaults of %s created with the minimal body', async (kind, body, expected) => {
      // Act
      const response = await call('POST', `${V1}/${kind}`, { body })
      const read = await call('GET', `${V1}/${kind}/${Object.values(body)[0] as string}`)

      // Assess
      expect(response.status).toBe(200)
      expect(await read.json()).toEqual(expected)
    })

    it.each([
      ['types', 'sensor', { type: 'sensor', name: 'Other' }],
      ['groups', 'kitchen', { group: 'kitchen' }],
      ['products', 'thermo', { product: 'thermo', name: 'Other' }],
      ['projects', 'site1', { project: 'site1', name: 'Other' }]
    ])('answers 400 when one of the %s already exists, and 404 when one is missing', async (kind, id, body) => {
      // Prepare
      await prepareWorld()
      const before = emulator.resources(USER)

      // Act
      const duplicate = await call('POST', `${V1}/${kind}`, { body })
      const missing = await call('GET', `${V1}/${kind}/ghost`)
      const updateMissing = await call('PUT', `${V1}/${kind}/ghost`, { body: { name: 'x' } })
      const deleteMissing = await call('DELETE', `${V1}/${kind}/ghost`)

      // Assess
      expect(duplicate.status).toBe(400)
      expect(await duplicate.json()).toEqual({ error: { message: `${kind.slice(0, -1)} already exists` } })
      expect([missing.status, updateMissing.status, deleteMissing.status]).toEqual([404, 404, 404])
      expect(emulator.resources(USER)).toEqual(before)
      expect(id).not.toBe('ghost')
    })

    it.each([
      ['types', 'an unknown field', { type: 'pump', colour: 'red' }],
      ['types', 'no ID', { name: 'Pump' }],
      ['types', 'an ID with a space', { type: 'a pump' }],
      ['types', 'a name that is a number', { type: 'pump', name: 7 }],
      ['groups', 'an unknown field', { group: 'hall', colour: 'red' }],
      ['groups', 'a parent that does not exist', { group: 'hall', parent: 'ghost' }],
      ['products', 'no name', { product: 'valve' }],
      ['products', 'an unknown field', { product: 'valve', name: 'Valve', colour: 'red' }],
      ['products', 'a profile, which is not emulated', { product: 'valve', name: 'Valve', profile: {} }],
      ['products', 'enabled as a string', { product: 'valve', name: 'Valve', enabled: 'yes' }],
      ['projects', 'enabled, which the OpenAPI does not list', { project: 'site2', name: 'Site 2', enabled: true }],
      ['projects', 'no name', { project: 'site2' }],
      ['projects', 'an unknown config field', { project: 'site2', name: 'Site 2', config: { colour: 'red' } }],
      ['projects', 'a JSON array', [{ project: 'site2', name: 'Site 2' }]]
    ])('answers 400 when the %s create body has %s, and creates nothing', async (kind, _case, body) => {
      // Prepare
      await prepareWorld()
      const before = emulator.resources(USER)

      // Act
      const response = await call('POST', `${V1}/${kind}`, { body })

      // Assess
      expect(response.status).toBe(400)
      expect(await response.json()).toEqual({ error: { message: expect.any(String) } })
      expect(emulator.resources(USER)).toEqual(before)
    })

    it.each([
      ['types', 'sensor', { type: 'other' }],
      ['groups', 'kitchen', { parent: 'kitchen' }],
      ['products', 'thermo', { profile: {} }],
      ['projects', 'site1', { colour: 'red' }]
    ])('answers 400 when the %s update body has a field it cannot change', async (kind, id, body) => {
      // Prepare
      await prepareWorld()
      const before = emulator.resources(USER)

      // Act
      const response = await call('PUT', `${V1}/${kind}/${id}`, { body })

      // Assess
      expect(response.status).toBe(400)
      expect(emulator.resources(USER)).toEqual(before)
    })
  })

  describe('asset references of devices', () => {
    it('answers 400 to a device naming a missing asset type, then 200 once the type exists (no auto-created assets)', async () => {
      // Prepare
      emulator.setVariant({ autoCreateAssets: false })
      const body = { device: 'esp32-a', credentials: CREDENTIAL, asset_type: 'sensor' }

      // Act
      const refused = await call('POST', DEVICES_PATH, { body })
      const createdType = await call('POST', `${V1}/types`, { body: { type: 'sensor', name: 'Sensor' } })
      const accepted = await call('POST', DEVICES_PATH, { body })

      // Assess
      expect(refused.status).toBe(400)
      expect(await refused.json()).toEqual({ error: { message: "asset_type 'sensor' does not exist" } })
      expect(createdType.status).toBe(200)
      expect(accepted.status).toBe(200)
      expect(emulator.device(USER, 'esp32-a')).toMatchObject({ asset_type: 'sensor' })
    })

    it.each([
      ['asset_group', 'hall'],
      ['product', 'valve']
    ])('answers 400 to a device update naming a missing %s, and clears it with "" (no auto-created assets)', async (field, id) => {
      // Prepare
      emulator.setVariant({ autoCreateAssets: false })
      await prepareWorld()
      await call('PUT', `${DEVICES_PATH}/esp32-a`, { body: { asset_group: 'kitchen', product: 'thermo' } })

      // Act
      const refused = await call('PUT', `${DEVICES_PATH}/esp32-a`, { body: { [field]: id } })
      const cleared = await call('PUT', `${DEVICES_PATH}/esp32-a`, { body: { [field]: '' } })

      // Assess
      expect(refused.status).toBe(400)
      expect(cleared.status).toBe(200)
      expect(emulator.device(USER, 'esp32-a')).not.toHaveProperty(field)
    })
  })

  describe('variants, where Thinger\'s documents are silent', () => {
    const login = (device: string, credential = CREDENTIAL) => emulator.checkLogin(USER, device, credential)

    it('answers a duplicate create with 400 as documented, or 409 under that variant', async () => {
      // Prepare
      await createGeneric('esp32-a')

      // Act
      const documented = await createGeneric('esp32-a')
      emulator.setVariant({ duplicateCreateStatus: 409 })
      const conflict = await createGeneric('esp32-a')

      // Assess
      expect([documented.status, conflict.status]).toEqual([400, 409])
      expect(await conflict.json()).toEqual({ error: { message: 'device already exists' } })
    })

    it.each([
      ['epoch-ms', 'number'],
      ['iso', 'string'],
      ['absent', 'undefined']
    ] as const)('carries created as %s when reading one device', async (created, type) => {
      // Prepare
      emulator.setVariant({ created })
      await createGeneric('esp32-a')

      // Act
      const device = await (await call('GET', `${DEVICES_PATH}/esp32-a`)).json() as Record<string, unknown>

      // Assess
      expect(typeof device.created).toBe(type)
      if (created === 'iso') expect(new Date(device.created as string).getTime()).toBe(emulator.device(USER, 'esp32-a')!.created)
      expect(device).toMatchObject({ device: 'esp32-a', type: 'Generic', enabled: true })
    })

    it('answers a property read of a missing device with 404 as documented, or 500 under that variant', async () => {
      // Act
      const documented = await call('GET', `${PROPERTIES_PATH}/colour`)
      emulator.setVariant({ missingDevicePropertyStatus: 500 })
      const failed = await call('GET', `${PROPERTIES_PATH}/colour`)
      const write = await call('PUT', `${PROPERTIES_PATH}/colour`, { body: { value: 1 } })

      // Assess
      expect([documented.status, failed.status, write.status]).toEqual([404, 500, 500])
    })

    it('refuses to delete a connected device with 400 until it is disabled, as documented', async () => {
      // Prepare
      await createGeneric('esp32-a')
      expect(login('esp32-a')).toEqual({ ok: true })

      // Act
      const refused = await call('DELETE', `${DEVICES_PATH}/esp32-a`)
      const disabled = await call('PUT', `${DEVICES_PATH}/esp32-a`, { body: { enabled: false } })
      const deleted = await call('DELETE', `${DEVICES_PATH}/esp32-a`)

      // Assess
      expect([refused.status, disabled.status, deleted.status]).toEqual([400, 200, 200])
      expect(emulator.device(USER, 'esp32-a')).toBeUndefined()
    })

    it('deletes a connected device under the variant that allows it', async () => {
      // Prepare
      emulator.setVariant({ deleteConnected: 'allowed' })
      await createGeneric('esp32-a')
      login('esp32-a')

      // Act
      const deleted = await call('DELETE', `${DEVICES_PATH}/esp32-a`)

      // Assess
      expect(deleted.status).toBe(200)
    })

    it('creates the asset type and group a device names, never a product, as documented', async () => {
      // Act
      const product = await call('POST', DEVICES_PATH, { body: { device: 'esp32-b', credentials: CREDENTIAL, asset_type: 'sensor', product: 'valve' } })
      const assets = await call('POST', DEVICES_PATH, { body: { device: 'esp32-a', credentials: CREDENTIAL, asset_type: 'sensor', asset_group: 'hall' } })

      // Assess
      expect(product.status).toBe(400)
      expect(assets.status).toBe(200)
      const state = emulator.resources(USER)
      expect(state.types).toEqual([{ type: 'sensor', name: 'sensor', description: '' }])
      expect(state.groups.map((group) => group.group)).toEqual(['hall'])
      expect(state.products).toEqual([])
      expect(state.devices.map((device) => device.device)).toEqual(['esp32-a'])
    })

    it('switches variants by name or by switches through the admin route, keeps them across reset, and refuses unknown ones', async () => {
      // Act
      const named = await call('PUT', '/__emulator/variant', { body: 'conflict-no-created', token: null })
      emulator.reset()
      const current = await (await call('GET', '/__emulator/variant', { token: null })).json()
      const unknownName = await call('PUT', '/__emulator/variant', { body: 'nope', token: null })
      const unknownSwitch = await call('PUT', '/__emulator/variant', { body: { created: 'seconds' }, token: null })

      // Assess
      expect(named.status).toBe(200)
      expect(current).toEqual({ duplicateCreateStatus: 409, created: 'absent', missingDevicePropertyStatus: 500, deleteConnected: 'refused', autoCreateAssets: false })
      expect(unknownName.status).toBe(400)
      expect(await unknownSwitch.json()).toEqual({ error: { message: '\'created\' must be one of "epoch-ms", "iso", "absent"' } })
      expect(emulator.variant().created).toBe('absent')
    })

    it('throws when started with an unknown variant', async () => {
      // Act
      const starting = startThingerEmulator({ accounts: [{ username: USER, tokens: [{ token: 'x' }] }], variant: 'nope' })

      // Assess
      await expect(starting).rejects.toThrow("unknown variant 'nope'")
    })
  })

  describe('device projects', () => {
    it('replaces the project list of a device, idempotently and without repeats', async () => {
      // Prepare
      await prepareWorld()
      emulator.seed(USER, { projects: [{ project: 'site2', name: 'Site 2' }] })
      const path = `${DEVICES_PATH}/esp32-a/projects`

      // Act
      const first = await call('PUT', path, { body: [`${USER}@site1`, `${USER}@site2`] })
      const second = await call('PUT', path, { body: [`${USER}@site2`, `${USER}@site2`] })
      const again = await call('PUT', path, { body: [`${USER}@site2`] })

      // Assess
      expect([first.status, second.status, again.status]).toEqual([200, 200, 200])
      expect(await first.json()).toEqual({})
      expect(emulator.resources(USER).deviceProjects).toEqual({ 'esp32-a': [`${USER}@site2`] })
    })

    it('clears the list with []', async () => {
      // Prepare
      await prepareWorld()
      await call('PUT', `${DEVICES_PATH}/esp32-a/projects`, { body: [`${USER}@site1`] })

      // Act
      const response = await call('PUT', `${DEVICES_PATH}/esp32-a/projects`, { body: [] })

      // Assess
      expect(response.status).toBe(200)
      expect(emulator.resources(USER).deviceProjects).toEqual({})
    })

    it.each([
      ['an unknown project', [`${USER}@ghost`]],
      ['a project of another account', [`${OTHER_USER}@site1`]],
      ['a known and an unknown project', [`${USER}@site1`, `${USER}@ghost`]],
      ['a bare project ID', ['site1']],
      ['a hyphen, which the item pattern refuses', [`${USER}@site-1`]],
      ['a number', [7]],
      ['an object instead of an array', { projects: [`${USER}@site1`] }]
    ])('answers 400 to %s, and keeps the previous list', async (_case, body) => {
      // Prepare
      await prepareWorld()
      await call('PUT', `${DEVICES_PATH}/esp32-a/projects`, { body: [`${USER}@site1`] })

      // Act
      const response = await call('PUT', `${DEVICES_PATH}/esp32-a/projects`, { body })

      // Assess
      expect(response.status).toBe(400)
      expect(await response.json()).toEqual({ error: { message: expect.any(String) } })
      expect(emulator.resources(USER).deviceProjects).toEqual({ 'esp32-a': [`${USER}@site1`] })
    })

    it('answers 404 when the device is missing', async () => {
      // Prepare
      await prepareWorld()

      // Act
      const response = await call('PUT', `${DEVICES_PATH}/ghost/projects`, { body: [`${USER}@site1`] })

      // Assess
      expect(response.status).toBe(404)
      expect(emulator.resources(USER).deviceProjects).toEqual({})
    })

    it('drops a deleted project from the devices it held', async () => {
      // Prepare
      await prepareWorld()
      await call('PUT', `${DEVICES_PATH}/esp32-a/projects`, { body: [`${USER}@site1`] })

      // Act
      const response = await call('DELETE', `${V1}/projects/site1`)

      // Assess
      expect(response.status).toBe(200)
      expect(emulator.resources(USER)).toMatchObject({ projects: [], deviceProjects: {} })
    })
  })

  describe('dashboards', () => {
    it('creates a dashboard and keeps its widgets and other JSON as given', async () => {
      // Prepare
      const body = { dashboard: 'main', name: 'Main', widgets: TEMPLATE_WIDGETS, tabs: [{ name: 'one' }], properties: { theme: 'dark' } }

      // Act
      const created = await call('POST', `${V1}/dashboards`, { body })
      const read = await call('GET', `${V1}/dashboards/main`)

      // Assess
      expect(created.status).toBe(200)
      expect(await read.json()).toEqual({ ...body, description: '' })
    })

    it.each([
      ['no widgets', { dashboard: 'main', name: 'Main' }],
      ['an empty name', { dashboard: 'main', name: '', widgets: [] }],
      ['widgets as an object', { dashboard: 'main', name: 'Main', widgets: {} }],
      ['an unknown field', { dashboard: 'main', name: 'Main', widgets: [], enabled: true }],
      ['the ID of an existing dashboard', { dashboard: 'tpl', name: 'Main', widgets: [] }]
    ])('answers 400 when the create body has %s', async (_case, body) => {
      // Prepare
      await prepareWorld()

      // Act
      const response = await call('POST', `${V1}/dashboards`, { body })

      // Assess
      expect(response.status).toBe(400)
      expect(emulator.resources(USER).dashboards.map((dashboard) => dashboard.dashboard)).toEqual(['tpl'])
    })

    it('updates a dashboard, and refuses to change its ID', async () => {
      // Prepare
      await prepareWorld()

      // Act
      const updated = await call('PUT', `${V1}/dashboards/tpl`, { body: { name: 'Renamed', widgets: [] } })
      const refused = await call('PUT', `${V1}/dashboards/tpl`, { body: { dashboard: 'other' } })

      // Assess
      expect([updated.status, refused.status]).toEqual([200, 400])
      expect(emulator.resources(USER).dashboards).toEqual([{ dashboard: 'tpl', name: 'Renamed', description: '', widgets: [] }])
    })

    it('clones a template: a deep copy with the new ID and name, the source unchanged', async () => {
      // Prepare
      await prepareWorld()

      // Act
      const cloned = await call('POST', `${V1}/dashboards/tpl/clone`, { body: { dashboard: 'esp32_a_dash', name: 'ESP32 A' } })
      await call('PUT', `${V1}/dashboards/tpl`, { body: { widgets: [] } })

      // Assess
      expect(cloned.status).toBe(200)
      expect(await cloned.json()).toEqual({})
      expect(emulator.resources(USER).dashboards).toEqual([
        { dashboard: 'tpl', name: 'Template', description: '', widgets: [] },
        { dashboard: 'esp32_a_dash', name: 'ESP32 A', description: '', widgets: TEMPLATE_WIDGETS }
      ])
    })

    it('keeps the source name when the clone body has none', async () => {
      // Prepare
      await prepareWorld()

      // Act
      const cloned = await call('POST', `${V1}/dashboards/tpl/clone`, { body: { dashboard: 'copy', enabled: true } })

      // Assess
      expect(cloned.status).toBe(200)
      expect(await (await call('GET', `${V1}/dashboards/copy`)).json()).toMatchObject({ name: 'Template', enabled: true })
    })

    it('answers 404 when the source is missing, whatever the body', async () => {
      // Act
      const response = await call('POST', `${V1}/dashboards/ghost/clone`, { body: { dashboard: 'copy' } })
      const invalid = await call('POST', `${V1}/dashboards/ghost/clone`, { rawBody: '[' })

      // Assess
      expect([response.status, invalid.status]).toEqual([404, 404])
      expect(await response.json()).toEqual({ error: { message: 'dashboard not found' } })
    })

    it.each([
      ['the ID of an existing dashboard', { dashboard: 'tpl' }],
      ['no target ID', { name: 'Copy' }],
      ['widgets, which a clone does not take', { dashboard: 'copy', widgets: [] }],
      ['a target ID with a slash', { dashboard: 'a/b' }]
    ])('answers 400 when the clone body has %s', async (_case, body) => {
      // Prepare
      await prepareWorld()

      // Act
      const response = await call('POST', `${V1}/dashboards/tpl/clone`, { body })

      // Assess
      expect(response.status).toBe(400)
      expect(emulator.resources(USER).dashboards).toHaveLength(1)
    })
  })

  describe('resources and seed', () => {
    it('returns a plain snapshot of everything the account holds', async () => {
      // Prepare
      await prepareWorld()
      await call('PUT', `${DEVICES_PATH}/esp32-a`, { body: { asset_type: 'sensor', asset_group: 'kitchen', product: 'thermo' } })
      await call('PUT', `${DEVICES_PATH}/esp32-a/projects`, { body: [`${USER}@site1`] })
      await call('POST', `${V1}/dashboards/tpl/clone`, { body: { dashboard: 'esp32_a_dash', name: 'ESP32 A' } })

      // Act
      const snapshot = emulator.resources(USER)

      // Assess
      expect(snapshot).toEqual({
        devices: [{
          device: 'esp32-a',
          name: '',
          description: '',
          type: 'Generic',
          enabled: true,
          asset_type: 'sensor',
          asset_group: 'kitchen',
          product: 'thermo',
          created: expect.any(Number),
          modified: expect.any(Number)
        }],
        properties: { 'esp32-a': { colour: 'red' } },
        buckets: [{ ...INTERVAL_BUCKET, description: '' }],
        groups: [{ group: 'kitchen', name: 'Kitchen', description: '' }],
        types: [{ type: 'sensor', name: 'Sensor', description: '' }],
        products: [{ product: 'thermo', name: 'Thermostat', description: '', enabled: true }],
        projects: [{ project: 'site1', name: 'Site 1', description: '' }],
        deviceProjects: { 'esp32-a': [`${USER}@site1`] },
        dashboards: [
          { dashboard: 'tpl', name: 'Template', description: '', widgets: TEMPLATE_WIDGETS },
          { dashboard: 'esp32_a_dash', name: 'ESP32 A', description: '', widgets: TEMPLATE_WIDGETS }
        ]
      })
      expect(JSON.parse(JSON.stringify(snapshot))).toEqual(snapshot)
      expect(JSON.stringify(snapshot)).not.toMatch(/credential|salt|hash|secret/)
    })

    it('returns copies: changing a snapshot changes nothing in the emulator', async () => {
      // Prepare
      await prepareWorld()
      await call('POST', PROPERTIES_PATH, { body: { property: 'limits', value: { max: 30 } } })
      const snapshot = emulator.resources(USER)

      // Act
      ;(snapshot.dashboards[0]?.widgets as { type: string }[])[0]!.type = 'changed'
      snapshot.buckets[0]!.config.source = 'api'
      ;(snapshot.properties['esp32-a']?.limits as { max: number }).max = 99
      snapshot.devices[0]!.enabled = false

      // Assess
      const fresh = emulator.resources(USER)
      expect(fresh.dashboards[0]?.widgets).toEqual(TEMPLATE_WIDGETS)
      expect(fresh.buckets[0]?.config.source).toBe('device')
      expect(fresh.properties['esp32-a']).toEqual({ colour: 'red', limits: { max: 30 } })
      expect(fresh.devices[0]?.enabled).toBe(true)
    })

    it('returns an empty snapshot for an unknown account', () => {
      // Act
      const snapshot = emulator.resources('nobody')

      // Assess
      expect(snapshot).toEqual({
        devices: [], properties: {}, buckets: [], groups: [], types: [], products: [], projects: [], deviceProjects: {}, dashboards: []
      })
    })

    it('seeds nothing when one entry is invalid, and throws on an unknown account', async () => {
      // Act
      const invalid = (): void => emulator.seed(USER, { types: [{ type: 'ok' }], groups: [{ group: 'g', parent: 'ghost' }] })
      const unknown = (): void => emulator.seed('nobody', { types: [{ type: 'ok' }] })

      // Assess
      expect(invalid).toThrow(/groups\[0\]/)
      expect(unknown).toThrow('user not found')
      expect(emulator.resources(USER).types).toEqual([])
    })

    it('seeds a group whose parent comes earlier in the same seed', () => {
      // Act
      emulator.seed(USER, { groups: [{ group: 'building' }, { group: 'floor1', parent: 'building' }] })

      // Assess
      expect(emulator.resources(USER).groups.map((group) => group.parent)).toEqual([undefined, 'building'])
    })

    it('serves the snapshot and the seed over the admin routes, which are not recorded', async () => {
      // Act
      const seeded = await fetch(`${emulator.url}/__emulator/seed/${USER}`, {
        method: 'POST',
        body: JSON.stringify({ dashboards: [{ dashboard: 'tpl', name: 'Template', widgets: TEMPLATE_WIDGETS }] })
      })
      const snapshot = await fetch(`${emulator.url}/__emulator/resources/${USER}`)
      const invalid = await fetch(`${emulator.url}/__emulator/seed/${USER}`, { method: 'POST', body: JSON.stringify({ buckets: [] }) })
      const unknown = await fetch(`${emulator.url}/__emulator/seed/nobody`, { method: 'POST', body: '{}' })

      // Assess
      expect(seeded.status).toBe(200)
      expect(snapshot.status).toBe(200)
      expect(await snapshot.json()).toMatchObject({ dashboards: [{ dashboard: 'tpl', widgets: TEMPLATE_WIDGETS }] })
      expect(invalid.status).toBe(400)
      expect(await invalid.json()).toEqual({ error: { message: "unknown field 'buckets'" } })
      expect(unknown.status).toBe(404)
      expect(emulator.calls()).toEqual([])
    })

    it('forgets every resource on reset', async () => {
      // Prepare
      await prepareWorld()

      // Act
      emulator.reset()

      // Assess
      expect(emulator.resources(USER)).toEqual(emulator.resources('nobody'))
    })
  })

  describe('faults on the provisioning-profile routes', () => {
    it('fails the 1st POST to /buckets once with 503, then lets the retry succeed', async () => {
      // Prepare
      await createGeneric('esp32-a')
      emulator.clearCalls()
      emulator.setFaults([{ method: 'POST', path: '/buckets$', action: 'status', status: 503, times: 1 }])

      // Act
      const list = await call('GET', `${V1}/buckets`)
      const first = await call('POST', `${V1}/buckets`, { body: INTERVAL_BUCKET })
      const retry = await call('POST', `${V1}/buckets`, { body: INTERVAL_BUCKET })

      // Assess
      expect([list.status, first.status, retry.status]).toEqual([200, 503, 200])
      expect(emulator.resources(USER).buckets).toHaveLength(1)
      expect(emulator.calls().map(({ method, path, status }) => [method, path, status])).toEqual([
        ['GET', `${V1}/buckets`, 200],
        ['POST', `${V1}/buckets`, 503],
        ['POST', `${V1}/buckets`, 200]
      ])
    })

    it('applies faults to /v3 properties and dashboard clones without performing them', async () => {
      // Prepare
      await prepareWorld()
      emulator.setFaults([
        { path: '/properties$', action: 'status', status: 429, retryAfterSeconds: 2 },
        { path: '/clone$', action: 'reset' }
      ])

      // Act
      const property = await call('POST', PROPERTIES_PATH, { body: { property: 'mode', value: 'eco' } })
      const clone = call('POST', `${V1}/dashboards/tpl/clone`, { body: { dashboard: 'copy' } })

      // Assess
      expect(property.status).toBe(429)
      expect(property.headers.get('retry-after')).toBe('2')
      await expect(clone).rejects.toThrow()
      expect(emulator.resources(USER).properties['esp32-a']).toEqual({ colour: 'red' })
      expect(emulator.resources(USER).dashboards).toHaveLength(1)
    })
  })
})
