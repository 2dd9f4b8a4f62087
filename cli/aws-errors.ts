import { CliError } from './errors.js'

const MAX_AWS_MESSAGE_CHARS = 200

/** The AWS SDK's name of an error (`ParameterNotFound`, `AccessDeniedException`), or '' when it has none. */
export function awsErrorName(error: unknown): string {
  return (error as { name?: unknown })?.name === undefined ? '' : String((error as { name: unknown }).name)
}

/**
 * An AWS SDK failure as one line with a stable code: missing credentials or region, a refused
 * permission, or the service's own message. `secret`: the call carried a secret value (an SSM
 * SecureString being written), so AWS's message, which may quote the input, is left out.
 */
export function describeAwsError(error: unknown, action: string, target: string, options: { secret?: boolean } = {}): CliError {
  const name = awsErrorName(error)
  const message = error instanceof Error ? error.message : String(error)
  if (name === 'CredentialsProviderError' || /could not load credentials/i.test(message)) {
    return new CliError('config', 'no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY', { cause: error })
  }
  if (/region is missing/i.test(message)) return new CliError('config', 'setting AWS_REGION: is required', { cause: error })
  if (name === 'AccessDeniedException' || name === 'AccessDenied') return new CliError('aws_error', `AWS refused ${action} on ${target}: your identity lacks that permission`, { cause: error })
  const detail = options.secret ? '' : `: ${message.slice(0, MAX_AWS_MESSAGE_CHARS)}`
  return new CliError('aws_error', `${action} on ${target} failed with ${name || 'an unknown error'}${detail}`, { cause: error })
}
