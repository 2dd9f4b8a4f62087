import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { build } from 'esbuild'
import type { ProbeResult } from './cold-start-probe.js'
import { median } from './stats.js'

const PROBE_TIMEOUT_MS = 30_000

export interface ColdStartOptions {
  projectDir: string
  workDir: string
  /** The deployed bundle (from the package osls builds). */
  bundlePath: string
  /** Other builds of the same handler, measured alongside (import and first request). */
  variants: Array<{ name: string; path: string }>
  runs: number
  fleetKey: Buffer
  thingerLatencyMs: number
}

export interface ColdStartResult {
  runs: number
  thingerLatencyMs: number
  /** Medians over `runs` fresh processes each. */
  handlerImportMs: number
  emptyHandlerImportMs: number
  addedImportMs: number
  firstRequestMs: number
  secondRequestMs: number
  /** The floor: a fresh process that only signs one SSM GetParameters and sends one Thinger create, with `fetch`. */
  floorMs: number
  variants: Array<{ name: string; importMs: number; firstRequestMs: number }>
  samples: {
    handlerImportMs: number[]
    emptyHandlerImportMs: number[]
    firstRequestMs: number[]
    secondRequestMs: number[]
    floorMs: number[]
    variants: Record<string, { importMs: number[]; firstRequestMs: number[] }>
  }
}

/**
 * Times `await import()` of the deployed handler in fresh `node` processes against an empty
 * handler; the first and second requests of fresh processes, the first one fetching from SSM; the
 * floor (cold-start-floor.ts) in fresh processes; and each variant (import and first request in
 * one fresh process). All interleaved, so that a load on the machine falls on each alike.
 */
export async function measureColdStart(options: ColdStartOptions): Promise<ColdStartResult> {
  const emptyHandlerPath = join(options.workDir, 'empty-handler.mjs')
  writeFileSync(emptyHandlerPath, 'export const handler = async () => ({ statusCode: 200 })\n')
  const probePath = join(options.workDir, 'cold-start-probe.mjs')
  const floorPath = join(options.workDir, 'cold-start-floor.mjs')
  for (const [entry, outfile] of [['scripts/bench/cold-start-probe.ts', probePath], ['scripts/bench/cold-start-floor.ts', floorPath]] as const) {
    await build({
      absWorkingDir: options.projectDir,
      entryPoints: [entry],
      outfile,
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: 'esm',
      external: ['@aws-sdk/*'],
      logLevel: 'error',
    })
  }

  const env = { ...process.env, BENCH_FLEET_KEY: options.fleetKey.toString('base64') }
  const samples: ColdStartResult['samples'] = {
    handlerImportMs: [],
    emptyHandlerImportMs: [],
    firstRequestMs: [],
    secondRequestMs: [],
    floorMs: [],
    variants: Object.fromEntries(options.variants.map((variant) => [variant.name, { importMs: [], firstRequestMs: [] }])),
  }
  for (let run = 0; run < options.runs; run++) {
    samples.floorMs.push((await runProbe(floorPath, [`cold_floor_${process.pid}_${run}`], env)).firstRequestMs ?? Number.NaN)
    samples.emptyHandlerImportMs.push((await runProbe(probePath, ['import', emptyHandlerPath], env)).importMs)
    samples.handlerImportMs.push((await runProbe(probePath, ['import', options.bundlePath], env)).importMs)
    const requests = await runProbe(probePath, ['requests', options.bundlePath, `cold_${process.pid}_${run}`], env)
    samples.firstRequestMs.push(requests.firstRequestMs ?? Number.NaN)
    samples.secondRequestMs.push(requests.secondRequestMs ?? Number.NaN)
    for (const [index, variant] of options.variants.entries()) {
      const measured = await runProbe(probePath, ['requests', variant.path, `cold_v${index}_${process.pid}_${run}`], env)
      samples.variants[variant.name]!.importMs.push(measured.importMs)
      samples.variants[variant.name]!.firstRequestMs.push(measured.firstRequestMs ?? Number.NaN)
    }
  }
  const handlerImportMs = median(samples.handlerImportMs)
  const emptyHandlerImportMs = median(samples.emptyHandlerImportMs)
  return {
    runs: options.runs,
    thingerLatencyMs: options.thingerLatencyMs,
    handlerImportMs,
    emptyHandlerImportMs,
    addedImportMs: handlerImportMs - emptyHandlerImportMs,
    firstRequestMs: median(samples.firstRequestMs),
    secondRequestMs: median(samples.secondRequestMs),
    floorMs: median(samples.floorMs),
    variants: options.variants.map((variant) => ({
      name: variant.name,
      importMs: median(samples.variants[variant.name]!.importMs),
      firstRequestMs: median(samples.variants[variant.name]!.firstRequestMs),
    })),
    samples,
  }
}

function runProbe(probePath: string, args: string[], env: NodeJS.ProcessEnv): Promise<ProbeResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [probePath, ...args], { env, stdio: ['ignore', 'ignore', 'pipe', 'ipc'] })
    let result: ProbeResult | undefined
    let stderr = ''
    const timer = setTimeout(() => child.kill('SIGKILL'), PROBE_TIMEOUT_MS)
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk
    })
    child.on('message', (message) => {
      result = message as ProbeResult
    })
    child.on('error', reject)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      if (result !== undefined) resolve(result)
      else reject(new Error(`cold start probe ${args.join(' ')} ended (${signal ?? code}) without a result: ${stderr.slice(-500)}`))
    })
  })
}
