// Reading and checking the JSON bodies of Thinger's API, as its OpenAPI schemas describe them.
import { badRequest, EmulatorHttpError } from './errors.js'

export type JsonObject = Record<string, unknown>

export const MAX_TEXT_CHARS = 255
export const RESOURCE_ID_PATTERN = /^[a-zA-Z0-9_-]{1,32}$/
export const IMMUTABLE_FIELDS = new Set(['device', 'type'])
export const NO_FIELDS: ReadonlySet<string> = new Set()

export const isObject = (value: unknown): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

export const countChars = (text: string): number => [...text].length

export const keepDefined = (fields: JsonObject): JsonObject =>
  Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined))

export function assignDefined (target: JsonObject, fields: JsonObject): void {
  Object.assign(target, keepDefined(fields))
}

export function rejectFields (
  body: JsonObject,
  allowed: ReadonlySet<string>,
  immutable: ReadonlySet<string> = IMMUTABLE_FIELDS,
  unemulated: ReadonlySet<string> = NO_FIELDS
): void {
  for (const key of Object.keys(body)) {
    if (allowed.has(key)) continue
    if (immutable.has(key)) throw badRequest(`'${key}' cannot be changed`)
    // Valid for Thinger, but refused so that the service cannot come to rely on what is not emulated.
    if (unemulated.has(key)) throw badRequest(`'${key}' is not emulated`)
    throw badRequest(`unknown field '${key}'`)
  }
}

export function labelErrors<T> (label: string, read: () => T): T {
  try {
    return read()
  } catch (error) {
    throw error instanceof EmulatorHttpError ? badRequest(`${label}: ${error.message}`) : error
  }
}

export function readText (body: JsonObject, field: string, minChars: number, maxChars: number): string | undefined {
  if (!Object.hasOwn(body, field)) return undefined
  const value = body[field]
  if (typeof value !== 'string' || countChars(value) < minChars || countChars(value) > maxChars) {
    throw badRequest(Number.isFinite(maxChars)
      ? `'${field}' must be a string of ${minChars} to ${maxChars} characters`
      : `'${field}' must be a string`)
  }
  return value
}

export function requireText (body: JsonObject, field: string, minChars: number, maxChars: number): string {
  const value = readText(body, field, minChars, maxChars)
  if (value === undefined) throw badRequest(`'${field}' is required`)
  return value
}

export function readArray (body: JsonObject, field: string): unknown[] | undefined {
  if (!Object.hasOwn(body, field)) return undefined
  const value = body[field]
  if (!Array.isArray(value)) throw badRequest(`'${field}' must be an array`)
  return value
}

export function readChoice<T extends string> (body: JsonObject, field: string, choices: readonly T[]): T | undefined {
  if (!Object.hasOwn(body, field)) return undefined
  const value = body[field]
  if (typeof value !== 'string' || !choices.includes(value as T)) {
    throw badRequest(`'${field}' must be one of ${choices.map((choice) => JSON.stringify(choice)).join(', ')}`)
  }
  return value as T
}

export function readBoolean (body: JsonObject, field: string): boolean | undefined {
  if (!Object.hasOwn(body, field)) return undefined
  const value = body[field]
  if (typeof value !== 'boolean') throw badRequest(`'${field}' must be a boolean`)
  return value
}

export function readResourceId (body: JsonObject, field: string, allowEmpty: boolean): string | undefined {
  if (!Object.hasOwn(body, field)) return undefined
  const value = body[field]
  if (typeof value === 'string' && (RESOURCE_ID_PATTERN.test(value) || (allowEmpty && value === ''))) return value
  throw badRequest(`'${field}' must match ${RESOURCE_ID_PATTERN.source}${allowEmpty ? ' or be empty' : ''}`)
}

export function requireResourceId (body: JsonObject, field: string): string {
  const value = readResourceId(body, field, false)
  if (value === undefined) throw badRequest(`'${field}' is required`)
  return value
}

export function requireObject (body: unknown): JsonObject {
  if (!isObject(body)) throw badRequest('body must be a JSON object')
  return body
}

export function parseJson (text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    throw badRequest('invalid JSON body')
  }
}

export function requireFields (fields: JsonObject, required: readonly string[]): void {
  for (const field of required) if (!Object.hasOwn(fields, field)) throw badRequest(`'${field}' is required`)
}
