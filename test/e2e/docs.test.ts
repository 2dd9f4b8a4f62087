import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
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

/** What `npm start` writes for the player (.local-stack/answer-key.pub), for this test run's stack. */
function answerKeyFile(): string {
  const file = join(mkdtempSync(join(tmpdir(), 'answer-key-')), 'answer-key.pub')
  writeFileSync(file, `${inject('answerPublicKey')}\n`)
  return file
}

/** Every sh block of a section of a doc (from its heading to the next one of the same level), and the plain block after each. */
function blocksOf(file: string, heading: string): { script: string; shown: string | undefined }[] {
  const text = readFileSync(file, 'utf8')
  const start = text.indexOf(heading)
  if (start < 0) throw new Error(`no "${heading}" in ${file}`)
  const level = /^#+/.exec(heading)![0]
  const end = text.indexOf(`\n${level} `, start + heading.length)
  const section = text.slice(start, end < 0 ? undefined : end)
  const blocks = [...section.matchAll(/```(\w*)\n([\s\S]*?)```/g)].map((match) => ({ lang: match[1], body: match[2]! }))
  return blocks.flatMap((block, index) => (block.lang === 'sh' ? [{ script: block.body, shown: blocks[index + 1]?.lang === '' ? blocks[index + 1]!.body : undefined }] : []))
}

describe('Docs: README.md, "Quick start"', () => {
  it('runs every command of the quick start as written against the running stack, and prints what the README shows', () => {
    // Prepare: the stack runs already (the npm start line); devices of their own for this run, the stack's ports for the defaults
    const provision = new URL(inject('provisionUrl'))
    const thinger = new URL(inject('thingerUrl'))
    const devices = { esp32_a1b2c3d4e5f6: `esp32_${randomBytes(6).toString('hex')}`, ws_kit0001: `ws_${randomBytes(6).toString('hex')}`, x5_kit0001: `x5_${randomBytes(6).toString('hex')}` }
    const local = (script: string) =>
      Object.entries(devices).reduce(
        (text, [shown, own]) => text.replaceAll(shown, own),
        script.replaceAll('http://127.0.0.1:3000', provision.origin).replaceAll('127.0.0.1:8787', thinger.host),
      )
    const blocks = blocksOf('README.md', '## Quick start')
    const env = { ...process.env, HTTP_PORT: provision.port, THINGER_EMULATOR_PORT: thinger.port, ANSWER_KEY_FILE: answerKeyFile() }
    const scripts = blocks.map(({ script }) => local(script.split('\n').filter((line) => !/^npm (ci|start)\b|^npm test\b/.test(line)).join('\n')))

    // Act: each block as a reader pastes it; the variant is set back for the files after this one
    let runs: ReturnType<typeof spawnSync>[]
    try {
      runs = scripts.map((script) => spawnSync('bash', ['-c', `set -euo pipefail\n${script}`], { encoding: 'utf8', env }))
    } finally {
      spawnSync('curl', ['-s', '-X', 'PUT', `${thinger.origin}/__emulator/variant`, '-d', '"documented"'])
    }

    // Assess: every block ran; the first device's output is the README's, but for its own ID, sealed value and port
    expect(blocks.length).toBeGreaterThanOrEqual(4)
    for (const [index, run] of runs.entries()) {
      expect(run.stderr, scripts[index]).not.toMatch(/^\s+at /m)
      expect(run.status, `${scripts[index]}\n${String(run.stderr)}`).toBe(0)
    }
    const device = blocks.findIndex(({ script }) => script.startsWith('npm run device -- esp32_a1b2c3d4e5f6\n'))
    const shown = local(blocks[device]!.shown!).trim()
    const pattern = shown
      .split('\n')
      .map((line) => line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/"(sealed|answerSignature)":"[^"]+"/g, '"$1":"[^"]+"'))
      .join('\n')
    expect(String(runs[device]!.stdout).trim()).toMatch(new RegExp(`(^|\n)${pattern}$`))
    const all = runs.map((run) => String(run.stdout)).join('\n')
    expect(all).toContain(`login check: the emulator accepts demo/${devices.ws_kit0001}`)
    expect(all).toContain(`login check: the emulator accepts demo/${devices.x5_kit0001}`)
    expect(all).toContain(`"${devices.ws_kit0001}_data"`)
    // The unsigned curl request: "an unsigned request answers 400 invalid_request or 401 invalid_signature"
    expect(all).toMatch(/"code":"(invalid_request|invalid_signature)"/)
  }, BLOCK_LIMIT_MS)
})

describe('Docs: operations.md, "Rehearsing without AWS"', () => {
  it('runs as written against a local stack on other ports: provision, revoke, status, revoke --delete with the local admin token', () => {
    // Prepare: the stack runs already (the npm start line); a device of its own for this run
    const device = `esp32_${randomBytes(6).toString('hex')}`
    const certified = `x5_${randomBytes(6).toString('hex')}`
    const script = shellBlockAfter('docs/operations.md', '## Rehearsing without AWS')
      .split('\n')
      .filter((line) => !/^(?:\w+=\S+ )*npm start/.test(line))
      .join('\n')
      .replaceAll(EXAMPLE_DEVICE, device)
      .replaceAll('x5_kit0001', certified)
    const env = {
      ...process.env,
      HTTP_PORT: new URL(inject('provisionUrl')).port,
      THINGER_EMULATOR_PORT: new URL(inject('thingerUrl')).port,
      SSM_PORT: new URL(inject('ssmEndpoint')).port,
      ANSWER_KEY_FILE: answerKeyFile(),
    }

    // Act
    const run = spawnSync('bash', ['-c', `set -euo pipefail\n${script}`], { encoding: 'utf8', env })

    // Assess
    expect(run.stderr).not.toMatch(/^\s+at /m)
    expect(run.status).toBe(0)
    expect(run.stdout).toMatch(new RegExp(`\\{"username":"demo","device":"${device}","credential":"[^"]+","host":"[^"]+","created":true,"answerSignature":"[^"]+"\\}`))
    expect(run.stdout).toContain(`${device}: disabled on Thinger.io`)
    expect(run.stdout).toContain(`${device}: deleted on Thinger.io`)
    // A new device has no provisioning record (operations.md, step 9), and a certificate fleet has no key versions
    expect(run.stdout).toMatch(new RegExp(`device +${device} \\(fleet "default"\\)[\\s\\S]*?provisioning  no record`))
    expect(run.stdout).toContain(`login check: the emulator accepts demo/${certified}`)
    expect(run.stdout).toContain(`device        ${certified} (fleet "factory")`)
    expect(run.stdout).toContain('key versions  none (the fleet takes certificates of its CA)')
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
