/** Thinger.io answered with a status outside 2xx. */
export class ThingerHttpError extends Error {
  readonly status: number
  /** Seconds from a `Retry-After` header, when Thinger sent one. */
  readonly retryAfterSeconds: number | undefined
  /** Thinger's own `error.message`, shortened; for logs only, never for decisions. */
  readonly upstreamMessage: string | undefined

  constructor(method: string, operation: string, status: number, retryAfterSeconds?: number, upstreamMessage?: string) {
    super(`Thinger.io ${operation} (${method}) answered ${status}`)
    this.name = 'ThingerHttpError'
    this.status = status
    this.retryAfterSeconds = retryAfterSeconds
    this.upstreamMessage = upstreamMessage
  }
}

/** The connection to Thinger.io failed before an answer arrived. */
export class ThingerNetworkError extends Error {
  constructor(method: string, operation: string, cause: unknown) {
    super(`Thinger.io ${operation} (${method}) failed: ${describeCause(cause)}`, { cause })
    this.name = 'ThingerNetworkError'
  }
}

/** Thinger.io did not answer within the time this call was given. */
export class ThingerTimeoutError extends Error {
  constructor(method: string, operation: string, timeoutMs: number) {
    super(`Thinger.io ${operation} (${method}) timed out after ${timeoutMs} ms`)
    this.name = 'ThingerTimeoutError'
  }
}

/** True for failures a later identical call may not meet: 408, 429, 5xx, network and timeouts. */
export function isRetryableThingerError(error: unknown): boolean {
  if (error instanceof ThingerHttpError) return error.status === 408 || error.status === 429 || error.status >= 500
  return error instanceof ThingerNetworkError || error instanceof ThingerTimeoutError
}

// Only a system error code or the error's class: a message could quote anything, even a header.
function describeCause(cause: unknown): string {
  const code = (cause as { cause?: { code?: unknown } })?.cause?.code ?? (cause as { code?: unknown })?.code
  if (typeof code === 'string' && /^[A-Z0-9_]{1,40}$/.test(code)) return code
  return cause instanceof Error ? cause.name : 'unknown error'
}
