import { execFile, spawnSync } from 'node:child_process'
import { promisify } from 'node:util'
import { beforeAll, describe, expect, inject, it } from 'vitest'
import { LOCAL_FLEET_KEY } from '../../local/defaults.js'

const run = promisify(execFile)
const toolchain = spawnSync('make', ['-C', 'clients/c', '-q', 'all'], { stdio: 'ignore' }).status !== 2 && spawnSync('sh', ['-c', 'echo "#include <mbedtls/md.h>\n#include <curl/curl.h>" | cc -E - >/dev/null'], { stdio: 'ignore' }).status === 0

if (!toolchain) {
  if (process.env.REQUIRE_C_CLIENT === '1') throw new Error('the C client is required (REQUIRE_C_CLIENT=1) but make, a C compiler, mbedTLS or libcurl headers are missing')
  console.warn('SKIPPED: the C client suite needs make, a C compiler and the mbedTLS and libcurl headers (Debian: libmbedtls-dev libcurl4-openssl-dev)')
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
      env: { ...process.env, FLEET_KEY_B64: LOCAL_FLEET_KEY, THINGER_EMULATOR_URL: inject('thingerUrl') },
      timeout: 60_000,
    })

    // Assess
    expect(stdout).toMatch(/^PASS: /m)
    expect(stdout).not.toMatch(/^FAIL: /m)
  })
})
