#!/usr/bin/env node
// The package's command line (`npx thinger-provisioner --help`). The commands are TypeScript in
// cli/, sharing lib/ with the function; tsx compiles them on the fly, so there is no build step.
import { tsImport } from 'tsx/esm/api'

// The AWS SDK warns on every run under Node 20 that its releases after January 2027 will need
// Node 22: eight lines on stderr that are no news to an operator (engines in package.json says so).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'

const { runCli } = await tsImport('../cli/main.ts', import.meta.url)
process.exitCode = await runCli(process.argv.slice(2))
