import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { freePort } from '../support/ports.js'
import { run } from './fakes.js'

const COMMANDS: Array<[string[], string[]]> = [
  [[], ['fleet-key', 'answer-key', 'keys', 'sign', 'revoke', 'unrevoke', 'status', 'AWS_ENDPOINT_URL_SSM', 'Exit codes']],
  [['fleet-key'], ['create']],
  [['fleet-key', 'create'], ['--fleet', '--key-version', '--bytes', '--kms-key-id', '--print']],
  [['answer-key'], ['create', 'show']],
  [['answer-key', 'create'], ['--kms-key-id', 'ANSWER_KEY_PARAM', 'never replaced']],
  [['answer-key', 'show'], ['--format', 'base64', 'hex', 'c']],
  [['open'], ['--request', '--answer', '--device-key', '--answer-key', '--no-answer-check']],
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

  it.each([
    [['fleet-key', 'rotate', '--help'], 'rotate', 'create'],
    [['keys', 'deriv', '-h'], 'deriv', 'derive'],
    [['--help', 'revok'], 'revok', 'revoke'],
  ])('%j exits 2 naming the unknown command instead of showing the parent\'s help', async (argv, unknown, meant) => {
    // Act
    const result = await run(argv)

    // Assess
    expect(result.code).toBe(2)
    expect(result.stdout).toBe('')
    expect(result.stderr).toContain(`unknown command '${unknown}'`)
    expect(result.stderr).toContain(`(Did you mean ${meant}?)`)
  })

  it('runs as the package bin, as `npx thinger-provisioner` does', () => {
    // Act
    const result = spawnSync(process.execPath, ['bin/thinger-provisioner.mjs', 'keys', 'derive', '--help'], { encoding: 'utf8' })

    // Assess
    expect(result.status).toBe(0)
    expect(result.stdout).toContain('Usage: thinger-provisioner keys derive [options]')
  })

  it('prints one line and no AWS SDK notice when the SSM endpoint does not answer', async () => {
    // Prepare
    const env = { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: undefined, AWS_ENDPOINT_URL_SSM: `http://127.0.0.1:${await freePort()}`, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'local', AWS_SECRET_ACCESS_KEY: 'local', THINGER_USERNAME: 'demo', STAGE: 'local' }

    // Act
    const result = spawnSync(process.execPath, ['bin/thinger-provisioner.mjs', 'status', '--device', 'dev_1'], { encoding: 'utf8', env })

    // Assess
    expect(result.status).toBe(1)
    expect(result.stderr).toMatch(/^thinger-provisioner: ssm:GetParameter on \S+ failed with Error: connect ECONNREFUSED [\d.:]+ \[aws_error\]\n$/)
  })
})
