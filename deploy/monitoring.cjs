'use strict'
// What production watches about itself, when MONITORING=on: CloudWatch alarms on the metrics the
// function already writes and on Lambda's and API Gateway's own, a dashboard, and the HTTP API's
// access log (also alone with API_ACCESS_LOGS=on). serverless.yml merges `resources` below into the
// stack and passes `accessLogs` to osls; docs/operations.md says what each alarm means.

const { SettingError, reportingMistakes } = require('./settings.cjs')

const NAMESPACE = 'ThingerProvisioner'
const SERVICE_DIMENSION = { Name: 'service', Value: 'thinger-provisioner' }
const PERIOD_SECONDS = 300
const TIMEOUT_MS = 10_000
// Rates are judged only over enough traffic: five refusals out of six requests is not an incident.
const MIN_REQUESTS_FOR_RATE = 20
const ACCESS_LOG_FORMAT = {
  requestId: '$context.requestId',
  sourceIp: '$context.identity.sourceIp',
  requestTime: '$context.requestTime',
  routeKey: '$context.routeKey',
  status: '$context.status',
  responseLength: '$context.responseLength',
  responseLatency: '$context.responseLatency',
  integrationLatency: '$context.integrationLatency',
  integrationStatus: '$context.integrationStatus',
  integrationError: '$context.integrationErrorMessage',
}

class MonitoringSettingError extends SettingError {
  constructor(setting, reason) {
    super(`${setting} ${reason}`)
    this.name = 'MonitoringSettingError'
  }
}

function readSwitch(env, name) {
  const raw = (env[name] ?? '').toLowerCase()
  if (raw === '' || ['off', 'false', '0'].includes(raw)) return false
  if (['on', 'true', '1'].includes(raw)) return true
  throw new MonitoringSettingError(name, `must be on or off (found "${env[name]}")`)
}

/** The monitoring settings, validated: MONITORING, API_ACCESS_LOGS, ALARM_TOPIC_ARN, ALARM_EMAIL. */
function monitoringSettings(env = process.env) {
  const monitoring = readSwitch(env, 'MONITORING')
  const topicArn = env.ALARM_TOPIC_ARN || undefined
  const email = env.ALARM_EMAIL || undefined
  if (topicArn !== undefined && !/^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]{1,256}$/.test(topicArn)) {
    throw new MonitoringSettingError('ALARM_TOPIC_ARN', 'must be the ARN of an SNS topic (arn:aws:sns:<region>:<account>:<name>)')
  }
  if (email !== undefined && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email)) throw new MonitoringSettingError('ALARM_EMAIL', 'must be an e-mail address')
  if (topicArn && email) throw new MonitoringSettingError('ALARM_EMAIL', 'cannot be combined with ALARM_TOPIC_ARN (subscribe the address to that topic instead)')
  // The 429 alarm counts throttled requests in the access log, so monitoring turns the log on.
  return { monitoring, accessLogs: monitoring || readSwitch(env, 'API_ACCESS_LOGS'), topicArn, email }
}

const ref = (name) => ({ Ref: name })
// The function writes its metrics with the stage as a dimension: two stages in one account never
// count in each other's alarms.
const requests = (stage, outcome, code) => ({
  Namespace: NAMESPACE,
  MetricName: 'Requests',
  Dimensions: [SERVICE_DIMENSION, { Name: 'stage', Value: stage }, { Name: 'outcome', Value: outcome }, { Name: 'code', Value: code }],
})
const lambdaMetric = (name) => ({ Namespace: 'AWS/Lambda', MetricName: name, Dimensions: [{ Name: 'FunctionName', Value: ref('ProvisionLambdaFunction') }] })
const apiMetric = (name) => ({ Namespace: 'AWS/ApiGateway', MetricName: name, Dimensions: [{ Name: 'ApiId', Value: ref('HttpApi') }, { Name: 'Stage', Value: '$default' }] })
const query = (id, metric, stat = 'Sum') => ({ Id: id, ReturnData: false, MetricStat: { Metric: metric, Period: PERIOD_SECONDS, Stat: stat } })

/** A percentage of `total`, as metric math, that stays 0 while traffic is below MIN_REQUESTS_FOR_RATE. */
function rate(label, parts, total) {
  const numerator = parts.map((part) => part.Id).join(' + ')
  return [
    ...parts,
    total,
    { Id: 'rate', Label: label, ReturnData: true, Expression: `IF(${total.Id} >= ${MIN_REQUESTS_FOR_RATE}, 100 * (${numerator}) / ${total.Id}, 0)` },
  ]
}

function alarms(stack, stage) {
  return {
    'internal-errors': {
      description: 'The function answered 500 internal_error: a setting or a parameter is missing or wrong. Every request fails until it is fixed (docs/operations.md, "Alarms").',
      metric: { ...requests(stage, 'failed', 'internal_error'), Statistic: 'Sum' },
      threshold: 1,
      periods: [1, 1],
    },
    'upstream-unavailable-rate': {
      description: 'More than 10% of requests failed because Thinger.io did not answer or refused (503 upstream_unavailable, 502 upstream_error).',
      metrics: rate('% of requests failed upstream', [query('unavailable', requests(stage, 'failed', 'upstream_unavailable')), query('refused', requests(stage, 'failed', 'upstream_error'))], query('total', lambdaMetric('Invocations'))),
      threshold: 10,
      periods: [2, 3],
    },
    'lambda-errors': {
      description: 'The function crashed or timed out (not a refusal it answered): read its log for the stack trace.',
      metric: { ...lambdaMetric('Errors'), Statistic: 'Sum' },
      threshold: 1,
      periods: [1, 1],
    },
    'lambda-throttles': {
      description: 'Lambda refused to run the function: the account or reserved concurrency is exhausted.',
      metric: { ...lambdaMetric('Throttles'), Statistic: 'Sum' },
      threshold: 1,
      periods: [1, 1],
    },
    'duration-near-timeout': {
      description: `The slowest 1% of invocations took over 80% of the ${TIMEOUT_MS / 1000} s timeout: Thinger.io or SSM is slow, the next step is timeouts.`,
      metric: { ...lambdaMetric('Duration'), ExtendedStatistic: 'p99' },
      threshold: TIMEOUT_MS * 0.8,
      periods: [2, 3],
    },
    'api-5xx-rate': {
      description: 'More than 5% of API responses were 5xx (the function failed, or API Gateway could not reach it).',
      metrics: rate('% of responses 5xx', [query('errors', apiMetric('5xx'))], query('total', apiMetric('Count'))),
      threshold: 5,
      periods: [2, 3],
    },
    'api-429-rate': {
      description: 'More than 5% of requests were throttled by the API (429): a boot storm, or API_RATE_LIMIT is too low for the fleet.',
      metrics: rate('% of requests throttled', [query('throttled', { Namespace: NAMESPACE, MetricName: 'ApiThrottled', Dimensions: [{ Name: 'stack', Value: stack }] })], query('total', apiMetric('Count'))),
      threshold: 5,
      periods: [2, 3],
    },
  }
}

function logicalId(name) {
  return `Alarm${name.split('-').map((part) => part[0].toUpperCase() + part.slice(1)).join('')}`
}

function alarmResources(stack, stage, actions) {
  const resources = {}
  for (const [name, alarm] of Object.entries(alarms(stack, stage))) {
    const properties = {
      AlarmName: `${stack}-${name}`,
      AlarmDescription: alarm.description,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      Threshold: alarm.threshold,
      DatapointsToAlarm: alarm.periods[0],
      EvaluationPeriods: alarm.periods[1],
      TreatMissingData: 'notBreaching',
      AlarmActions: actions,
      OKActions: actions,
    }
    if (alarm.metrics) properties.Metrics = alarm.metrics
    else Object.assign(properties, alarm.metric, { Period: PERIOD_SECONDS })
    resources[logicalId(name)] = { Type: 'AWS::CloudWatch::Alarm', Properties: properties }
  }
  return resources
}

/** The dashboard body as a CloudFormation value: JSON text with the API's id and the region joined in. */
function dashboardBody(stack, stage) {
  const API = '@@API@@'
  const FUNCTION = '@@FUNCTION@@'
  const REGION = '@@REGION@@'
  const search = (metric, stat) => [{ expression: `SEARCH('{${NAMESPACE},service,stage,outcome,code} MetricName="${metric}" stage="${stage}"', '${stat}', ${PERIOD_SECONDS})`, id: 'e1' }]
  const api = (name, stat) => ['AWS/ApiGateway', name, 'ApiId', API, 'Stage', '$default', { stat }]
  const lambda = (name, stat) => ['AWS/Lambda', name, 'FunctionName', FUNCTION, { stat }]
  const widget = (x, y, title, metrics, extra = {}) => ({
    type: 'metric',
    x,
    y,
    width: 12,
    height: 6,
    properties: { title, region: REGION, period: PERIOD_SECONDS, view: 'timeSeries', stacked: false, metrics, ...extra },
  })
  const body = {
    widgets: [
      widget(0, 0, 'Requests by outcome and code', search('Requests', 'Sum')),
      widget(12, 0, 'Thinger.io calls per request, by outcome', search('ThingerCalls', 'Average')),
      widget(0, 6, 'Latency (ms): API p50 / p99, function p50 / p99', [api('Latency', 'p50'), api('Latency', 'p99'), lambda('Duration', 'p50'), lambda('Duration', 'p99')]),
      widget(12, 6, 'Throttles and errors', [
        [NAMESPACE, 'ApiThrottled', 'stack', stack, { stat: 'Sum', label: 'API 429' }],
        api('5xx', 'Sum'),
        api('4xx', 'Sum'),
        lambda('Throttles', 'Sum'),
        lambda('Errors', 'Sum'),
        lambda('ConcurrentExecutions', 'Maximum'),
      ]),
      {
        type: 'alarm',
        x: 0,
        y: 12,
        width: 24,
        height: 3,
        properties: { title: 'Alarms', alarms: Object.keys(alarms(stack, stage)).map((name) => `@@ALARM:${logicalId(name)}@@`) },
      },
    ],
  }
  const parts = JSON.stringify(body).split(/(@@[A-Z]+(?::[A-Za-z]+)?@@)/)
  const values = parts.map((part) => {
    if (part === API) return ref('HttpApi')
    if (part === FUNCTION) return ref('ProvisionLambdaFunction')
    if (part === REGION) return ref('AWS::Region')
    if (part.startsWith('@@ALARM:')) return { 'Fn::GetAtt': [part.slice(8, -2), 'Arn'] }
    return part
  })
  return { 'Fn::Join': ['', values.filter((value) => value !== '')] }
}

function monitoringResources(stack, stage, settings) {
  const resources = {}
  const outputs = {}
  let actions = []
  if (settings.topicArn) {
    actions = [settings.topicArn]
  } else {
    resources.AlarmTopic = { Type: 'AWS::SNS::Topic', Properties: { TopicName: `${stack}-alarms`, DisplayName: `${stack} alarms` } }
    outputs.AlarmTopicArn = { Description: 'SNS topic the alarms notify: subscribe to it', Value: ref('AlarmTopic') }
    actions = [ref('AlarmTopic')]
    if (settings.email) {
      resources.AlarmEmailSubscription = { Type: 'AWS::SNS::Subscription', Properties: { TopicArn: ref('AlarmTopic'), Protocol: 'email', Endpoint: settings.email } }
    }
  }
  Object.assign(resources, alarmResources(stack, stage, actions))
  // API Gateway has no metric for the 429s its throttle answers: count them in the access log.
  resources.ApiThrottledMetricFilter = {
    Type: 'AWS::Logs::MetricFilter',
    Properties: {
      LogGroupName: ref('HttpApiLogGroup'),
      FilterPattern: '{ $.status = "429" }',
      MetricTransformations: [{ MetricNamespace: NAMESPACE, MetricName: 'ApiThrottled', MetricValue: '1', Unit: 'Count', Dimensions: [{ Key: 'stack', Value: '$.stack' }] }],
    },
  }
  resources.Dashboard = { Type: 'AWS::CloudWatch::Dashboard', Properties: { DashboardName: stack, DashboardBody: dashboardBody(stack, stage) } }
  return { Resources: resources, Outputs: outputs }
}

module.exports = {
  MonitoringSettingError,
  monitoringSettings,
  ACCESS_LOG_FORMAT,
  /** serverless.yml: the alarms, the topic and the dashboard (none without MONITORING=on). */
  resources: reportingMistakes(async ({ resolveVariable }) => {
    const settings = monitoringSettings()
    if (!settings.monitoring) return {}
    const service = await resolveVariable('self:service')
    const stage = await resolveVariable('sls:stage')
    return monitoringResources(`${service}-${stage}`, stage, settings)
  }),
  /** serverless.yml: provider.logs.httpApi, the JSON access log (false when off); `stack` names the stage's stack in every line. */
  accessLogs: reportingMistakes(async ({ resolveVariable }) => {
    if (!monitoringSettings().accessLogs) return false
    const stack = `${await resolveVariable('self:service')}-${await resolveVariable('sls:stage')}`
    return { format: JSON.stringify({ ...ACCESS_LOG_FORMAT, stack }) }
  }),
}
