import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LOCAL_STAGE, LOCAL_THINGER_TOKEN, LOCAL_USERNAME, parameterNames } from '../../local/defaults.js'
import { type LocalStack, startLocalStack } from '../../local/stack.js'
import { newDeviceId, signedBody } from '../support/device.js'
import { freePort } from '../support/ports.js'

const MOTO_READY_TIMEOUT_MS = 30_000
const motoInstalled = spawnSync('python3', ['-c', 'import moto.server'], { stdio: 'ignore' }).status === 0

if (!motoInstalled) {
  if (process.env.REQUIRE_MOTO === '1') throw new Error('moto is required (REQUIRE_MOTO=1) but `python3 -c "import moto.server"` fails')
  console.warn('SKIPPED: the SSM-through-moto suite needs moto (python3 -m moto.server), which is not installed here')
}

describe.skipIf(!motoInstalled)('SSM SecureString parameters through moto (a third-party SSM implementation)', () => {
  const fleetKey = randomBytes(32).toString('base64')
  const fleetKeyV2 = randomBytes(32).toString('base64')
  let moto: ChildProcess
  let stack: LocalStack
  let logs = ''

  beforeAll(async () => {
    const port = await freePort()
    moto = spawn('python3', ['-m', 'moto.server', '-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' })
    const endpoint = `http://127.0.0.1:${port}`
    const ssm = new SSMClient({ endpoint, region: 'us-east-1', credentials: { accessKeyId: 'moto', secretAccessKey: 'moto' } })
    const { thingerTokenParam, fleetKeyParam } = parameterNames(LOCAL_STAGE)
    const deadline = Date.now() + MOTO_READY_TIMEOUT_MS
    for (;;) {
      try {
        await ssm.send(new PutParameterCommand({ Name: thingerTokenParam, Value: LOCAL_THINGER_TOKEN, Type: 'SecureString', Overwrite: true }))
        break
      } catch (error) {
        if (Date.now() > deadline) throw error
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
    }
    await ssm.send(new PutParameterCommand({ Name: fleetKeyParam, Value: fleetKey, Type: 'SecureString', Overwrite: true }))
    await ssm.send(new PutParameterCommand({ Name: `${fleetKeyParam}-v2`, Value: fleetKeyV2, Type: 'SecureString', Overwrite: true }))
    stack = await startLocalStack({
      httpPort: await freePort(),
      lambdaPort: await freePort(),
      thingerPort: 0,
      ssmEndpoint: endpoint,
      // No fleets file: the first release's settings define the one fleet, as they still may.
      fleetsFile: null,
      // These reach the function only through serverless.yml: serverless-offline hands it nothing else of this environment.
      env: { DEVICE_ID_PATTERN: 'e2e_[A-Za-z0-9_]{1,28}', FLEET_KEY_VERSIONS: '1,2', REPLAY_PROTECTION: 'off' },
      onOutput: (chunk) => {
        logs += chunk
      },
    })
  })

  afterAll(async () => {
    await stack?.close()
    moto?.kill('SIGTERM')
  })

  async function provision(body: unknown): Promise<{ status: number; json: any }> {
    const response = await fetch(`${stack.url}/v1/provision`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    return { status: response.status, json: await response.json() }
  }

  it('provisions a device whose key derives from the fleet key stored in moto, and the credential logs in', async () => {
    // Prepare
    const device = newDeviceId()

    // Act
    const response = await provision(signedBody(device, { fleetKey }))

    // Assess
    expect(response.status).toBe(201)
    expect(stack.thinger.checkLogin(LOCAL_USERNAME, device, response.json.credential)).toEqual({ ok: true })
    expect(logs).not.toContain(response.json.credential)
    expect(logs).not.toContain(fleetKey)
    expect(logs).not.toContain(LOCAL_THINGER_TOKEN)
  })

  it('applies DEVICE_ID_PATTERN of the settings-defined fleet', async () => {
    // Act
    const response = await provision(signedBody('other_device', { fleetKey }))

    // Assess
    expect(response.status).toBe(403)
    expect(response.json.error.code).toBe('device_not_allowed')
  })

  it('accepts key version 2 when FLEET_KEY_VERSIONS lists it', async () => {
    // Prepare
    const device = newDeviceId()

    // Act
    const response = await provision({ ...signedBody(device, { fleetKey: fleetKeyV2 }), keyVersion: 2 })

    // Assess
    expect(response.status).toBe(201)
    expect(logs).not.toContain(fleetKeyV2)
  })

  it('accepts the same signed request twice when REPLAY_PROTECTION is off', async () => {
    // Prepare
    const device = newDeviceId()
    const body = signedBody(device, { fleetKey })

    // Act
    const first = await provision(body)
    const second = await provision(body)

    // Assess
    expect([first.status, second.status]).toEqual([201, 200])
  })

  it('refuses a device signed with any other fleet key', async () => {
    // Prepare
    const device = newDeviceId()

    // Act
    const response = await provision(signedBody(device))

    // Assess
    expect(response.status).toBe(401)
    expect(response.json.error.code).toBe('invalid_signature')
    expect(stack.thinger.device(LOCAL_USERNAME, device)).toBeUndefined()
  })
})
