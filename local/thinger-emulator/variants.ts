// Where Thinger's documents are silent or disagree, the emulator can answer each plausible way.
// A variant is an option of the backend: the models consult it, the routes never branch on it.
import { badRequest } from './errors.js'
import { isObject } from './fields.js'

/** One plausible behaviour of a Thinger.io server, switch by switch. */
export interface ThingerVariant {
  /** Status of a create whose device ID exists: legacy docs say 400; 409 is what REST APIs often say. */
  duplicateCreateStatus: 400 | 409
  /**
   * How reading one device carries `created`: epoch milliseconds as in list answers, an ISO
   * string, or not at all (no source shows the body of a single-device read).
   */
  created: 'epoch-ms' | 'iso' | 'absent'
  /** Status of a property call on a device that does not exist (Thinger's Node-RED nodes saw 500). */
  missingDevicePropertyStatus: 404 | 500
  /** Deleting a connected device: refused with 400 (legacy API doc), or allowed. */
  deleteConnected: 'refused' | 'allowed'
  /** Asset types and groups a device names are created by the server (changelog 2.9.9); products never are. */
  autoCreateAssets: boolean
}

/** The behaviour the sources document; where they are silent, the safest reading. */
export const DOCUMENTED_VARIANT: Readonly<ThingerVariant> = Object.freeze({
  duplicateCreateStatus: 400,
  created: 'epoch-ms',
  missingDevicePropertyStatus: 404,
  deleteConnected: 'refused',
  autoCreateAssets: true
})

/**
 * Named variants that together give every switch each of its values: the test matrix runs the
 * suites once under each.
 */
export const NAMED_VARIANTS: Readonly<Record<string, Readonly<ThingerVariant>>> = Object.freeze({
  documented: DOCUMENTED_VARIANT,
  'conflict-iso': Object.freeze({
    duplicateCreateStatus: 409,
    created: 'iso',
    missingDevicePropertyStatus: 500,
    deleteConnected: 'allowed',
    autoCreateAssets: false
  }),
  'conflict-no-created': Object.freeze({
    duplicateCreateStatus: 409,
    created: 'absent',
    missingDevicePropertyStatus: 500,
    deleteConnected: 'refused',
    autoCreateAssets: false
  })
})

const CHOICES: { [K in keyof ThingerVariant]: readonly ThingerVariant[K][] } = {
  duplicateCreateStatus: [400, 409],
  created: ['epoch-ms', 'iso', 'absent'],
  missingDevicePropertyStatus: [404, 500],
  deleteConnected: ['refused', 'allowed'],
  autoCreateAssets: [true, false]
}

/**
 * Reads a variant: a name of {@link NAMED_VARIANTS}, or switches laid over the documented
 * behaviour. Throws a 400 naming the first unknown name, switch or value.
 */
export function parseVariant (input: unknown): ThingerVariant {
  if (typeof input === 'string') {
    const named = NAMED_VARIANTS[input]
    if (named === undefined) throw badRequest(`unknown variant '${input}'; variants: ${Object.keys(NAMED_VARIANTS).join(', ')}`)
    return { ...named }
  }
  if (!isObject(input)) throw badRequest('a variant is a name or an object of switches')
  const variant: Record<string, unknown> = { ...DOCUMENTED_VARIANT }
  for (const [key, value] of Object.entries(input)) {
    const choices = (CHOICES as Record<string, readonly unknown[]>)[key]
    if (choices === undefined) throw badRequest(`unknown variant switch '${key}'`)
    if (!choices.includes(value)) throw badRequest(`'${key}' must be one of ${choices.map((choice) => JSON.stringify(choice)).join(', ')}`)
    variant[key] = value
  }
  return variant as unknown as ThingerVariant
}
