import { describe, expect, it } from 'vitest'
import { run } from './fakes.js'

const LOCAL_FLEETS = { FLEETS_FILE: 'local/fleets.yml', STAGE: 'prod', THINGER_USERNAME: 'acme' }

describe('Command: token-policy', () => {
  it('prints only the device actions for the default fleet of the settings, with no profile', async () => {
    // Act
    const result = await run(['token-policy', '--json'], { env: { FLEETS_FILE: '', STAGE: 'prod', THINGER_USERNAME: 'acme' } })

    // Assess
    expect(result.code).toBe(0)
    expect(JSON.parse(result.stdout)).toEqual({
      allow: { Device: { '*': ['CreateDevice', 'ReadDeviceStatus', 'UpdateDevice', 'ReadDeviceProperty', 'CreateDeviceProperty', 'UpdateDeviceProperty'] } },
    })
  })

  it('drops the record actions of a fleet without replay protection nor a profile', async () => {
    // Act
    const result = await run(['token-policy', '--json'], { env: { FLEETS_FILE: '', STAGE: 'prod', THINGER_USERNAME: 'acme', REPLAY_PROTECTION: 'false' } })

    // Assess
    expect(JSON.parse(result.stdout)).toEqual({ allow: { Device: { '*': ['CreateDevice', 'ReadDeviceStatus', 'UpdateDevice'] } } })
  })

  it('names the setting, not a stand-in account, when THINGER_USERNAME is not set', async () => {
    // Act
    const text = await run(['token-policy'], { env: { FLEETS_FILE: 'local/fleets.yml', STAGE: 'prod' } })

    // Assess
    expect(text.code).toBe(0)
    expect(text.stdout).not.toContain('not-used-by-this-command')
    expect(text.stdout).toContain('# Thinger.io token for the account of THINGER_USERNAME (not set here) at https://backend.thinger.io')
    expect(text.stdout).toContain('Add: a token for the account of THINGER_USERNAME (not set here); paste')
  })

  it('adds what a fleet profile needs, and explains each action in a checklist', async () => {
    // Act
    const result = await run(['token-policy', '--fleet', 'workshop'], { env: LOCAL_FLEETS })

    // Assess
    expect(result.code).toBe(0)
    const json = result.stdout.slice(result.stdout.indexOf('{'), result.stdout.indexOf('\n}\n') + 2)
    const allow = (JSON.parse(json) as { allow: Record<string, Record<string, string[]>> }).allow
    expect(allow.Bucket).toEqual({ '*': ['CreateBucket', 'ReadBucketConfig'] })
    expect(allow['*']?.['*']).toEqual(expect.arrayContaining(['ReadTypeConfig', 'CreateType', 'CloneDashboard', 'ReadDashboardConfig']))
    expect(Object.values(allow).flatMap((byId) => Object.values(byId).flat())).not.toContain('DeleteDevice')
    expect(result.stdout).toContain('ReadDeviceStatus      reads a device that exists already')
    expect(result.stdout).toContain('aws ssm put-parameter --name /thinger-provisioner/prod/thinger-token')
  })

  it('exits 2 naming the fleets there are for an unknown fleet', async () => {
    // Act
    const result = await run(['token-policy', '--fleet', 'nope'], { env: LOCAL_FLEETS })

    // Assess
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('no fleet "nope"')
    expect(result.stderr).toContain('fleets: default, workshop')
  })
})
