import { createRequire } from 'node:module'
import { Command, CommanderError } from 'commander'
import { ThingerClient } from '../lib/thinger/client.js'
import { registerAnswerKey } from './commands/answer-key.js'
import { registerCa } from './commands/ca.js'
import { registerCerts } from './commands/certs.js'
import { registerDoctor } from './commands/doctor.js'
import { registerFleetKey } from './commands/fleet-key.js'
import { registerKeys } from './commands/keys.js'
import { registerRevoke } from './commands/revoke.js'
import { registerSign } from './commands/sign.js'
import { registerOpen } from './commands/open.js'
import { registerStatus } from './commands/status.js'
import { registerTokenPolicy } from './commands/token-policy.js'
import type { CliContext } from './context.js'
import { CliError, EXIT_FAILURE, EXIT_USAGE } from './errors.js'
import { createSsmPort, type SsmPort } from './ssm.js'

const PROGRAM = 'thinger-provisioner'
const { version: PACKAGE_VERSION } = createRequire(import.meta.url)('../package.json') as { version: string }
const SETTINGS_HELP = `
Settings come from the environment, as for the deployed function: STAGE, FLEETS_FILE (or
FLEET_KEY_PARAM, FLEET_KEY_VERSIONS, DENY_LIST_PARAM, DEVICE_ID_PATTERN without one),
THINGER_API_URL, THINGER_USERNAME, THINGER_TOKEN_PARAM, SSM_CACHE_SECONDS; AWS credentials and
AWS_REGION (else us-east-1, as the deploy); AWS_ENDPOINT_URL_SSM for another SSM endpoint (moto, the local stack),
AWS_ENDPOINT_URL_KMS for another KMS endpoint (moto).
Exit codes: 0 done, 1 failed, 2 usage or configuration error, 130 interrupted.
See docs/operations.md.`

/**
 * Runs the command line with `argv` (the arguments after the program name) and returns its exit
 * code. Every error is reported on stderr with its stable code; nothing here exits the process.
 */
export async function runCli(argv: string[], overrides: Partial<CliContext> = {}): Promise<number> {
  const env = overrides.env ?? process.env
  let ssm: SsmPort | undefined
  const context: CliContext = {
    env,
    stdout: overrides.stdout ?? process.stdout,
    stderr: overrides.stderr ?? process.stderr,
    ssm: overrides.ssm ?? (() => (ssm ??= createSsmPort(env))),
    thinger: overrides.thinger ?? ((options) => new ThingerClient(options)),
    now: overrides.now ?? Date.now,
    sleep: overrides.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms))),
    ...(overrides.signal ? { signal: overrides.signal } : {}),
    ...(overrides.kms ? { kms: overrides.kms } : {}),
    ...(overrides.deployed ? { deployed: overrides.deployed } : {}),
  }
  const program = new Command(PROGRAM)
    .description('operate thinger-provisioner fleets: fleet keys, device keys for the factory, revocation, device status')
    .version(PACKAGE_VERSION)
    .exitOverride()
    .configureOutput({ writeOut: (text) => void context.stdout.write(text), writeErr: (text) => void context.stderr.write(text) })
    .showHelpAfterError('(add --help for usage)')
    .addHelpText('after', SETTINGS_HELP)
  registerFleetKey(program, context)
  registerAnswerKey(program, context)
  registerKeys(program, context)
  registerSign(program, context)
  registerOpen(program, context)
  registerRevoke(program, context)
  registerStatus(program, context)
  registerTokenPolicy(program, context)
  registerDoctor(program, context)
  registerCa(program, context)
  registerCerts(program, context)
  try {
    await program.parseAsync(withoutHelpAfterUnknownCommand(program, argv), { from: 'user' })
    return 0
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : EXIT_USAGE
    if (error instanceof CliError) {
      context.stderr.write(`${PROGRAM}: ${error.message} [${error.code}]\n`)
      return error.exitCode
    }
    // Only the class and message: an unexpected error must still not dump request objects.
    const name = error instanceof Error ? error.name : 'Error'
    context.stderr.write(`${PROGRAM}: unexpected ${name}: ${error instanceof Error ? error.message : String(error)}\n`)
    return EXIT_FAILURE
  }
}

/**
 * Commander answers `fleet-key rotate --help` with the help of `fleet-key` and exit 0, as if
 * `rotate` existed. Without the help flag it reports the unknown command (and what was meant).
 */
function withoutHelpAfterUnknownCommand(program: Command, argv: string[]): string[] {
  let command = program
  for (const arg of argv) {
    if (arg.startsWith('-')) continue
    if (command.commands.length === 0 || arg === 'help') return argv
    const next = command.commands.find((sub) => sub.name() === arg || sub.aliases().includes(arg))
    if (next === undefined) return argv.filter((other) => other !== '--help' && other !== '-h')
    command = next
  }
  return argv
}
