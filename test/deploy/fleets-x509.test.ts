import { mkdtempSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { issue, newCa } from '../support/pki.js'

const { parseFleets, parameterNames } = createRequire(import.meta.url)('../../deploy/fleets.cjs') as {
  parseFleets: (text: string, file?: string, baseDir?: string) => { fleets: Record<string, Record<string, unknown>> }
  parameterNames: (fleets: unknown, tokenParam: string, envFleet: unknown) => string[]
}

let dir: string
let caPem: string

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fleets-x509-'))
  const ca = await newCa()
  caPem = ca.pem
  writeFileSync(join(dir, 'ca.pem'), ca.pem)
  writeFileSync(join(dir, 'leaf.pem'), (await issue(ca, 'x5_a')).pem)
  writeFileSync(join(dir, 'empty.pem'), 'nothing\n')
})

const parse = (fleet: string) => parseFleets(`version: 1\nfleets:\n  factory:\n${fleet.replace(/^/gm, '    ')}\n`, join(dir, 'fleets.yml'), dir)
const problemsOf = (fleet: string): string => {
  try {
    parse(fleet)
  } catch (error) {
    return (error as Error).message
  }
  throw new Error('the fleets file was accepted')
}

describe('Fleets file: x509 fleets', () => {
  it('compiles the CA file in and defaults the device ID to the CN', () => {
    // Act
    const { fleets } = parse('proof: [x509]\nx509: { caFile: ca.pem }\ndenyListParam: /f/deny')

    // Assess
    expect(fleets.factory).toMatchObject({ proof: ['x509'], x509: { caCertificates: caPem.trim(), deviceId: 'cn' }, denyListParam: '/f/deny' })
  })

  it('reads an SSM CA parameter with the other parameters, and puts the deny list beside it', () => {
    // Act
    const definition = parse('proof: [x509]\nx509: { caParam: /f/ca, deviceId: dns }')

    // Assess
    expect(definition.fleets.factory).toMatchObject({ x509: { caParam: '/f/ca', deviceId: 'dns' }, denyListParam: '/f/factory-deny-list' })
    expect(parameterNames(definition, '/token', undefined)).toEqual(['/token', '/f/ca', '/f/factory-deny-list'])
  })

  it.each([
    ['no x509 settings', 'proof: [x509]\ndenyListParam: /f/deny', 'missing field "x509"'],
    ['both CA sources', 'proof: [x509]\nx509: { caFile: ca.pem, caParam: /f/ca }', 'give exactly one of caFile and caParam'],
    ['a missing CA file', 'proof: [x509]\nx509: { caFile: nope.pem }\ndenyListParam: /f/deny', 'fleet "factory", field x509.caFile: nope.pem does not exist'],
    ['a file without PEM', 'proof: [x509]\nx509: { caFile: empty.pem }\ndenyListParam: /f/deny', 'empty.pem holds no PEM certificate'],
    ['a device certificate as CA', 'proof: [x509]\nx509: { caFile: leaf.pem }\ndenyListParam: /f/deny', 'certificate 1 of leaf.pem is not a CA certificate'],
    ['no place for the deny list', 'proof: [x509]\nx509: { caFile: ca.pem }', 'field denyListParam: required'],
    ['an unknown device ID source', 'proof: [x509]\nx509: { caFile: ca.pem, deviceId: email }\ndenyListParam: /f/deny', 'field x509.deviceId: must be one of cn, dns'],
  ])('refuses %s, naming the fleet and field', (_name, fleet, problem) => {
    // Act
    const message = problemsOf(fleet)

    // Assess
    expect(message).toContain(problem)
  })
})
