import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { createServer } from 'node:net'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { answerPublicPoint, generateAnswerKey, parseAnswerKey } from '../lib/attestation/answer-signature.js'
import { loadConfig } from '../lib/config.js'
import { ConfigError } from '../lib/errors.js'
import {
  DEFAULT_HTTP_PORT,
  DEFAULT_LAMBDA_PORT,
  DEFAULT_SSM_PORT,
  DEFAULT_THINGER_PORT,
  LOCAL_ADMIN_THINGER_TOKEN,
  LOCAL_ADMIN_TOKEN_PARAM,
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
import { LocalSettingError, PORT_SETTINGS } from './settings.js'
import { keyVersionParam } from '../lib/fleets/fleet.js'
import { requiredActionsOf } from '../lib/thinger/policy.js'
import { type LocalSsm, type SsmParameterSeed, startLocalSsm } from './ssm-server.js'
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
// Each stack builds the function into a folder of its own here: `osls package` cleans `.esbuild/`
// (its default work folder) and would pull the bundle from under a running stack.
const BUILD_ROOT = '.local-stack'
// A taken port's message suggests a free one this far up, trying a few.
const SUGGESTION_STEP = 100
const SUGGESTION_TRIES = 20
const MAX_PORT = 65_535

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
  /** Where to write the answer key's public half (a base64 line) for the device player, relative to the project or absolute; default: nowhere. */
  answerKeyFile?: string
  /** Stops a start under way (Ctrl+C while serverless-offline builds): everything started so far is stopped again. */
  signal?: AbortSignal
}

export interface LocalStack {
  url: string
  /** The fleets file served, as given (relative to the project), or null for none. */
  fleetsFile: string | null
  /** SSM parameters the fleets need that the project's own SSM was not seeded with (devices of those fleets get 500 until they exist). */
  unseededParameters: string[]
  /** The folder, relative to the project, the function is built into; removed by `close`. */
  buildFolder: string
  thinger: ThingerEmulator
  ssm: LocalSsm | undefined
  ssmEndpoint: string
  /**
   * The public half of the answer key this start made and put in the local SSM (base64 of the
   * 65-byte point, what firmware pins); undefined with `ssmEndpoint`, whose holder seeds the parameters.
   */
  answerPublicKey: string | undefined
  close(): Promise<void>
}

/**
 * Starts the whole local stack: the Thinger.io emulator, the local SSM endpoint seeded with the
 * development token, fleet key and a fresh answer key (new at each start), and the function under serverless-offline; resolves once
 * serverless-offline serves `/v1/provision` (probed without invoking the function, so no audit line).
 * @throws LocalSettingError when a port is taken or the function's settings are invalid: nothing was started.
 */
export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const { thingerTokenParam, fleetKeyParam, answerKeyParam } = parameterNames(LOCAL_STAGE)
  const ports = {
    httpPort: options.httpPort ?? DEFAULT_HTTP_PORT,
    lambdaPort: options.lambdaPort ?? DEFAULT_LAMBDA_PORT,
    thingerPort: options.thingerPort ?? DEFAULT_THINGER_PORT,
    ssmPort: options.ssmEndpoint === undefined ? (options.ssmPort ?? DEFAULT_SSM_PORT) : 0,
  }
  await checkPortsFree(Object.entries(ports).map(([key, port]) => ({ port, setting: PORT_SETTINGS[key as keyof typeof PORT_SETTINGS].name })))
  const fleetsFile = options.fleetsFile === undefined ? LOCAL_FLEETS_FILE : options.fleetsFile
  const config = checkFunctionSettings({ ...process.env, STAGE: LOCAL_STAGE, THINGER_USERNAME: LOCAL_USERNAME, THINGER_API_URL: 'http://127.0.0.1', FLEETS_FILE: fleetsFile ?? '', ...options.env })
  // The function's token holds exactly what `thinger-provisioner token-policy` prints for the
  // stack's fleets, so the local stack proves that policy works.
  const tokenActions = requiredActionsOf(config.fleets.values()).map(({ action }) => action)

  const thinger = await startThingerEmulator({
    port: ports.thingerPort,
    accounts: [{ username: LOCAL_USERNAME, tokens: [{ token: LOCAL_THINGER_TOKEN, allow: tokenActions }, { token: LOCAL_ADMIN_THINGER_TOKEN }] }],
  })
  thinger.seed(LOCAL_USERNAME, LOCAL_WORKSHOP_FIXTURES)
  let buildFolder: string | undefined
  let ssm: LocalSsm | undefined
  let seeded: SsmParameterSeed[] | undefined
  let offline: ChildProcess | undefined
  let answerPublicKey: string | undefined
  try {
    if (options.ssmEndpoint === undefined) {
      // A new key at each start, so that no answer key is ever a constant of the repository.
      const answerKey = generateAnswerKey()
      answerPublicKey = answerPublicPoint(parseAnswerKey(answerKey, 'answer key')).toString('base64')
      ssm = await startLocalSsm({
        port: ports.ssmPort,
        region: LOCAL_REGION,
        parameters: seeded = [
          { name: thingerTokenParam, value: LOCAL_THINGER_TOKEN, type: 'SecureString' },
          { name: fleetKeyParam, value: LOCAL_FLEET_KEY, type: 'SecureString' },
          { name: answerKeyParam, value: answerKey, type: 'SecureString' },
          { name: `/thinger-provisioner/${LOCAL_STAGE}/workshop/claim-secret`, value: LOCAL_WORKSHOP_CLAIM_SECRET, type: 'SecureString' },
          { name: `/thinger-provisioner/${LOCAL_STAGE}/workshop/fleet-key`, value: LOCAL_WORKSHOP_FLEET_KEY, type: 'SecureString' },
          // For the operators' `revoke --delete --token-param` (docs/operations.md, "Rehearsing without AWS").
          { name: LOCAL_ADMIN_TOKEN_PARAM, value: LOCAL_ADMIN_THINGER_TOKEN, type: 'SecureString' },
        ],
      })
    }
    const ssmEndpoint = options.ssmEndpoint ?? ssm!.url
    const { httpPort, lambdaPort } = ports
    mkdirSync(join(PROJECT_DIR, BUILD_ROOT), { recursive: true })
    removeFoldersOfEndedStacks()
    // Named after this process, so that a folder left by a killed stack says whose it was.
    buildFolder = relative(PROJECT_DIR, mkdtempSync(join(PROJECT_DIR, BUILD_ROOT, `build-${process.pid}-`)))
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
    await waitUntilServing(`${url}/v1/provision`, offline, httpPort, options.signal)
    if (options.answerKeyFile !== undefined && answerPublicKey !== undefined) writeFileSync(resolve(PROJECT_DIR, options.answerKeyFile), `${answerPublicKey}\n`)
    const running = offline
    const ownFolder = buildFolder
    return {
      url,
      fleetsFile,
      unseededParameters: seeded === undefined ? [] : requiredParameters(config).filter((name) => !seeded!.some((parameter) => parameter.name === name)),
      buildFolder: ownFolder,
      thinger,
      ssm,
      ssmEndpoint,
      answerPublicKey,
      close: async () => {
        await stopProcess(running)
        await Promise.all([thinger.close(), ssm?.close()])
        rmSync(join(PROJECT_DIR, ownFolder), { recursive: true, force: true })
      },
    }
  } catch (error) {
    if (offline) await stopProcess(offline)
    await Promise.all([thinger.close(), ssm?.close()])
    if (buildFolder !== undefined) rmSync(join(PROJECT_DIR, buildFolder), { recursive: true, force: true })
    throw error
  }
}

/** The SSM parameters without which a fleet answers 500: the token, key versions, claim secrets and CA parameters (a deny list may be missing). */
function requiredParameters(config: ReturnType<typeof loadConfig>): string[] {
  const names = new Set<string>([config.thingerTokenParam])
  for (const fleet of config.fleets.values()) {
    names.add(fleet.thinger.tokenParam)
    if (fleet.keyParam !== undefined) for (const version of fleet.keyVersions ?? [1]) names.add(keyVersionParam(fleet.keyParam, version))
    if (fleet.claimParam !== undefined) names.add(fleet.claimParam)
    if (fleet.x509?.caParam !== undefined) names.add(fleet.x509.caParam)
  }
  return [...names].sort()
}

/** Removes the build folders a stack that ended without cleaning up left (killed with SIGKILL, a machine that went down). */
function removeFoldersOfEndedStacks(): void {
  for (const folder of readdirSync(join(PROJECT_DIR, BUILD_ROOT))) {
    const pid = /^build-(\d+)-/.exec(folder)?.[1]
    if (pid !== undefined && !isRunning(Number(pid))) rmSync(join(PROJECT_DIR, BUILD_ROOT, folder), { recursive: true, force: true })
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Fails before anything starts when a port is taken: a second stack must not answer for the first.
 * Names every taken port at once, with a free one for each setting, so one more try is enough.
 */
async function checkPortsFree(ports: { port: number; setting: string }[]): Promise<void> {
  const taken: { port: number; setting: string; code: string }[] = []
  for (const { port, setting } of ports) {
    if (port === 0) continue
    const code = await openFailure(port)
    if (code !== undefined) taken.push({ port, setting, code })
  }
  if (taken.length === 0) return
  const avoid = new Set(ports.map(({ port }) => port))
  const suggested: string[] = []
  for (const { port, setting } of taken) {
    const free = await nearbyFreePort(port, avoid)
    if (free === undefined) break
    avoid.add(free)
    suggested.push(`${setting}=${free}`)
  }
  const example = suggested.length === taken.length ? `, for example: ${suggested.join(' ')} npm start` : ''
  const why = (code: string) => (code === 'EADDRINUSE' ? 'is already in use' : `cannot be opened (${code})`)
  if (taken.length === 1) {
    const [{ port, setting, code }] = taken as [(typeof taken)[number]]
    throw new LocalSettingError(`port ${port} ${why(code)}${code === 'EADDRINUSE' ? ' (another `npm start`?)' : ''}: set ${setting} to a free port${example}`)
  }
  const list = taken.map(({ port, setting, code }) => `${port} (${setting}) ${why(code)}`).join(', ')
  throw new LocalSettingError(`${taken.length} ports are taken (another \`npm start\`?): ${list}; set ${taken.map(({ setting }) => setting).join(', ')} to free ports${example}`)
}

/** Why the port cannot be listened on (an errno code), or undefined when it is free. */
async function openFailure(port: number): Promise<string | undefined> {
  // No host: the dual-stack wildcard conflicts with a listener on 127.0.0.1, ::1 or localhost alike.
  const server = createServer()
  const failure = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
    server.once('error', resolve)
    server.listen({ port, exclusive: true }, () => resolve(undefined))
  })
  if (failure === undefined) {
    await new Promise((resolve) => server.close(resolve))
    return undefined
  }
  return failure.code ?? failure.message
}

/** A free port near a taken one (100 up, then 200, ...), for the example command. */
async function nearbyFreePort(port: number, avoid: Set<number>): Promise<number | undefined> {
  for (let step = 1; step <= SUGGESTION_TRIES; step++) {
    const candidate = port + step * SUGGESTION_STEP
    if (candidate > MAX_PORT) return undefined
    if (!avoid.has(candidate) && (await openFailure(candidate)) === undefined) return candidate
  }
  return undefined
}

/** The function's own settings check, run here so a bad value stops `npm start` at once instead of failing every request. */
function checkFunctionSettings(env: NodeJS.ProcessEnv): ReturnType<typeof loadConfig> {
  try {
    return loadConfig(env, loadFleets(env))
  } catch (error) {
    if (error instanceof ConfigError) throw new LocalSettingError(`${error.detail} (the function would answer every request 500 internal_error)`)
    if (error instanceof Error && error.name === 'FleetsFileError') throw new LocalSettingError(error.message)
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
      env: {
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
        ...process.env,
        ...env,
        SLS_TELEMETRY_DISABLED: '1',
        SLS_NOTIFICATIONS_MODE: 'off',
        FORCE_COLOR: '0',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    },
  )
  child.stdout?.setEncoding('utf8').on('data', onOutput)
  child.stderr?.setEncoding('utf8').on('data', onOutput)
  return child
}

/**
 * Waits until serverless-offline answers on the route. The probe is a GET, which serverless-offline
 * answers itself (the route takes POST only) without invoking the function.
 */
async function waitUntilServing(url: string, child: ChildProcess, httpPort: number, signal: AbortSignal | undefined): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS
  let output = ''
  const watch = (chunk: string) => void (output = (output + chunk).slice(-4096))
  child.stdout?.on('data', watch)
  child.stderr?.on('data', watch)
  while (Date.now() < deadline) {
    signal?.throwIfAborted()
    if (child.exitCode !== null) throw new Error(`serverless-offline exited with code ${child.exitCode} before serving (its output is above)`)
    if (output.includes('EADDRINUSE')) throw new LocalSettingError(`port ${httpPort} or the Lambda port was taken while serverless-offline started: set HTTP_PORT and LAMBDA_PORT to free ports`)
    try {
      const response = await fetch(url, { method: 'GET' })
      await response.body?.cancel()
      if (response.status === 404 || response.status === 405) return
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
