'use strict'
// esbuild plugins of the deployed bundle (serverless.yml, custom.esbuild.plugins; the benchmark
// builds with the same list). The AWS SDK is bundled (it starts faster than the runtime's copy,
// docs/performance.md), and the SSM client's default credential chain is replaced by the one link
// a Lambda function uses: the execution role's credentials in the environment
// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN). The rest of the chain (shared
// files, SSO, web identity, process, instance metadata, and the STS and SSO clients they bring)
// would only be parsed at every cold start and never run.

const ENV_CREDENTIALS_ONLY = {
  name: 'env-credentials-only',
  setup(build) {
    build.onResolve({ filter: /^@aws-sdk\/credential-provider-node$/ }, (args) => ({ path: args.path, namespace: 'env-credentials-only', pluginData: { resolveDir: args.resolveDir } }))
    build.onLoad({ filter: /.*/, namespace: 'env-credentials-only' }, (args) => ({
      contents: "export { fromEnv as defaultProvider } from '@aws-sdk/credential-provider-env'",
      resolveDir: args.pluginData.resolveDir,
      loader: 'js',
    }))
  },
}

module.exports = [ENV_CREDENTIALS_ONLY]
