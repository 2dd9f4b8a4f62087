import { generateCredential } from '../../lib/provisioning/credential.js'
import { deviceIds } from './lambda.js'
import type { BenchStack } from './stack.js'
import { type LatencySummary, summarizeLatency } from './stats.js'

// The values the Thinger.io forum's sketch "Self Provisioning Device, API method" sends with every create.
const FORUM_ASSET_GROUP = 'TestAssetGroup'
const FORUM_ASSET_TYPE = 'TestAssetGroup'
const FORUM_DESCRIPTION = 'TestDescription'
const FORUM_NAME = 'TestName'
const FORUM_TYPE = 'Generic'

export interface ForumBaselineResult {
  thingerLatencyMs: number
  requests: number
  /** Time a device spends on the whole exchange: list by name, then create. */
  latency: LatencySummary
  wallMs: number
  requestsPerSecond: number
  thingerCalls: number
  thingerCallsPerDevice: number
}

/**
 * Provisions new devices the forum sketch's way, from the device itself with the account token:
 * `GET /devices?name=<id>&authorization=<token>`, look for `"<id>"` in the body, then `POST /devices`.
 */
export async function runForumBaseline(stack: BenchStack, options: { devices: number; thingerLatencyMs: number }): Promise<ForumBaselineResult> {
  stack.thinger.setFaults([])
  stack.thinger.setLatencyMs(options.thingerLatencyMs)
  // The sketch expects its asset type and group to exist, as Thinger.io requires.
  stack.thinger.seed(stack.username, { types: [{ type: FORUM_ASSET_TYPE }], groups: [{ group: FORUM_ASSET_GROUP }] })
  stack.thinger.clearCalls()
  const devicesUrl = `${stack.thinger.url}/v1/users/${encodeURIComponent(stack.username)}/devices`
  const latenciesMs: number[] = []

  const started = performance.now()
  for (const device of deviceIds('forum', options.devices)) {
    const exchangeStarted = performance.now()
    const list = await fetch(`${devicesUrl}?name=${device}&authorization=${stack.forumToken}`)
    const payload = await list.text()
    // The sketch's own test, `indexOf(...) > 0`, quirks included.
    if (payload.indexOf(`"${device}"`) > 0) throw new Error(`forum baseline: ${device} already exists`)
    const create = await fetch(devicesUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${stack.forumToken}` },
      body: JSON.stringify({
        asset_group: FORUM_ASSET_GROUP,
        asset_type: FORUM_ASSET_TYPE,
        credentials: generateCredential(),
        description: FORUM_DESCRIPTION,
        device,
        name: FORUM_NAME,
        type: FORUM_TYPE,
      }),
    })
    const answer = await create.text()
    const finished = performance.now()
    if (create.status !== 200) throw new Error(`forum baseline: creating ${device} answered ${create.status}: ${answer.slice(0, 300)}`)
    latenciesMs.push(finished - exchangeStarted)
  }
  const wallMs = performance.now() - started
  const thingerCalls = stack.thinger.calls().length
  return {
    thingerLatencyMs: options.thingerLatencyMs,
    requests: options.devices,
    latency: summarizeLatency(latenciesMs),
    wallMs,
    requestsPerSecond: options.devices / (wallMs / 1000),
    thingerCalls,
    thingerCallsPerDevice: thingerCalls / options.devices,
  }
}
