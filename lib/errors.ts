const STATUS_BY_CODE = {
  invalid_request: 400,
  unsupported_media_type: 415,
  payload_too_large: 413,
  invalid_signature: 401,
  clock_skew: 401,
  device_not_allowed: 403,
  unknown_fleet: 403,
  proof_not_accepted: 403,
  sealing_required: 403,
  invalid_claim: 401,
  unknown_key_version: 403,
  key_revoked: 403,
  device_revoked: 403,
  replayed: 401,
  certificate_malformed: 400,
  certificate_untrusted: 403,
  certificate_expired: 403,
  certificate_not_yet_valid: 403,
  certificate_not_leaf: 403,
  certificate_key_usage: 403,
  certificate_key_not_allowed: 403,
  certificate_device_mismatch: 403,
  certificate_chain_too_long: 403,
  certificate_revoked: 403,
  already_provisioned: 409,
  device_disabled: 403,
  device_conflict: 409,
  upstream_unavailable: 503,
  upstream_error: 502,
  internal_error: 500,
} as const

/** Stable machine codes of every refusal or failure a device can see. Firmware depends on them. */
export type ErrorCode = keyof typeof STATUS_BY_CODE

/**
 * Base of every error `lib/` throws on purpose. Its `message` is written for the device and is
 * safe to return; `detail` is for operators' logs only and never holds a secret.
 */
export class ProvisionerError extends Error {
  readonly code: ErrorCode
  readonly statusCode: number
  readonly retryable: boolean
  readonly detail: string | undefined
  /** Seconds after which the same request, freshly signed, may succeed; set only on retryable errors. */
  retryAfterSeconds: number | undefined

  constructor(code: ErrorCode, message: string, options: { detail?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = new.target.name
    this.code = code
    this.statusCode = STATUS_BY_CODE[code]
    this.retryable = code === 'upstream_unavailable' || code === 'replayed'
    this.detail = options.detail
    this.retryAfterSeconds = undefined
  }
}

/** The request body or headers are malformed. */
export class ValidationError extends ProvisionerError {
  constructor(message: string) {
    super('invalid_request', message)
  }
}

/** The request is not JSON. */
export class UnsupportedMediaTypeError extends ProvisionerError {
  constructor() {
    super('unsupported_media_type', 'Content-Type must be application/json')
  }
}

/** The request body is larger than the protocol allows. */
export class PayloadTooLargeError extends ProvisionerError {
  constructor(maxBytes: number) {
    super('payload_too_large', `request body must be at most ${maxBytes} bytes`)
  }
}

/** The device failed to prove who it is, or is not allowed here. */
export class AttestationError extends ProvisionerError {
  /** Set for `clock_skew`: the server's clock in Unix seconds, so a device without a clock can retry. */
  readonly serverTime: number | undefined

  constructor(
    code:
      | 'invalid_signature'
      | 'clock_skew'
      | 'device_not_allowed'
      | 'unknown_fleet'
      | 'proof_not_accepted'
      | 'sealing_required'
      | 'invalid_claim'
      | 'unknown_key_version'
      | 'key_revoked'
      | 'device_revoked'
      | 'replayed',
    message: string,
    options: { serverTime?: number } = {},
  ) {
    super(code, message)
    this.serverTime = options.serverTime
  }
}

/** A device certificate failed one of the X.509 checks (docs/protocol.md); every such refusal comes before any Thinger.io call. */
export class CertificateError extends ProvisionerError {
  constructor(
    code:
      | 'certificate_malformed'
      | 'certificate_untrusted'
      | 'certificate_expired'
      | 'certificate_not_yet_valid'
      | 'certificate_not_leaf'
      | 'certificate_key_usage'
      | 'certificate_key_not_allowed'
      | 'certificate_device_mismatch'
      | 'certificate_chain_too_long'
      | 'certificate_revoked',
    message: string,
  ) {
    super(code, message)
  }
}

/** The device exists on Thinger.io in a state this service must not change. */
export class DeviceStateError extends ProvisionerError {
  constructor(code: 'device_disabled' | 'device_conflict' | 'already_provisioned', message: string, detail?: string) {
    super(code, message, detail === undefined ? {} : { detail })
  }
}

/** Thinger.io or SSM could not be reached or asked to come back later; the device should retry. */
export class UpstreamUnavailableError extends ProvisionerError {
  override retryAfterSeconds: number

  constructor(detail: string, options: { retryAfterSeconds?: number; cause?: unknown } = {}) {
    super('upstream_unavailable', 'the service is temporarily unavailable, retry later', {
      detail,
      cause: options.cause,
    })
    this.retryAfterSeconds = options.retryAfterSeconds ?? DEFAULT_RETRY_AFTER_SECONDS
  }
}

/** Thinger.io refused a request in a way a retry will not fix (bad token, missing permission, limits). */
export class UpstreamError extends ProvisionerError {
  constructor(detail: string, options: { cause?: unknown } = {}) {
    super('upstream_error', 'Thinger.io refused the request', { detail, cause: options.cause })
  }
}

/** A setting or SSM parameter is missing or invalid: every request fails until an operator fixes it. */
export class ConfigError extends ProvisionerError {
  readonly setting: string

  constructor(setting: string, reason: string) {
    super('internal_error', 'internal error', { detail: `setting ${setting}: ${reason}` })
    this.setting = setting
  }
}

/** Seconds a device waits before retrying when no upstream said how long. */
export const DEFAULT_RETRY_AFTER_SECONDS = 5

