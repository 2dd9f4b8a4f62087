import type { Command } from 'commander'
import { PROVISIONING_PROPERTY } from '../../lib/provisioning/provision.js'
import type { Proof } from '../../lib/fleets/fleet.js'
import type { CliContext } from '../context.js'
import { loadDenyList } from '../deny-list.js'
import { legacyFingerprintEntries } from '../../lib/fleets/deny-list.js'
import { escapeUnprintable } from '../escape.js'
import { sameThingerAccount } from '../../lib/fleets/fleet.js'
import { checkDeviceIds, findFleet, loadSettings } from '../settings.js'
import { connectThinger, thingerCall } from '../thinger.js'

interface StatusOptions {
  fleet?: string
  device: string
  json?: boolean
  tokenParam?: string
}

/** What `status --json` prints. */
export interface DeviceStatus {
  fleet: string
  device: string
  /** On the fleet's deny list. */
  revoked: boolean
  /** Every fleet of the same Thinger.io account whose deny list holds the device: the function refuses it whichever of those fleets asks. */
  revokedIn: string[]
  denyListParam: string
  /** The fleet's legacy `sha256:` certificate entries, which miss a re-encoded twin: revoke those certificates again. */
  legacyCertificateEntries: string[]
  keyVersions: number[]
  retiredKeyVersions: number[]
  /** The device as Thinger.io describes it (never a credential), or null when it does not exist. */
  thinger: Record<string, unknown> | null
  /** The `provisioning` property the function writes (fleet, meta, provisionedAt, lastTimestamp…), or null. */
  provisioning: unknown
}

/** `status`: what Thinger.io holds for a device, its provisioning record and its deny-list state. */
export function registerStatus(program: Command, context: CliContext): void {
  program
    .command('status')
    .summary('show what Thinger.io and the deny list hold for a device')
    .description('show a device: its Thinger.io device, its provisioning record, and whether it or its key version is revoked')
    .option('--fleet <name>', 'fleet of the fleets file (FLEETS_FILE), or "default"', 'default')
    .requiredOption('--device <id>', 'device ID')
    .option('--json', 'print one JSON object instead of lines')
    .option('--token-param <name>', 'SSM parameter of the Thinger.io token to use (default: THINGER_TOKEN_PARAM)')
    .action(async (options: StatusOptions) => status(context, options))
}

async function status(context: CliContext, options: StatusOptions): Promise<void> {
  const config = loadSettings(context.env, { thinger: true })
  const fleet = findFleet(config, options.fleet)
  checkDeviceIds([options.device])
  // Device IDs are one space per Thinger.io account: the function checks the deny lists of the fleets of the same account.
  const fleets = [...config.fleets.values()].filter((each) => sameThingerAccount(each, fleet))
  const [lists, thinger] = await Promise.all([
    Promise.all(fleets.map((each) => loadDenyList(context.ssm(), each.denyListParam))),
    connectThinger(context, config, options.tokenParam, fleet),
  ])
  const list = lists[fleets.indexOf(fleet)]!.list
  const device = await thingerCall(() => thinger.getDevice(options.device))
  // Only a device that exists has properties: some Thinger servers answer 500, not 404, for a missing one.
  const record = device === undefined ? undefined : await thingerCall(() => thinger.getDeviceProperty(options.device, PROVISIONING_PROPERTY))
  const result: DeviceStatus = {
    fleet: fleet.name,
    device: options.device,
    revoked: list.devices.includes(options.device),
    revokedIn: fleets.filter((_each, index) => lists[index]!.list.devices.includes(options.device)).map((each) => each.name),
    denyListParam: fleet.denyListParam,
    legacyCertificateEntries: legacyFingerprintEntries(list),
    keyVersions: fleet.keyVersions ?? [],
    retiredKeyVersions: list.retiredKeyVersions,
    thinger: device === undefined ? null : { ...device },
    provisioning: record === undefined ? null : record.value,
  }
  // What a device sent (meta) and what Thinger.io holds are shown, never interpreted by the terminal.
  context.stdout.write(options.json ? `${escapeUnprintable(JSON.stringify(result))}\n` : describe(result, fleet.proof))
}

function describe(status: DeviceStatus, proof: Proof[]): string {
  // A fleet without device keys proves otherwise: say how, not "claim only" for a certificate fleet.
  const otherProofs = proof.filter((each) => each !== 'hmac').map((each) => ({ claim: 'the claim secret', x509: 'certificates of its CA' })[each])
  const versions =
    status.keyVersions.map((v) => (status.retiredKeyVersions.includes(v) ? `${v} (retired)` : String(v))).join(', ') || `none (the fleet takes ${otherProofs.join(' and ')})`
  const device = status.thinger as { type?: string; enabled?: boolean; name?: string; created?: number } | null
  const lines = [
    `device        ${status.device} (fleet "${status.fleet}")`,
    `deny list     ${status.revoked ? 'REVOKED' : 'not revoked'} (${status.denyListParam})` +
      `${status.revokedIn.some((name) => name !== status.fleet) ? `; REVOKED in fleet ${status.revokedIn.filter((name) => name !== status.fleet).join(', ')}, so refused in every fleet of this Thinger.io account` : ''}`,
    ...(status.legacyCertificateEntries.length === 0
      ? []
      : [
          `certificates  ${status.legacyCertificateEntries.length} legacy sha256: entr${status.legacyCertificateEntries.length === 1 ? 'y' : 'ies'} in the fleet's deny list miss the same certificate re-encoded: ` +
            `run revoke --fleet ${status.fleet} --certificate FILE again for each (docs/operations.md)`,
        ]),
    `key versions  ${versions}`,
    device === null
      ? 'thinger.io    no such device'
      : `thinger.io    ${device.enabled === false ? 'DISABLED' : 'enabled'}, type ${device.type ?? '?'}${device.name ? `, name ${JSON.stringify(device.name)}` : ''}` +
        `${typeof device.created === 'number' ? `, created ${new Date(device.created).toISOString()}` : ''}`,
    `provisioning  ${status.provisioning === null ? 'no record' : JSON.stringify(status.provisioning)}`,
  ]
  return `${lines.map(escapeUnprintable).join('\n')}\n`
}
