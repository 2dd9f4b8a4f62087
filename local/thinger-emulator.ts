// Thinger.io's REST API, emulated for `npm start` and the tests. The emulator lives in
// thinger-emulator/, one file per thing it emulates (devices, properties, account resources,
// tokens, faults, admin routes) around one router; this file is its public face and its CLI:
//   tsx local/thinger-emulator.ts --user NAME --token TOKEN [--port 8787]
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { startThingerEmulator } from './thinger-emulator/server.js'

export type * from './thinger-emulator/types.js'
export { DOCUMENTED_VARIANT, NAMED_VARIANTS } from './thinger-emulator/variants.js'

const DEFAULT_HOST = '127.0.0.1'
const DEFAULT_CLI_PORT = 8787
const USAGE = 'usage: tsx local/thinger-emulator.ts --user NAME --token TOKEN [--port 8787] [--host 127.0.0.1] [--max-devices N] [--variant documented|conflict-iso|conflict-no-created]'

async function runFromCommandLine (args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      port: { type: 'string', default: String(DEFAULT_CLI_PORT) },
      host: { type: 'string', default: DEFAULT_HOST },
      user: { type: 'string' },
      token: { type: 'string' },
      'max-devices': { type: 'string' },
      variant: { type: 'string' }
    }
  })
  if (values.user === undefined || values.token === undefined) throw new TypeError(USAGE)
  const port = Number(values.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new TypeError(`invalid port '${values.port}'\n${USAGE}`)
  const maxDevices = values['max-devices'] === undefined ? undefined : Number(values['max-devices'])
  const emulator = await startThingerEmulator({
    accounts: [{ username: values.user, tokens: [{ token: values.token }], ...(maxDevices === undefined ? {} : { maxDevices }) }],
    port,
    host: values.host,
    ...(values.variant === undefined ? {} : { variant: values.variant })
  })
  console.log(emulator.url)
  const stop = (): void => {
    void emulator.close()
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runFromCommandLine(process.argv.slice(2)).catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error)
    process.exit(1)
  })
}

export { startThingerEmulator }