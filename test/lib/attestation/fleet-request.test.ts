import { describe, expect, it } from 'vitest'
import { decodeClaimSecret, verifyClaim } from '../../../lib/attestation/keys.js'
import { admitToFleet, parseProvisionRequest } from '../../../lib/attestation/request.js'
import { ConfigError, ValidationError } from '../../../lib/errors.js'
import type { Fleet } from '../../../lib/fleets/fleet.js'
import { captureError } from '../capture-error.js'

const DEVICE = 'ws_kit0001'
const SIGNATURE = 'ZHYss//dxmIMMb/zLDJIbEOChjZeGQgm3h3mDEmz+yA='
const CLAIM = 'a-claim-secret-of-a-batch'

const fleet = (overrides: Partial<Fleet>): Fleet => ({
  name: 'workshop',
  proof: ['claim'],
  claimParam: '/c',
  denyListParam: '/d',
  replayProtection: true,
  devicePattern: /^(?:ws_[a-z0-9]{4,29})$/,
  reprovision: 'reject',
  profile: { type: 'Generic' },
  thinger: { apiUrl: 'https://backend.thinger.io', username: 'acme', tokenParam: '/t', deviceHost: 'backend.thinger.io' },
  ...overrides,
})
const fleets = new Map<string, Fleet>([
  ['workshop', fleet({})],
  ['factory', fleet({ name: 'factory', proof: ['hmac'], keyParam: '/k', claimParam: undefined, devicePattern: /^(?:.*)$/, reprovision: 'rotate' })],
])

describe('Function: parseProvisionRequest (fleets, claims, meta)', () => {
  it('reads a claim request with its fleet and meta', () => {
    // Act
    const request = parseProvisionRequest({ device: DEVICE, claim: CLAIM, fleet: 'workshop', meta: { site: 'lab_2', owner: 'Ada' } })

    // Assess
    expect(request).toEqual({ device: DEVICE, fleet: 'workshop', meta: { site: 'lab_2', owner: 'Ada' }, proof: { kind: 'claim', claim: CLAIM } })
  })

  it.each([
    ['both a claim and a signature', { device: DEVICE, claim: CLAIM, timestamp: 1, signature: SIGNATURE }],
    ['an empty claim', { device: DEVICE, claim: '' }],
    ['a claim that is not a string', { device: DEVICE, claim: 42 }],
    ['a claim over 256 characters', { device: DEVICE, claim: 'x'.repeat(257) }],
    ['an upper-case fleet name', { device: DEVICE, claim: CLAIM, fleet: 'Workshop' }],
    ['a fleet that is not a string', { device: DEVICE, claim: CLAIM, fleet: ['workshop'] }],
    ['meta that is an array', { device: DEVICE, claim: CLAIM, meta: ['a'] }],
    ['meta with 17 keys', { device: DEVICE, claim: CLAIM, meta: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])) }],
    ['a meta key with upper case', { device: DEVICE, claim: CLAIM, meta: { Site: 'x' } }],
    ['a meta key of 33 characters', { device: DEVICE, claim: CLAIM, meta: { ['k'.repeat(33)]: 'x' } }],
    ['a meta value that is a number', { device: DEVICE, claim: CLAIM, meta: { site: 3 } }],
    ['a meta value of 65 characters', { device: DEVICE, claim: CLAIM, meta: { site: 'x'.repeat(65) } }],
  ])('throws invalid_request for %s', (_label, body) => {
    // Act
    const error = captureError(() => parseProvisionRequest(body))

    // Assess
    expect(error).toBeInstanceOf(ValidationError)
    expect(error).toMatchObject({ code: 'invalid_request', statusCode: 400 })
  })

  it('accepts 16 meta keys of 32 characters with values of 64 characters', () => {
    // Prepare
    const meta = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`${String(i).padStart(2, '0')}${'k'.repeat(30)}`, 'v'.repeat(64)]))

    // Act & Assess
    expect(parseProvisionRequest({ device: DEVICE, claim: CLAIM, meta }).meta).toEqual(meta)
  })
})

describe('Function: admitToFleet', () => {
  it.each([
    ['unknown_fleet', 403, { device: DEVICE, claim: CLAIM, fleet: 'nope' }],
    ['proof_not_accepted', 403, { device: DEVICE, timestamp: 1, signature: SIGNATURE, fleet: 'workshop' }],
    ['proof_not_accepted', 403, { device: DEVICE, claim: CLAIM, fleet: 'factory' }],
    ['device_not_allowed', 403, { device: 'esp32_kit', claim: CLAIM, fleet: 'workshop' }],
    ['unknown_fleet', 403, { device: DEVICE, claim: CLAIM }],
  ])('refuses with %s (%i) before any secret is read', (code, statusCode, body) => {
    // Act
    const error = captureError(() => admitToFleet(parseProvisionRequest(body), fleets))

    // Assess
    expect(error).toMatchObject({ code, statusCode })
  })

  it('returns the fleet that admits the request', () => {
    // Act & Assess
    expect(admitToFleet(parseProvisionRequest({ device: DEVICE, claim: CLAIM, fleet: 'workshop' }), fleets).name).toBe('workshop')
  })
})

describe('Function: parseProvisionRequest and admitToFleet (protocol v2, sealing)', () => {
  it.each([
    ['a signed request', { device: DEVICE, timestamp: 1, signature: SIGNATURE, fleet: 'factory', version: 2 }],
    ['a claim request', { device: DEVICE, claim: CLAIM, fleet: 'workshop', version: 2 }],
  ])('reads version 2 of %s', (_label, body) => {
    expect(parseProvisionRequest(body)).toMatchObject({ device: DEVICE, version: 2 })
  })

  it('reads an explicit version 1 as a request without the field', () => {
    expect(parseProvisionRequest({ device: DEVICE, claim: CLAIM, version: 1 })).not.toHaveProperty('version')
  })

  it.each([['3', 3], ['a string', '2'], ['null', null], ['a fraction', 1.5]])('throws ValidationError for a version that is %s', (_label, version) => {
    const error = captureError(() => parseProvisionRequest({ device: DEVICE, claim: CLAIM, version }))
    expect(error).toBeInstanceOf(ValidationError)
    expect((error as Error).message).toBe('"version" must be 1 or 2')
  })

  it('throws sealing_required for a version 1 request in a fleet that requires sealing, and admits version 2', () => {
    // Prepare
    const sealed = new Map<string, Fleet>([['workshop', fleet({ sealing: 'required' })]])

    // Act
    const refused = captureError(() => admitToFleet(parseProvisionRequest({ device: DEVICE, claim: CLAIM, fleet: 'workshop' }), sealed))
    const admitted = admitToFleet(parseProvisionRequest({ device: DEVICE, claim: CLAIM, fleet: 'workshop', version: 2 }), sealed)

    // Assess
    expect(refused).toMatchObject({ code: 'sealing_required', statusCode: 403, retryable: false })
    expect(admitted.name).toBe('workshop')
  })
})

describe('Function: admitToFleet, meta', () => {
  const withMeta = new Map<string, Fleet>([['workshop', fleet({ meta: { site: { pattern: /^(?:[a-z0-9_]{1,16})$/ }, owner: { default: 'nobody' } } })]])
  const admit = (meta: Record<string, string>) => admitToFleet(parseProvisionRequest({ device: DEVICE, claim: CLAIM, fleet: 'workshop', meta }), withMeta)

  it('admits the keys the fleet declares, within their patterns', () => {
    expect(() => admit({ site: 'lab_2', owner: 'Ada Lovelace & co' })).not.toThrow()
  })

  it.each([
    ['a key the fleet does not declare', { colour: 'red' }],
    ['a value outside the key’s pattern', { site: 'Lab 2' }],
  ])('refuses %s with invalid_request', (_label, meta) => {
    expect(captureError(() => admit(meta))).toMatchObject({ code: 'invalid_request', statusCode: 400 })
  })

  it('refuses any meta in a fleet that declares none', () => {
    expect(captureError(() => admitToFleet(parseProvisionRequest({ device: DEVICE, claim: CLAIM, fleet: 'workshop', meta: { site: 'x' } }), fleets))).toMatchObject({ code: 'invalid_request' })
  })

  it.each([
    ['an escape sequence', 'a\u001b[2J'],
    ['DEL', 'a\u007f'],
    ['a C1 control', 'a\u009b31m'],
    ['a right-to-left override', 'a\u202eexe.txt'],
    ['a bidi isolate', 'a\u2066b'],
    ['a zero-width joiner', 'a\u200db'],
    ['a line separator', 'a\u2028b'],
    ['a lone surrogate', 'a\ud800'],
    ['a private-use character', 'a\ue000'],
    ['markup', '<b>x</b>'],
    ['an empty value', ''],
  ])('refuses a meta value with %s before looking at the fleet', (_label, value) => {
    expect(captureError(() => parseProvisionRequest({ device: DEVICE, claim: CLAIM, meta: { site: value } }))).toMatchObject({ code: 'invalid_request' })
  })

  it('accepts printable text in any script', () => {
    expect(parseProvisionRequest({ device: DEVICE, claim: CLAIM, meta: { site: 'Zürich Süd – 東京 3' } }).meta.site).toBe('Zürich Süd – 東京 3')
  })
})

describe('Function: verifyClaim', () => {
  it('accepts the stored secret', () => {
    expect(() => verifyClaim(CLAIM, CLAIM)).not.toThrow()
  })

  it.each([['another secret', 'b-claim-secret-of-a-batch'], ['a prefix', CLAIM.slice(0, -1)], ['a longer string', `${CLAIM}x`], ['the empty string', '']])(
    'throws invalid_claim (401) for %s',
    (_label, given) => {
      // Act
      const error = captureError(() => verifyClaim(given, CLAIM))

      // Assess
      expect(error).toMatchObject({ code: 'invalid_claim', statusCode: 401 })
    },
  )
})

describe('Function: decodeClaimSecret', () => {
  it('throws ConfigError naming the field, without the value, for a secret under 16 characters', () => {
    // Act
    const error = captureError(() => decodeClaimSecret('short-secret', 'fleets.workshop.claimParam'))

    // Assess
    expect(error).toBeInstanceOf(ConfigError)
    expect(error).toMatchObject({ setting: 'fleets.workshop.claimParam' })
    expect(JSON.stringify({ ...(error as object), message: (error as Error).message })).not.toContain('short-secret')
  })
})
