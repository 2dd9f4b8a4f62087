import { type Fleet, needsProvisioningRecord } from '../fleets/fleet.js'
import { CLONE_DASHBOARD_ACTION, DEVICE_ACTIONS, RESOURCE_ACTIONS, type ThingerAction } from './actions.js'

/** One action a token needs, and why (for the operator's checklist). */
export interface RequiredAction {
  action: ThingerAction
  reason: string
}

/** The `allow` object of a Thinger.io access token, as the console's token editor takes it. */
export interface TokenPolicy {
  allow: Record<string, Record<string, ThingerAction[]>>
}

// Only `Device` and `Bucket` are confirmed resource-type keys of `allow` (and `*`): the other
// actions go under `*`, where the explicit action list still grants nothing more.
const BUCKET_ACTIONS = new Set<ThingerAction>([RESOURCE_ACTIONS.buckets.read, RESOURCE_ACTIONS.buckets.create])
const DEVICE_KEY_ACTIONS = new Set<ThingerAction>(Object.values(DEVICE_ACTIONS))

/**
 * Every Thinger.io action the function can call for `fleet`, with the reason: the union of the
 * calls of a new device, a re-provisioned one, and a retry after any failure. Nothing more: the
 * function never deletes, and lists nothing.
 */
export function requiredActions(fleet: Pick<Fleet, 'profile' | 'reprovision' | 'replayProtection'>): RequiredAction[] {
  const needed = new Map<ThingerAction, string>()
  const add = (action: ThingerAction, reason: string) => {
    if (!needed.has(action)) needed.set(action, reason)
  }
  add(DEVICE_ACTIONS.create, 'creates each new device')
  add(DEVICE_ACTIONS.read, 'reads a device that exists already (a wiped device provisioning again, or a retry)')
  add(DEVICE_ACTIONS.update, 'gives an existing device its new credential')
  const profile = fleet.profile
  if (fleet.replayProtection || fleet.reprovision === 'reject') {
    add(DEVICE_ACTIONS.readProperty, 'reads the `provisioning` record of an existing device (replay protection, the reject policy)')
  }
  if (fleet.replayProtection || needsProvisioningRecord(fleet)) {
    add(DEVICE_ACTIONS.createProperty, 'writes the `provisioning` record')
    add(DEVICE_ACTIONS.updateProperty, 'updates the `provisioning` record of a device provisioned before')
  }
  if (profile.properties !== undefined && Object.keys(profile.properties).length > 0) {
    add(DEVICE_ACTIONS.createProperty, 'sets the profile\'s device properties')
    add(DEVICE_ACTIONS.updateProperty, 'sets a profile property that exists already')
  }
  const shared = [
    ['types', profile.assetType, 'asset type'],
    ['groups', profile.assetGroup, 'asset group'],
    ['products', profile.product, 'product'],
  ] as const
  for (const [kind, id, noun] of shared) {
    if (!id) continue
    add(RESOURCE_ACTIONS[kind].read, `checks that the ${noun} "${id}" exists`)
    add(RESOURCE_ACTIONS[kind].create, `creates the ${noun} "${id}" when it does not`)
  }
  if (profile.bucket) {
    add(RESOURCE_ACTIONS.buckets.create, 'creates each device\'s data bucket')
    add(RESOURCE_ACTIONS.buckets.read, 'checks a bucket that exists already (a retry)')
  }
  if (profile.dashboard) {
    add(CLONE_DASHBOARD_ACTION, `clones the dashboard template "${profile.dashboard.template}" for each device`)
    add(RESOURCE_ACTIONS.dashboards.read, 'checks a dashboard copy that exists already (a retry)')
  }
  if (profile.projects && profile.projects.length > 0) add(DEVICE_ACTIONS.setProjects, 'adds each device to the profile\'s projects')
  return [...needed].map(([action, reason]) => ({ action, reason }))
}

/** The union of {@link requiredActions} over `fleets`, in a stable order (first fleet first). */
export function requiredActionsOf(fleets: Iterable<Pick<Fleet, 'profile' | 'reprovision' | 'replayProtection'>>): RequiredAction[] {
  const union = new Map<ThingerAction, RequiredAction>()
  for (const fleet of fleets) for (const required of requiredActions(fleet)) if (!union.has(required.action)) union.set(required.action, required)
  return [...union.values()]
}

/** The token permissions granting exactly `actions` on every resource of the account. */
export function tokenPolicy(actions: Iterable<ThingerAction>): TokenPolicy {
  const allow: TokenPolicy['allow'] = {}
  for (const action of actions) {
    const key = DEVICE_KEY_ACTIONS.has(action) ? 'Device' : BUCKET_ACTIONS.has(action) ? 'Bucket' : '*'
    ;((allow[key] ??= {})['*'] ??= []).push(action)
  }
  return { allow }
}

/** The actions a policy grants, whatever resource-type key holds them. */
export function actionsOfPolicy(policy: TokenPolicy): ThingerAction[] {
  return Object.values(policy.allow).flatMap((byResource) => Object.values(byResource).flat())
}
