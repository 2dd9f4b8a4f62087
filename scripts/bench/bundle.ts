import { mkdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { gzipSync } from 'node:zlib'
import { build, type BuildOptions } from 'esbuild'

const HANDLER_ENTRY = 'functions/provision.ts'
const LARGEST_INPUTS_SHOWN = 5

// The same options as serverless.yml's custom.esbuild, so the size and load time measured are the deployed artefact's.
const DEPLOYED_BUILD_OPTIONS: BuildOptions = {
  bundle: true,
  minify: true,
  sourcemap: false,
  target: 'node20',
  platform: 'node',
  format: 'esm',
  outExtension: { '.js': '.mjs' },
  mainFields: ['module', 'main'],
  external: ['@aws-sdk/*'],
  banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
  // serverless.yml compiles the fleets file in here; the benchmark measures a deployment without
  // one (the settings' single fleet, whose profile adds nothing), whatever fleets.yml lies around.
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
 * must be inside the project, so the AWS SDK left external resolves from its node_modules.
 * `sdk: 'bundled'` builds the alternative the cold-start section compares: the SSM client inside
 * the bundle (tree-shaken, minified) instead of the runtime's copy. `fleets` compiles a fleets
 * definition in instead of none.
 */
export async function buildHandlerBundle(
  projectDir: string,
  outDir: string,
  options: { sdk?: 'external' | 'bundled'; fleets?: unknown } = {},
): Promise<HandlerBundle> {
  mkdirSync(outDir, { recursive: true })
  const result = await build({
    ...DEPLOYED_BUILD_OPTIONS,
    ...(options.sdk === 'bundled' ? { external: [] } : {}),
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

function inputName(input: string): string {
  const match = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(input)
  return match?.[1] ?? 'project code (functions/, lib/)'
}
