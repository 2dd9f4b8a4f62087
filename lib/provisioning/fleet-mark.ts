// The fleet that created a device, written into the description of the create call itself: a
// new device still costs one Thinger.io call, and a device read later tells which fleet it is.
// The mark is always the end of the description, after anything a template (or a device's meta)
// put there, so a device cannot forge another fleet's mark.
const MARK_PREFIX = 'thinger-provisioner fleet '
const MARK_AT_END = /(?:^|\()thinger-provisioner fleet ([a-z0-9_-]{1,32})\)?$/

/** The description a device of `fleet` is created with: the profile's text (if any), then the fleet mark. */
export function markDescription(text: string | undefined, fleet: string): string {
  return text === undefined || text === '' ? `${MARK_PREFIX}${fleet}` : `${text} (${MARK_PREFIX}${fleet})`
}

/** The fleet named by the mark at the end of a device's description; undefined when it has none. */
export function fleetOfDescription(description: string | undefined): string | undefined {
  if (typeof description !== 'string') return undefined
  const match = MARK_AT_END.exec(description)
  if (match === null) return undefined
  // "(mark)" must close what it opened, and a bare mark must be the whole description.
  const whole = match[0]
  if (whole.startsWith('(') !== whole.endsWith(')')) return undefined
  if (!whole.startsWith('(') && match.index !== 0) return undefined
  return match[1]
}

/** How many characters the mark adds to a description of `fleet`, at most. */
export function markLength(fleet: string): number {
  return MARK_PREFIX.length + fleet.length + 3
}
