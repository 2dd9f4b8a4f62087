'use strict'
// Reads and validates the fleets file at build time: `osls package`, `osls deploy` and
// `osls offline` resolve the exports below from serverless.yml, so a wrong file fails there,
// naming the fleet and the field, instead of at a device's first boot. The validated file is
// compiled into the bundle (esbuild `define`); YAML and the schema validator never ship to Lambda.
const { X509Certificate } = require('node:crypto')
const { existsSync, readFileSync } = require('node:fs')
const { dirname, join, relative, resolve } = require('node:path')
const Ajv = require('ajv')
const YAML = require('yaml')
const schema = require('./fleets.schema.json')

const PROJECT_DIR = resolve(__dirname, '..')
const DEFAULT_FLEETS_FILE = 'fleets.yml'
const THINGER_ID_RULE = '[A-Za-z0-9_-]{1,32}'
const PLACEHOLDER = /\{([^{}]*)\}/g
const ALLOWED_PLACEHOLDER = /^(device|fleet|meta\.[a-z0-9_]{1,32})$/
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----/g

const validate = new Ajv({ allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true }).compile(schema)

class FleetsFileError extends Error {
  constructor(file, problems) {
    super(`fleets file ${file} is invalid:\n${problems.map((p) => `  - ${p}`).join('\n')}`)
    this.name = 'FleetsFileError'
  }
}

/** Where the fleets file is: FLEETS_FILE, else ./fleets.yml when it exists, else none (single fleet from the environment). */
function fleetsFilePath(env = process.env) {
  if (env.FLEETS_FILE) return resolve(PROJECT_DIR, env.FLEETS_FILE)
  const fallback = join(PROJECT_DIR, DEFAULT_FLEETS_FILE)
  return existsSync(fallback) ? fallback : undefined
}

/** Parses and validates a fleets file's text; returns the fleets with defaults applied. */
function parseFleets(text, file = 'fleets.yml', baseDir = dirname(resolve(PROJECT_DIR, file)), options = {}) {
  const document = YAML.parseDocument(text, { prettyErrors: true, uniqueKeys: true })
  if (document.errors.length > 0) throw new FleetsFileError(file, document.errors.map((e) => e.message.split('\n')[0]))
  const data = document.toJS()
  if (!validate(data)) throw new FleetsFileError(file, validate.errors.map(describeSchemaError).filter(Boolean))
  const problems = []
  const caCertificates = {}
  for (const [name, fleet] of Object.entries(data.fleets)) {
    checkFleet(name, fleet, problems)
    if (fleet.x509?.caFile !== undefined && !(options.allowMissingCaFile && !existsSync(resolve(baseDir, fleet.x509.caFile)))) {
      caCertificates[name] = readCaFile(name, fleet.x509.caFile, baseDir, problems)
    }
  }
  if (problems.length > 0) throw new FleetsFileError(file, problems)
  return normalize(data, caCertificates)
}

/** Reads the fleets file named by the environment; `null` when there is none. */
function loadFleets(env = process.env, options = {}) {
  const path = fleetsFilePath(env)
  if (path === undefined) return null
  const shown = relative(PROJECT_DIR, path) || path
  if (!existsSync(path)) throw new FleetsFileError(shown, [`FLEETS_FILE names ${shown}, which does not exist`])
  return parseFleets(readFileSync(path, 'utf8'), shown, dirname(path), options)
}

function describeSchemaError(error) {
  const parts = error.instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
  let where = parts.length === 0 ? 'the file' : `field ${parts.join('.')}`
  if (parts[0] === 'fleets' && parts.length >= 2) {
    const rest = parts.slice(2)
    where = `fleet "${parts[1]}"${rest.length ? `, field ${rest.join('.')}` : ''}`
  }
  let message = error.message
  if (error.keyword === 'additionalProperties') message = `unknown field "${error.params.additionalProperty}"`
  if (error.keyword === 'required') message = `missing field "${error.params.missingProperty}"`
  if (error.keyword === 'enum') message = `must be one of ${error.params.allowedValues.join(', ')}`
  if (error.keyword === 'propertyNames') message = `has an invalid name "${error.params.propertyName}"`
  if (error.keyword === 'if') return null
  if (error.keyword === 'oneOf' && parts[parts.length - 1] === 'x509') message = 'give exactly one of caFile and caParam'
  return `${where}: ${message}`
}

function checkFleet(name, fleet, problems) {
  const at = (field) => `fleet "${name}", field ${field}`
  if (fleet.denyListParam === undefined && fleet.keyParam === undefined && fleet.claimParam === undefined && fleet.x509?.caParam === undefined) {
    problems.push(`${at('denyListParam')}: required when the fleet names no SSM parameter to put it beside`)
  }
  if (fleet.devicePattern !== undefined) {
    try {
      new RegExp(fleet.devicePattern)
    } catch (error) {
      problems.push(`${at('devicePattern')}: not a valid regular expression (${error.message})`)
    }
  }
  const profile = fleet.profile ?? {}
  const templates = {
    'profile.name': profile.name,
    'profile.description': profile.description,
    'profile.bucket.id': profile.bucket?.id,
    'profile.bucket.name': profile.bucket?.name,
    'profile.bucket.description': profile.bucket?.description,
    'profile.dashboard.id': profile.dashboard?.id,
    'profile.dashboard.name': profile.dashboard?.name,
  }
  for (const [field, template] of Object.entries(templates)) {
    if (typeof template !== 'string') continue
    for (const [, placeholder] of template.matchAll(PLACEHOLDER)) {
      if (!ALLOWED_PLACEHOLDER.test(placeholder)) problems.push(`${at(field)}: unknown placeholder {${placeholder}} (use {device}, {fleet} or {meta.<key>})`)
    }
  }
}

/**
 * Reads a fleet's trusted CA certificates (PEM, relative to the fleets file) to compile them in:
 * each must be a CA certificate node:crypto reads; the function checks the rest at start.
 */
function readCaFile(name, caFile, baseDir, problems) {
  const at = `fleet "${name}", field x509.caFile`
  const path = resolve(baseDir, caFile)
  if (!existsSync(path)) {
    problems.push(`${at}: ${caFile} does not exist`)
    return undefined
  }
  const blocks = readFileSync(path, 'utf8').match(PEM_CERTIFICATE) ?? []
  if (blocks.length === 0) problems.push(`${at}: ${caFile} holds no PEM certificate`)
  for (const [index, block] of blocks.entries()) {
    try {
      if (!new X509Certificate(block).ca) problems.push(`${at}: certificate ${index + 1} of ${caFile} is not a CA certificate`)
    } catch (error) {
      problems.push(`${at}: certificate ${index + 1} of ${caFile} is not readable (${error.message})`)
    }
  }
  return blocks.join('\n')
}

/** Where key version N of a fleet lives: version 1 at keyParam, later ones beside it. */
function keyVersionParam(keyParam, version) {
  return version === 1 ? keyParam : `${keyParam}-v${version}`
}

/** The default deny list of a fleet: beside its first secret, named after the fleet. */
function defaultDenyListParam(name, fleet) {
  const anchor = fleet.keyParam ?? fleet.claimParam ?? fleet.x509?.caParam
  return `${anchor.slice(0, anchor.lastIndexOf('/'))}/${name}-deny-list`
}

function normalize(data, caCertificates) {
  const fleets = {}
  for (const [name, fleet] of Object.entries(data.fleets)) {
    fleets[name] = {
      proof: [...fleet.proof].sort(),
      keyParam: fleet.keyParam,
      keyVersions: fleet.keyParam ? [...(fleet.keyVersions ?? [1])].sort((a, b) => a - b) : undefined,
      claimParam: fleet.claimParam,
      ...(fleet.x509
        ? {
            x509: {
              ...(fleet.x509.caParam ? { caParam: fleet.x509.caParam } : { caFile: fleet.x509.caFile, caCertificates: caCertificates[name] }),
              deviceId: fleet.x509.deviceId ?? 'cn',
            },
          }
        : {}),
      denyListParam: fleet.denyListParam ?? defaultDenyListParam(name, fleet),
      replayProtection: fleet.replayProtection ?? true,
      devicePattern: fleet.devicePattern ?? THINGER_ID_RULE,
      reprovision: fleet.reprovision ?? (fleet.proof.includes('claim') ? 'reject' : 'rotate'),
      // Absent: optional, so that a fleets file written before sealing keeps serving its v1 devices.
      ...(fleet.sealing ? { sealing: fleet.sealing } : {}),
      profile: { type: 'Generic', ...(fleet.profile ?? {}) },
    }
  }
  return { version: 1, fleets }
}

/** Every SSM parameter the function reads: the token and each fleet's secrets. */
function parameterNames(fleets, tokenParam, envFleet) {
  const names = new Set([tokenParam])
  const all = fleets === null ? [envFleet] : Object.values(fleets.fleets)
  for (const fleet of all) {
    for (const version of fleet.keyVersions ?? []) names.add(keyVersionParam(fleet.keyParam, version))
    if (fleet.claimParam) names.add(fleet.claimParam)
    if (fleet.x509?.caParam) names.add(fleet.x509.caParam)
    names.add(fleet.denyListParam)
  }
  return [...names]
}

/** The fleet the settings of the first release describe, when there is no fleets file (mirrors lib/config.ts). */
function environmentFleet(env, fleetKeyParam) {
  return {
    keyParam: fleetKeyParam,
    keyVersions: (env.FLEET_KEY_VERSIONS || '1').split(',').map((v) => Number(v.trim())),
    denyListParam: env.DENY_LIST_PARAM || `${fleetKeyParam.slice(0, fleetKeyParam.lastIndexOf('/'))}/default-deny-list`,
  }
}

module.exports = {
  FleetsFileError,
  fleetsFilePath,
  parseFleets,
  loadFleets,
  parameterNames,
  keyVersionParam,
  environmentFleet,
  /** serverless.yml: the validated fleets as a JS expression for esbuild's `define` ("null" without a file). */
  bundledFleets: () => JSON.stringify(loadFleets()),
  /** serverless.yml: the ARNs of every parameter the function may read, for its IAM policy. */
  ssmParameterArns: async ({ resolveVariable }) => {
    const tokenParam = await resolveVariable('self:custom.thingerTokenParam')
    const fleetKeyParam = await resolveVariable('self:custom.fleetKeyParam')
    return parameterNames(loadFleets(), tokenParam, environmentFleet(process.env, fleetKeyParam)).map((name) => ({
      'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':ssm:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, ':parameter', name]],
    }))
  },
}
