import { DEFAULT_HTTP_PORT, DEFAULT_LAMBDA_PORT, DEFAULT_SSM_PORT, DEFAULT_THINGER_PORT } from './defaults.js'
import { startLocalStack } from './stack.js'

// `npm start`: the whole local stack on embedded defaults, no AWS account needed.
const port = (name: string, fallback: number): number => (process.env[name] ? Number(process.env[name]) : fallback)

const stack = await startLocalStack({
  httpPort: port('HTTP_PORT', DEFAULT_HTTP_PORT),
  lambdaPort: port('LAMBDA_PORT', DEFAULT_LAMBDA_PORT),
  thingerPort: port('THINGER_EMULATOR_PORT', DEFAULT_THINGER_PORT),
  ssmPort: port('SSM_PORT', DEFAULT_SSM_PORT),
})

console.log(`
thinger-provisioner local stack is up
  provisioning endpoint  POST ${stack.url}/v1/provision
  Thinger.io emulator    ${stack.thinger.url}
  local SSM              ${stack.ssmEndpoint}

Provision a device (in another terminal):
  npm run device -- esp32_a1b2c3d4e5f6
  npm run device -- ws_kit0001 --fleet workshop --claim --meta site=lab_2   (claim mode, full profile)
Fleets: local/fleets.yml. Operators' command line: npx thinger-provisioner --help

Stop with Ctrl+C.
`)

let stopping = false
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return
    stopping = true
    void stack.close().then(() => process.exit(0))
  })
}
