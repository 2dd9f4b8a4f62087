import type { APIGatewayProxyEventV2 } from 'aws-lambda'

/** An API Gateway HTTP API (payload 2.0) event for `POST /v1/provision`, as the function receives it. */
export function apiEvent(body: string | undefined, headers: Record<string, string> = { 'content-type': 'application/json' }, isBase64Encoded = false): APIGatewayProxyEventV2 {
  return {
    version: '2.0',
    routeKey: 'POST /v1/provision',
    rawPath: '/v1/provision',
    rawQueryString: '',
    headers,
    body,
    isBase64Encoded,
    requestContext: { requestId: 'api-request', http: { method: 'POST', path: '/v1/provision', protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'test' } },
  } as unknown as APIGatewayProxyEventV2
}
