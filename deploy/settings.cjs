'use strict'
// The settings serverless.yml cannot take as they are, and how a wrong one is reported. osls wraps
// an error thrown while resolving serverless.yml in its own text and the resolver's stack trace,
// once for every place the value is used; a user's mistake (a missing setting, a wrong fleets
// file) reads instead as one line saying what to set or fix, and the command exits with 1.

const THINGER_USERNAME_PATTERN = /^[A-Za-z0-9_-]{1,32}$/

/** A mistake in the deployment's settings or files, told to the user in one line. */
class SettingError extends Error {
  constructor(message) {
    super(message)
    this.name = 'SettingError'
  }
}

/** Prints `message` as one line on stderr and ends the osls command. */
function exitWithOneLine(message) {
  process.stderr.write(`✖ ${message.replace(/:\n\s*-\s*/, ': ').replace(/\n\s*-\s*/g, '; ').replace(/\n/g, ' ')}\n`)
  process.exit(1)
}

/** Wraps a serverless.yml resolver: the given kinds of error end the command with one line, others go to osls. */
function reportingMistakes(resolver, kinds = []) {
  return async (...args) => {
    try {
      return await resolver(...args)
    } catch (error) {
      if (error instanceof SettingError || kinds.some((kind) => error instanceof kind)) exitWithOneLine(error.message)
      throw error
    }
  }
}

function thingerUsername(env = process.env) {
  const value = env.THINGER_USERNAME
  if (!value) throw new SettingError('THINGER_USERNAME is not set: set it to the Thinger.io account the devices are created in, e.g. THINGER_USERNAME=acme npx osls deploy')
  if (!THINGER_USERNAME_PATTERN.test(value)) throw new SettingError(`THINGER_USERNAME "${value}" is not a Thinger.io user name: letters, digits, _ and -, at most 32`)
  return value
}

module.exports = {
  SettingError,
  reportingMistakes,
  thingerUsername,
  /** serverless.yml: THINGER_USERNAME, required. */
  resolveThingerUsername: reportingMistakes(() => thingerUsername()),
}
