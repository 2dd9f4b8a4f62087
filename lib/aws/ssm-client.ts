import { GetParametersCommand, type GetParametersCommandOutput, SSMClient, type SSMClientConfig } from '@aws-sdk/client-ssm'

const DEFAULT_MAX_STALE_MS = 60 * 60 * 1000
const RETRYABLE_ERROR_NAMES = new Set(['ThrottlingException', 'InternalServerError', 'ServiceUnavailable', 'TimeoutError', 'RequestTimeout', 'AbortError'])

type Sender = Pick<SSMClient, 'send'>

export interface StaleOnErrorOptions {
  /** How old a remembered answer may be and still be served while SSM fails. */
  maxStaleMs?: number
  /**
   * Parameters that may not exist, with the value that stands for them when missing (a fleet's
   * deny list before anything was revoked). Reported found, so one batched request serves both.
   */
  defaults?: Record<string, string>
  /** Told each time a remembered answer stands in for a failed call. */
  onStale?: (error: unknown, ageMs: number) => void
  now?: () => number
}

/**
 * Wraps an SSM client so that a `GetParameters` call that fails for a passing reason (throttling,
 * 5xx, network, timeout) answers with the last successful answer to the same call, up to
 * `maxStaleMs` old. @middy/ssm refreshes its cache when it expires, and a failed refresh would
 * fail the requests; with this client underneath, a warm container keeps serving through an SSM
 * outage. Errors that a retry cannot fix (missing parameter, access denied) still surface, except
 * for parameters listed in `defaults`, whose absence is normal.
 */
export function withStaleOnError(client: Sender, options: StaleOnErrorOptions = {}): Sender {
  const maxStaleMs = options.maxStaleMs ?? DEFAULT_MAX_STALE_MS
  const now = options.now ?? Date.now
  const remembered = new Map<string, { output: GetParametersCommandOutput; atMs: number }>()

  const send = async (command: unknown, ...rest: unknown[]): Promise<unknown> => {
    const key = command instanceof GetParametersCommand ? JSON.stringify(command.input) : undefined
    try {
      let output = await (client.send as (...args: unknown[]) => Promise<unknown>)(command, ...rest)
      if (key !== undefined) {
        output = withDefaults(output as GetParametersCommandOutput, options.defaults ?? {})
        remembered.set(key, { output: output as GetParametersCommandOutput, atMs: now() })
      }
      return output
    } catch (error) {
      const last = key === undefined ? undefined : remembered.get(key)
      if (last === undefined || !isPassingFailure(error) || now() - last.atMs > maxStaleMs) throw error
      options.onStale?.(error, now() - last.atMs)
      return last.output
    }
  }
  return { send } as Sender
}

/** A constructor @middy/ssm can call (`new AwsClient(options)`) that builds a stale-on-error SSM client. */
export function ssmClientClass(options: StaleOnErrorOptions & { client?: Sender } = {}): typeof SSMClient {
  return function StaleOnErrorSsmClient(config: SSMClientConfig) {
    return withStaleOnError(options.client ?? new SSMClient(config), options)
  } as unknown as typeof SSMClient
}

function withDefaults(output: GetParametersCommandOutput, defaults: Record<string, string>): GetParametersCommandOutput {
  const missing = (output.InvalidParameters ?? []).filter((name) => Object.hasOwn(defaults, name))
  if (missing.length === 0) return output
  return {
    ...output,
    Parameters: [...(output.Parameters ?? []), ...missing.map((name) => ({ Name: name, Type: 'String' as const, Value: defaults[name], Version: 0 }))],
    InvalidParameters: (output.InvalidParameters ?? []).filter((name) => !Object.hasOwn(defaults, name)),
  }
}

function isPassingFailure(error: unknown): boolean {
  const e = error as { name?: string; $fault?: string; $retryable?: unknown; code?: string }
  if (RETRYABLE_ERROR_NAMES.has(e?.name ?? '')) return true
  if (e?.$fault === 'server' || e?.$retryable !== undefined) return true
  // Socket-level failures carry a system code and no $metadata.
  return typeof e?.code === 'string' && /^E[A-Z]+$/.test(e.code)
}
