import type { Command } from 'commander'
import { requiredActionsOf, tokenPolicy } from '../../lib/thinger/policy.js'
import type { CliContext } from '../context.js'
import { findFleet, loadSettings } from '../settings.js'

interface TokenPolicyOptions {
  fleet?: string
  json?: boolean
}

/** `token-policy`: the exact permissions of the function's Thinger.io token for the deployed fleets. */
export function registerTokenPolicy(program: Command, context: CliContext): void {
  program
    .command('token-policy')
    .summary('print the Thinger.io token permissions the function needs')
    .description(
      'print the exact "allow" JSON of the Thinger.io access token the function needs for the fleets file (FLEETS_FILE), ' +
        'every action it can call and nothing more, then a checklist; paste the JSON into the console\'s token editor',
    )
    .option('--fleet <name>', 'only this fleet (default: every fleet of the deployment)')
    .option('--json', 'print only the JSON')
    .action(async (options: TokenPolicyOptions) => printTokenPolicy(context, options))
}

async function printTokenPolicy(context: CliContext, options: TokenPolicyOptions): Promise<void> {
  const config = loadSettings(context.env, { thinger: false })
  const fleets = options.fleet === undefined ? [...config.fleets.values()] : [findFleet(config, options.fleet)]
  const required = requiredActionsOf(fleets)
  const policy = tokenPolicy(required.map(({ action }) => action))
  const json = JSON.stringify(policy, null, 2)
  if (options.json) {
    context.stdout.write(`${json}\n`)
    return
  }
  const width = Math.max(...required.map(({ action }) => action.length))
  const scope = options.fleet === undefined ? `the fleets ${fleets.map((fleet) => `"${fleet.name}"`).join(', ')}` : `the fleet "${fleets[0]!.name}"`
  context.stdout.write(
    [
      `# Thinger.io token permissions for ${scope}`,
      json,
      '',
      'Checklist:',
      `1. Thinger.io console, Access Tokens, Add: a token for account "${context.env.THINGER_USERNAME || '(THINGER_USERNAME)'}"; paste the JSON above as its permissions.`,
      `2. Store it as a SecureString: aws ssm put-parameter --name ${config.thingerTokenParam} --type SecureString --value file://thinger-token.txt`,
      '3. Each action, and why the function needs it:',
      ...required.map(({ action, reason }) => `   ${action.padEnd(width)}  ${reason}`),
      '4. The command line uses the same token for revoke/unrevoke (UpdateDevice) and status (ReadDeviceStatus, ReadDeviceProperty).',
      '   revoke --delete also needs DeleteDevice: give it to a second token (--token-param), never to this one.',
      '5. Run this again after changing the fleets file: a new profile element needs new actions.',
      '',
    ].join('\n'),
  )
}
