import { describe, expect, it } from 'vitest'
import { fleetOfDescription, markDescription, markLength } from '../../../lib/provisioning/fleet-mark.js'

describe('Function: markDescription / fleetOfDescription', () => {
  it.each([
    [undefined, 'default'],
    ['', 'workshop'],
    ['Bench kit at lab_2', 'workshop'],
    ['Kit (thinger-provisioner fleet other)', 'mine'],
  ])('reads back the fleet of a description made from %j', (text, fleet) => {
    const description = markDescription(text, fleet)
    expect(fleetOfDescription(description)).toBe(fleet)
    expect(description.length).toBeLessThanOrEqual((text?.length ?? 0) + markLength(fleet))
  })

  it.each([
    [undefined],
    ['Greenhouse sensor'],
    ['x thinger-provisioner fleet other'],
    ['(thinger-provisioner fleet other'],
    ['thinger-provisioner fleet other)'],
    ['thinger-provisioner fleet Other'],
  ])('finds no fleet in %j', (description) => {
    expect(fleetOfDescription(description)).toBeUndefined()
  })
})
