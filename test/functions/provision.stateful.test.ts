import { createRequire } from 'node:module'
import type { APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda'
import fc from 'fast-check'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { createProvisionHandler, type ProvisionHandler } from '../../functions/provision.js'
import { deriveDeviceKey, signRequest } from '../../lib/attestation/keys.js'
import { type FaultRule, startThingerEmulator, type ThingerEmulator } from '../../local/thinger-emulator.js'
import { apiEvent } from '../support/lambda.js'
import { ssmHolding } from '../support/ssm.js'

// A stateful property test of the handler against the Thinger emulator: random interleavings of
// devices of fleets whose ID spaces overlap, claims, re-provisionings, replays of earlier request
// bodies, failures injected at each Thinger step, revocations and unrevocations. After every step:
// (i) no request of one fleet changes a device another fleet created; (ii) one request body yields
// a readable working credential at most once, ever (every credential answered is unsealed, hence
// readable; replays are sequential), and a keyed body that got as far as changing the credential
// is never accepted again even when it answered an error; (iii) after a failure the real device's fresh request
// converges; (iv) nothing secret reaches a log or an answer.
// `npm test` runs a fixed seed and budget; `npm run test:property` a longer run (PROPERTY_RUNS, PROPERTY_SEED).

const { parseFleets } = createRequire(import.meta.url)('../../deploy/fleets.cjs') as { parseFleets: (text: string) => unknown }

const RUNS = Number(process.env.PROPERTY_RUNS ?? 30)
// A fixed seed in `npm test`; `random` (npm run test:property) explores anew; the test's name shows the seed.
const SEED =
  process.env.PROPERTY_SEED === undefined ? 20_261_129 : process.env.PROPERTY_SEED === 'random' ? Math.floor(Math.random() * 2 ** 31) : Number(process.env.PROPERTY_SEED)
const MAX_COMMANDS = Number(process.env.PROPERTY_MAX_COMMANDS ?? 25)
const USERNAME = 'prop'
const TOKEN = 'property-test-thinger-token-value'
const TOKEN_PARAM = '/prop/thinger-token'
const KEYS = { alpha: Buffer.alloc(32, 11).toString('base64'), beta: Buffer.alloc(32, 22).toString('base64') }
const CLAIM_SECRET = 'property-test-claim-secret-of-kits'
const DENY = { alpha: '/prop/alpha/deny-list', beta: '/prop/beta/deny-list', kits: '/prop/kits/deny-list' }
const START_MS = 1_800_000_000_000
const DEVICES = ['d0', 'd1'] as const
const FLEETS = ['alpha', 'beta', 'kits'] as const
type FleetName = (typeof FLEETS)[number]
type DeviceId = (typeof DEVICES)[number]

// Every fleet admits every ID: the overlap the mechanisms must make harmless.
const FLEETS_FILE = parseFleets(`version: 1
fleets:
  alpha:
    proof: [hmac]
    keyParam: /prop/alpha/fleet-key
    denyListParam: ${DENY.alpha}
  beta:
    proof: [hmac]
    keyParam: /prop/beta/fleet-key
    denyListParam: ${DENY.beta}
    profile:
      properties:
        rate: 5
  kits:
    proof: [claim]
    claimParam: /prop/kits/claim-secret
    denyListParam: ${DENY.kits}
    reprovision: reject
    meta:
      site: {}
    profile:
      name: 'Kit {device} at {meta.site}'
      properties:
        mode: bench
`)

/** Where a fault can be injected: each Thinger step the flow makes, for a device. */
const FAULT_STEPS: Array<(device: string) => Omit<FaultRule, 'action' | 'status' | 'times'>> = [
  () => ({ method: 'POST', path: '/devices$' }),
  (d) => ({ method: 'GET', path: `/devices/${d}$` }),
  (d) => ({ method: 'PUT', path: `/devices/${d}$` }),
  (d) => ({ method: 'GET', path: `/devices/${d}/properties/provisioning$` }),
  (d) => ({ method: 'POST', path: `/devices/${d}/properties$` }),
  (d) => ({ method: 'PUT', path: `/devices/${d}/properties/provisioning$` }),
  (d) => ({ method: 'PUT', path: `/devices/${d}/properties/(rate|mode)$` }),
]

interface Fault {
  step: number
  status: 500 | 503
  times: number
}

interface Sent {
  body: string
  fleet: FleetName
  device: DeviceId
}

interface Model {
  /** The fleet whose request created each device (absent: no such device). */
  owner: Map<DeviceId, FleetName>
  /** Kits devices whose claim provisioning finished (answered 2xx once). */
  finished: Set<DeviceId>
  revoked: Record<FleetName, Set<DeviceId>>
  sent: Sent[]
  /** How many 2xx answers (a readable, working credential) each body has had. */
  successes: Map<string, number>
  /** Keyed bodies that changed a credential (or created a device) while answering an error. */
  spent: Set<string>
  /** Bodies that answered 5xx. */
  failed: Set<string>
  /** The credential last answered for each device. */
  credential: Map<DeviceId, string>
}

interface Real {
  handler: ProvisionHandler
  ssm: Record<string, string>
}

let emulator: ThingerEmulator
let output: string[] = []
const secrets = new Set<string>([TOKEN, KEYS.alpha, KEYS.beta, CLAIM_SECRET])
let requestCount = 0

beforeAll(async () => {
  emulator = await startThingerEmulator({ port: 0, accounts: [{ username: USERNAME, tokens: [{ token: TOKEN }] }], hashIterations: 1 })
  for (const fleet of ['alpha', 'beta'] as const) for (const device of DEVICES) secrets.add(deriveDeviceKey(Buffer.from(KEYS[fleet], 'base64'), device).toString('base64'))
})
afterAll(async () => {
  await emulator.close()
})
afterEach(() => {
  vi.useRealTimers()
  vi.restoreAllMocks()
})

const nowSeconds = () => Math.floor(Date.now() / 1000)
const advance = (seconds: number) => vi.setSystemTime(Date.now() + seconds * 1000)
const context = () => ({ awsRequestId: `prop-${++requestCount}`, functionName: 'provision', getRemainingTimeInMillis: () => 10_000 }) as unknown as Context

function freshBody(fleet: FleetName, device: DeviceId): string {
  if (fleet === 'kits') return JSON.stringify({ device, fleet, claim: CLAIM_SECRET, meta: { site: 'lab' } })
  const timestamp = nowSeconds()
  const signature = signRequest(deriveDeviceKey(Buffer.from(KEYS[fleet], 'base64'), device), device, timestamp)
  secrets.add(signature)
  return JSON.stringify({ device, fleet, timestamp, signature })
}

function newHandler(ssm: Record<string, string>): ProvisionHandler {
  return createProvisionHandler({
    env: { THINGER_API_URL: emulator.url, THINGER_USERNAME: USERNAME, THINGER_TOKEN_PARAM: TOKEN_PARAM, SSM_CACHE_SECONDS: '1' },
    ssmClient: ssmHolding(ssm).client,
    fleets: FLEETS_FILE,
  })
}

function denyList(devices: Set<DeviceId>): string {
  return JSON.stringify({ version: 1, devices: [...devices].sort(), retiredKeyVersions: [] })
}

/** What a device's state on Thinger.io looks like, credential included (through `modified`). */
function snapshot(device: DeviceId): string {
  const view = emulator.device(USERNAME, device)
  const properties = emulator.resources(USERNAME).properties[device]
  return JSON.stringify({ view, properties })
}

/** Sends one body and checks the invariants every request must keep. */
async function send(model: Model, real: Real, sent: Sent, fault?: Fault): Promise<{ status: number; json: any }> {
  const before = new Map(DEVICES.map((device) => [device, snapshot(device)] as const))
  const existed = emulator.device(USERNAME, sent.device) !== undefined
  const known = model.credential.get(sent.device)
  const workedBefore = known !== undefined && emulator.checkLogin(USERNAME, sent.device, known).ok
  if (fault) emulator.setFaults([{ ...FAULT_STEPS[fault.step]!(sent.device), action: 'status', status: fault.status, times: fault.times }])
  const response = (await real.handler(apiEvent(sent.body), context())) as APIGatewayProxyStructuredResultV2
  emulator.setFaults([])
  const text = response.body ?? ''
  const json = JSON.parse(text)
  const status = response.statusCode ?? 0

  // (iv) nothing secret in the answer (a credential belongs in its own 2xx answer only) or the logs
  for (const secret of secrets) expect(text).not.toContain(secret)
  const logs = output.join('')
  for (const secret of secrets) expect(logs).not.toContain(secret)
  if (typeof json.credential === 'string') secrets.add(json.credential)

  // Ownership follows creation.
  if (!existed && emulator.device(USERNAME, sent.device) !== undefined) model.owner.set(sent.device, sent.fleet)
  // (i) a request of one fleet changes no device another fleet created
  const owner = model.owner.get(sent.device)
  if (existed && owner !== undefined && owner !== sent.fleet) expect(snapshot(sent.device), `${sent.fleet} changed ${sent.device} of ${owner}`).toBe(before.get(sent.device))
  for (const device of DEVICES) if (device !== sent.device) expect(snapshot(device)).toBe(before.get(device))

  // (ii) one body, at most one readable working credential, ever
  if (status >= 500) model.failed.add(sent.body)
  if (status >= 300 && sent.fleet !== 'kits') {
    const created = !existed && emulator.device(USERNAME, sent.device) !== undefined
    const replaced = workedBefore && !emulator.checkLogin(USERNAME, sent.device, known!).ok
    if (created || replaced) model.spent.add(sent.body)
  }
  if (status < 300) {
    expect(model.spent.has(sent.body), `a body of ${sent.fleet}/${sent.device} that changed the credential while failing was accepted again`).toBe(false)
    expect(emulator.checkLogin(USERNAME, sent.device, json.credential)).toEqual({ ok: true })
    model.credential.set(sent.device, json.credential)
    const count = (model.successes.get(sent.body) ?? 0) + 1
    model.successes.set(sent.body, count)
    expect(count, `body of ${sent.fleet}/${sent.device} answered a credential twice`).toBe(1)
    if (sent.fleet === 'kits') model.finished.add(sent.device)
  }
  // Revocation holds whichever fleet asks.
  if (FLEETS.some((fleet) => model.revoked[fleet].has(sent.device))) expect(json.error?.code).toBe('device_revoked')
  return { status, json }
}

/** (iii) The real device of `fleet` asks again, freshly, as firmware does (waiting when told); it must converge. */
async function converge(model: Model, real: Real, fleet: FleetName, device: DeviceId): Promise<void> {
  let answer: { status: number; json: any } | undefined
  for (let attempt = 0; attempt < 3; attempt++) {
    advance(1)
    const sent = { body: freshBody(fleet, device), fleet, device }
    model.sent.push(sent)
    answer = await send(model, real, sent)
    if (answer.json.error?.code !== 'replayed') break
    if (typeof answer.json.error.serverTime === 'number') vi.setSystemTime(Math.max(Date.now(), (answer.json.error.serverTime + 1) * 1000))
    else advance(answer.json.error.retryAfter)
  }
  const owner = model.owner.get(device)
  const revoked = FLEETS.some((f) => model.revoked[f].has(device))
  expect(answer!.status, JSON.stringify(answer!.json)).toBeLessThan(500)
  if (revoked) return
  if (owner !== undefined && owner !== fleet) {
    expect(answer!.status).toBe(409)
  } else if (fleet === 'kits' && model.finished.has(device) && answer!.status !== 201 && answer!.status !== 200) {
    // Someone holding the same claim finished it first (the claim trade-off, docs/fleets.md).
    expect(answer!.json.error.code).toBe('already_provisioned')
  } else {
    expect(answer!.status, JSON.stringify(answer!.json)).toBeLessThan(300)
  }
}

class Provision implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly fleet: FleetName,
    readonly device: DeviceId,
    readonly waitSeconds: number,
    readonly fault: Fault | undefined,
    /** Whether the real device asks again at once after a failure (else a replay may come first). */
    readonly retry: boolean,
  ) {}
  check = () => true
  async run(model: Model, real: Real): Promise<void> {
    advance(this.waitSeconds)
    const sent = { body: freshBody(this.fleet, this.device), fleet: this.fleet, device: this.device }
    model.sent.push(sent)
    const answer = await send(model, real, sent, this.fault)
    if (answer.status >= 500 && this.retry) await converge(model, real, this.fleet, this.device)
  }
  toString = () => `provision(${this.fleet}, ${this.device}, +${this.waitSeconds}s${this.fault ? `, fault ${JSON.stringify(this.fault)}` : ''}${this.retry ? '' : ', no retry'})`
}

class Replay implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly pick: number,
    readonly waitSeconds: number,
    readonly fault: Fault | undefined,
    readonly retry: boolean,
  ) {}
  check = (model: Readonly<Model>) => model.sent.length > 0
  async run(model: Model, real: Real): Promise<void> {
    advance(this.waitSeconds)
    // Often the last body that failed (where a late failure is fresh), else a recent one, sometimes any.
    const recent = Math.min(3, model.sent.length)
    const failed = model.sent.findLastIndex((entry) => model.failed.has(entry.body))
    const choice = this.pick % 3
    const index =
      choice === 0 && failed >= 0 ? failed : choice === 1 ? model.sent.length - 1 - (Math.floor(this.pick / 3) % recent) : Math.floor(this.pick / 3) % model.sent.length
    const sent = model.sent[index]!
    const answer = await send(model, real, sent, this.fault)
    if (answer.status >= 500 && this.retry) {
      const owner = model.owner.get(sent.device) ?? sent.fleet
      await converge(model, real, owner, sent.device)
    }
  }
  toString = () => `replay(#${this.pick}, +${this.waitSeconds}s${this.fault ? `, fault ${JSON.stringify(this.fault)}` : ''})`
}

class Revoke implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly fleet: FleetName,
    readonly device: DeviceId,
    readonly revoked: boolean,
  ) {}
  check = () => true
  async run(model: Model, real: Real): Promise<void> {
    const list = model.revoked[this.fleet]
    if (this.revoked) list.add(this.device)
    else list.delete(this.device)
    real.ssm[DENY[this.fleet]] = denyList(list)
    // Past the function's SSM cache: the change is in effect.
    advance(2)
  }
  toString = () => `${this.revoked ? 'revoke' : 'unrevoke'}(${this.fleet}, ${this.device})`
}

const fleetArb = fc.constantFrom(...FLEETS)
const deviceArb = fc.constantFrom(...DEVICES)
// Seconds between steps: within and beyond the 11 s a new device's creation covers, and the SSM cache.
const waitArb = fc.oneof(fc.constantFrom(0, 1, 12, 30), fc.integer({ min: 0, max: 20 }))
const faultRecord = fc.record({ step: fc.integer({ min: 0, max: FAULT_STEPS.length - 1 }), status: fc.constantFrom(500 as const, 503 as const), times: fc.constantFrom(1, 3) })
const faultArb = (weight: number) => fc.oneof({ arbitrary: fc.constant(undefined), weight: 10 - weight }, { arbitrary: faultRecord, weight })
const commands = fc.commands(
  [
    fc.tuple(fleetArb, deviceArb, waitArb, faultArb(5), fc.boolean()).map(([fleet, device, wait, fault, retry]) => new Provision(fleet, device, wait, fault, retry)),
    fc.tuple(fc.nat(), waitArb, faultArb(2), fc.boolean()).map(([pick, wait, fault, retry]) => new Replay(pick, wait, fault, retry)),
    fc.tuple(fleetArb, deviceArb, fc.boolean()).map(([fleet, device, revoked]) => new Revoke(fleet, device, revoked)),
  ],
  { maxCommands: MAX_COMMANDS },
)

describe('Function: provision handler, stateful property (fleets with overlapping IDs, claims, replays, faults, revocations)', () => {
  it(
    `keeps ownership, single use of a body, convergence and secrecy after every step (${RUNS} runs of up to ${MAX_COMMANDS} steps, seed ${SEED})`,
    async () => {
      vi.useFakeTimers({ toFake: ['Date'] })
      const capture = (chunk: string | Uint8Array) => {
        output.push(String(chunk))
        return true
      }
      vi.spyOn(process.stdout, 'write').mockImplementation(capture)
      vi.spyOn(process.stderr, 'write').mockImplementation(capture)

      await fc.assert(
        fc.asyncProperty(commands, async (cmds) => {
          vi.setSystemTime(START_MS)
          emulator.reset()
          output = []
          const ssm: Record<string, string> = {
            [TOKEN_PARAM]: TOKEN,
            '/prop/alpha/fleet-key': KEYS.alpha,
            '/prop/beta/fleet-key': KEYS.beta,
            '/prop/kits/claim-secret': CLAIM_SECRET,
          }
          const model: Model = { owner: new Map(), finished: new Set(), revoked: { alpha: new Set(), beta: new Set(), kits: new Set() }, sent: [], successes: new Map(), spent: new Set(), failed: new Set(), credential: new Map() }
          await fc.asyncModelRun(() => ({ model, real: { handler: newHandler(ssm), ssm } }), cmds)
        }),
        {
          numRuns: RUNS,
          seed: SEED,
          endOnFailure: true,
          // The review's findings, as the first runs: each must stay fixed whatever the seed finds.
          examples: (process.env.PROPERTY_EXAMPLES === '0' ? [] : [
            [[new Provision('alpha', 'd0', 0, undefined, true), new Provision('kits', 'd0', 5, undefined, true)]],
            [[new Provision('alpha', 'd0', 0, undefined, true), new Provision('alpha', 'd0', 15, { step: 4, status: 503, times: 3 }, false), new Replay(0, 30, undefined, false)]],
            [[new Provision('beta', 'd1', 0, undefined, true), new Provision('beta', 'd1', 15, { step: 6, status: 503, times: 3 }, false), new Replay(0, 30, undefined, false)]],
            [[new Revoke('alpha', 'd1', true), new Provision('beta', 'd1', 0, undefined, true)]],
          ]) as unknown as [Iterable<fc.AsyncCommand<Model, Real>>][],
        },
      )
    },
    600_000,
  )
})
