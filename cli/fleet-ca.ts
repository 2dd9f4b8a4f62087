import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, resolve } from 'node:path'
import type { Config } from '../lib/config.js'
import type { Fleet } from '../lib/fleets/fleet.js'
import { type CertificateSigner, readIssuer } from './certificates.js'
import type { CliContext } from './context.js'
import { CliError } from './errors.js'
import { createKmsPort, type KmsPort } from './kms.js'

const { fleetsFilePath } = createRequire(import.meta.url)('../deploy/fleets.cjs') as { fleetsFilePath: (env: NodeJS.ProcessEnv) => string | undefined }
const PEM = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----/

/** Where a fleet's CA lives: its KMS key (by alias) and where the fleet reads its certificate. */
export interface FleetCaPlace {
  alias: string
  /** `ssm`: the fleet's `x509.caParam`; `file`: its `x509.caFile`, resolved beside the fleets file. */
  certificate: { kind: 'ssm'; name: string } | { kind: 'file'; path: string }
}

/**
 * The KMS alias and certificate place of a fleet that accepts certificates.
 * @throws CliError `usage` when the fleet does not accept certificates.
 */
export function fleetCaPlace(context: CliContext, config: Config, fleet: Fleet): FleetCaPlace {
  const x509 = fleet.x509
  if (x509 === undefined || !fleet.proof.includes('x509')) throw new CliError('usage', `fleet "${fleet.name}" does not accept certificates (proof: ${fleet.proof.join(', ')}); add x509 to its proof and an x509 section (docs/x509.md)`)
  const stage = context.env.STAGE || 'dev'
  const alias = `alias/thinger-provisioner/${stage}/${fleet.name}-ca`
  if (x509.caParam !== undefined) return { alias, certificate: { kind: 'ssm', name: x509.caParam } }
  const fleetsFile = fleetsFilePath(context.env)
  const path = resolve(fleetsFile === undefined ? process.cwd() : dirname(fleetsFile), x509.caFile ?? '')
  void config
  return { alias, certificate: { kind: 'file', path } }
}

/** The KMS port of a command: the context's, or KMS through the AWS SDK. */
export function kmsOf(context: CliContext): KmsPort {
  return context.kms?.() ?? createKmsPort(context.env)
}

/** The certificate (PEM) currently at a fleet's CA place, or `undefined`. */
export async function readCaCertificatePem(context: CliContext, place: FleetCaPlace): Promise<string | undefined> {
  if (place.certificate.kind === 'ssm') return (await context.ssm().getParameter(place.certificate.name))?.value
  return existsSync(place.certificate.path) ? readFileSync(place.certificate.path, 'utf8') : undefined
}

/** Stores a new CA certificate where the fleet reads it; never replaces one. */
export async function storeCaCertificate(context: CliContext, place: FleetCaPlace, pem: string): Promise<void> {
  if (place.certificate.kind === 'ssm') {
    await context.ssm().putParameter({ name: place.certificate.name, value: pem, type: 'String', overwrite: false })
    return
  }
  mkdirSync(dirname(place.certificate.path), { recursive: true })
  try {
    writeFileSync(place.certificate.path, pem, { flag: 'wx' })
  } catch (error) {
    throw new CliError('already_exists', `${place.certificate.path} already exists; it was left as it is`, { cause: error })
  }
}

/**
 * The fleet CA's signer and issuer (its certificate's subject and key), checking that the KMS key
 * behind the alias is the certificate's.
 * @throws CliError `not_found` (no CA yet) or `config` (certificate and key disagree).
 */
export async function loadFleetCa(context: CliContext, fleet: Fleet, place: FleetCaPlace): Promise<{ signer: CertificateSigner; issuer: ReturnType<typeof readIssuer>; der: Buffer }> {
  const kms = kmsOf(context)
  const keyId = await kms.findAlias(place.alias)
  const pem = await readCaCertificatePem(context, place)
  if (keyId === undefined || pem === undefined) {
    if (keyId !== undefined) {
      throw new CliError('not_found', `fleet "${fleet.name}" has a CA key (KMS alias ${place.alias}) but no CA certificate; \`ca create --fleet ${fleet.name}\` makes one with that key`)
    }
    if (pem !== undefined) {
      throw new CliError('not_found', `fleet "${fleet.name}" has a CA certificate but no KMS alias ${place.alias} (another stage, region or account?); run this with that one's settings, or see \`ca create --fleet ${fleet.name}\` to start over`)
    }
    throw new CliError('not_found', `fleet "${fleet.name}" has no CA yet; create it with \`ca create --fleet ${fleet.name}\``)
  }
  const body = PEM.exec(pem)?.[1]
  if (body === undefined) throw new CliError('config', `the CA certificate of fleet "${fleet.name}" is not PEM`)
  const der = Buffer.from(body.replace(/\s+/g, ''), 'base64')
  const issuer = readIssuer(der)
  if (!issuer.publicKey.equals(await kms.publicKey(keyId))) {
    throw new CliError('config', `the CA certificate of fleet "${fleet.name}" does not belong to KMS key ${place.alias}: the first certificate where the fleet reads them must be the one ca create made`)
  }
  return { signer: { algorithm: 'ecdsa-sha256', sign: (tbs) => kms.sign(keyId, tbs) }, issuer, der }
}
