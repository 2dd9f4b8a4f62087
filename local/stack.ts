import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  DEFAULT_HTTP_PORT,
  DEFAULT_LAMBDA_PORT,
  DEFAULT_SSM_PORT,
  DEFAULT_THINGER_PORT,
  LOCAL_ADMIN_THINGER_TOKEN,
  LOCAL_FLEET_KEY,
  LOCAL_FLEETS_FILE,
  LOCAL_REGION,
  LOCAL_STAGE,
  LOCAL_THINGER_TOKEN,
  LOCAL_USERNAME,
  LOCAL_WORKSHOP_CLAIM_SECRET,
  LOCAL_WORKSHOP_FLEET_KEY,
  parameterNames,
} from './defaults.js'
import { loadConfig } from '../lib/config.js'
import type { ThingerAction } from '../lib/thinger/actions.js'
import { requiredActionsOf } from '../lib/thinger/policy.js'
import { type LocalSsm, startLocalSsm } from './ssm-server.js'
import { startThingerEmulator, type ThingerEmulator } from './thinger-emulator.js'

// What the workshop fleet's profile expects an operator to have made beforehand.
const LOCAL_WORKSHOP_FIXTURES = {
  projects: [{ project: 'workshop', name: 'Workshop', description: 'Kits of the local workshop fleet' }],
  dashboards: [{ dashboard: 'workshop_template', name: 'Workshop kit', description: 'Template of each kit dashboard', widgets: [{ type: 'chart', source: 'bucket' }] }],
}
const { loadFleets } = createRequire(import.meta.url)('../deploy/fleets.cjs') as { loadFleets: (env: NodeJS.ProcessEnv) => unknown }
const READY_TIMEOUT_MS = 90_000
const READY_POLL_MS = 250
const PROJECT_DIR = join(dirname(fileURLToPath(import.meta.url)), '..')

export interface LocalStackOptions {
  httpPort?: number
  lambdaPort?: number
  thingerPort?: number
  ssmPort?: number
  /** Use this SSM endpoint (for example moto) instead of starting the project's own; it must already hold the parameters. */
  ssmEndpoint?: string
  /** The fleets file the function serves (default local/fleets.yml); `null` for none: one fleet from the settings. */
  fleetsFile?: string | null
  /** Extra settings for the function (any variable of the README's settings table). */
  env?: Record<string, string>
  /** Receives every line serverless-offline prints; default: this process's stdout. */
  onOutput?: (chunk: string) => void
}

export interface LocalStack {
  url: string
  thinger: ThingerEmulator
  ssm: LocalSsm | undefined
  ssmEndpoint: string
  close(): Promise<void>
}

/**
 * Starts the whole local stack: the Thinger.io emulator, the local SSM endpoint seeded with the
 * development token and fleet key, and the function under serverless-offline; resolves once a
 * request to `POST /v1/provision` is answered.
 */
export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const { thingerTokenParam, fleetKeyParam } = parameterNames(LOCAL_STAGE)
  const fleetsFile = options.fleetsFile === undefined ? LOCAL_FLEETS_FILE : options.fleetsFile
  const thinger = await startThingerEmulator({
    port: options.thingerPort ?? DEFAULT_THINGER_PORT,
    accounts: [{ username: LOCAL_USERNAME, tokens: [{ token: LOCAL_THINGER_TOKEN, allow: localTokenActions(fleetsFile, options.env) }, { token: LOCAL_ADMIN_THINGER_TOKEN }] }],
  })
  thinger.seed(LOCAL_USERNAME, LOCAL_WORKSHOP_FIXTURES)
  let ssm: LocalSsm | undefined
  let offline: ChildProcess | undefined
  try {
    if (options.ssmEndpoint === undefined) {
      ssm = await startLocalSsm({
        port: options.ssmPort ?? DEFAULT_SSM_PORT,
        region: LOCAL_REGION,
        parameters: [
          { name: thingerTokenParam, value: LOCAL_THINGER_TOKEN, type: 'SecureString' },
          { name: fleetKeyParam, value: LOCAL_FLEET_KEY, type: 'SecureString' },
          { name: `/thinger-provisioner/${LOCAL_STAGE}/workshop/claim-secret`, value: LOCAL_WORKSHOP_CLAIM_SECRET, type: 'SecureString' },
          { name: `/thinger-provisioner/${LOCAL_STAGE}/workshop/fleet-key`, value: LOCAL_WORKSHOP_FLEET_KEY, type: 'SecureString' },
        ],
      })
    }
    const ssmEndpoint = options.ssmEndpoint ?? ssm!.url
    const httpPort = options.httpPort ?? DEFAULT_HTTP_PORT
    const buildFolder = `.esbuild/stack-${httpPort}`
    const lambdaPort = options.lambdaPort ?? DEFAULT_LAMBDA_PORT
    offline = spawnOffline(httpPort, lambdaPort, {
      THINGER_API_URL: thinger.url,
      THINGER_USERNAME: LOCAL_USERNAME,
      AWS_ENDPOINT_URL_SSM: ssmEndpoint,
      AWS_REGION: LOCAL_REGION,
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
      ESBUILD_WORK_FOLDER: buildFolder,
      FLEETS_FILE: fleetsFile ?? '',
      ...options.env,
    }, options.onOutput ?? ((chunk) => process.stdout.write(chunk)))
    const url = `http://127.0.0.1:${httpPort}`
    await waitUntilServing(`${url}/v1/provision`, offline)
    const running = offline
    return {
      url,
      thinger,
      ssm,
      ssmEndpoint,
      close: async () => {
        await stopProcess(running)
        await Promise.all([thinger.close(), ssm?.close()])
        rmSync(join(PROJECT_DIR, buildFolder), { recursive: true, force: true })
      },
    }
  } catch (error) {
    if (offline) await stopProcess(offline)
    await Promise.all([thinger.close(), ssm?.close()])
    throw error
  }
}

function spawnOffline(httpPort: number, lambdaPort: number, env: Record<string, string>, onOutput: (chunk: string) => void): ChildProcess {
  const osls = createRequire(import.meta.url).resolve('osls/bin/serverless.js')
  const child = spawn(
    process.execPath,
    [osls, 'offline', 'start', '--stage', LOCAL_STAGE, '--httpPort', String(httpPort), '--lambdaPort', String(lambdaPort)],
    {
      cwd: PROJECT_DIR,
      env: { ...process.env, ...env, SLS_TELEMETRY_DISABLED: '1', SLS_NOTIFICATIONS_MODE: 'off', FORCE_COLOR: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    },
  )
  child.stdout?.setEncoding('utf8').on('data', onOutput)
  child.stderr?.setEncoding('utf8').on('data', onOutput)
  return child
}

async function waitUntilServing(url: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`serverless-offline exited with code ${child.exitCode} before serving`)
    try {
      const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
      await response.body?.cancel()
      if (response.status === 400) return
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, READY_POLL_MS))
  }
  throw new Error(`serverless-offline did not serve ${url} within ${READY_TIMEOUT_MS} ms`)
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.pid === undefined) return
  const exited = once(child, 'exit')
  // The whole process group: serverless-offline runs the function in workers and child processes.
  try {
    process.kill(-child.pid, 'SIGTERM')
  } catch {
    child.kill('SIGTERM')
  }
  const timer = setTimeout(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL')
    } catch {
      // already gone
    }
  }, 5000)
  await exited
  clearTimeout(timer)
}

/**
 * The function's token holds exactly what `thinger-provisioner token-policy` prints for the
 * stack's fleets, so the local stack proves that policy works. Settings the function will refuse
 * get every action here: the function reports them itself.
 */
function localTokenActions(fleetsFile: string | null, env: Record<string, string> = {}): ThingerAction[] | undefined {
  const settings = { THINGER_USERNAME: LOCAL_USERNAME, STAGE: LOCAL_STAGE, FLEETS_FILE: fleetsFile ?? '', ...env }
  try {
    return requiredActionsOf(loadConfig(settings, loadFleets(settings)).fleets.values()).map(({ action }) => action)
  } catch {
    return undefined
  }
}
