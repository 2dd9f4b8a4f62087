import { CLONE_DASHBOARD_ACTION, DEVICE_ACTIONS, RESOURCE_ACTIONS } from './actions.js'
import { isRetryableThingerError, ThingerHttpError, ThingerNetworkError, ThingerTimeoutError } from './errors.js'

const DEFAULT_TIMEOUT_MS = 5000
const DEFAULT_RETRY_LIMIT = 2
const DEFAULT_RETRY_BASE_DELAY_MS = 100
const DEFAULT_RETRY_MAX_DELAY_MS = 1000
const DEFAULT_RETRY_MAX_RETRY_AFTER_MS = 1000
const MAX_UPSTREAM_MESSAGE_CHARS = 200

/** A device as Thinger.io describes it (the fields this service reads). */
export interface ThingerDevice {
  device: string
  type: string
  enabled?: boolean
  name?: string
  description?: string
  asset_type?: string
  asset_group?: string
  product?: string
  /**
   * Creation time, epoch milliseconds; `undefined` when Thinger did not say or said it in a form
   * that cannot be trusted (see {@link parseCreated}).
   */
  created?: number
}

/** Body of `POST /v1/users/{user}/devices` for a device that logs in with a credential. */
export interface CreateDeviceBody {
  device: string
  type: 'Generic' | 'MQTT'
  credentials: string
  name?: string
  description?: string
  enabled?: boolean
  asset_type?: string
  asset_group?: string
  product?: string
}

/** Body of `PUT /v1/users/{user}/devices/{device}`. */
export interface UpdateDeviceBody {
  credentials?: string
  name?: string
  description?: string
  enabled?: boolean
  asset_type?: string
  asset_group?: string
  product?: string
}

/** Account-level resources the profiles use, by their REST collection name. */
export type ResourceKind = 'types' | 'groups' | 'products' | 'buckets' | 'dashboards' | 'projects'

/** Retries of idempotent calls: full-jitter exponential backoff, `Retry-After` honoured. */
export interface RetryOptions {
  limit: number
  baseDelayMs: number
  maxDelayMs: number
  /** A longer `Retry-After` is not waited for here: the device is told to come back instead. */
  maxRetryAfterMs: number
}

/** One finished HTTP exchange, reported for metrics and tests. */
export interface ThingerCallRecord {
  method: string
  operation: string
  status: number | 'network' | 'timeout'
  durationMs: number
}

export interface ThingerClientOptions {
  baseUrl: string
  username: string
  token: string
  /** Longest wait for one call. */
  timeoutMs?: number
  /** Epoch milliseconds after which no call may start and no retry may wait; the Lambda's own deadline. */
  deadlineMs?: number
  retry?: Partial<RetryOptions>
  fetch?: typeof globalThis.fetch
  random?: () => number
  sleep?: (ms: number) => Promise<void>
  now?: () => number
  onCall?: (record: ThingerCallRecord) => void
}

/**
 * A typed client for the few Thinger.io REST endpoints this service uses. Reads and updates are
 * retried on 429, 5xx, network errors and timeouts; a create never is, because a lost answer
 * does not say whether the device now exists (the caller checks the state instead).
 */
export class ThingerClient {
  readonly #options: Required<Omit<ThingerClientOptions, 'retry' | 'onCall' | 'deadlineMs'>> & {
    retry: RetryOptions
    deadlineMs: number
    onCall: ((record: ThingerCallRecord) => void) | undefined
  }

  constructor(options: ThingerClientOptions) {
    this.#options = {
      baseUrl: options.baseUrl.replace(/\/+$/, ''),
      username: options.username,
      token: options.token,
      timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      deadlineMs: options.deadlineMs ?? Number.POSITIVE_INFINITY,
      retry: {
        limit: options.retry?.limit ?? DEFAULT_RETRY_LIMIT,
        baseDelayMs: options.retry?.baseDelayMs ?? DEFAULT_RETRY_BASE_DELAY_MS,
        maxDelayMs: options.retry?.maxDelayMs ?? DEFAULT_RETRY_MAX_DELAY_MS,
        maxRetryAfterMs: options.retry?.maxRetryAfterMs ?? DEFAULT_RETRY_MAX_RETRY_AFTER_MS,
      },
      fetch: options.fetch ?? globalThis.fetch,
      random: options.random ?? Math.random,
      sleep: options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms))),
      now: options.now ?? Date.now,
      onCall: options.onCall,
    }
  }

  /**
   * Reads one device.
   * @returns the device, or `undefined` when Thinger answers 404.
   * @throws ThingerHttpError, ThingerNetworkError or ThingerTimeoutError after retries.
   */
  async getDevice(device: string): Promise<ThingerDevice | undefined> {
    const read = await this.#read<Omit<ThingerDevice, 'created'> & { created?: unknown }>(DEVICE_ACTIONS.read, this.#devicePath(device))
    if (read === undefined) return undefined
    const { created, ...rest } = read
    const createdMs = parseCreated(created)
    return createdMs === undefined ? rest : { ...rest, created: createdMs }
  }

  /**
   * Creates a device. Called once only: see the class comment.
   * @throws ThingerHttpError (400 or 409 also when the device already exists), ThingerNetworkError, ThingerTimeoutError.
   */
  async createDevice(body: CreateDeviceBody): Promise<void> {
    const response = await this.#call('POST', DEVICE_ACTIONS.create, this.#devicesPath(), body)
    await response.body?.cancel()
  }

  /**
   * Updates a device, for example to replace its credential.
   * @returns `false` when Thinger answers 404 (no such device).
   * @throws ThingerHttpError, ThingerNetworkError or ThingerTimeoutError after retries.
   */
  async updateDevice(device: string, body: UpdateDeviceBody): Promise<boolean> {
    const response = await this.#withRetries(() => this.#call('PUT', DEVICE_ACTIONS.update, this.#devicePath(device), body, [404]))
    await response.body?.cancel()
    return response.status !== 404
  }

  /**
   * Deletes a device (and, on Thinger.io, its properties).
   * @returns `false` when Thinger answers 404 (no such device).
   */
  async deleteDevice(device: string): Promise<boolean> {
    const response = await this.#withRetries(() => this.#call('DELETE', DEVICE_ACTIONS.remove, this.#devicePath(device), undefined, [404]))
    await response.body?.cancel()
    return response.status !== 404
  }

  /**
   * Reads one account-level resource (asset type, asset group, product, bucket, dashboard, project).
   * @returns it, or `undefined` when Thinger answers 404.
   */
  async getResource(kind: ResourceKind, id: string): Promise<Record<string, unknown> | undefined> {
    return this.#read<Record<string, unknown>>(RESOURCE_ACTIONS[kind].read, `${this.#userPath()}/${kind}/${encodeURIComponent(id)}`)
  }

  /** Creates an account-level resource. Called once only (a 400 may mean it exists: read it). */
  async createResource(kind: ResourceKind, body: Record<string, unknown>): Promise<void> {
    const response = await this.#call('POST', RESOURCE_ACTIONS[kind].create, `${this.#userPath()}/${kind}`, body)
    await response.body?.cancel()
  }

  /** Clones a dashboard into a new one. Called once only (a 400 may mean the copy exists: read it). */
  async cloneDashboard(template: string, body: { dashboard: string; name: string; description?: string }): Promise<void> {
    const response = await this.#call('POST', CLONE_DASHBOARD_ACTION, `${this.#userPath()}/dashboards/${encodeURIComponent(template)}/clone`, body)
    await response.body?.cancel()
  }

  /**
   * Reads a device property.
   * @returns `{ value }`, or `undefined` when the device or the property does not exist.
   */
  async getDeviceProperty(device: string, property: string): Promise<{ value: unknown } | undefined> {
    return this.#read<{ value: unknown }>(DEVICE_ACTIONS.readProperty, this.#propertyPath(device, property))
  }

  /** Creates a device property. Called once only (a 400 may mean it exists: update it). */
  async createDeviceProperty(device: string, property: string, value: unknown): Promise<void> {
    const response = await this.#call('POST', DEVICE_ACTIONS.createProperty, this.#propertiesPath(device), { property, value })
    await response.body?.cancel()
  }

  /**
   * Replaces a device property's value.
   * @returns `false` when Thinger answers 404.
   */
  async updateDeviceProperty(device: string, property: string, value: unknown): Promise<boolean> {
    const response = await this.#withRetries(() => this.#call('PUT', DEVICE_ACTIONS.updateProperty, this.#propertyPath(device, property), { value }, [404]))
    await response.body?.cancel()
    return response.status !== 404
  }

  /** Sets the projects a device belongs to (replacing the list, so repeating it is harmless). */
  async setDeviceProjects(device: string, projects: string[]): Promise<void> {
    const body = projects.map((project) => `${this.#options.username}@${project}`)
    const response = await this.#withRetries(() => this.#call('PUT', DEVICE_ACTIONS.setProjects, `${this.#devicePath(device)}/projects`, body))
    await response.body?.cancel()
  }

  /** A retried GET whose 404 means "no such thing". */
  async #read<T>(operation: string, path: string): Promise<T | undefined> {
    const response = await this.#withRetries(() => this.#call('GET', operation, path, undefined, [404]))
    if (response.status === 404) return undefined
    try {
      return (await response.json()) as T
    } catch (error) {
      throw new ThingerHttpError('GET', operation, 502, undefined, `unreadable body: ${(error as Error).message}`)
    }
  }

  #userPath(version: 'v1' | 'v3' = 'v1'): string {
    return `/${version}/users/${encodeURIComponent(this.#options.username)}`
  }

  #propertiesPath(device: string): string {
    return `${this.#userPath('v3')}/devices/${encodeURIComponent(device)}/properties`
  }

  #propertyPath(device: string, property: string): string {
    return `${this.#propertiesPath(device)}/${encodeURIComponent(property)}`
  }

  #devicesPath(): string {
    return `${this.#userPath()}/devices`
  }

  #devicePath(device: string): string {
    return `${this.#devicesPath()}/${encodeURIComponent(device)}`
  }

  async #call(method: string, operation: string, path: string, body?: unknown, acceptedStatuses: number[] = []): Promise<Response> {
    const { now, deadlineMs, timeoutMs, token } = this.#options
    const budgetMs = Math.min(timeoutMs, deadlineMs - now())
    if (budgetMs <= 0) throw new ThingerTimeoutError(method, operation, 0)
    const started = now()
    let response: Response
    try {
      response = await this.#options.fetch(`${this.#options.baseUrl}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(budgetMs),
      })
    } catch (error) {
      const timedOut = error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')
      this.#report(method, operation, timedOut ? 'timeout' : 'network', started)
      if (timedOut) throw new ThingerTimeoutError(method, operation, budgetMs)
      throw new ThingerNetworkError(method, operation, error)
    }
    this.#report(method, operation, response.status, started)
    if (response.ok || acceptedStatuses.includes(response.status)) return response
    const upstreamMessage = await readErrorMessage(response)
    throw new ThingerHttpError(method, operation, response.status, parseRetryAfter(response.headers.get('retry-after'), now()), upstreamMessage)
  }

  async #withRetries(call: () => Promise<Response>): Promise<Response> {
    const { retry, random, sleep, now, deadlineMs } = this.#options
    for (let attempt = 0; ; attempt++) {
      try {
        return await call()
      } catch (error) {
        if (attempt >= retry.limit || !isRetryableThingerError(error)) throw error
        const backoffMs = random() * Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** attempt)
        const retryAfterMs = error instanceof ThingerHttpError && error.retryAfterSeconds !== undefined ? error.retryAfterSeconds * 1000 : 0
        // A function waiting out a long Retry-After holds concurrency a boot storm needs; the device waits instead.
        if (retryAfterMs > retry.maxRetryAfterMs) throw error
        const waitMs = Math.max(backoffMs, retryAfterMs)
        // Waiting past the deadline would only turn a clear 503 into a Lambda timeout.
        if (now() + waitMs >= deadlineMs) throw error
        await sleep(waitMs)
      }
    }
  }

  #report(method: string, operation: string, status: ThingerCallRecord['status'], started: number): void {
    this.#options.onCall?.({ method, operation, status, durationMs: this.#options.now() - started })
  }
}

async function readErrorMessage(response: Response): Promise<string | undefined> {
  try {
    const body = (await response.json()) as { error?: { message?: unknown } }
    const message = body?.error?.message
    return typeof message === 'string' ? message.slice(0, MAX_UPSTREAM_MESSAGE_CHARS) : undefined
  } catch {
    return undefined
  }
}

// Epoch milliseconds before 1973: a number this small is not milliseconds (seconds, perhaps),
// and trusting it would make every device look ancient.
const MIN_CREATED_MS = 1e11

/**
 * Reads a device's `created` as Thinger may send it: epoch milliseconds (list answers), or an ISO
 * 8601 string with a time zone. Anything else (absent, seconds, a date without a zone) is
 * `undefined`: callers must then behave safely without it.
 */
export function parseCreated(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= MIN_CREATED_MS ? value : undefined
  if (typeof value !== 'string' || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/.test(value)) return undefined
  const ms = Date.parse(value)
  return Number.isFinite(ms) && ms >= MIN_CREATED_MS ? ms : undefined
}

/** Reads `Retry-After` as delta-seconds or an HTTP date; `undefined` when absent or unreadable. */
export function parseRetryAfter(value: string | null, nowMs: number): number | undefined {
  if (value === null) return undefined
  const trimmed = value.trim()
  if (/^\d+$/.test(trimmed)) return Number(trimmed)
  // Only an IMF-fixdate such as "Wed, 21 Oct 2015 07:28:00 GMT": Date.parse would read "-1" as a past date.
  if (!/^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(trimmed)) return undefined
  const date = Date.parse(trimmed)
  if (Number.isNaN(date)) return undefined
  return Math.max(0, Math.ceil((date - nowMs) / 1000))
}
