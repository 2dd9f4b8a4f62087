import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { TestProject } from 'vitest/node'
import { startLocalStack } from '../../local/stack.js'
import { freePort } from '../support/ports.js'

declare module 'vitest' {
  export interface ProvidedContext {
    provisionUrl: string
    thingerUrl: string
    offlineLogFile: string
    ssmEndpoint: string
    /** The folder the stack builds the function into, relative to the project. */
    buildFolder: string
    /** What serverless-offline had printed when the stack reported itself ready. */
    outputWhenReady: string
    /** The public half of the stack's answer key (base64 of the 65-byte point), which devices pin. */
    answerPublicKey: string
  }
}

/** Starts the local stack as `npm start` does (emulator, local SSM, local/fleets.yml, serverless-offline) once for every e2e test file. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const logDir = join(process.cwd(), 'reports')
  mkdirSync(logDir, { recursive: true })
  const offlineLogFile = join(logDir, 'e2e-offline.log')
  writeFileSync(offlineLogFile, '')
  const stack = await startLocalStack({
    httpPort: await freePort(),
    lambdaPort: await freePort(),
    thingerPort: 0,
    ssmPort: 0,
    onOutput: (chunk) => appendFileSync(offlineLogFile, chunk),
  })
  project.provide('provisionUrl', `${stack.url}/v1/provision`)
  project.provide('thingerUrl', stack.thinger.url)
  project.provide('offlineLogFile', offlineLogFile)
  project.provide('ssmEndpoint', stack.ssmEndpoint)
  project.provide('buildFolder', stack.buildFolder)
  project.provide('outputWhenReady', readFileSync(offlineLogFile, 'utf8'))
  project.provide('answerPublicKey', stack.answerPublicKey!)
  return async () => {
    await stack.close()
  }
}
