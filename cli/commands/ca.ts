import { createHash, createPublicKey } from 'node:crypto'
import type { Command } from 'commander'
import { buildCertificate, toPem } from '../certificates.js'
import type { CliContext } from '../context.js'
import { CliError } from '../errors.js'
import { fleetCaPlace, kmsOf, readCaCertificatePem, storeCaCertificate } from '../fleet-ca.js'
import { findFleet, loadSettings } from '../settings.js'

const DEFAULT_CA_DAYS = 7300
const DAY_MS = 86_400_000
// A minute back, so that a device whose clock is slightly behind the service's does not see the CA as not yet valid.
const BACKDATE_MS = 60_000

interface CaCreateOptions {
  fleet: string
  commonName?: string
  organization?: string
  days: string
  pathLength: string
}

/** `ca create`: a fleet's CA whose private key never leaves KMS. */
export function registerCa(program: Command, context: CliContext): void {
  const ca = program.command('ca').summary('a fleet\'s certificate authority, its key in KMS').description('manage the CA that signs a fleet\'s device certificates (docs/x509.md)')
  ca.command('create')
    .summary('create the fleet\'s CA: a KMS key that signs only, and its self-signed certificate')
    .description(
      'create an asymmetric KMS key (ECC_NIST_P256, SIGN_VERIFY; never exportable) under alias/thinger-provisioner/<stage>/<fleet>-ca, ' +
        'and a self-signed CA certificate signed by KMS, stored where the fleet reads it (x509.caParam in SSM, or x509.caFile)',
    )
    .requiredOption('--fleet <name>', 'a fleet whose proof includes x509')
    .option('--common-name <name>', 'the CA certificate\'s subject CN (default "<fleet> device CA")')
    .option('--organization <name>', 'the CA certificate\'s subject O')
    .option('--days <n>', 'validity in days', String(DEFAULT_CA_DAYS))
    .option('--path-length <n>', 'intermediate CAs allowed below it (0: devices only)', '0')
    .action(async (options: CaCreateOptions) => createCa(context, options))
}

async function createCa(context: CliContext, options: CaCreateOptions): Promise<void> {
  const days = Number(options.days)
  const pathLength = Number(options.pathLength)
  if (!Number.isInteger(days) || days < 1 || days > 36_500) throw new CliError('usage', '--days must be a whole number from 1 to 36500')
  if (!Number.isInteger(pathLength) || pathLength < 0 || pathLength > 1) throw new CliError('usage', '--path-length must be 0 or 1 (the function accepts at most one intermediate)')
  const config = loadSettings(context.env, { thinger: false, allowMissingCaFile: true })
  const fleet = findFleet(config, options.fleet)
  const place = fleetCaPlace(context, config, fleet)
  const where = place.certificate.kind === 'ssm' ? `SSM parameter ${place.certificate.name}` : place.certificate.path
  const kms = kmsOf(context)
  const existingKey = await kms.findAlias(place.alias)
  if ((await readCaCertificatePem(context, place)) !== undefined) {
    const remove = place.certificate.kind === 'ssm' ? `aws ssm delete-parameter --name ${place.certificate.name}` : `rm ${place.certificate.path}`
    throw new CliError(
      'already_exists',
      existingKey === undefined
        ? `fleet "${fleet.name}" has a CA certificate at ${where} but no KMS alias ${place.alias} (another stage, region or account?); it was left as it is. To start over with a new CA: ${remove}, then ca create again`
        : `fleet "${fleet.name}" already has a CA certificate at ${where}; it was left as it is`,
    )
  }
  // The alias without a certificate (SSM emptied, as a fresh local stack's is; the parameter deleted):
  // the key under the alias signs a new CA certificate, so that `certs issue` can go on.
  const keyId =
    existingKey ??
    (await kms.createSigningKey({
      alias: place.alias,
      description: `thinger-provisioner: CA of fleet ${fleet.name} (stage ${context.env.STAGE || 'dev'})`,
      tags: { 'thinger-provisioner:fleet': fleet.name, 'thinger-provisioner:stage': context.env.STAGE || 'dev' },
    }))
  const publicKey = await kms.publicKey(keyId)
  if (existingKey !== undefined && createPublicKey({ key: publicKey, format: 'der', type: 'spki' }).asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new CliError('config', `KMS alias ${place.alias} names a key that is not ECC_NIST_P256; it was left as it is: point the alias at a P-256 signing key, or delete it, and ca create again`)
  }
  const now = context.now()
  const subject = { commonName: options.commonName ?? `${fleet.name} device CA`, ...(options.organization ? { organization: options.organization } : {}) }
  const der = await buildCertificate(
    { subject, publicKey, notBefore: new Date(now - BACKDATE_MS), notAfter: new Date(now + days * DAY_MS), ca: true, pathLength, keyUsage: ['keyCertSign', 'cRLSign'] },
    { algorithm: 'ecdsa-sha256', sign: (tbs) => kms.sign(keyId, tbs) },
  )
  await storeCaCertificate(context, place, toPem(der))
  context.stdout.write(
    [
      `created the CA of fleet "${fleet.name}"`,
      `  KMS key ${keyId} (${place.alias}): ECC_NIST_P256, sign only, its private key never leaves KMS${existingKey === undefined ? '' : '; the key the alias already named (it had no CA certificate), not a new one'}`,
      `  certificate CN=${subject.commonName}, valid ${days} days, sha256 ${createHash('sha256').update(der).digest('hex')}`,
      `  stored at ${where}${place.certificate.kind === 'ssm' ? ' (the function reads it within SSM_CACHE_SECONDS)' : ' (compiled in at the next deployment)'}`,
      `next: certs sign --fleet ${fleet.name} --csr DIR --out DIR, or certs issue --fleet ${fleet.name} --csv FILE --out DIR`,
      '',
    ].join('\n'),
  )
}
