// The emulated Thinger server without HTTP: its accounts, tokens, recorded calls and faults.
// Routes turn requests into calls on it; tests reach it through the emulator's handle.
import { CATALOG_KINDS, copyView, newAccount, snapshotAccount, type StoredAccount } from './account.js'
import { checkLogin } from './devices.js'
import { EmulatorHttpError } from './errors.js'
import { FaultInjector } from './faults.js'
import { RESOURCE_ID_PATTERN } from './fields.js'
import { seedAccount } from './resources.js'
import { grantsOf, type TokenGrant, validateTokens } from './tokens.js'
import { parseVariant, type ThingerVariant } from './variants.js'
import type { EmulatorResources, EmulatorSeed, LoginCheck, RecordedCall, StoredDeviceView, ThingerEmulatorOptions } from './types.js'

// Thinger hashes with far more iterations; the emulator only needs the shape of a salted hash,
// and benchmarks create thousands of devices, where 1000 iterations keep a create under 1 ms.
const DEFAULT_HASH_ITERATIONS = 1000

export class ThingerBackend {
  readonly hashIterations: number
  readonly grants: ReadonlyMap<string, TokenGrant>
  readonly faults = new FaultInjector()
  readonly #accounts = new Map<string, StoredAccount>()
  #recorded: RecordedCall[] = []
  #variant: ThingerVariant

  /** Throws a TypeError on invalid options. */
  constructor (options: ThingerEmulatorOptions) {
    validateOptions(options)
    this.hashIterations = options.hashIterations ?? DEFAULT_HASH_ITERATIONS
    this.grants = grantsOf(options.accounts)
    try {
      this.#variant = parseVariant(options.variant ?? {})
    } catch (error) {
      throw new TypeError((error as Error).message)
    }
    for (const account of options.accounts) this.#accounts.set(account.username, newAccount(account.username, account.maxDevices))
  }

  /** The account named in a path; 404 when the emulator has none by that name. */
  accountOf (username: string): StoredAccount {
    const account = this.#accounts.get(username)
    if (account === undefined) throw new EmulatorHttpError(404, 'user not found')
    return account
  }

  /** How this server behaves where Thinger's documents are silent. */
  get variant (): ThingerVariant {
    return this.#variant
  }

  /** Throws a 400 naming what is wrong, and keeps the current variant. */
  setVariant (input: unknown): void {
    this.#variant = parseVariant(input)
  }

  record (call: RecordedCall): void {
    this.#recorded.push(call)
  }

  calls (): RecordedCall[] {
    return this.#recorded.map((call) => ({ ...call }))
  }

  clearCalls (): void {
    this.#recorded = []
  }

  reset (): void {
    for (const account of this.#accounts.values()) {
      account.devices.clear()
      account.properties.clear()
      account.deviceProjects.clear()
      for (const kind of CATALOG_KINDS) account.catalogs[kind].clear()
    }
    this.#recorded = []
    this.faults.clear()
  }

  checkLogin (username: string, deviceId: string, credential: string): LoginCheck {
    return checkLogin(this.#accounts.get(username), deviceId, credential)
  }

  device (username: string, deviceId: string): StoredDeviceView | undefined {
    const stored = this.#accounts.get(username)?.devices.get(deviceId)
    return stored === undefined ? undefined : copyView(stored.view)
  }

  devices (username: string): StoredDeviceView[] {
    return [...(this.#accounts.get(username)?.devices.values() ?? [])].map((stored) => copyView(stored.view))
  }

  resources (username: string): EmulatorResources {
    return snapshotAccount(this.#accounts.get(username) ?? newAccount(username))
  }

  seed (username: string, fixtures: EmulatorSeed): void {
    seedAccount(this.accountOf(username), fixtures)
  }
}

function validateOptions (options: ThingerEmulatorOptions): void {
  if (!Array.isArray(options.accounts)) throw new TypeError('accounts must be an array')
  const seenTokens = new Set<string>()
  const seenUsers = new Set<string>()
  for (const account of options.accounts) {
    if (!RESOURCE_ID_PATTERN.test(account.username)) throw new TypeError(`username '${account.username}' must match ${RESOURCE_ID_PATTERN.source}`)
    if (seenUsers.has(account.username)) throw new TypeError(`username '${account.username}' is listed twice`)
    seenUsers.add(account.username)
    if (account.maxDevices !== undefined && !(Number.isInteger(account.maxDevices) && account.maxDevices >= 0)) {
      throw new TypeError('maxDevices must be a non-negative integer')
    }
    validateTokens(account, seenTokens)
  }
  const iterations = options.hashIterations
  if (iterations !== undefined && !(Number.isInteger(iterations) && iterations >= 1)) {
    throw new TypeError('hashIterations must be a positive integer')
  }
}
