'use strict'
// Reads and validates the fleets file at build time: `osls package`, `osls deploy` and
// `osls offline` resolve the exports below from serverless.yml, so a wrong file fails there,
// naming the fleet and the field, instead of at a device's first boot. The validated file is
// compiled into the bundle (esbuild `define`); YAML and the schema validator never ship to Lambda.
const { X509Certificate } = require('node:crypto')
const { existsSync, readFileSync } = require('node:fs')
const { dirname, join, relative, resolve } = require('node:path')
const Ajv = require('ajv')
// recheck rather than safe-regex2: it decides by automata theory (with an attack string to show)
// where safe-regex2 only measures star height, which misses `(a|a)*b`, `(\w|\d)+$` and every
// polynomial case. Build time only: it never ships in the function's bundle.
const { checkSync: checkRegex } = require('recheck')
const YAML = require('yaml')
const schema = require('./fleets.schema.json')
const { SettingError, reportingMistakes } = require('./settings.cjs')

const PROJECT_DIR = resolve(__dirname, '..')
const DEFAULT_FLEETS_FILE = 'fleets.yml'
const THINGER_ID_RULE = '[A-Za-z0-9_-]{1,32}'
const PLACEHOLDER = /\{([^{}]*)\}/g
const ALLOWED_PLACEHOLDER = /^(device|fleet|meta\.[a-z0-9_]{1,32})$/
const ID_PLACEHOLDER = /^(device|fleet)$/
const REDOS_TIMEOUT_MS = 10_000
// What the function refuses in a meta value (lib/attestation/request.ts), for the defaults declared here.
const UNPRINTABLE_META = /[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Cs}\p{Zl}\p{Zp}<>]/u
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----/g

const validate = new Ajv({ allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true }).compile(schema)

class FleetsFileError extends Error {
  constructor(file, problems) {
    // A problem of several lines (the YAML parser's, with the lines around the error) stays one item.
    super(`fleets file ${file} is invalid:\n${problems.map((p) => `  - ${p.replace(/\n/g, '\n    ').replace(/[ \t]+$/gm, '')}`).join('\n')}`)
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
  if (document.errors.length > 0) throw new FleetsFileError(file, document.errors.map((e) => e.message.trimEnd()))
  const data = document.toJS()
  if (!validate(data)) throw new FleetsFileError(file, validate.errors.map(describeSchemaError).filter(Boolean))
  const problems = []
  // By fleet name in a Map: a fleet may be named `constructor` or `__proto__`.
  const caCertificates = new Map()
  for (const [name, fleet] of Object.entries(data.fleets)) {
    checkFleet(name, fleet, problems)
    if (fleet.x509?.caFile !== undefined && !(options.allowMissingCaFile && !existsSync(resolve(baseDir, fleet.x509.caFile)))) {
      caCertificates.set(name, readCaFile(name, fleet.x509.caFile, baseDir, problems))
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
  if (fleet.devicePattern !== undefined) checkPattern(fleet.devicePattern, at('devicePattern'), problems)
  const meta = fleet.meta ?? {}
  for (const [key, rule] of Object.entries(meta)) {
    const patternOk = rule.pattern === undefined || checkPattern(rule.pattern, at(`meta.${key}.pattern`), problems)
    if (rule.default === undefined) continue
    if (UNPRINTABLE_META.test(rule.default)) problems.push(`${at(`meta.${key}.default`)}: must be printable text, without control or format characters or < >`)
    else if (patternOk && rule.pattern !== undefined && !new RegExp(`^(?:${rule.pattern})$`).test(rule.default)) {
      problems.push(`${at(`meta.${key}.default`)}: does not match meta.${key}.pattern`)
    }
  }
  const profile = fleet.profile ?? {}
  const texts = {
    'profile.name': profile.name,
    'profile.description': profile.description,
    'profile.bucket.name': profile.bucket?.name,
    'profile.bucket.description': profile.bucket?.description,
    'profile.dashboard.name': profile.dashboard?.name,
  }
  const ids = { 'profile.bucket.id': profile.bucket?.id, 'profile.dashboard.id': profile.dashboard?.id }
  for (const [field, template] of Object.entries({ ...texts, ...ids })) {
    if (typeof template !== 'string') continue
    const isId = field in ids
    for (const [, placeholder] of template.matchAll(PLACEHOLDER)) {
      if (!ALLOWED_PLACEHOLDER.test(placeholder)) {
        problems.push(`${at(field)}: unknown placeholder {${placeholder}} (use ${isId ? '{device} or {fleet}' : '{device}, {fleet} or {meta.<key>}'})`)
      } else if (isId && !ID_PLACEHOLDER.test(placeholder)) {
        problems.push(`${at(field)}: {${placeholder}} is not allowed in an ID: IDs may use {device} and {fleet} only, or one device could take another's`)
      } else if (placeholder.startsWith('meta.') && !Object.hasOwn(meta, placeholder.slice(5))) {
        problems.push(`${at(field)}: {${placeholder}} names a meta key the fleet does not declare (add it under meta)`)
      }
    }
    if (isId && !template.includes('{device}')) problems.push(`${at(field)}: must contain {device}, or every device of the fleet would share one`)
  }
}

/**
 * Checks that a pattern compiles and cannot backtrack catastrophically on the IDs or values it
 * is matched against (anchored as the function anchors it).
 * @returns true when the pattern is usable.
 */
function checkPattern(source, where, problems) {
  try {
    new RegExp(source)
  } catch (error) {
    problems.push(`${where}: not a valid regular expression (${error.message})`)
    return false
  }
  const unsupported = unsupportedConstruct(source)
  if (unsupported !== undefined) {
    problems.push(`${where}: uses ${unsupported}, which the build cannot prove free of catastrophic backtracking; rewrite it without backreferences and lookarounds`)
    return false
  }
  const diagnostics = checkBounded(`^(?:${source})$`)
  if (diagnostics.status === 'safe') return true
  if (diagnostics.status === 'vulnerable') {
    const attack = diagnostics.attack?.pattern ? `, for example on ${diagnostics.attack.pattern}` : ''
    problems.push(`${where}: can backtrack catastrophically (${diagnostics.complexity?.summary ?? diagnostics.complexity?.type} time${attack}); rewrite it without nested or overlapping repetition`)
  } else {
    problems.push(`${where}: could not be proven free of catastrophic backtracking (${diagnostics.error?.kind ?? 'unknown'}); simplify it`)
  }
  return false
}

/**
 * The first backreference or lookaround of a pattern, described; undefined when it has none. The
 * backtracking checker cannot bound these (a backreference such as `(a|\1)+` overflows its stack
 * past its own timeout), and device IDs and meta values never need them.
 */
function unsupportedConstruct(source) {
  let inClass = false
  for (let index = 0; index < source.length; index++) {
    const char = source[index]
    if (char === '\\') {
      const next = source[index + 1] ?? ''
      if (!inClass && next >= '1' && next <= '9') return `a backreference (\\${next})`
      if (!inClass && next === 'k' && source[index + 2] === '<') return 'a named backreference (\\k<…>)'
      index++
    } else if (inClass) {
      if (char === ']') inClass = false
    } else if (char === '[') {
      inClass = true
    } else if (char === '(' && source[index + 1] === '?') {
      const kind = source.slice(index + 2, index + 4)
      if (kind[0] === '=' || kind[0] === '!') return `a lookahead (${source.slice(index, index + 3)})`
      if (kind === '<=' || kind === '<!') return `a lookbehind (${source.slice(index, index + 4)})`
    }
  }
  return undefined
}

/**
 * recheck's verdict on a pattern, bounded: its pure JavaScript checker runs in this process, where
 * its timeout holds and a stack overflow is an exception (its default native agent, once crashed,
 * leaves the synchronous call waiting for ever). Any failure of the checker is a verdict too.
 */
function checkBounded(anchored) {
  const backend = process.env.RECHECK_SYNC_BACKEND
  process.env.RECHECK_SYNC_BACKEND = 'pure'
  try {
    return checkRegex(anchored, '', { timeout: REDOS_TIMEOUT_MS })
  } catch (error) {
    return { status: 'unknown', error: { kind: error instanceof RangeError ? 'the checker ran out of stack' : `the checker failed: ${error.message}` } }
  } finally {
    if (backend === undefined) delete process.env.RECHECK_SYNC_BACKEND
    else process.env.RECHECK_SYNC_BACKEND = backend
  }
}

/**
 * The pattern of the single fleet the settings describe when there is no fleets file, checked
 * as a fleet's devicePattern is.
 * @throws Error naming DEVICE_ID_PATTERN.
 */
function checkEnvironmentPattern(env = process.env) {
  if (!env.DEVICE_ID_PATTERN) return
  const problems = []
  checkPattern(env.DEVICE_ID_PATTERN, 'setting DEVICE_ID_PATTERN', problems)
  if (problems.length > 0) throw new SettingError(problems.join('\n'))
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
  const fleets = []
  for (const [name, fleet] of Object.entries(data.fleets)) {
    fleets.push([name, {
      proof: [...fleet.proof].sort(),
      keyParam: fleet.keyParam,
      keyVersions: fleet.keyParam ? [...(fleet.keyVersions ?? [1])].sort((a, b) => a - b) : undefined,
      claimParam: fleet.claimParam,
      ...(fleet.x509
        ? {
            x509: {
              ...(fleet.x509.caParam ? { caParam: fleet.x509.caParam } : { caFile: fleet.x509.caFile, caCertificates: caCertificates.get(name) }),
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
      ...(fleet.meta === undefined ? {} : { meta: fleet.meta }),
      ...(fleet.thinger ? { thinger: { ...fleet.thinger } } : {}),
    }])
  }
  // From entries, so that a fleet named `__proto__` stays an own key (an assignment would set the prototype and drop it).
  return { version: 1, fleets: Object.fromEntries(fleets) }
}

/**
 * Every SSM parameter the function reads: each fleet's Thinger.io token (its own, or the
 * deployment's) and secrets, and the deployment's answer key when given.
 */
function parameterNames(fleets, tokenParam, envFleet, answerKeyParam) {
  const names = new Set()
  const all = fleets === null ? [envFleet] : Object.values(fleets.fleets)
  for (const fleet of all) {
    names.add(fleet.thinger?.tokenParam ?? tokenParam)
    for (const version of fleet.keyVersions ?? []) names.add(keyVersionParam(fleet.keyParam, version))
    if (fleet.claimParam) names.add(fleet.claimParam)
    if (fleet.x509?.caParam) names.add(fleet.x509.caParam)
    names.add(fleet.denyListParam)
  }
  if (answerKeyParam) names.add(answerKeyParam)
  return [...names]
}

/** DENY_LIST_PARAM's default: beside the fleet key, for the fleet named `default` (mirrors lib/config.ts). */
function environmentDenyListParam(fleetKeyParam) {
  return `${fleetKeyParam.slice(0, fleetKeyParam.lastIndexOf('/'))}/default-deny-list`
}

/** The fleet the settings of the first release describe, when there is no fleets file (mirrors lib/config.ts). */
function environmentFleet(env, fleetKeyParam) {
  return {
    keyParam: fleetKeyParam,
    keyVersions: (env.FLEET_KEY_VERSIONS || '1').split(',').map((v) => Number(v.trim())),
    denyListParam: env.DENY_LIST_PARAM || environmentDenyListParam(fleetKeyParam),
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
  checkEnvironmentPattern,
  bundledFleets: reportingMistakes(() => {
    const fleets = loadFleets()
    if (fleets === null) checkEnvironmentPattern()
    return JSON.stringify(fleets)
  }, [FleetsFileError]),
  /** serverless.yml: DENY_LIST_PARAM when the environment does not set it. */
  defaultDenyListParam: async ({ resolveVariable }) => environmentDenyListParam(await resolveVariable('self:custom.fleetKeyParam')),
  /** serverless.yml: the ARNs of every parameter the function may read, for its IAM policy. */
  ssmParameterArns: reportingMistakes(async ({ resolveVariable }) => {
    const tokenParam = await resolveVariable('self:custom.thingerTokenParam')
    const fleetKeyParam = await resolveVariable('self:custom.fleetKeyParam')
    const answerKeyParam = await resolveVariable('self:custom.answerKeyParam')
    return parameterNames(loadFleets(), tokenParam, environmentFleet(process.env, fleetKeyParam), answerKeyParam).map((name) => ({
      'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':ssm:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, ':parameter', name]],
    }))
  }, [FleetsFileError]),
}
