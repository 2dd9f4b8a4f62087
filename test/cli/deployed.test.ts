import { GetRolePolicyCommand, ListAttachedRolePoliciesCommand, ListRolePoliciesCommand } from '@aws-sdk/client-iam'
import { GetFunctionConfigurationCommand } from '@aws-sdk/client-lambda'
import { describe, expect, it } from 'vitest'
import { createDeployedPort } from '../../cli/deployed.js'

const ROLE_ARN = 'arn:aws:iam::123456789012:role/thinger-provisioner-prod-eu-west-1-lambdaRole'
const awsError = (name: string, message = name) => Object.assign(new Error(message), { name })

/** Lambda and IAM as the SDK clients answer, from `answers` keyed by command name; an Error is thrown. */
function clients(answers: Record<string, unknown>) {
  const send = async (command: object) => {
    const answer = answers[command.constructor.name]
    if (answer instanceof Error) throw answer
    if (answer === undefined) throw new Error(`unexpected ${command.constructor.name}`)
    return answer
  }
  return { lambda: { send } as any, iam: { send } as any }
}

describe('The deployed-function port of doctor --deployed', () => {
  const policy = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: ['ssm:GetParameters'], Resource: ['arn:aws:ssm:eu-west-1:123456789012:parameter/a'] }] }

  it('reads the function’s environment and the statements of every inline policy of its role (URL-encoded JSON)', async () => {
    // Prepare
    const port = createDeployedPort({ AWS_REGION: 'eu-west-1' }, clients({
      [GetFunctionConfigurationCommand.name]: { Environment: { Variables: { SEALING: 'required' } }, Role: ROLE_ARN },
      [ListRolePoliciesCommand.name]: { PolicyNames: ['prod-lambda'] },
      [GetRolePolicyCommand.name]: { PolicyDocument: encodeURIComponent(JSON.stringify(policy)) },
      [ListAttachedRolePoliciesCommand.name]: { AttachedPolicies: [{ PolicyName: 'AWSXRayDaemonWriteAccess' }] },
    }))

    // Act
    const deployed = await port.describe('thinger-provisioner-prod-provision')

    // Assess
    expect(deployed).toEqual({ environment: { SEALING: 'required' }, roleArn: ROLE_ARN, statements: policy.Statement, attachedPolicies: ['AWSXRayDaemonWriteAccess'] })
  })

  it('answers undefined for a function that does not exist', async () => {
    // Act & Assess
    await expect(createDeployedPort({}, clients({ [GetFunctionConfigurationCommand.name]: awsError('ResourceNotFoundException') })).describe('x')).resolves.toBeUndefined()
  })

  it.each([
    ['a refused permission', { [GetFunctionConfigurationCommand.name]: awsError('AccessDeniedException') }, '[aws_error] AWS refused lambda:GetFunctionConfiguration on fn: your identity lacks that permission'],
    ['no credentials', { [GetFunctionConfigurationCommand.name]: awsError('CredentialsProviderError', 'Could not load credentials from any providers') }, '[config] no AWS credentials'],
    ['a policy document that is not JSON', {
      [GetFunctionConfigurationCommand.name]: { Role: ROLE_ARN },
      [ListRolePoliciesCommand.name]: { PolicyNames: ['p'] },
      [GetRolePolicyCommand.name]: { PolicyDocument: "{'Statement': []}" },
    }, '[aws_error] iam:GetRolePolicy on thinger-provisioner-prod-eu-west-1-lambdaRole/p returned a policy document that is not JSON'],
  ])('fails with one line and a stable code on %s', async (_label, answers, message) => {
    // Act
    const error = (await createDeployedPort({}, clients(answers)).describe('fn').then(() => undefined, (caught: unknown) => caught)) as (Error & { code: string }) | undefined

    // Assess
    expect(`[${error?.code}] ${error?.message}`).toContain(message)
  })
})
