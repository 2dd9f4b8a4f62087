// Access tokens and their permissions: which account a token belongs to and which actions it allows.
import { EmulatorHttpError } from './errors.js'
import { RESOURCE_ID_PATTERN } from './fields.js'
import type { EmulatorAccount, ThingerAction } from './types.js'

// A record, so that the compiler checks that every action is listed.
const ACTION_NAMES: Record<ThingerAction, true> = {
  ListDevices: true, ReadDeviceStatus: true, CreateDevice: true, UpdateDevice: true, DeleteDevice: true, UpdateDeviceProjects: true,
  ListDeviceProperties: true, ReadDeviceProperty: true, CreateDeviceProperty: true, UpdateDeviceProperty: true, DeleteDeviceProperty: true,
  ListBuckets: true, ReadBucketConfig: true, CreateBucket: true, UpdateBucket: true, DeleteBucket: true,
  ListGroups: true, ReadGroupConfig: true, CreateGroup: true, UpdateGroup: true, DeleteGroup: true,
  ListTypes: true, ReadTypeConfig: true, CreateType: true, UpdateType: true, DeleteType: true,
  ListProducts: true, ReadProductConfig: true, CreateProduct: true, UpdateProduct: true, DeleteProduct: true,
  ListProjects: true, ReadProjectConfig: true, CreateProject: true, UpdateProject: true, DeleteProject: true,
  ListDashboards: true, ReadDashboardConfig: true, CreateDashboard: true, UpdateDashboard: true, DeleteDashboard: true, CloneDashboard: true
}
/** Every action the emulator knows: what a token without an `allow` list may do. */
export const ALL_ACTIONS = Object.keys(ACTION_NAMES) as readonly ThingerAction[]

export interface TokenGrant {
  username: string
  allow: ReadonlySet<ThingerAction>
}

/** Checks the tokens of the configured accounts; throws a TypeError naming the first problem. */
export function validateTokens (account: EmulatorAccount, seenTokens: Set<string>): void {
  for (const grant of account.tokens) {
    if (typeof grant.token !== 'string' || grant.token === '') throw new TypeError('tokens must be non-empty strings')
    // A token identifies its account, so two accounts cannot share one.
    if (seenTokens.has(grant.token)) throw new TypeError('a token is listed twice')
    seenTokens.add(grant.token)
    for (const action of grant.allow ?? []) {
      if (!ALL_ACTIONS.includes(action)) throw new TypeError(`unknown action '${String(action)}'`)
    }
  }
}

/** The grants of every token of the given accounts, by token. */
export function grantsOf (accounts: readonly EmulatorAccount[]): Map<string, TokenGrant> {
  const grants = new Map<string, TokenGrant>()
  for (const account of accounts) {
    for (const grant of account.tokens) {
      grants.set(grant.token, { username: account.username, allow: new Set(grant.allow ?? ALL_ACTIONS) })
    }
  }
  return grants
}

/**
 * Lets a call through, or throws 401 (no or unknown token), 404 (a malformed user name, after the
 * 401) or 403 (a token of another account, or without the action).
 */
export function authorize (grants: ReadonlyMap<string, TokenGrant>, token: string | undefined, user: string, action: ThingerAction): void {
  const grant = token === undefined ? undefined : grants.get(token)
  if (grant === undefined) throw new EmulatorHttpError(401, 'unauthorized')
  // Malformed IDs answer 404 (after the 401): no such user or device can exist.
  if (!RESOURCE_ID_PATTERN.test(user)) throw new EmulatorHttpError(404, 'user not found')
  if (grant.username !== user || !grant.allow.has(action)) throw new EmulatorHttpError(403, 'forbidden')
}
