import { type Command, Option } from 'commander'
import { deriveHmacSealKey, openSealed, SealOpenError } from '../../lib/attestation/seal.js'
import type { CliContext } from '../context.js'
import { CliError } from '../errors.js'
import { parseWholeNumber, readOptionFile } from '../options.js'
import { readDeviceKey } from './sign.js'

interface OpenOptions {
  answer: string
  request?: string
  device?: string
  timestamp?: number
  deviceKey?: string
  deviceKeyFile?: string
}

/** `open`: what a device does with a sealed (protocol v2) answer, for testing without a device. */
export function registerOpen(program: Command, context: CliContext): void {
  program
    .command('open')
    .summary('open a sealed answer with the device key, for testing')
    .description(
      'read the service\'s JSON answer to a `sign --sealed` request and print it with the credential opened, as the device does; ' +
        'the answer must be for the device and the timestamp signed (--request, the body `sign` printed, names both)',
    )
    .option('--answer <file>', 'the service\'s JSON answer ("-": standard input)', '-')
    .addOption(new Option('--request <file>', 'the request body `sign --sealed` printed: its device and timestamp').conflicts(['device', 'timestamp']))
    .option('--device <id>', 'device ID (instead of --request)')
    .option('--timestamp <seconds>', 'the Unix time the request signed (instead of --request)', parseWholeNumber(0, Number.MAX_SAFE_INTEGER))
    .addOption(new Option('--device-key <key>', 'device key, base64 (as `keys derive` prints it); visible to `ps`, so for tests').conflicts('deviceKeyFile'))
    .option('--device-key-file <file>', 'read the device key (base64) from this file instead')
    .action(async (options: OpenOptions) => open(context, options))
}

async function open(context: CliContext, options: OpenOptions): Promise<void> {
  const deviceKey = await readDeviceKey(options)
  const { device, timestamp } = options.request === undefined ? { device: options.device, timestamp: options.timestamp } : await readRequest(options.request)
  if (device === undefined || timestamp === undefined) throw new CliError('usage', 'give --request, or --device and --timestamp')
  const answer = readJson(await readText(options.answer, '--answer'), '--answer') as Record<string, unknown>
  if (answer.error !== undefined) {
    const error = answer.error as { code?: unknown; message?: unknown }
    throw new CliError('refused_answer', `the answer is a refusal: ${String(error.code)}${typeof error.message === 'string' ? ` (${error.message})` : ''}`)
  }
  if (answer.device !== device) throw new CliError('usage', `the answer is for device ${JSON.stringify(answer.device)}, not ${device}`)
  if (typeof answer.sealed !== 'string') {
    throw new CliError('not_sealed', typeof answer.credential === 'string' ? 'the answer carries the credential in clear: the request was not sealed (sign --sealed)' : 'the answer has no "sealed" field')
  }
  const binding = { username: String(answer.username), device, host: String(answer.host) }
  let credential: string
  try {
    credential = openSealed(answer.sealed, deriveHmacSealKey(deviceKey, device, timestamp), binding)
  } catch (error) {
    if (error instanceof SealOpenError) throw new CliError('sealed_not_opened', `${error.message}: a wrong device key or timestamp, or an answer changed on the way`)
    throw error
  }
  const { sealed: _sealed, ...rest } = answer
  context.stdout.write(`${JSON.stringify({ ...rest, credential })}\n`)
}

async function readRequest(file: string): Promise<{ device?: string; timestamp?: number }> {
  const body = readJson(await readText(file, '--request'), '--request') as { device?: unknown; timestamp?: unknown; version?: unknown }
  if (typeof body.device !== 'string' || typeof body.timestamp !== 'number') throw new CliError('usage', `--request ${file} is not a request body (no device or timestamp)`)
  if (body.version !== 2) throw new CliError('usage', `--request ${file} is not a sealed request: its answer has nothing to open (sign --sealed)`)
  return { device: body.device, timestamp: body.timestamp }
}

/** The file an option names, or standard input for "-". */
function readText(file: string, option: string): Promise<string> {
  return readOptionFile(file === '-' ? '/dev/stdin' : file, option)
}

function readJson(text: string, option: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    throw new CliError('usage', `${option} is not JSON: pass the service's answer as curl prints it (Accept: application/json)`)
  }
}
