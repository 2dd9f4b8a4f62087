import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'

const ROWS = 1_000_000
const POLL_MS = 20

describe('Command line: keys derive --csv interrupted', () => {
  let dir: string | undefined

  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('exits 130 on SIGINT and leaves no output and no temporary file', async () => {
    // Prepare
    dir = mkdtempSync(join(tmpdir(), 'derive-sigint-'))
    const rows = Array.from({ length: ROWS }, (_, i) => `dev_${i.toString(16).padStart(12, '0')}`)
    writeFileSync(join(dir, 'devices.csv'), `device\n${rows.join('\n')}\n`)
    writeFileSync(join(dir, 'fleet-key.b64'), Buffer.alloc(32, 9).toString('base64'))
    const child = spawn(
      process.execPath,
      ['bin/thinger-provisioner.mjs', 'keys', 'derive', '--csv', join(dir, 'devices.csv'), '--out', join(dir, 'keys.csv'), '--fleet-key-file', join(dir, 'fleet-key.b64')],
      { env: { ...process.env, FLEETS_FILE: '' }, stdio: ['ignore', 'pipe', 'pipe'] },
    )
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    const exited = once(child, 'exit')

    // Act: interrupt once the temporary output exists, well before the end.
    while (!readdirSync(dir).some((name) => name.endsWith('.partial')) && child.exitCode === null) await new Promise((resolve) => setTimeout(resolve, POLL_MS))
    child.kill('SIGINT')
    const [code] = await exited

    // Assess
    expect(code).toBe(130)
    expect(stderr).toContain('interrupted: no output was written [interrupted]')
    expect(existsSync(join(dir, 'keys.csv'))).toBe(false)
    expect(readdirSync(dir).sort()).toEqual(['devices.csv', 'fleet-key.b64'])
  }, 60_000)
})
