import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { runBootStorm } from './bench/boot-storm.js'
import { buildContainerWorker, buildHandlerBundle, packageHandler } from './bench/bundle.js'
import { measureColdStart } from './bench/cold-start.js'
import { runForumBaseline } from './bench/forum-baseline.js'
import { print, progress } from './bench/output.js'
import { type BenchResults, checkTargets, formatReport } from './bench/report.js'
import { type BenchStack, startBenchStack } from './bench/stack.js'
import { runWarmPath } from './bench/warm-path.js'
import { runX509Path, x509BenchFleets } from './bench/x509-path.js'

const PROJECT_DIR = join(dirname(fileURLToPath(import.meta.url)), '..')
const DEFAULT_JSON_PATH = 'reports/bench.json'
const DEFAULT_SSM_CACHE_SECONDS = 300
const COLD_START_THINGER_LATENCY_MS = 0
const FAULT_SHARES = { status503: 0.05, status429: 0.02, reset: 0.01 }
const USAGE = `usage: npm run bench -- [options]
  --n N                  warm path and baseline: new devices per phase (500)
  --warm-concurrency N   warm path: requests in flight in the parallel phase (16)
  --latency-ms MS        latency the emulator adds to every Thinger call (20)
  --storm N              boot storm: devices starting at once (10000)
  --concurrency N        boot storm: the function's concurrency limit (100)
  --time-scale F         boot storm: factor on every device-side wait (1)
  --max-attempts N       boot storm: a device gives up after N requests (12)
  --cold-runs N          cold start: fresh processes per measure (10)
  --setting NAME=VALUE   a function setting (README, "Settings"), repeatable, e.g. REPLAY_PROTECTION=off
  --json PATH            where the JSON report goes (${DEFAULT_JSON_PATH})`

interface BenchOptions {
  n: number
  warmConcurrency: number
  latencyMs: number
  storm: number
  concurrency: number
  timeScale: number
  maxAttempts: number
  coldRuns: number
  /** Function settings on top of the benchmark's own. */
  settings: Record<string, string>
  jsonPath: string
}

function readOptions(args: string[]): BenchOptions | undefined {
  const { values } = parseArgs({
    args,
    options: {
      n: { type: 'string', default: '500' },
      'warm-concurrency': { type: 'string', default: '16' },
      'latency-ms': { type: 'string', default: '20' },
      storm: { type: 'string', default: '10000' },
      concurrency: { type: 'string', default: '100' },
      'time-scale': { type: 'string', default: '1' },
      'max-attempts': { type: 'string', default: '12' },
      'cold-runs': { type: 'string', default: '10' },
      setting: { type: 'string', multiple: true, default: [] },
      json: { type: 'string', default: DEFAULT_JSON_PATH },
      help: { type: 'boolean', default: false },
    },
  })
  if (values.help) return undefined
  const count = (name: keyof typeof values): number => {
    const value = Number(values[name])
    if (!Number.isInteger(value) || value < 1) throw new TypeError(`--${name} must be a positive integer\n${USAGE}`)
    return value
  }
  const latencyMs = Number(values['latency-ms'])
  if (!(Number.isFinite(latencyMs) && latencyMs >= 0)) throw new TypeError(`--latency-ms must be a number of ms, 0 or more\n${USAGE}`)
  const timeScale = Number(values['time-scale'])
  if (!(Number.isFinite(timeScale) && timeScale > 0)) throw new TypeError(`--time-scale must be a number above 0\n${USAGE}`)
  const settings: Record<string, string> = {}
  for (const pair of values.setting) {
    const separator = pair.indexOf('=')
    if (separator < 1) throw new TypeError(`--setting needs NAME=VALUE, got ${pair}\n${USAGE}`)
    settings[pair.slice(0, separator)] = pair.slice(separator + 1)
  }
  return {
    n: count('n'),
    warmConcurrency: count('warm-concurrency'),
    latencyMs,
    storm: count('storm'),
    concurrency: count('concurrency'),
    timeScale,
    maxAttempts: count('max-attempts'),
    coldRuns: count('cold-runs'),
    settings,
    jsonPath: resolve(PROJECT_DIR, values.json),
  }
}

async function runBench(options: BenchOptions, command: string): Promise<BenchResults> {
  const startedAt = new Date()
  const started = performance.now()
  // Inside the project, so the AWS SDK left out of the bundle resolves from its node_modules; not in
  // .esbuild/, which a concurrent `osls package` or local stack empties while the storm still imports.
  const workDir = join(PROJECT_DIR, 'node_modules', '.cache', `thinger-provisioner-bench-${process.pid}`)
  try {
    // The deployment compiles ./fleets.yml in when it exists; the sections need the settings' single fleet.
    if (existsSync(join(PROJECT_DIR, 'fleets.yml'))) throw new Error('./fleets.yml exists: osls package would compile it in; run the benchmark in a checkout without one')
    progress('packaging the function with osls package, as a deployment does')
    const code = describeCode()
    const packaged = await packageHandler(PROJECT_DIR, join(workDir, 'deployed'))
    const built = await buildHandlerBundle(PROJECT_DIR, join(workDir, 'built'))
    // The parts come from this build's metafile: it must be the package's bundle, byte for byte.
    if (!readFileSync(built.path).equals(readFileSync(packaged.path))) throw new Error('the benchmark\'s esbuild options (scripts/bench/bundle.ts) no longer build what osls package ships: align them with serverless.yml')
    const bundle = { ...built, ...packaged }
    const variants = [
      { name: 'AWS SDK from the Lambda runtime (deployed before)', sdk: 'runtime' as const },
      { name: 'AWS SDK bundled with its whole default credential chain', sdk: 'full-chain' as const },
    ]
    const variantBundles = await Promise.all(variants.map(async (variant, index) => ({ name: variant.name, ...(await buildHandlerBundle(PROJECT_DIR, join(workDir, `variant-${index}`), { sdk: variant.sdk })) })))
    const stack = await startBenchStack()
    try {
      // Before any import of the bundle: the handler reads its settings when it is loaded.
      Object.assign(process.env, stack.env, { SSM_CACHE_SECONDS: String(DEFAULT_SSM_CACHE_SECONDS) }, options.settings)
      const sectionMs: Record<string, number> = {}
      const measured = await measureSections(stack, bundle, variantBundles, workDir, options, sectionMs)
      const cpuList = cpus()
      return {
        meta: {
          startedAt: startedAt.toISOString(),
          node: process.version,
          platform: `${process.platform} ${process.arch}`,
          cpus: cpuList.length,
          cpuModel: cpuList[0]?.model.trim() ?? 'unknown',
          command,
          code,
          elapsedMs: performance.now() - started,
          sectionMs,
        },
        options: {
          ...options,
          settings: Object.entries(options.settings).map(([name, value]) => `${name}=${value}`).join(' '),
          jsonPath: relative(PROJECT_DIR, options.jsonPath),
        },
        ssmCacheSeconds: Number(process.env.SSM_CACHE_SECONDS),
        bundle: { sizeBytes: bundle.sizeBytes, gzipBytes: bundle.gzipBytes, largestInputs: bundle.largestInputs, packageMs: bundle.packageMs },
        variantBundles: variantBundles.map(({ name, sizeBytes, gzipBytes, largestInputs }) => ({ name, sizeBytes, gzipBytes, largestInputs })),
        ...measured,
      }
    } finally {
      await stack.close()
    }
  } finally {
    rmSync(workDir, { recursive: true, force: true })
  }
}

async function measureSections(
  stack: BenchStack,
  bundle: { path: string },
  variantBundles: Array<{ name: string; path: string }>,
  workDir: string,
  options: BenchOptions,
  sectionMs: Record<string, number>,
): Promise<Pick<BenchResults, 'coldStart' | 'warmPath' | 'x509Path' | 'baseline' | 'storm'>> {
  const timed = async <T>(section: string, measure: () => Promise<T>): Promise<T> => {
    const sectionStarted = performance.now()
    try {
      return await measure()
    } finally {
      sectionMs[section] = performance.now() - sectionStarted
    }
  }

  progress(`cold start: ${options.coldRuns} fresh processes per measure`)
  stack.thinger.setLatencyMs(COLD_START_THINGER_LATENCY_MS)
  const coldStart = await timed('cold start', () => measureColdStart({
    projectDir: PROJECT_DIR,
    workDir,
    bundlePath: bundle.path,
    variants: variantBundles.map(({ name, path }) => ({ name, path })),
    runs: options.coldRuns,
    fleetKey: stack.fleetKey,
    thingerLatencyMs: COLD_START_THINGER_LATENCY_MS,
  }))
  progress(`warm path: ${options.n} new devices, the same again, ${options.n} more with ${options.warmConcurrency} in flight, ${options.n} creates alone`)
  const warmPath = await timed('warm path', () => runWarmPath(stack, {
    bundlePath: bundle.path,
    devices: options.n,
    concurrency: options.warmConcurrency,
    thingerLatencyMs: options.latencyMs,
  }))
  progress(`X.509 path: ${options.n} new devices with a certificate, sealed answers`)
  const x509Path = await timed('X.509 path', async () => {
    const x509Bundle = await buildHandlerBundle(PROJECT_DIR, join(workDir, 'x509'), { fleets: x509BenchFleets(PROJECT_DIR, stack.env.FLEET_KEY_PARAM as string) })
    return runX509Path(stack, { projectDir: PROJECT_DIR, bundlePath: x509Bundle.path, devices: options.n, thingerLatencyMs: options.latencyMs })
  })
  progress(`baseline: ${options.n} new devices the forum sketch's way`)
  const baseline = await timed('baseline', () => runForumBaseline(stack, { devices: options.n, thingerLatencyMs: options.latencyMs }))
  progress(`boot storm: ${options.storm} devices, concurrency ${options.concurrency}, device waits x ${options.timeScale}`)
  const storm = await timed('boot storm', async () => runBootStorm(stack, {
    bundlePath: bundle.path,
    containerWorkerPath: await buildContainerWorker(PROJECT_DIR, join(workDir, 'storm')),
    devices: options.storm,
    concurrency: options.concurrency,
    thingerLatencyMs: options.latencyMs,
    timeScale: options.timeScale,
    maxAttempts: options.maxAttempts,
    faults: FAULT_SHARES,
  }))
  return { coldStart, warmPath, x509Path, baseline, storm }
}

async function main(): Promise<number> {
  const args = process.argv.slice(2)
  const options = readOptions(args)
  if (options === undefined) {
    print(USAGE)
    return 0
  }
  const command = ['npm run bench', ...(args.length > 0 ? ['--', ...args] : [])].join(' ')
  const results = await runBench(options, command)
  const checks = checkTargets(results)
  for (const line of formatReport(results, checks)) print(line)

  mkdirSync(dirname(options.jsonPath), { recursive: true })
  writeFileSync(options.jsonPath, `${JSON.stringify({ ...results, checks }, roundNumbers, 2)}\n`)
  print(`JSON report: ${options.jsonPath}`)
  // A missed performance target is reported, not fatal; a storm that lost or broke a device is a bug.
  return results.storm.correct ? 0 : 1
}

/** The commit measured, and whether the function's sources differed from it. */
function describeCode(): string {
  try {
    const git = (...args: string[]): string => execFileSync('git', args, { cwd: PROJECT_DIR, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    const changed = git('status', '--porcelain', '--', 'functions', 'lib').split('\n').filter((line) => line !== '').length
    return `${git('rev-parse', '--short', 'HEAD')}${changed > 0 ? ` with ${changed} uncommitted change(s) in functions/ or lib/` : ''}`
  } catch {
    return 'unknown (no git)'
  }
}

function roundNumbers(_key: string, value: unknown): unknown {
  return typeof value === 'number' && !Number.isInteger(value) ? Math.round(value * 1000) / 1000 : value
}

main().then(
  (code) => {
    // The handler's SSM cache keeps refresh timers alive for the cache period: leave once the report is out.
    process.stdout.write('', () => process.exit(code))
  },
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : error)
    process.exit(2)
  },
)
