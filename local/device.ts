import { parseArgs } from 'node:util'
import { decodeFleetKey, deriveDeviceKey, signRequest } from '../lib/attestation/keys.js'
import { deriveClaimSealKey, deriveHmacSealKey, openSealed, type SealKey } from '../lib/attestation/seal.js'
import { DEFAULT_HTTP_PORT, DEFAULT_THINGER_PORT, LOCAL_FLEET_KEY, LOCAL_USERNAME, LOCAL_WORKSHOP_CLAIM_SECRET, LOCAL_WORKSHOP_FLEET_KEY } from './defaults.js'

// The local stack's fleet keys, so `--fleet workshop` needs nothing else.
const LOCAL_FLEET_KEYS: Record<string, string> = { default: LOCAL_FLEET_KEY, workshop: LOCAL_WORKSHOP_FLEET_KEY }

const USAGE = `Usage: npm run device -- <deviceId> [options]

Plays a device: derives its key, signs a provisioning request, sends it, prints the answer and,
against the local stack, proves the returned credential logs in to the Thinger.io emulator.

Options:
  --url URL            provisioning service (default http://127.0.0.1:${DEFAULT_HTTP_PORT})
  --fleet NAME         the fleet to join (default: the service's default fleet)
  --claim              prove membership with the fleet's claim secret instead of a device key
  --claim-secret S     the claim secret (default: the local workshop fleet's development secret)
  --meta KEY=VALUE     a meta value for the fleet's profile templates (repeatable)
  --device-key KEY     the device's own key, base64 (default: derived from --fleet-key)
  --fleet-key KEY      fleet key, base64 (default: the local stack's development key of --fleet)
  --emulator URL       Thinger.io emulator for the login check (default http://127.0.0.1:${DEFAULT_THINGER_PORT})
  --no-login-check     skip the login check (for a deployed service against real Thinger.io)
  --timestamp N        sign this Unix time instead of the clock's (to try clock_skew)
  --text               ask for the text response (Accept: text/plain) that small firmware parses
  --unsealed           protocol v1: the credential comes in clear (default: v2, sealed to the
                       device's key and opened here, docs/protocol.md)
  -h, --help           this help`

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: 'string', default: `http://127.0.0.1:${DEFAULT_HTTP_PORT}` },
    fleet: { type: 'string' },
    claim: { type: 'boolean', default: false },
    'claim-secret': { type: 'string' },
    meta: { type: 'string', multiple: true, default: [] },
    'device-key': { type: 'string' },
    'fleet-key': { type: 'string' },
    emulator: { type: 'string', default: `http://127.0.0.1:${DEFAULT_THINGER_PORT}` },
    'no-login-check': { type: 'boolean', default: false },
    timestamp: { type: 'string' },
    text: { type: 'boolean', default: false },
    unsealed: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
})

const device = positionals[0]
if (values.help || device === undefined) {
  console.log(USAGE)
  process.exit(values.help ? 0 : 2)
}

const claim = values.claim || values['claim-secret'] ? (values['claim-secret'] ?? LOCAL_WORKSHOP_CLAIM_SECRET) : undefined
const fleetKey = values['fleet-key'] ?? LOCAL_FLEET_KEYS[values.fleet ?? 'default'] ?? LOCAL_FLEET_KEY
const deviceKey = values['device-key'] ? Buffer.from(values['device-key'], 'base64') : deriveDeviceKey(decodeFleetKey(fleetKey, '--fleet-key'), device)
const meta = Object.fromEntries(values.meta.map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]))
const endpoint = `${values.url.replace(/\/+$/, '')}/v1/provision`

const version = values.unsealed ? 1 : 2
let sealKey: SealKey | undefined

async function provision(timestamp: number): Promise<Response> {
  const proof = claim !== undefined ? { claim } : { timestamp, signature: signRequest(deviceKey, device!, timestamp, version) }
  if (version === 2) sealKey = claim !== undefined ? deriveClaimSealKey(claim, device!) : deriveHmacSealKey(deviceKey, device!, timestamp)
  const body = JSON.stringify({
    device,
    ...proof,
    ...(version === 2 ? { version } : {}),
    ...(values.fleet ? { fleet: values.fleet } : {}),
    ...(values.meta.length > 0 ? { meta } : {}),
  })
  return fetch(endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: values.text ? 'text/plain' : 'application/json' },
    body,
  })
}

let response = await provision(values.timestamp ? Number(values.timestamp) : Math.floor(Date.now() / 1000))
let text = await response.text()
// What firmware does (docs/firmware.md): on clock_skew, or replayed with the server's time, sign
// again with that time; on replayed with retry_after (a device created seconds ago), wait and sign
// again. Twice at most.
for (let retries = 0; retries < 2 && response.status === 401; retries++) {
  const field = (name: string, jsonName: string): string | number | undefined =>
    values.text ? new RegExp(`^${name}=(\\S+)$`, 'm').exec(text)?.[1] : (JSON.parse(text) as { error: Record<string, string | number> }).error[jsonName]
  const code = field('error', 'code')
  const serverTime = Number(field('server_time', 'serverTime')) || undefined
  const retryAfter = Number(field('retry_after', 'retryAfter')) || undefined
  let timestamp: number
  if ((code === 'clock_skew' || code === 'replayed') && serverTime !== undefined) {
    console.log(`${code}: signing again with the server's time ${serverTime}`)
    timestamp = serverTime
  } else if (code === 'replayed' && retryAfter !== undefined) {
    console.log(`replayed: the device was created moments ago; waiting ${retryAfter} s as the service asks`)
    await new Promise((resolve) => setTimeout(resolve, retryAfter * 1000))
    timestamp = Math.floor(Date.now() / 1000)
  } else {
    break
  }
  response = await provision(timestamp)
  text = await response.text()
}

console.log(`HTTP ${response.status}`)
console.log(text.trimEnd())
if (!response.ok) process.exit(1)

const fields = values.text
  ? Object.fromEntries(text.trim().split('\n').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]))
  : (JSON.parse(text) as Record<string, string>)
if (sealKey !== undefined) {
  if (typeof fields.sealed !== 'string') {
    console.log('the answer carries no sealed credential: a service from before sealing? (try --unsealed)')
    process.exit(1)
  }
  try {
    fields.credential = openSealed(fields.sealed, sealKey, { username: String(fields.username), device: String(fields.device), host: String(fields.host) })
  } catch (error) {
    console.log(`the sealed credential does not open: ${(error as Error).message} (a wrong key, or the answer was changed on the way)`)
    process.exit(1)
  }
  console.log(
    claim !== undefined
      ? 'sealed: opened with the claim secret (every holder of it could: docs/protocol.md)'
      : 'sealed: opened with the device key; whoever replays this request gets only what they cannot open',
  )
}
if (values['no-login-check']) process.exit(0)

const login = await fetch(`${values.emulator.replace(/\/+$/, '')}/__emulator/login`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ username: fields.username ?? LOCAL_USERNAME, device: fields.device, credential: fields.credential }),
})
const verdict = (await login.json()) as { ok: boolean; reason?: string }
if (verdict.ok) {
  console.log(`login check: the emulator accepts ${fields.username}/${fields.device} with the returned credential`)
} else {
  console.log(`login check FAILED: ${verdict.reason}`)
  process.exit(1)
}
