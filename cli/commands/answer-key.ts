import { existsSync } from 'node:fs'
import type { KeyObject } from 'node:crypto'
import { type Command, Option } from 'commander'
import { AnswerKeyError, answerPublicPoint, generateAnswerKey, parseAnswerKey, parseAnswerPublicKey } from '../../lib/attestation/answer-signature.js'
import { ConfigError } from '../../lib/errors.js'
import type { CliContext } from '../context.js'
import { CliError } from '../errors.js'
import { readOptionFile } from '../options.js'
import { loadSettings } from '../settings.js'

const FORMATS = ['base64', 'hex', 'c'] as const
type Format = (typeof FORMATS)[number]
const C_BYTES_PER_LINE = 13

/** `answer-key create` and `answer-key show`: the key that signs every success answer, and its public half for firmware. */
export function registerAnswerKey(program: Command, context: CliContext): void {
  const answerKey = program.command('answer-key').description('the answer key: signs every success answer; firmware pins its public half (docs/protocol.md)')
  answerKey
    .command('create')
    .summary('generate the deployment\'s answer key and store it in SSM')
    .description(
      'generate an ECDSA P-256 answer key and store it as an SSM SecureString at ANSWER_KEY_PARAM (default /thinger-provisioner/<stage>/answer-key); ' +
        'an existing key is never replaced (rotation: docs/operations.md). Prints the public half, as `answer-key show` does',
    )
    .option('--kms-key-id <id>', 'KMS key that encrypts the parameter (default: the account\'s aws/ssm key)')
    .action(async (options: { kmsKeyId?: string }) => createAnswerKey(context, options))
  answerKey
    .command('show')
    .summary('print the answer key\'s public half, for firmware to pin')
    .description('read the answer key from SSM (ANSWER_KEY_PARAM) and print only its public half: the 65-byte uncompressed P-256 point')
    .addOption(new Option('--format <format>', 'base64 (what the sketch\'s PROVISIONING_ANSWER_KEY and the Linux client\'s --answer-key take), hex, or c (an array for the C core)').choices(FORMATS).default('base64'))
    .action(async (options: { format: Format }) => showAnswerKey(context, options))
}

async function createAnswerKey(context: CliContext, options: { kmsKeyId?: string }): Promise<void> {
  const name = loadSettings(context.env, { thinger: false }).answerKeyParam
  const key = generateAnswerKey()
  await context.ssm().putParameter({ name, value: key, type: 'SecureString', overwrite: false, secret: true, ...(options.kmsKeyId ? { kmsKeyId: options.kmsKeyId } : {}) })
  context.stderr.write(`created SecureString ${name}: the deployment's answer key (ECDSA P-256); its public half, for firmware to pin:\n`)
  context.stdout.write(`${answerPublicPoint(parseAnswerKey(key, 'ANSWER_KEY_PARAM')).toString('base64')}\n`)
}

async function showAnswerKey(context: CliContext, options: { format: Format }): Promise<void> {
  const { name, key } = await readDeploymentAnswerKey(context)
  const point = answerPublicPoint(key)
  if (options.format === 'base64') context.stdout.write(`${point.toString('base64')}\n`)
  else if (options.format === 'hex') context.stdout.write(`${point.toString('hex')}\n`)
  else context.stdout.write(cArray(point, name))
}

/**
 * The deployment's answer key from SSM (ANSWER_KEY_PARAM), as a private key object (only its
 * public half ever leaves this process).
 * @throws CliError `not_found` when the parameter does not exist, `config` when it holds no P-256 key.
 */
export async function readDeploymentAnswerKey(context: CliContext): Promise<{ name: string; key: KeyObject }> {
  const name = loadSettings(context.env, { thinger: false }).answerKeyParam
  const stored = await context.ssm().getParameter(name)
  if (stored === undefined) throw new CliError('not_found', `no answer key at ${name}: create it with \`thinger-provisioner answer-key create\``)
  try {
    return { name, key: parseAnswerKey(stored.value, 'ANSWER_KEY_PARAM') }
  } catch (error) {
    if (error instanceof ConfigError) throw new CliError('config', `${name}: ${String(error.detail).replace(/^setting ANSWER_KEY_PARAM: /, '')}`)
    throw error
  }
}

/**
 * Pinned answer public keys from `--answer-key` values: each the base64 (or hex) point `answer-key
 * show` prints, or a file holding one.
 * @throws CliError `usage` for anything else.
 */
export async function readAnswerPublicKeys(values: string[]): Promise<KeyObject[]> {
  return Promise.all(
    values.map(async (value) => {
      const text = existsSync(value) ? await readOptionFile(value, '--answer-key') : value
      try {
        return parseAnswerPublicKey(text)
      } catch (error) {
        if (error instanceof AnswerKeyError) throw new CliError('usage', `--answer-key: ${error.message}`)
        throw error
      }
    }),
  )
}

function cArray(point: Buffer, name: string): string {
  const lines: string[] = []
  for (let offset = 0; offset < point.length; offset += C_BYTES_PER_LINE) {
    lines.push(`    ${[...point.subarray(offset, offset + C_BYTES_PER_LINE)].map((byte) => `0x${byte.toString(16).padStart(2, '0')}`).join(', ')},`)
  }
  return `/* The public half of the answer key at ${name} (P-256, uncompressed point). */\nstatic const unsigned char THINGER_PROVISIONER_ANSWER_KEY[${point.length}] = {\n${lines.join('\n')}\n};\n`
}
