import { Logger } from '@aws-lambda-powertools/logger'
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware'
import type { SSMClient } from '@aws-sdk/client-ssm'
import middy from '@middy/core'
import httpHeaderNormalizer from '@middy/http-header-normalizer'
import ssm from '@middy/ssm'
import type { APIGatewayProxyEventV2, APIGatewayProxyResultV2, Context } from 'aws-lambda'
import { checkClock, decodeFleetKey, verifySignature } from '../lib/attestation/keys.js'
import { staleOnErrorSsmClientClass } from '../lib/aws/stale-on-error-ssm-client.js'
import { checkDeviceAllowed, parseProvisionRequest, type ProvisionRequest } from '../lib/attestation/request.js'
import { type Config, loadConfig } from '../lib/config.js'
import { ConfigError } from '../lib/errors.js'
import { provisionDevice } from '../lib/provisioning/provision.js'
import { ThingerClient, type ThingerCallRecord } from '../lib/thinger/client.js'
import { jsonBody } from './middleware/json-body.js'
import { type HandlerResult, respond } from './middleware/respond.js'
import { classifySsmError } from './middleware/ssm-errors.js'

const MAX_BODY_BYTES = 4096
const DEADLINE_MARGIN_MS = 500
const SSM_REQUEST_TIMEOUT_MS = 2000
const SSM_CONNECTION_TIMEOUT_MS = 1000

/** Everything a test or another entry point may replace. */
export interface ProvisionHandlerOptions {
  env?: NodeJS.ProcessEnv
  logger?: Logger
  ssmClient?: SSMClient
  fetch?: typeof globalThis.fetch
  /** The clock timestamps are checked against (deadlines always use the real clock). */
  now?: () => number
}

type ProvisionEvent = Omit<APIGatewayProxyEventV2, 'body'> & { body: ProvisionRequest }
interface Secrets {
  thingerToken?: unknown
  fleetKey?: unknown
}

let handlerCount = 0

/**
 * Builds the `POST /v1/provision` handler: the middy chain around one call into `lib/`.
 * Invalid settings do not throw here: every request then answers `internal_error` and logs the setting.
 */
export function createProvisionHandler(options: ProvisionHandlerOptions = {}): ProvisionHandler {
  return buildChain(options) as unknown as ProvisionHandler
}

/** The Lambda entry point's shape, as API Gateway's HTTP API calls it. */
export type ProvisionHandler = (event: APIGatewayProxyEventV2, context: Context) => Promise<APIGatewayProxyResultV2>

function buildChain(options: ProvisionHandlerOptions) {
  const logger = options.logger ?? new Logger({ serviceName: 'thinger-provisioner' })
  const now = options.now ?? Date.now
  let config: Config | undefined
  let configError: ConfigError | undefined
  try {
    config = loadConfig(options.env ?? process.env)
  } catch (error) {
    configError = error as ConfigError
    logger.error('invalid configuration', { detail: configError.detail })
  }

  const chain = middy<APIGatewayProxyEventV2, HandlerResult, Error, Context & Secrets>()
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(httpHeaderNormalizer())
    .use(respond({ logger, classifyError: config && ((error) => classifySsmError(error, config)) }))

  if (config === undefined) {
    return chain.handler(async () => {
      throw configError
    })
  }
  const settings = config
  const deviceIdPattern = settings.deviceIdPattern

  return chain
    .use(
      jsonBody({
        maxBytes: MAX_BODY_BYTES,
        parse: (body) => {
          const parsed = parseProvisionRequest(body)
          checkDeviceAllowed(parsed.device, deviceIdPattern)
          return parsed
        },
      }) as middy.MiddlewareObj<APIGatewayProxyEventV2, HandlerResult, Error, Context & Secrets>,
    )
    .use(
      ssm({
        AwsClient: staleOnErrorSsmClientClass({
          ...(options.ssmClient ? { client: options.ssmClient } : {}),
          onStale: (error, ageMs) => logger.warn('SSM unavailable: serving the cached parameters', { errorName: (error as Error)?.name, ageMs }),
        }),
        awsClientOptions: {
          // Without throwOnRequestTimeout the SDK only warns, and a hung SSM would hold the request until the Lambda dies.
          requestHandler: { requestTimeout: SSM_REQUEST_TIMEOUT_MS, connectionTimeout: SSM_CONNECTION_TIMEOUT_MS, throwOnRequestTimeout: true },
          maxAttempts: 2,
        },
        fetchData: { thingerToken: settings.thingerTokenParam, fleetKey: settings.fleetKeyParam },
        cacheKey: `thinger-provisioner-ssm-${++handlerCount}`,
        cacheExpiry: settings.ssmCacheSeconds * 1000,
        setToContext: true,
        // A prefetch at cold start that fails leaves a rejected promise nobody awaits once middy
        // replaces it in its cache: an unhandled rejection that kills the invocation. Fetching in
        // the first request keeps every failure inside a request, where it becomes a clear 500/503.
        disablePrefetch: true,
      }),
    )
    .handler(async (event, context) => {
      const { device, timestamp, signature } = (event as unknown as ProvisionEvent).body
      const fleetKey = decodeFleetKey(context.fleetKey, 'FLEET_KEY_PARAM')
      verifySignature(fleetKey, device, timestamp, signature)
      checkClock(timestamp, Math.floor(now() / 1000), settings.clockSkewSeconds)
      const token = context.thingerToken
      if (typeof token !== 'string' || token.trim() === '') throw new ConfigError('THINGER_TOKEN_PARAM', 'the parameter value is empty')

      const calls: ThingerCallRecord[] = []
      const thinger = new ThingerClient({
        baseUrl: settings.thingerApiUrl,
        username: settings.thingerUsername,
        token: token.trim(),
        timeoutMs: settings.thingerTimeoutMs,
        deadlineMs: Date.now() + context.getRemainingTimeInMillis() - DEADLINE_MARGIN_MS,
        onCall: (record) => calls.push(record),
        ...(options.fetch ? { fetch: options.fetch } : {}),
      })
      const result = await provisionDevice(device, { thinger, username: settings.thingerUsername, host: settings.thingerDeviceHost })
      return {
        statusCode: result.created ? 201 : 200,
        body: { ...result },
        log: { outcome: result.created ? 'created' : 'reprovisioned', device, created: result.created, thingerCalls: calls.length },
      }
    })
}

export const handler = createProvisionHandler()
