import { generateAnswerKey } from '../../lib/attestation/answer-signature.js'
import { LOCAL_FLEET_KEY, LOCAL_REGION, LOCAL_THINGER_TOKEN, LOCAL_USERNAME, parameterNames } from '../../local/defaults.js'
import { type LocalSsm, startLocalSsm } from '../../local/ssm-server.js'
import { startThingerEmulator, type ThingerEmulator } from '../../local/thinger-emulator.js'

const BENCH_STAGE = 'bench'
// The forum sketch's device carries an account token that may list and create devices.
const FORUM_TOKEN = 'bench-forum-sketch-token-not-a-secret'

/** The emulator and the local SSM the benchmark runs against, and the settings that point the function at them. */
export interface BenchStack {
  thinger: ThingerEmulator
  ssm: LocalSsm
  username: string
  fleetKey: Buffer
  /** The token the forum sketch puts on each device (never the function's token). */
  forumToken: string
  /** The function's settings (README, "Settings") and the AWS SDK's. */
  env: Record<string, string>
  close(): Promise<void>
}

/** Starts the Thinger.io emulator and the local SSM on free loopback ports, seeded as for stage `bench`. */
export async function startBenchStack(): Promise<BenchStack> {
  const { thingerTokenParam, fleetKeyParam, answerKeyParam } = parameterNames(BENCH_STAGE)
  const thinger = await startThingerEmulator({
    port: 0,
    accounts: [{
      username: LOCAL_USERNAME,
      tokens: [
        // Every action: what the function calls is measured here, its permissions are tested elsewhere.
        { token: LOCAL_THINGER_TOKEN },
        { token: FORUM_TOKEN, allow: ['ListDevices', 'CreateDevice'] },
      ],
    }],
  })
  let ssm: LocalSsm
  try {
    ssm = await startLocalSsm({
      port: 0,
      region: LOCAL_REGION,
      parameters: [
        { name: thingerTokenParam, value: LOCAL_THINGER_TOKEN, type: 'SecureString' },
        { name: fleetKeyParam, value: LOCAL_FLEET_KEY, type: 'SecureString' },
        // Every answer signed, as in a deployment with its answer key: signing is part of what is measured.
        { name: answerKeyParam, value: generateAnswerKey(), type: 'SecureString' },
      ],
    })
  } catch (error) {
    await thinger.close()
    throw error
  }
  return {
    thinger,
    ssm,
    username: LOCAL_USERNAME,
    fleetKey: Buffer.from(LOCAL_FLEET_KEY, 'base64'),
    forumToken: FORUM_TOKEN,
    env: {
      STAGE: BENCH_STAGE,
      THINGER_API_URL: thinger.url,
      THINGER_USERNAME: LOCAL_USERNAME,
      THINGER_TOKEN_PARAM: thingerTokenParam,
      FLEET_KEY_PARAM: fleetKeyParam,
      AWS_ENDPOINT_URL_SSM: ssm.url,
      AWS_REGION: LOCAL_REGION,
      AWS_ACCESS_KEY_ID: 'bench',
      AWS_SECRET_ACCESS_KEY: 'bench',
      POWERTOOLS_SERVICE_NAME: 'thinger-provisioner',
      // The deployed level: the cost of writing one log line per request is part of what is measured.
      POWERTOOLS_LOG_LEVEL: 'INFO',
    },
    close: async () => {
      await Promise.all([thinger.close(), ssm.close()])
    },
  }
}
