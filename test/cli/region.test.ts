import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import { regionOf } from '../../cli/region.js'
import { startLocalSsm } from '../../local/ssm-server.js'
import { runCliProcess } from '../support/moto.js'

describe('Command line: the AWS region', () => {
  it.each([
    [{ AWS_REGION: 'eu-west-1' }, 'eu-west-1'],
    [{ AWS_DEFAULT_REGION: 'eu-central-1' }, 'eu-central-1'],
    [{ AWS_REGION: 'eu-west-1', AWS_DEFAULT_REGION: 'eu-central-1' }, 'eu-west-1'],
    [{}, 'us-east-1'],
  ])('is found as the deploy finds it: %o gives %s', (env, region) => {
    // Act, Assess
    expect(regionOf(env)).toBe(region)
  })

  it('runs a command with no region set anywhere, as the README says (us-east-1), instead of stopping', async () => {
    // Prepare: no AWS_REGION, and a home without an AWS config file
    const ssm = await startLocalSsm()
    onTestFinished(() => ssm.close())
    const home = mkdtempSync(join(tmpdir(), 'home-'))
    onTestFinished(() => rmSync(home, { recursive: true, force: true }))
    const env = {
      PATH: process.env.PATH,
      HOME: home,
      NODE_NO_WARNINGS: '1',
      STAGE: 'region-test',
      FLEETS_FILE: '',
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
      AWS_ENDPOINT_URL_SSM: ssm.url,
    }

    // Act
    const run = await runCliProcess(env, ['fleet-key', 'create'])

    // Assess
    expect(run.stderr).not.toContain('AWS_REGION')
    expect(run.code).toBe(0)
  })
})
