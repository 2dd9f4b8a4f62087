// Runs in a fresh `node` process (bundled to plain JS by cold-start.ts, so no TypeScript loader is
// timed): imports one handler module, optionally sends two requests, and reports over IPC.
import { pathToFileURL } from 'node:url'
import type { ProvisionHandler } from '../../functions/provision.js'
import { invokeHandler, signedRequestBody } from './lambda.js'

/** What one probe process measured. */
export interface ProbeResult {
  importMs: number
  firstRequestMs?: number
  secondRequestMs?: number
}

const [mode, modulePath, devicePrefix] = process.argv.slice(2)
if ((mode !== 'import' && mode !== 'requests') || modulePath === undefined) {
  throw new TypeError('usage: cold-start-probe.mjs import|requests MODULE_PATH [DEVICE_PREFIX]')
}

const importStarted = performance.now()
const { handler } = (await import(pathToFileURL(modulePath).href)) as { handler: ProvisionHandler }
const result: ProbeResult = { importMs: performance.now() - importStarted }

if (mode === 'requests') {
  const fleetKey = Buffer.from(process.env.BENCH_FLEET_KEY ?? '', 'base64')
  const timeNewDevice = async (device: string): Promise<number> => {
    const started = performance.now()
    const answer = await invokeHandler(handler, signedRequestBody(fleetKey, device))
    const elapsedMs = performance.now() - started
    // A success body carries a credential: only an error body is worth quoting.
    if (answer.statusCode !== 201) throw new Error(`cold start probe: ${device} answered ${answer.statusCode}${answer.statusCode >= 300 ? `: ${answer.body}` : ''}`)
    return elapsedMs
  }
  result.firstRequestMs = await timeNewDevice(`${devicePrefix}_first`)
  result.secondRequestMs = await timeNewDevice(`${devicePrefix}_second`)
}

// The handler's SSM cache keeps a refresh timer: the process would otherwise live for the cache period.
process.send?.(result, () => process.exit(0))
