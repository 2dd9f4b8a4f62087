import { AttestationError, DeviceStateError, UpstreamError, UpstreamUnavailableError } from '../errors.js'
import type { Fleet } from '../fleets/fleet.js'
import type { ThingerClient, ThingerDevice, UpdateDeviceBody } from '../thinger/client.js'
import { isRetryableThingerError, ThingerHttpError } from '../thinger/errors.js'
import { generateCredential } from './credential.js'
import type { ProvisioningPlan } from './plan.js'

const DEFAULT_MAX_ROUNDS = 3
const DEFAULT_RESUME_WINDOW_MS = 15 * 60 * 1000
const DEFAULT_SHARED_TTL_MS = 5 * 60 * 1000
const CREDENTIAL_DEVICE_TYPES = new Set(['Generic', 'MQTT'])
const UPDATABLE_FIELDS = ['name', 'description', 'asset_type', 'asset_group', 'product'] as const
// How far Thinger.io's clock (its `created` times) may be from this function's, in seconds.
const CREATED_CLOCK_MARGIN_SECONDS = 10
// A device clock at most this far ahead of the service's counts as in step with it.
const AHEAD_TOLERANCE_SECONDS = 1
/** The device property that records a finished provisioning. */
export const PROVISIONING_PROPERTY = 'provisioning'

/** What a device receives once provisioned. */
export interface ProvisionResult {
  username: string
  device: string
  credential: string
  host: string
  /** True when this request created the device, false when it existed and its credential was replaced. */
  created: boolean
}

export type ThingerPort = Pick<
  ThingerClient,
  | 'getDevice'
  | 'createDevice'
  | 'updateDevice'
  | 'getResource'
  | 'createResource'
  | 'cloneDashboard'
  | 'getDeviceProperty'
  | 'createDeviceProperty'
  | 'updateDeviceProperty'
  | 'setDeviceProjects'
>

export interface ProvisionDeps {
  thinger: ThingerPort
  username: string
  host: string
  fleet: Pick<Fleet, 'reprovision' | 'replayProtection'>
  plan: ProvisioningPlan
  /** How the device proved itself: a signed timestamp (and key version) or a claim secret. */
  proof?: { kind: 'hmac'; timestamp: number; keyVersion: number } | { kind: 'x509'; timestamp: number } | { kind: 'claim' }
  newCredential?: () => string
  /** The time written into the provisioning record. */
  now?: () => number
  /** The clock compared with Thinger.io's `created` times (the real one, whatever `now` is in tests). */
  wallClock?: () => number
  maxRounds?: number
  /** An interrupted provisioning younger than this may be resumed under the `reject` policy. */
  resumeWindowMs?: number

  /** Asset types, groups and products known to exist, with when that knowledge expires (one per container). */
  knownShared?: Map<string, number>
  sharedTtlMs?: number
}

/**
 * Makes sure `device` exists on Thinger.io as its fleet's plan says, with a fresh credential, and
 * returns that credential once every step succeeded. Each step is "ensure": create, and when
 * Thinger refuses or the answer is lost, read the state instead of trusting a message; so a retry
 * after any failure finishes the remaining steps without duplicating one. A new device with an
 * empty profile costs one Thinger call.
 * @throws DeviceStateError (`device_disabled`, `device_conflict`, `already_provisioned`);
 *   UpstreamError when Thinger refuses for good; UpstreamUnavailableError when it cannot be reached.
 */
export async function provisionDevice(device: string, deps: ProvisionDeps): Promise<ProvisionResult> {
  const { thinger, plan } = deps
  for (const shared of plan.shared) await ensureShared(shared.kind, shared.id, deps)
  const { credential, created, previousRecord } = await ensureDevice(device, deps)
  for (const { property, value } of plan.properties) await ensureProperty(thinger, device, property, value)
  if (plan.bucket) await ensureBucket(thinger, device, plan.bucket)
  if (plan.dashboard) await ensureDashboard(thinger, plan.dashboard)
  if (plan.projects.length > 0) await call(() => thinger.setDeviceProjects(device, plan.projects))
  // Replay protection without a call per new device: a device created by a request signed no
  // later than the service's clock is covered by its `created` time (see checkNotReplayed); only a
  // re-provisioned device, or a new one whose clock runs ahead, needs its timestamp recorded.
  const proof = deps.proof
  const nowSeconds = Math.floor((deps.now ?? Date.now)() / 1000)
  const signedAt = proof !== undefined && proof.kind !== 'claim' ? proof.timestamp : 0
  const clockAhead = signedAt > nowSeconds + AHEAD_TOLERANCE_SECONDS
  if (plan.recordNewDevices || (deps.fleet.replayProtection && (!created || clockAhead))) {
    const lastTimestamp = Math.max(signedAt, previousRecord?.lastTimestamp ?? 0)
    const record: ProvisioningRecord = {
      ...plan.record,
      provisionedAt: new Date((deps.now ?? Date.now)()).toISOString(),
      proof: proof?.kind ?? 'claim',
      ...(proof?.kind === 'hmac' ? { keyVersion: proof.keyVersion } : {}),
      ...(lastTimestamp > 0 ? { lastTimestamp } : {}),
    }
    await ensureProperty(thinger, device, PROVISIONING_PROPERTY, record, previousRecord !== undefined)
  }
  return { username: deps.username, device, credential, host: deps.host, created }
}

/** The `provisioning` device property: who provisioned the device, when, and the last accepted timestamp. */
export interface ProvisioningRecord {
  fleet: string
  meta: Record<string, string>
  provisionedAt: string
  proof: 'hmac' | 'claim' | 'x509'
  keyVersion?: number
  lastTimestamp?: number
}

async function ensureDevice(device: string, deps: ProvisionDeps): Promise<{ credential: string; created: boolean; previousRecord?: Partial<ProvisioningRecord> }> {
  const { thinger, plan } = deps
  const credential = (deps.newCredential ?? generateCredential)()
  const maxRounds = deps.maxRounds ?? DEFAULT_MAX_ROUNDS
  let lastError: unknown
  for (let round = 0; round < maxRounds; round++) {
    try {
      await thinger.createDevice({ ...plan.device, credentials: credential })
      return { credential, created: true }
    } catch (error) {
      if (!isAmbiguousCreateFailure(error)) throw toUpstreamError(error)
      lastError = error
    }
    // The create was refused (duplicate, invalid, or a limit) or its answer was lost: the state decides.
    const existing = await call(() => thinger.getDevice(device))
    if (existing !== undefined) {
      const previousRecord = await checkReplaceable(device, existing, deps)
      if (await call(() => thinger.updateDevice(device, { ...fieldsToUpdate(existing, plan), credentials: credential }))) {
        return { credential, created: false, ...(previousRecord ? { previousRecord } : {}) }
      }
      // Deleted between the read and the update: start over with a create.
      continue
    }
    if (lastError instanceof ThingerHttpError && lastError.status === 400) {
      throw new UpstreamError(`create refused with 400 and the device does not exist: ${lastError.upstreamMessage ?? 'no message'}`, {
        cause: lastError,
      })
    }
  }
  throw toUpstreamError(lastError)
}

async function checkReplaceable(device: string, existing: ThingerDevice, deps: ProvisionDeps): Promise<Partial<ProvisioningRecord> | undefined> {
  if (!CREDENTIAL_DEVICE_TYPES.has(existing.type)) {
    throw new DeviceStateError(
      'device_conflict',
      'a device with this ID exists on Thinger.io and does not log in with a credential',
      `existing device type ${existing.type}`,
    )
  }
  if (existing.enabled === false) {
    throw new DeviceStateError('device_disabled', 'this device is disabled on Thinger.io')
  }
  if (deps.fleet.reprovision !== 'reject' && !deps.fleet.replayProtection) return undefined
  const stored = await call(() => deps.thinger.getDeviceProperty(device, PROVISIONING_PROPERTY))
  const record = stored === undefined ? undefined : ((typeof stored.value === 'object' && stored.value !== null ? stored.value : {}) as Partial<ProvisioningRecord>)
  const proof = deps.proof
  if (deps.fleet.replayProtection && proof !== undefined && proof.kind !== 'claim') checkNotReplayed(proof.timestamp, existing, record, deps)
  if (deps.fleet.reprovision === 'reject') {
    // Under `reject` only an interrupted provisioning may go on: one that never wrote its record,
    // and recent enough that the device has not been in use.
    const ageMs = existing.created === undefined ? Number.POSITIVE_INFINITY : (deps.wallClock ?? Date.now)() - existing.created
    if (record !== undefined || !(ageMs < (deps.resumeWindowMs ?? DEFAULT_RESUME_WINDOW_MS))) {
      throw new DeviceStateError(
        'already_provisioned',
        'this device is already provisioned; this fleet does not replace credentials',
        record === undefined ? 'device exists without a provisioning record' : 'device has a provisioning record',
      )
    }
  }
  return record
}

/**
 * Refuses a request not newer than the last one accepted for the device: the recorded timestamp,
 * or, for a device without a record, its creation (a device is created without a record only by a
 * request signed no later than the service's clock, so its timestamp is at most `created` plus the
 * margin). A device whose own clock is behind gets the service's time to sign again with, as for
 * `clock_skew`; within the same seconds, a short wait.
 * @throws AttestationError `replayed`.
 */
function checkNotReplayed(timestamp: number, existing: ThingerDevice, record: Partial<ProvisioningRecord> | undefined, deps: ProvisionDeps): void {
  const floor =
    typeof record?.lastTimestamp === 'number'
      ? record.lastTimestamp
      : existing.created === undefined
        ? undefined
        : Math.floor(existing.created / 1000) + AHEAD_TOLERANCE_SECONDS + CREATED_CLOCK_MARGIN_SECONDS
  if (floor === undefined || timestamp > floor) return
  const nowSeconds = Math.floor((deps.now ?? Date.now)() / 1000)
  const message = 'this request is not newer than the last one accepted for this device'
  if (nowSeconds > floor) throw new AttestationError('replayed', message, { serverTime: nowSeconds })
  const error = new AttestationError('replayed', message)
  error.retryAfterSeconds = floor - nowSeconds + 1
  throw error
}

function fieldsToUpdate(existing: ThingerDevice, plan: ProvisioningPlan): UpdateDeviceBody {
  const update: UpdateDeviceBody = {}
  for (const field of UPDATABLE_FIELDS) {
    const wanted = plan.device[field]
    if (wanted !== undefined && existing[field] !== wanted) update[field] = wanted
  }
  return update
}

async function ensureShared(kind: 'types' | 'groups' | 'products', id: string, deps: ProvisionDeps): Promise<void> {
  const key = `${kind}/${id}`
  const now = (deps.now ?? Date.now)()
  const known = deps.knownShared?.get(key)
  if (known !== undefined && known > now) return
  const { thinger } = deps
  const exists = async () => (await thinger.getResource(kind, id)) !== undefined
  if (!(await call(exists))) {
    const singular = { types: 'type', groups: 'group', products: 'product' }[kind]
    const body: Record<string, unknown> = { [singular]: id, name: id, description: 'Created by thinger-provisioner' }
    if (kind === 'products') body.enabled = true
    await ensure(() => thinger.createResource(kind, body), exists, `asset ${singular} ${id}`)
  }
  deps.knownShared?.set(key, now + (deps.sharedTtlMs ?? DEFAULT_SHARED_TTL_MS))
}

async function ensureProperty(thinger: ThingerPort, device: string, property: string, value: unknown, exists = false): Promise<void> {
  // A property just read needs no create that would only be refused.
  if (exists && (await call(() => thinger.updateDeviceProperty(device, property, value)))) return
  await ensure(
    () => thinger.createDeviceProperty(device, property, value),
    () => thinger.updateDeviceProperty(device, property, value),
    `property ${property}`,
  )
}

async function ensureBucket(thinger: ThingerPort, device: string, bucket: NonNullable<ProvisioningPlan['bucket']>): Promise<void> {
  await ensure(
    () => thinger.createResource('buckets', bucket),
    async () => {
      const existing = await thinger.getResource('buckets', bucket.bucket)
      if (existing === undefined) return false
      const source = (existing.config as { device?: unknown } | undefined)?.device
      if (source !== device) throw new UpstreamError(`bucket ${bucket.bucket} exists and is fed by another source (${String(source)})`)
      return true
    },
    `bucket ${bucket.bucket}`,
  )
}

async function ensureDashboard(thinger: ThingerPort, dashboard: NonNullable<ProvisioningPlan['dashboard']>): Promise<void> {
  await ensure(
    () => thinger.cloneDashboard(dashboard.template, { dashboard: dashboard.dashboard, name: dashboard.name }),
    async () => (await thinger.getResource('dashboards', dashboard.dashboard)) !== undefined,
    `dashboard ${dashboard.dashboard} (from template ${dashboard.template})`,
  )
}

/** Creates something; when Thinger refuses or the answer is lost, `confirm` reads (or fixes) the state. */
async function ensure(create: () => Promise<void>, confirm: () => Promise<boolean>, what: string): Promise<void> {
  try {
    await create()
    return
  } catch (error) {
    if (!isAmbiguousCreateFailure(error)) throw toUpstreamError(error)
    if (await call(confirm)) return
    if (error instanceof ThingerHttpError && error.status < 500) {
      throw new UpstreamError(`${what}: create refused with ${error.status} and it does not exist: ${error.upstreamMessage ?? 'no message'}`, { cause: error })
    }
    throw toUpstreamError(error)
  }
}

/** A 400 (maybe a duplicate) or a lost answer: the create may or may not have happened. 429 said it did not. */
function isAmbiguousCreateFailure(error: unknown): boolean {
  if (error instanceof ThingerHttpError) return error.status === 400 || (error.status !== 429 && isRetryableThingerError(error))
  return isRetryableThingerError(error)
}

async function call<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation()
  } catch (error) {
    throw toUpstreamError(error)
  }
}

function toUpstreamError(error: unknown): Error {
  if (error instanceof UpstreamError || error instanceof UpstreamUnavailableError || error instanceof DeviceStateError || error instanceof AttestationError) return error
  if (isRetryableThingerError(error)) {
    const retryAfterSeconds = error instanceof ThingerHttpError ? error.retryAfterSeconds : undefined
    return new UpstreamUnavailableError((error as Error).message, retryAfterSeconds === undefined ? { cause: error } : { cause: error, retryAfterSeconds })
  }
  if (error instanceof ThingerHttpError) {
    return new UpstreamError(`${error.message}: ${error.upstreamMessage ?? 'no message'}`, { cause: error })
  }
  return error instanceof Error ? error : new Error(String(error))
}
