import { cpus } from 'node:os'
import type { FaultRule } from '../../local/thinger-emulator.js'
import { deviceIds, type GatewayAnswer, LambdaPool, signedRequestBody, startContainerWorker } from './lambda.js'
import type { BenchStack } from './stack.js'
import { type LatencySummary, mean, percentile, summarizeLatency } from './stats.js'

// clock_skew, then replayed: a clock far behind can meet both.
const MAX_RESIGNS = 2

// The device side's backoff on a transient failure: full jitter over min(cap, base * 2^(retry-1)),
// plus Retry-After when the answer has one (tprov_retry_delay_ms in the C core). The ESP32 sketch
// waits 5 s to 15 min, the Linux client 1 s to 60 s (docs/firmware.md); 1 s to 30 s keeps a run short.
const RETRY_BASE_MS = 1000
const RETRY_CAP_MS = 30_000
const THINGER_RETRY_AFTER_SECONDS = 1
// Containers that start at once, per CPU of this machine (lambda.ts, LambdaPool).
const STARTS_PER_CPU = 2

/** The share of all Thinger calls that each fault answers. */
export interface FaultShares {
  status503: number
  status429: number
  reset: number
}

export interface BootStormOptions {
  bundlePath: string
  /** The built `scripts/bench/container-worker.ts` (bundle.ts, buildContainerWorker). */
  containerWorkerPath: string
  devices: number
  concurrency: number
  thingerLatencyMs: number
  /** Factor applied to every wait on the device side (1 is real time). */
  timeScale: number
  maxAttempts: number
  faults: FaultShares
}

/** How one device's provisioning ended. */
interface DeviceOutcome {
  device: string
  attempts: number
  provisioned: boolean
  /** The credential of the last 2xx answer, the one the device keeps. */
  credential?: string
  failure?: string
  finishedAfterMs: number
}

export interface BootStormResult {
  devices: number
  concurrency: number
  thingerLatencyMs: number
  timeScale: number
  maxAttempts: number
  retryBaseMs: number
  retryCapMs: number
  faultRules: FaultRule[]
  requestedFaultShares: FaultShares
  observedFaultShares: FaultShares
  provisioned: number
  failed: number
  failures: Record<string, number>
  duplicates: number
  /** Devices that got a 2xx answer but do not exist on Thinger.io. */
  lost: number
  badCredentials: number
  /** Devices that exist on Thinger.io although the device never got a 2xx answer. */
  orphans: number
  thingerCalls: number
  thingerCallsByStatus: Record<string, number>
  thingerCallsPerDevice: number
  handlerInvocations: number
  throttledAnswers: number
  answersByStatus: Record<string, number>
  /** The handler's own log lines for refused or failed requests, counted by status, code and detail. */
  handlerErrors: Record<string, number>
  containersStarted: number
  /** Containers that served requests and never answered 2xx: each one kept failing for the whole storm. */
  containersWithoutSuccess: number
  peakConcurrency: number
  invocationsOverLambdaTimeout: number
  ssmCalls: number
  ssmCallsByStatus: Record<string, number>
  invocationLatency: LatencySummary
  /** The containers' starts: a worker thread and the import of the bundle. */
  containerStartLatency: LatencySummary
  containersStartingAtOnce: number
  attemptsPerDevice: { mean: number; p50: number; p99: number; max: number }
  provisionedAfterMs: { p50: number; p90: number; p99: number; max: number }
  timeToProvisionAllMs: number
  correct: boolean
}

/**
 * Converts overall shares into the emulator's rules. Rules are tried in order and one that loses
 * its draw passes the call on, so each rule's probability is its share of the calls still left.
 */
export function faultRulesFor(shares: FaultShares): FaultRule[] {
  const rules: FaultRule[] = []
  let remaining = 1
  const add = (share: number, rule: Omit<FaultRule, 'probability'>): void => {
    if (share <= 0) return
    rules.push({ ...rule, probability: Math.min(1, share / remaining) })
    remaining -= share
  }
  add(shares.status503, { action: 'status', status: 503 })
  add(shares.status429, { action: 'status', status: 429, retryAfterSeconds: THINGER_RETRY_AFTER_SECONDS })
  add(shares.reset, { action: 'reset' })
  return rules
}

/**
 * Boot storm: every device asks at once, through a function limited to `concurrency` containers,
 * while Thinger.io answers some calls 503 or 429 or drops the connection. Devices retry as the
 * firmware does. Then the emulator's state is checked: every provisioned device exists once and
 * logs in with the last credential it received.
 */
export async function runBootStorm(stack: BenchStack, options: BootStormOptions): Promise<BootStormResult> {
  const { thinger, ssm } = stack
  thinger.reset()
  ssm.clearCalls()
  thinger.setLatencyMs(options.thingerLatencyMs)
  const faultRules = faultRulesFor(options.faults)
  thinger.setFaults(faultRules)

  const handlerErrors: Record<string, number> = {}
  // Each container is a worker thread, as each Lambda container is a process of its own: module
  // instances on one event loop would wait for each other's cold starts (ten seconds and more for
  // a hundred copies of the bundled AWS SDK), and their SSM requests would time out in the harness.
  const pool = new LambdaPool(
    () => startContainerWorker(options.containerWorkerPath, options.bundlePath, { onLog: (line) => countHandlerError(line, handlerErrors) }),
    options.concurrency,
    STARTS_PER_CPU * cpus().length,
  )
  const answerStatuses: number[] = []
  const invoke = async (body: string): Promise<GatewayAnswer> => {
    const answer = await pool.invoke(body)
    answerStatuses.push(answer.statusCode)
    return answer
  }

  const started = performance.now()
  let outcomes: DeviceOutcome[]
  try {
    outcomes = await Promise.all(
      deviceIds('storm', options.devices).map((device) => provisionLikeFirmware(device, stack.fleetKey, invoke, options, started)),
    )
  } finally {
    await pool.close()
    thinger.setFaults([])
  }

  const calls = thinger.calls()
  const thingerCallsByStatus = countBy(calls, (call) => (call.status === null ? 'reset' : String(call.status)))
  const ssmCalls = ssm.calls()
  const share = (key: string): number => (thingerCallsByStatus[key] ?? 0) / Math.max(1, calls.length)

  const stored = thinger.devices(stack.username).map((view) => view.device)
  const storedIds = new Set(stored)
  const provisioned = outcomes.filter((outcome) => outcome.provisioned)
  const provisionedIds = new Set(provisioned.map((outcome) => outcome.device))
  const failures = countBy(outcomes.filter((outcome) => outcome.failure !== undefined), (outcome) => outcome.failure as string)
  const lost = provisioned.filter((outcome) => !storedIds.has(outcome.device)).length
  const badCredentials = provisioned.filter(
    (outcome) => storedIds.has(outcome.device) && !thinger.checkLogin(stack.username, outcome.device, outcome.credential ?? '').ok,
  ).length
  const duplicates = stored.length - storedIds.size
  const failed = outcomes.length - provisioned.length
  const attempts = outcomes.map((outcome) => outcome.attempts).sort((a, b) => a - b)
  const finishedMs = provisioned.map((outcome) => outcome.finishedAfterMs).sort((a, b) => a - b)

  return {
    devices: options.devices,
    concurrency: options.concurrency,
    thingerLatencyMs: options.thingerLatencyMs,
    timeScale: options.timeScale,
    maxAttempts: options.maxAttempts,
    retryBaseMs: RETRY_BASE_MS,
    retryCapMs: RETRY_CAP_MS,
    faultRules,
    requestedFaultShares: options.faults,
    observedFaultShares: { status503: share('503'), status429: share('429'), reset: share('reset') },
    provisioned: provisioned.length,
    failed,
    failures,
    duplicates,
    lost,
    badCredentials,
    orphans: [...storedIds].filter((device) => !provisionedIds.has(device)).length,
    thingerCalls: calls.length,
    thingerCallsByStatus,
    thingerCallsPerDevice: calls.length / options.devices,
    handlerInvocations: pool.invocations,
    throttledAnswers: pool.throttled,
    answersByStatus: countBy(answerStatuses, String),
    handlerErrors,
    containersStarted: pool.containers,
    containersWithoutSuccess: pool.containersWithoutSuccess,
    peakConcurrency: pool.peakBusy,
    invocationsOverLambdaTimeout: pool.overTimeout,
    ssmCalls: ssmCalls.length,
    ssmCallsByStatus: countBy(ssmCalls, (call) => (call.status === null ? 'no answer' : String(call.status))),
    invocationLatency: summarizeLatency(pool.durationsMs),
    containerStartLatency: summarizeLatency(pool.initDurationsMs),
    containersStartingAtOnce: STARTS_PER_CPU * cpus().length,
    attemptsPerDevice: { mean: mean(attempts), p50: percentile(attempts, 50), p99: percentile(attempts, 99), max: attempts.at(-1) ?? 0 },
    provisionedAfterMs: {
      p50: percentile(finishedMs, 50),
      p90: percentile(finishedMs, 90),
      p99: percentile(finishedMs, 99),
      max: finishedMs.at(-1) ?? Number.NaN,
    },
    timeToProvisionAllMs: finishedMs.at(-1) ?? Number.NaN,
    correct: failed === 0 && duplicates === 0 && lost === 0 && badCredentials === 0,
  }
}

/** One device, following docs/protocol.md and the C core's next-step rules. */
async function provisionLikeFirmware(
  device: string,
  fleetKey: Buffer,
  invoke: (body: string) => Promise<GatewayAnswer>,
  options: BootStormOptions,
  stormStarted: number,
): Promise<DeviceOutcome> {
  let clockOffsetSeconds = 0
  let resigned = 0
  let retries = 0
  const finish = (attempts: number, fields: Partial<DeviceOutcome>): DeviceOutcome => ({
    device,
    attempts,
    provisioned: false,
    finishedAfterMs: performance.now() - stormStarted,
    ...fields,
  })
  for (let attempt = 1; attempt <= options.maxAttempts; attempt++) {
    const answer = await invoke(signedRequestBody(fleetKey, device, Math.floor(Date.now() / 1000) + clockOffsetSeconds))
    const body = parseBody(answer.body)
    if (answer.statusCode === 200 || answer.statusCode === 201) {
      const credential = body?.credential
      if (typeof credential !== 'string') return finish(attempt, { failure: `${answer.statusCode} without a credential` })
      return finish(attempt, { provisioned: true, credential })
    }
    const error = body?.error as { code?: unknown; retryAfter?: unknown; serverTime?: unknown } | undefined
    if ((error?.code === 'clock_skew' || error?.code === 'replayed') && typeof error.serverTime === 'number' && resigned < MAX_RESIGNS) {
      // Sign again, at once, with the server's clock (docs/firmware.md): twice at most.
      clockOffsetSeconds = error.serverTime - Math.floor(Date.now() / 1000)
      resigned++
      continue
    }
    const retryAfterSeconds = readRetryAfter(answer, error?.retryAfter)
    if (answer.statusCode === 429 || answer.statusCode === 503 || retryAfterSeconds !== undefined) {
      retries++
      await sleep(retryDelayMs(retries, retryAfterSeconds) * options.timeScale)
      continue
    }
    return finish(attempt, { failure: `${answer.statusCode} ${typeof error?.code === 'string' ? error.code : 'without a protocol error'}` })
  }
  return finish(options.maxAttempts, { failure: `gave up after ${options.maxAttempts} attempts` })
}

function countBy<T>(items: readonly T[], keyOf: (item: T) => string): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const item of items) {
    const key = keyOf(item)
    counts[key] = (counts[key] ?? 0) + 1
  }
  return counts
}

function countHandlerError(line: string, counts: Record<string, number>): void {
  let record: { message?: unknown; outcome?: unknown; statusCode?: unknown; code?: unknown; detail?: unknown; errorName?: unknown }
  try {
    record = JSON.parse(line) as typeof record
  } catch {
    return
  }
  if (record.message !== 'provision' || (record.outcome !== 'failed' && record.outcome !== 'refused')) return
  const key = `${String(record.statusCode)} ${String(record.code)}: ${String(record.detail ?? record.errorName ?? 'no detail')}`
  counts[key] = (counts[key] ?? 0) + 1
}

function retryDelayMs(retry: number, retryAfterSeconds: number | undefined): number {
  const ceilingMs = Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** (retry - 1))
  return Math.random() * ceilingMs + (retryAfterSeconds ?? 0) * 1000
}

function readRetryAfter(answer: GatewayAnswer, fromBody: unknown): number | undefined {
  const header = answer.headers['retry-after']
  if (header !== undefined && /^\d+$/.test(header)) return Number(header)
  return typeof fromBody === 'number' && Number.isInteger(fromBody) && fromBody >= 0 ? fromBody : undefined
}

function parseBody(text: string): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(text)
    return typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
