import { type Command, Option } from 'commander'
import type { KeyObject } from 'node:crypto'
import { answerPublicPoint, MAX_PINNED_ANSWER_KEYS, parseAnswerPublicKey, requestBodyDigest, type SignedAnswer, verifyAnswerSignature } from '../../lib/attestation/answer-signature.js'
import { deriveHmacSealKey, openSealed, SealOpenError } from '../../lib/attestation/seal.js'
import type { CliContext } from '../context.js'
import { CliError } from '../errors.js'
import { collect, parseWholeNumber, readOptionFile } from '../options.js'
import { readAnswerPublicKeys, readDeploymentAnswerKey } from './answer-key.js'
import { readDeviceKey } from './sign.js'

interface OpenOptions {
  answer: string
  request?: string
  device?: string
  timestamp?: number
  deviceKey?: string
  deviceKeyFile?: string
  answerKey?: string[]
  answerCheck: boolean
}

/** `open`: what a device does with a sealed (protocol v2) answer, for testing without a device. */
export function registerOpen(program: Command, context: CliContext): void {
  program
    .command('open')
    .summary('open a sealed answer with the device key, for testing')
    .description(
      'read the service\'s JSON answer to a `sign --sealed` request and print it with the credential opened, as the device does; ' +
        'the answer must be for the device and the timestamp signed (--request, the body `sign` printed, names both), ' +
        'and signed by the deployment\'s answer key over that request body (docs/protocol.md, "Answer signatures")',
    )
    .option('--answer <file>', 'the service\'s JSON answer ("-": standard input)', '-')
    .addOption(new Option('--request <file>', 'the request body `sign --sealed` printed: its device and timestamp').conflicts(['device', 'timestamp']))
    .option('--device <id>', 'device ID (instead of --request)')
    .option('--timestamp <seconds>', 'the Unix time the request signed (instead of --request)', parseWholeNumber(0, Number.MAX_SAFE_INTEGER))
    .addOption(new Option('--device-key <key>', 'device key, base64 (as `keys derive` prints it); visible to `ps`, so for tests').conflicts('deviceKeyFile'))
    .option('--device-key-file <file>', 'read the device key (base64) from this file instead')
    .option('--answer-key <key>', `the answer public key to check the signature with, as \`answer-key show\` prints it, or a file holding it (up to ${MAX_PINNED_ANSWER_KEYS}; default: the deployment's, read from SSM at ANSWER_KEY_PARAM)`, collect)
    .option('--no-answer-check', 'do not check the answer signature (a deployment without its answer key, or --device and --timestamp)')
    .action(async (options: OpenOptions) => open(context, options))
}

async function open(context: CliContext, options: OpenOptions): Promise<void> {
  const deviceKey = await readDeviceKey(options)
  const { device, timestamp, body } = options.request === undefined ? { device: options.device, timestamp: options.timestamp, body: undefined } : await readRequest(options.request)
  if (device === undefined || timestamp === undefined) throw new CliError('usage', 'give --request, or --device and --timestamp')
  if (options.answerCheck && body === undefined) throw new CliError('usage', 'the answer signature covers the request body: give --request (the file `sign` wrote), or --no-answer-check')
  const answerKeys = options.answerCheck ? await pinnedAnswerKeys(context, options.answerKey ?? []) : []
  const answer = readJson(await readText(options.answer, '--answer'), '--answer') as Record<string, unknown>
  if (answer.error !== undefined) {
    const error = answer.error as { code?: unknown; message?: unknown }
    throw new CliError('refused_answer', `the answer is a refusal: ${String(error.code)}${typeof error.message === 'string' ? ` (${error.message})` : ''}`)
  }
  if (answer.device !== device) throw new CliError('usage', `the answer is for device ${JSON.stringify(answer.device)}, not ${device}`)
  if (typeof answer.sealed !== 'string') {
    throw new CliError('not_sealed', typeof answer.credential === 'string' ? 'the answer carries the credential in clear: the request was not sealed (sign --sealed)' : 'the answer has no "sealed" field')
  }
  if (body !== undefined && options.answerCheck) checkAnswerSignature(answer, body, answerKeys)
  const binding = { username: String(answer.username), device, host: String(answer.host) }
  let credential: string
  try {
    credential = openSealed(answer.sealed, deriveHmacSealKey(deviceKey, device, timestamp), binding)
  } catch (error) {
    if (error instanceof SealOpenError) throw new CliError('sealed_not_opened', `${error.message}: a wrong device key or timestamp, or an answer changed on the way`)
    throw error
  }
  const { sealed: _sealed, answerSignature: _signature, ...rest } = answer
  context.stdout.write(`${JSON.stringify({ ...rest, credential })}\n`)
}

/** The keys `--answer-key` names, or the deployment's own (its public half) from SSM. */
async function pinnedAnswerKeys(context: CliContext, given: string[]): Promise<KeyObject[]> {
  if (given.length > MAX_PINNED_ANSWER_KEYS) throw new CliError('usage', `--answer-key: at most ${MAX_PINNED_ANSWER_KEYS} keys (the current one and, during a rotation, the next)`)
  if (given.length > 0) return readAnswerPublicKeys(given)
  return [parseAnswerPublicKey(answerPublicPoint((await readDeploymentAnswerKey(context)).key).toString('base64'))]
}

/**
 * What a device does before opening anything: the answer's signature must verify over its fields
 * and the request body it answers. `curl -d @file` sends the file without its last newline,
 * `--data-binary` with it: either is the body `sign` wrote.
 */
function checkAnswerSignature(answer: Record<string, unknown>, body: string, answerKeys: KeyObject[]): void {
  if (answer.answerSignature === undefined) {
    throw new CliError('answer_unsigned', 'the answer carries no answerSignature: a deployment without its answer key (`doctor` says), or not the service')
  }
  const bodies = [...new Set([body, body.replace(/\r?\n$/, '')])]
  if (!bodies.some((candidate) => verifyAnswerSignature(answer as unknown as SignedAnswer, requestBodyDigest(candidate), answer.answerSignature, answerKeys))) {
    throw new CliError('answer_signature_invalid', 'the answer signature does not verify under the answer key for this request: not the service\'s answer (or another deployment\'s key, or another request)')
  }
}

async function readRequest(file: string): Promise<{ device?: string; timestamp?: number; body: string }> {
  const text = await readText(file, '--request')
  const body = readJson(text, '--request') as { device?: unknown; timestamp?: unknown; version?: unknown }
  if (typeof body.device !== 'string' || typeof body.timestamp !== 'number') throw new CliError('usage', `--request ${file} is not a request body (no device or timestamp)`)
  if (body.version !== 2) throw new CliError('usage', `--request ${file} is not a sealed request: its answer has nothing to open (sign --sealed)`)
  return { device: body.device, timestamp: body.timestamp, body: text }
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
