import type { ThingerClient, ThingerClientOptions } from '../lib/thinger/client.js'
import type { ProgressStream } from './progress.js'
import type { DeployedPort } from './deployed.js'
import type { KmsPort } from './kms.js'
import type { SsmPort } from './ssm.js'

/** The Thinger.io calls the command line makes. */
export type CliThinger = Pick<ThingerClient, 'getDevice' | 'updateDevice' | 'deleteDevice' | 'getDeviceProperty'>

/** Everything a command reads or writes outside its arguments; tests replace any of it. */
export interface CliContext {
  env: NodeJS.ProcessEnv
  /** Results: keys, request bodies, status. */
  stdout: { write(text: string): unknown }
  /** Notices, warnings, errors and progress. */
  stderr: ProgressStream
  ssm: () => SsmPort
  /** The fleet CAs' keys (`ca`, `certs`); absent: KMS through the AWS SDK. */
  kms?: () => KmsPort
  /** The deployed function and its role (`doctor --deployed`); absent: Lambda and IAM through the AWS SDK. */
  deployed?: () => DeployedPort
  thinger: (options: ThingerClientOptions) => CliThinger
  now: () => number
  /** Waits; `revoke --delete` waits out the function's cache with it. */
  sleep: (ms: number) => Promise<void>
  /** Stops a bulk derivation; without it SIGINT, SIGTERM and SIGHUP do. */
  signal?: AbortSignal
}
