import type { Server } from 'node:http'
import type { Socket } from 'node:net'

/**
 * Closes a local test server for good: pending timers cleared, and every connection cut, since a
 * call made to hang never ends by itself and `server.close()` alone would wait for it.
 */
export function closeServer(server: Server, sockets: Set<Socket>, timers: Set<NodeJS.Timeout>): Promise<void> {
  return new Promise<void>((resolve) => {
    for (const timer of timers) clearTimeout(timer)
    timers.clear()
    server.close(() => resolve())
    server.closeAllConnections()
    for (const socket of sockets) socket.destroy()
  })
}
