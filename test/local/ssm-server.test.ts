import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import {
  DeleteParameterCommand,
  DescribeParametersCommand,
  GetParameterCommand,
  GetParametersByPathCommand,
  GetParametersCommand,
  PutParameterCommand,
  SSMClient,
  paginateGetParametersByPath,
} from '@aws-sdk/client-ssm'
import type { Parameter } from '@aws-sdk/client-ssm'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { startLocalSsm } from '../../local/ssm-server.js'
import type { LocalSsm, SsmParameterSeed } from '../../local/ssm-server.js'

const SERVER_PATH = fileURLToPath(new URL('../../local/ssm-server.ts', import.meta.url))
const CREDENTIALS = { accessKeyId: 'test', secretAccessKey: 'test' }
const SECRET = 'thinger-token-0123456789'
const SEEDS: SsmParameterSeed[] = [
  { name: '/provisioner/dev/thinger-token', value: SECRET },
  { name: '/provisioner/dev/fleet-key', value: 'fleet-key-value' },
  { name: '/provisioner/dev/username', value: 'alice', type: 'String' },
  { name: '/provisioner/dev/nested/deep', value: 'deep-value', type: 'String' },
  { name: '/provisioner/prod/thinger-token', value: 'prod-token' },
]

function createClient(url: string, options: { requestTimeoutMs?: number } = {}): SSMClient {
  return new SSMClient({
    endpoint: url,
    region: 'us-east-1',
    credentials: CREDENTIALS,
    maxAttempts: 1,
    ...(options.requestTimeoutMs === undefined ? {} : { requestHandler: { requestTimeout: options.requestTimeoutMs, throwOnRequestTimeout: true } }),
  })
}

async function errorOf(promise: Promise<unknown>): Promise<Error & { $fault?: string; $metadata?: { httpStatusCode?: number } }> {
  try {
    await promise
  } catch (error) {
    return error as Error
  }
  throw new Error('expected a rejection')
}

describe('Module: ssm-server', () => {
  let ssm: LocalSsm
  let client: SSMClient

  beforeEach(async () => {
    ssm = await startLocalSsm({ parameters: SEEDS })
    client = createClient(ssm.url)
  })

  afterEach(async () => {
    client.destroy()
    await ssm.close()
  })

  describe('GetParameter', () => {
    it('answers a String parameter with the fields real SSM returns', async () => {
      // Act
      const { Parameter } = await client.send(new GetParameterCommand({ Name: '/provisioner/dev/username' }))

      // Assess
      expect(Parameter).toEqual({
        Name: '/provisioner/dev/username',
        Type: 'String',
        Value: 'alice',
        Version: 1,
        LastModifiedDate: expect.any(Date),
        ARN: 'arn:aws:ssm:us-east-1:000000000000:parameter/provisioner/dev/username',
        DataType: 'text',
      })
      expect(Math.abs((Parameter?.LastModifiedDate?.getTime() ?? 0) - Date.now())).toBeLessThan(5000)
    })

    it('answers an opaque ciphertext for a SecureString when WithDecryption is absent or false', async () => {
      // Act
      const absent = await client.send(new GetParameterCommand({ Name: '/provisioner/dev/thinger-token' }))
      const explicit = await client.send(
        new GetParameterCommand({ Name: '/provisioner/dev/thinger-token', WithDecryption: false }),
      )

      // Assess
      for (const { Parameter } of [absent, explicit]) {
        expect(Parameter?.Type).toBe('SecureString')
        expect(Parameter?.Value).toMatch(/^AQICAH[A-Za-z0-9+/]+=*$/)
        expect(Parameter?.Value).not.toContain(SECRET)
        expect(Buffer.from(Parameter?.Value ?? '', 'base64').toString('latin1')).not.toContain(SECRET)
      }
    })

    it('answers the plaintext of a SecureString when WithDecryption is true', async () => {
      // Act
      const { Parameter } = await client.send(
        new GetParameterCommand({ Name: '/provisioner/dev/thinger-token', WithDecryption: true }),
      )

      // Assess
      expect(Parameter?.Value).toBe(SECRET)
    })

    it('answers an older version when the name carries a :version selector, and accepts a full ARN', async () => {
      // Prepare
      ssm.put('/provisioner/dev/username', 'bob')
      const arn = 'arn:aws:ssm:us-east-1:000000000000:parameter/provisioner/dev/username'

      // Act
      const first = await client.send(new GetParameterCommand({ Name: '/provisioner/dev/username:1' }))
      const byArn = await client.send(new GetParameterCommand({ Name: arn }))
      const missingVersion = await errorOf(client.send(new GetParameterCommand({ Name: '/provisioner/dev/username:7' })))

      // Assess
      expect(first.Parameter).toMatchObject({ Name: '/provisioner/dev/username', Value: 'alice', Version: 1, Selector: ':1' })
      expect(byArn.Parameter).toMatchObject({ Name: '/provisioner/dev/username', Value: 'bob', Version: 2 })
      expect(missingVersion.name).toBe('ParameterVersionNotFound')
    })

    it('throws ParameterNotFound when the parameter does not exist', async () => {
      // Act
      const error = await errorOf(client.send(new GetParameterCommand({ Name: '/provisioner/dev/missing' })))

      // Assess
      expect(error.name).toBe('ParameterNotFound')
      expect(error.$fault).toBe('client')
      expect(error.$metadata?.httpStatusCode).toBe(400)
    })

    it('throws ValidationException when the name is malformed', async () => {
      // Act
      const errors = await Promise.all(
        ['provisioner/dev/x', '/a b', '/a//b', '/a/b/', '', '/a:b:c'].map((Name) =>
          errorOf(client.send(new GetParameterCommand({ Name }))),
        ),
      )

      // Assess
      expect(errors.map((error) => error.name)).toEqual(Array(6).fill('ValidationException'))
    })
  })

  describe('GetParameters', () => {
    it('answers the found parameters and lists the missing ones in InvalidParameters', async () => {
      // Act
      const result = await client.send(
        new GetParametersCommand({
          Names: ['/provisioner/dev/thinger-token', '/provisioner/dev/missing', '/provisioner/dev/username'],
          WithDecryption: true,
        }),
      )

      // Assess
      expect(result.Parameters?.map(({ Name, Value }) => ({ Name, Value }))).toEqual([
        { Name: '/provisioner/dev/thinger-token', Value: SECRET },
        { Name: '/provisioner/dev/username', Value: 'alice' },
      ])
      expect(result.InvalidParameters).toEqual(['/provisioner/dev/missing'])
    })

    it('throws ValidationException when more than 10 or no names are asked for', async () => {
      // Prepare
      const elevenNames = Array.from({ length: 11 }, (_, index) => `/provisioner/dev/p${index}`)

      // Act
      const tooMany = await errorOf(client.send(new GetParametersCommand({ Names: elevenNames })))
      const none = await errorOf(client.send(new GetParametersCommand({ Names: [] })))

      // Assess
      expect(tooMany.name).toBe('ValidationException')
      expect(none.name).toBe('ValidationException')
    })
  })

  describe('GetParametersByPath', () => {
    it('answers only direct children unless Recursive is true', async () => {
      // Act
      const flat = await client.send(new GetParametersByPathCommand({ Path: '/provisioner/dev' }))
      const deep = await client.send(
        new GetParametersByPathCommand({ Path: '/provisioner/dev/', Recursive: true, WithDecryption: true }),
      )

      // Assess
      expect(flat.Parameters?.map((p) => p.Name)).toEqual([
        '/provisioner/dev/fleet-key',
        '/provisioner/dev/thinger-token',
        '/provisioner/dev/username',
      ])
      expect(flat.NextToken).toBeUndefined()
      expect(deep.Parameters?.map((p) => [p.Name, p.Value])).toEqual([
        ['/provisioner/dev/fleet-key', 'fleet-key-value'],
        ['/provisioner/dev/nested/deep', 'deep-value'],
        ['/provisioner/dev/thinger-token', SECRET],
        ['/provisioner/dev/username', 'alice'],
      ])
    })

    it('answers page by page with NextToken when MaxResults is smaller than the result', async () => {
      // Prepare
      const pages: Parameter[][] = []

      // Act
      const first = await client.send(new GetParametersByPathCommand({ Path: '/', Recursive: true, MaxResults: 2 }))
      for await (const page of paginateGetParametersByPath({ client }, { Path: '/', Recursive: true, MaxResults: 2 })) {
        pages.push(page.Parameters ?? [])
      }

      // Assess
      expect(first.Parameters).toHaveLength(2)
      expect(first.NextToken).toEqual(expect.any(String))
      expect(pages.map((page) => page.length)).toEqual([2, 2, 1])
      expect(new Set(pages.flat().map((p) => p.Name))).toEqual(new Set(SEEDS.map((seed) => seed.name)))
    })

    it('throws ValidationException when MaxResults exceeds 10 and InvalidNextToken when the token is foreign', async () => {
      // Prepare
      const { NextToken } = await client.send(
        new GetParametersByPathCommand({ Path: '/provisioner', Recursive: true, MaxResults: 1 }),
      )

      // Act
      const tooMany = await errorOf(client.send(new GetParametersByPathCommand({ Path: '/provisioner', MaxResults: 11 })))
      const foreign = await errorOf(
        client.send(new GetParametersByPathCommand({ Path: '/provisioner/dev', Recursive: true, NextToken })),
      )
      const garbage = await errorOf(
        client.send(new GetParametersByPathCommand({ Path: '/provisioner', Recursive: true, NextToken: '%%%' })),
      )
      const relative = await errorOf(client.send(new GetParametersByPathCommand({ Path: 'provisioner' })))

      // Assess
      expect(tooMany.name).toBe('ValidationException')
      expect(foreign.name).toBe('InvalidNextToken')
      expect(garbage.name).toBe('InvalidNextToken')
      expect(relative.name).toBe('ValidationException')
    })
  })

  describe('PutParameter', () => {
    it('answers Version 1 on creation and the next version on overwrite', async () => {
      // Act
      const created = await client.send(
        new PutParameterCommand({ Name: '/provisioner/dev/new', Value: 'one', Type: 'SecureString' }),
      )
      const overwritten = await client.send(
        new PutParameterCommand({ Name: '/provisioner/dev/new', Value: 'two', Overwrite: true }),
      )

      // Assess
      expect(created).toMatchObject({ Version: 1, Tier: 'Standard' })
      expect(overwritten).toMatchObject({ Version: 2, Tier: 'Standard' })
      expect(ssm.get('/provisioner/dev/new')).toEqual({ value: 'two', type: 'SecureString', version: 2 })
    })

    it('throws ParameterAlreadyExists when the parameter exists and Overwrite is not set', async () => {
      // Act
      const error = await errorOf(
        client.send(new PutParameterCommand({ Name: '/provisioner/dev/username', Value: 'mallory', Type: 'String' })),
      )

      // Assess
      expect(error.name).toBe('ParameterAlreadyExists')
      expect(ssm.get('/provisioner/dev/username')?.value).toBe('alice')
    })

    it('throws ValidationException when the value is too long, the type is missing or the name is reserved', async () => {
      // Act
      const tooLong = await errorOf(
        client.send(new PutParameterCommand({ Name: '/provisioner/dev/big', Value: 'x'.repeat(4097), Type: 'String' })),
      )
      const untyped = await errorOf(client.send(new PutParameterCommand({ Name: '/provisioner/dev/untyped', Value: 'v' })))
      const reserved = await errorOf(
        client.send(new PutParameterCommand({ Name: '/aws/service/x', Value: 'v', Type: 'String' })),
      )
      const fits = await client.send(
        new PutParameterCommand({ Name: '/provisioner/dev/max', Value: 'x'.repeat(4096), Type: 'String' }),
      )

      // Assess
      expect([tooLong.name, untyped.name, reserved.name]).toEqual(Array(3).fill('ValidationException'))
      expect(fits.Version).toBe(1)
      expect(ssm.get('/provisioner/dev/big')).toBeUndefined()
      expect(ssm.get('/provisioner/dev/untyped')).toBeUndefined()
    })
  })

  describe('DeleteParameter', () => {
    it('answers {} and forgets the parameter, then throws ParameterNotFound when it is deleted again', async () => {
      // Act
      const deleted = await client.send(new DeleteParameterCommand({ Name: '/provisioner/dev/fleet-key' }))
      const again = await errorOf(client.send(new DeleteParameterCommand({ Name: '/provisioner/dev/fleet-key' })))

      // Assess
      expect(deleted.$metadata.httpStatusCode).toBe(200)
      expect(ssm.get('/provisioner/dev/fleet-key')).toBeUndefined()
      expect(again.name).toBe('ParameterNotFound')
    })
  })

  describe('protocol', () => {
    it('throws UnknownOperationException when the operation is not implemented', async () => {
      // Act
      const error = await errorOf(client.send(new DescribeParametersCommand({})))

      // Assess
      expect(error.name).toBe('UnknownOperationException')
    })

    it('answers 400 MissingAuthenticationTokenException in body and header when the request is not signed', async () => {
      // Act
      const response = await fetch(ssm.url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'AmazonSSM.GetParameter' },
        body: JSON.stringify({ Name: '/provisioner/dev/username' }),
      })

      // Assess
      expect(response.status).toBe(400)
      expect(response.headers.get('x-amzn-errortype')).toBe('MissingAuthenticationTokenException')
      expect(await response.json()).toMatchObject({ __type: 'MissingAuthenticationTokenException' })
    })

    it('answers a client configured only by AWS_ENDPOINT_URL_SSM', async () => {
      // Prepare
      const previous = process.env.AWS_ENDPOINT_URL_SSM
      process.env.AWS_ENDPOINT_URL_SSM = ssm.url
      try {
        const envClient = new SSMClient({ region: 'us-east-1', credentials: CREDENTIALS, maxAttempts: 1 })

        // Act
        const { Parameter } = await envClient.send(new GetParameterCommand({ Name: '/provisioner/dev/username' }))
        envClient.destroy()

        // Assess
        expect(Parameter?.Value).toBe('alice')
        expect(ssm.calls()).toHaveLength(1)
      } finally {
        if (previous === undefined) delete process.env.AWS_ENDPOINT_URL_SSM
        else process.env.AWS_ENDPOINT_URL_SSM = previous
      }
    })
  })

  describe('faults', () => {
    it('throws ThrottlingException and stores nothing when a throttle rule matches a PutParameter', async () => {
      // Prepare
      ssm.setFaults([{ operation: 'PutParameter', action: 'throttle' }])

      // Act
      const error = await errorOf(
        client.send(new PutParameterCommand({ Name: '/provisioner/dev/throttled', Value: 'v', Type: 'String' })),
      )
      const read = await client.send(new GetParameterCommand({ Name: '/provisioner/dev/username' }))

      // Assess
      expect(error.name).toBe('ThrottlingException')
      expect(error.message).toBe('Rate exceeded')
      expect(ssm.get('/provisioner/dev/throttled')).toBeUndefined()
      expect(read.Parameter?.Value).toBe('alice')
    })

    it('answers normally again when a rule with times is spent', async () => {
      // Prepare
      ssm.setFaults([{ action: 'error', times: 2 }])
      const send = (): Promise<unknown> => client.send(new GetParameterCommand({ Name: '/provisioner/dev/username' }))

      // Act
      const first = await errorOf(send())
      const second = await errorOf(send())
      const third = await send()

      // Assess
      expect([first.name, second.name]).toEqual(['InternalServerError', 'InternalServerError'])
      expect(first.$fault).toBe('server')
      expect(third).toMatchObject({ Parameter: { Value: 'alice' } })
      expect(ssm.calls().map((call) => call.status)).toEqual([500, 500, 200])
    })

    it('answers untouched when the probability is 0', async () => {
      // Prepare
      ssm.setFaults([{ action: 'throttle', probability: 0 }])

      // Act
      const { Parameter } = await client.send(new GetParameterCommand({ Name: '/provisioner/dev/username' }))

      // Assess
      expect(Parameter?.Value).toBe('alice')
    })

    it('answers after the delay when a latency rule matches', async () => {
      // Prepare
      ssm.setFaults([{ operation: 'GetParameter', action: 'latency', latencyMs: 150 }])
      const startedAt = performance.now()

      // Act
      const { Parameter } = await client.send(new GetParameterCommand({ Name: '/provisioner/dev/username' }))

      // Assess
      expect(Parameter?.Value).toBe('alice')
      expect(performance.now() - startedAt).toBeGreaterThanOrEqual(140)
    })

    it('throws a network error with no status recorded when a reset rule matches', async () => {
      // Prepare
      ssm.setFaults([{ action: 'reset', times: 1 }])

      // Act
      const error = await errorOf(client.send(new GetParameterCommand({ Name: '/provisioner/dev/username' })))

      // Assess
      expect(error).toMatchObject({ code: 'ECONNRESET' })
      expect(ssm.calls()).toMatchObject([{ operation: 'GetParameter', status: null }])
    })

    it('throws when the SDK gives up on a hanging request, by requestTimeout or abortSignal', async () => {
      // Prepare
      ssm.setFaults([{ action: 'hang' }])
      const impatient = createClient(ssm.url, { requestTimeoutMs: 100 })

      // Act
      const timedOut = await errorOf(impatient.send(new GetParameterCommand({ Name: '/provisioner/dev/username' })))
      const aborted = await errorOf(
        client.send(new GetParameterCommand({ Name: '/provisioner/dev/username' }), {
          abortSignal: AbortSignal.timeout(100),
        }),
      )
      impatient.destroy()

      // Assess
      expect(timedOut.name).toBe('TimeoutError')
      expect(aborted.name).toBe('AbortError')
      expect(ssm.calls().map((call) => call.status)).toEqual([null, null])
    })

    it('closes promptly when a request hangs', async () => {
      // Prepare
      ssm.setFaults([{ action: 'hang' }])
      const pending = errorOf(client.send(new GetParameterCommand({ Name: '/provisioner/dev/username' })))
      await expect.poll(() => ssm.calls().length).toBe(1)
      const startedAt = performance.now()

      // Act
      await ssm.close()

      // Assess
      expect(performance.now() - startedAt).toBeLessThan(500)
      expect(await pending).toMatchObject({ code: 'ECONNRESET' })
    })

    it('throws TypeError when a rule is malformed', () => {
      // Act & Assess
      expect(() => ssm.setFaults([{ action: 'latency' }])).toThrow(TypeError)
      expect(() => ssm.setFaults([{ action: 'throttle', probability: 2 }])).toThrow(TypeError)
      expect(() => ssm.setFaults([{ action: 'explode' as 'error' }])).toThrow(TypeError)
    })
  })

  describe('calls and controls', () => {
    it('records operation, names and status of each call but never a value', async () => {
      // Act
      await client.send(
        new PutParameterCommand({ Name: '/provisioner/dev/recorded', Value: 'value-never-recorded', Type: 'SecureString' }),
      )
      await client.send(
        new GetParametersCommand({ Names: ['/provisioner/dev/recorded', '/provisioner/dev/thinger-token'], WithDecryption: true }),
      )
      await client.send(new GetParametersByPathCommand({ Path: '/provisioner/dev', WithDecryption: true }))
      await errorOf(client.send(new GetParameterCommand({ Name: '/provisioner/dev/missing' })))

      // Assess
      const calls = ssm.calls()
      expect(calls).toEqual([
        { operation: 'PutParameter', names: ['/provisioner/dev/recorded'], status: 200, at: expect.any(Number) },
        {
          operation: 'GetParameters',
          names: ['/provisioner/dev/recorded', '/provisioner/dev/thinger-token'],
          status: 200,
          at: expect.any(Number),
        },
        { operation: 'GetParametersByPath', names: ['/provisioner/dev'], status: 200, at: expect.any(Number) },
        { operation: 'GetParameter', names: ['/provisioner/dev/missing'], status: 400, at: expect.any(Number) },
      ])
      expect(JSON.stringify(calls)).not.toContain('value-never-recorded')
      expect(JSON.stringify(calls)).not.toContain(SECRET)
    })

    it('answers with an empty list after clearCalls', async () => {
      // Prepare
      await client.send(new GetParameterCommand({ Name: '/provisioner/dev/username' }))

      // Act
      ssm.clearCalls()

      // Assess
      expect(ssm.calls()).toEqual([])
    })

    it('answers what put stored, as SecureString by default, and nothing after delete', async () => {
      // Act
      ssm.put('/provisioner/dev/direct', 'direct-value')
      const viaSdk = await client.send(new GetParameterCommand({ Name: '/provisioner/dev/direct', WithDecryption: true }))
      const stored = ssm.get('/provisioner/dev/direct')
      ssm.delete('/provisioner/dev/direct')

      // Assess
      expect(viaSdk.Parameter).toMatchObject({ Type: 'SecureString', Value: 'direct-value', Version: 1 })
      expect(stored).toEqual({ value: 'direct-value', type: 'SecureString', version: 1 })
      expect(ssm.get('/provisioner/dev/direct')).toBeUndefined()
      expect(() => ssm.put('no/leading/slash', 'v')).toThrow(TypeError)
    })
  })

  describe('command line', () => {
    it('answers the --param values on the printed URL and exits 0 on SIGTERM', async () => {
      // Prepare
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', SERVER_PATH, '--port', '0', '--param', '/cli/token=a=b', '--param', '/cli/other=x'],
        { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, NODE_NO_WARNINGS: '1' } },
      )
      const [url] = (await once(createInterface({ input: child.stdout }), 'line')) as [string]
      const cliClient = createClient(url)

      // Act
      const { Parameter } = await cliClient.send(new GetParameterCommand({ Name: '/cli/token', WithDecryption: true }))
      cliClient.destroy()
      child.kill('SIGTERM')
      const [exitCode] = (await once(child, 'exit')) as [number | null]

      // Assess
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
      expect(Parameter).toMatchObject({ Type: 'SecureString', Value: 'a=b' })
      expect(exitCode).toBe(0)
    })
  })
})

describe('Module: ssm-server admin routes', () => {
  it('lets another process throttle, inspect and clear through /__ssm/', async () => {
    // Prepare
    const ssm = await startLocalSsm({ parameters: [{ name: '/admin/a', value: 'v' }] })
    const client = new SSMClient({ endpoint: ssm.url, region: 'us-east-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' }, maxAttempts: 1 })

    try {
      // Act
      const put = await fetch(`${ssm.url}/__ssm/faults`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify([{ action: 'throttle', times: 1 }]) })
      const throttled = await client.send(new GetParameterCommand({ Name: '/admin/a' })).catch((error: Error) => error.name)
      const served = await client.send(new GetParameterCommand({ Name: '/admin/a' })).then(() => 'ok')
      const calls = (await (await fetch(`${ssm.url}/__ssm/calls`)).json()) as Array<{ operation: string; status: number }>
      const bad = await fetch(`${ssm.url}/__ssm/faults`, { method: 'PUT', body: '{"action":"nope"}' })

      // Assess
      expect(put.status).toBe(200)
      expect(throttled).toBe('ThrottlingException')
      expect(served).toBe('ok')
      expect(calls.map((c) => `${c.operation} ${c.status}`)).toEqual(['GetParameter 400', 'GetParameter 200'])
      expect(bad.status).toBe(400)
    } finally {
      await ssm.close()
    }
  })
})
