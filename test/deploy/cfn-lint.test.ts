import { spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { PACKAGE_TIMEOUT_MS, packageService } from '../support/package.js'

const cfnLintInstalled = spawnSync('cfn-lint', ['--version'], { stdio: 'ignore' }).status === 0

if (!cfnLintInstalled) {
  if (process.env.REQUIRE_CFN_LINT === '1') throw new Error('cfn-lint is required (REQUIRE_CFN_LINT=1) but `cfn-lint --version` fails')
  console.warn('SKIPPED: linting the CloudFormation templates needs cfn-lint, which is not installed here')
}

// The shapes of template an operator can produce: the defaults, a fleets file with every optional
// setting, the region given through the environment instead of --region, each monitoring choice.
const CONFIGURATIONS: { name: string; env: Record<string, string>; args?: string[] }[] = [
  { name: 'the defaults', env: { THINGER_USERNAME: 'acme' } },
  {
    name: 'a fleets file, every optional setting, alarms to an existing topic',
    env: {
      THINGER_USERNAME: 'acme',
      FLEETS_FILE: 'local/fleets.yml',
      RESERVED_CONCURRENCY: '20',
      API_RATE_LIMIT: '50',
      API_BURST_LIMIT: '60',
      LOG_LEVEL: 'DEBUG',
      MONITORING: 'on',
      ALARM_TOPIC_ARN: 'arn:aws:sns:eu-west-1:123456789012:ops',
    },
  },
  { name: 'the region from AWS_REGION, alarms to a new topic with an e-mail subscription', env: { THINGER_USERNAME: 'acme', AWS_REGION: 'ap-southeast-2', MONITORING: 'on', ALARM_EMAIL: 'ops@example.net' }, args: ['--stage', 'dev'] },
  { name: 'access logs alone', env: { THINGER_USERNAME: 'acme', API_ACCESS_LOGS: 'on' } },
]

describe.skipIf(!cfnLintInstalled)('Deployment: the templates lint clean (cfn-lint: no error, no warning)', () => {
  const outDirs: string[] = []

  afterAll(() => {
    for (const dir of outDirs) rmSync(dir, { recursive: true, force: true })
  })

  it.each(CONFIGURATIONS)('with $name', async ({ env, args }) => {
    // Prepare
    const outDir = mkdtempSync(join(tmpdir(), 'thinger-provisioner-lint-'))
    outDirs.push(outDir)
    await packageService(outDir, env, args)
    const templates = readdirSync(outDir).filter((file) => file.startsWith('cloudformation-template-')).map((file) => join(outDir, file))

    // Act
    const lint = spawnSync('cfn-lint', ['--format', 'parseable', '--', ...templates], { encoding: 'utf8' })

    // Assess
    expect(templates).toHaveLength(2)
    expect(lint.stdout + lint.stderr).toBe('')
    expect(lint.status).toBe(0)
  }, PACKAGE_TIMEOUT_MS)
})
