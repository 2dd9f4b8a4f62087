import { generateKeyPairSync, createPrivateKey, createPublicKey, randomBytes } from 'node:crypto'
import { createReadStream, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { rename, writeFile } from 'node:fs/promises'
import { extname, join } from 'node:path'
import type { Command } from 'commander'
import { parse } from 'csv-parse'
import type { Fleet } from '../../lib/fleets/fleet.js'
import { buildCertificate, CLIENT_AUTH, readIssuer, toPem } from '../certificates.js'
import { type CertificateRequest, readCertificateRequest } from '../certificate-requests.js'
import type { CliContext } from '../context.js'
import { CliError } from '../errors.js'
import { fleetCaPlace, loadFleetCa } from '../fleet-ca.js'
import { createProgressBar, formatCount } from '../progress.js'
import { findDeviceIdProblem, findFleet, loadSettings } from '../settings.js'

const DEFAULT_DEVICE_DAYS = 3650
const DEFAULT_PARALLEL = 8
const MAX_PARALLEL = 64
const DAY_MS = 86_400_000
const BACKDATE_MS = 60_000
const MAX_LISTED_PROBLEMS = 20
const KEY_FILE_MODE = 0o600
const CSR_EXTENSIONS = new Set(['.csr', '.pem', '.der', '.req'])

interface CertsOptions {
  fleet: string
  out: string
  days: string
  parallel: string
  csv?: string
  csr?: string
}

/** One device to certify: its ID, and its request when it brought one. */
interface Job {
  device: string
  request?: CertificateRequest
  /** Where the job came from, for problems (a line of a CSV, a file). */
  source: string
}

/** `certs issue` and `certs sign`: device certificates signed by the fleet's CA in KMS. */
export function registerCerts(program: Command, context: CliContext): void {
  const certs = program.command('certs').summary('device certificates signed by the fleet\'s CA in KMS').description('issue device certificates under the fleet\'s CA (ca create first); docs/x509.md')
  const common = (command: Command) =>
    command
      .requiredOption('--fleet <name>', 'a fleet whose proof includes x509')
      .requiredOption('--out <dir>', 'folder for <device>.pem (created; finished devices are skipped, so a run can be resumed)')
      .option('--days <n>', 'validity of each certificate in days', String(DEFAULT_DEVICE_DAYS))
      .option('--parallel <n>', `KMS Sign calls in flight (1 to ${MAX_PARALLEL})`, String(DEFAULT_PARALLEL))
  common(certs.command('issue'))
    .summary('make a key and a certificate per device (factories that generate keys)')
    .description('for every device of a CSV (a "device" column): a new P-256 key (<device>.key, mode 0600) and its certificate (<device>.pem)')
    .requiredOption('--csv <file>', 'CSV with a header row and a "device" column')
    .action(async (options: CertsOptions) => runCerts(context, options, 'issue'))
  common(certs.command('sign'))
    .summary('sign the devices\' own certificate requests (keys that never leave the chip)')
    .description('sign PKCS#10 requests whose subject CN is the device ID: one file, a folder of .csr/.pem/.der files, or a CSV with a "csr" column (base64 DER or PEM)')
    .requiredOption('--csr <path>', 'a CSR file, a folder of them, or a CSV')
    .action(async (options: CertsOptions) => runCerts(context, options, 'sign'))
}

async function runCerts(context: CliContext, options: CertsOptions, mode: 'issue' | 'sign'): Promise<void> {
  const days = Number(options.days)
  const parallel = Number(options.parallel)
  if (!Number.isInteger(days) || days < 1 || days > 36_500) throw new CliError('usage', '--days must be a whole number from 1 to 36500')
  if (!Number.isInteger(parallel) || parallel < 1 || parallel > MAX_PARALLEL) throw new CliError('usage', `--parallel must be a whole number from 1 to ${MAX_PARALLEL}`)
  const input = mode === 'issue' ? (options.csv as string) : (options.csr as string)
  if (!existsSync(input)) throw new CliError('not_found', `${mode === 'issue' ? '--csv' : '--csr'} ${input} does not exist`)
  const config = loadSettings(context.env, { thinger: false })
  const fleet = findFleet(config, options.fleet)
  const ca = await loadFleetCa(context, fleet, fleetCaPlace(context, config, fleet))
  mkdirSync(options.out, { recursive: true })

  const started = context.now()
  const progress = createProgressBar(context.stderr, { now: context.now })
  const { jobs, totalUnits } = mode === 'issue' ? deviceCsvJobs(input) : requestJobs(input)
  const problems: string[] = []
  let problemCount = 0
  let done = 0
  let skipped = 0
  let unitsDone = 0
  const note = (problem: string) => {
    problemCount++
    if (problems.length < MAX_LISTED_PROBLEMS) problems.push(problem)
  }
  const certify = async (job: Job): Promise<void> => {
    const idProblem = findDeviceIdProblem(job.device, fleet)
    if (idProblem !== undefined) return note(`${job.source}: ${idProblem}`)
    const outcome = await certifyOne(job, { fleet, ca, out: options.out, days, now: context.now(), mode })
    if (outcome === 'skipped') skipped++
    else if (outcome === 'done') done++
    else note(`${job.source}: ${outcome}`)
  }
  const inFlight = new Set<Promise<void>>()
  for await (const item of jobs) {
    unitsDone = item.units
    if (context.signal?.aborted) throw new CliError('interrupted', `interrupted after ${done} certificates; run the same command again to go on`)
    if ('problem' in item) {
      note(item.problem)
      continue
    }
    const task: Promise<void> = certify(item.job).finally(() => {
      inFlight.delete(task)
      progress.update(done + skipped, unitsDone, totalUnits)
    })
    inFlight.add(task)
    if (inFlight.size >= parallel) await Promise.race(inFlight)
  }
  await Promise.all(inFlight)
  progress.done()
  const seconds = Math.max(context.now() - started, 1) / 1000
  context.stdout.write(
    `${mode === 'issue' ? 'issued' : 'signed'} ${formatCount(done)} certificates of fleet "${fleet.name}" into ${options.out} in ${seconds.toFixed(1)} s ` +
      `(${(done / seconds).toFixed(1)} certificates/s, ${parallel} KMS calls in flight)${skipped > 0 ? `; ${formatCount(skipped)} already there, skipped` : ''}\n`,
  )
  if (problemCount > 0) {
    const more = problemCount > problems.length ? [`  … and ${problemCount - problems.length} more`] : []
    throw new CliError('invalid_csv', [`${problemCount} device${problemCount === 1 ? '' : 's'} not certified:`, ...problems.map((problem) => `  ${problem}`), ...more].join('\n'))
  }
}

async function certifyOne(
  job: Job,
  options: { fleet: Fleet; ca: Awaited<ReturnType<typeof loadFleetCa>>; out: string; days: number; now: number; mode: 'issue' | 'sign' },
): Promise<'done' | 'skipped' | string> {
  const certificatePath = join(options.out, `${job.device}.pem`)
  const keyPath = join(options.out, `${job.device}.key`)
  let publicKey: Buffer
  let keyType: CertificateRequest['keyType'] = 'ec-p256'
  if (options.mode === 'sign') {
    publicKey = (job.request as CertificateRequest).publicKey
    keyType = (job.request as CertificateRequest).keyType
  } else if (existsSync(keyPath)) {
    // A key written by an interrupted run: certify it rather than make another.
    publicKey = createPublicKey(createPrivateKey(readFileSync(keyPath))).export({ type: 'spki', format: 'der' }) as Buffer
  } else {
    if (existsSync(certificatePath)) return `${certificatePath} exists without its key ${keyPath}; it was left as it is`
    const keys = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
    await writeFile(keyPath, keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { flag: 'wx', mode: KEY_FILE_MODE })
    publicKey = keys.publicKey.export({ type: 'spki', format: 'der' }) as Buffer
  }
  if (existsSync(certificatePath)) {
    const existing = readFileSync(certificatePath, 'utf8').replace(/-----[^-]+-----|\s/g, '')
    if (readIssuer(Buffer.from(existing, 'base64')).publicKey.equals(publicKey)) return 'skipped'
    return `${certificatePath} exists for another key; it was left as it is`
  }
  const der = await buildCertificate(
    {
      subject: { commonName: job.device },
      issuer: options.ca.issuer,
      publicKey,
      notBefore: new Date(options.now - BACKDATE_MS),
      notAfter: new Date(options.now + options.days * DAY_MS),
      ca: false,
      keyUsage: keyType === 'ec-p256' ? ['digitalSignature', 'keyAgreement'] : ['digitalSignature'],
      extKeyUsage: [CLIENT_AUTH],
      ...(options.fleet.x509?.deviceId === 'dns' ? { dnsNames: [job.device] } : {}),
    },
    options.ca.signer,
  )
  const temporary = `${certificatePath}.${randomBytes(4).toString('hex')}.partial`
  await writeFile(temporary, toPem(der), { flag: 'wx' })
  await rename(temporary, certificatePath)
  return 'done'
}

type JobItem = ({ job: Job } | { problem: string }) & { units: number }

/** The devices of a CSV with a `device` column, streamed; units are bytes read. */
function deviceCsvJobs(path: string): { jobs: AsyncIterable<JobItem>; totalUnits: number } {
  const totalUnits = statSync(path).size
  async function* read(): AsyncIterable<JobItem> {
    const source = createReadStream(path)
    const parser = source.pipe(parse({ columns: true, skip_empty_lines: true, trim: true, info: true, bom: true }))
    for await (const { record, info } of parser as AsyncIterable<{ record: Record<string, string>; info: { lines: number } }>) {
      const units = source.bytesRead
      const device = record.device
      if (device === undefined) throw new CliError('invalid_csv', `${path} has no "device" column`)
      yield { job: { device, source: `line ${info.lines}` }, units }
    }
  }
  return { jobs: read(), totalUnits }
}

/** The certificate requests of a file, a folder, or a CSV with a `csr` column; units are requests (or bytes of a CSV). */
function requestJobs(path: string): { jobs: AsyncIterable<JobItem>; totalUnits: number } {
  const fromRequest = (bytes: Buffer | string, source: string, expectedDevice?: string): JobItem extends infer T ? Omit<Extract<T, { job: Job }>, 'units'> | Omit<Extract<T, { problem: string }>, 'units'> : never => {
    try {
      const request = readCertificateRequest(bytes)
      if (expectedDevice !== undefined && expectedDevice !== request.commonName) return { problem: `${source}: the request's CN ${request.commonName} is not the row's device ${expectedDevice}` }
      return { job: { device: request.commonName, request, source } }
    } catch (error) {
      if (error instanceof CliError) return { problem: `${source}: ${error.message}` }
      throw error
    }
  }
  if (statSync(path).isDirectory()) {
    const files = readdirSync(path).filter((name) => CSR_EXTENSIONS.has(extname(name).toLowerCase())).sort()
    async function* read(): AsyncIterable<JobItem> {
      for (const [index, name] of files.entries()) yield { ...fromRequest(readFileSync(join(path, name)), name), units: index + 1 }
    }
    return { jobs: read(), totalUnits: files.length }
  }
  if (extname(path).toLowerCase() === '.csv') {
    const totalUnits = statSync(path).size
    async function* read(): AsyncIterable<JobItem> {
      const source = createReadStream(path)
      const parser = source.pipe(parse({ columns: true, skip_empty_lines: true, trim: true, info: true, bom: true }))
      for await (const { record, info } of parser as AsyncIterable<{ record: Record<string, string>; info: { lines: number } }>) {
        if (record.csr === undefined) throw new CliError('invalid_csv', `${path} has no "csr" column`)
        yield { ...fromRequest(record.csr, `line ${info.lines}`, record.device || undefined), units: source.bytesRead }
      }
    }
    return { jobs: read(), totalUnits }
  }
  async function* one(): AsyncIterable<JobItem> {
    yield { ...fromRequest(readFileSync(path), path), units: 1 }
  }
  return { jobs: one(), totalUnits: 1 }
}
