// Device properties (`/v3/.../devices/{device}/properties`).
import type { StoredAccount } from './account.js'
import { findDeviceIn } from './devices.js'
import type { ThingerVariant } from './variants.js'
import { badRequest, EmulatorHttpError } from './errors.js'
import {
  assignDefined, isObject, type JsonObject, keepDefined, labelErrors, MAX_TEXT_CHARS, NO_FIELDS, readChoice, readText,
  rejectFields, requireFields, requireObject, requireResourceId
} from './fields.js'

const PROPERTY_FIELDS = new Set(['property', 'value', 'name', 'description', 'type'])
const PROPERTY_UPDATE_FIELDS = new Set(['value', 'name', 'description', 'type'])
const PROPERTY_UNEMULATED_FIELDS = new Set(['form', 'perm'])
const PROPERTY_TYPES = ['', 'configuration'] as const

export function readPropertyFields (body: JsonObject): JsonObject {
  return keepDefined({
    name: readText(body, 'name', 0, MAX_TEXT_CHARS),
    description: readText(body, 'description', 0, MAX_TEXT_CHARS),
    value: Object.hasOwn(body, 'value') ? structuredClone(body.value) : undefined,
    type: readChoice(body, 'type', PROPERTY_TYPES)
  })
}

export function parseProperty (input: unknown): JsonObject {
  if (!isObject(input)) throw badRequest('a property must be a JSON object')
  rejectFields(input, PROPERTY_FIELDS, NO_FIELDS, PROPERTY_UNEMULATED_FIELDS)
  const property = requireResourceId(input, 'property')
  const fields = readPropertyFields(input)
  requireFields(fields, ['value'])
  return { property, name: '', description: '', ...fields }
}

export function createProperties (account: StoredAccount, deviceId: string, input: unknown, variant: ThingerVariant): void {
  findPropertyDevice(account, deviceId, variant)
  // CreateDeviceProperty takes one property or an array of them; the array is all or nothing.
  const parsed = Array.isArray(input)
    ? input.map((item, index) => labelErrors(`property ${index}`, () => parseProperty(item)))
    : [parseProperty(input)]
  const stored = account.properties.get(deviceId) ?? new Map<string, JsonObject>()
  const ids = parsed.map((property) => property.property as string)
  if (ids.some((id, index) => stored.has(id) || ids.indexOf(id) !== index)) throw badRequest('property already exists')
  for (const property of parsed) stored.set(property.property as string, property)
  if (stored.size > 0) account.properties.set(deviceId, stored)
}

/** The device whose properties a call names; a missing one answers as the variant says (404 or 500). */
export function findPropertyDevice (account: StoredAccount, deviceId: string, variant: ThingerVariant): void {
  try {
    findDeviceIn(account, deviceId)
  } catch (error) {
    if (error instanceof EmulatorHttpError && variant.missingDevicePropertyStatus === 500) throw new EmulatorHttpError(500, 'internal error')
    throw error
  }
}

export function findProperty (account: StoredAccount, deviceId: string, propertyId: string, variant: ThingerVariant): JsonObject {
  findPropertyDevice(account, deviceId, variant)
  const property = account.properties.get(deviceId)?.get(propertyId)
  if (property === undefined) throw new EmulatorHttpError(404, 'property not found')
  return property
}

export function updateProperty (account: StoredAccount, deviceId: string, propertyId: string, input: unknown, variant: ThingerVariant): void {
  const property = findProperty(account, deviceId, propertyId, variant)
  const body = requireObject(input)
  rejectFields(body, PROPERTY_UPDATE_FIELDS, new Set(['property']), PROPERTY_UNEMULATED_FIELDS)
  const fields = readPropertyFields(body)
  requireFields(fields, ['value'])
  assignDefined(property, fields)
}

export function deleteProperty (account: StoredAccount, deviceId: string, propertyId: string, variant: ThingerVariant): void {
  findProperty(account, deviceId, propertyId, variant)
  const properties = account.properties.get(deviceId)
  properties?.delete(propertyId)
  if (properties?.size === 0) account.properties.delete(deviceId)
}

