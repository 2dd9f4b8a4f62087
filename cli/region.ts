/** The region the deploy uses when neither `--region` nor AWS_REGION says one (serverless.yml). */
export const DEFAULT_REGION = 'us-east-1'

/**
 * The AWS region of the command line's calls, found as the deploy finds it: AWS_REGION (or the AWS
 * CLI's AWS_DEFAULT_REGION), else us-east-1, so that the parameters `osls deploy` reads are the
 * ones the commands write.
 */
export function regionOf(env: NodeJS.ProcessEnv): string {
  return env.AWS_REGION || env.AWS_DEFAULT_REGION || DEFAULT_REGION
}
