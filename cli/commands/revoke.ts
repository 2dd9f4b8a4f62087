import type { Command } from 'commander'
import type { Config } from '../../lib/config.js'
import type { Fleet } from '../../lib/fleets/fleet.js'
import type { CliContext } from '../context.js'
import { certificateDenyEntry } from '../certificate-entry.js'
import { loadDenyList, saveDenyList, setCertificatesRevoked, setDevicesRevoked, setKeyVersionsRetired } from '../deny-list.js'
import { CliError } from '../errors.js'
import { collect, parseKeyVersion } from '../options.js'
import { checkDeviceIds, findFleet, requireKeyedFleet, loadSettings } from '../settings.js'
import { connectThinger, thingerCall } from '../thinger.js'

// A request that read the old deny list just before its cache expired may still be running: the
// function's timeout (serverless.yml) bounds it.
const DELETE_MARGIN_SECONDS = 10

interface RevokeOptions {
  fleet?: string
  device: string[]
  certificate: string[]
  keyVersion?: number
  delete?: boolean
  force?: boolean
  tokenParam?: string
}

/** `revoke` and `unrevoke`: the fleet's deny list in SSM, and the devices' state on Thinger.io. */
export function registerRevoke(program: Command, context: CliContext): void {
  program
    .command('revoke')
    .summary('refuse a device, every device of a key version, or a device certificate')
    .description(
      'refuse a device (403 device_revoked; its Thinger.io device is disabled, or deleted with --delete), every device ' +
        'of a key version (403 key_revoked), or a device certificate (403 certificate_revoked), through the fleet\'s deny list ' +
        'in SSM; takes effect within the function\'s SSM_CACHE_SECONDS',
    )
    .option('--fleet <name>', 'fleet of the fleets file (FLEETS_FILE), or "default"', 'default')
    .option('--device <id>', 'device to revoke (repeatable)', collect, [])
    .option('--key-version <n>', 'key version to retire: every device flashed with it is refused', parseKeyVersion)
    .option('--certificate <cert>', 'certificate to refuse (403 certificate_revoked): a PEM or DER file (written as key:<hex>, its public key), key:<hex> or serial:<hex>; a CA or intermediate refuses every certificate under it (repeatable)', collect, [])
    .option('--delete', 'delete the device on Thinger.io: disabled at once, deleted once every function has the new deny list (SSM_CACHE_SECONDS + 10 s)')
    .option('--force', 'retire a key version even when no other version of the fleet would remain')
    .option('--token-param <name>', 'SSM parameter of the Thinger.io token to use (default: THINGER_TOKEN_PARAM)')
    .action(async (options: RevokeOptions) => revoke(context, options, true))
  program
    .command('unrevoke')
    .summary('accept a revoked device, key version or certificate again')
    .description('undo revoke: remove devices from the deny list and re-enable them on Thinger.io, restore a retired key version, or accept a certificate again')
    .option('--fleet <name>', 'fleet of the fleets file (FLEETS_FILE), or "default"', 'default')
    .option('--device <id>', 'device to accept again (repeatable)', collect, [])
    .option('--key-version <n>', 'key version to accept again', parseKeyVersion)
    .option('--certificate <cert>', 'certificate to accept again: a PEM or DER file (its key: and legacy sha256: entries), key:<hex>, serial:<hex> or sha256:<fingerprint> (repeatable)', collect, [])
    .option('--token-param <name>', 'SSM parameter of the Thinger.io token to use (default: THINGER_TOKEN_PARAM)')
    .action(async (options: RevokeOptions) => revoke(context, options, false))
}

async function revoke(context: CliContext, options: RevokeOptions, revoked: boolean): Promise<void> {
  const command = revoked ? 'revoke' : 'unrevoke'
  const kinds = [options.device.length > 0, options.keyVersion !== undefined, options.certificate.length > 0].filter(Boolean).length
  if (kinds > 1) throw new CliError('usage', `${command} takes one of --device, --key-version or --certificate, not several: run it once for each`)
  if (kinds === 0) throw new CliError('usage', `${command} needs one of --device, --key-version or --certificate`)
  if (options.delete && options.device.length === 0) throw new CliError('usage', '--delete applies to --device only')
  if (options.certificate.length > 0) return revokeCertificates(context, options, revoked)
  const config = loadSettings(context.env, { thinger: options.device.length > 0 })
  const fleet = options.keyVersion === undefined ? findFleet(config, options.fleet) : requireKeyedFleet(findFleet(config, options.fleet))
  checkDeviceIds(options.device)
  if (options.keyVersion !== undefined && !fleet.keyVersions!.includes(options.keyVersion)) {
    context.stderr.write(`note: fleet "${fleet.name}" lists key versions ${fleet.keyVersions!.join(', ')}; ${options.keyVersion} is not among them\n`)
  }
  const ssm = context.ssm()
  const read = await loadDenyList(ssm, fleet.denyListParam)
  const edit =
    options.keyVersion === undefined
      ? setDevicesRevoked(read.list, options.device, revoked)
      : setKeyVersionsRetired(read.list, [options.keyVersion], revoked)
  if (revoked && options.keyVersion !== undefined) checkSomeVersionRemains(fleet, edit.list.retiredKeyVersions, options.force === true)
  // When the function may still hold a deny list without these devices (its SSM cache).
  let listSeenByAllAtMs = (read.lastModifiedMs ?? context.now()) + (config.ssmCacheSeconds + DELETE_MARGIN_SECONDS) * 1000
  if (edit.changed.length > 0) {
    const warning = await saveDenyList(ssm, fleet.denyListParam, read, edit.list)
    if (warning !== undefined) context.stderr.write(`warning: ${warning}\n`)
    listSeenByAllAtMs = context.now() + (config.ssmCacheSeconds + DELETE_MARGIN_SECONDS) * 1000
  }
  report(context, config, fleet, options, revoked, edit.changed.map(String))
  if (options.device.length === 0) return

  const thinger = await connectThinger(context, config, options.tokenParam, fleet)
  const hint = `the deny list is already updated; run \`${command}\` again to finish on Thinger.io`
  if (revoked && options.delete) {
    // Deleted at once, a device could be created again, fresh and enabled, by the stolen key
    // through a function that still holds the old deny list. Disabled, it is refused
    // (device_disabled) until every function has the new list; only then is it deleted. Disabling
    // also disconnects it, and Thinger refuses to delete a connected device (400).
    for (const device of options.device) {
      const updated = await thingerCall(() => thinger.updateDevice(device, { enabled: false }), hint)
      if (updated) context.stdout.write(`${device}: disabled on Thinger.io\n`)
    }
    const waitMs = listSeenByAllAtMs - context.now()
    if (waitMs > 0) {
      context.stderr.write(
        `waiting ${Math.ceil(waitMs / 1000)} s before deleting, until every function has read the new deny list ` +
          `(SSM_CACHE_SECONDS ${config.ssmCacheSeconds} s + ${DELETE_MARGIN_SECONDS} s); interrupted, run the same command again\n`,
      )
      await context.sleep(waitMs)
    }
    for (const device of options.device) {
      const deleted = await thingerCall(() => thinger.deleteDevice(device), hint)
      context.stdout.write(deleted ? `${device}: deleted on Thinger.io\n` : `${device}: not on Thinger.io, nothing to delete\n`)
    }
    return
  }
  for (const device of options.device) {
    if (revoked) {
      const updated = await thingerCall(() => thinger.updateDevice(device, { enabled: false }), hint)
      context.stdout.write(updated ? `${device}: disabled on Thinger.io\n` : `${device}: not on Thinger.io, nothing to disable\n`)
    } else {
      const existing = await thingerCall(() => thinger.getDevice(device), hint)
      if (existing === undefined) context.stdout.write(`${device}: not on Thinger.io; it will be created when it provisions\n`)
      else if (existing.enabled !== false) context.stdout.write(`${device}: already enabled on Thinger.io\n`)
      else {
        await thingerCall(() => thinger.updateDevice(device, { enabled: true }), hint)
        context.stdout.write(`${device}: enabled again on Thinger.io\n`)
      }
    }
  }
}

async function revokeCertificates(context: CliContext, options: RevokeOptions, revoked: boolean): Promise<void> {
  const entries = options.certificate.map((value) => certificateDenyEntry(value, { revoking: revoked }))
  const config = loadSettings(context.env, { thinger: false })
  const fleet = findFleet(config, options.fleet)
  if (!fleet.proof.includes('x509')) context.stderr.write(`note: fleet "${fleet.name}" does not accept certificates (proof: ${fleet.proof.join(', ')})\n`)
  const ssm = context.ssm()
  const read = await loadDenyList(ssm, fleet.denyListParam)
  // revoke writes what identifies the certificate and drops the legacy fingerprint of the same
  // file, which it replaces; unrevoke removes both.
  const named = entries.map((entry) => entry.entry)
  const legacy = entries.flatMap((entry) => entry.alsoNaming)
  const first = setCertificatesRevoked(read.list, named, revoked)
  const second = setCertificatesRevoked(first.list, legacy, false)
  const changed = [...first.changed, ...second.changed]
  if (changed.length > 0) {
    const warning = await saveDenyList(ssm, fleet.denyListParam, read, second.list)
    if (warning !== undefined) context.stderr.write(`warning: ${warning}\n`)
  }
  const delay = `within the function's SSM cache time (SSM_CACHE_SECONDS, ${config.ssmCacheSeconds} s in this environment)`
  for (const { entry, alsoNaming, source, isCa } of entries) {
    const done = first.changed.includes(entry)
    const state = revoked ? (done ? 'added to' : 'already in') : done ? 'removed from' : 'not in'
    const scope = entry.startsWith('serial:')
      ? ' (a device certificate or intermediate of this serial, from any CA the fleet trusts: every device under such an intermediate too)'
      : isCa
        ? ', a CA certificate: every certificate issued under it'
        : entry.startsWith('key:') && revoked
          ? ' (every certificate of this key, however encoded)'
          : ''
    const effect = revoked ? `; refused with 403 certificate_revoked${scope} ${delay}` : done ? `; accepted again ${delay}` : ''
    const replaced = alsoNaming.filter((other) => second.changed.includes(other))
    const legacyNote = replaced.length === 0 ? '' : revoked ? `; replaces ${replaced.join(', ')}, which missed the certificate re-encoded` : `; ${replaced.join(', ')} removed too`
    context.stdout.write(`certificate ${entry}${source ? ` (${source})` : ''} of fleet "${fleet.name}": ${state} the deny list ${fleet.denyListParam}${effect}${legacyNote}\n`)
  }
}

function checkSomeVersionRemains(fleet: Fleet, retired: number[], force: boolean): void {
  const active = (fleet.keyVersions ?? []).filter((version) => !retired.includes(version))
  if (active.length === 0 && !force) {
    throw new CliError(
      'usage',
      `retiring it leaves fleet "${fleet.name}" no key version (it lists ${(fleet.keyVersions ?? []).join(', ')}): every device would be refused. ` +
        'Create and list a new version first (fleet-key create --key-version N), or add --force',
    )
  }
}

function report(context: CliContext, config: Config, fleet: Fleet, options: RevokeOptions, revoked: boolean, changed: string[]): void {
  const what = options.keyVersion === undefined ? options.device : [String(options.keyVersion)]
  const label = options.keyVersion === undefined ? 'device' : 'key version'
  const delay = `within the function's SSM cache time (SSM_CACHE_SECONDS, ${config.ssmCacheSeconds} s in this environment)`
  for (const item of what) {
    const done = changed.includes(item)
    const effect = revoked
      ? options.keyVersion === undefined
        ? `refused with 403 device_revoked ${delay}`
        : `every device flashed with it is refused with 403 key_revoked ${delay}`
      : `accepted again ${delay}`
    const state = revoked ? (done ? 'added to' : 'already in') : done ? 'removed from' : 'not in'
    context.stdout.write(`${label} ${item} of fleet "${fleet.name}": ${state} the deny list ${fleet.denyListParam}${done || revoked ? `; ${effect}` : ''}\n`)
  }
}
