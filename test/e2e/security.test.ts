import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  LOCAL_ADMIN_THINGER_TOKEN,
  LOCAL_FLEET_KEY,
  LOCAL_STAGE,
  LOCAL_THINGER_TOKEN,
  LOCAL_USERNAME,
  LOCAL_WORKSHOP_CLAIM_SECRET,
  LOCAL_WORKSHOP_FLEET_KEY,
} from '../../local/defaults.js'
import { type LocalStack, startLocalStack } from '../../local/stack.js'
import { newDeviceId, signedBody } from '../support/device.js'
import { emulatorClient } from '../support/emulator-client.js'
import { freePort } from '../support/ports.js'

// The combinations a security review attacked (docs/security.md), each against a stack serving
// fleets whose ID spaces overlap. SSM_CACHE_SECONDS is long enough that a deny list written during
// a test is not yet seen by the function: the window `revoke --delete` must not open.
const FLEETS_FILE = 'test/e2e/fixtures/security-fleets.yml'
const SSM_CACHE_SECONDS = 15
const DENY_LIST = (fleet: string) => `/thinger-provisioner/${LOCAL_STAGE}/security/${fleet}-deny-list`
const ADMIN_TOKEN_PARAM = `/thinger-provisioner/${LOCAL_STAGE}/operator-token`
const REVOKED_IN_ALPHA = newDeviceId('rv')

interface Answer {
  status: number
  json: any
}

/** Starts a local stack on the given fleets file: 'started' (then stopped again), or the error it stopped with, and its output. */
async function outcomeOfStarting(fleetsFile: string): Promise<{ outcome: string; output: string }> {
  let output = ''
  const started = startLocalStack({
    httpPort: await freePort(),
    lambdaPort: await freePort(),
    thingerPort: 0,
    ssmPort: 0,
    fleetsFile,
    onOutput: (chunk) => (output += chunk),
  })
  const outcome = await started.then(
    async (stack) => {
      await stack.close()
      return 'started'
    },
    (error: Error) => error.message,
  )
  return { outcome, output }
}

describe('Finding 7: a devicePattern that backtracks catastrophically', () => {
  it('keeps the stack from starting, naming the fleet and the field', { timeout: 120_000 }, async () => {
    // Act
    const { outcome, output } = await outcomeOfStarting('test/e2e/fixtures/redos-fleets.yml')

    // Assess
    // npm start checks the function's settings before serverless-offline starts, so the refusal
    // is the stack's own error (formerly the function's crash in serverless-offline's output).
    expect(outcome).not.toBe('started')
    expect(`${outcome}\n${output}`).toContain('fleet "default", field devicePattern: can backtrack catastrophically')
  })

  it('refuses a backreference at once, naming the fleet and the field, instead of hanging the checker', { timeout: 60_000 }, async () => {
    // Act
    const { outcome, output } = await outcomeOfStarting('test/e2e/fixtures/redos-backreference-fleets.yml')

    // Assess
    expect(outcome).not.toBe('started')
    expect(`${outcome}\n${output}`).toContain('fleet "default", field devicePattern: uses a backreference (\\1)')
  })
})

describe('Security where features meet (local stack over HTTP, test/e2e/fixtures/security-fleets.yml)', () => {
  let stack: LocalStack
  let emulator: ReturnType<typeof emulatorClient>
  const secrets = new Set<string>([LOCAL_THINGER_TOKEN, LOCAL_ADMIN_THINGER_TOKEN, LOCAL_WORKSHOP_CLAIM_SECRET])
  let logs = ''
  // Strictly increasing timestamps a little behind the clock, as one device's successive requests.
  let clock = Math.floor(Date.now() / 1000) - 200

  async function post(body: unknown, raw = false): Promise<Answer> {
    const response = await fetch(`${stack.url}/v1/provision`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: raw ? (body as string) : JSON.stringify(body),
    })
    const text = await response.text()
    const json = text === '' ? undefined : JSON.parse(text)
    if (typeof json?.credential === 'string') secrets.add(json.credential)
    return { status: response.status, json }
  }
  const keyed = (device: string, fleet: 'alpha' | 'beta' | 'gamma', timestamp = ++clock) => {
    const body = { ...signedBody(device, { timestamp, fleetKey: fleet === 'beta' ? LOCAL_WORKSHOP_FLEET_KEY : LOCAL_FLEET_KEY }), fleet }
    secrets.add(body.signature)
    return body
  }
  const claim = (device: string, meta: Record<string, string> = { site: 'lab' }) => ({ device, fleet: 'kits', claim: LOCAL_WORKSHOP_CLAIM_SECRET, meta })
  const device = (id: string) => stack.thinger.device(LOCAL_USERNAME, id)

  beforeAll(async () => {
    stack = await startLocalStack({
      httpPort: await freePort(),
      lambdaPort: await freePort(),
      thingerPort: 0,
      ssmPort: 0,
      fleetsFile: FLEETS_FILE,
      env: { SSM_CACHE_SECONDS: String(SSM_CACHE_SECONDS) },
      onOutput: (chunk) => (logs += chunk),
    })
    emulator = emulatorClient(stack.thinger.url)
    // Before the function's first SSM read, so that it holds this deny list from the start.
    const ssm = new SSMClient({ endpoint: stack.ssmEndpoint, region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } })
    const put = (Name: string, Value: string, Type: 'String' | 'SecureString') => ssm.send(new PutParameterCommand({ Name, Value, Type, Overwrite: true }))
    await put(DENY_LIST('alpha'), JSON.stringify({ version: 1, devices: [REVOKED_IN_ALPHA], retiredKeyVersions: [] }), 'String')
    await put(ADMIN_TOKEN_PARAM, LOCAL_ADMIN_THINGER_TOKEN, 'SecureString')
    ssm.destroy()
  })
  afterEach(async () => {
    await emulator.clearFaults()
  })
  afterAll(async () => {
    await stack?.close()
    // Nothing secret reached the function's log lines.
    for (const secret of secrets) expect(logs).not.toContain(secret)
  })

  describe('finding 8: a null or empty body', () => {
    it.each([
      ['an empty body', ''],
      ['null', 'null'],
      ['0', '0'],
      ['""', '""'],
    ])('answers 400 invalid_request for %s', async (_label, body) => {
      // Act
      const answer = await post(body, true)

      // Assess
      expect(answer.status).toBe(400)
      expect(answer.json.error.code).toBe('invalid_request')
    })
  })

  describe('finding 1: a request of one fleet never changes a device another fleet created', () => {
    it('refuses a claim for a brand-new device of a rotate fleet, which keeps its credential (and cost one call)', async () => {
      // Prepare: alpha creates the device in one Thinger call, without a record
      const id = newDeviceId('ws')
      const before = stack.thinger.calls().length
      const created = await post(keyed(id, 'alpha'))
      expect(created.status).toBe(201)
      expect(stack.thinger.calls().length - before).toBe(1)

      // Act: anyone with the claim secret of kits, within the 15 minutes of "interrupted"
      const takeover = await post(claim(id))

      // Assess
      expect(takeover.status).toBe(409)
      expect(takeover.json.error.code).toBe('device_conflict')
      expect(await emulator.login(id, created.json.credential)).toBe(200)
      expect(device(id)?.description).toBe('thinger-provisioner fleet alpha')
    })

    it('refuses a keyed request of another fleet for the same ID', async () => {
      // Prepare
      const id = newDeviceId('sh')
      const created = await post(keyed(id, 'alpha'))

      // Act: newer than the creation, so that replay protection does not refuse it first
      const other = await post(keyed(id, 'beta', Math.floor(Date.now() / 1000) + 20))

      // Assess
      expect(other.status).toBe(409)
      expect(other.json.error.code).toBe('device_conflict')
      expect(await emulator.login(id, created.json.credential)).toBe(200)
    })

    it('still re-provisions a device of its own fleet', async () => {
      // Prepare
      const id = newDeviceId('own')
      expect((await post(keyed(id, 'alpha'))).status).toBe(201)

      // Act
      const again = await post(keyed(id, 'alpha', Math.floor(Date.now() / 1000) + 15))

      // Assess
      expect(again.status).toBe(200)
      expect(await emulator.login(id, again.json.credential)).toBe(200)
    })
  })

  describe('finding 2: a replay after a late failure', () => {
    it('leaves the credential alone when recording the timestamp fails, and the device’s next request succeeds', async () => {
      // Prepare
      const id = newDeviceId('late')
      const created = await post(keyed(id, 'alpha'))
      const timestamp = Math.floor(Date.now() / 1000) + 20
      await emulator.setFaults([{ method: 'POST', path: `/devices/${id}/properties$`, action: 'status', status: 503, times: 3 }])

      // Act
      const failed = await post(keyed(id, 'alpha', timestamp))
      await emulator.clearFaults()

      // Assess: an error, and the device's credential is the one it had
      expect(failed.status).toBe(503)
      expect(await emulator.login(id, created.json.credential)).toBe(200)
      const next = await post(keyed(id, 'alpha', timestamp + 1))
      expect(next.status).toBe(200)
      expect(await emulator.login(id, next.json.credential)).toBe(200)
    })

    it('never accepts again a request that got as far as the credential change', async () => {
      // Prepare: gamma sets a property after the credential change; that step fails
      const id = newDeviceId('gm')
      expect((await post(keyed(id, 'gamma'))).status).toBe(201)
      const body = keyed(id, 'gamma', Math.floor(Date.now() / 1000) + 20)
      await emulator.setFaults([
        { method: 'POST', path: `/devices/${id}/properties$`, action: 'status', status: 500, times: 1 },
        { method: 'PUT', path: `/devices/${id}/properties/sampling$`, action: 'status', status: 503, times: 3 },
      ])
      const failed = await post(body)
      await emulator.clearFaults()

      // Act: the same bytes again, later
      const replay = await post(body)

      // Assess
      expect(failed.status).toBe(503)
      expect(replay.status).toBe(401)
      expect(replay.json.error.code).toBe('replayed')
      const next = await post(keyed(id, 'gamma', body.timestamp + 1))
      expect(next.status).toBe(200)
      expect(await emulator.login(id, next.json.credential)).toBe(200)
    })
  })

  describe('finding 4: revocation', () => {
    it('refuses a device revoked in one fleet whichever fleet asks', async () => {
      // Act
      const answer = await post(keyed(REVOKED_IN_ALPHA, 'beta'))

      // Assess
      expect(answer.status).toBe(403)
      expect(answer.json.error.code).toBe('device_revoked')
      expect(device(REVOKED_IN_ALPHA)).toBeUndefined()
    })

    it('revoke --delete opens no window in which the stolen key re-creates the device', { timeout: 90_000 }, async () => {
      // Prepare: the device exists, and the function holds a deny list without it
      const id = newDeviceId('del')
      expect((await post(keyed(id, 'alpha'))).status).toBe(201)
      const cli = spawn(process.execPath, ['bin/thinger-provisioner.mjs', 'revoke', '--fleet', 'alpha', '--device', id, '--delete', '--token-param', ADMIN_TOKEN_PARAM], {
        env: {
          ...process.env,
          STAGE: LOCAL_STAGE,
          FLEETS_FILE,
          SSM_CACHE_SECONDS: String(SSM_CACHE_SECONDS),
          AWS_ENDPOINT_URL_SSM: stack.ssmEndpoint,
          AWS_REGION: 'us-east-1',
          AWS_ACCESS_KEY_ID: 'local',
          AWS_SECRET_ACCESS_KEY: 'local',
          THINGER_API_URL: stack.thinger.url,
          THINGER_USERNAME: LOCAL_USERNAME,
          AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      }) as ChildProcess
      let output = ''
      cli.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
      cli.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
      const exited = once(cli, 'close')
      while (device(id)?.enabled !== false && device(id) !== undefined) await new Promise((resolve) => setTimeout(resolve, 100))

      // Act: the holder of the stolen key, while the function still holds the old deny list
      const during = await post(keyed(id, 'alpha', Math.floor(Date.now() / 1000) + 20))
      const [code] = (await exited) as [number | null]
      const after = await post(keyed(id, 'alpha', Math.floor(Date.now() / 1000) + 21))

      // Assess
      expect(during.status).toBe(403)
      expect(['device_disabled', 'device_revoked']).toContain(during.json.error.code)
      expect(code, output).toBe(0)
      expect(output).toContain(`${id}: deleted on Thinger.io`)
      expect(after.json.error?.code).toBe('device_revoked')
      expect(device(id)).toBeUndefined()
    })
  })

  describe('findings 5 and 6: meta', () => {
    it('answers 400 when a text template needs a meta key the request lacks, and uses a declared default', async () => {
      // Prepare
      const id = newDeviceId('mt')

      // Act
      const missing = await post(claim(id, {}))
      const withDefault = await post(claim(id, { site: 'lab' }))

      // Assess
      expect(missing.status).toBe(400)
      expect(missing.json.error.code).toBe('invalid_request')
      expect(withDefault.status).toBe(201)
      expect(device(id)?.description).toBe('Kit at lab of nobody (thinger-provisioner fleet kits)')
    })

    it.each([
      ['a key the fleet does not declare', { site: 'lab', color: 'red' }],
      ['a value outside the key’s pattern', { site: 'Lab 2' }],
      ['a bidi override', { site: 'lab', owner: 'ann\u202egnp.exe' }],
      ['a C1 control', { site: 'lab', owner: 'ann\u009b31m' }],
      ['an escape sequence', { site: 'lab', owner: 'ann\u001b[2J' }],
      ['markup', { site: 'lab', owner: '<img src=x onerror=alert(1)>' }],
      ['a zero-width space', { site: 'lab', owner: 'ann\u200b' }],
      // Issue 17: keys that name Object.prototype members passed the declared-keys check.
      ['the key constructor, which the fleet does not declare', { site: 'lab', constructor: 'x' }],
      ['the key __proto__, which the fleet does not declare', { site: 'lab', ['__proto__']: 'x' }],
    ])('answers 400 invalid_request for %s, creating nothing', async (_label, meta) => {
      // Prepare
      const id = newDeviceId('mt')

      // Act
      const answer = await post(claim(id, meta))

      // Assess
      expect(answer.status).toBe(400)
      expect(answer.json.error.code).toBe('invalid_request')
      expect(device(id)).toBeUndefined()
    })

    it('never adopts a dashboard that exists but was not cloned for the device', async () => {
      // Prepare: someone made the dashboard the kit's profile would clone
      const id = newDeviceId('db')
      const made = await fetch(`${stack.thinger.url}/v1/users/${LOCAL_USERNAME}/dashboards/workshop_template/clone`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${LOCAL_ADMIN_THINGER_TOKEN}` },
        body: JSON.stringify({ dashboard: `${id}_dash`, name: 'Not yours' }),
      })
      expect(made.status).toBeLessThan(300)

      // Act
      const answer = await post(claim(id))

      // Assess
      expect(answer.status).toBe(502)
      expect(answer.json.error.code).toBe('upstream_error')
      expect(stack.thinger.resources(LOCAL_USERNAME).dashboards.find((d) => d.dashboard === `${id}_dash`)?.name).toBe('Not yours')
    })
  })
})
