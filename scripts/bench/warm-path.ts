import type { ProvisionHandler } from '../../functions/provision.js'
import { generateAnswerKey, parseAnswerKey, requestBodyDigest, signAnswer } from '../../lib/attestation/answer-signature.js'
import { deriveDeviceKey } from '../../lib/attestation/keys.js'
import { deriveHmacSealKey, sealAnswer } from '../../lib/attestation/seal.js'
import { generateCredential } from '../../lib/provisioning/credential.js'
import { LOCAL_THINGER_TOKEN } from '../../local/defaults.js'
import { deviceIds, invokeHandler, loadContainer, signedRequestBody } from './lambda.js'
import { muteProcessOutput } from './output.js'
import type { BenchStack } from './stack.js'
import { type LatencySummary, summarizeLatency } from './stats.js'

// The seconds after a device's creation in which re-provisioning it is refused (lib/provisioning/provision.ts), plus one.
const REPLAY_WINDOW_MS = 12_000

/** How the warm path is measured. */
export interface WarmPathOptions {
  bundlePath: string
  devices: number
  concurrency: number
  thingerLatencyMs: number
}

/** One series of requests through the warm container. */
export interface WarmPhase {
  name: string
  requests: number
  concurrency: number
  latency: LatencySummary
  /** Time each request spent outside its Thinger calls (sequential phases only): the handler's own work. */
  ownWork?: LatencySummary
  wallMs: number
  requestsPerSecond: number
  thingerCalls: number
  thingerCallsPerDevice: number
}

export interface WarmPathResult {
  thingerLatencyMs: number
  containerImportMs: number
  warmUpRequestMs: number
  newDevices: WarmPhase
  reprovisioned: WarmPhase
  newDevicesConcurrent: WarmPhase
  /** New devices asking for a sealed credential (protocol v2), one after the other: what sealing adds. */
  newDevicesSealed: WarmPhase
  /** What sealing one answer costs the handler alone (derive the device key and the seal key, encrypt). */
  sealingCrypto: { answers: number; p50Us: number; p99Us: number }
  /** What signing one answer costs the handler alone (hash the body, ECDSA P-256 with the key parsed once per container). */
  signingCrypto: { answers: number; p50Us: number; p99Us: number }
  /** A create call like the handler's, sent straight to the emulator: what one Thinger call costs here. */
  rawCreates: WarmPhase
  /** SSM requests over the whole section: the warm-up request's fetch and any refresh. */
  ssmCalls: number
  containers: 1
  sectionMs: number
}

/**
 * The warm path: one container (one import of the bundle), warmed by one request, then new
 * devices one after the other, the same devices again (re-provisioning), and new devices with
 * several requests in flight; last, create calls like the handler's sent straight to the emulator,
 * as the reference for what one Thinger call costs. Every request must succeed; anything else is an error.
 */
export async function runWarmPath(stack: BenchStack, options: WarmPathOptions): Promise<WarmPathResult> {
  const unmute = muteProcessOutput()
  try {
    return await measureWarmPath(stack, options)
  } finally {
    unmute()
  }
}

async function measureWarmPath(stack: BenchStack, options: WarmPathOptions): Promise<WarmPathResult> {
  const sectionStarted = performance.now()
  stack.thinger.setFaults([])
  stack.thinger.setLatencyMs(options.thingerLatencyMs)
  stack.ssm.clearCalls()

  const importStarted = performance.now()
  const handler = await loadContainer(options.bundlePath, 'warm-path')
  const containerImportMs = performance.now() - importStarted
  const warmUpStarted = performance.now()
  await provisionOnce(handler, stack.fleetKey, 'warm_up_device', 201)
  const warmUpRequestMs = performance.now() - warmUpStarted

  const provision = (expectedStatus: number) => (device: string) => provisionOnce(handler, stack.fleetKey, device, expectedStatus)
  const newIds = deviceIds('warm_new', options.devices)
  const newDevices = await runPhase(stack, 'new devices', newIds, 1, provision(201))
  // Replay protection refuses, for a few seconds after its creation, a device it could not tell
  // from a replay of its creating request: re-provision only devices older than that, as in life.
  await new Promise((resolve) => setTimeout(resolve, REPLAY_WINDOW_MS))
  const reprovisioned = await runPhase(stack, 're-provisioned devices', newIds, 1, provision(200))
  const newDevicesConcurrent = await runPhase(stack, 'new devices', deviceIds('warm_par', options.devices), options.concurrency, provision(201))
  const newDevicesSealed = await runPhase(stack, 'new devices, sealed (v2)', deviceIds('warm_seal', options.devices), 1, (device) =>
    provisionOnce(handler, stack.fleetKey, device, 201, 2),
  )
  const rawCreates = await runPhase(stack, 'one create call, no handler', deviceIds('warm_raw', options.devices), 1, (device) =>
    createDirectly(stack, device),
  )

  return {
    thingerLatencyMs: options.thingerLatencyMs,
    containerImportMs,
    warmUpRequestMs,
    newDevices,
    reprovisioned,
    newDevicesConcurrent,
    newDevicesSealed,
    sealingCrypto: measureSealingCrypto(stack.fleetKey, options.devices),
    signingCrypto: measureSigningCrypto(options.devices),
    rawCreates,
    ssmCalls: stack.ssm.calls().length,
    containers: 1,
    sectionMs: performance.now() - sectionStarted,
  }
}

/** The work sealing adds to a request, timed alone: the phases' own time is too noisy to show a few µs. */
function measureSealingCrypto(fleetKey: Buffer, answers: number): WarmPathResult['sealingCrypto'] {
  const timesMs: number[] = []
  const timestamp = Math.floor(Date.now() / 1000)
  for (let index = 0; index < answers; index++) {
    const device = `warm_seal_crypto_${index}`
    const started = performance.now()
    const sealKey = deriveHmacSealKey(deriveDeviceKey(fleetKey, device), device, timestamp)
    sealAnswer({ username: 'bench', device, credential: generateCredential(), host: 'backend.thinger.io', created: true }, sealKey)
    timesMs.push(performance.now() - started)
  }
  const summary = summarizeLatency(timesMs)
  return { answers, p50Us: summary.p50Ms * 1000, p99Us: summary.p99Ms * 1000 }
}

/** The work the answer signature adds to a request, timed alone as sealing is. */
function measureSigningCrypto(answers: number): WarmPathResult['signingCrypto'] {
  const answerKey = parseAnswerKey(generateAnswerKey(), 'bench')
  const timesMs: number[] = []
  for (let index = 0; index < answers; index++) {
    const device = `warm_sign_crypto_${index}`
    const body = JSON.stringify({ device, timestamp: 1764150000 + index, signature: 'x'.repeat(44), version: 2 })
    const answer = { username: 'bench', device, sealed: 'A'.repeat(52), host: 'backend.thinger.io', created: true }
    const started = performance.now()
    signAnswer(answer, requestBodyDigest(body), answerKey)
    timesMs.push(performance.now() - started)
  }
  const summary = summarizeLatency(timesMs)
  return { answers, p50Us: summary.p50Ms * 1000, p99Us: summary.p99Ms * 1000 }
}

/** Runs `request` for each device, `concurrency` at a time; sequential phases also measure the handler's own work. */
export async function runPhase(
  stack: BenchStack,
  name: string,
  devices: readonly string[],
  concurrency: number,
  request: (device: string) => Promise<void>,
): Promise<WarmPhase> {
  stack.thinger.clearCalls()
  // With one request at a time, every fetch in flight belongs to that request.
  const fetchTimer = concurrency === 1 ? timeFetchCalls() : undefined
  const latenciesMs: number[] = []
  const ownWorkMs: number[] = []
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < devices.length) {
      const device = devices[next++] as string
      fetchTimer?.takeMs()
      const started = performance.now()
      await request(device)
      const latencyMs = performance.now() - started
      latenciesMs.push(latencyMs)
      if (fetchTimer !== undefined) ownWorkMs.push(latencyMs - fetchTimer.takeMs())
    }
  }
  const started = performance.now()
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, devices.length) }, worker))
  } finally {
    fetchTimer?.restore()
  }
  const wallMs = performance.now() - started
  const thingerCalls = stack.thinger.calls().length
  return {
    name,
    requests: devices.length,
    concurrency,
    latency: summarizeLatency(latenciesMs),
    ...(fetchTimer === undefined ? {} : { ownWork: summarizeLatency(ownWorkMs) }),
    wallMs,
    requestsPerSecond: devices.length / (wallMs / 1000),
    thingerCalls,
    thingerCallsPerDevice: thingerCalls / devices.length,
  }
}

/**
 * Wraps the global `fetch`, which the handler's Thinger client calls, to add up the time spent
 * waiting for Thinger: from the call to the response headers (the bodies are a few bytes).
 */
function timeFetchCalls(): { takeMs(): number; restore(): void } {
  const original = globalThis.fetch
  let insideMs = 0
  globalThis.fetch = async (...args: Parameters<typeof fetch>): Promise<Response> => {
    const started = performance.now()
    try {
      return await original(...args)
    } finally {
      insideMs += performance.now() - started
    }
  }
  return {
    takeMs: () => {
      const taken = insideMs
      insideMs = 0
      return taken
    },
    restore: () => {
      globalThis.fetch = original
    },
  }
}

async function provisionOnce(handler: ProvisionHandler, fleetKey: Buffer, device: string, expectedStatus: number, version: 1 | 2 = 1): Promise<void> {
  const answer = await invokeHandler(handler, signedRequestBody(fleetKey, device, undefined, version))
  if (answer.statusCode !== expectedStatus) {
    // A success body carries a credential: only an error body is worth quoting.
    const detail = answer.statusCode >= 300 ? `: ${answer.body.slice(0, 300)}` : ''
    throw new Error(`warm path: ${device} answered ${answer.statusCode} instead of ${expectedStatus}${detail}`)
  }
}

async function createDirectly(stack: BenchStack, device: string): Promise<void> {
  const response = await fetch(`${stack.thinger.url}/v1/users/${encodeURIComponent(stack.username)}/devices`, {
    method: 'POST',
    headers: { authorization: `Bearer ${LOCAL_THINGER_TOKEN}`, accept: 'application/json', 'content-type': 'application/json' },
    body: JSON.stringify({ device, type: 'Generic', credentials: generateCredential() }),
  })
  await response.body?.cancel()
  if (response.status !== 200) throw new Error(`warm path: creating ${device} directly answered ${response.status}`)
}
