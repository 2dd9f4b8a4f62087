import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)
const osls = createRequire(import.meta.url).resolve('osls/bin/serverless.js')
export const PACKAGE_TIMEOUT_MS = 120_000

/** The settings of the shell, without AWS credentials and without any setting of the README's table, so only `env` counts. */
export function cleanEnvironment(): NodeJS.ProcessEnv {
  const clean: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (/^(AWS_|THINGER_|FLEET|DENY_LIST|DEVICE_ID|REPLAY|SEALING|CLOCK_SKEW|SSM_CACHE|LOG_LEVEL|API_|RESERVED_|ALARM|MONITORING|ACCESS_LOG)/.test(name)) continue
    clean[name] = value
  }
  return clean
}

/** `npx osls package` as an operator runs it before deploying: no AWS credentials, no network. */
export async function packageService(
  outDir: string,
  env: Record<string, string>,
  args: string[] = ['--stage', 'prod', '--region', 'eu-west-1'],
): Promise<{ template: any; stdout: string; stderr: string }> {
  const { stdout, stderr } = await run(process.execPath, [osls, 'package', ...args, '--package', outDir], {
    cwd: process.cwd(),
    env: {
      ...cleanEnvironment(),
      AWS_SHARED_CREDENTIALS_FILE: '/nonexistent',
      AWS_CONFIG_FILE: '/nonexistent',
      SLS_TELEMETRY_DISABLED: '1',
      SLS_NOTIFICATIONS_MODE: 'off',
      FORCE_COLOR: '0',
      ESBUILD_WORK_FOLDER: `${outDir}-build`.replace(`${tmpdir()}/`, '.esbuild/'),
      ...env,
    },
    timeout: PACKAGE_TIMEOUT_MS,
  })
  return { template: JSON.parse(readFileSync(join(outDir, 'cloudformation-template-update-stack.json'), 'utf8')), stdout, stderr }
}

/** The bundled handler inside the package's zip. */
export async function readBundle(outDir: string): Promise<string> {
  const { stdout } = await run('unzip', ['-p', join(outDir, 'thinger-provisioner.zip'), 'functions/provision.mjs'], { maxBuffer: 20_000_000 })
  return stdout
}
