import {
  DeleteParameterCommand,
  DescribeParametersCommand,
  GetParameterCommand,
  GetParametersByPathCommand,
  GetParametersCommand,
  PutParameterCommand,
  SSMClient,
} from '@aws-sdk/client-ssm'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { startLocalSsm } from '../../local/ssm-server.js'
import type { LocalSsm, SsmParameterSeed } from '../../local/ssm-server.js'

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
        ['provisioner/dev/x', '/a b', '/a//b', '/a/b/', '', '/a:1'].map((Name) =>
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
      expect((await client.send(new GetParameterCommand({ Name: '/provisioner/dev/new', WithDecryption: true }))).Parameter).toMatchObject({ Value: 'two', Type: 'SecureString', Version: 2 })
    })

    it('throws ParameterAlreadyExists when the parameter exists and Overwrite is not set', async () => {
      // Act
      const error = await errorOf(
        client.send(new PutParameterCommand({ Name: '/provisioner/dev/username', Value: 'mallory', Type: 'String' })),
      )

      // Assess
      expect(error.name).toBe('ParameterAlreadyExists')
      expect((await client.send(new GetParameterCommand({ Name: '/provisioner/dev/username' }))).Parameter?.Value).toBe('alice')
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
      const stored = await client.send(new GetParametersCommand({ Names: ['/provisioner/dev/big', '/provisioner/dev/untyped'] }))
      expect(stored.InvalidParameters).toEqual(['/provisioner/dev/big', '/provisioner/dev/untyped'])
    })

    it('takes up to 8192 characters in the Advanced tier, and keeps a parameter Advanced once it is', async () => {
      // Act: what the command line does for a deny list that outgrew the Standard tier
      const advanced = await client.send(new PutParameterCommand({ Name: '/provisioner/dev/deny', Value: 'x'.repeat(5000), Type: 'String', Tier: 'Advanced' }))
      const again = await client.send(new PutParameterCommand({ Name: '/provisioner/dev/deny', Value: 'y'.repeat(6000), Overwrite: true }))
      const tooLong = await errorOf(client.send(new PutParameterCommand({ Name: '/provisioner/dev/deny', Value: 'z'.repeat(8193), Overwrite: true })))

      // Assess
      expect(advanced).toMatchObject({ Version: 1, Tier: 'Advanced' })
      expect(again).toMatchObject({ Version: 2, Tier: 'Advanced' })
      expect(tooLong.name).toBe('ValidationException')
    })
  })

  describe('protocol', () => {
    it('throws UnknownOperationException for what neither the function nor the command line sends', async () => {
      // Act
      const errors = await Promise.all([
        errorOf(client.send(new DescribeParametersCommand({}))),
        errorOf(client.send(new DeleteParameterCommand({ Name: '/provisioner/dev/fleet-key' }))),
        errorOf(client.send(new GetParametersByPathCommand({ Path: '/provisioner/dev' }))),
      ])

      // Assess
      expect(errors.map((error) => error.name)).toEqual(Array(3).fill('UnknownOperationException'))
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

  describe('calls and controls', () => {
    it('records operation, names and status of each call but never a value', async () => {
      // Act
      await client.send(
        new PutParameterCommand({ Name: '/provisioner/dev/recorded', Value: 'value-never-recorded', Type: 'SecureString' }),
      )
      await client.send(
        new GetParametersCommand({ Names: ['/provisioner/dev/recorded', '/provisioner/dev/thinger-token'], WithDecryption: true }),
      )
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
  })
})
