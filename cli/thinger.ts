import type { Config } from '../lib/config.js'
import type { Fleet } from '../lib/fleets/fleet.js'
import { ThingerHttpError, ThingerNetworkError, ThingerTimeoutError } from '../lib/thinger/errors.js'
import type { CliContext, CliThinger } from './context.js'
import { CliError } from './errors.js'

/**
 * A Thinger.io client for the fleet's account (its own `thinger` target, or the deployment's),
 * with the token read from SSM (`tokenParam`, by default the fleet's, as the function reads it).
 * The token is never shown.
 * @throws CliError `not_found` when the parameter does not exist, or what the SSM read throws.
 */
export async function connectThinger(context: CliContext, config: Config, tokenParam: string | undefined, fleet: Pick<Fleet, 'thinger'>): Promise<CliThinger> {
  const target = fleet.thinger
  const name = tokenParam ?? target.tokenParam
  const stored = await context.ssm().getParameter(name)
  const token = stored?.value.trim() ?? ''
  const setting = tokenParam ? '--token-param' : name === config.thingerTokenParam ? 'THINGER_TOKEN_PARAM' : "the fleet's thinger.tokenParam"
  if (token === '') throw new CliError('not_found', `the Thinger.io token parameter ${name} (${setting}) does not exist or is empty`)
  return context.thinger({ baseUrl: target.apiUrl, username: target.username, token, timeoutMs: config.thingerTimeoutMs })
}

/**
 * Runs one Thinger.io call, turning its failure into a message for the operator.
 * @throws CliError `thinger_error`, with `hint` appended (what state the command left).
 */
export async function thingerCall<T>(call: () => Promise<T>, hint = ''): Promise<T> {
  try {
    return await call()
  } catch (error) {
    const suffix = hint ? `; ${hint}` : ''
    if (error instanceof ThingerHttpError) {
      const why =
        error.status === 401 || error.status === 403
          ? ': the token is refused or lacks the permission for this call'
          : error.upstreamMessage
            ? ` (${error.upstreamMessage})`
            : ''
      throw new CliError('thinger_error', `${error.message}${why}${suffix}`, { cause: error })
    }
    if (error instanceof ThingerNetworkError || error instanceof ThingerTimeoutError) {
      throw new CliError('thinger_error', `${error.message} (THINGER_API_URL)${suffix}`, { cause: error })
    }
    throw error
  }
}
