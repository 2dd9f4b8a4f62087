// Fault injection: statuses, latency, dropped and hung connections for the calls a rule matches.
import { badRequest, EmulatorHttpError } from './errors.js'
import { isObject } from './fields.js'
import type { FaultRule } from './types.js'

const FAULT_FIELDS = new Set(['method', 'path', 'action', 'status', 'retryAfterSeconds', 'latencyMs', 'probability', 'times'])
const FAULT_ACTIONS = new Set(['status', 'latency', 'reset', 'hang'])

interface ActiveFault {
  rule: FaultRule
  pathPattern?: RegExp
  remaining: number
}

/** The fault rules in force and the latency added to every call. */
export class FaultInjector {
  #faults: ActiveFault[] = []
  #latencyMs = 0

  get latencyMs (): number {
    return this.#latencyMs
  }

  /** Replaces the rules; throws a 400 naming the first invalid one (and keeps the old rules). */
  setFaults (rules: unknown): void {
    this.#faults = parseFaultRules(rules)
  }

  setLatencyMs (ms: unknown): void {
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) throw badRequest('latency must be a non-negative number of ms')
    this.#latencyMs = ms
  }

  /** The first active rule matching the call, spent by one; `undefined` when none matches. */
  pick (method: string, pathname: string): FaultRule | undefined {
    for (const fault of this.#faults) {
      if (fault.remaining <= 0) continue
      if (fault.rule.method !== undefined && fault.rule.method.toUpperCase() !== method.toUpperCase()) continue
      if (fault.pathPattern !== undefined && !fault.pathPattern.test(pathname)) continue
      // A rule that loses its draw lets later rules match, and is not spent.
      if (Math.random() >= (fault.rule.probability ?? 1)) continue
      fault.remaining -= 1
      return fault.rule
    }
    return undefined
  }

  clear (): void {
    this.#faults = []
  }
}

export function parseFaultRules (input: unknown): ActiveFault[] {
  if (!Array.isArray(input)) throw badRequest('faults must be an array of rules')
  return input.map((rule: unknown, index): ActiveFault => {
    const fail = (message: string): EmulatorHttpError => badRequest(`fault ${index}: ${message}`)
    if (!isObject(rule)) throw fail('must be an object')
    for (const key of Object.keys(rule)) if (!FAULT_FIELDS.has(key)) throw fail(`unknown field '${key}'`)
    const { method, path, action, status, retryAfterSeconds, latencyMs, probability, times } = rule
    if (typeof action !== 'string' || !FAULT_ACTIONS.has(action)) throw fail("'action' must be status, latency, reset or hang")
    if (method !== undefined && (typeof method !== 'string' || method === '')) throw fail("'method' must be a non-empty string")
    let pathPattern: RegExp | undefined
    if (path !== undefined) {
      if (typeof path !== 'string') throw fail("'path' must be a RegExp source")
      try {
        pathPattern = new RegExp(path)
      } catch {
        throw fail("'path' is not a valid RegExp")
      }
    }
    if (action === 'status' && !(Number.isInteger(status) && (status as number) >= 200 && (status as number) <= 599)) {
      throw fail("'status' must be an integer from 200 to 599")
    }
    if (action !== 'status' && (status !== undefined || retryAfterSeconds !== undefined)) {
      throw fail("'status' and 'retryAfterSeconds' apply to action 'status' only")
    }
    if (retryAfterSeconds !== undefined && !(Number.isInteger(retryAfterSeconds) && (retryAfterSeconds as number) >= 0)) {
      throw fail("'retryAfterSeconds' must be a non-negative integer")
    }
    if (action === 'latency' && !(typeof latencyMs === 'number' && Number.isFinite(latencyMs) && latencyMs >= 0)) {
      throw fail("'latencyMs' must be a non-negative number")
    }
    if (action !== 'latency' && latencyMs !== undefined) throw fail("'latencyMs' applies to action 'latency' only")
    if (probability !== undefined && !(typeof probability === 'number' && probability >= 0 && probability <= 1)) {
      throw fail("'probability' must be a number from 0 to 1")
    }
    if (times !== undefined && !(Number.isInteger(times) && (times as number) >= 0)) {
      throw fail("'times' must be a non-negative integer")
    }
    return {
      rule: structuredClone(rule) as unknown as FaultRule,
      ...(pathPattern === undefined ? {} : { pathPattern }),
      remaining: times === undefined ? Infinity : (times as number)
    }
  })
}

