import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { run } from './fakes.js'

const COMMANDS: Array<[string[], string[]]> = [
  [[], ['fleet-key', 'keys', 'sign', 'revoke', 'unrevoke', 'status', 'AWS_ENDPOINT_URL_SSM', 'Exit codes']],
  [['fleet-key'], ['create']],
  [['fleet-key', 'create'], ['--fleet', '--key-version', '--bytes', '--kms-key-id', '--print']],
  [['keys'], ['derive']],
  [['keys', 'derive'], ['--fleet', '--device', '--csv', '--out', '--key-version', '--fleet-key-file', '--force', '--no-progress']],
  [['sign'], ['--device', '--device-key', '--device-key-file', '--timestamp', '--fleet', '--key-version', '--meta']],
  [['revoke'], ['--fleet', '--device', '--key-version', '--delete', '--force', '--token-param', 'SSM_CACHE_SECONDS']],
  [['unrevoke'], ['--fleet', '--device', '--key-version', '--token-param']],
  [['status'], ['--fleet', '--device', '--json', '--token-param']],
]

describe('Command line: --help', () => {
  it.each(COMMANDS)('%j --help exits 0 and names every option', async (command, names) => {
    // Act
    const result = await run([...command, '--help'])

    // Assess
    expect(result.code).toBe(0)
    expect(result.stdout).toContain(`Usage: thinger-provisioner ${command.join(' ')}`.trimEnd())
    for (const name of names) expect(result.stdout).toContain(name)
    expect(result.stderr).toBe('')
  })

  it('exits 2 with the usage for no command or an unknown one', async () => {
    // Act
    const none = await run([])
    const unknown = await run(['revok'])

    // Assess
    expect(none.code).toBe(2)
    expect(none.stderr).toContain('Usage: thinger-provisioner')
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain("unknown command 'revok'")
    expect(unknown.stderr).toContain('(Did you mean revoke?)')
  })

  it('runs as the package bin, as `npx thinger-provisioner` does', () => {
    // Act
    const result = spawnSync(process.execPath, ['bin/thinger-provisioner.mjs', 'keys', 'derive', '--help'], { encoding: 'utf8' })

    // Assess
    expect(result.status).toBe(0)
    expect(result.stdout).toContain('Usage: thinger-provisioner keys derive [options]')
  })
})
