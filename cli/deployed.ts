import type { IAMClient } from '@aws-sdk/client-iam'
import type { LambdaClient } from '@aws-sdk/client-lambda'
import { awsErrorName, describeAwsError } from './aws-errors.js'
import { CliError } from './errors.js'
import { regionOf } from './region.js'

const AWS_MAX_ATTEMPTS = 3

/** An IAM policy statement as the role's policies hold it. */
export interface PolicyStatement {
  Effect?: string
  Action?: string | string[]
  Resource?: string | string[]
}

/** What `doctor --deployed` reads of the function that runs now. */
export interface DeployedFunction {
  /** Its environment: the settings it was deployed with. */
  environment: Record<string, string>
  roleArn: string
  /** The statements of the role's inline policies (osls writes the function's permissions there). */
  statements: PolicyStatement[]
  /** Managed policies attached to the role besides (not read: named in the report). */
  attachedPolicies: string[]
}

/** The Lambda and IAM reads `doctor --deployed` makes; tests and moto stand behind the same port. */
export interface DeployedPort {
  /** The function and its role's statements, or `undefined` when no function has that name in the region. */
  describe(functionName: string): Promise<DeployedFunction | undefined>
}

/**
 * A {@link DeployedPort} over the AWS SDK: credentials, region and endpoints from the environment
 * as for any AWS tool (`AWS_ENDPOINT_URL_LAMBDA`, `AWS_ENDPOINT_URL_IAM` or `AWS_ENDPOINT_URL` for moto).
 */
export function createDeployedPort(env: NodeJS.ProcessEnv, options: { lambda?: Pick<LambdaClient, 'send'>; iam?: Pick<IAMClient, 'send'> } = {}): DeployedPort {
  const region = regionOf(env)
  const clientOptions = { maxAttempts: AWS_MAX_ATTEMPTS, region }
  const call = async <T>(action: string, target: string, operation: () => Promise<T>): Promise<T> => {
    try {
      return await operation()
    } catch (error) {
      throw describeAwsError(error, action, target)
    }
  }
  return {
    async describe(functionName) {
      const lambdaSdk = await import('@aws-sdk/client-lambda')
      const lambda = options.lambda ?? new lambdaSdk.LambdaClient(clientOptions)
      let configuration: { Environment?: { Variables?: Record<string, string> }; Role?: string }
      try {
        configuration = await lambda.send(new lambdaSdk.GetFunctionConfigurationCommand({ FunctionName: functionName }))
      } catch (error) {
        if (awsErrorName(error) === 'ResourceNotFoundException') return undefined
        throw describeAwsError(error, 'lambda:GetFunctionConfiguration', functionName)
      }
      const roleArn = configuration.Role ?? ''
      const roleName = roleArn.slice(roleArn.lastIndexOf('/') + 1)
      const iamSdk = await import('@aws-sdk/client-iam')
      // IAM is global: its endpoint does not depend on the region, but the SDK wants one.
      const iam = options.iam ?? new iamSdk.IAMClient({ ...clientOptions, region: region ?? 'us-east-1' })
      const statements: PolicyStatement[] = []
      const names = await call('iam:ListRolePolicies', roleName, async () => (await iam.send(new iamSdk.ListRolePoliciesCommand({ RoleName: roleName }))).PolicyNames ?? [])
      for (const name of names) {
        const document = await call('iam:GetRolePolicy', `${roleName}/${name}`, async () => (await iam.send(new iamSdk.GetRolePolicyCommand({ RoleName: roleName, PolicyName: name }))).PolicyDocument ?? '{}')
        statements.push(...readPolicyDocument(document, `${roleName}/${name}`))
      }
      const attached = await call('iam:ListAttachedRolePolicies', roleName, async () => (await iam.send(new iamSdk.ListAttachedRolePoliciesCommand({ RoleName: roleName }))).AttachedPolicies ?? [])
      return { environment: configuration.Environment?.Variables ?? {}, roleArn, statements, attachedPolicies: attached.map((policy) => policy.PolicyName ?? policy.PolicyArn ?? '?') }
    },
  }
}

/** The statements of a policy document as IAM returns it: URL-encoded JSON (RFC 3986). */
function readPolicyDocument(document: string, policy: string): PolicyStatement[] {
  let parsed: { Statement?: PolicyStatement | PolicyStatement[] }
  try {
    parsed = JSON.parse(decodeURIComponent(document)) as typeof parsed
  } catch {
    throw new CliError('aws_error', `iam:GetRolePolicy on ${policy} returned a policy document that is not JSON`)
  }
  return [parsed.Statement ?? []].flat()
}
