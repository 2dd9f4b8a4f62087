import { pathToFileURL } from 'node:url'
import { parentPort, workerData } from 'node:worker_threads'
import type { ProvisionHandler } from '../../functions/provision.js'
import { invokeHandler } from './lambda.js'
import { muteProcessOutput } from './output.js'

/** What the storm's main thread hands one container (lambda.ts, startContainerWorker). */
export interface ContainerWorkerData {
  bundlePath: string
}

/** Messages from a container to the main thread. */
export type ContainerMessage =
  | { type: 'ready'; importMs: number }
  | { type: 'failed'; message: string }
  | { type: 'answer'; id: number; answer: Awaited<ReturnType<typeof invokeHandler>>; log: string[] }

// One Lambda container: a thread with its own event loop, its own module instance of the bundle
// (so its own SSM cache and its own AWS SDK), serving the invocations the main thread posts.
async function serve(): Promise<void> {
  const port = parentPort
  if (port === null) throw new Error('container-worker runs as a worker thread')
  const { bundlePath } = workerData as ContainerWorkerData
  const log: string[] = []
  // The thread's output is the handler's log lines, handed back with each answer.
  muteProcessOutput((line) => log.push(line))
  try {
    const started = performance.now()
    const { handler } = (await import(pathToFileURL(bundlePath).href)) as { handler: ProvisionHandler }
    port.postMessage({ type: 'ready', importMs: performance.now() - started } satisfies ContainerMessage)
    port.on('message', ({ id, body }: { id: number; body: string }) => {
      void invokeHandler(handler, body).then(
        (answer) => port.postMessage({ type: 'answer', id, answer, log: log.splice(0) } satisfies ContainerMessage),
        (error: unknown) => port.postMessage({ type: 'failed', message: `invocation ${id}: ${String(error)}` } satisfies ContainerMessage),
      )
    })
  } catch (error) {
    port.postMessage({ type: 'failed', message: `import of ${bundlePath}: ${error instanceof Error ? error.message : String(error)}` } satisfies ContainerMessage)
  }
}

void serve()
