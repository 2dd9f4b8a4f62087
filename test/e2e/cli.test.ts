import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { GetParameterCommand, PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { decodeFleetKey, deriveDeviceKey } from '../../lib/attestation/keys.js'
import { LOCAL_ADMIN_THINGER_TOKEN, LOCAL_STAGE, LOCAL_THINGER_TOKEN, LOCAL_USERNAME, parameterNames } from '../../local/defaults.js'
import { type LocalStack, startLocalStack } from '../../local/stack.js'
import { type CliRun, type Moto, motoInstalled, reportMissingMoto, runCliProcess, startMoto } from '../support/moto.js'
import { freePort } from '../support/ports.js'

// The function caches SSM values for SSM_CACHE_SECONDS=1: a change is seen after this wait.
const CACHE_WAIT_MS = 1500
const FLEETS_FILE = 'test/e2e/fixtures/cli-fleets.yml'
const FLEET = 'factory'
const KEY_PARAM = '/thinger-provisioner/cli-e2e/factory/fleet-key'
const DENY_LIST_PARAM = '/thinger-provisioner/cli-e2e/factory/deny-list'
reportMissingMoto('the command line suite')

interface Answer {
  status: number
  json: any
}

describe.skipIf(!motoInstalled)('Command line: fleet keys, factory keys, revocation and rotation against moto and the local stack', () => {
  const { thingerTokenParam } = parameterNames(LOCAL_STAGE)
  const suffix = randomBytes(3).toString('hex')
  const v1Devices = [`cli_a${suffix}`, `cli_b${suffix}`, `cli_c${suffix}`]
  const v2Device = `cli_n${suffix}`
  const secrets = new Set<string>([LOCAL_THINGER_TOKEN, LOCAL_ADMIN_THINGER_TOKEN])
  // The operator's own token, with DeleteDevice: the function's token stays minimal.
  const ADMIN_TOKEN_PARAM = `/thinger-provisioner/${LOCAL_STAGE}/operator-token`
  const cliOutput: string[] = []
  const keysOf = new Map<string, string>()
  let moto: Moto | undefined
  let ssm: SSMClient
  let stack: LocalStack
  let env: NodeJS.ProcessEnv
  let dir: string
  let logs = ''
  let clock = Math.floor(Date.now() / 1000) - 120

  /** Runs `node bin/thinger-provisioner.mjs …` in a child process, as an operator would. */
  async function cli(...args: string[]): Promise<CliRun> {
    const run = await runCliProcess(env, args)
    cliOutput.push(run.stdout, run.stderr)
    return run
  }

  /**
   * Signs a body with `sign` (fresh, increasing timestamps) and POSTs it, as firmware does: on
   * `replayed` it signs again with the service's time, or after the wait the service asks for.
   */
  async function provisionWithCli(device: string, keyVersion: number): Promise<Answer & { body: string }> {
    for (let attempt = 1; ; attempt++) {
      const signed = await cli('sign', '--device', device, '--device-key', keysOf.get(`${device}/v${keyVersion}`)!, '--fleet', FLEET, '--key-version', String(keyVersion), '--timestamp', String(++clock))
      expect(signed.code).toBe(0)
      const body = signed.stdout.trim()
      secrets.add(JSON.parse(body).signature)
      const answer = await post(body)
      const error = answer.json?.error
      if (attempt >= 3 || answer.status !== 401 || error?.code !== 'replayed') return { ...answer, body }
      if (typeof error.serverTime === 'number') clock = Math.max(clock, error.serverTime - 1)
      else await new Promise((resolve) => setTimeout(resolve, error.retryAfter * 1000))
      clock = Math.max(clock, Math.floor(Date.now() / 1000) - 1)
    }
  }

  async function post(body: string): Promise<Answer> {
    const response = await fetch(`${stack.url}/v1/provision`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
    const json = (await response.json()) as any
    if (typeof json?.credential === 'string') secrets.add(json.credential)
    return { status: response.status, json }
  }

  const thingerCallsFor = (device: string) => stack.thinger.calls().filter((call) => call.path.includes(`/devices/${device}`) || call.path.endsWith('/devices'))
  const waitForCache = () => new Promise((resolve) => setTimeout(resolve, CACHE_WAIT_MS))
  const readParameter = async (name: string) => {
    try {
      return (await ssm.send(new GetParameterCommand({ Name: name, WithDecryption: true }))).Parameter
    } catch (error) {
      if ((error as Error).name === 'ParameterNotFound') return undefined
      throw error
    }
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cli-e2e-'))
    moto = await startMoto(async (endpoint) => {
      ssm = new SSMClient({ endpoint, region: 'us-east-1', credentials: { accessKeyId: 'moto', secretAccessKey: 'moto' } })
      await ssm.send(new PutParameterCommand({ Name: thingerTokenParam, Value: LOCAL_THINGER_TOKEN, Type: 'SecureString', Overwrite: true }))
      await ssm.send(new PutParameterCommand({ Name: ADMIN_TOKEN_PARAM, Value: LOCAL_ADMIN_THINGER_TOKEN, Type: 'SecureString', Overwrite: true }))
    })
    const { endpoint } = moto
    env = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      FLEETS_FILE,
      STAGE: LOCAL_STAGE,
      THINGER_USERNAME: LOCAL_USERNAME,
      THINGER_TOKEN_PARAM: thingerTokenParam,
      SSM_CACHE_SECONDS: '1',
      AWS_ENDPOINT_URL_SSM: endpoint,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'moto',
      AWS_SECRET_ACCESS_KEY: 'moto',
    }
  })

  afterAll(async () => {
    await stack?.close()
    moto?.stop()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('creates key versions 1 and 2 as SecureStrings without printing them; the deny list does not exist yet', async () => {
    // Act
    const v1 = await cli('fleet-key', 'create', '--fleet', FLEET)
    const v2 = await cli('fleet-key', 'create', '--fleet', FLEET, '--key-version', '2')
    const again = await cli('fleet-key', 'create', '--fleet', FLEET)

    // Assess
    expect([v1.code, v2.code, again.code]).toEqual([0, 0, 1])
    const stored = [await readParameter(KEY_PARAM), await readParameter(`${KEY_PARAM}-v2`)]
    for (const parameter of stored) {
      expect(parameter?.Type).toBe('SecureString')
      expect(decodeFleetKey(parameter?.Value, 'test')).toHaveLength(32)
      secrets.add(parameter!.Value!)
    }
    expect(again.stderr).toContain('already exists; it was left as it is')
    expect(await readParameter(DENY_LIST_PARAM)).toBeUndefined()
    expect(cliOutput.join('')).not.toContain(stored[0]!.Value)
    expect(cliOutput.join('')).not.toContain(stored[1]!.Value)
  })

  it('creates the answer key once, printing only its public half, which `answer-key show` prints again', async () => {
    // Act
    const created = await cli('answer-key', 'create')
    const again = await cli('answer-key', 'create')
    const shown = await cli('answer-key', 'show')

    // Assess
    expect([created.code, again.code, shown.code]).toEqual([0, 1, 0])
    const stored = await readParameter(parameterNames(LOCAL_STAGE).answerKeyParam)
    expect(stored?.Type).toBe('SecureString')
    secrets.add(stored!.Value!)
    expect(created.stdout).toMatch(/^[A-Za-z0-9+/]{87}=\n$/)
    expect(shown.stdout).toBe(created.stdout)
    expect(again.stderr).toContain('[already_exists]')
  })

  it('derives the keys of a CSV for each key version, matching the fleet keys in SSM', async () => {
    // Prepare
    writeFileSync(join(dir, 'batch-1.csv'), `device,site\r\n${v1Devices.map((device) => `${device},north_3`).join('\r\n')}\r\n`)
    writeFileSync(join(dir, 'batch-2.csv'), `device\n${v2Device}\n${v1Devices[0]}\n`)

    // Act
    const first = await cli('keys', 'derive', '--fleet', FLEET, '--csv', join(dir, 'batch-1.csv'), '--out', join(dir, 'keys-1.csv'), '--key-version', '1')
    const second = await cli('keys', 'derive', '--fleet', FLEET, '--csv', join(dir, 'batch-2.csv'), '--out', join(dir, 'keys-2.csv'))

    // Assess
    expect(first.code).toBe(0)
    expect(second.code).toBe(0)
    expect(first.stderr).toMatch(/derived 3 device keys \(key version 1 of fleet "factory"\) in [\d.]+ s: [\d,]+ rows\/s/)
    expect(second.stderr).toContain('key version 2 of fleet "factory"')
    const fleetKeys = [1, 2].map(async (version) => decodeFleetKey((await readParameter(version === 1 ? KEY_PARAM : `${KEY_PARAM}-v2`))!.Value, 'test'))
    const [v1Key, v2Key] = await Promise.all(fleetKeys)
    for (const [file, version] of [['keys-1.csv', 1], ['keys-2.csv', 2]] as const) {
      const [header, ...rows] = readFileSync(join(dir, file), 'utf8').trim().split('\n')
      expect(header).toBe(version === 1 ? 'device,site,device_key,key_version' : 'device,device_key,key_version')
      for (const row of rows) {
        const fields = row.split(',')
        const [device, key] = [fields[0]!, fields.at(-2)!]
        expect(fields.at(-1)).toBe(String(version))
        expect(key).toBe(deriveDeviceKey(version === 1 ? v1Key! : v2Key!, device).toString('base64'))
        keysOf.set(`${device}/v${version}`, key)
        secrets.add(key)
      }
    }
  })

  it('provisions a device with its derived key, through the body `sign` prints', async () => {
    // Prepare
    stack = await startLocalStack({
      httpPort: await freePort(),
      lambdaPort: await freePort(),
      thingerPort: 0,
      ssmEndpoint: env.AWS_ENDPOINT_URL_SSM!,
      fleetsFile: FLEETS_FILE,
      env: { SSM_CACHE_SECONDS: '1' },
      onOutput: (chunk) => {
        logs += chunk
      },
    })
    env.THINGER_API_URL = stack.thinger.url

    // Act
    const answer = await provisionWithCli(v1Devices[0]!, 1)

    // Assess
    expect(answer.status).toBe(201)
    expect(stack.thinger.checkLogin(LOCAL_USERNAME, v1Devices[0]!, answer.json.credential)).toEqual({ ok: true })
  })

  // Three command-line processes in a row (sign, open, open): a bound for a shared machine, not a speed assertion.
  it('provisions sealed through the body `sign --sealed` prints, and `open` checks the answer signature and reads the credential with the device key', { timeout: 120_000 }, async () => {
    // Prepare
    const device = v1Devices[2]!
    const signed = await cli('sign', '--device', device, '--device-key', keysOf.get(`${device}/v1`)!, '--fleet', FLEET, '--sealed', '--timestamp', String(++clock))
    writeFileSync(join(dir, 'request.json'), signed.stdout)
    secrets.add(JSON.parse(signed.stdout).signature)

    // Act
    const answer = await post(signed.stdout.trim())
    writeFileSync(join(dir, 'answer.json'), JSON.stringify(answer.json))
    // Not through cli(): printing the credential is what `open` is for, unlike every other command.
    const opened = await runCliProcess(env, ['open', '--request', join(dir, 'request.json'), '--answer', join(dir, 'answer.json'), '--device-key', keysOf.get(`${device}/v1`)!])
    // The same answer with another host: `open` refuses it, as a device pinning the answer key does.
    writeFileSync(join(dir, 'forged.json'), JSON.stringify({ ...answer.json, host: 'evil.example.com' }))
    const forged = await runCliProcess(env, ['open', '--request', join(dir, 'request.json'), '--answer', join(dir, 'forged.json'), '--device-key', keysOf.get(`${device}/v1`)!])

    // Assess
    expect(answer.status).toBe(201)
    expect(answer.json.credential).toBeUndefined()
    expect([opened.code, opened.stderr]).toEqual([0, ''])
    expect([forged.code, forged.stdout]).toEqual([1, ''])
    expect(forged.stderr).toContain('[answer_signature_invalid]')
    const credential = JSON.parse(opened.stdout).credential as string
    secrets.add(credential)
    expect(stack.thinger.checkLogin(LOCAL_USERNAME, device, credential)).toEqual({ ok: true })
  })

  it('revokes the device: the deny list is created, the device disabled, and its next request refused with no Thinger call', async () => {
    // Act
    const revoked = await cli('revoke', '--fleet', FLEET, '--device', v1Devices[0]!)
    await waitForCache()
    const callsBefore = thingerCallsFor(v1Devices[0]!).length
    const answer = await provisionWithCli(v1Devices[0]!, 1)

    // Assess
    expect(revoked.code).toBe(0)
    expect(revoked.stdout).toContain(`${v1Devices[0]}: disabled on Thinger.io`)
    const denyList = await readParameter(DENY_LIST_PARAM)
    expect(denyList?.Type).toBe('String')
    expect(JSON.parse(denyList!.Value!)).toEqual({ version: 1, devices: [v1Devices[0]], retiredKeyVersions: [] })
    expect(stack.thinger.device(LOCAL_USERNAME, v1Devices[0]!)?.enabled).toBe(false)
    expect(answer.status).toBe(403)
    expect(answer.json.error.code).toBe('device_revoked')
    expect(thingerCallsFor(v1Devices[0]!)).toHaveLength(callsBefore)
  })

  it('unrevokes the device: it is enabled again and provisions again', async () => {
    // Act
    const unrevoked = await cli('unrevoke', '--fleet', FLEET, '--device', v1Devices[0]!)
    await waitForCache()
    const answer = await provisionWithCli(v1Devices[0]!, 1)

    // Assess
    expect(unrevoked.code).toBe(0)
    expect(unrevoked.stdout).toContain(`${v1Devices[0]}: enabled again on Thinger.io`)
    expect(JSON.parse((await readParameter(DENY_LIST_PARAM))!.Value!).devices).toEqual([])
    expect(answer.status).toBe(200)
    expect(answer.json.created).toBe(false)
    expect(stack.thinger.checkLogin(LOCAL_USERNAME, v1Devices[0]!, answer.json.credential)).toEqual({ ok: true })

    // Act: the same body again, as an eavesdropper would send it.
    const replayed = await post(answer.body)

    // Assess
    expect(replayed.status).toBe(401)
    expect(replayed.json.error.code).toBe('replayed')
  })

  it('provisions a device flashed with key version 2 when it sends "keyVersion": 2', async () => {
    // Act
    const answer = await provisionWithCli(v2Device, 2)

    // Assess
    expect(answer.status).toBe(201)
  })

  it('retires key version 1: every device of version 1 is refused at once, version 2 still provisions', async () => {
    // Act
    const retired = await cli('revoke', '--fleet', FLEET, '--key-version', '1')
    await waitForCache()
    const provisioned = await provisionWithCli(v1Devices[0]!, 1)
    const neverProvisioned = await provisionWithCli(v1Devices[1]!, 1)
    const current = await provisionWithCli(v2Device, 2)

    // Assess
    expect(retired.code).toBe(0)
    expect(JSON.parse((await readParameter(DENY_LIST_PARAM))!.Value!).retiredKeyVersions).toEqual([1])
    expect([provisioned.status, provisioned.json.error?.code]).toEqual([403, 'key_revoked'])
    expect([neverProvisioned.status, neverProvisioned.json.error?.code]).toEqual([403, 'key_revoked'])
    expect(stack.thinger.device(LOCAL_USERNAME, v1Devices[1]!)).toBeUndefined()
    expect(current.status).toBe(200)
  })

  it('refuses to derive keys of the retired version', async () => {
    // Act
    const result = await cli('keys', 'derive', '--fleet', FLEET, '--device', v1Devices[2]!, '--key-version', '1')

    // Assess
    expect(result.code).toBe(1)
    expect(result.stdout).toBe('')
    expect(result.stderr).toContain('key version 1 of fleet "factory" is retired')
  })

  it('shows the status of a device: what Thinger.io holds, its provisioning record, its deny-list state', async () => {
    // Act
    const result = await cli('status', '--fleet', FLEET, '--device', v1Devices[0]!, '--json')

    // Assess
    expect(result.code).toBe(0)
    const status = JSON.parse(result.stdout)
    expect(status).toMatchObject({ fleet: FLEET, device: v1Devices[0], revoked: false, keyVersions: [1, 2], retiredKeyVersions: [1] })
    expect(status.thinger).toMatchObject({ device: v1Devices[0], type: 'Generic', enabled: true })
    expect(status.provisioning).toMatchObject({ fleet: FLEET, keyVersion: 1, lastTimestamp: expect.any(Number) })
  })

  it('deletes a revoked device on Thinger.io with --delete', async () => {
    // Act
    const result = await cli('revoke', '--fleet', FLEET, '--device', v2Device, '--delete', '--token-param', ADMIN_TOKEN_PARAM)

    // Assess
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout).toContain(`${v2Device}: deleted on Thinger.io`)
    expect(stack.thinger.device(LOCAL_USERNAME, v2Device)).toBeUndefined()
  })

  it('leaves no fleet key, device key, signature, token or credential in the function’s log lines or the command line’s output', async () => {
    // Assess
    expect(logs).toContain('"code":"device_revoked"')
    expect(logs).toContain('"code":"key_revoked"')
    for (const secret of secrets) expect(logs).not.toContain(secret)
    const operatorOutput = cliOutput.join('\n')
    expect(operatorOutput).not.toContain(LOCAL_THINGER_TOKEN)
    for (const name of [KEY_PARAM, `${KEY_PARAM}-v2`]) expect(operatorOutput).not.toContain((await readParameter(name))!.Value)
  })
})
