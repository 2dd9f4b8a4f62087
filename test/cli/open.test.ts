import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { answerPublicPoint, generateAnswerKey, parseAnswerKey, requestBodyDigest, signAnswer } from '../../lib/attestation/answer-signature.js'
import { decodeFleetKey, verifySignature } from '../../lib/attestation/keys.js'
import { parseProvisionRequest } from '../../lib/attestation/request.js'
import { deriveHmacSealKey, sealAnswer } from '../../lib/attestation/seal.js'
import { MemorySsm, run } from './fakes.js'

// The sealing test vector (docs/protocol.md).
const VECTOR_FLEET_KEY = 'dGhpbmdlci1wcm92aXNpb25lci10ZXN0LWZsZWV0LWtleS0wMDE='
const DEVICE = 'esp32_a1b2c3d4e5f6'
const TIMESTAMP = 1764150000
const DEVICE_KEY = 'slJ/UknDHHGumvra+RjeJHZq2Cp87+EN3n7coIJFlxA='
const SIGNATURE_V2 = 'zXIu2qxo13N67KGnC7D8mv6F38HGNbJlsBOSSrKLmdA='
const SEALED_ANSWER = { username: 'acme', device: DEVICE, sealed: 'AQEAAQIDBAUGBwgJCgvAbgqIbyh2XhGXWg3ZDzbAaRCewti+w3wMslflAGzlPfBBqmJ3DL2K', host: 'backend.thinger.io', created: true }
const CREDENTIAL = 'Vb3kq0TnW8xYz1LmP4rS7uHc'
// The answer-signature test vector (docs/protocol.md): its request body is the one a device sends.
const VECTOR_BODY = `{"device":"${DEVICE}","timestamp":${TIMESTAMP},"signature":"${SIGNATURE_V2}","version":2}`
const VECTOR_ANSWER_KEY = 'BEbkvrsJVTiANGn39mDOrQWXj91l36YhFVMPWCJAAN3SmWYqOVaMp02n7TaXb1+Xre6vE9XF17zKCrCSxpVvpfY='
const VECTOR_SIGNATURE = 'K1joCV2F7+XW5XfREMrm12yi/vh62Hjhfbauoi/VW9OWP/veELAdPewKVrxzmX/Qf2iqvCYnHIjX+EeSTfe8Ow=='
const SIGNED_ANSWER = { ...SEALED_ANSWER, answerSignature: VECTOR_SIGNATURE }
// Without an answer key the checks below are about sealing alone.
const NO_CHECK = '--no-answer-check'

function files(contents: Record<string, unknown>): Record<string, string> {
  const dir = mkdtempSync(join(tmpdir(), 'open-'))
  return Object.fromEntries(Object.entries(contents).map(([name, value]) => {
    writeFileSync(join(dir, name), typeof value === 'string' ? value : JSON.stringify(value))
    return [name, join(dir, name)]
  }))
}

describe('Command: sign --sealed', () => {
  it('prints the sealing test vector’s body: "version": 2 and the v2 signature, which the function accepts', async () => {
    // Act
    const result = await run(['sign', '--device', DEVICE, '--device-key', DEVICE_KEY, '--timestamp', String(TIMESTAMP), '--sealed'])

    // Assess
    expect(result.stdout).toBe(`{"device":"${DEVICE}","version":2,"timestamp":${TIMESTAMP},"signature":"${SIGNATURE_V2}"}\n`)
    const body = JSON.parse(result.stdout)
    expect(parseProvisionRequest(body).version).toBe(2)
    expect(() => verifySignature(decodeFleetKey(VECTOR_FLEET_KEY, 'test'), DEVICE, TIMESTAMP, body.signature, 2)).not.toThrow()
  })
})

describe('Command: open', () => {
  const signed = { device: DEVICE, version: 2, timestamp: TIMESTAMP, signature: SIGNATURE_V2 }

  it('checks the test vector’s answer signature over the request body, then opens it with the device key, device and timestamp from the request', async () => {
    // Prepare
    const f = files({ 'request.json': `${VECTOR_BODY}\n`, 'answer.json': SIGNED_ANSWER, 'answer-key.pub': `${VECTOR_ANSWER_KEY}\n` })

    // Act
    const result = await run(['open', '--request', f['request.json']!, '--answer', f['answer.json']!, '--device-key', DEVICE_KEY, '--answer-key', f['answer-key.pub']!])

    // Assess
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    expect(result.stdout).toBe(`${JSON.stringify({ username: 'acme', device: DEVICE, host: 'backend.thinger.io', created: true, credential: CREDENTIAL })}\n`)
  })

  it('opens with --device and --timestamp instead of --request', async () => {
    // Prepare
    const f = files({ 'answer.json': SEALED_ANSWER, 'device.key': `${DEVICE_KEY}\n` })

    // Act
    const result = await run(['open', '--device', DEVICE, '--timestamp', String(TIMESTAMP), '--answer', f['answer.json']!, '--device-key-file', f['device.key']!, NO_CHECK])

    // Assess
    expect(JSON.parse(result.stdout).credential).toBe(CREDENTIAL)
  })

  it.each([
    ['another timestamp', { answer: SEALED_ANSWER, args: ['--device', DEVICE, '--timestamp', String(TIMESTAMP + 1)] }, 1, '[sealed_not_opened]'],
    ['a host changed on the way', { answer: { ...SEALED_ANSWER, host: 'evil.example.com' }, args: ['--device', DEVICE, '--timestamp', String(TIMESTAMP)] }, 1, '[sealed_not_opened]'],
    ['an answer for another device', { answer: { ...SEALED_ANSWER, device: 'esp32_000000000000' }, args: ['--device', DEVICE, '--timestamp', String(TIMESTAMP)] }, 2, 'the answer is for device "esp32_000000000000"'],
    ['a credential in clear', { answer: { username: 'acme', device: DEVICE, credential: CREDENTIAL, host: 'h', created: true }, args: ['--device', DEVICE, '--timestamp', String(TIMESTAMP)] }, 1, 'the answer carries the credential in clear: the request was not sealed (sign --sealed) [not_sealed]'],
    ['a refusal', { answer: { error: { code: 'sealing_required', message: 'this fleet answers only protocol v2 requests' } }, args: ['--device', DEVICE, '--timestamp', String(TIMESTAMP)] }, 1, 'the answer is a refusal: sealing_required (this fleet answers only protocol v2 requests) [refused_answer]'],
    ['an answer that is not JSON', { answer: '<html>502</html>', args: ['--device', DEVICE, '--timestamp', String(TIMESTAMP)] }, 2, '--answer is not JSON'],
    ['a v1 request', { answer: SEALED_ANSWER, request: { ...signed, version: undefined }, args: [] }, 2, 'is not a sealed request'],
    ['neither --request nor --timestamp', { answer: SEALED_ANSWER, args: ['--device', DEVICE] }, 2, 'give --request, or --device and --timestamp'],
  ])('refuses %s with its code, printing no credential', async (_label, { answer, args, request }: { answer: unknown; args: string[]; request?: unknown }, code, message) => {
    // Prepare
    const f = files({ 'answer.json': answer, 'request.json': request ?? signed })

    // Act
    const result = await run(['open', '--answer', f['answer.json']!, '--device-key', DEVICE_KEY, ...(request ? ['--request', f['request.json']!] : []), ...args, NO_CHECK])

    // Assess
    expect(result.code).toBe(code)
    expect(result.stderr).toContain(message)
    expect(result.stdout).toBe('')
  })

  it('opens what the service seals for a fresh request', async () => {
    // Prepare
    const deviceKey = Buffer.from(DEVICE_KEY, 'base64')
    const answer = sealAnswer({ username: 'acme', device: DEVICE, credential: 'Fresh0Credential0123456789', host: 'acme.aws.thinger.io:25204', created: false }, deriveHmacSealKey(deviceKey, DEVICE, 1_800_000_000))
    const f = files({ 'answer.json': answer })

    // Act
    const result = await run(['open', '--device', DEVICE, '--timestamp', '1800000000', '--answer', f['answer.json']!, '--device-key', DEVICE_KEY, NO_CHECK])

    // Assess
    expect(JSON.parse(result.stdout)).toEqual({ username: 'acme', device: DEVICE, host: 'acme.aws.thinger.io:25204', created: false, credential: 'Fresh0Credential0123456789' })
  })

  describe('answer signatures', () => {
    const vectorFiles = (answer: unknown, body = VECTOR_BODY) => files({ 'request.json': body, 'answer.json': answer })

    it.each([
      ['no answerSignature', SEALED_ANSWER, VECTOR_BODY, '[answer_unsigned]'],
      ['a host changed on the way, the genuine signature kept', { ...SIGNED_ANSWER, host: 'evil.example.com' }, VECTOR_BODY, '[answer_signature_invalid]'],
      ['the signature of another request (a replayed answer)', SIGNED_ANSWER, VECTOR_BODY.replace('"version":2', '"version":2 '), '[answer_signature_invalid]'],
      ['a signature of another key', { ...SIGNED_ANSWER, answerSignature: signAnswer(SEALED_ANSWER, requestBodyDigest(VECTOR_BODY), parseAnswerKey(generateAnswerKey(), 'test')) }, VECTOR_BODY, '[answer_signature_invalid]'],
    ])('refuses an answer with %s, printing no credential', async (_label, answer, body, code) => {
      // Prepare
      const f = vectorFiles(answer, body)

      // Act
      const result = await run(['open', '--request', f['request.json']!, '--answer', f['answer.json']!, '--device-key', DEVICE_KEY, '--answer-key', VECTOR_ANSWER_KEY])

      // Assess
      expect(result.code).toBe(1)
      expect(result.stderr).toContain(code)
      expect(result.stdout).toBe('')
    })

    it('checks with the deployment’s answer key from SSM (ANSWER_KEY_PARAM) when no --answer-key is given', async () => {
      // Prepare
      const ssm = new MemorySsm()
      const answerKey = generateAnswerKey()
      ssm.seed('/thinger-provisioner/prod/answer-key', answerKey)
      const f = vectorFiles({ ...SEALED_ANSWER, answerSignature: signAnswer(SEALED_ANSWER, requestBodyDigest(VECTOR_BODY), parseAnswerKey(answerKey, 'test')) })
      const vector = vectorFiles(SIGNED_ANSWER)

      // Act
      const ours = await run(['open', '--request', f['request.json']!, '--answer', f['answer.json']!, '--device-key', DEVICE_KEY], { env: { STAGE: 'prod' }, ssm })
      const theirs = await run(['open', '--request', vector['request.json']!, '--answer', vector['answer.json']!, '--device-key', DEVICE_KEY], { env: { STAGE: 'prod' }, ssm })

      // Assess
      expect([ours.code, ours.stderr]).toEqual([0, ''])
      expect(JSON.parse(ours.stdout).credential).toBe(CREDENTIAL)
      expect(theirs.code).toBe(1)
      expect(theirs.stderr).toContain('[answer_signature_invalid]')
      expect(ours.stdout + ours.stderr + theirs.stderr).not.toContain(answerKey)
      expect(ours.stdout).not.toContain(answerPublicPoint(parseAnswerKey(answerKey, 'test')).toString('base64'))
    })

    it.each([
      ['no answer key in SSM', [], 1, 'no answer key at /thinger-provisioner/dev/answer-key: create it with `thinger-provisioner answer-key create` [not_found]'],
      ['--device and --timestamp (no request body)', ['--device', DEVICE, '--timestamp', String(TIMESTAMP), '--answer-key', VECTOR_ANSWER_KEY], 2, 'the answer signature covers the request body: give --request'],
      ['an --answer-key that is not one', ['--answer-key', 'not-a-key'], 2, '--answer-key: an answer public key is the base64 of a 65-byte uncompressed P-256 point'],
    ])('says so for %s', async (_label, args, code, message) => {
      // Prepare
      const f = vectorFiles(SIGNED_ANSWER)

      // Act
      const result = await run(['open', '--answer', f['answer.json']!, '--device-key', DEVICE_KEY, ...(args.includes('--device') ? [] : ['--request', f['request.json']!]), ...args])

      // Assess
      expect(result.code).toBe(code)
      expect(result.stderr).toContain(message)
      expect(result.stdout).toBe('')
    })
  })
})
