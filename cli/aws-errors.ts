import { CliError } from './errors.js'

const MAX_AWS_MESSAGE_CHARS = 200

/** An AWS SDK failure as one line with a stable code: missing credentials or region, a refused permission, or the service's own message. */
export function describeAwsError(error: unknown, action: string, target: string): CliError {
  const name = (error as { name?: string })?.name ?? ''
  const message = error instanceof Error ? error.message : String(error)
  if (name === 'CredentialsProviderError' || /could not load credentials/i.test(message)) {
    return new CliError('config', 'no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY', { cause: error })
  }
  if (/region is missing/i.test(message)) return new CliError('config', 'setting AWS_REGION: is required', { cause: error })
  if (name === 'AccessDeniedException' || name === 'AccessDenied') return new CliError('aws_error', `AWS refused ${action} on ${target}: your identity lacks that permission`, { cause: error })
  return new CliError('aws_error', `${action} on ${target} failed with ${name || 'an unknown error'}: ${message.slice(0, MAX_AWS_MESSAGE_CHARS)}`, { cause: error })
}
