import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { run } from '../cli/fakes.js'

// What the docs say about the code that can be read off the code: the local stack's fleets, the
// sketch's build options, the proofs a fleet may take, what doctor leaves behind.
const SKETCH = 'clients/ThingerProvision/examples/thinger_provisioning/thinger_provisioning.ino'
const NUMBER_WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six']
const schema = createRequire(import.meta.url)('../../deploy/fleets.schema.json') as { $defs?: unknown }
const localFleets = Object.keys((parse(readFileSync('local/fleets.yml', 'utf8')) as { fleets: Record<string, unknown> }).fleets)

/** The paragraph (text between blank lines) of a doc that holds `marker`. */
function paragraphWith(file: string, marker: string): string {
  const paragraph = readFileSync(file, 'utf8').split(/\n\s*\n/).find((each) => each.includes(marker))
  if (paragraph === undefined) throw new Error(`${file} no longer says "${marker}": keep the claim, or change this test with it`)
  return paragraph
}

describe('Docs: the local stack\'s fleets', () => {
  it('README counts them right', () => {
    // Act
    const count = /The local stack serves (\w+) fleets/.exec(readFileSync('README.md', 'utf8'))?.[1]

    // Assess
    expect(count).toBe(NUMBER_WORDS[localFleets.length])
  })

  it.each([
    ['README.md', 'The local stack serves'],
    ['docs/fleets.md', '`npm start` serves `local/fleets.yml`'],
  ])('%s names each of them', (file, marker) => {
    // Act
    const paragraph = paragraphWith(file, marker)

    // Assess
    for (const fleet of localFleets) expect(paragraph).toContain(`\`${fleet}\``)
  })
})

describe('Docs: x509.md, what the ESP32 sketch speaks', () => {
  it('names every proof option the sketch is built with', () => {
    // Prepare
    const options = new Set([...readFileSync(SKETCH, 'utf8').matchAll(/#if(?:def|\s+defined\()\s*\(?(PROVISIONING_(?:X509|EFUSE_HMAC_KEY))\b/g)].map((match) => match[1]!))

    // Act
    const paragraph = paragraphWith('docs/x509.md', 'The ESP32 example sketch speaks')

    // Assess
    expect([...options].sort()).toEqual(['PROVISIONING_EFUSE_HMAC_KEY', 'PROVISIONING_X509'])
    for (const option of options) expect(paragraph).toContain(`\`${option}\``)
    expect(paragraph).toContain('X.509 fleets')
  })
})

describe('Docs: comparison.md', () => {
  it.each([
    ['**Secrets on the device**'],
    ['**Proof of identity**'],
    ['**Revocation**'],
  ])('the %s row covers every proof a fleet may take', (row) => {
    // Prepare: hmac, claim, x509 as the fleets schema lists them
    const proofs = JSON.stringify(schema).match(/"enum":\["hmac","claim","x509"\]/) ? ['hmac', 'claim', 'x509'] : []
    const words: Record<string, RegExp> = { hmac: /HMAC|per-device key|by device/, claim: /claim secret|by device/, x509: /certificate/ }

    // Act
    const line = readFileSync('docs/comparison.md', 'utf8').split('\n').find((each) => each.startsWith(`| ${row}`))!
    const ours = line.split(' | ').at(-1)!

    // Assess
    expect(proofs).toHaveLength(3)
    for (const proof of proofs) expect(ours).toMatch(words[proof]!)
  })
})

describe('Docs: doctor and the probe device', () => {
  it('doctor --help and the README say the probe stays disabled without a token that may delete it', async () => {
    // Act
    const help = await run(['doctor', '--help'])
    const readme = paragraphWith('README.md', 'a probe device')

    // Assess
    expect(help.stdout.replace(/\s+/g, ' ')).toContain('left disabled, and named, when no token given may delete it: --cleanup-token-param')
    expect(readme.replace(/\s+/g, ' ')).toContain('left disabled and named when no token given may delete it')
    expect(`${help.stdout}${readme}`).not.toContain('always removed')
  })
})
