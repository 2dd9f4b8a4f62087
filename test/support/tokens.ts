import type { ThingerAction } from '../../lib/thinger/actions.js'
import type { EmulatorToken } from '../../local/thinger-emulator.js'

/** The emulator token holding every action of a policy but `removed` ('none': all of them). */
export const tokenWithout = (removed: ThingerAction | 'none'): string => `test-token-without-${removed}`

/**
 * Tokens for an emulated account: `adminToken` with every action, one with exactly `actions`, and
 * one per action lacking only that one, named by {@link tokenWithout}.
 */
export function tokensLackingEach(actions: readonly ThingerAction[], adminToken: string): EmulatorToken[] {
  return [
    { token: adminToken },
    { token: tokenWithout('none'), allow: [...actions] },
    ...actions.map((removed) => ({ token: tokenWithout(removed), allow: actions.filter((action) => action !== removed) })),
  ]
}
