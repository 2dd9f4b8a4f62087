import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ThingerClient } from '../../lib/thinger/client.js'
import { NAMED_VARIANTS, startThingerEmulator, type ThingerEmulator } from '../../local/thinger-emulator.js'
import { MemorySsm, run } from './fakes.js'

const USERNAME = 'acme'
const TOKEN = 'cli-variants-token'
const TOKEN_PARAM = '/thinger-provisioner/prod/thinger-token'

let emulator: ThingerEmulator

beforeAll(async () => {
  emulator = await startThingerEmulator({ port: 0, accounts: [{ username: USERNAME, tokens: [{ token: TOKEN }] }] })
})
afterAll(async () => {
  await emulator.close()
})

async function createDevice(device: string): Promise<void> {
  const created = await fetch(`${emulator.url}/v1/users/${USERNAME}/devices`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ device, type: 'Generic', credentials: 'secret-1' }),
  })
  expect(created.status).toBe(200)
}

async function status(device: string) {
  const ssm = new MemorySsm()
  ssm.seed(TOKEN_PARAM, TOKEN)
  return run(['status', '--device', device], {
    env: { FLEETS_FILE: '', STAGE: 'prod', THINGER_USERNAME: USERNAME, THINGER_API_URL: emulator.url },
    ssm,
    overrides: { thinger: (options) => new ThingerClient({ ...options, retry: { baseDelayMs: 1, maxDelayMs: 1 } }) },
  })
}

describe.each(Object.keys(NAMED_VARIANTS))('Command: status against the emulator [Thinger variant %s]', (variant) => {
  beforeAll(() => {
    emulator.reset()
    emulator.setVariant(variant)
  })

  it('says a missing device does not exist, whatever a property read of it would answer', async () => {
    // Act
    const result = await status('esp32_missing')

    // Assess
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    expect(result.stdout).toContain('thinger.io    no such device')
  })

  it('shows when a device was created when Thinger says it, in either form', async () => {
    // Prepare
    await createDevice('esp32_shown')

    // Act
    const result = await status('esp32_shown')

    // Assess
    expect(result.code).toBe(0)
    const createdAt = new Date(emulator.device(USERNAME, 'esp32_shown')!.created).toISOString()
    if (NAMED_VARIANTS[variant]?.created === 'absent') expect(result.stdout).not.toContain('created')
    else expect(result.stdout).toContain(`created ${createdAt}`)
  })

  it('deletes a connected device with revoke --delete', async () => {
    // Prepare
    await createDevice('esp32_online')
    expect(emulator.checkLogin(USERNAME, 'esp32_online', 'secret-1')).toEqual({ ok: true })
    const ssm = new MemorySsm()
    ssm.seed(TOKEN_PARAM, TOKEN)

    // Act
    const result = await run(['revoke', '--device', 'esp32_online', '--delete'], {
      env: { FLEETS_FILE: '', STAGE: 'prod', THINGER_USERNAME: USERNAME, THINGER_API_URL: emulator.url },
      ssm,
      // No real wait where revoke --delete waits out the functions' SSM cache.
      overrides: { thinger: (options) => new ThingerClient(options), ...({ sleep: async () => {} } as object) },
    })

    // Assess
    expect(result.stderr).not.toContain('[thinger_error]')
    expect(result.code).toBe(0)
    expect(emulator.device(USERNAME, 'esp32_online')).toBeUndefined()
  })
})
