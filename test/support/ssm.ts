import { GetParametersCommand, type GetParametersCommandOutput, SSMClient } from '@aws-sdk/client-ssm'
import { mockClient } from 'aws-sdk-client-mock'

/** What SSM answers to GetParameters over these stored values: found ones, and the rest as InvalidParameters. */
export function answerFrom(values: Record<string, string>) {
  return async (input: { Names: string[] }): Promise<Partial<GetParametersCommandOutput>> => ({
    Parameters: input.Names.filter((name) => name in values).map((name) => ({ Name: name, Type: 'SecureString' as const, Value: values[name] })),
    InvalidParameters: input.Names.filter((name) => !(name in values)),
  })
}

/** An SSM client, for injection, that holds `values`; `mock` scripts other answers. */
export function ssmHolding(values: Record<string, string>) {
  const client = new SSMClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } })
  const mock = mockClient(client)
  mock.on(GetParametersCommand).callsFake(answerFrom(values))
  return { client, mock }
}
