/** Stable codes of what the command line refuses or fails at; scripts may depend on them. */
export type CliErrorCode =
  | 'usage'
  | 'config'
  | 'not_found'
  | 'already_exists'
  | 'invalid_csv'
  | 'invalid_deny_list'
  | 'deny_list_too_large'
  | 'key_revoked'
  | 'aws_error'
  | 'thinger_error'
  | 'interrupted'
  | 'checks_failed'
  | 'invalid_certificate_request'
  | 'refused_answer'
  | 'not_sealed'
  | 'sealed_not_opened'
  | 'answer_unsigned'
  | 'answer_signature_invalid'

/** Exit code of a usage or configuration error; every other failure exits 1. */
export const EXIT_USAGE = 2
/** Exit code of a failure. */
export const EXIT_FAILURE = 1
/** Exit code after SIGINT or SIGTERM, as shells report a process killed by SIGINT. */
export const EXIT_INTERRUPTED = 130

const EXIT_CODE_BY_CODE: Record<CliErrorCode, number> = {
  usage: EXIT_USAGE,
  config: EXIT_USAGE,
  not_found: EXIT_FAILURE,
  already_exists: EXIT_FAILURE,
  invalid_csv: EXIT_FAILURE,
  invalid_deny_list: EXIT_FAILURE,
  deny_list_too_large: EXIT_FAILURE,
  key_revoked: EXIT_FAILURE,
  checks_failed: EXIT_FAILURE,
  aws_error: EXIT_FAILURE,
  thinger_error: EXIT_FAILURE,
  interrupted: EXIT_INTERRUPTED,
  invalid_certificate_request: EXIT_FAILURE,
  refused_answer: EXIT_FAILURE,
  not_sealed: EXIT_FAILURE,
  sealed_not_opened: EXIT_FAILURE,
  answer_unsigned: EXIT_FAILURE,
  answer_signature_invalid: EXIT_FAILURE,
}

/**
 * Every failure the command line reports on purpose. Its message is printed as is and never holds
 * a secret (no fleet key, device key, token or parameter value).
 */
export class CliError extends Error {
  readonly code: CliErrorCode
  readonly exitCode: number

  constructor(code: CliErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'CliError'
    this.code = code
    this.exitCode = EXIT_CODE_BY_CODE[code]
  }
}

/** One bad row of a device CSV. */
export interface CsvProblem {
  line: number
  reason: string
}

/** A device CSV has malformed or duplicate rows: nothing was written. */
export class CsvProblemsError extends CliError {
  /** The first problems found, in file order (at most the number the reader keeps). */
  readonly problems: CsvProblem[]
  /** How many problems the whole file has. */
  readonly total: number

  constructor(problems: CsvProblem[], total: number) {
    const lines = problems.map((problem) => `  line ${problem.line}: ${problem.reason}`)
    const more = total > problems.length ? [`  … and ${total - problems.length} more`] : []
    super('invalid_csv', [`${total} bad row${total === 1 ? '' : 's'}; no output was written:`, ...lines, ...more].join('\n'))
    this.problems = problems
    this.total = total
  }
}
