import { DeviceStateError, UpstreamError, UpstreamUnavailableError } from '../errors.js'
import type { ThingerClient, ThingerDevice } from '../thinger/client.js'
import { isRetryableThingerError, ThingerHttpError } from '../thinger/errors.js'
import { generateCredential } from './credential.js'

const DEFAULT_MAX_ROUNDS = 3
const CREDENTIAL_DEVICE_TYPES = new Set(['Generic', 'MQTT'])

/** What a device receives once provisioned. */
export interface ProvisionResult {
  username: string
  device: string
  credential: string
  host: string
  /** True when this request created the device, false when it existed and its credential was replaced. */
  created: boolean
}

export interface ProvisionDeps {
  thinger: Pick<ThingerClient, 'getDevice' | 'createDevice' | 'updateDevice'>
  username: string
  host: string
  newCredential?: () => string
  maxRounds?: number
}

/**
 * Makes sure `device` exists on Thinger.io as a `Generic` device whose credential is a fresh one,
 * and returns that credential. A new device costs one Thinger call (create); an existing one three
 * (create refused, read, update). "Already exists" is decided by reading the device, never from the
 * wording of Thinger's 400.
 * @throws DeviceStateError when the device exists but is disabled or cannot log in with a credential;
 *   UpstreamError when Thinger refuses for good; UpstreamUnavailableError when it cannot be reached.
 */
export async function provisionDevice(device: string, deps: ProvisionDeps): Promise<ProvisionResult> {
  const { thinger, username, host } = deps
  const credential = (deps.newCredential ?? generateCredential)()
  const maxRounds = deps.maxRounds ?? DEFAULT_MAX_ROUNDS
  let lastError: unknown
  for (let round = 0; round < maxRounds; round++) {
    try {
      await thinger.createDevice({ device, type: 'Generic', credentials: credential })
      return { username, device, credential, host, created: true }
    } catch (error) {
      const refused = error instanceof ThingerHttpError && error.status === 400
      // A 429 says the create was not done and more calls now would only add load: come back later.
      const throttled = error instanceof ThingerHttpError && error.status === 429
      if (throttled || (!refused && !isRetryableThingerError(error))) throw toUpstreamError(error)
      lastError = error
    }
    // The create was refused (duplicate, or invalid, or a limit) or its answer was lost: the state decides.
    const existing = await call(() => thinger.getDevice(device))
    if (existing !== undefined) {
      checkReplaceable(existing)
      if (await call(() => thinger.updateDevice(device, { credentials: credential }))) {
        return { username, device, credential, host, created: false }
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

function checkReplaceable(existing: ThingerDevice): void {
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
}

async function call<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation()
  } catch (error) {
    throw toUpstreamError(error)
  }
}

function toUpstreamError(error: unknown): Error {
  if (error instanceof UpstreamError || error instanceof UpstreamUnavailableError || error instanceof DeviceStateError) return error
  if (isRetryableThingerError(error)) {
    const retryAfterSeconds = error instanceof ThingerHttpError ? error.retryAfterSeconds : undefined
    return new UpstreamUnavailableError((error as Error).message, retryAfterSeconds === undefined ? { cause: error } : { cause: error, retryAfterSeconds })
  }
  if (error instanceof ThingerHttpError) {
    return new UpstreamError(`${error.message}: ${error.upstreamMessage ?? 'no message'}`, { cause: error })
  }
  return error instanceof Error ? error : new Error(String(error))
}
