// The HTTP plumbing shared by the API and admin routes: bodies in, JSON out.
import type { IncomingMessage, ServerResponse } from 'node:http'
import { EmulatorHttpError } from './errors.js'

const MAX_BODY_BYTES = 64 * 1024

/** An answer before it is written: status, JSON body, extra headers. */
export interface Reply {
  status: number
  body: unknown
  headers?: Record<string, string>
}

export const ok = (body: unknown = {}): Reply => ({ status: 200, body })

export function readBody (req: IncomingMessage): Promise<string> {
  if (Number(req.headers['content-length']) > MAX_BODY_BYTES) {
    return Promise.reject(new EmulatorHttpError(413, 'request body too large'))
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let sizeBytes = 0
    req.on('data', (chunk: Buffer) => {
      sizeBytes += chunk.length
      // Keep draining past the cap so the 413 reaches a client that is still sending.
      if (sizeBytes <= MAX_BODY_BYTES) chunks.push(chunk)
    })
    req.on('end', () => {
      if (sizeBytes > MAX_BODY_BYTES) reject(new EmulatorHttpError(413, 'request body too large'))
      else resolve(Buffer.concat(chunks).toString('utf8'))
    })
    req.on('error', reject)
    req.on('close', () => reject(new Error('request closed before its body ended')))
  })
}

export function sendJson (res: ServerResponse, reply: Reply): void {
  if (res.headersSent || res.destroyed) return
  const json = JSON.stringify(reply.body)
  res.writeHead(reply.status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(json)),
    ...reply.headers
  })
  res.end(json)
}

export function decodeSegments (match: RegExpExecArray): string[] {
  try {
    return match.slice(1).map((segment) => decodeURIComponent(segment ?? ''))
  } catch {
    throw new EmulatorHttpError(404, 'not found')
  }
}
