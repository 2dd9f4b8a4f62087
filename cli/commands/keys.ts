import { relative } from 'node:path'
import { type Command, Option } from 'commander'
import { decodeFleetKey, deriveDeviceKey } from '../../lib/attestation/keys.js'
import { ConfigError } from '../../lib/errors.js'
import { type Fleet, keyVersionParam } from '../../lib/fleets/fleet.js'
import type { CliContext } from '../context.js'
import { deriveKeysCsv } from '../derive-csv.js'
import { loadDenyList } from '../deny-list.js'
import { CliError } from '../errors.js'
import { parseKeyVersion, readOptionFile } from '../options.js'
import { createProgressBar, formatCount } from '../progress.js'
import { checkDeviceIds, findFleet, requireKeyedFleet, loadSettings } from '../settings.js'

const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

interface DeriveOptions {
  fleet?: string
  device?: string
  csv?: string
  out?: string
  keyVersion?: number
  fleetKeyFile?: string
  force?: boolean
  progress: boolean
}

/** `keys derive`: the device keys a factory flashes, for one device or a whole CSV. */
export function registerKeys(program: Command, context: CliContext): void {
  const keys = program.command('keys').description('device keys: derived from the fleet key, flashed by the factory')
  keys
    .command('derive')
    .summary('derive the device keys a factory flashes')
    .description(
      'derive device keys: one with --device (printed on stdout), or every row of --csv into --out ' +
        '(input columns + device_key + key_version; nothing is written unless every row is valid)',
    )
    .option('--fleet <name>', 'fleet of the fleets file (FLEETS_FILE), or "default"', 'default')
    .addOption(new Option('--device <id>', 'one device ID: print its key').conflicts(['csv', 'out']))
    .addOption(new Option('--csv <file>', 'CSV with a header row and a "device" column (other columns are copied)'))
    .option('--out <file>', 'where the CSV with keys goes (mode 0600; written only when every row is valid)')
    .option('--key-version <n>', 'key version to derive from (default: the highest the fleet lists)', parseKeyVersion)
    .option('--fleet-key-file <file>', 'read the fleet key (base64) from this file instead of SSM, on an air-gapped station')
    .option('--force', 'replace --out if it exists')
    .option('--no-progress', 'no progress bar, even on a terminal')
    .action(async (options: DeriveOptions) => derive(context, options))
}

async function derive(context: CliContext, options: DeriveOptions): Promise<void> {
  if ((options.device === undefined) === (options.csv === undefined)) throw new CliError('usage', 'give either --device or --csv')
  if (options.csv !== undefined && options.out === undefined) throw new CliError('usage', '--csv needs --out')
  const config = loadSettings(context.env, { thinger: false })
  const fleet = requireKeyedFleet(findFleet(config, options.fleet))
  const version = options.keyVersion ?? Math.max(...fleet.keyVersions)
  if (options.device !== undefined) checkDeviceIds([options.device], fleet)
  const fleetKey = await readFleetKey(context, fleet, version, options.fleetKeyFile)

  if (options.device !== undefined) {
    context.stdout.write(`${deriveDeviceKey(fleetKey, options.device).toString('base64')}\n`)
    context.stderr.write(`device key of ${options.device}, key version ${version} of fleet "${fleet.name}"${version === 1 ? '' : ` (the device sends "keyVersion": ${version})`}\n`)
    return
  }

  const stop = new AbortController()
  const onSignal = (): void => stop.abort()
  if (context.signal === undefined) for (const signal of STOP_SIGNALS) process.once(signal, onSignal)
  const bar = createProgressBar(options.progress ? context.stderr : { write: () => undefined }, { now: context.now })
  try {
    const result = await deriveKeysCsv({
      input: options.csv!,
      output: options.out!,
      fleetKey,
      keyVersion: version,
      fleet,
      overwrite: options.force,
      signal: context.signal ?? stop.signal,
      now: context.now,
      onProgress: (rows, bytesRead, totalBytes) => bar.update(rows, bytesRead, totalBytes),
    })
    bar.done()
    context.stderr.write(
      `derived ${formatCount(result.rows)} device keys (key version ${version} of fleet "${fleet.name}") in ${(result.elapsedMs / 1000).toFixed(1)} s: ` +
        `${formatCount(result.rowsPerSecond)} rows/s → ${relative(process.cwd(), options.out!) || options.out}\n`,
    )
  } catch (error) {
    bar.done()
    throw error
  } finally {
    for (const signal of STOP_SIGNALS) process.off(signal, onSignal)
  }
}

async function readFleetKey(context: CliContext, fleet: Fleet & { keyParam: string; keyVersions: number[] }, version: number, file: string | undefined): Promise<Buffer> {
  if (!fleet.keyVersions.includes(version)) {
    context.stderr.write(
      `warning: fleet "${fleet.name}" lists key versions ${fleet.keyVersions.join(', ')}: devices with key version ${version} get 403 unknown_key_version until it is added and the function redeployed\n`,
    )
  }
  if (file !== undefined) {
    const text = await readOptionFile(file, '--fleet-key-file')
    return decodeKey(text, `--fleet-key-file ${file}`)
  }
  const name = keyVersionParam(fleet.keyParam, version)
  const [stored, denyList] = await Promise.all([context.ssm().getParameter(name), loadDenyList(context.ssm(), fleet.denyListParam)])
  if (stored === undefined) {
    throw new CliError('not_found', `key version ${version} of fleet "${fleet.name}" does not exist: SSM parameter ${name} (create it with \`fleet-key create --fleet ${fleet.name} --key-version ${version}\`)`)
  }
  if (denyList.list.retiredKeyVersions.includes(version)) {
    throw new CliError('key_revoked', `key version ${version} of fleet "${fleet.name}" is retired: devices flashed with it are refused (unrevoke --key-version ${version} to restore it)`)
  }
  return decodeKey(stored.value, `SSM parameter ${name}`)
}

function decodeKey(value: string, source: string): Buffer {
  try {
    return decodeFleetKey(value, source)
  } catch (error) {
    if (error instanceof ConfigError) throw new CliError('config', error.detail ?? `${source} is not a fleet key`)
    throw error
  }
}
