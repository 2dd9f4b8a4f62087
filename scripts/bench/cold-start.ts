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
  bundlePath: string
  /** The same handler with the SSM client bundled in, measured alongside. */
  sdkBundledPath: string
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
  sdkOnlyImportMs: number
  addedImportMs: number
  firstRequestMs: number
  secondRequestMs: number
  /** The SDK-bundled alternative: import, and the first request of a fresh process. */
  sdkBundledImportMs: number
  sdkBundledFirstRequestMs: number
  samples: {
    handlerImportMs: number[]
    emptyHandlerImportMs: number[]
    sdkOnlyImportMs: number[]
    firstRequestMs: number[]
    secondRequestMs: number[]
    sdkBundledImportMs: number[]
    sdkBundledFirstRequestMs: number[]
  }
}

/**
 * Times `await import()` of the bundled handler in fresh `node` processes against an empty handler
 * and against the AWS SDK's SSM client alone (which the Lambda runtime provides), runs interleaved;
 * then the first and second requests of fresh processes, the first one fetching from SSM; and the
 * same handler with the SSM client bundled in (import and first request in one fresh process).
 */
export async function measureColdStart(options: ColdStartOptions): Promise<ColdStartResult> {
  const emptyHandlerPath = join(options.workDir, 'empty-handler.mjs')
  writeFileSync(emptyHandlerPath, 'export const handler = async () => ({ statusCode: 200 })\n')
  const sdkOnlyPath = join(options.workDir, 'sdk-only-handler.mjs')
  writeFileSync(sdkOnlyPath, "import { SSMClient } from '@aws-sdk/client-ssm'\nexport const handler = async () => ({ statusCode: 200, body: typeof SSMClient })\n")
  const probePath = join(options.workDir, 'cold-start-probe.mjs')
  await build({
    absWorkingDir: options.projectDir,
    entryPoints: ['scripts/bench/cold-start-probe.ts'],
    outfile: probePath,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    external: ['@aws-sdk/*'],
    logLevel: 'error',
  })

  const env = { ...process.env, BENCH_FLEET_KEY: options.fleetKey.toString('base64') }
  const samples: ColdStartResult['samples'] = {
    handlerImportMs: [],
    emptyHandlerImportMs: [],
    sdkOnlyImportMs: [],
    firstRequestMs: [],
    secondRequestMs: [],
    sdkBundledImportMs: [],
    sdkBundledFirstRequestMs: [],
  }
  for (let run = 0; run < options.runs; run++) {
    samples.emptyHandlerImportMs.push((await runProbe(probePath, ['import', emptyHandlerPath], env)).importMs)
    samples.sdkOnlyImportMs.push((await runProbe(probePath, ['import', sdkOnlyPath], env)).importMs)
    samples.handlerImportMs.push((await runProbe(probePath, ['import', options.bundlePath], env)).importMs)
    const requests = await runProbe(probePath, ['requests', options.bundlePath, `cold_${process.pid}_${run}`], env)
    samples.firstRequestMs.push(requests.firstRequestMs ?? Number.NaN)
    samples.secondRequestMs.push(requests.secondRequestMs ?? Number.NaN)
    const bundled = await runProbe(probePath, ['requests', options.sdkBundledPath, `cold_sdk_${process.pid}_${run}`], env)
    samples.sdkBundledImportMs.push(bundled.importMs)
    samples.sdkBundledFirstRequestMs.push(bundled.firstRequestMs ?? Number.NaN)
  }
  const handlerImportMs = median(samples.handlerImportMs)
  const emptyHandlerImportMs = median(samples.emptyHandlerImportMs)
  return {
    runs: options.runs,
    thingerLatencyMs: options.thingerLatencyMs,
    handlerImportMs,
    emptyHandlerImportMs,
    sdkOnlyImportMs: median(samples.sdkOnlyImportMs),
    addedImportMs: handlerImportMs - emptyHandlerImportMs,
    firstRequestMs: median(samples.firstRequestMs),
    secondRequestMs: median(samples.secondRequestMs),
    sdkBundledImportMs: median(samples.sdkBundledImportMs),
    sdkBundledFirstRequestMs: median(samples.sdkBundledFirstRequestMs),
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
