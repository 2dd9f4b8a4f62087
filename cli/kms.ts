import type { KMSClient } from '@aws-sdk/client-kms'
import { awsErrorName, describeAwsError } from './aws-errors.js'
import { CliError } from './errors.js'
import { regionOf } from './region.js'

const KMS_MAX_ATTEMPTS = 3
/** What KMS `Sign` accepts with `MessageType: RAW`; a to-be-signed certificate is far smaller. */
export const KMS_MAX_RAW_MESSAGE_BYTES = 4096

/** The few KMS operations the CA commands use; tests and moto stand behind the same port. */
export interface KmsPort {
  /** Creates a P-256 signing key that never leaves KMS, named by `alias`. @returns its key ID. */
  createSigningKey(input: { alias: string; description: string; tags: Record<string, string> }): Promise<string>
  /** The key ID an alias names, or `undefined` when there is no such alias. */
  findAlias(alias: string): Promise<string | undefined>
  /** The SubjectPublicKeyInfo (DER) of a key. */
  publicKey(keyId: string): Promise<Buffer>
  /** ECDSA P-256 with SHA-256 over `message` (KMS hashes it: MessageType RAW); the signature in DER. */
  sign(keyId: string, message: Buffer): Promise<Buffer>
}

/**
 * A {@link KmsPort} over the AWS SDK: credentials, region and endpoint from the environment as
 * for any AWS tool (`AWS_ENDPOINT_URL_KMS` for moto). Signs with `MessageType: RAW`: KMS hashes
 * the to-be-signed bytes itself (moto 5.2.1 mishandles `DIGEST`).
 */
export function createKmsPort(env: NodeJS.ProcessEnv, options: { client?: Pick<KMSClient, 'send'> } = {}): KmsPort {
  const region = regionOf(env)
  let loading: Promise<{ client: Pick<KMSClient, 'send'>; sdk: typeof import('@aws-sdk/client-kms') }> | undefined
  const load = () =>
    (loading ??= import('@aws-sdk/client-kms').then((sdk) => ({
      sdk,
      client: options.client ?? new sdk.KMSClient({ maxAttempts: KMS_MAX_ATTEMPTS, region }),
    })))
  const call = async <T>(action: string, target: string, operation: (client: Pick<KMSClient, 'send'>, sdk: typeof import('@aws-sdk/client-kms')) => Promise<T>): Promise<T> => {
    const { client, sdk } = await load()
    try {
      return await operation(client, sdk)
    } catch (error) {
      throw describeAwsError(error, action, target)
    }
  }
  return {
    async createSigningKey({ alias, description, tags }) {
      const keyId = await call('kms:CreateKey', alias, async (client, sdk) => {
        const created = await client.send(
          new sdk.CreateKeyCommand({
            KeySpec: 'ECC_NIST_P256',
            KeyUsage: 'SIGN_VERIFY',
            Description: description,
            Tags: Object.entries(tags).map(([TagKey, TagValue]) => ({ TagKey, TagValue })),
          }),
        )
        return created.KeyMetadata?.KeyId ?? ''
      })
      await call('kms:CreateAlias', alias, (client, sdk) => client.send(new sdk.CreateAliasCommand({ AliasName: alias, TargetKeyId: keyId })))
      return keyId
    },
    async findAlias(alias) {
      const { client, sdk } = await load()
      try {
        const described = await client.send(new sdk.DescribeKeyCommand({ KeyId: alias }))
        return described.KeyMetadata?.KeyId
      } catch (error) {
        if (awsErrorName(error) === 'NotFoundException') return undefined
        throw describeAwsError(error, 'kms:DescribeKey', alias)
      }
    },
    async publicKey(keyId) {
      return call('kms:GetPublicKey', keyId, async (client, sdk) => Buffer.from((await client.send(new sdk.GetPublicKeyCommand({ KeyId: keyId }))).PublicKey ?? new Uint8Array()))
    },
    async sign(keyId, message) {
      if (message.length > KMS_MAX_RAW_MESSAGE_BYTES) throw new CliError('usage', `the to-be-signed certificate is ${message.length} bytes, more than KMS signs raw (${KMS_MAX_RAW_MESSAGE_BYTES})`)
      return call('kms:Sign', keyId, async (client, sdk) => {
        const signed = await client.send(new sdk.SignCommand({ KeyId: keyId, Message: message, MessageType: 'RAW', SigningAlgorithm: 'ECDSA_SHA_256' }))
        return Buffer.from(signed.Signature ?? new Uint8Array())
      })
    },
  }
}
