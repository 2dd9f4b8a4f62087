import { DEFAULT_HTTP_PORT, LOCAL_ANSWER_KEY_FILE } from './defaults.js'
import { LocalSettingError, PORT_SETTINGS, readPort } from './settings.js'
import { type LocalStack, startLocalStack } from './stack.js'

// `npm start`: the whole local stack on embedded defaults, no AWS account needed.
const EXIT_FAILURE = 1
const EXIT_USAGE = 2
const EXIT_INTERRUPTED = 130
const EXAMPLE_DEVICE = 'esp32_a1b2c3d4e5f6'

// serverless-offline runs in a process group of its own, which Ctrl+C does not reach: a signal
// during the start stops what was started so far, after it the running stack.
let stack: LocalStack | undefined
let stopping = false
const starting = new AbortController()
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stack === undefined) return starting.abort()
    if (stopping) return
    stopping = true
    void stack.close().then(() => process.exit(0))
  })
}

try {
  stack = await startLocalStack({
    signal: starting.signal,
    // The same setting tells `npm run device` where to find it.
    answerKeyFile: process.env.ANSWER_KEY_FILE || LOCAL_ANSWER_KEY_FILE,
    httpPort: readPort(PORT_SETTINGS.httpPort.name, PORT_SETTINGS.httpPort.fallback),
    lambdaPort: readPort(PORT_SETTINGS.lambdaPort.name, PORT_SETTINGS.lambdaPort.fallback),
    thingerPort: readPort(PORT_SETTINGS.thingerPort.name, PORT_SETTINGS.thingerPort.fallback),
    ssmPort: readPort(PORT_SETTINGS.ssmPort.name, PORT_SETTINGS.ssmPort.fallback),
  })
} catch (error) {
  if (starting.signal.aborted) process.exit(EXIT_INTERRUPTED)
  const usage = error instanceof LocalSettingError
  console.error(`npm start: ${usage ? '' : 'the local stack did not start: '}${(error as Error)?.message ?? String(error)}`)
  process.exit(usage ? EXIT_USAGE : EXIT_FAILURE)
}

// The player finds the emulator through the host in the answer; it only needs the HTTP port.
const httpPort = Number(new URL(stack.url).port)
const player = httpPort === DEFAULT_HTTP_PORT ? 'npm run device --' : `HTTP_PORT=${httpPort} npm run device --`
console.log(`
thinger-provisioner local stack is up
  provisioning endpoint  POST ${stack.url}/v1/provision
  Thinger.io emulator    ${stack.thinger.url}
  local SSM              ${stack.ssmEndpoint}
  answer public key      ${stack.answerPublicKey}
                         (new at each start, in ${process.env.ANSWER_KEY_FILE || LOCAL_ANSWER_KEY_FILE}, which npm run device pins; docs/protocol.md)

Provision a device (in another terminal):
  ${player} ${EXAMPLE_DEVICE}
  ${player} ws_kit0001 --fleet workshop --claim --meta site=lab_2   (claim mode, full profile)
  curl -s ${stack.thinger.url}/__emulator/resources/demo   (what the emulator now holds)
Fleets: local/fleets.yml. Operators' command line: npx thinger-provisioner --help

Stop with Ctrl+C.
`)
