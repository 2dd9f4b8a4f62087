import { randomBytes } from 'node:crypto'
import type { Command } from 'commander'
import { keyVersionParam } from '../../lib/fleets/fleet.js'
import type { CliContext } from '../context.js'
import { parseKeyVersion, parseWholeNumber } from '../options.js'
import { findFleet, requireKeyedFleet, loadSettings } from '../settings.js'

const DEFAULT_KEY_BYTES = 32
const MIN_KEY_BYTES = 32
const MAX_KEY_BYTES = 64

interface CreateOptions {
  fleet?: string
  keyVersion: number
  bytes: number
  kmsKeyId?: string
  print?: boolean
}

/** `fleet-key create`: a random fleet key, stored as an SSM SecureString and shown only with `--print`. */
export function registerFleetKey(program: Command, context: CliContext): void {
  const fleetKey = program.command('fleet-key').description('fleet keys: the secret in SSM every device key derives from')
  fleetKey
    .command('create')
    .summary('generate a fleet key and store it in SSM')
    .description(
      'generate a random fleet key and store it as an SSM SecureString at the fleet\'s keyParam (key version 1) ' +
        'or keyParam-vN (version N); an existing parameter is never replaced',
    )
    .option('--fleet <name>', 'fleet of the fleets file (FLEETS_FILE), or "default"', 'default')
    .option('--key-version <n>', 'key version to create (1 to 999)', parseKeyVersion, 1)
    .option('--bytes <n>', `random bytes in the key (${MIN_KEY_BYTES} to ${MAX_KEY_BYTES})`, parseWholeNumber(MIN_KEY_BYTES, MAX_KEY_BYTES), DEFAULT_KEY_BYTES)
    .option('--kms-key-id <id>', 'KMS key that encrypts the parameter (default: the account\'s aws/ssm key)')
    .option('--print', 'also print the new key (base64) on stdout, for an air-gapped factory station')
    .action(async (options: CreateOptions) => createFleetKey(context, options))
}

async function createFleetKey(context: CliContext, options: CreateOptions): Promise<void> {
  const config = loadSettings(context.env, { thinger: false })
  const fleet = requireKeyedFleet(findFleet(config, options.fleet))
  const name = keyVersionParam(fleet.keyParam, options.keyVersion)
  const key = randomBytes(options.bytes).toString('base64')
  await context.ssm().putParameter({ name, value: key, type: 'SecureString', overwrite: false, secret: true, ...(options.kmsKeyId ? { kmsKeyId: options.kmsKeyId } : {}) })
  // With --print the key is the only thing on stdout, so `> key.b64` captures exactly it.
  const report = options.print ? context.stderr : context.stdout
  report.write(`created SecureString ${name}: key version ${options.keyVersion} of fleet "${fleet.name}" (${options.bytes} random bytes)\n`)
  if (!fleet.keyVersions.includes(options.keyVersion)) {
    const listed = [...fleet.keyVersions, options.keyVersion].sort((a, b) => a - b)
    const where = config.fleetsSource === 'file' ? `keyVersions: [${listed.join(', ')}] in fleet "${fleet.name}" of the fleets file` : `FLEET_KEY_VERSIONS=${listed.join(',')}`
    context.stderr.write(
      `note: the function does not read key version ${options.keyVersion} yet (it reads ${fleet.keyVersions.join(', ')}): ` +
        `set ${where} and redeploy; until then devices signing with it get 403 unknown_key_version\n`,
    )
  }
  if (options.print) context.stdout.write(`${key}\n`)
}
