import type { SSMClient } from '@aws-sdk/client-ssm'
import { describe, expect, it } from 'vitest'
import { CliError } from '../../cli/errors.js'
import { createSsmPort } from '../../cli/ssm.js'
import { captureRejection } from '../lib/capture-error.js'

type Command = { constructor: { name: string }; input: Record<string, unknown> }

/** An SSM client answering from a script, recording the commands it got. */
function scriptedClient(answer: (command: Command) => unknown): { client: Pick<SSMClient, 'send'>; commands: Command[] } {
  const commands: Command[] = []
  const client = {
    send: async (command: Command) => {
      commands.push(command)
      const result = answer(command)
      if (result instanceof Error) throw result
      return result
    },
  } as unknown as Pick<SSMClient, 'send'>
  return { client, commands }
}

const awsError = (name: string, message = name): Error => Object.assign(new Error(message), { name })

const failure = async (promise: Promise<unknown>): Promise<CliError> => (await captureRejection(() => promise)) as CliError

describe('Function: createSsmPort', () => {
  it('reads a parameter with decryption, and a missing one as undefined', async () => {
    // Prepare
    const { client, commands } = scriptedClient((command) =>
      command.input.Name === '/a' ? { Parameter: { Value: 'v', Version: 3 } } : awsError('ParameterNotFound'),
    )
    const ssm = createSsmPort({}, { client })

    // Act
    const found = await ssm.getParameter('/a')
    const missing = await ssm.getParameter('/b')

    // Assess
    expect(found).toEqual({ value: 'v', version: 3 })
    expect(missing).toBeUndefined()
    expect(commands[0]!.constructor.name).toBe('GetParameterCommand')
    expect(commands[0]!.input).toEqual({ Name: '/a', WithDecryption: true })
  })

  it('never overwrites a parameter unless asked, and says it left it alone', async () => {
    // Prepare
    const { client } = scriptedClient(() => awsError('ParameterAlreadyExists'))

    // Act
    const error = await failure(createSsmPort({}, { client }).putParameter({ name: '/k', value: 'secret', type: 'SecureString', overwrite: false }))

    // Assess
    expect(error).toMatchObject({ code: 'already_exists', message: 'SSM parameter /k already exists; it was left as it is' })
  })

  it('retries as Advanced when SSM refuses to downgrade an Advanced parameter', async () => {
    // Prepare
    const { client, commands } = scriptedClient((command) =>
      command.input.Tier === undefined ? awsError('ValidationException', 'This parameter uses the advanced-parameter tier. You can\'t downgrade') : { Version: 7 },
    )

    // Act
    const result = await createSsmPort({}, { client }).putParameter({ name: '/d', value: '{}', type: 'String', overwrite: true })

    // Assess
    expect(result).toEqual({ version: 7 })
    expect(commands.map((command) => command.input.Tier)).toEqual([undefined, 'Advanced'])
  })

  it('does not repeat what AWS says about a secret value it refused', async () => {
    // Prepare
    const { client } = scriptedClient(() => awsError('ValidationException', "Value 'the-secret' at 'value' failed"))

    // Act
    const error = await failure(createSsmPort({}, { client }).putParameter({ name: '/k', value: 'the-secret', type: 'SecureString', overwrite: false, secret: true }))

    // Assess
    expect(error).toMatchObject({ code: 'aws_error', message: 'ssm:PutParameter on /k failed with ValidationException' })
  })

  it.each([
    [awsError('CredentialsProviderError', 'Could not load credentials from any providers'), 'config', 'no AWS credentials'],
    [awsError('Error', 'Region is missing'), 'config', 'setting AWS_REGION: is required'],
    [awsError('AccessDeniedException', 'User: arn:aws:iam::1:user/x is not authorized'), 'aws_error', 'AWS refused ssm:GetParameter on /a'],
    [awsError('ThrottlingException', 'Rate exceeded'), 'aws_error', 'ssm:GetParameter on /a failed with ThrottlingException: Rate exceeded'],
  ])('explains %s', async (thrown, code, message) => {
    // Prepare
    const { client } = scriptedClient(() => thrown)

    // Act
    const error = await failure(createSsmPort({}, { client }).getParameter('/a'))

    // Assess
    expect(error).toBeInstanceOf(CliError)
    expect(error.code).toBe(code)
    expect(error.message).toContain(message)
  })
})
