import type middy from '@middy/core'
import type { APIGatewayProxyEventV2 } from 'aws-lambda'
import { PayloadTooLargeError, UnsupportedMediaTypeError, ValidationError } from '../../lib/errors.js'

const JSON_CONTENT_TYPE = /^application\/json\s*(;|$)/i

/**
 * Reads a JSON request body within `maxBytes`, then hands it to `parse`, so every refusal that
 * needs no secret happens before any secret is awaited. Written here rather than taken from
 * @middy/http-json-body-parser, which answers 415 for malformed JSON and keeps the raw body (a
 * signature) in the error's cause, where a logger could print it. `parse` also gets the exact bytes
 * the client sent (an answer signature covers their hash).
 */
export function jsonBody<T>(options: { maxBytes: number; parse: (body: unknown, raw: Buffer) => T }): middy.MiddlewareObj<APIGatewayProxyEventV2> {
  return {
    before: (request) => {
      const { headers, body, isBase64Encoded } = request.event
      if (!JSON_CONTENT_TYPE.test(headers?.['content-type'] ?? '')) throw new UnsupportedMediaTypeError()
      // serverless-offline passes `null` for an empty, `null`, `0` or `""` body; API Gateway may leave it out.
      const raw = typeof body === 'string' ? Buffer.from(body, isBase64Encoded ? 'base64' : 'utf8') : Buffer.alloc(0)
      if (raw.length > options.maxBytes) throw new PayloadTooLargeError(options.maxBytes)
      let parsed: unknown
      try {
        parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw))
      } catch {
        throw new ValidationError('the body is not valid UTF-8 JSON')
      }
      ;(request.event as unknown as { body: T }).body = options.parse(parsed, raw)
    },
  }
}
