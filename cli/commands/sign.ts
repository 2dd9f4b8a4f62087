import { type Command, Option } from 'commander'
import { signRequest } from '../../lib/attestation/keys.js'
import { parseProvisionRequest } from '../../lib/attestation/request.js'
import { ValidationError } from '../../lib/errors.js'
import type { CliContext } from '../context.js'
import { CliError } from '../errors.js'
import { collectPairs, parseKeyVersion, parseWholeNumber, readOptionFile } from '../options.js'

// A device key is always the base64 of 32 bytes (HMAC-SHA256): 43 characters and one '='.
const DEVICE_KEY_PATTERN = /^[A-Za-z0-9+/]{43}=$/

interface SignOptions {
  device: string
  deviceKey?: string
  deviceKeyFile?: string
  timestamp?: number
  fleet?: string
  keyVersion?: number
  meta?: Record<string, string>
  sealed?: boolean
}

/** `sign`: the body a device would POST to /v1/provision, for testing without a device. */
export function registerSign(program: Command, context: CliContext): void {
  program
    .command('sign')
    .summary('print a signed request body, for testing')
    .description('print the JSON body a device would POST to /v1/provision, signed with its device key (for testing)')
    .requiredOption('--device <id>', 'device ID')
    .addOption(new Option('--device-key <key>', 'device key, base64 (as `keys derive` prints it); visible to `ps`, so for tests').conflicts('deviceKeyFile'))
    .option('--device-key-file <file>', 'read the device key (base64) from this file instead')
    .option('--timestamp <seconds>', 'Unix time to sign (default: now)', parseWholeNumber(0, Number.MAX_SAFE_INTEGER))
    .option('--fleet <name>', 'add "fleet" to the body (default: the service\'s "default" fleet)')
    .option('--key-version <n>', 'add "keyVersion" to the body (default: 1, which the body then leaves out)', parseKeyVersion)
    .option('--meta <key=value>', 'add a "meta" entry (repeatable)', collectPairs)
    .option('--sealed', 'protocol version 2: add "version": 2 and sign "v2\\n…", so the answer carries the credential sealed to the device key (read it with `open`); fleets with sealing: required take only these')
    .action(async (options: SignOptions) => sign(context, options))
}

async function sign(context: CliContext, options: SignOptions): Promise<void> {
  const deviceKey = await readDeviceKey(options)
  const timestamp = options.timestamp ?? Math.floor(context.now() / 1000)
  const body = {
    device: options.device,
    ...(options.fleet === undefined ? {} : { fleet: options.fleet }),
    ...(options.keyVersion === undefined ? {} : { keyVersion: options.keyVersion }),
    ...(options.sealed ? { version: 2 } : {}),
    timestamp,
    signature: signRequest(deviceKey, options.device, timestamp, options.sealed ? 2 : 1),
    ...(options.meta === undefined ? {} : { meta: options.meta }),
  }
  // The function's own parser: a body this prints is one the function accepts.
  try {
    parseProvisionRequest(body)
  } catch (error) {
    if (error instanceof ValidationError) throw new CliError('usage', error.message)
    throw error
  }
  context.stdout.write(`${JSON.stringify(body)}\n`)
}

/** The device key of --device-key or --device-key-file: 32 bytes, as `keys derive` prints them in base64. */
export async function readDeviceKey(options: { deviceKey?: string; deviceKeyFile?: string }): Promise<Buffer> {
  if ((options.deviceKey === undefined) === (options.deviceKeyFile === undefined)) throw new CliError('usage', 'give either --device-key or --device-key-file')
  const text = (options.deviceKey ?? (await readOptionFile(options.deviceKeyFile!, '--device-key-file'))).trim()
  if (!DEVICE_KEY_PATTERN.test(text)) throw new CliError('usage', 'the device key must be the base64 of 32 bytes (44 characters), as `keys derive` prints it')
  return Buffer.from(text, 'base64')
}
