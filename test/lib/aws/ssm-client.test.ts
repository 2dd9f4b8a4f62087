import { GetParameterCommand, GetParametersCommand, SSMClient } from '@aws-sdk/client-ssm'
import { mockClient } from 'aws-sdk-client-mock'
import { describe, expect, it, vi } from 'vitest'
import { withStaleOnError } from '../../../lib/aws/ssm-client.js'

const ANSWER = { Parameters: [{ Name: '/a', Type: 'SecureString' as const, Value: 'v1' }], InvalidParameters: [], $metadata: {} }
const error = (name: string, extra: object = {}) => Object.assign(new Error(name), { name, ...extra })

function setup(maxStaleMs = 10_000) {
  const client = new SSMClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } })
  const mock = mockClient(client)
  let nowMs = 1_000_000
  const onStale = vi.fn()
  const wrapped = withStaleOnError(client, { maxStaleMs, onStale, now: () => nowMs })
  return { mock, wrapped, onStale, advance: (ms: number) => (nowMs += ms) }
}

describe('Function: withStaleOnError', () => {
  it.each([
    ['throttling', error('ThrottlingException')],
    ['a 5xx', error('InternalServerError', { $fault: 'server' })],
    ['a reset connection', error('TimeoutError', { code: 'ECONNRESET' })],
    ['a refused connection', error('Error', { code: 'ECONNREFUSED' })],
  ])('answers with the last good answer when SSM fails with %s', async (_label, failure) => {
    // Prepare
    const { mock, wrapped, onStale, advance } = setup()
    mock.on(GetParametersCommand).resolvesOnce(ANSWER).rejects(failure)
    const command = () => new GetParametersCommand({ Names: ['/a'], WithDecryption: true })
    await wrapped.send(command())
    advance(5000)

    // Act
    const output = await wrapped.send(command())

    // Assess
    expect(output).toEqual(ANSWER)
    expect(onStale).toHaveBeenCalledWith(failure, 5000)
  })

  it('throws when the remembered answer is older than maxStaleMs', async () => {
    // Prepare
    const { mock, wrapped, advance } = setup(10_000)
    mock.on(GetParametersCommand).resolvesOnce(ANSWER).rejects(error('ThrottlingException'))
    await wrapped.send(new GetParametersCommand({ Names: ['/a'], WithDecryption: true }))
    advance(10_001)

    // Act & Assess
    await expect(wrapped.send(new GetParametersCommand({ Names: ['/a'], WithDecryption: true }))).rejects.toThrow('ThrottlingException')
  })

  it.each(['AccessDeniedException', 'ParameterNotFound', 'ValidationException'])('throws %s, which a retry cannot fix, even with a remembered answer', async (name) => {
    // Prepare
    const { mock, wrapped } = setup()
    mock.on(GetParametersCommand).resolvesOnce(ANSWER).rejects(error(name, { $fault: 'client' }))
    await wrapped.send(new GetParametersCommand({ Names: ['/a'], WithDecryption: true }))

    // Act & Assess
    await expect(wrapped.send(new GetParametersCommand({ Names: ['/a'], WithDecryption: true }))).rejects.toThrow(name)
  })

  it('never answers one call with the answer to another', async () => {
    // Prepare
    const { mock, wrapped } = setup()
    mock.on(GetParametersCommand).resolvesOnce(ANSWER).rejects(error('ThrottlingException'))
    await wrapped.send(new GetParametersCommand({ Names: ['/a'], WithDecryption: true }))

    // Act & Assess
    await expect(wrapped.send(new GetParametersCommand({ Names: ['/b'], WithDecryption: true }))).rejects.toThrow('ThrottlingException')
  })

  it('reports a missing optional parameter as found, with its default value', async () => {
    // Prepare
    const client = new SSMClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } })
    mockClient(client).on(GetParametersCommand).resolves({ Parameters: [ANSWER.Parameters[0]!], InvalidParameters: ['/deny', '/secret'], $metadata: {} })
    const wrapped = withStaleOnError(client, { defaults: { '/deny': '{"version":1}' } })

    // Act
    const output = (await wrapped.send(new GetParametersCommand({ Names: ['/a', '/deny', '/secret'], WithDecryption: true }))) as { Parameters: unknown[]; InvalidParameters: string[] }

    // Assess
    expect(output.Parameters).toEqual([ANSWER.Parameters[0], { Name: '/deny', Type: 'String', Value: '{"version":1}', Version: 0 }])
    expect(output.InvalidParameters).toEqual(['/secret'])
  })

  it('remembers nothing but GetParameters', async () => {
    // Prepare
    const { mock, wrapped } = setup()
    mock.on(GetParameterCommand).resolvesOnce({ Parameter: { Name: '/a', Value: 'v' } }).rejects(error('ThrottlingException'))
    await wrapped.send(new GetParameterCommand({ Name: '/a' }))

    // Act & Assess
    await expect(wrapped.send(new GetParameterCommand({ Name: '/a' }))).rejects.toThrow('ThrottlingException')
  })
})
