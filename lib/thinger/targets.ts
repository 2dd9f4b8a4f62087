import type { Fleet, ThingerTarget } from '../fleets/fleet.js'

/** Fleets that share one Thinger.io account and token, with that target. */
export interface TargetGroup {
  target: ThingerTarget
  fleets: Fleet[]
}

/** Groups fleets by the account, server and token they use, in the order they come. */
export function groupByTarget(fleets: Iterable<Fleet>): TargetGroup[] {
  const groups = new Map<string, TargetGroup>()
  for (const fleet of fleets) {
    const { apiUrl, username, tokenParam } = fleet.thinger
    const key = JSON.stringify([apiUrl, username, tokenParam])
    const group = groups.get(key)
    if (group === undefined) groups.set(key, { target: fleet.thinger, fleets: [fleet] })
    else group.fleets.push(fleet)
  }
  return [...groups.values()]
}
