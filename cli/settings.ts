import { createRequire } from 'node:module'
import { type Config, loadConfig } from '../lib/config.js'
import { ConfigError } from '../lib/errors.js'
import { DEFAULT_FLEET, type Fleet } from '../lib/fleets/fleet.js'
import { CliError } from './errors.js'

// Commands that never call Thinger.io (fleet-key, keys, sign) run on factory stations without an
// account name; loadConfig requires one, so they get a stand-in that no request ever carries.
const STAND_IN_USERNAME = 'not-used-by-this-command'
/** True for the stand-in account name of a command run without THINGER_USERNAME: never shown as an account. */
export function isStandInUsername(username: string): boolean {
  return username === STAND_IN_USERNAME
}
const THINGER_DEVICE_ID_PATTERN = /^[A-Za-z0-9_-]{1,32}$/

const { loadFleets } = createRequire(import.meta.url)('../deploy/fleets.cjs') as {
  loadFleets: (env: NodeJS.ProcessEnv, options?: { allowMissingCaFile?: boolean }) => unknown
}

/**
 * Reads the function's own settings (and fleets file) from the environment, as the deployed
 * function does.
 * @throws CliError `config` naming the setting or the fleets-file field that is wrong.
 */
export function loadSettings(env: NodeJS.ProcessEnv, options: { thinger: boolean; allowMissingCaFile?: boolean }): Config {
  const effective = options.thinger || env.THINGER_USERNAME ? env : { ...env, THINGER_USERNAME: STAND_IN_USERNAME }
  try {
    return loadConfig(effective, loadFleets(effective, { allowMissingCaFile: options.allowMissingCaFile === true }))
  } catch (error) {
    if (error instanceof ConfigError) throw new CliError('config', error.detail ?? `setting ${error.setting} is invalid`)
    if (error instanceof Error && error.name === 'FleetsFileError') throw new CliError('config', error.message)
    throw error
  }
}

/**
 * Finds a fleet by name.
 * @throws CliError `usage` listing the fleets there are.
 */
export function findFleet(config: Config, name: string = DEFAULT_FLEET): Fleet {
  const fleet = config.fleets.get(name)
  if (fleet === undefined) {
    const where = config.fleetsSource === 'file' ? 'the fleets file (FLEETS_FILE)' : 'the settings (no fleets file: only "default")'
    throw new CliError('usage', `no fleet "${name}" in ${where}; fleets: ${[...config.fleets.keys()].join(', ')}`)
  }
  return fleet
}

/**
 * The key versions of a fleet that accepts device keys.
 * @throws CliError `usage` when the fleet accepts claim secrets only.
 */
export function requireKeyedFleet(fleet: Fleet): Fleet & { keyParam: string; keyVersions: number[] } {
  if (fleet.keyParam === undefined || !fleet.proof.includes('hmac')) {
    throw new CliError('usage', `fleet "${fleet.name}" does not accept device keys (proof: ${fleet.proof.join(', ')}), so it has no fleet key`)
  }
  return { ...fleet, keyParam: fleet.keyParam, keyVersions: fleet.keyVersions ?? [1] }
}

/** Why a device ID cannot be in a fleet, or `undefined` when it can. */
export function findDeviceIdProblem(device: string, fleet?: Pick<Fleet, 'devicePattern'>): string | undefined {
  if (!THINGER_DEVICE_ID_PATTERN.test(device)) return `${quote(device)} is not a Thinger.io device ID (^[A-Za-z0-9_-]{1,32}$)`
  if (fleet !== undefined && !fleet.devicePattern.test(device)) return `${quote(device)} does not match the fleet's devicePattern ${fleet.devicePattern.source}`
  return undefined
}

/**
 * Checks device IDs given on the command line.
 * @throws CliError `usage` naming the first one that is not valid.
 */
export function checkDeviceIds(devices: string[], fleet?: Pick<Fleet, 'devicePattern'>): void {
  for (const device of devices) {
    const problem = findDeviceIdProblem(device, fleet)
    if (problem !== undefined) throw new CliError('usage', `--device ${problem}`)
  }
}

/** A value shown in a message: JSON-quoted and shortened, so a stray control character cannot redraw the terminal. */
export function quote(value: string, maxChars = 40): string {
  return JSON.stringify(value.length > maxChars ? `${value.slice(0, maxChars)}…` : value)
}
