import type { Logger } from '@aws-lambda-powertools/logger'
import { type Metrics, MetricUnit } from '@aws-lambda-powertools/metrics'
import type middy from '@middy/core'
import type { APIGatewayProxyEventV2, APIGatewayProxyResultV2, Context } from 'aws-lambda'
import { AttestationError, ProvisionerError, UpstreamUnavailableError } from '../../lib/errors.js'

/** What a handler returns: the status and a flat body, written as JSON or as text lines by `respond`. */
export interface HandlerResult {
  statusCode: number
  body: Record<string, string | number | boolean>
  /** Fields for the request's log line (never a secret). */
  log?: Record<string, unknown>
}

type Request = middy.Request<APIGatewayProxyEventV2, APIGatewayProxyResultV2 | HandlerResult, Error, Context>

/**
 * The one place that turns results and errors into HTTP: JSON by default, `key=value` lines for
 * `Accept: text/plain`, `Cache-Control: no-store` always (responses carry credentials), and one
 * structured log line per request. Unknown errors become a 500 that says nothing more.
 */
export function respond(options: {
  logger: Logger
  metrics?: Metrics
  classifyError?: (error: unknown) => ProvisionerError | undefined
}): middy.MiddlewareObj<APIGatewayProxyEventV2, APIGatewayProxyResultV2 | HandlerResult, Error, Context> {
  const now = () => performance.now()
  const elapsedMs = (request: Request) => Math.round(now() - ((request.internal as { startedMs: number }).startedMs))

  return {
    before: (request: Request) => {
      ;(request.internal as { startedMs: number }).startedMs = now()
    },
    after: (request: Request) => {
      const result = request.response as HandlerResult
      request.response = toHttp(request, result.statusCode, result.body)
      const outcome = String(result.log?.outcome ?? 'ok')
      options.logger.info('provision', { ...auditFields(request), ...result.log, statusCode: result.statusCode, durationMs: elapsedMs(request), requestId: request.context.awsRequestId })
      count(options.metrics, outcome, 'none', Number(result.log?.thingerCalls ?? 0))
    },
    onError: (request: Request) => {
      const error = (request.error instanceof ProvisionerError ? request.error : options.classifyError?.(request.error)) ?? undefined
      const known = error ?? new ProvisionerError('internal_error', 'internal error')
      const body: HandlerResult['body'] = { code: known.code, message: known.message, retryable: known.retryable }
      if (known instanceof AttestationError && known.serverTime !== undefined) body.serverTime = known.serverTime
      if (known.retryAfterSeconds !== undefined) {
        body.retryAfter = known instanceof UpstreamUnavailableError ? jitter(known.retryAfterSeconds) : known.retryAfterSeconds
      }
      const response = toHttp(request, known.statusCode, body, true)
      if (body.retryAfter !== undefined) response.headers['retry-after'] = String(body.retryAfter)
      request.response = response
      const outcome = known.statusCode >= 500 ? 'failed' : 'refused'
      const log = {
        outcome,
        code: known.code,
        ...auditFields(request),
        statusCode: known.statusCode,
        durationMs: elapsedMs(request),
        requestId: request.context.awsRequestId,
        ...(known.detail === undefined ? {} : { detail: redact(known.detail, request.context) }),
        ...(error === undefined ? { errorName: request.error?.name, errorMessage: redact(String(request.error?.message), request.context) } : {}),
      }
      if (known.statusCode >= 500) options.logger.error('provision', log)
      else options.logger.info('provision', log)
      count(options.metrics, outcome, known.code)
    },
  }
}

function toHttp(request: Request, statusCode: number, fields: HandlerResult['body'], isError = false): APIGatewayProxyResultV2 & { headers: Record<string, string> } {
  const requestId = request.context.awsRequestId
  const headers: Record<string, string> = { 'cache-control': 'no-store' }
  if (prefersText(request.event.headers?.accept)) {
    headers['content-type'] = 'text/plain; charset=utf-8'
    return { statusCode, headers, body: toTextLines(fields, isError, requestId) }
  }
  headers['content-type'] = 'application/json'
  const body = isError ? { error: fields, requestId } : fields
  return { statusCode, headers, body: JSON.stringify(body) }
}

// Text lines name a field as firmware's parsers know it where the JSON name differs.
const TEXT_NAMES = new Map([['answerSignature', 'answer_signature']])

function toTextLines(fields: HandlerResult['body'], isError: boolean, requestId: string): string {
  if (!isError) {
    return `${Object.entries(fields).map(([key, value]) => `${TEXT_NAMES.get(key) ?? key}=${value}`).join('\n')}\n`
  }
  let text = `error=${fields.code}\n`
  if (fields.retryAfter !== undefined) text += `retry_after=${fields.retryAfter}\n`
  if (fields.serverTime !== undefined) text += `server_time=${fields.serverTime}\n`
  return `${text}request_id=${requestId}\n`
}

/** True when the client ranks `text/plain` above `application/json` in its Accept header. */
export function prefersText(accept: string | undefined): boolean {
  if (!accept) return false
  let textQ = 0
  let jsonQ = 0
  for (const part of accept.split(',')) {
    const [type = '', ...params] = part.trim().toLowerCase().split(';')
    const qParam = params.map((p) => p.trim()).find((p) => p.startsWith('q='))
    const q = qParam === undefined ? 1 : Number(qParam.slice(2))
    if (!Number.isFinite(q)) continue
    const mediaType = type.trim()
    if (mediaType === 'text/plain') textQ = Math.max(textQ, q)
    else if (mediaType === 'application/json') jsonQ = Math.max(jsonQ, q)
    else if (mediaType === 'application/*') jsonQ = Math.max(jsonQ, q * 0.99)
    else if (mediaType === 'text/*') textQ = Math.max(textQ, q * 0.99)
  }
  return textQ > 0 && textQ > jsonQ
}

/** Removes the secrets this request holds from a text meant for logs, whatever put them there. */
function redact(text: string, context: object): string {
  let redacted = text
  for (const value of Object.values(context as Record<string, unknown>)) {
    if (typeof value === 'string' && value.length >= 8 && redacted.includes(value)) redacted = redacted.replaceAll(value, '[redacted]')
  }
  return redacted
}

/**
 * The audit fields of a request: where it came from and, once its body was parsed and validated
 * (never a raw, unchecked string), which device, fleet and proof it used.
 */
function auditFields(request: Request): Record<string, unknown> {
  const fields: Record<string, unknown> = { sourceIp: request.event.requestContext?.http?.sourceIp }
  const body = request.event.body as unknown
  if (typeof body !== 'object' || body === null) return fields
  const admitted = body as { request?: { device?: string; fleet?: string; proof?: { kind?: string; keyVersion?: number } } }
  if (typeof admitted.request?.device === 'string') fields.device = admitted.request.device
  if (admitted.request?.fleet) fields.fleet = admitted.request.fleet
  if (admitted.request?.proof?.kind) fields.proof = admitted.request.proof.kind
  if (admitted.request?.proof?.keyVersion !== undefined) fields.keyVersion = admitted.request.proof.keyVersion
  return fields
}

/** One embedded-metric-format line per request: a count by outcome and reason, and the Thinger calls it cost. */
function count(metrics: Metrics | undefined, outcome: string, code: string, thingerCalls?: number): void {
  if (metrics === undefined) return
  // Synchronous from here to the publish, so concurrent invocations in one process cannot mix their dimensions.
  metrics.addDimensions({ outcome, code })
  metrics.addMetric('Requests', MetricUnit.Count, 1)
  if (thingerCalls !== undefined) metrics.addMetric('ThingerCalls', MetricUnit.Count, thingerCalls)
  metrics.publishStoredMetrics()
}

function jitter(seconds: number): number {
  // Spread a boot storm's retries over twice the advised wait instead of bringing them back together.
  return Math.max(1, Math.round(seconds * (1 + Math.random())))
}
