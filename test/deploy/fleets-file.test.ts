import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { describe, expect, it } from 'vitest'

const { parseFleets, loadFleets } = createRequire(import.meta.url)('../../deploy/fleets.cjs') as {
  parseFleets: (text: string, file?: string) => { fleets: Record<string, Record<string, unknown>> }
  loadFleets: (env: Record<string, string | undefined>) => unknown
}

/** The fleets files this repository ships, each of which must pass the schema. */
const SHIPPED = ['local/fleets.yml', ...(existsSync('fleets.yml') ? ['fleets.yml'] : [])]

function docExample(): string {
  const doc = readFileSync('docs/fleets.md', 'utf8')
  const match = /<!-- example fleets file -->\s*```yaml\n([\s\S]*?)```/.exec(doc)
  if (!match) throw new Error('docs/fleets.md has no example fleets file block')
  return match[1]!
}

function problemsOf(text: string): string {
  try {
    parseFleets(text, 'test.yml')
  } catch (error) {
    return (error as Error).message
  }
  throw new Error('the file was accepted')
}

describe('Deployment: fleets files', () => {
  it.each(SHIPPED)('accepts the shipped %s', (file) => {
    expect(() => parseFleets(readFileSync(file, 'utf8'), file)).not.toThrow()
  })

  it('accepts the complete example of docs/fleets.md', () => {
    const fleets = parseFleets(docExample(), 'docs/fleets.md')
    expect(Object.keys(fleets.fleets).length).toBeGreaterThanOrEqual(2)
  })

  it('applies defaults: reject for claim fleets, rotate otherwise, Thinger’s ID rule, a Generic profile', () => {
    // Act
    const { fleets } = parseFleets('version: 1\nfleets:\n  a:\n    proof: [hmac]\n    keyParam: /k\n  b:\n    proof: [claim]\n    claimParam: /c\n')

    // Assess
    expect(fleets.a).toEqual({
      proof: ['hmac'],
      keyParam: '/k',
      keyVersions: [1],
      claimParam: undefined,
      denyListParam: '/a-deny-list',
      replayProtection: true,
      devicePattern: '[A-Za-z0-9_-]{1,32}',
      reprovision: 'rotate',
      profile: { type: 'Generic' },
    })
    expect(fleets.b).toMatchObject({ reprovision: 'reject' })
  })

  it('keeps a sealing policy, and leaves it out when absent (optional: a file from before sealing keeps its v1 devices)', () => {
    // Act
    const { fleets } = parseFleets('version: 1\nfleets:\n  a:\n    proof: [hmac]\n    keyParam: /k\n    sealing: required\n  b:\n    proof: [hmac]\n    keyParam: /k2\n')

    // Assess
    expect(fleets.a).toMatchObject({ sealing: 'required' })
    expect(fleets.b).not.toHaveProperty('sealing')
  })

  it.each([
    ['a missing key parameter', 'fleets:\n  lab:\n    proof: [hmac]\n', 'fleet "lab": missing field "keyParam"'],
    ['an unknown field', 'fleets:\n  lab:\n    proof: [hmac]\n    keyParam: /k\n    colour: red\n', 'fleet "lab": unknown field "colour"'],
    ['an unknown proof', 'fleets:\n  lab:\n    proof: [password]\n', 'fleet "lab", field proof.0: must be one of hmac, claim'],
    ['an invalid pattern', 'fleets:\n  lab:\n    proof: [hmac]\n    keyParam: /k\n    devicePattern: "(ws"\n', 'fleet "lab", field devicePattern: not a valid regular expression'],
    ['a bucket without its interval', 'fleets:\n  lab:\n    proof: [hmac]\n    keyParam: /k\n    profile:\n      bucket: { id: "{device}_d", resource: data, update: interval }\n', 'fleet "lab", field profile.bucket: missing field "interval"'],
    ['an unknown placeholder', 'fleets:\n  lab:\n    proof: [hmac]\n    keyParam: /k\n    profile:\n      name: "{serial}"\n', 'fleet "lab", field profile.name: unknown placeholder {serial}'],
    ['an asset type that is no Thinger ID', 'fleets:\n  lab:\n    proof: [hmac]\n    keyParam: /k\n    profile:\n      assetType: "two words"\n', 'fleet "lab", field profile.assetType: must match pattern'],
    ['a fleet name with capitals', 'fleets:\n  Lab:\n    proof: [hmac]\n    keyParam: /k\n', 'has an invalid name "Lab"'],
    ['a property named provisioning', 'fleets:\n  lab:\n    proof: [hmac]\n    keyParam: /k\n    profile:\n      properties: { provisioning: 1 }\n', 'fleet "lab", field profile.properties'],
    ['a parameter that is not a path', 'fleets:\n  lab:\n    proof: [hmac]\n    keyParam: fleet-key\n', 'fleet "lab", field keyParam: must match pattern'],
    ['an unknown sealing policy', 'fleets:\n  lab:\n    proof: [hmac]\n    keyParam: /k\n    sealing: yes\n', 'fleet "lab", field sealing: must be one of required, optional'],
    ['a duplicate key', 'fleets:\n  lab:\n    proof: [hmac]\n    proof: [claim]\n', 'Map keys must be unique'],
  ])('refuses %s, naming the fleet and the field', (_label, body, expected) => {
    // Act
    const message = problemsOf(`version: 1\n${body}`)

    // Assess
    expect(message).toContain('fleets file test.yml is invalid')
    expect(message).toContain(expected)
  })

  it('reads no file when FLEETS_FILE is unset and there is no fleets.yml', () => {
    expect(existsSync('fleets.yml') ? 'skip' : loadFleets({})).toBe(existsSync('fleets.yml') ? 'skip' : null)
  })

  it('fails when FLEETS_FILE names a missing file', () => {
    expect(() => loadFleets({ FLEETS_FILE: 'no/such/fleets.yml' })).toThrow('FLEETS_FILE names no/such/fleets.yml, which does not exist')
  })
})
