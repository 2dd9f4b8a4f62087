import { describe, expect, it } from 'vitest'
import { ConfigError } from '../../../lib/errors.js'
import type { Fleet } from '../../../lib/fleets/fleet.js'
import { fleetOfDescription } from '../../../lib/provisioning/fleet-mark.js'
import { dashboardDescription, planProvisioning } from '../../../lib/provisioning/plan.js'
import { captureError } from '../capture-error.js'

const fleet = (overrides: Partial<Fleet> = {}): Fleet => ({
  name: 'kits',
  proof: ['claim'],
  claimParam: '/c',
  denyListParam: '/d',
  replayProtection: true,
  devicePattern: /^(?:.*)$/,
  reprovision: 'reject',
  thinger: { apiUrl: 'https://backend.thinger.io', username: 'demo', tokenParam: '/t', deviceHost: 'backend.thinger.io' },
  meta: { site: {}, owner: { default: 'nobody' } },
  profile: { type: 'Generic', name: 'Kit {device} of {meta.owner}', description: 'At {meta.site}', dashboard: { template: 't', id: '{device}_dash' } },
  ...overrides,
})

describe('Function: planProvisioning', () => {
  it('fills texts from meta and declared defaults, and marks the device with its fleet in the create body', () => {
    // Act
    const plan = planProvisioning(fleet(), 'kit_1', { site: 'lab' }, true)

    // Assess
    expect(plan.device).toEqual({ device: 'kit_1', type: 'Generic', name: 'Kit kit_1 of nobody', description: 'At lab (thinger-provisioner fleet kits)' })
    expect(fleetOfDescription(plan.device.description)).toBe('kits')
    expect(plan.dashboard).toEqual({ template: 't', dashboard: 'kit_1_dash', name: 'kit_1', description: dashboardDescription('kit_1') })
  })

  it('marks a device of an empty profile too, at no extra call (the create body)', () => {
    const plan = planProvisioning(fleet({ profile: { type: 'Generic' } }), 'kit_1', {}, false)
    expect(plan.device).toEqual({ device: 'kit_1', type: 'Generic', description: 'thinger-provisioner fleet kits' })
  })

  it('answers invalid_request, never an empty string, when a text needs a meta key the request lacks', () => {
    expect(captureError(() => planProvisioning(fleet(), 'kit_1', {}, true))).toMatchObject({ code: 'invalid_request', message: '"meta" must have "site": this fleet\'s device description uses it' })
  })

  it('refuses an ID template that uses meta, whatever handed it in', () => {
    const error = captureError(() => planProvisioning(fleet({ profile: { type: 'Generic', dashboard: { template: 't', id: '{meta.site}' } } }), 'kit_1', { site: 'other_dash' }, true))
    expect(error).toBeInstanceOf(ConfigError)
  })
})
