import { pathToFileURL } from 'node:url'
import { Worker } from 'node:worker_threads'
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda'
import type { ProvisionHandler } from '../../functions/provision.js'
import { deriveDeviceKey, signRequest } from '../../lib/attestation/keys.js'
import type { ContainerMessage, ContainerWorkerData } from './container-worker.js'

const LAMBDA_TIMEOUT_MS = 10_000
// API Gateway's own answer when a route is throttled: no Retry-After, no protocol body.
const THROTTLED_ANSWER: GatewayAnswer = { statusCode: 429, headers: { 'content-type': 'application/json' }, body: '{"message":"Too Many Requests"}' }

/** What the device receives from API Gateway. */
export interface GatewayAnswer {
  statusCode: number
  headers: Record<string, string>
  body: string
}

let requestCount = 0

/**
 * Imports the bundled handler as a new module instance: one "container", with its own SSM cache.
 * The settings must already be in `process.env`, which the handler reads at import.
 */
export async function loadContainer(bundlePath: string, containerId: string): Promise<ProvisionHandler> {
  const module = (await import(`${pathToFileURL(bundlePath).href}?container=${containerId}`)) as { handler: ProvisionHandler }
  return module.handler
}

/** One container as the pool drives it: a handler in this process, or one in a thread of its own. */
export interface ContainerHandle {
  invoke(body: string): Promise<GatewayAnswer>
  close?(): Promise<void>
}

/**
 * A container in a worker thread of its own (`scripts/bench/container-worker.ts`, built to
 * `workerScript`): its own event loop, module instance and AWS SDK, as each Lambda container is
 * its own process. The handler's log lines go to `onLog`. Resolves once the bundle is imported.
 */
export function startContainerWorker(workerScript: string, bundlePath: string, options: { onLog: (line: string) => void }): Promise<ContainerHandle> {
  const worker = new Worker(workerScript, {
    workerData: { bundlePath } satisfies ContainerWorkerData,
    // Plain JavaScript: the bench's TypeScript loader would cost every container a start of its own.
    execArgv: [],
    stdout: true,
    stderr: true,
  })
  const pending = new Map<number, (answer: GatewayAnswer) => void>()
  let nextId = 0
  let failure: Error | undefined
  return new Promise((resolve, reject) => {
    const fail = (error: Error): void => {
      failure = error
      reject(error)
      for (const [, settle] of pending) settle({ statusCode: 502, headers: {}, body: `{"message":"${error.message}"}` })
      pending.clear()
    }
    worker.on('error', fail)
    worker.on('exit', (code) => {
      if (failure === undefined && pending.size > 0) fail(new Error(`a storm container exited with code ${code}`))
    })
    worker.on('message', (message: ContainerMessage) => {
      if (message.type === 'ready') {
        resolve({
          invoke: (body) => {
            if (failure !== undefined) return Promise.reject(failure)
            const id = ++nextId
            return new Promise((settle) => {
              pending.set(id, settle)
              worker.postMessage({ id, body })
            })
          },
          close: async () => {
            await worker.terminate()
          },
        })
      } else if (message.type === 'answer') {
        for (const line of message.log) options.onLog(line)
        pending.get(message.id)?.(message.answer)
        pending.delete(message.id)
      } else {
        fail(new Error(message.message))
      }
    })
  })
}

/** Device IDs `prefix_000001` …, inside the default DEVICE_ID_PATTERN. */
export function deviceIds(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, index) => `${prefix}_${String(index + 1).padStart(6, '0')}`)
}

/** The body a device sends, signed with the key derived for it from the fleet key. */
export function signedRequestBody(fleetKey: Buffer, device: string, timestamp = Math.floor(Date.now() / 1000), version: 1 | 2 = 1): string {
  const signature = signRequest(deriveDeviceKey(fleetKey, device), device, timestamp, version)
  return JSON.stringify({ device, timestamp, signature, ...(version === 2 ? { version } : {}) })
}

/** Calls a handler as API Gateway's HTTP API (payload 2.0) would, with a Lambda deadline of 10 s. */
export async function invokeHandler(handler: ProvisionHandler, body: string): Promise<GatewayAnswer> {
  const result = (await handler(apiEvent(body), lambdaContext())) as APIGatewayProxyStructuredResultV2
  return {
    statusCode: result.statusCode ?? 200,
    headers: Object.fromEntries(Object.entries(result.headers ?? {}).map(([name, value]) => [name.toLowerCase(), String(value)])),
    body: result.body ?? '',
  }
}

/**
 * A function with a concurrency limit, as Lambda runs it: each container serves one request at a
 * time, a new container starts (a fresh import) when all are busy, and beyond the limit API
 * Gateway answers 429 without calling the function.
 */
export class LambdaPool {
  readonly #load: (containerId: string) => Promise<ContainerHandle>
  readonly #maxContainers: number
  readonly #maxStarting: number
  #starting = 0
  readonly #waitingToStart: Array<() => void> = []
  readonly #idle: Container[] = []
  readonly #containers: Container[] = []
  #busy = 0
  invocations = 0
  throttled = 0
  peakBusy = 0
  /** Invocations that ran longer than the Lambda timeout: a deployed function would have been stopped. */
  overTimeout = 0
  readonly durationsMs: number[] = []
  /** Each container's start (its turn to start, then the import of the bundle), before its first invocation. */
  readonly initDurationsMs: number[] = []

  /**
   * `maxStarting` bounds the containers that start at once. In Lambda every container starts on a
   * CPU of its own; on a machine of two, a hundred imports at once would each take the time of a
   * hundred, and none would serve before all were done. Started a few at a time, each start takes
   * about what it takes alone, and the first containers serve while the others start.
   */
  constructor(load: (containerId: string) => Promise<ContainerHandle>, maxContainers: number, maxStarting = Number.POSITIVE_INFINITY) {
    this.#load = load
    this.#maxContainers = maxContainers
    this.#maxStarting = maxStarting
  }

  /** How many containers were started (each one a cold start). */
  get containers(): number {
    return this.#containers.length
  }

  /** Containers that served requests but never answered 2xx. */
  get containersWithoutSuccess(): number {
    return this.#containers.filter((container) => container.invocations > 0 && container.successes === 0).length
  }

  /** Stops every container (a worker thread's SSM cache timers would keep the process alive). */
  async close(): Promise<void> {
    await Promise.all(this.#containers.map((container) => container.handle?.close?.()))
  }

  async invoke(body: string): Promise<GatewayAnswer> {
    let container = this.#idle.pop()
    if (container === undefined && this.#containers.length >= this.#maxContainers) {
      this.throttled++
      return THROTTLED_ANSWER
    }
    this.#busy++
    this.peakBusy = Math.max(this.peakBusy, this.#busy)
    try {
      const started = performance.now()
      if (container === undefined) {
        const id = `pool-${this.#containers.length + 1}`
        // Counted before the import, so concurrent requests see the slot taken.
        const starting: Container = { handle: undefined, invocations: 0, successes: 0 }
        this.#containers.push(starting)
        if (this.#starting >= this.#maxStarting) await new Promise<void>((resolve) => this.#waitingToStart.push(resolve))
        this.#starting++
        try {
          starting.handle = await this.#load(id)
        } finally {
          this.#starting--
          this.#waitingToStart.shift()?.()
        }
        this.initDurationsMs.push(performance.now() - started)
        container = starting
      }
      this.invocations++
      container.invocations++
      const invoked = performance.now()
      const answer = await (container.handle as ContainerHandle).invoke(body)
      if (answer.statusCode >= 200 && answer.statusCode < 300) container.successes++
      this.durationsMs.push(performance.now() - started)
      // Lambda's timeout counts the invocation; the container's start has a limit of its own.
      if (performance.now() - invoked > LAMBDA_TIMEOUT_MS) this.overTimeout++
      return answer
    } finally {
      this.#busy--
      if (container !== undefined) this.#idle.push(container)
    }
  }
}

interface Container {
  handle: ContainerHandle | undefined
  invocations: number
  successes: number
}

function apiEvent(body: string): APIGatewayProxyEventV2 {
  const requestId = `bench-api-${++requestCount}`
  const now = Date.now()
  return {
    version: '2.0',
    routeKey: 'POST /v1/provision',
    rawPath: '/v1/provision',
    rawQueryString: '',
    headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) },
    body,
    isBase64Encoded: false,
    requestContext: {
      accountId: '000000000000',
      apiId: 'bench',
      domainName: 'bench.execute-api.us-east-1.amazonaws.com',
      domainPrefix: 'bench',
      requestId,
      routeKey: 'POST /v1/provision',
      stage: '$default',
      time: new Date(now).toUTCString(),
      timeEpoch: now,
      http: { method: 'POST', path: '/v1/provision', protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'thinger-provisioner-bench' },
    },
  }
}

function lambdaContext(): Context {
  const deadlineMs = Date.now() + LAMBDA_TIMEOUT_MS
  return {
    callbackWaitsForEmptyEventLoop: false,
    awsRequestId: `bench-lambda-${requestCount}`,
    functionName: 'thinger-provisioner-bench-provision',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:thinger-provisioner-bench-provision',
    memoryLimitInMB: '256',
    logGroupName: '/aws/lambda/thinger-provisioner-bench-provision',
    logStreamName: 'bench',
    getRemainingTimeInMillis: () => Math.max(0, deadlineMs - Date.now()),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  }
}
