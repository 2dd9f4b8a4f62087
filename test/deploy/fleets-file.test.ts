import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { describe, expect, it } from 'vitest'

const { parseFleets, loadFleets, checkEnvironmentPattern } = createRequire(import.meta.url)('../../deploy/fleets.cjs') as {
  checkEnvironmentPattern: (env: Record<string, string | undefined>) => void
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
    ['a pattern that backtracks exponentially', 'fleets:\n  lab:\n    proof: [hmac]\n    keyParam: /k\n    devicePattern: "(a+)+b"\n', 'fleet "lab", field devicePattern: can backtrack catastrophically (exponential'],
    ['an overlapping alternation under a star', 'fleets:\n  lab:\n    proof: [hmac]\n    keyParam: /k\n    devicePattern: "(a|a)*b"\n', 'fleet "lab", field devicePattern: can backtrack catastrophically'],
    ['a polynomial meta pattern', 'fleets:\n  lab:\n    proof: [hmac]\n    keyParam: /k\n    meta:\n      site: { pattern: ".*a.*a.*a" }\n', 'fleet "lab", field meta.site.pattern: can backtrack catastrophically ('],
    ['meta in a bucket ID', 'fleets:\n  lab:\n    proof: [hmac]\n    keyParam: /k\n    meta: { site: {} }\n    profile:\n      bucket: { id: "{device}_{meta.site}", resource: data, update: events }\n', 'fleet "lab", field profile.bucket.id: {meta.site} is not allowed in an ID'],
    ['meta in a dashboard ID', 'fleets:\n  lab:\n    proof: [hmac]\n    keyParam: /k\n    profile:\n      dashboard: { template: t, id: "{meta.site}_dash" }\n', 'fleet "lab", field profile.dashboard.id: {meta.site} is not allowed in an ID'],
    ['an ID every device would share', 'fleets:\n  lab:\n    proof: [hmac]\n    keyParam: /k\n    profile:\n      dashboard: { template: t, id: "{fleet}_dash" }\n', 'fleet "lab", field profile.dashboard.id: must contain {device}'],
    ['a template naming an undeclared meta key', 'fleets:\n  lab:\n    proof: [hmac]\n    keyParam: /k\n    profile:\n      description: "at {meta.site}"\n', 'fleet "lab", field profile.description: {meta.site} names a meta key the fleet does not declare'],
    ['a meta default with a bidi override', 'fleets:\n  lab:\n    proof: [hmac]\n    keyParam: /k\n    meta:\n      site: { default: "a\\u202eb" }\n', 'fleet "lab", field meta.site.default: must be printable text'],
    ['a meta default outside its pattern', 'fleets:\n  lab:\n    proof: [hmac]\n    keyParam: /k\n    meta:\n      site: { pattern: "[a-z]{1,8}", default: "Lab 1" }\n', 'fleet "lab", field meta.site.default: does not match meta.site.pattern'],
    ['a backreference, which overflowed the checker past its timeout', 'fleets:\n  lab:\n    proof: [hmac]\n    keyParam: /k\n    devicePattern: "(a|\\\\1)+"\n', 'fleet "lab", field devicePattern: uses a backreference (\\1), which the build cannot prove free of catastrophic backtracking'],
    ['a named backreference in a meta pattern', 'fleets:\n  lab:\n    proof: [hmac]\n    keyParam: /k\n    meta:\n      site: { pattern: "(?<x>a)\\\\k<x>" }\n', 'fleet "lab", field meta.site.pattern: uses a named backreference'],
    ['a lookahead', 'fleets:\n  lab:\n    proof: [hmac]\n    keyParam: /k\n    devicePattern: "(?=a)[a-z]+"\n', 'fleet "lab", field devicePattern: uses a lookahead ((?=)'],
    ['a lookbehind', 'fleets:\n  lab:\n    proof: [hmac]\n    keyParam: /k\n    devicePattern: "[a-z]+(?<!x)"\n', 'fleet "lab", field devicePattern: uses a lookbehind ((?<!)'],
    ['a meta key with capitals', 'fleets:\n  lab:\n    proof: [hmac]\n    keyParam: /k\n    meta:\n      Site: {}\n', 'fleet "lab", field meta: has an invalid name "Site"'],
  ])('refuses %s, naming the fleet and the field', (_label, body, expected) => {
    // Act
    const message = problemsOf(`version: 1\n${body}`)

    // Assess
    expect(message).toContain('fleets file test.yml is invalid')
    expect(message).toContain(expected)
  })

  it('keeps fleets and meta keys named like Object.prototype members as own keys, each with its own settings', () => {
    // Act
    const fleets = parseFleets(`version: 1
fleets:
  __proto__:
    proof: [hmac]
    keyParam: /p/key
    devicePattern: 'p_[a-z]{4}'
  constructor:
    proof: [claim]
    claimParam: /c/claim
    meta:
      constructor: { pattern: '[a-z]{1,8}' }
`)
    const bundled = JSON.parse(JSON.stringify(fleets)) as typeof fleets

    // Assess
    expect(Object.keys(bundled.fleets).sort()).toEqual(['__proto__', 'constructor'])
    expect(Object.getPrototypeOf(bundled.fleets)).toBe(Object.prototype)
    expect(bundled.fleets.__proto__).toMatchObject({ keyParam: '/p/key', devicePattern: 'p_[a-z]{4}' })
    expect(bundled.fleets.constructor).toMatchObject({ claimParam: '/c/claim', meta: { constructor: { pattern: '[a-z]{1,8}' } } })
  })

  it('accepts the usual ID patterns as free of catastrophic backtracking', () => {
    for (const pattern of ['[A-Za-z0-9_-]{1,32}', 'ws_[a-z0-9]{4,29}', 'esp32_[0-9a-f]{12}', 'gh_[0-9a-f]{12}|mk_[a-z0-9]{6,29}']) {
      expect(() => parseFleets(`version: 1\nfleets:\n  lab:\n    proof: [hmac]\n    keyParam: /k\n    devicePattern: '${pattern}'\n`)).not.toThrow()
    }
  })

  it('refuses a DEVICE_ID_PATTERN that backtracks catastrophically, naming the setting', () => {
    expect(() => checkEnvironmentPattern({ DEVICE_ID_PATTERN: '(a+)+b' })).toThrow('setting DEVICE_ID_PATTERN: can backtrack catastrophically')
    expect(() => checkEnvironmentPattern({ DEVICE_ID_PATTERN: 'esp32_[0-9a-f]{12}' })).not.toThrow()
    expect(() => checkEnvironmentPattern({})).not.toThrow()
  })

  it('refuses a DEVICE_ID_PATTERN with a backreference, or one the checker cannot finish, naming the setting, within seconds', () => {
    // Prepare: groups nested deeper than the checker's stack, no backreference needed
    const nested = `${'(?:'.repeat(3000)}a${')'.repeat(3000)}`
    const started = Date.now()

    // Act & Assess
    expect(() => checkEnvironmentPattern({ DEVICE_ID_PATTERN: '(a|\\1)+' })).toThrow('setting DEVICE_ID_PATTERN: uses a backreference (\\1)')
    expect(() => checkEnvironmentPattern({ DEVICE_ID_PATTERN: nested })).toThrow('setting DEVICE_ID_PATTERN: could not be proven free of catastrophic backtracking (the checker ran out of stack)')
    expect(() => checkEnvironmentPattern({ DEVICE_ID_PATTERN: '[\\1]x|a(?:b)' })).not.toThrow()
    expect(Date.now() - started).toBeLessThan(30_000)
  })

  it('shows a YAML error with the lines around it, as the parser gives them', () => {
    // Act
    const problems = problemsOf('version: 1\nfleets:\n  a:\n    proof: [hmac]\n   keyParam: /k\n')

    // Assess: the place, and the snippet under it with its caret, not a sentence ending in a colon
    expect(problems).toBe(
      [
        'fleets file test.yml is invalid:',
        '  - All mapping items must start at the same column at line 5, column 1:',
        '',
        '        proof: [hmac]',
        '       keyParam: /k',
        '    ^',
      ].join('\n'),
    )
  })

  it('reads no file when FLEETS_FILE is unset and there is no fleets.yml', () => {
    expect(existsSync('fleets.yml') ? 'skip' : loadFleets({})).toBe(existsSync('fleets.yml') ? 'skip' : null)
  })

  it('fails when FLEETS_FILE names a missing file', () => {
    expect(() => loadFleets({ FLEETS_FILE: 'no/such/fleets.yml' })).toThrow('FLEETS_FILE names no/such/fleets.yml, which does not exist')
  })
})
