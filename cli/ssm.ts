import type { SSMClient } from '@aws-sdk/client-ssm'
import { awsErrorName, describeAwsError } from './aws-errors.js'
import { CliError } from './errors.js'
import { regionOf } from './region.js'

const SSM_MAX_ATTEMPTS = 3

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
  const region = regionOf(env)
  // Loaded on first use: commands that never reach SSM (sign, an air-gapped keys derive) start faster without it.
  let loading: Promise<{ client: Pick<SSMClient, 'send'>; sdk: typeof import('@aws-sdk/client-ssm') }> | undefined
  const load = () =>
    (loading ??= import('@aws-sdk/client-ssm').then((sdk) => ({
      sdk,
      client: options.client ?? new sdk.SSMClient({ maxAttempts: SSM_MAX_ATTEMPTS, region }),
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
        throw describeAwsError(error, 'ssm:GetParameter', name)
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
        throw describeAwsError(error, 'ssm:PutParameter', input.name, { secret: input.secret === true })
      }
    },
  }
}
