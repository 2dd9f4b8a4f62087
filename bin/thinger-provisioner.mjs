#!/usr/bin/env node
// The package's command line (`npx thinger-provisioner --help`). The commands are TypeScript in
// cli/, sharing lib/ with the function; tsx compiles them on the fly, so there is no build step.
import { tsImport } from 'tsx/esm/api'

const { runCli } = await tsImport('../cli/main.ts', import.meta.url)
process.exitCode = await runCli(process.argv.slice(2))
