import { execFile, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { beforeAll, describe, expect, inject, it } from 'vitest'
import { LOCAL_FLEET_KEY, LOCAL_WORKSHOP_FLEET_KEY } from '../../local/defaults.js'
import { newDeviceId } from '../support/device.js'
import { emulatorClient } from '../support/emulator-client.js'

const run = promisify(execFile)
const toolchain = spawnSync('make', ['-C', 'clients/c', '-q', 'all'], { stdio: 'ignore' }).status !== 2 && spawnSync('sh', ['-c', 'echo "#include <mbedtls/md.h>\n#include <curl/curl.h>" | cc -E - >/dev/null'], { stdio: 'ignore' }).status === 0

if (!toolchain) {
  if (process.env.REQUIRE_C_CLIENT === '1') throw new Error('the C client is required (REQUIRE_C_CLIENT=1) but make, a C compiler, mbedTLS or libcurl headers are missing')
  console.warn('SKIPPED: the C client suite needs make, a C compiler and the mbedTLS and libcurl headers (Debian: libmbedtls-dev libcurl4-openssl-dev)')
}

/** A new device ID, its device key derived by the client itself (`--derive-key`) into an owner-only file, and where its credentials go. */
async function deviceWithKeyFile(client: string, prefix: string, fleetKey: string) {
  const dir = mkdtempSync(join(tmpdir(), 'c-client-'))
  const device = newDeviceId(prefix)
  const keyFile = join(dir, 'device.key')
  const { stdout: deviceKey } = await run(client, ['--derive-key', '--device', device, '--fleet-key', fleetKey])
  writeFileSync(keyFile, deviceKey.trim(), { mode: 0o600 })
  return { dir, device, keyFile, out: join(dir, 'credentials') }
}

describe.skipIf(!toolchain)('The C reference client (clients/c) against the running service', () => {
  beforeAll(async () => {
    await run('make', ['-C', 'clients/c', 'all'], { timeout: 120_000 })
  }, 150_000)

  it('provisions a new device whose credential logs in, then re-provisions it with a new one', async () => {
    // Prepare
    const serviceUrl = inject('provisionUrl').replace(/\/v1\/provision$/, '')

    // Act
    const { stdout } = await run('bash', ['clients/c/e2e.sh', serviceUrl], {
      env: { ...process.env, FLEET_KEY_B64: LOCAL_FLEET_KEY, THINGER_EMULATOR_URL: inject('thingerUrl'), THINGER_ANSWER_KEY: inject('answerPublicKey') },
      timeout: 60_000,
    })

    // Assess
    expect(stdout).toMatch(/^PASS: /m)
    expect(stdout).not.toMatch(/^FAIL: /m)
  })

  it.skipIf(!existsSync('clients/c/build/mbedtls3/provision'))('built against mbedTLS 3.6 (make -C clients/c mbedtls3), provisions a device-key device whose sealed credential logs in', async () => {
    // Prepare
    const { dir, device, keyFile, out } = await deviceWithKeyFile('clients/c/build/mbedtls3/provision', 'm3', LOCAL_FLEET_KEY)

    try {
      // Act
      const { stderr } = await run('clients/c/build/mbedtls3/provision', ['--url', inject('provisionUrl').replace(/\/v1\/provision$/, ''), '--device', device, '--device-key-file', keyFile, '--answer-key', inject('answerPublicKey'), '--out', out], { timeout: 60_000 })

      // Assess
      expect(stderr).toBe('')
      const credential = readFileSync(out, 'utf8').match(/^credential=(.+)$/m)?.[1] ?? ''
      expect(await emulatorClient(inject('thingerUrl')).login(device, credential)).toBe(200)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('provisions into another fleet with --fleet, and the fleet’s profile applies', async () => {
    // Prepare
    const { dir, device, keyFile, out } = await deviceWithKeyFile('clients/c/build/provision', 'ws', LOCAL_WORKSHOP_FLEET_KEY)

    try {
      // Act
      const { stdout } = await run('clients/c/build/provision', ['--url', inject('provisionUrl').replace(/\/v1\/provision$/, ''), '--device', device, '--device-key-file', keyFile, '--answer-key', inject('answerPublicKey'), '--fleet', 'workshop', '--out', out], { timeout: 60_000 })

      // Assess
      const saved = Object.fromEntries(readFileSync(out, 'utf8').trim().split('\n').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]))
      expect(statSync(out).mode & 0o777).toBe(0o600)
      expect(saved).toMatchObject({ device, created: 'true' })
      expect(stdout).not.toContain(saved.credential)
      const emulator = emulatorClient(inject('thingerUrl'))
      expect(await emulator.login(device, saved.credential!)).toBe(200)
      const state = await emulator.resources<{ properties: Record<string, Record<string, unknown>> }>()
      expect(state.properties[device]?.provisioning).toMatchObject({ fleet: 'workshop', proof: 'hmac' })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
