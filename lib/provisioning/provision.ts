import { AttestationError, DeviceStateError, UpstreamError, UpstreamUnavailableError } from '../errors.js'
import type { Fleet } from '../fleets/fleet.js'
import type { ThingerClient, ThingerDevice, UpdateDeviceBody } from '../thinger/client.js'
import { isRetryableThingerError, ThingerHttpError } from '../thinger/errors.js'
import { generateCredential } from './credential.js'
import { fleetOfDescription } from './fleet-mark.js'
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

/** How a device proved itself. */
export type Proof = { kind: 'hmac'; timestamp: number; keyVersion: number } | { kind: 'x509'; timestamp: number } | { kind: 'claim' }
type SignedProof = Exclude<Proof, { kind: 'claim' }>

export interface ProvisionDeps {
  thinger: ThingerPort
  username: string
  host: string
  fleet: Pick<Fleet, 'reprovision' | 'replayProtection'>
  plan: ProvisioningPlan
  /** How the device proved itself: a signed timestamp (with the key version, or by its certificate's key) or a claim secret. */
  proof?: Proof
  newCredential?: () => string
  /** The time written into the provisioning record. */
  now?: () => number
  /** The clock compared with Thinger.io's `created` times (the real one, whatever `now` is in tests). */
  wallClock?: () => number
  maxRounds?: number
  /** An interrupted provisioning younger than this may be resumed under the `reject` policy. */
  resumeWindowMs?: number
  /**
   * Whether this fleet may re-credential an existing device that carries no fleet (created before
   * fleet marks, or by hand): only when no other fleet of the deployment admits its ID. Default true.
   */
  adoptUnmarked?: boolean

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
  const { credential, created, previousRecord, recorded, recordExists } = await ensureDevice(device, deps)
  for (const { property, value } of plan.properties) await ensureProperty(thinger, device, property, value)
  if (plan.bucket) await ensureBucket(thinger, device, plan.bucket)
  if (plan.dashboard) await ensureDashboard(thinger, device, plan.dashboard)
  if (plan.projects.length > 0) await call(() => thinger.setDeviceProjects(device, plan.projects))
  // Replay protection without a call per new device: a device created by a request signed no
  // later than the service's clock is covered by its `created` time (see checkNotReplayed); only a
  // re-provisioned device, or a new one whose clock runs ahead, needs its timestamp recorded.
  const proof = deps.proof
  const nowSeconds = Math.floor((deps.now ?? Date.now)() / 1000)
  const clockAhead = signedTimestamp(proof) > nowSeconds + AHEAD_TOLERANCE_SECONDS
  if (!recorded && (plan.recordNewDevices || (deps.fleet.replayProtection && (!created || clockAhead)))) {
    await writeRecord(device, deps, previousRecord, true, previousRecord !== undefined || recordExists === true)
  }
  return { username: deps.username, device, credential, host: deps.host, created }
}

/**
 * Writes the `provisioning` record with this request's timestamp as the last accepted one;
 * `finished` adds `provisionedAt`, which marks a provisioning whose every step succeeded.
 */
async function writeRecord(device: string, deps: ProvisionDeps, previousRecord: Partial<ProvisioningRecord> | undefined, finished: boolean, exists: boolean): Promise<void> {
  const proof = deps.proof
  const lastTimestamp = Math.max(signedTimestamp(proof), previousRecord?.lastTimestamp ?? 0)
  const record: Omit<ProvisioningRecord, 'provisionedAt'> & { provisionedAt?: string } = {
    ...deps.plan.record,
    ...(finished ? { provisionedAt: new Date((deps.now ?? Date.now)()).toISOString() } : {}),
    proof: proof?.kind ?? 'claim',
    ...(proof?.kind === 'hmac' ? { keyVersion: proof.keyVersion } : {}),
    ...(lastTimestamp > 0 ? { lastTimestamp } : {}),
  }
  await ensureProperty(deps.thinger, device, PROVISIONING_PROPERTY, record, exists)
}

/** The `provisioning` device property: who provisioned the device, when, and the last accepted timestamp. */
export interface ProvisioningRecord {
  fleet: string
  meta: Record<string, string>
  /** Absent while a provisioning under `reject` is under way (see writeRecord). */
  provisionedAt: string
  proof: 'hmac' | 'claim' | 'x509'
  keyVersion?: number
  lastTimestamp?: number
}

async function ensureDevice(
  device: string,
  deps: ProvisionDeps,
): Promise<{ credential: string; created: boolean; previousRecord?: Partial<ProvisioningRecord>; recorded?: boolean; recordExists?: boolean }> {
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
    // The device and, where the checks always need it, its record are read side by side: one round trip.
    const deviceRead = settle(call(() => thinger.getDevice(device)))
    const recordRead = recordAlwaysRead(deps) ? settle(call(() => thinger.getDeviceProperty(device, PROVISIONING_PROPERTY))) : undefined
    const deviceOutcome = await deviceRead
    if (!deviceOutcome.ok) throw deviceOutcome.error
    const existing = deviceOutcome.value
    if (existing !== undefined) {
      const previousRecord = await checkReplaceable(device, existing, deps, recordRead)
      // The accepted timestamp is recorded before the credential changes: a request that got this
      // far is never accepted again, even when a later step fails and the device saw only an error.
      // Under `reject` the record stays unfinished (no provisionedAt) until the last step.
      const recordFirst = deps.fleet.replayProtection && isSigned(deps.proof)
      const finished = deps.fleet.reprovision !== 'reject'
      if (recordFirst) await writeRecord(device, deps, previousRecord, finished, previousRecord !== undefined)
      if (await call(() => thinger.updateDevice(device, { ...fieldsToUpdate(existing, plan), credentials: credential }))) {
        return { credential, created: false, ...(previousRecord ? { previousRecord } : {}), recorded: recordFirst && finished, recordExists: recordFirst }
      }
      // Deleted between the read and the update: start over with a create.
      continue
    }
    if (lastError instanceof ThingerHttpError && (lastError.status === 400 || lastError.status === 409)) {
      throw new UpstreamError(`create refused with ${lastError.status} and the device does not exist: ${lastError.upstreamMessage ?? 'no message'}`, {
        cause: lastError,
      })
    }
  }
  throw toUpstreamError(lastError)
}

/** Whether checkReplaceable reads the record whatever the device says: then it is read beside the device. */
function recordAlwaysRead(deps: ProvisionDeps): boolean {
  return deps.fleet.reprovision === 'reject' || deps.fleet.replayProtection
}

type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown }

/** A call's outcome, never rejected: a read started beside another is awaited only when its answer matters. */
function settle<T>(promise: Promise<T>): Promise<Settled<T>> {
  return promise.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  )
}

async function checkReplaceable(
  device: string,
  existing: ThingerDevice,
  deps: ProvisionDeps,
  recordRead: Promise<Settled<{ value: unknown } | undefined>> | undefined,
): Promise<Partial<ProvisioningRecord> | undefined> {
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
  const fleet = deps.plan.record.fleet
  const marked = fleetOfDescription(existing.description)
  if (marked !== undefined && marked !== fleet) throw belongsElsewhere(marked)
  // Without a mark, only the record can tell the owner; needed only where another fleet admits the ID.
  const readRecord = recordAlwaysRead(deps) || (marked === undefined && deps.adoptUnmarked === false)
  const stored = readRecord ? await readStoredRecord(device, deps, recordRead) : undefined
  const record = stored === undefined ? undefined : ((typeof stored.value === 'object' && stored.value !== null ? stored.value : {}) as Partial<ProvisioningRecord>)
  // A request of one fleet never changes a device another fleet created: the mark in the
  // description says who created it, the record who provisioned it (an operator may edit the description).
  const owner = marked ?? (typeof record?.fleet === 'string' ? record.fleet : undefined)
  if (owner !== undefined && owner !== fleet) throw belongsElsewhere(owner)
  if (owner === undefined && deps.adoptUnmarked === false) {
    throw new DeviceStateError(
      'device_conflict',
      'a device with this ID exists on Thinger.io and was not created by this fleet',
      'device carries no fleet mark and another fleet admits its ID',
    )
  }
  const proof = deps.proof
  if (deps.fleet.replayProtection && isSigned(proof)) await checkNotReplayed(device, proof.timestamp, existing, record, deps)
  if (deps.fleet.reprovision === 'reject') {
    // Under `reject` only an interrupted provisioning of this fleet may go on: a device this fleet
    // created, whose record was never finished, recent enough that it has not been in use.
    // Only the record a keyed resume writes first (a timestamp, no provisionedAt) is unfinished; any other counts as finished.
    const finished = record !== undefined && !(record.provisionedAt === undefined && typeof record.lastTimestamp === 'number')
    const ageMs = existing.created === undefined ? Number.POSITIVE_INFINITY : (deps.wallClock ?? Date.now)() - existing.created
    if (finished || owner !== fleet || !(ageMs < (deps.resumeWindowMs ?? DEFAULT_RESUME_WINDOW_MS))) {
      throw new DeviceStateError(
        'already_provisioned',
        'this device is already provisioned; this fleet does not replace credentials',
        finished ? 'device has a provisioning record' : owner === fleet ? 'device exists without a provisioning record' : 'device was not created by this fleet',
      )
    }
  }
  return record
}

/** The record read beside the device when it was started, else read now. */
async function readStoredRecord(
  device: string,
  deps: ProvisionDeps,
  recordRead: Promise<Settled<{ value: unknown } | undefined>> | undefined,
): Promise<{ value: unknown } | undefined> {
  if (recordRead === undefined) return call(() => deps.thinger.getDeviceProperty(device, PROVISIONING_PROPERTY))
  const outcome = await recordRead
  if (!outcome.ok) throw outcome.error
  return outcome.value
}

function belongsElsewhere(owner: string): DeviceStateError {
  return new DeviceStateError('device_conflict', 'a device with this ID exists on Thinger.io and belongs to another fleet', `device belongs to fleet ${owner}`)
}

/**
 * Refuses a request not newer than the last one accepted for the device: the recorded timestamp,
 * or, for a device without a record, its creation (a device is created without a record only by a
 * request signed no later than the service's clock, so its timestamp is at most `created` plus the
 * margin). A device whose own clock is behind gets the service's time to sign again with, as for
 * `clock_skew`; within the same seconds, a short wait. When Thinger gives no usable `created` and
 * there is no recorded timestamp, nothing tells an immediate replay of the creating request from a
 * fresh one: the service's time is recorded as a fence and the device asked to come back a second
 * later, so every request signed before is refused for good and the device's next one gets in.
 * @throws AttestationError `replayed`.
 */
async function checkNotReplayed(device: string, timestamp: number, existing: ThingerDevice, record: Partial<ProvisioningRecord> | undefined, deps: ProvisionDeps): Promise<void> {
  const floor =
    typeof record?.lastTimestamp === 'number'
      ? record.lastTimestamp
      : existing.created === undefined
        ? undefined
        : Math.floor(existing.created / 1000) + AHEAD_TOLERANCE_SECONDS + CREATED_CLOCK_MARGIN_SECONDS
  const nowSeconds = Math.floor((deps.now ?? Date.now)() / 1000)
  const message = 'this request is not newer than the last one accepted for this device'
  if (floor === undefined) {
    const fence = Math.max(nowSeconds, timestamp)
    const fenced = { ...record, fleet: record?.fleet ?? deps.plan.record.fleet, lastTimestamp: fence }
    await ensureProperty(deps.thinger, device, PROVISIONING_PROPERTY, fenced, record !== undefined)
    const error = new AttestationError('replayed', message)
    error.retryAfterSeconds = fence - nowSeconds + 1
    throw error
  }
  if (timestamp > floor) return
  if (nowSeconds > floor) throw new AttestationError('replayed', message, { serverTime: nowSeconds })
  const error = new AttestationError('replayed', message)
  error.retryAfterSeconds = floor - nowSeconds + 1
  throw error
}

/** Whether the device signed a timestamp (device key or certificate key): such requests follow the replay rules. */
function isSigned(proof: Proof | undefined): proof is SignedProof {
  return proof !== undefined && proof.kind !== 'claim'
}

/** The timestamp a device signed, 0 for a claim. */
function signedTimestamp(proof: Proof | undefined): number {
  return isSigned(proof) ? proof.timestamp : 0
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

async function ensureDashboard(thinger: ThingerPort, device: string, dashboard: NonNullable<ProvisioningPlan['dashboard']>): Promise<void> {
  await ensure(
    () => thinger.cloneDashboard(dashboard.template, { dashboard: dashboard.dashboard, name: dashboard.name, description: dashboard.description }),
    async () => {
      const existing = await thinger.getResource('dashboards', dashboard.dashboard)
      if (existing === undefined) return false
      // Only a dashboard cloned for this very device is adopted; its description says which device that was.
      if (existing.description !== dashboard.description) {
        throw new UpstreamError(`dashboard ${dashboard.dashboard} exists and was not cloned for device ${device}`)
      }
      return true
    },
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

/** A 400 or 409 (maybe a duplicate) or a lost answer: the create may or may not have happened. 429 said it did not. */
function isAmbiguousCreateFailure(error: unknown): boolean {
  if (error instanceof ThingerHttpError) return error.status === 400 || error.status === 409 || (error.status !== 429 && isRetryableThingerError(error))
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
