import type { SSMClient } from '@aws-sdk/client-ssm'
import { CliError } from './errors.js'

const SSM_MAX_ATTEMPTS = 3
const MAX_AWS_MESSAGE_CHARS = 200

/** The few SSM Parameter Store operations the command line uses; tests give an in-memory one. */
export interface SsmPort {
  /**
   * Reads a parameter, decrypting a SecureString.
   * @returns its value and version, or `undefined` when it does not exist.
   * @throws CliError `config` (no credentials or region) or `aws_error`.
   */
  getParameter(name: string): Promise<{ value: string; version: number; lastModifiedMs?: number } | undefined>
  /**
   * Writes a parameter. Without `overwrite` an existing one is never replaced. Without `tier`, an
   * Advanced parameter keeps its tier (SSM refuses to downgrade one).
   * @throws CliError `already_exists`, `config` or `aws_error`.
   */
  putParameter(input: PutParameterInput): Promise<{ version: number }>
}

export interface PutParameterInput {
  name: string
  value: string
  type: 'String' | 'SecureString'
  overwrite: boolean
  tier?: 'Advanced'
  kmsKeyId?: string
  /** The value is a secret: an error message from AWS is not shown, in case it quotes the value. */
  secret?: boolean
}

/**
 * An {@link SsmPort} over the AWS SDK: credentials, region and endpoint come from the environment
 * as for any AWS tool (`AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL_SSM` for moto or the local SSM).
 */
export function createSsmPort(env: NodeJS.ProcessEnv, options: { client?: Pick<SSMClient, 'send'> } = {}): SsmPort {
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION
  // Loaded on first use: commands that never reach SSM (sign, an air-gapped keys derive) start faster without it.
  let loading: Promise<{ client: Pick<SSMClient, 'send'>; sdk: typeof import('@aws-sdk/client-ssm') }> | undefined
  const load = () =>
    (loading ??= import('@aws-sdk/client-ssm').then((sdk) => ({
      sdk,
      client: options.client ?? new sdk.SSMClient({ maxAttempts: SSM_MAX_ATTEMPTS, ...(region ? { region } : {}) }),
    })))
  return {
    async getParameter(name) {
      const { client, sdk } = await load()
      try {
        const { Parameter } = await client.send(new sdk.GetParameterCommand({ Name: name, WithDecryption: true }))
        const modified = Parameter?.LastModifiedDate
        return { value: Parameter?.Value ?? '', version: Parameter?.Version ?? 0, ...(modified ? { lastModifiedMs: new Date(modified).getTime() } : {}) }
      } catch (error) {
        if (awsErrorName(error) === 'ParameterNotFound') return undefined
        throw describeAwsError(error, 'ssm:GetParameter', name, false)
      }
    },
    async putParameter(input) {
      const { client, sdk } = await load()
      const send = (tier: 'Advanced' | undefined) =>
        client.send(
          new sdk.PutParameterCommand({
            Name: input.name,
            Value: input.value,
            Type: input.type,
            Overwrite: input.overwrite,
            ...(tier ? { Tier: tier } : {}),
            ...(input.kmsKeyId ? { KeyId: input.kmsKeyId } : {}),
          }),
        )
      try {
        try {
          return { version: (await send(input.tier)).Version ?? 0 }
        } catch (error) {
          // A parameter once made Advanced stays Advanced; SSM refuses a write that would downgrade it.
          if (input.tier === undefined && awsErrorName(error) === 'ValidationException' && /advanced/i.test((error as Error).message)) {
            return { version: (await send('Advanced')).Version ?? 0 }
          }
          throw error
        }
      } catch (error) {
        if (awsErrorName(error) === 'ParameterAlreadyExists') {
          throw new CliError('already_exists', `SSM parameter ${input.name} already exists; it was left as it is`)
        }
        throw describeAwsError(error, 'ssm:PutParameter', input.name, input.secret === true)
      }
    },
  }
}

function awsErrorName(error: unknown): string {
  return (error as { name?: unknown })?.name === undefined ? '' : String((error as { name: unknown }).name)
}

function describeAwsError(error: unknown, action: string, name: string, secret: boolean): CliError {
  const errorName = awsErrorName(error)
  const message = error instanceof Error ? error.message : String(error)
  if (errorName === 'CredentialsProviderError' || /could not load credentials/i.test(message)) {
    return new CliError('config', 'no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY', { cause: error })
  }
  if (/region is missing/i.test(message)) return new CliError('config', 'setting AWS_REGION: is required', { cause: error })
  if (errorName === 'AccessDeniedException') return new CliError('aws_error', `AWS refused ${action} on ${name}: your identity lacks that permission`, { cause: error })
  const detail = secret ? '' : `: ${message.slice(0, MAX_AWS_MESSAGE_CHARS)}`
  return new CliError('aws_error', `${action} on ${name} failed with ${errorName || 'an unknown error'}${detail}`, { cause: error })
}
