import { DEFAULT_HTTP_PORT, LOCAL_ANSWER_KEY_FILE, LOCAL_FLEETS_FILE } from './defaults.js'
import { LocalSettingError, PORT_SETTINGS, readPort } from './settings.js'
import { type LocalStack, startLocalStack } from './stack.js'

// `npm start`: the whole local stack on embedded defaults, no AWS account needed.
const EXIT_FAILURE = 1
const EXIT_USAGE = 2
const EXIT_INTERRUPTED = 130
const EXAMPLE_DEVICE = 'esp32_a1b2c3d4e5f6'

// serverless-offline runs in a session of its own, which neither Ctrl+C nor closing the terminal
// reaches: every way this program is told to stop (Ctrl+C, closing the terminal, `kill`, the end of
// `npm start` above it) stops what was started so far during the start, after it the running stack.
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const
const PARENT_POLL_MS = 500
let stack: LocalStack | undefined
let stopping = false
const starting = new AbortController()
function stop(): void {
  if (stack === undefined) return starting.abort()
  if (stopping) return
  stopping = true
  void stack.close().then(() => process.exit(0))
}
for (const signal of STOP_SIGNALS) process.on(signal, stop)
// A closed terminal fails every later write: the stack still stops cleanly.
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined)
// `kill <pid of npm start>` ends npm and its shell but no signal reaches this process: it notices
// that its parent is gone (Node's process.ppid does not change, so ask whether that process lives).
const parentPid = process.ppid
setInterval(() => {
  if (!isAlive(parentPid)) stop()
}, PARENT_POLL_MS).unref()

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
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
    // Like every other setting, the fleets file comes from the environment (default local/fleets.yml).
    ...(process.env.FLEETS_FILE ? { fleetsFile: process.env.FLEETS_FILE } : {}),
  })
} catch (error) {
  if (starting.signal.aborted) process.exit(EXIT_INTERRUPTED)
  const usage = error instanceof LocalSettingError
  console.error(`npm start: ${usage ? '' : 'the local stack did not start: '}${(error as Error)?.message ?? String(error)}`)
  process.exit(usage ? EXIT_USAGE : EXIT_FAILURE)
}

// The player finds the emulator through the host in the answer; it only needs the HTTP port.
const httpPort = Number(new URL(stack.url).port)
// A fleets file of one's own names parameters the local SSM was not seeded with: say which, and how to put them.
const unseeded =
  stack.unseededParameters.length === 0
    ? ''
    : `The local SSM holds none of ${stack.unseededParameters.join(', ')}: devices of the fleets that need them get 500 until you put them:
  aws ssm put-parameter --endpoint-url ${stack.ssmEndpoint} --region us-east-1 --type SecureString --name <name> --value <value>
`
const player = httpPort === DEFAULT_HTTP_PORT ? 'npm run device --' : `HTTP_PORT=${httpPort} npm run device --`
// The player knows the secrets of local/fleets.yml only; another fleets file's devices bring their own.
const examples =
  stack.fleetsFile === LOCAL_FLEETS_FILE
    ? `  ${player} ${EXAMPLE_DEVICE}
  ${player} ws_kit0001 --fleet workshop --claim --meta site=lab_2   (claim mode, full profile)
  ${player} x5_kit0001 --fleet factory   (X.509: a certificate of the local dev CA)`
    : `  ${player} <deviceId> --fleet <name> and --fleet-key, --claim-secret or --cert/--key (--help)`
console.log(`
thinger-provisioner local stack is up
  provisioning endpoint  POST ${stack.url}/v1/provision
  Thinger.io emulator    ${stack.thinger.url}
  local SSM              ${stack.ssmEndpoint}
  answer public key      ${stack.answerPublicKey}
                         (new at each start, in ${process.env.ANSWER_KEY_FILE || LOCAL_ANSWER_KEY_FILE}, which npm run device pins; docs/protocol.md)

Provision a device (in another terminal):
${examples}
  curl -s ${stack.thinger.url}/__emulator/resources/demo   (what the emulator now holds)
Fleets: ${stack.fleetsFile ?? 'none (one fleet from the settings)'}. Operators' command line: npx thinger-provisioner --help
${unseeded}
Stop with Ctrl+C (or close the terminal, or kill the npm start process): the whole stack stops.
`)
