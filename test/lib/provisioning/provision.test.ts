import { beforeEach, describe, expect, it } from 'vitest'
import { DeviceStateError, UpstreamError, UpstreamUnavailableError } from '../../../lib/errors.js'
import { type ProvisionDeps, provisionDevice } from '../../../lib/provisioning/provision.js'
import type { CreateDeviceBody, ThingerDevice, UpdateDeviceBody } from '../../../lib/thinger/client.js'
import { ThingerHttpError, ThingerNetworkError, ThingerTimeoutError } from '../../../lib/thinger/errors.js'
import { captureRejection } from '../capture-error.js'

const USERNAME = 'alice'
const HOST = 'backend.thinger.io'
const DEVICE = 'esp32_a1b2c3d4e5f6'
const NEW_CREDENTIAL = 'NewCredential0123456789ab'
const OLD_CREDENTIAL = 'OldCredential0123456789ab'

type ThingerPort = ProvisionDeps['thinger']
type Operation = 'getDevice' | 'createDevice' | 'updateDevice'
interface StoredDevice extends ThingerDevice {
  credentials?: string
}
/** Wraps one call: `run` performs what Thinger would do; the step may act before or after it, or throw instead. */
type Step = (run: () => Promise<unknown>) => Promise<unknown>

/**
 * An in-memory Thinger.io account with its REST semantics: create refuses a duplicate (or a device past
 * the account limit) with 400, read answers undefined for 404, update answers false for 404.
 */
class FakeThinger implements ThingerPort {
  readonly devices = new Map<string, StoredDevice>()
  readonly calls: string[] = []
  maxDevices = Number.POSITIVE_INFINITY
  readonly #steps: Record<Operation, Step[]> = { getDevice: [], createDevice: [], updateDevice: [] }
  readonly #always: Partial<Record<Operation, Step>> = {}

  /** Scripts the next call of `operation` (queued, one call each). */
  script(operation: Operation, step: Step): this {
    this.#steps[operation].push(step)
    return this
  }

  /** Scripts every call of `operation` not otherwise scripted. */
  scriptAlways(operation: Operation, step: Step): this {
    this.#always[operation] = step
    return this
  }

  async getDevice(device: string): Promise<ThingerDevice | undefined> {
    return (await this.#invoke('getDevice', async () => {
      const stored = this.devices.get(device)
      if (stored === undefined) return undefined
      const { credentials: _hidden, ...visible } = stored
      return { ...visible }
    })) as ThingerDevice | undefined
  }

  async createDevice(body: CreateDeviceBody): Promise<void> {
    await this.#invoke('createDevice', async () => {
      if (this.devices.has(body.device)) throw httpError('POST', 'CreateDevice', 400, 'device already exists')
      if (this.devices.size >= this.maxDevices) throw httpError('POST', 'CreateDevice', 400, 'device limit reached')
      this.devices.set(body.device, { enabled: true, ...body })
    })
  }

  async updateDevice(device: string, body: UpdateDeviceBody): Promise<boolean> {
    return (await this.#invoke('updateDevice', async () => {
      const stored = this.devices.get(device)
      if (stored === undefined) return false
      this.devices.set(device, { ...stored, ...body })
      return true
    })) as boolean
  }

  // An empty profile must cost nothing beyond the device calls: any profile call fails the test.
  getResource = unexpected
  createResource = unexpected
  cloneDashboard = unexpected
  setDeviceProjects = unexpected
  /** Device properties; only replay protection reads and writes one (`provisioning`) for an empty profile. */
  readonly properties = new Map<string, unknown>()

  async getDeviceProperty(device: string, property: string): Promise<{ value: unknown } | undefined> {
    this.calls.push('getDeviceProperty' as Operation)
    const key = `${device}/${property}`
    return this.properties.has(key) ? { value: this.properties.get(key) } : undefined
  }

  async createDeviceProperty(device: string, property: string, value: unknown): Promise<void> {
    this.calls.push('createDeviceProperty' as Operation)
    if (this.properties.has(`${device}/${property}`)) throw httpError('POST', 'CreateDeviceProperty', 400, 'exists')
    this.properties.set(`${device}/${property}`, value)
  }

  async updateDeviceProperty(device: string, property: string, value: unknown): Promise<boolean> {
    this.calls.push('updateDeviceProperty' as Operation)
    if (!this.properties.has(`${device}/${property}`)) return false
    this.properties.set(`${device}/${property}`, value)
    return true
  }

  async #invoke(operation: Operation, run: () => Promise<unknown>): Promise<unknown> {
    this.calls.push(operation)
    const step = this.#steps[operation].shift() ?? this.#always[operation]
    return step === undefined ? run() : step(run)
  }
}

async function unexpected(): Promise<never> {
  throw new Error('a profile call was made for an empty profile')
}

const profileCallsUnexpected = {
  getResource: unexpected,
  createResource: unexpected,
  cloneDashboard: unexpected,
  getDeviceProperty: unexpected,
  createDeviceProperty: unexpected,
  updateDeviceProperty: unexpected,
  setDeviceProjects: unexpected,
}

function httpError(method: string, operation: string, status: number, message?: string, retryAfterSeconds?: number): ThingerHttpError {
  return new ThingerHttpError(method, operation, status, retryAfterSeconds, message)
}

const fail = (error: unknown): Step => async () => {
  throw error
}

describe('Function: provisionDevice', () => {
  let thinger: FakeThinger
  let deps: ProvisionDeps

  beforeEach(() => {
    thinger = new FakeThinger()
    deps = {
      thinger,
      username: USERNAME,
      host: HOST,
      newCredential: () => NEW_CREDENTIAL,
      fleet: { reprovision: 'rotate', replayProtection: false },
      plan: { device: { device: DEVICE, type: 'Generic' }, shared: [], properties: [], projects: [], record: { fleet: 'default', meta: {} }, recordNewDevices: false },
    }
  })

  it('creates a new device in one call and returns its credential', async () => {
    // Act
    const result = await provisionDevice(DEVICE, deps)

    // Assess
    expect(result).toEqual({ username: USERNAME, device: DEVICE, credential: NEW_CREDENTIAL, host: HOST, created: true })
    expect(thinger.calls).toEqual(['createDevice'])
    expect(thinger.devices.get(DEVICE)).toEqual({ device: DEVICE, type: 'Generic', credentials: NEW_CREDENTIAL, enabled: true })
  })

  it('generates a fresh 24-character credential when none is injected', async () => {
    // Prepare
    const { newCredential: _unused, ...withoutGenerator } = deps

    // Act
    const first = await provisionDevice(DEVICE, withoutGenerator)
    const second = await provisionDevice(DEVICE, withoutGenerator)

    // Assess
    expect(first.credential).toMatch(/^[A-Za-z0-9]{24}$/)
    expect(second.credential).toMatch(/^[A-Za-z0-9]{24}$/)
    expect(second.credential).not.toBe(first.credential)
    expect(thinger.devices.get(DEVICE)?.credentials).toBe(second.credential)
  })

  it.each(['Generic', 'MQTT'])('replaces the credential of an existing %s device in three calls', async (type) => {
    // Prepare
    thinger.devices.set(DEVICE, { device: DEVICE, type, enabled: true, name: 'Kitchen', credentials: OLD_CREDENTIAL })

    // Act
    const result = await provisionDevice(DEVICE, deps)

    // Assess
    expect(result).toEqual({ username: USERNAME, device: DEVICE, credential: NEW_CREDENTIAL, host: HOST, created: false })
    expect(thinger.calls).toEqual(['createDevice', 'getDevice', 'updateDevice'])
    expect(thinger.devices.get(DEVICE)).toEqual({ device: DEVICE, type, enabled: true, name: 'Kitchen', credentials: NEW_CREDENTIAL })
  })

  it('replaces the credential of a device whose enabled flag is absent', async () => {
    // Prepare
    thinger.devices.set(DEVICE, { device: DEVICE, type: 'Generic', credentials: OLD_CREDENTIAL })

    // Act
    const result = await provisionDevice(DEVICE, deps)

    // Assess
    expect(result.created).toBe(false)
    expect(thinger.devices.get(DEVICE)?.credentials).toBe(NEW_CREDENTIAL)
  })

  it('throws upstream_error when create answers 400 and the device does not exist (account limit)', async () => {
    // Prepare
    thinger.maxDevices = 0

    // Act
    const error = await captureRejection(() => provisionDevice(DEVICE, deps))

    // Assess
    expect(error).toBeInstanceOf(UpstreamError)
    expect(error).toMatchObject({
      code: 'upstream_error',
      statusCode: 502,
      retryable: false,
      message: 'Thinger.io refused the request',
      detail: 'create refused with 400 and the device does not exist: device limit reached',
    })
    expect((error as Error).cause).toBeInstanceOf(ThingerHttpError)
    expect(thinger.calls).toEqual(['createDevice', 'getDevice'])
    expect(thinger.devices.size).toBe(0)
  })

  it.each(['HTTP', 'Resource', 'NodeRED'])('throws device_conflict and changes nothing when the existing device is of type %s', async (type) => {
    // Prepare
    const existing = { device: DEVICE, type, enabled: true }
    thinger.devices.set(DEVICE, { ...existing })

    // Act
    const error = await captureRejection(() => provisionDevice(DEVICE, deps))

    // Assess
    expect(error).toBeInstanceOf(DeviceStateError)
    expect(error).toMatchObject({ code: 'device_conflict', statusCode: 409, detail: `existing device type ${type}` })
    expect(thinger.calls).toEqual(['createDevice', 'getDevice'])
    expect(thinger.devices.get(DEVICE)).toEqual(existing)
  })

  it('throws device_disabled and keeps the old credential when the device is disabled', async () => {
    // Prepare
    thinger.devices.set(DEVICE, { device: DEVICE, type: 'Generic', enabled: false, credentials: OLD_CREDENTIAL })

    // Act
    const error = await captureRejection(() => provisionDevice(DEVICE, deps))

    // Assess
    expect(error).toBeInstanceOf(DeviceStateError)
    expect(error).toMatchObject({ code: 'device_disabled', statusCode: 403, message: 'this device is disabled on Thinger.io' })
    expect(thinger.calls).toEqual(['createDevice', 'getDevice'])
    expect(thinger.devices.get(DEVICE)?.credentials).toBe(OLD_CREDENTIAL)
  })

  it.each([
    ['a network error', new ThingerNetworkError('POST', 'CreateDevice', new Error('socket hang up'))],
    ['a timeout', new ThingerTimeoutError('POST', 'CreateDevice', 5000)],
    ['a 504', httpError('POST', 'CreateDevice', 504)],
  ])('converges with the returned credential stored when the create answer is lost to %s', async (_label, lost) => {
    // Prepare
    thinger.script('createDevice', async (run) => {
      await run()
      throw lost
    })

    // Act
    const result = await provisionDevice(DEVICE, deps)

    // Assess
    expect(result).toEqual({ username: USERNAME, device: DEVICE, credential: NEW_CREDENTIAL, host: HOST, created: false })
    expect(thinger.calls).toEqual(['createDevice', 'getDevice', 'updateDevice'])
    expect(thinger.devices.get(DEVICE)?.credentials).toBe(result.credential)
  })

  it('creates the device in a later round when a lost create had not reached Thinger', async () => {
    // Prepare
    thinger.script('createDevice', fail(new ThingerNetworkError('POST', 'CreateDevice', new Error('ECONNRESET'))))

    // Act
    const result = await provisionDevice(DEVICE, deps)

    // Assess
    expect(result.created).toBe(true)
    expect(thinger.calls).toEqual(['createDevice', 'getDevice', 'createDevice'])
    expect(thinger.devices.get(DEVICE)?.credentials).toBe(NEW_CREDENTIAL)
  })

  it('throws upstream_unavailable carrying Retry-After when create answers 503 on every round', async () => {
    // Prepare
    thinger.scriptAlways('createDevice', fail(httpError('POST', 'CreateDevice', 503, 'maintenance', 7)))

    // Act
    const error = await captureRejection(() => provisionDevice(DEVICE, deps))

    // Assess
    expect(error).toBeInstanceOf(UpstreamUnavailableError)
    expect(error).toMatchObject({ code: 'upstream_unavailable', statusCode: 503, retryable: true, retryAfterSeconds: 7 })
    expect(thinger.calls).toEqual(['createDevice', 'getDevice', 'createDevice', 'getDevice', 'createDevice', 'getDevice'])
    expect(thinger.devices.size).toBe(0)
  })

  it('throws upstream_unavailable with the default wait when Thinger gave none', async () => {
    // Prepare
    thinger.scriptAlways('createDevice', fail(new ThingerNetworkError('POST', 'CreateDevice', new Error('ECONNREFUSED'))))

    // Act
    const error = await captureRejection(() => provisionDevice(DEVICE, { ...deps, maxRounds: 2 }))

    // Assess
    expect(error).toBeInstanceOf(UpstreamUnavailableError)
    expect(error).toMatchObject({ retryAfterSeconds: 5, retryable: true })
    expect(thinger.calls).toEqual(['createDevice', 'getDevice', 'createDevice', 'getDevice'])
  })

  it.each([401, 403, 404, 422])('throws upstream_error without further calls when create answers %i', async (status) => {
    // Prepare
    thinger.script('createDevice', fail(httpError('POST', 'CreateDevice', status, 'nope')))

    // Act
    const error = await captureRejection(() => provisionDevice(DEVICE, deps))

    // Assess
    expect(error).toBeInstanceOf(UpstreamError)
    expect(error).toMatchObject({
      code: 'upstream_error',
      statusCode: 502,
      detail: `Thinger.io CreateDevice (POST) answered ${status}: nope`,
    })
    expect(thinger.calls).toEqual(['createDevice'])
  })

  it('takes a 409 on create as a possible duplicate: reads the device, and replaces its credential', async () => {
    // Prepare
    thinger.devices.set(DEVICE, { device: DEVICE, type: 'Generic', enabled: true, credentials: OLD_CREDENTIAL })
    thinger.script('createDevice', fail(httpError('POST', 'CreateDevice', 409, 'device already exists')))

    // Act
    const result = await provisionDevice(DEVICE, deps)

    // Assess
    expect(result.created).toBe(false)
    expect(thinger.calls).toEqual(['createDevice', 'getDevice', 'updateDevice'])
    expect(thinger.devices.get(DEVICE)?.credentials).toBe(NEW_CREDENTIAL)
  })

  it('throws upstream_error naming the 409 when create answers 409 and the device does not exist', async () => {
    // Prepare
    thinger.script('createDevice', fail(httpError('POST', 'CreateDevice', 409, 'conflict')))

    // Act
    const error = await captureRejection(() => provisionDevice(DEVICE, deps))

    // Assess
    expect(error).toMatchObject({ code: 'upstream_error', detail: 'create refused with 409 and the device does not exist: conflict' })
    expect(thinger.calls).toEqual(['createDevice', 'getDevice'])
  })

  it('creates the device again when it is deleted between the read and the update', async () => {
    // Prepare
    thinger.devices.set(DEVICE, { device: DEVICE, type: 'Generic', enabled: true, credentials: OLD_CREDENTIAL })
    thinger.script('updateDevice', async (run) => {
      thinger.devices.delete(DEVICE)
      return run()
    })

    // Act
    const result = await provisionDevice(DEVICE, deps)

    // Assess
    expect(result).toEqual({ username: USERNAME, device: DEVICE, credential: NEW_CREDENTIAL, host: HOST, created: true })
    expect(thinger.calls).toEqual(['createDevice', 'getDevice', 'updateDevice', 'createDevice'])
    expect(thinger.devices.get(DEVICE)?.credentials).toBe(NEW_CREDENTIAL)
  })

  it('throws upstream_unavailable at once, without reading, when the create answers 429', async () => {
    // Prepare
    thinger.script('createDevice', fail(httpError('POST', 'CreateDevice', 429, 'slow down', 9)))

    // Act
    const error = await captureRejection(() => provisionDevice(DEVICE, deps))

    // Assess
    expect(error).toMatchObject({ code: 'upstream_unavailable', retryAfterSeconds: 9 })
    expect(thinger.calls).toEqual(['createDevice'])
    expect(thinger.devices.has(DEVICE)).toBe(false)
  })

  it('throws upstream_unavailable carrying Retry-After when the read answers 429', async () => {
    // Prepare
    thinger.devices.set(DEVICE, { device: DEVICE, type: 'Generic', enabled: true, credentials: OLD_CREDENTIAL })
    thinger.script('getDevice', fail(httpError('GET', 'ReadDeviceStatus', 429, 'slow down', 11)))

    // Act
    const error = await captureRejection(() => provisionDevice(DEVICE, deps))

    // Assess
    expect(error).toBeInstanceOf(UpstreamUnavailableError)
    expect(error).toMatchObject({ code: 'upstream_unavailable', retryAfterSeconds: 11 })
    expect(thinger.calls).toEqual(['createDevice', 'getDevice'])
    expect(thinger.devices.get(DEVICE)?.credentials).toBe(OLD_CREDENTIAL)
  })

  it('throws upstream_error when the update answers 403', async () => {
    // Prepare
    thinger.devices.set(DEVICE, { device: DEVICE, type: 'Generic', enabled: true, credentials: OLD_CREDENTIAL })
    thinger.script('updateDevice', fail(httpError('PUT', 'UpdateDevice', 403, 'forbidden')))

    // Act
    const error = await captureRejection(() => provisionDevice(DEVICE, deps))

    // Assess
    expect(error).toBeInstanceOf(UpstreamError)
    expect(error).toMatchObject({ code: 'upstream_error', detail: 'Thinger.io UpdateDevice (PUT) answered 403: forbidden' })
    expect(thinger.devices.get(DEVICE)?.credentials).toBe(OLD_CREDENTIAL)
  })

  it('throws upstream_unavailable when the update times out', async () => {
    // Prepare
    thinger.devices.set(DEVICE, { device: DEVICE, type: 'Generic', enabled: true, credentials: OLD_CREDENTIAL })
    thinger.script('updateDevice', fail(new ThingerTimeoutError('PUT', 'UpdateDevice', 5000)))

    // Act
    const error = await captureRejection(() => provisionDevice(DEVICE, deps))

    // Assess
    expect(error).toBeInstanceOf(UpstreamUnavailableError)
    expect(error).toMatchObject({ code: 'upstream_unavailable', retryAfterSeconds: 5 })
  })

  it('passes on an unexpected error unchanged', async () => {
    // Prepare
    const bug = new TypeError('thinger.createDevice is broken')
    thinger.script('createDevice', fail(bug))

    // Act
    const error = await captureRejection(() => provisionDevice(DEVICE, deps))

    // Assess
    expect(error).toBe(bug)
  })

  it('sends the create as a Generic device with the new credential', async () => {
    // Prepare
    const bodies: unknown[] = []
    const recording: ThingerPort = {
      ...profileCallsUnexpected,
      getDevice: (device) => thinger.getDevice(device),
      updateDevice: (device, body) => thinger.updateDevice(device, body),
      createDevice: (body) => {
        bodies.push(body)
        return thinger.createDevice(body)
      },
    }

    // Act
    await provisionDevice(DEVICE, { ...deps, thinger: recording })

    // Assess
    expect(bodies).toEqual([{ device: DEVICE, type: 'Generic', credentials: NEW_CREDENTIAL }])
  })
})

const NOW_SECONDS = 1_764_150_000

/** A keyed request of the `default` fleet (rotate, replay protection, empty profile), at NOW_SECONDS. */
function keyedDeps(thinger: FakeThinger, timestamp: number, overrides: Partial<ProvisionDeps> = {}): ProvisionDeps {
  return {
    thinger,
    username: USERNAME,
    host: HOST,
    newCredential: () => NEW_CREDENTIAL,
    fleet: { reprovision: 'rotate', replayProtection: true },
    plan: { device: { device: DEVICE, type: 'Generic' }, shared: [], properties: [], projects: [], record: { fleet: 'default', meta: {} }, recordNewDevices: false },
    proof: { kind: 'hmac', timestamp, keyVersion: 1 },
    now: () => NOW_SECONDS * 1000,
    wallClock: () => NOW_SECONDS * 1000,
    ...overrides,
  }
}

describe('Function: provisionDevice, replay protection', () => {
  let thinger: FakeThinger
  const depsFor = (timestamp: number) => keyedDeps(thinger, timestamp)

  beforeEach(() => {
    thinger = new FakeThinger()
  })

  it('creates a new device in one call when its clock is not ahead, writing no record', async () => {
    // Act
    await provisionDevice(DEVICE, depsFor(NOW_SECONDS - 30))

    // Assess
    expect(thinger.calls).toEqual(['createDevice'])
    expect(thinger.properties.size).toBe(0)
  })

  it('records the timestamp of a new device whose clock runs ahead', async () => {
    // Act
    await provisionDevice(DEVICE, depsFor(NOW_SECONDS + 120))

    // Assess
    expect(thinger.calls).toEqual(['createDevice', 'createDeviceProperty'])
    expect(thinger.properties.get(`${DEVICE}/provisioning`)).toMatchObject({ lastTimestamp: NOW_SECONDS + 120 })
  })

  it.each([
    ['as old as the creation allows', 11, 'serverTime'],
    ['older than the creation', -50, 'serverTime'],
  ])('refuses a timestamp %s on a device without a record, giving the service time', async (_label, offset, field) => {
    // Prepare: created 60 s ago
    thinger.devices.set(DEVICE, { device: DEVICE, type: 'Generic', enabled: true, credentials: OLD_CREDENTIAL, created: (NOW_SECONDS - 60) * 1000 })

    // Act
    const error = await captureRejection(() => provisionDevice(DEVICE, depsFor(NOW_SECONDS - 60 + offset)))

    // Assess
    expect(error).toMatchObject({ code: 'replayed', statusCode: 401, retryable: true, [field]: NOW_SECONDS })
    expect(thinger.devices.get(DEVICE)?.credentials).toBe(OLD_CREDENTIAL)
  })

  it('accepts a timestamp past the creation margin on a device without a record, and records it', async () => {
    // Prepare
    thinger.devices.set(DEVICE, { device: DEVICE, type: 'Generic', enabled: true, credentials: OLD_CREDENTIAL, created: (NOW_SECONDS - 60) * 1000 })

    // Act
    const result = await provisionDevice(DEVICE, depsFor(NOW_SECONDS - 60 + 12))

    // Assess
    expect(result.created).toBe(false)
    expect(thinger.properties.get(`${DEVICE}/provisioning`)).toMatchObject({ lastTimestamp: NOW_SECONDS - 48 })
  })

  it('asks for a wait, not the service time, when the floor is not yet behind the service clock', async () => {
    // Prepare: created 3 s ago, so a replay could carry a timestamp up to 8 s from now
    thinger.devices.set(DEVICE, { device: DEVICE, type: 'Generic', enabled: true, credentials: OLD_CREDENTIAL, created: (NOW_SECONDS - 3) * 1000 })

    // Act
    const error = await captureRejection(() => provisionDevice(DEVICE, depsFor(NOW_SECONDS)))

    // Assess
    expect(error).toMatchObject({ code: 'replayed', serverTime: undefined, retryAfterSeconds: 9 })
  })

  it.each([
    ['a minute old', -60, 1],
    ['of this very second', 0, 1],
    ['a second ahead', 1, 2],
  ])('fences a device without created nor record: refuses a request %s, records the fence, asks to come back', async (_label, offset, wait) => {
    // Prepare: Thinger answers without `created`, so nothing bounds the creating request
    thinger.devices.set(DEVICE, { device: DEVICE, type: 'Generic', enabled: true, credentials: OLD_CREDENTIAL })

    // Act
    const error = await captureRejection(() => provisionDevice(DEVICE, depsFor(NOW_SECONDS + offset)))
    const again = await captureRejection(() => provisionDevice(DEVICE, depsFor(NOW_SECONDS + offset)))

    // Assess
    expect(error).toMatchObject({ code: 'replayed', statusCode: 401, retryable: true, retryAfterSeconds: wait })
    expect(again).toMatchObject({ code: 'replayed' })
    expect(thinger.properties.get(`${DEVICE}/provisioning`)).toEqual({ fleet: 'default', lastTimestamp: NOW_SECONDS + Math.max(0, offset) })
    expect(thinger.devices.get(DEVICE)?.credentials).toBe(OLD_CREDENTIAL)
  })

  it('accepts the request the device signs after the fence, and records it', async () => {
    // Prepare
    thinger.devices.set(DEVICE, { device: DEVICE, type: 'Generic', enabled: true, credentials: OLD_CREDENTIAL })
    await captureRejection(() => provisionDevice(DEVICE, depsFor(NOW_SECONDS)))

    // Act
    const result = await provisionDevice(DEVICE, depsFor(NOW_SECONDS + 1))

    // Assess
    expect(result.created).toBe(false)
    expect(thinger.devices.get(DEVICE)?.credentials).toBe(NEW_CREDENTIAL)
    expect(thinger.properties.get(`${DEVICE}/provisioning`)).toMatchObject({ lastTimestamp: NOW_SECONDS + 1 })
  })

  it('compares with the recorded timestamp when there is one, and updates it in place', async () => {
    // Prepare
    thinger.devices.set(DEVICE, { device: DEVICE, type: 'Generic', enabled: true, credentials: OLD_CREDENTIAL, created: (NOW_SECONDS - 3600) * 1000 })
    thinger.properties.set(`${DEVICE}/provisioning`, { fleet: 'default', lastTimestamp: NOW_SECONDS - 5 })

    // Act
    const replay = await captureRejection(() => provisionDevice(DEVICE, depsFor(NOW_SECONDS - 5)))
    thinger.calls.length = 0
    await provisionDevice(DEVICE, depsFor(NOW_SECONDS - 4))

    // Assess
    expect(replay).toMatchObject({ code: 'replayed', serverTime: NOW_SECONDS })
    // The timestamp is recorded before the credential changes, at no extra call.
    expect(thinger.calls).toEqual(['createDevice', 'getDevice', 'getDeviceProperty', 'updateDeviceProperty', 'updateDevice'])
    expect(thinger.properties.get(`${DEVICE}/provisioning`)).toMatchObject({ lastTimestamp: NOW_SECONDS - 4 })
  })

  it('reads the device and its record side by side: a re-provisioning costs four round trips, the record still written before the credential', async () => {
    // Prepare: the device read answers only after the other calls of this turn had their chance to start
    thinger.devices.set(DEVICE, { device: DEVICE, type: 'Generic', enabled: true, credentials: OLD_CREDENTIAL, created: (NOW_SECONDS - 3600) * 1000 })
    thinger.properties.set(`${DEVICE}/provisioning`, { fleet: 'default', lastTimestamp: NOW_SECONDS - 5 })
    let startedBeside: string[] = []
    thinger.script('getDevice', async (run) => {
      await new Promise((resolve) => setImmediate(resolve))
      startedBeside = thinger.calls.slice(thinger.calls.indexOf('getDevice') + 1)
      return run()
    })
    let recordWhenUpdated: unknown
    thinger.script('updateDevice', async (run) => {
      recordWhenUpdated = thinger.properties.get(`${DEVICE}/provisioning`)
      return run()
    })

    // Act
    const result = await provisionDevice(DEVICE, depsFor(NOW_SECONDS))

    // Assess
    expect(result.created).toBe(false)
    expect(startedBeside).toEqual(['getDeviceProperty'])
    expect(recordWhenUpdated).toMatchObject({ lastTimestamp: NOW_SECONDS })
    expect(thinger.calls).toEqual(['createDevice', 'getDevice', 'getDeviceProperty', 'updateDeviceProperty', 'updateDevice'])
  })

  it('ignores the record read beside a device that turned out to be gone, and creates the device', async () => {
    // Prepare: the create's answer is lost, the device does not exist, and reading its record fails (as Thinger may for a missing device)
    thinger.script('createDevice', fail(new ThingerNetworkError('POST', 'CreateDevice', new Error('socket hang up'))))
    const getDeviceProperty = thinger.getDeviceProperty.bind(thinger)
    let recordReads = 0
    thinger.getDeviceProperty = async (device, property) => {
      recordReads++
      if (recordReads === 1) throw httpError('GET', 'ReadDeviceProperty', 500, 'no such device')
      return getDeviceProperty(device, property)
    }

    // Act
    const result = await provisionDevice(DEVICE, depsFor(NOW_SECONDS))

    // Assess
    expect(result.created).toBe(true)
    expect(thinger.devices.get(DEVICE)?.credentials).toBe(NEW_CREDENTIAL)
  })
})

describe('Function: provisionDevice, a late failure and fleets that share IDs', () => {
  let thinger: FakeThinger
  const depsFor = (timestamp: number, overrides: Partial<ProvisionDeps> = {}) => keyedDeps(thinger, timestamp, overrides)

  beforeEach(() => {
    thinger = new FakeThinger()
  })

  it.each([
    ['a device key', (timestamp: number): ProvisionDeps['proof'] => ({ kind: 'hmac', timestamp, keyVersion: 1 })],
    ['a certificate', (timestamp: number): ProvisionDeps['proof'] => ({ kind: 'x509', timestamp })],
  ])('refuses the same request (signed with %s) again once the credential change failed, and accepts the device’s next one', async (_label, proofAt) => {
    // Prepare: an existing device; the update's answer is lost after it happened
    thinger.devices.set(DEVICE, { device: DEVICE, type: 'Generic', enabled: true, credentials: OLD_CREDENTIAL, created: (NOW_SECONDS - 3600) * 1000 })
    thinger.script('updateDevice', async (run) => {
      await run()
      throw new ThingerNetworkError('PUT', 'UpdateDevice', new Error('socket hang up'))
    })

    // Act
    const failed = await captureRejection(() => provisionDevice(DEVICE, depsFor(NOW_SECONDS - 10, { proof: proofAt(NOW_SECONDS - 10) })))
    const replay = await captureRejection(() => provisionDevice(DEVICE, depsFor(NOW_SECONDS - 10, { proof: proofAt(NOW_SECONDS - 10) })))
    const next = await provisionDevice(DEVICE, depsFor(NOW_SECONDS - 9, { proof: proofAt(NOW_SECONDS - 9) }))

    // Assess
    expect(failed).toMatchObject({ code: 'upstream_unavailable' })
    expect(replay).toMatchObject({ code: 'replayed' })
    expect(next).toMatchObject({ credential: NEW_CREDENTIAL, created: false })
    expect(thinger.properties.get(`${DEVICE}/provisioning`)).toMatchObject({ fleet: 'default', lastTimestamp: NOW_SECONDS - 9 })
  })

  it('leaves the credential untouched when the record cannot be written first', async () => {
    // Prepare
    thinger.devices.set(DEVICE, { device: DEVICE, type: 'Generic', enabled: true, credentials: OLD_CREDENTIAL, created: (NOW_SECONDS - 3600) * 1000 })
    thinger.createDeviceProperty = async () => {
      thinger.calls.push('createDeviceProperty')
      throw httpError('POST', 'Create property', 503)
    }

    // Act
    const error = await captureRejection(() => provisionDevice(DEVICE, depsFor(NOW_SECONDS - 10)))

    // Assess
    expect(error).toMatchObject({ code: 'upstream_unavailable' })
    expect(thinger.devices.get(DEVICE)?.credentials).toBe(OLD_CREDENTIAL)
    expect(thinger.calls).not.toContain('updateDevice')
  })

  it('refuses, in any fleet and under any policy, a device marked as another fleet’s', async () => {
    // Prepare
    thinger.devices.set(DEVICE, { device: DEVICE, type: 'Generic', enabled: true, credentials: OLD_CREDENTIAL, description: 'thinger-provisioner fleet other', created: NOW_SECONDS * 1000 })

    // Act
    const rotate = await captureRejection(() => provisionDevice(DEVICE, depsFor(NOW_SECONDS + 30)))
    const reject = await captureRejection(() => provisionDevice(DEVICE, depsFor(NOW_SECONDS + 30, { fleet: { reprovision: 'reject', replayProtection: false }, proof: { kind: 'claim' } })))

    // Assess
    expect(rotate).toMatchObject({ code: 'device_conflict', detail: 'device belongs to fleet other' })
    expect(reject).toMatchObject({ code: 'device_conflict' })
    expect(thinger.devices.get(DEVICE)?.credentials).toBe(OLD_CREDENTIAL)
  })

  it('does not resume, under reject, a young device without a record that this fleet did not create', async () => {
    // Prepare: what a rotate fleet's one-call create left before fleet marks
    thinger.devices.set(DEVICE, { device: DEVICE, type: 'Generic', enabled: true, credentials: OLD_CREDENTIAL, created: (NOW_SECONDS - 5) * 1000 })
    const claimFleet = { fleet: { reprovision: 'reject' as const, replayProtection: true }, proof: { kind: 'claim' as const }, plan: { ...depsFor(0).plan, record: { fleet: 'workshop', meta: {} } } }

    // Act
    const error = await captureRejection(() => provisionDevice(DEVICE, depsFor(0, claimFleet)))

    // Assess
    expect(error).toMatchObject({ code: 'already_provisioned', detail: 'device was not created by this fleet' })
    expect(thinger.devices.get(DEVICE)?.credentials).toBe(OLD_CREDENTIAL)
  })

  it('resumes, under reject, an interrupted provisioning of a device this fleet marked', async () => {
    // Prepare
    thinger.devices.set(DEVICE, { device: DEVICE, type: 'Generic', enabled: true, credentials: OLD_CREDENTIAL, description: 'Kit (thinger-provisioner fleet workshop)', created: (NOW_SECONDS - 5) * 1000 })
    const claimFleet = { fleet: { reprovision: 'reject' as const, replayProtection: true }, proof: { kind: 'claim' as const }, plan: { ...depsFor(0).plan, record: { fleet: 'workshop', meta: {} } } }

    // Act
    const result = await provisionDevice(DEVICE, depsFor(0, claimFleet))

    // Assess
    expect(result).toMatchObject({ created: false, credential: NEW_CREDENTIAL })
  })

  it('adopts an unmarked device only where no other fleet admits its ID', async () => {
    // Prepare
    thinger.devices.set(DEVICE, { device: DEVICE, type: 'Generic', enabled: true, credentials: OLD_CREDENTIAL, created: (NOW_SECONDS - 3600) * 1000 })

    // Act
    const shared = await captureRejection(() => provisionDevice(DEVICE, depsFor(NOW_SECONDS, { adoptUnmarked: false })))
    const alone = await provisionDevice(DEVICE, depsFor(NOW_SECONDS, { adoptUnmarked: true }))

    // Assess
    expect(shared).toMatchObject({ code: 'device_conflict' })
    expect(alone).toMatchObject({ created: false })
  })
})

describe('Function: provisionDevice, reject with a device key', () => {
  it('resumes an interrupted provisioning recording first an unfinished record, then finishing it, without a refused call', async () => {
    // Prepare: created by this fleet seconds ago, no record
    const thinger = new FakeThinger()
    thinger.devices.set(DEVICE, { device: DEVICE, type: 'Generic', enabled: true, credentials: OLD_CREDENTIAL, description: 'thinger-provisioner fleet workshop', created: (NOW_SECONDS - 30) * 1000 })
    const deps = keyedDeps(thinger, NOW_SECONDS, { fleet: { reprovision: 'reject', replayProtection: true }, plan: { ...keyedDeps(thinger, 0).plan, record: { fleet: 'workshop', meta: {} }, recordNewDevices: true } })

    // Act
    const result = await provisionDevice(DEVICE, deps)
    const again = await captureRejection(() => provisionDevice(DEVICE, keyedDeps(thinger, NOW_SECONDS + 1, { fleet: deps.fleet, plan: deps.plan })))

    // Assess
    expect(result).toMatchObject({ created: false, credential: NEW_CREDENTIAL })
    expect(thinger.calls).toEqual(['createDevice', 'getDevice', 'getDeviceProperty', 'createDeviceProperty', 'updateDevice', 'updateDeviceProperty', 'createDevice', 'getDevice', 'getDeviceProperty'])
    expect(thinger.properties.get(`${DEVICE}/provisioning`)).toMatchObject({ fleet: 'workshop', lastTimestamp: NOW_SECONDS, provisionedAt: expect.any(String) })
    expect(again).toMatchObject({ code: 'already_provisioned' })
  })
})
