import { afterAll, beforeAll, describe, inject } from 'vitest'
import { NAMED_VARIANTS } from '../../local/thinger-emulator.js'

/** The named Thinger.io behaviours (local/thinger-emulator/variants.ts); each switch takes each of its values in one of them. */
export const VARIANT_NAMES = Object.keys(NAMED_VARIANTS)

async function switchVariant(name: string): Promise<void> {
  const response = await fetch(`${inject('thingerUrl')}/__emulator/variant`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(name),
  })
  if (response.status !== 200) throw new Error(`the emulator refused variant ${name}: ${await response.text()}`)
}

/**
 * Runs a suite once per Thinger.io variant against the one shared emulator of the e2e stack:
 * the files run one at a time, so each pass switches it and leaves it documented.
 */
export function describeEachVariant(title: string, suite: (variant: string) => void): void {
  describe.each(VARIANT_NAMES)(`${title} [Thinger variant %s]`, (variant) => {
    beforeAll(() => switchVariant(variant))
    afterAll(() => switchVariant('documented'))
    suite(variant)
  })
}
