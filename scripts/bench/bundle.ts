import { execFile } from 'node:child_process'
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join, relative } from 'node:path'
import { promisify } from 'node:util'
import { gzipSync } from 'node:zlib'
import { build, type BuildOptions, type Plugin } from 'esbuild'

const HANDLER_ENTRY = 'functions/provision.ts'
const CONTAINER_WORKER_ENTRY = 'scripts/bench/container-worker.ts'
const LARGEST_INPUTS_SHOWN = 5
const PACKAGE_TIMEOUT_MS = 180_000
const run = promisify(execFile)
const require = createRequire(import.meta.url)
// The deployment's esbuild plugins (serverless.yml, custom.esbuild.plugins).
const DEPLOYED_PLUGINS = require('../../deploy/esbuild-plugins.cjs') as Plugin[]

// The same options as serverless.yml's custom.esbuild. The sections measure the package osls
// builds (packageHandler); this build gives the metafile (what the bytes are) and the variants,
// and is checked to come out byte for byte as the package's bundle.
const DEPLOYED_BUILD_OPTIONS: BuildOptions = {
  bundle: true,
  minify: true,
  sourcemap: false,
  target: 'node20',
  platform: 'node',
  format: 'esm',
  outExtension: { '.js': '.mjs' },
  mainFields: ['module', 'main'],
  external: [],
  plugins: DEPLOYED_PLUGINS,
  banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
  // serverless.yml compiles the fleets file in here; the benchmark measures a deployment without
  // one (the settings' single fleet, whose profile adds nothing).
  define: { 'process.env.THINGER_PROVISIONER_FLEETS': 'null' },
}

/** The bundled handler as it would be deployed, and what makes up its size. */
export interface HandlerBundle {
  path: string
  sizeBytes: number
  gzipBytes: number
  /** The packages (or the project's own code) that contribute most bytes to the bundle. */
  largestInputs: Array<{ name: string; bytes: number }>
}

/**
 * Bundles `functions/provision.ts` into `outDir` with the deployment's esbuild options. `outDir`
 * must be inside the project, so that an AWS SDK left external resolves from its node_modules.
 * The alternatives the cold-start section compares: `sdk: 'runtime'`, the AWS SDK left to the
 * Lambda runtime (what was deployed before); `sdk: 'full-chain'`, the SDK bundled with its whole
 * default credential chain. `fleets` compiles a fleets definition in instead of none.
 */
export async function buildHandlerBundle(
  projectDir: string,
  outDir: string,
  options: { sdk?: 'deployed' | 'runtime' | 'full-chain'; fleets?: unknown } = {},
): Promise<HandlerBundle> {
  mkdirSync(outDir, { recursive: true })
  const result = await build({
    ...DEPLOYED_BUILD_OPTIONS,
    ...(options.sdk === 'runtime' ? { external: ['@aws-sdk/*'], plugins: [] } : options.sdk === 'full-chain' ? { plugins: [] } : {}),
    // A validated fleets file compiled in, as serverless.yml does (the X.509 section needs one).
    ...(options.fleets === undefined ? {} : { define: { 'process.env.THINGER_PROVISIONER_FLEETS': JSON.stringify(options.fleets) } }),
    absWorkingDir: projectDir,
    entryPoints: [HANDLER_ENTRY],
    outdir: relative(projectDir, outDir),
    metafile: true,
    logLevel: 'error',
  })
  const path = join(outDir, 'provision.mjs')
  const output = result.metafile.outputs[relative(projectDir, path)]
  if (output === undefined) throw new Error(`esbuild wrote no ${path}`)

  const bytesByInput = new Map<string, number>()
  for (const [input, { bytesInOutput }] of Object.entries(output.inputs)) {
    const name = inputName(input)
    bytesByInput.set(name, (bytesByInput.get(name) ?? 0) + bytesInOutput)
  }
  return {
    path,
    sizeBytes: statSync(path).size,
    gzipBytes: gzipSync(readFileSync(path)).length,
    largestInputs: [...bytesByInput]
      .map(([name, bytes]) => ({ name, bytes }))
      .sort((a, b) => b.bytes - a.bytes)
      .slice(0, LARGEST_INPUTS_SHOWN),
  }
}

/**
 * Builds the boot storm's container thread (`scripts/bench/container-worker.ts`) into plain
 * JavaScript, so that a hundred threads do not each start the TypeScript loader.
 */
export async function buildContainerWorker(projectDir: string, outDir: string): Promise<string> {
  mkdirSync(outDir, { recursive: true })
  const path = join(outDir, 'storm-container.mjs')
  await build({
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    absWorkingDir: projectDir,
    entryPoints: [CONTAINER_WORKER_ENTRY],
    outfile: relative(projectDir, path),
    logLevel: 'error',
  })
  return path
}

function inputName(input: string): string {
  const match = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(input)
  return match?.[1] ?? 'project code (functions/, lib/)'
}

/**
 * `osls package` as an operator runs it (no AWS credentials, no fleets file unless `fleetsFile`),
 * its bundle unzipped to `outDir/provision.mjs`: the very file the deployment uploads.
 */
export async function packageHandler(projectDir: string, outDir: string, options: { fleetsFile?: string } = {}): Promise<{ path: string; sizeBytes: number; gzipBytes: number; packageMs: number }> {
  mkdirSync(outDir, { recursive: true })
  const packageDir = join(outDir, 'package')
  const env: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) {
    // The shell's settings would change the template only, never the bundle; AWS credentials are not needed.
    if (!/^(AWS_|THINGER_|FLEET|DENY_LIST|ESBUILD_)/.test(name)) env[name] = value
  }
  const started = performance.now()
  await run(process.execPath, [require.resolve('osls/bin/serverless.js'), 'package', '--stage', 'bench', '--region', 'us-east-1', '--package', packageDir], {
    cwd: projectDir,
    env: {
      ...env,
      AWS_SHARED_CREDENTIALS_FILE: '/nonexistent',
      AWS_CONFIG_FILE: '/nonexistent',
      SLS_TELEMETRY_DISABLED: '1',
      SLS_NOTIFICATIONS_MODE: 'off',
      FORCE_COLOR: '0',
      THINGER_USERNAME: 'bench',
      ...(options.fleetsFile === undefined ? {} : { FLEETS_FILE: options.fleetsFile }),
      // Not .esbuild/ itself: a developer's `osls offline` may be using it.
      ESBUILD_WORK_FOLDER: relative(projectDir, join(outDir, 'esbuild')),
    },
    timeout: PACKAGE_TIMEOUT_MS,
  })
  const packageMs = performance.now() - started
  const { stdout } = await run('unzip', ['-p', join(packageDir, 'thinger-provisioner.zip'), 'functions/provision.mjs'], { encoding: 'buffer', maxBuffer: 50_000_000 })
  const path = join(outDir, 'provision.mjs')
  writeFileSync(path, stdout)
  return { path, sizeBytes: stdout.length, gzipBytes: gzipSync(stdout).length, packageMs }
}
