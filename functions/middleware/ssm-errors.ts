import { ConfigError, type ProvisionerError, UpstreamUnavailableError } from '../../lib/errors.js'

// Errors that retrying will not fix: a missing parameter, missing permissions, a wrong KMS key.
const SSM_CONFIGURATION_ERRORS = new Set([
  'AccessDeniedException',
  'UnrecognizedClientException',
  'InvalidKeyId',
  'ParameterNotFound',
  'ValidationException',
  'KMSAccessDeniedException',
  'KMSDisabledException',
  'InvalidSignatureException',
])

/** True for the error @middy/ssm throws when fetching parameters failed. */
export function isSsmFetchFailure(error: unknown): boolean {
  const cause = (error as { cause?: { package?: string; data?: unknown } })?.cause
  return cause?.package === '@middy/util' && Array.isArray(cause.data)
}

/** Names the setting (or fleets-file field) that names an SSM parameter, for operators' logs. */
export type SettingOfParameter = (parameterName: string) => string

/**
 * Turns a failure of @middy/ssm into the error a device sees: an unusable parameter is a
 * configuration error (500, logged with the setting's name); anything else means SSM is
 * unreachable or throttling, which is retryable (503).
 */
export function classifySsmError(error: unknown, settingOf: SettingOfParameter): ProvisionerError | undefined {
  if (!isSsmFetchFailure(error)) return undefined
  const cause = (error as { cause: { data: unknown[] } }).cause
  for (const reason of cause.data as Array<{ name?: string; message?: string }>) {
    const missing = /^InvalidParameter (.+)$/.exec(reason?.message ?? '')
    if (missing) return new ConfigError(settingOf(missing[1] ?? ''), 'the SSM parameter does not exist')
    if (SSM_CONFIGURATION_ERRORS.has(reason?.name ?? '')) return new ConfigError('SSM', `reading parameters failed with ${reason.name}`)
  }
  const first = cause.data[0] as { name?: string } | undefined
  return new UpstreamUnavailableError(`SSM unavailable: ${first?.name ?? 'unknown error'}`, { cause: error })
}
