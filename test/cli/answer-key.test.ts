import { describe, expect, it } from 'vitest'
import { answerPublicPoint, generateAnswerKey, parseAnswerKey, parseAnswerPublicKey } from '../../lib/attestation/answer-signature.js'
import { MemorySsm, run } from './fakes.js'

const PARAM = '/thinger-provisioner/prod/answer-key'
const ENV = { STAGE: 'prod' }

describe('Command: answer-key create', () => {
  it('stores a P-256 key as a SecureString at ANSWER_KEY_PARAM’s default and prints only its public half', async () => {
    // Prepare
    const ssm = new MemorySsm()

    // Act
    const result = await run(['answer-key', 'create'], { env: ENV, ssm })

    // Assess
    expect(result.code).toBe(0)
    const stored = ssm.parameters.get(PARAM)
    expect(stored?.type).toBe('SecureString')
    const key = parseAnswerKey(stored?.value, 'test')
    expect(result.stdout).toBe(`${answerPublicPoint(key).toString('base64')}\n`)
    expect(result.stderr).toContain(`created SecureString ${PARAM}`)
    expect(result.stdout + result.stderr).not.toContain(stored!.value)
    expect(ssm.writes[0]).toMatchObject({ overwrite: false, secret: true })
  })

  it('refuses to replace an existing key with already_exists, leaving it as it is', async () => {
    // Prepare
    const ssm = new MemorySsm()
    const existing = generateAnswerKey()
    ssm.seed('/custom/answer-key', existing)

    // Act
    const result = await run(['answer-key', 'create'], { env: { ...ENV, ANSWER_KEY_PARAM: '/custom/answer-key' }, ssm })

    // Assess
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('SSM parameter /custom/answer-key already exists; it was left as it is [already_exists]')
    expect(ssm.parameters.get('/custom/answer-key')?.value).toBe(existing)
  })
})

describe('Command: answer-key show', () => {
  const seeded = () => {
    const ssm = new MemorySsm()
    const value = generateAnswerKey()
    ssm.seed(PARAM, value)
    return { ssm, value, point: answerPublicPoint(parseAnswerKey(value, 'test')) }
  }

  it('prints the public point in base64 (default) and hex, which the player and firmware parse back', async () => {
    // Prepare
    const { ssm, value, point } = seeded()

    // Act
    const base64 = await run(['answer-key', 'show'], { env: ENV, ssm })
    const hex = await run(['answer-key', 'show', '--format', 'hex'], { env: ENV, ssm })

    // Assess
    expect(base64.stdout).toBe(`${point.toString('base64')}\n`)
    expect(hex.stdout).toBe(`${point.toString('hex')}\n`)
    expect(answerPublicPoint(parseAnswerPublicKey(base64.stdout))).toEqual(point)
    expect(base64.stdout + hex.stdout).not.toContain(value)
  })

  it('prints a C array of the 65 bytes for the C core', async () => {
    // Prepare
    const { ssm, point } = seeded()

    // Act
    const result = await run(['answer-key', 'show', '--format', 'c'], { env: ENV, ssm })

    // Assess
    expect(result.stdout).toContain('static const unsigned char THINGER_PROVISIONER_ANSWER_KEY[65] = {')
    const bytes = [...result.stdout.matchAll(/0x([0-9a-f]{2})/g)].map((match) => Number.parseInt(match[1]!, 16))
    expect(Buffer.from(bytes)).toEqual(point)
  })

  it.each([
    ['missing', undefined, 1, `no answer key at ${PARAM}: create it with \`thinger-provisioner answer-key create\` [not_found]`],
    ['not a key', 'c2VjcmV0LWJ1dC1ub3QtYS1rZXk=', 2, `${PARAM}: is not the base64 of a PKCS#8 DER private key`],
  ])('says so when the key is %s, without quoting the value', async (_label, value, code, message) => {
    // Prepare
    const ssm = new MemorySsm()
    if (value !== undefined) ssm.seed(PARAM, value)

    // Act
    const result = await run(['answer-key', 'show'], { env: ENV, ssm })

    // Assess
    expect(result.code).toBe(code)
    expect(result.stderr).toContain(message)
    if (value !== undefined) expect(result.stderr).not.toContain(value)
  })

  it('refuses an unknown --format with exit 2', async () => {
    // Act
    const result = await run(['answer-key', 'show', '--format', 'pem'], { env: ENV, ssm: seeded().ssm })

    // Assess
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('pem')
  })
})
