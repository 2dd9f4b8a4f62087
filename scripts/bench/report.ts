import type { BootStormResult } from './boot-storm.js'
import type { HandlerBundle } from './bundle.js'
import type { ColdStartResult } from './cold-start.js'
import type { ForumBaselineResult } from './forum-baseline.js'
import { formatTable } from './output.js'
import type { WarmPathResult } from './warm-path.js'
import type { X509PathResult } from './x509-path.js'

// A container's cold start, import plus first request with no Thinger latency (issue 10), or
// within twice the floor measured in the same run (issue 21).
const MAX_COLD_START_MS = 60
const MAX_COLD_START_OVER_FLOOR = 2
// A re-provisioning waits for at most this many Thinger round trips one after another (issue 21).
const MAX_REPROVISION_ROUND_TRIPS = 3
const MAX_HANDLER_OVERHEAD_MS = 2
const HANDLER_ERRORS_SHOWN = 6

/** Everything one run measured. */
export interface BenchResults {
  meta: { startedAt: string; node: string; platform: string; cpus: number; cpuModel: string; command: string; code: string; elapsedMs: number; sectionMs: Record<string, number> }
  options: Record<string, number | string>
  ssmCacheSeconds: number
  /** The deployed bundle: sizes of the package's file, parts from the same build's metafile. */
  bundle: Omit<HandlerBundle, 'path'> & { packageMs: number }
  /** The alternatives the cold-start section compares, by the name it gives them. */
  variantBundles: Array<Omit<HandlerBundle, 'path'> & { name: string }>
  coldStart: ColdStartResult
  warmPath: WarmPathResult
  x509Path: X509PathResult
  baseline: ForumBaselineResult
  storm: BootStormResult
}

/** One target of the issue, and whether this run met it. */
export interface Check {
  target: string
  measured: string
  ok: boolean
}

/** The handler's own work at the median: a new device's request minus the time spent in its Thinger calls. */
export function handlerOverheadMs(warm: WarmPathResult): number {
  return warm.newDevices.ownWork?.p50Ms ?? Number.NaN
}

/** The stricter reading: everything above the configured latency counts as the handler's, the emulator's own work included. */
export function overheadOverConfiguredLatencyMs(warm: WarmPathResult): number {
  return warm.newDevices.latency.p50Ms - warm.thingerLatencyMs * warm.newDevices.thingerCallsPerDevice
}

/** Checks a run against the issue's targets. */
export function checkTargets(results: BenchResults): Check[] {
  const { warmPath: warm, baseline, storm, coldStart: cold } = results
  const coldStartMs = cold.handlerImportMs + cold.firstRequestMs
  const fastestVariant = [...cold.variants].sort((a, b) => a.importMs + a.firstRequestMs - (b.importMs + b.firstRequestMs))[0]
  // A round trip is one create call without the handler (section 1's last row); the handler's own work is allowed on top.
  const reprovisionBudgetMs = (MAX_REPROVISION_ROUND_TRIPS + 0.5) * warm.rawCreates.latency.p50Ms
  const overheadMs = handlerOverheadMs(warm)
  const cachePeriodMs = results.ssmCacheSeconds * 1000
  const warmSsmAllowed = warm.containers * Math.max(1, Math.ceil(warm.sectionMs / cachePeriodMs))
  return [
    {
      target: 'a new device costs exactly 1 Thinger call',
      measured: `${fixed(warm.newDevices.thingerCallsPerDevice)} (sequential), ${fixed(warm.newDevicesConcurrent.thingerCallsPerDevice)} (in parallel), ${fixed(warm.newDevicesSealed.thingerCallsPerDevice)} (sealed)`,
      ok: warm.newDevices.thingerCallsPerDevice === 1 && warm.newDevicesConcurrent.thingerCallsPerDevice === 1 && warm.newDevicesSealed.thingerCallsPerDevice === 1,
    },
    {
      target: `a new X.509 device (sealed answer) costs 1 Thinger call, handler own work under ${MAX_HANDLER_OVERHEAD_MS} ms at p50`,
      measured: `${fixed(results.x509Path.newDevices.thingerCallsPerDevice)} call, ${fixed(results.x509Path.newDevices.ownWork?.p50Ms ?? Number.NaN)} ms ` +
        `(${fixed((results.x509Path.newDevices.ownWork?.p50Ms ?? Number.NaN) / (warm.newDevicesSealed.ownWork?.p50Ms ?? Number.NaN))} x a device key's sealed ${fixed(warm.newDevicesSealed.ownWork?.p50Ms ?? Number.NaN)} ms)`,
      ok: results.x509Path.newDevices.thingerCallsPerDevice === 1 && (results.x509Path.newDevices.ownWork?.p50Ms ?? Number.POSITIVE_INFINITY) < MAX_HANDLER_OVERHEAD_MS,
    },
    {
      target: 'the forum sketch costs 2 Thinger calls',
      measured: fixed(baseline.thingerCallsPerDevice),
      ok: baseline.thingerCallsPerDevice === 2,
    },
    {
      target: `handler adds under ${MAX_HANDLER_OVERHEAD_MS} ms at p50 over the emulator's latency`,
      measured: `${fixed(overheadMs)} ms outside its Thinger calls (${fixed(overheadOverConfiguredLatencyMs(warm))} ms over the configured ${warm.thingerLatencyMs} ms per call)`,
      ok: overheadMs < MAX_HANDLER_OVERHEAD_MS,
    },
    {
      target: 'one SSM request per container per cache period',
      measured: `warm path: ${warm.ssmCalls} for ${warm.containers} container over ${fixed(warm.sectionMs / 1000, 0)} s ` +
        `(storm: ${storm.ssmCalls} for ${storm.containersStarted} containers, section 3)`,
      ok: warm.ssmCalls <= warmSsmAllowed,
    },
    {
      target: `a re-provisioning waits for at most ${MAX_REPROVISION_ROUND_TRIPS} Thinger round trips: p50 under ${MAX_REPROVISION_ROUND_TRIPS + 0.5} x one create call`,
      measured: `${fixed(warm.reprovisioned.latency.p50Ms)} ms = ${fixed(warm.reprovisioned.latency.p50Ms / warm.rawCreates.latency.p50Ms)} x ${fixed(warm.rawCreates.latency.p50Ms)} ms (${fixed(warm.reprovisioned.thingerCallsPerDevice)} calls)`,
      ok: warm.reprovisioned.latency.p50Ms < reprovisionBudgetMs,
    },
    {
      target: 'the deployed bundle (osls package) starts fastest of the builds measured',
      measured: `${fixed(coldStartMs, 1)} ms` + (fastestVariant === undefined ? '' : `; fastest other: ${fastestVariant.name} ${fixed(fastestVariant.importMs + fastestVariant.firstRequestMs, 1)} ms`),
      ok: fastestVariant === undefined || coldStartMs <= fastestVariant.importMs + fastestVariant.firstRequestMs,
    },
    {
      target: `cold start: import + first request at 0 ms Thinger latency within ${MAX_COLD_START_OVER_FLOOR} x the floor, or under ${MAX_COLD_START_MS} ms`,
      measured: `${fixed(coldStartMs, 1)} ms = ${fixed(coldStartMs / cold.floorMs)} x the floor's ${fixed(cold.floorMs, 1)} ms`,
      ok: coldStartMs <= MAX_COLD_START_OVER_FLOOR * cold.floorMs || coldStartMs <= MAX_COLD_START_MS,
    },
    {
      target: 'storm: 0 failed, 0 duplicates, 0 bad credentials, 0 lost',
      measured: `${storm.failed}, ${storm.duplicates}, ${storm.badCredentials}, ${storm.lost}`,
      ok: storm.correct,
    },
  ]
}

/** The report as lines of plain text: one table per section, then the targets. */
export function formatReport(results: BenchResults, checks: Check[]): string[] {
  const { meta, warmPath: warm, baseline, storm, coldStart: cold, bundle } = results
  const lines: string[] = []
  const section = (title: string, body: string[]): void => {
    lines.push('', title, ...body)
  }

  lines.push(
    `thinger-provisioner benchmark, ${meta.startedAt}`,
    `machine: ${meta.cpus} x ${meta.cpuModel}, ${meta.platform}, node ${meta.node}`,
    `code: ${meta.code}`,
    `command: ${meta.command}`,
  )
  if (results.options.settings) lines.push(`function settings: ${results.options.settings}`)

  const phaseRow = (phase: WarmPathResult['newDevices']): string[] => [
    phase.name,
    String(phase.requests),
    String(phase.concurrency),
    fixed(phase.latency.p50Ms),
    fixed(phase.latency.p99Ms),
    fixed(phase.latency.meanMs),
    phase.ownWork === undefined ? '-' : fixed(phase.ownWork.p50Ms),
    fixed(phase.requestsPerSecond, 1),
    fixed(phase.thingerCallsPerDevice),
  ]
  section(`1. Warm path: the bundled handler in one warm container, the emulator adds ${warm.thingerLatencyMs} ms to each Thinger call`, [
    ...formatTable(
      ['phase', 'requests', 'in flight', 'p50 ms', 'p99 ms', 'mean ms', 'own p50 ms', 'req/s', 'Thinger calls/device'],
      [phaseRow(warm.newDevices), phaseRow(warm.reprovisioned), phaseRow(warm.newDevicesConcurrent), phaseRow(warm.newDevicesSealed), phaseRow(warm.rawCreates)],
      new Set([1, 2, 3, 4, 5, 6, 7, 8]),
    ),
    `SSM requests in the section: ${warm.ssmCalls} (${warm.containers} container, cache ${results.ssmCacheSeconds} s; ` +
      `import ${fixed(warm.containerImportMs, 1)} ms, first request ${fixed(warm.warmUpRequestMs, 1)} ms)`,
    `own p50: time outside the Thinger calls (in fetch until the answer's headers). Handler overhead at p50: ${fixed(handlerOverheadMs(warm))} ms; ` +
      `p50 - ${fixed(warm.newDevices.thingerCallsPerDevice)} x ${warm.thingerLatencyMs} ms configured = ${fixed(overheadOverConfiguredLatencyMs(warm))} ms. ` +
      `Sealing (v2): own p50 ${fixed(warm.newDevicesSealed.ownWork?.p50Ms ?? Number.NaN)} ms against ${fixed(warm.newDevices.ownWork?.p50Ms ?? Number.NaN)} ms in clear; ` +
      `sealing one answer alone (device key, seal key, AES-256-GCM) takes ${fixed(warm.sealingCrypto.p50Us, 1)} µs at p50, ${fixed(warm.sealingCrypto.p99Us, 1)} µs at p99; ` +
      `signing it (SHA-256 of the body, ECDSA P-256, the key parsed once per container) ${fixed(warm.signingCrypto.p50Us, 1)} µs at p50, ${fixed(warm.signingCrypto.p99Us, 1)} µs at p99`,
  ])

  const x509 = results.x509Path
  section(`1b. X.509 devices: P-256 certificate of the fleet CA (${x509.certificateBytes} bytes DER, request ${x509.requestBytes} bytes), answer sealed by ECDH, same warm container setup`, [
    ...formatTable(
      ['phase', 'requests', 'in flight', 'p50 ms', 'p99 ms', 'mean ms', 'own p50 ms', 'req/s', 'Thinger calls/device'],
      [phaseRow(x509.newDevices)],
      new Set([1, 2, 3, 4, 5, 6, 7, 8]),
    ),
    `own p50 against a device key's, sealed too, in this run (section 1): ${fixed(x509.newDevices.ownWork?.p50Ms ?? Number.NaN)} ms / ${fixed(warm.newDevicesSealed.ownWork?.p50Ms ?? Number.NaN)} ms = ` +
      `${fixed((x509.newDevices.ownWork?.p50Ms ?? Number.NaN) / (warm.newDevicesSealed.ownWork?.p50Ms ?? Number.NaN))}`,
  ])

  const ratio = (ours: number, theirs: number): string => fixed(ours / theirs)
  section(`2. Baseline: the forum sketch's way (the device lists devices by name with the account token, then creates), ${baseline.requests} new devices`, [
    ...formatTable(
      ['new device, sequential', 'this service', 'forum sketch', 'ratio'],
      [
        ['p50 ms', fixed(warm.newDevices.latency.p50Ms), fixed(baseline.latency.p50Ms), ratio(warm.newDevices.latency.p50Ms, baseline.latency.p50Ms)],
        ['p99 ms', fixed(warm.newDevices.latency.p99Ms), fixed(baseline.latency.p99Ms), ratio(warm.newDevices.latency.p99Ms, baseline.latency.p99Ms)],
        ['mean ms', fixed(warm.newDevices.latency.meanMs), fixed(baseline.latency.meanMs), ratio(warm.newDevices.latency.meanMs, baseline.latency.meanMs)],
        ['req/s', fixed(warm.newDevices.requestsPerSecond, 1), fixed(baseline.requestsPerSecond, 1), ratio(warm.newDevices.requestsPerSecond, baseline.requestsPerSecond)],
        ['Thinger calls/device', fixed(warm.newDevices.thingerCallsPerDevice), fixed(baseline.thingerCallsPerDevice), ratio(warm.newDevices.thingerCallsPerDevice, baseline.thingerCallsPerDevice)],
      ],
      new Set([1, 2, 3]),
    ),
    '(ratio = this service / forum sketch; the forum sketch also puts the account token on every device)',
  ])

  const shares = (s: BootStormResult['requestedFaultShares']): string =>
    `503 ${percent(s.status503)}, 429 ${percent(s.status429)}, reset ${percent(s.reset)}`
  section(
    `3. Boot storm: ${storm.devices} devices at once, concurrency limit ${storm.concurrency}, emulator latency ${storm.thingerLatencyMs} ms, ` +
      `device waits x ${storm.timeScale}`,
    formatTable(
      ['result', 'value'],
      [
        ['provisioned', String(storm.provisioned)],
        ['failed', `${storm.failed}${storm.failed > 0 ? ` (${describeCounts(storm.failures)})` : ''}`],
        ['duplicates on Thinger', String(storm.duplicates)],
        ['credentials that do not log in', String(storm.badCredentials)],
        ['2xx answered but missing on Thinger', String(storm.lost)],
        ['on Thinger without a 2xx answer', String(storm.orphans)],
        ['time to provision all', `${fixed(storm.timeToProvisionAllMs / 1000)} s`],
        ['provisioned after p50 / p90 / p99', `${seconds(storm.provisionedAfterMs.p50)} / ${seconds(storm.provisionedAfterMs.p90)} / ${seconds(storm.provisionedAfterMs.p99)}`],
        ['attempts per device', `mean ${fixed(storm.attemptsPerDevice.mean)}, p50 ${storm.attemptsPerDevice.p50}, p99 ${storm.attemptsPerDevice.p99}, max ${storm.attemptsPerDevice.max} (limit ${storm.maxAttempts})`],
        ['answers to devices', describeCounts(storm.answersByStatus)],
        ['  of which API Gateway throttled (429)', String(storm.throttledAnswers)],
        ['handler invocations', String(storm.handlerInvocations)],
        ...topCounts(storm.handlerErrors, HANDLER_ERRORS_SHOWN).map(([key, count], index) => [index === 0 ? '  errors in its log (most frequent)' : '', `${count} x ${key}`]),
        ['invocation p50 / p99 (cold starts included)', `${fixed(storm.invocationLatency.p50Ms, 1)} / ${fixed(storm.invocationLatency.p99Ms, 1)} ms`],
        ['invocations over the 10 s Lambda timeout (start excluded)', String(storm.invocationsOverLambdaTimeout)],
        ['Thinger calls', `${storm.thingerCalls} (${fixed(storm.thingerCallsPerDevice)} per device)`],
        ['  by status', describeCounts(storm.thingerCallsByStatus)],
        ['  fault shares asked / observed', `${shares(storm.requestedFaultShares)} / ${shares(storm.observedFaultShares)}`],
        ['containers started (cold starts)', `${storm.containersStarted} (peak in flight ${storm.peakConcurrency}), each a worker thread`],
        ['  container start p50 / max (its turn, thread, import)', `${fixed(storm.containerStartLatency.p50Ms, 1)} / ${fixed(storm.containerStartLatency.maxMs, 1)} ms, ${storm.containersStartingAtOnce} starting at once`],
        ['  containers that never answered 2xx', String(storm.containersWithoutSuccess)],
        ['SSM requests (as the local SSM answered them)', `${storm.ssmCalls} (${describeCounts(storm.ssmCallsByStatus)})`],
      ],
    ),
  )

  const coldStartMs = cold.handlerImportMs + cold.firstRequestMs
  const overFloor = (ms: number): string => `${fixed(ms, 1)} ms (${fixed(ms / cold.floorMs)} x floor)`
  section(`4. Cold start: fresh node processes, median of ${cold.runs} each, interleaved; the emulator adds ${cold.thingerLatencyMs} ms`, [
    ...formatTable(
      ['measure', 'value'],
      [
        [`deployed bundle: functions/provision.mjs from osls package (${fixed(bundle.packageMs / 1000, 1)} s to package)`, `${bytes(bundle.sizeBytes)} bytes (${bytes(bundle.gzipBytes)} gzip)`],
        ['  largest parts', bundle.largestInputs.map((input) => `${input.name} ${bytes(input.bytes)}`).join(', ')],
        ['floor: a process that signs one SSM GetParameters and sends one create, with fetch', `${fixed(cold.floorMs, 1)} ms`],
        ['import the deployed handler', `${fixed(cold.handlerImportMs, 1)} ms`],
        ['  import an empty handler', `${fixed(cold.emptyHandlerImportMs, 1)} ms`],
        ['first request in a fresh process (SSM fetch, client set-up, first connections)', `${fixed(cold.firstRequestMs, 1)} ms`],
        ['second request', `${fixed(cold.secondRequestMs, 1)} ms`],
        ['import + first request (the cold start)', overFloor(coldStartMs)],
        ...cold.variants.flatMap((variant) => {
          const built = results.variantBundles.find((candidate) => candidate.name === variant.name)
          return [
            [`alternative: ${variant.name}`, built === undefined ? '' : `${bytes(built.sizeBytes)} bytes (${bytes(built.gzipBytes)} gzip)`],
            ['  import / first request', `${fixed(variant.importMs, 1)} / ${fixed(variant.firstRequestMs, 1)} ms`],
            ['  import + first request', overFloor(variant.importMs + variant.firstRequestMs)],
          ]
        }),
      ],
    ),
  ])

  section('Targets', formatTable(
    ['target', 'measured', 'result'],
    checks.map((check) => [check.target, check.measured, check.ok ? 'PASS' : 'MISSED']),
  ))
  const sections = Object.entries(meta.sectionMs).map(([name, ms]) => `${name} ${fixed(ms / 1000, 1)} s`).join(', ')
  lines.push('', `elapsed: ${fixed(meta.elapsedMs / 1000, 1)} s (${sections})`)
  return lines
}

function fixed(value: number, digits = 2): string {
  return Number.isFinite(value) ? value.toFixed(digits) : 'n/a'
}

function seconds(ms: number): string {
  return `${fixed(ms / 1000)} s`
}

function percent(share: number): string {
  return `${(share * 100).toFixed(2)}%`
}

function bytes(count: number): string {
  return count.toLocaleString('en-US')
}

function topCounts(counts: Record<string, number>, limit: number): Array<[string, number]> {
  return Object.entries(counts).sort(([, a], [, b]) => b - a).slice(0, limit)
}

function describeCounts(counts: Record<string, number>): string {
  const entries = Object.entries(counts).sort(([a], [b]) => a.localeCompare(b))
  return entries.length === 0 ? 'none' : entries.map(([key, count]) => `${key}: ${count}`).join(', ')
}
