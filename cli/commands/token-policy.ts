import type { Command } from 'commander'
import { requiredActionsOf, tokenPolicy } from '../../lib/thinger/policy.js'
import { groupByTarget } from '../../lib/thinger/targets.js'
import type { CliContext } from '../context.js'
import { findFleet, isStandInUsername, loadSettings } from '../settings.js'

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
  const groups = groupByTarget(fleets).map((group) => {
    const required = requiredActionsOf(group.fleets)
    return { ...group, required, policy: tokenPolicy(required.map(({ action }) => action)) }
  })
  if (options.json) {
    // One target: the policy itself, ready to paste; several: one entry per token.
    const json = groups.length === 1
      ? groups[0]!.policy
      : groups.map(({ target, fleets: members, policy }) => ({ ...target, ...(isStandInUsername(target.username) ? { username: null } : {}), fleets: members.map((fleet) => fleet.name), ...policy }))
    context.stdout.write(`${JSON.stringify(json, null, 2)}\n`)
    return
  }
  for (const { target, fleets: members, required, policy } of groups) {
    const width = Math.max(...required.map(({ action }) => action.length))
    // Without THINGER_USERNAME the account is not known here: name the setting, not a stand-in.
    const account = isStandInUsername(target.username) ? 'the account of THINGER_USERNAME (not set here)' : `account "${target.username}"`
    context.stdout.write(
      [
        `# Thinger.io token for ${account} at ${target.apiUrl}, fleets ${members.map((fleet) => `"${fleet.name}"`).join(', ')}`,
        JSON.stringify(policy, null, 2),
        '',
        'Checklist:',
        `1. Thinger.io console of ${target.apiUrl}, Access Tokens, Add: a token for ${account}; paste the JSON above as its permissions.`,
        `2. Store it as a SecureString: aws ssm put-parameter --name ${target.tokenParam} --type SecureString --value file://thinger-token.txt`,
        '3. Each action, and why the function needs it:',
        ...required.map(({ action, reason }) => `   ${action.padEnd(width)}  ${reason}`),
        '4. The command line uses the same token for revoke/unrevoke (UpdateDevice) and status (ReadDeviceStatus, ReadDeviceProperty).',
        '   revoke --delete also needs DeleteDevice: give it to a second token (--token-param), never to this one.',
        '5. Run this again after changing the fleets file, then thinger-provisioner doctor: a new profile element needs new actions.',
        '',
      ].join('\n'),
    )
  }
}
