import { Logger } from '@aws-lambda-powertools/logger'
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware'
import { Metrics } from '@aws-lambda-powertools/metrics'
import type { SSMClient } from '@aws-sdk/client-ssm'
import middy from '@middy/core'
import httpHeaderNormalizer from '@middy/http-header-normalizer'
import ssm from '@middy/ssm'
import { clearCache } from '@middy/util'
import type { APIGatewayProxyEventV2, APIGatewayProxyResultV2, Context } from 'aws-lambda'
import { parseAnswerKey, requestBodyDigest, signAnswer } from '../lib/attestation/answer-signature.js'
import { checkClock, decodeClaimSecret, decodeFleetKey, deriveDeviceKey, signedMessage, verifyClaim, verifySignature } from '../lib/attestation/keys.js'
import { deriveClaimSealKey, deriveHmacSealKey, type SealKey, sealAnswer } from '../lib/attestation/seal.js'
import { deriveEcdhSealKey } from '../lib/attestation/seal-ecdh.js'
import { parseTrustAnchors, type VerifiedDeviceKey, verifyCertificateSignature, verifyDeviceCertificate } from '../lib/attestation/x509.js'
import { ssmClientClass } from '../lib/aws/ssm-client.js'
import { admitToFleet, parseProvisionRequest, type ProvisionRequest } from '../lib/attestation/request.js'
import { type Config, loadConfig, stageOf } from '../lib/config.js'
import { CertificateError, ConfigError } from '../lib/errors.js'
import { checkCertificateNotRevoked, checkNotRevoked, EMPTY_DENY_LIST_JSON, parseDenyList } from '../lib/fleets/deny-list.js'
import { type Fleet, keyVersionParam, needsProvisioningRecord } from '../lib/fleets/fleet.js'
import { planProvisioning, type ProvisioningPlan } from '../lib/provisioning/plan.js'
import { provisionDevice } from '../lib/provisioning/provision.js'
import { ThingerClient, type ThingerCallRecord } from '../lib/thinger/client.js'
import { jsonBody } from './middleware/json-body.js'
import { type HandlerResult, respond } from './middleware/respond.js'
import { classifySsmError, isSsmFetchFailure, type SettingOfParameter } from './middleware/ssm-errors.js'

const MAX_BODY_BYTES = 4096
const DEADLINE_MARGIN_MS = 500
const SSM_REQUEST_TIMEOUT_MS = 2000
const SSM_CONNECTION_TIMEOUT_MS = 1000
// What stands for the answer key while its parameter does not exist (no SSM value can be it: not base64).
const ANSWER_KEY_MISSING = '(missing)'

/** Everything a test or another entry point may replace. */
export interface ProvisionHandlerOptions {
  env?: NodeJS.ProcessEnv
  logger?: Logger
  metrics?: Metrics
  ssmClient?: SSMClient
  /** The validated fleets file (what the build compiles in); absent: the bundled one, or the settings' single fleet. */
  fleets?: unknown
  fetch?: typeof globalThis.fetch
  /** The clock timestamps are checked against (deadlines always use the real clock). */
  now?: () => number
}

interface AdmittedRequest {
  request: ProvisionRequest
  fleet: Fleet
  plan: ProvisioningPlan
  /** Hex SHA-256 of the exact body bytes the device sent, which the answer signature covers. */
  bodySha256: string
}
type ProvisionEvent = Omit<APIGatewayProxyEventV2, 'body'> & { body: AdmittedRequest }
type Secrets = Record<string, unknown>

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
  // The stage is a dimension of every metric, so that the alarms of one stage (deploy/monitoring.cjs) never count another's.
  const metrics = options.metrics ?? new Metrics({ namespace: 'ThingerProvisioner', serviceName: 'thinger-provisioner', defaultDimensions: { stage: stageOf(options.env ?? process.env) } })
  const now = options.now ?? Date.now
  let config: Config | undefined
  let configError: ConfigError | undefined
  try {
    config = options.fleets === undefined ? loadConfig(options.env ?? process.env) : loadConfig(options.env ?? process.env, options.fleets)
  } catch (error) {
    configError = error as ConfigError
    logger.error('invalid configuration', { detail: configError.detail })
  }

  const parameters = config ? parametersOf(config) : undefined
  const chain = middy<APIGatewayProxyEventV2, HandlerResult, Error, Context & Secrets>()
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(httpHeaderNormalizer())
    .use(respond({ logger, metrics, classifyError: config && parameters && ((error) => classifySsmError(error, parameters.settingOf)) }))

  if (config === undefined || parameters === undefined) {
    return chain.handler(async () => {
      throw configError
    })
  }
  const settings = config
  const { names, settingOf, optional } = parameters
  const knownShared = new Map<string, number>()
  // Parsed trust anchors and deny lists by their text: parsed once per container, again only when
  // SSM's value changes (each request checks every fleet's deny list).
  const anchorsOf = memoisedByText(parseTrustAnchors)
  const denyListOf = memoisedByText(parseDenyList)
  // The answer key likewise: parsing a PKCS#8 key costs more than signing with it.
  const answerKeyOf = memoisedByText(parseAnswerKey)
  let answerKeyMissingLogged = false
  const ssmCacheKey = `thinger-provisioner-ssm-${++handlerCount}`

  return chain
    .use(
      jsonBody({
        maxBytes: MAX_BODY_BYTES,
        parse: (body, raw): AdmittedRequest => {
          const request = parseProvisionRequest(body)
          const fleet = admitToFleet(request, settings.fleets)
          const plan = planProvisioning(fleet, request.device, request.meta, needsProvisioningRecord(fleet))
          return { request, fleet, plan, bodySha256: requestBodyDigest(raw) }
        },
      }) as middy.MiddlewareObj<APIGatewayProxyEventV2, HandlerResult, Error, Context & Secrets>,
    )
    .use(
      ssm({
        AwsClient: ssmClientClass({
          ...(options.ssmClient ? { client: options.ssmClient } : {}),
          defaults: optional,
          onStale: (error, ageMs) => logger.warn('SSM unavailable: serving the cached parameters', { errorName: (error as Error)?.name, ageMs }),
        }),
        awsClientOptions: {
          // Without throwOnRequestTimeout the SDK only warns, and a hung SSM would hold the request until the Lambda dies.
          requestHandler: { requestTimeout: SSM_REQUEST_TIMEOUT_MS, connectionTimeout: SSM_CONNECTION_TIMEOUT_MS, throwOnRequestTimeout: true },
          maxAttempts: 2,
        },
        // One batched GetParameters for the token, every fleet's secrets and deny lists.
        fetchData: Object.fromEntries(names.map((name, index) => [`p${index}`, name])),
        cacheKey: ssmCacheKey,
        cacheExpiry: settings.ssmCacheSeconds * 1000,
        setToContext: true,
        // A prefetch at cold start that fails leaves a rejected promise nobody awaits once middy
        // replaces it in its cache: an unhandled rejection that kills the invocation. Fetching in
        // the first request keeps every failure inside a request, where it becomes a clear 500/503.
        disablePrefetch: true,
      }),
    )
    .use({
      // @middy/ssm forgets only the last parameter of a failed batch and keeps the others as
      // rejected promises until the cache expires: the container would answer 503 for minutes
      // after SSM recovered. Forgetting the whole batch makes the next request fetch again.
      onError: (request) => {
        if (isSsmFetchFailure(request.error)) clearCache([ssmCacheKey])
      },
    })
    .handler(async (event, context) => {
      const { request, fleet, plan, bodySha256 } = (event as unknown as ProvisionEvent).body
      const { device } = request
      const secret = (name: string) => context[`p${names.indexOf(name)}`]
      // First, so that a broken answer key fails before anything changes on Thinger.io.
      const answerKeyValue = secret(settings.answerKeyParam)
      const answerKey = answerKeyValue === ANSWER_KEY_MISSING ? undefined : answerKeyOf(answerKeyValue, settingOf(settings.answerKeyParam))
      if (answerKey === undefined && !answerKeyMissingLogged) {
        answerKeyMissingLogged = true
        logger.warn('answer_key_missing', {
          setting: 'ANSWER_KEY_PARAM',
          parameter: settings.answerKeyParam,
          detail: 'success answers go unsigned and devices that pin the answer key refuse them: run `thinger-provisioner answer-key create`',
        })
      }
      const { proof } = request
      let sealKey: SealKey | undefined
      let certificateKey: VerifiedDeviceKey | undefined
      if (proof.kind === 'x509') {
        const x509 = fleet.x509!
        const anchors = x509.caParam === undefined ? anchorsOf(x509.caCertificates, `fleets.${fleet.name}.x509.caFile`) : anchorsOf(secret(x509.caParam), settingOf(x509.caParam))
        certificateKey = verifyDeviceCertificate(proof.certificate, proof.chain, anchors, { device, deviceIdFrom: x509.deviceId, nowSeconds: Math.floor(now() / 1000) })
        verifyCertificateSignature(certificateKey, signedMessage(device, proof.timestamp, request.version ?? 1), proof.signature)
        checkClock(proof.timestamp, Math.floor(now() / 1000), settings.clockSkewSeconds)
        if (request.version === 2) {
          if (certificateKey.keyType !== 'ec-p256') throw new CertificateError('certificate_key_not_allowed', 'a sealed answer (protocol v2) needs a P-256 certificate key')
          sealKey = deriveEcdhSealKey(certificateKey.point, device, proof.timestamp)
        }
      } else if (proof.kind === 'hmac') {
        const keyParam = keyVersionParam(fleet.keyParam!, proof.keyVersion)
        const fleetKey = decodeFleetKey(secret(keyParam), settingOf(keyParam))
        verifySignature(fleetKey, device, proof.timestamp, proof.signature, request.version ?? 1)
        checkClock(proof.timestamp, Math.floor(now() / 1000), settings.clockSkewSeconds)
        if (request.version === 2) sealKey = deriveHmacSealKey(deriveDeviceKey(fleetKey, device), device, proof.timestamp)
      } else {
        const claimParam = fleet.claimParam!
        const claimSecret = decodeClaimSecret(secret(claimParam), settingOf(claimParam))
        verifyClaim(proof.claim, claimSecret)
        if (request.version === 2) sealKey = deriveClaimSealKey(claimSecret, device)
      }
      // After the proof, so that only the device itself learns that it was revoked. A device ID
      // revoked in any fleet stays refused whichever fleet asks (device IDs are one space on
      // Thinger.io); key versions and certificates are the fleet's own (a serial means something
      // only beside the CAs the fleet trusts). Every deny list came in the one batch.
      const denyList = denyListOf(secret(fleet.denyListParam), settingOf(fleet.denyListParam))
      checkNotRevoked(denyList, device, proof.kind === 'hmac' ? proof.keyVersion : undefined)
      if (certificateKey !== undefined) checkCertificateNotRevoked(denyList, certificateKey)
      for (const other of settings.fleets.values()) {
        if (other !== fleet) checkNotRevoked(denyListOf(secret(other.denyListParam), settingOf(other.denyListParam)), device, undefined)
      }
      // Each fleet may name its own Thinger.io account or instance; every token came in the one batched read.
      const target = fleet.thinger
      const token = secret(target.tokenParam)
      if (typeof token !== 'string' || token.trim() === '') throw new ConfigError(settingOf(target.tokenParam), 'the parameter value is empty')

      const calls: ThingerCallRecord[] = []
      const thinger = new ThingerClient({
        baseUrl: target.apiUrl,
        username: target.username,
        token: token.trim(),
        timeoutMs: settings.thingerTimeoutMs,
        deadlineMs: Date.now() + context.getRemainingTimeInMillis() - DEADLINE_MARGIN_MS,
        onCall: (record) => calls.push(record),
        ...(options.fetch ? { fetch: options.fetch } : {}),
      })
      const result = await provisionDevice(device, {
        thinger,
        username: target.username,
        host: target.deviceHost,
        fleet,
        plan,
        proof: proof.kind === 'hmac' ? { kind: 'hmac', timestamp: proof.timestamp, keyVersion: proof.keyVersion } : proof.kind === 'x509' ? { kind: 'x509', timestamp: proof.timestamp } : { kind: 'claim' },
        now,
        // A device without a fleet mark is adopted only by the one fleet that admits its ID.
        adoptUnmarked: [...settings.fleets.values()].filter((candidate) => candidate.devicePattern.test(device)).length === 1,
        knownShared,
        sharedTtlMs: settings.ssmCacheSeconds * 1000,
      })
      const answer = sealKey === undefined ? { ...result } : { ...sealAnswer(result, sealKey) }
      return {
        statusCode: result.created ? 201 : 200,
        // Last, so that parsers that stop at the fields they know never meet it before them.
        body: answerKey === undefined ? answer : { ...answer, answerSignature: signAnswer(answer, bodySha256, answerKey) },
        log: { outcome: result.created ? 'created' : 'reprovisioned', device, fleet: fleet.name, proof: request.proof.kind, sealed: sealKey !== undefined, answerSigned: answerKey !== undefined, created: result.created, thingerCalls: calls.length, ...(certificateKey ? { certificate: certificateKey.fingerprint } : {}) },
      }
    })
}

/**
 * Every SSM parameter the function reads, the setting or fleets-file field that names each (for
 * operators' logs), and those that may be missing (deny lists, the answer key) with what stands for them.
 */
function parametersOf(config: Config): { names: string[]; settingOf: SettingOfParameter; optional: Record<string, string> } {
  const settings = new Map<string, string>()
  const optional: Record<string, string> = {}
  const fromFile = config.fleetsSource === 'file'
  const add = (name: string, setting: string) => {
    if (!settings.has(name)) settings.set(name, setting)
  }
  for (const fleet of config.fleets.values()) {
    add(fleet.thinger.tokenParam, fleet.thinger.tokenParam === config.thingerTokenParam ? 'THINGER_TOKEN_PARAM' : `fleets.${fleet.name}.thinger.tokenParam`)
    for (const version of fleet.keyParam ? (fleet.keyVersions ?? [1]) : []) {
      const setting = fromFile ? `fleets.${fleet.name}.keyParam` : 'FLEET_KEY_PARAM'
      add(keyVersionParam(fleet.keyParam!, version), version === 1 ? setting : `${setting} (key version ${version})`)
    }
    if (fleet.claimParam) add(fleet.claimParam, `fleets.${fleet.name}.claimParam`)
    if (fleet.x509?.caParam) add(fleet.x509.caParam, `fleets.${fleet.name}.x509.caParam`)
    add(fleet.denyListParam, fromFile ? `fleets.${fleet.name}.denyListParam` : 'DENY_LIST_PARAM')
    optional[fleet.denyListParam] = EMPTY_DENY_LIST_JSON
  }
  // Optional so that a deployment from before answer signatures keeps serving (unsigned, with a warning and doctor's FAIL).
  add(config.answerKeyParam, 'ANSWER_KEY_PARAM')
  optional[config.answerKeyParam] = ANSWER_KEY_MISSING
  return { names: [...settings.keys()], settingOf: (name) => settings.get(name) ?? 'SSM parameter', optional }
}

export const handler = createProvisionHandler()

// Values a warm container keeps parsed: as many as a deployment has fleets, twice over while SSM
// hands out new values; past that the memo starts again rather than growing.
const MAX_MEMOISED_VALUES = 64

/** `parse` memoised by the text it parses (an SSM value); anything else, and every failure, is parsed each time. */
function memoisedByText<T>(parse: (value: unknown, setting: string) => T): (value: unknown, setting: string) => T {
  const parsed = new Map<string, T>()
  return (value, setting) => {
    if (typeof value !== 'string') return parse(value, setting)
    const known = parsed.get(value)
    if (known !== undefined) return known
    const result = parse(value, setting)
    if (parsed.size >= MAX_MEMOISED_VALUES) parsed.clear()
    parsed.set(value, result)
    return result
  }
}
