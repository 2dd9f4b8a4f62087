// The HTTP server: admin routes, then for API calls recording, faults and the router.
import { createServer, STATUS_CODES } from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { closeServer } from '../close-server.js'
import { ADMIN_PREFIX, answerAdmin } from './admin.js'
import { ThingerBackend } from './backend.js'
import { EmulatorHttpError, errorBody } from './errors.js'
import { type Reply, sendJson } from './http.js'
import { answerApi, apiRoutes } from './routes.js'
import type { RecordedCall, ThingerEmulator, ThingerEmulatorOptions } from './types.js'

const DEFAULT_HOST = '127.0.0.1'
const DEFAULT_PORT = 0
const LOOPBACK_HOSTS = new Set(['localhost', '::1', '[::1]'])

const isLoopback = (host: string): boolean => LOOPBACK_HOSTS.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host)

async function settle (answer: () => Promise<Reply>): Promise<Reply> {
  try {
    return await answer()
  } catch (error) {
    if (error instanceof EmulatorHttpError) return { status: error.status, body: errorBody(error.message) }
    return { status: 500, body: errorBody('internal error') }
  }
}

/**
 * Starts an emulator of Thinger.io's REST API (devices, and the properties, buckets, assets,
 * products, projects and dashboards of provisioning profiles) on loopback; resolves once it listens.
 * Throws a TypeError on invalid options or a non-loopback host (the admin routes have no auth).
 */
export async function startThingerEmulator (
  options: ThingerEmulatorOptions & { port?: number; host?: string }
): Promise<ThingerEmulator> {
  const backend = new ThingerBackend(options)
  const host = options.host ?? DEFAULT_HOST
  if (!isLoopback(host)) throw new TypeError(`host '${host}' is not a loopback address`)
  const routes = apiRoutes(backend)
  const sockets = new Set<Socket>()
  const timers = new Set<NodeJS.Timeout>()
  let closing: Promise<void> | undefined

  const sleep = (ms: number): Promise<void> => new Promise((resolve) => {
    const timer = setTimeout(() => {
      timers.delete(timer)
      resolve()
    }, ms)
    timers.add(timer)
  })

  async function handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://emulator.invalid')
    if (url.pathname === ADMIN_PREFIX || url.pathname.startsWith(`${ADMIN_PREFIX}/`)) {
      sendJson(res, await settle(() => answerAdmin(emulator, req, url.pathname.slice(ADMIN_PREFIX.length))))
      return
    }

    const call: RecordedCall = { method: req.method ?? 'GET', path: url.pathname, status: null, at: Date.now() }
    backend.record(call)
    const fault = backend.faults.pick(call.method, call.path)
    if (fault?.action === 'reset') {
      req.socket.destroy()
      return
    }
    if (fault?.action === 'hang') return
    const delayMs = backend.faults.latencyMs + (fault?.action === 'latency' ? fault.latencyMs ?? 0 : 0)
    if (delayMs > 0) await sleep(delayMs)

    const reply: Reply = fault?.action === 'status'
      ? {
          status: fault.status ?? 500,
          body: errorBody(STATUS_CODES[fault.status ?? 500]?.toLowerCase() ?? 'emulated fault'),
          ...(fault.retryAfterSeconds === undefined ? {} : { headers: { 'retry-after': String(fault.retryAfterSeconds) } })
        }
      : await settle(() => answerApi(backend, routes, req, url))
    call.status = reply.status
    sendJson(res, reply)
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => sendJson(res, { status: 500, body: errorBody('internal error') }))
  })
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? DEFAULT_PORT, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const { port } = server.address() as AddressInfo

  const emulator: ThingerEmulator = {
    url: `http://${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${port}`,
    calls: () => backend.calls(),
    clearCalls: () => backend.clearCalls(),
    reset: () => backend.reset(),
    setFaults: (rules) => backend.faults.setFaults(rules),
    setLatencyMs: (ms) => backend.faults.setLatencyMs(ms),
    setVariant: (variant) => backend.setVariant(variant),
    variant: () => ({ ...backend.variant }),
    checkLogin: (username, deviceId, credential) => backend.checkLogin(username, deviceId, credential),
    device: (username, deviceId) => backend.device(username, deviceId),
    devices: (username) => backend.devices(username),
    resources: (username) => backend.resources(username),
    seed: (username, fixtures) => backend.seed(username, fixtures),
    close: () => {
      closing ??= closeServer(server, sockets, timers)
      return closing
    }
  }
  return emulator
}
