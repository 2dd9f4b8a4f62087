/**
 * Embedded defaults of the local stack. They are development values for the emulator only:
 * no real Thinger.io account or AWS account ever sees them.
 */
export const LOCAL_USERNAME = 'demo'
/** Token the emulator accepts for the local account; the function reads it from the local SSM. */
export const LOCAL_THINGER_TOKEN = 'local-dev-thinger-token-not-a-secret'
/** Base64 of 32+ bytes, stored in the local SSM as the fleet key of stage `local`. */
export const LOCAL_FLEET_KEY = Buffer.from('thinger-provisioner LOCAL DEV ONLY fleet key').toString('base64')
/** An operator's token for the emulator with every permission (the CLI's `revoke --delete`), kept apart from the function's minimal one. */
export const LOCAL_ADMIN_THINGER_TOKEN = 'local-dev-admin-token-not-a-secret'
/** Where the local SSM holds that operator's token. */
export const LOCAL_ADMIN_TOKEN_PARAM = '/thinger-provisioner/local/admin-token'
/** The local `workshop` fleet (local/fleets.yml): its claim secret and its own fleet key. */
export const LOCAL_WORKSHOP_CLAIM_SECRET = 'workshop-claim-LOCAL-DEV-ONLY'
export const LOCAL_WORKSHOP_FLEET_KEY = Buffer.from('thinger-provisioner LOCAL DEV ONLY workshop fleet key').toString('base64')
/** The fleets file the local stack serves. */
export const LOCAL_FLEETS_FILE = 'local/fleets.yml'
export const LOCAL_STAGE = 'local'
export const LOCAL_REGION = 'us-east-1'
export const DEFAULT_HTTP_PORT = 3000
export const DEFAULT_LAMBDA_PORT = 3002
export const DEFAULT_THINGER_PORT = 8787
export const DEFAULT_SSM_PORT = 4583

/** Where `npm start` writes its answer key's public half (a base64 line), which `npm run device` pins by default. */
export const LOCAL_ANSWER_KEY_FILE = '.local-stack/answer-key.pub'

/** The SSM parameter names serverless.yml uses for a stage when no override is set. */
export function parameterNames(stage: string): { thingerTokenParam: string; fleetKeyParam: string; answerKeyParam: string } {
  return {
    thingerTokenParam: `/thinger-provisioner/${stage}/thinger-token`,
    fleetKeyParam: `/thinger-provisioner/${stage}/fleet-key`,
    answerKeyParam: `/thinger-provisioner/${stage}/answer-key`,
  }
}
