import type { ThingerDevice } from '../../lib/thinger/client.js'
import { ThingerHttpError } from '../../lib/thinger/errors.js'
import type { CliContext, CliThinger } from '../../cli/context.js'
import { CliError } from '../../cli/errors.js'
import { runCli } from '../../cli/main.js'
import type { PutParameterInput, SsmPort } from '../../cli/ssm.js'

/** A parameter as the in-memory SSM holds it. */
export interface StoredParameter {
  value: string
  type: 'String' | 'SecureString'
  version: number
  tier: 'Standard' | 'Advanced'
  kmsKeyId?: string
}

/** An in-memory SSM Parameter Store with real SSM's rules for what the command line does. */
export class MemorySsm implements SsmPort {
  readonly parameters = new Map<string, StoredParameter>()
  readonly writes: PutParameterInput[] = []

  async getParameter(name: string): Promise<{ value: string; version: number } | undefined> {
    const stored = this.parameters.get(name)
    return stored && { value: stored.value, version: stored.version }
  }

  async putParameter(input: PutParameterInput): Promise<{ version: number }> {
    this.writes.push(input)
    const existing = this.parameters.get(input.name)
    if (existing && !input.overwrite) throw new CliError('already_exists', `SSM parameter ${input.name} already exists; it was left as it is`)
    const tier = input.tier ?? existing?.tier ?? 'Standard'
    if (Buffer.byteLength(input.value) > (tier === 'Advanced' ? 8192 : 4096)) throw new CliError('aws_error', 'ValidationException: value too long for the tier')
    const version = (existing?.version ?? 0) + 1
    this.parameters.set(input.name, { value: input.value, type: input.type, version, tier, ...(input.kmsKeyId ? { kmsKeyId: input.kmsKeyId } : {}) })
    return { version }
  }

  /** Stores a value directly, as an operator with the AWS console would. */
  seed(name: string, value: string, type: 'String' | 'SecureString' = 'SecureString'): void {
    const version = (this.parameters.get(name)?.version ?? 0) + 1
    this.parameters.set(name, { value, type, version, tier: 'Standard' })
  }
}

/** An in-memory Thinger.io account: devices and their properties. */
export class MemoryThinger implements CliThinger {
  readonly devices = new Map<string, ThingerDevice>()
  readonly properties = new Map<string, unknown>()
  /** Every token a client was created with (to prove which parameter was read). */
  readonly tokens: string[] = []
  failWith: number | undefined

  client(token: string): CliThinger {
    this.tokens.push(token)
    return this
  }

  async getDevice(device: string): Promise<ThingerDevice | undefined> {
    this.#maybeFail('GET', 'ReadDeviceStatus')
    const found = this.devices.get(device)
    return found && { ...found }
  }

  async updateDevice(device: string, body: { enabled?: boolean }): Promise<boolean> {
    this.#maybeFail('PUT', 'UpdateDevice')
    const found = this.devices.get(device)
    if (!found) return false
    if (body.enabled !== undefined) found.enabled = body.enabled
    return true
  }

  async deleteDevice(device: string): Promise<boolean> {
    this.#maybeFail('DELETE', 'DeleteDevice')
    this.properties.delete(`${device}/provisioning`)
    return this.devices.delete(device)
  }

  async getDeviceProperty(device: string, property: string): Promise<{ value: unknown } | undefined> {
    this.#maybeFail('GET', 'ReadDeviceProperty')
    const key = `${device}/${property}`
    return this.properties.has(key) ? { value: this.properties.get(key) } : undefined
  }

  #maybeFail(method: string, operation: string): void {
    if (this.failWith !== undefined) throw new ThingerHttpError(method, operation, this.failWith)
  }
}

/** What one run of the command line printed and returned. */
export interface CliRun {
  code: number
  stdout: string
  stderr: string
  /** What `sleep` was asked to wait, in order. */
  sleptMs: number[]
}

/** Runs the command line in this process with in-memory SSM and Thinger.io. */
export async function run(argv: string[], options: { env?: NodeJS.ProcessEnv; ssm?: MemorySsm; thinger?: MemoryThinger; tty?: boolean; overrides?: Partial<CliContext> } = {}): Promise<CliRun> {
  let stdout = ''
  let stderr = ''
  const sleptMs: number[] = []
  const ssm = options.ssm ?? new MemorySsm()
  const thinger = options.thinger ?? new MemoryThinger()
  const code = await runCli(argv, {
    env: options.env ?? {},
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text), isTTY: options.tty ?? false, columns: 80 },
    ssm: () => ssm,
    thinger: ({ token }) => thinger.client(token),
    now: () => 1_764_150_000_000,
    sleep: async (ms: number) => {
      sleptMs.push(ms)
    },
    ...options.overrides,
  })
  return { code, stdout, stderr, sleptMs }
}
