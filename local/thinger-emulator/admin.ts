// The admin routes under /__emulator: what tests and other processes use to look into the
// emulator and steer it (calls, devices, resources, seeds, faults, latency, variants, login checks).
import type { IncomingMessage } from 'node:http'
import { badRequest, EmulatorHttpError, errorBody } from './errors.js'
import { decodeSegments, readBody, type Reply } from './http.js'
import { isObject } from './fields.js'
import type { EmulatorSeed, FaultRule, ThingerEmulator } from './types.js'

export const ADMIN_PREFIX = '/__emulator'

export async function answerAdmin (emulator: ThingerEmulator, req: IncomingMessage, route: string): Promise<Reply> {
  const method = req.method ?? 'GET'
  const readJson = async (): Promise<unknown> => {
    try {
      return JSON.parse(await readBody(req))
    } catch (error) {
      throw error instanceof EmulatorHttpError ? error : badRequest('invalid JSON body')
    }
  }
  const deviceMatch = /^\/devices\/([^/]+)(?:\/([^/]+))?$/.exec(route)
  if (method === 'GET' && deviceMatch !== null) {
    let user: string
    let deviceId: string | undefined
    try {
      user = decodeURIComponent(deviceMatch[1] ?? '')
      deviceId = deviceMatch[2] === undefined ? undefined : decodeURIComponent(deviceMatch[2])
    } catch {
      throw new EmulatorHttpError(404, 'not found')
    }
    if (deviceId === undefined) return { status: 200, body: emulator.devices(user) }
    const view = emulator.device(user, deviceId)
    return view === undefined ? { status: 404, body: errorBody('device not found') } : { status: 200, body: view }
  }
  const resourcesMatch = /^\/resources\/([^/]+)$/.exec(route)
  if (method === 'GET' && resourcesMatch !== null) {
    const [user = ''] = decodeSegments(resourcesMatch)
    return { status: 200, body: emulator.resources(user) }
  }
  const seedMatch = /^\/seed\/([^/]+)$/.exec(route)
  if (method === 'POST' && seedMatch !== null) {
    const [user = ''] = decodeSegments(seedMatch)
    const fixtures = await readJson()
    emulator.seed(user, fixtures as EmulatorSeed)
    return { status: 200, body: {} }
  }
  switch (`${method} ${route}`) {
    case 'GET /calls':
      return { status: 200, body: emulator.calls() }
    case 'DELETE /calls':
      emulator.clearCalls()
      return { status: 200, body: {} }
    case 'POST /login': {
      const body = await readJson()
      if (!isObject(body) || !['username', 'device', 'credential'].every((key) => typeof body[key] === 'string')) {
        throw badRequest('body must be {"username","device","credential"} strings')
      }
      const check = emulator.checkLogin(body.username as string, body.device as string, body.credential as string)
      return { status: check.ok ? 200 : 401, body: check }
    }
    case 'POST /reset':
      emulator.reset()
      return { status: 200, body: {} }
    case 'PUT /faults':
      emulator.setFaults(await readJson() as FaultRule[])
      return { status: 200, body: {} }
    case 'DELETE /faults':
      emulator.setFaults([])
      return { status: 200, body: {} }
    case 'GET /variant':
      return { status: 200, body: emulator.variant() }
    case 'PUT /variant':
      emulator.setVariant(await readJson() as string)
      return { status: 200, body: emulator.variant() }
    case 'PUT /latency': {
      const body = await readJson()
      if (!isObject(body)) throw badRequest('body must be {"ms": N}')
      emulator.setLatencyMs(body.ms as number)
      return { status: 200, body: {} }
    }
    default:
      throw new EmulatorHttpError(404, 'not found')
  }
}

