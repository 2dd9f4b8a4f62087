import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { describe, expect, inject, it } from 'vitest'
import { LOCAL_WORKSHOP_FLEET_KEY } from '../../local/defaults.js'
import { signedBody } from '../support/device.js'
import { emulatorClient } from '../support/emulator-client.js'

const EXAMPLE_DEVICE = 'esp32_a1b2c3d4e5f6'
// Six `npx` runs on a shared machine: a limit for a hung run, not a speed assertion.
const BLOCK_LIMIT_MS = 240_000

/** The first sh block after a heading of a doc, as a reader copies it. */
function shellBlockAfter(file: string, heading: string): string {
  const text = readFileSync(file, 'utf8')
  const section = text.slice(text.indexOf(heading))
  const match = /```sh\n([\s\S]*?)```/.exec(section)
  if (match === null) throw new Error(`no sh block after "${heading}" in ${file}`)
  return match[1]!
}

describe('Docs: operations.md, "Rehearsing without AWS"', () => {
  it('runs as written against a local stack on other ports: provision, revoke, status, revoke --delete with the local admin token', () => {
    // Prepare: the stack runs already (the npm start line); a device of its own for this run
    const device = `esp32_${randomBytes(6).toString('hex')}`
    const script = shellBlockAfter('docs/operations.md', '## Rehearsing without AWS')
      .split('\n')
      .filter((line) => !/^(?:\w+=\S+ )*npm start/.test(line))
      .join('\n')
      .replaceAll(EXAMPLE_DEVICE, device)
    const env = {
      ...process.env,
      HTTP_PORT: new URL(inject('provisionUrl')).port,
      THINGER_EMULATOR_PORT: new URL(inject('thingerUrl')).port,
      SSM_PORT: new URL(inject('ssmEndpoint')).port,
    }

    // Act
    const run = spawnSync('bash', ['-c', `set -euo pipefail\n${script}`], { encoding: 'utf8', env })

    // Assess
    expect(run.stderr).not.toMatch(/^\s+at /m)
    expect(run.status).toBe(0)
    expect(run.stdout).toMatch(new RegExp(`\\{"username":"demo","device":"${device}","credential":"[^"]+","host":"[^"]+","created":true,"answerSignature":"[^"]+"\\}`))
    expect(run.stdout).toContain(`${device}: disabled on Thinger.io`)
    expect(run.stdout).toContain(`${device}: deleted on Thinger.io`)
  }, BLOCK_LIMIT_MS)
})

describe('Docs: fleets.md, the provisioning record', () => {
  it('shows every field the function writes for a device with a key', async () => {
    // Prepare
    const text = readFileSync('docs/fleets.md', 'utf8')
    const documented = JSON.parse(/^\s*(\{"fleet":.*\})$/m.exec(text)![1]!) as Record<string, unknown>
    const device = `ws_${randomBytes(6).toString('hex')}`

    // Act
    const response = await fetch(inject('provisionUrl'), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...signedBody(device, { fleetKey: LOCAL_WORKSHOP_FLEET_KEY }), fleet: 'workshop', meta: { site: 'bed_4' } }),
    })
    const state = await emulatorClient(inject('thingerUrl')).resources<{ properties: Record<string, Record<string, Record<string, unknown>>> }>()

    // Assess
    expect(response.status).toBe(201)
    const written = state.properties[device]!.provisioning!
    expect(Object.keys(written).sort()).toEqual(Object.keys(documented).sort())
    for (const [field, value] of Object.entries(written)) expect(typeof documented[field]).toBe(typeof value)
  })
})
