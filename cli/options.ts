import { readFile } from 'node:fs/promises'
import { InvalidArgumentError } from 'commander'
import { CliError } from './errors.js'

/** The highest key version a request may carry (lib/attestation/request.ts). */
export const MAX_KEY_VERSION = 999

/** Parses an option value as a whole number within bounds, for commander. */
export function parseWholeNumber(min: number, max: number): (value: string) => number {
  return (value) => {
    if (!/^\d{1,16}$/.test(value) || Number(value) < min || Number(value) > max) {
      throw new InvalidArgumentError(`must be a whole number from ${min} to ${max}`)
    }
    return Number(value)
  }
}

/** Parses `--key-version N`. */
export const parseKeyVersion = parseWholeNumber(1, MAX_KEY_VERSION)

/** Collects a repeatable option's values, for commander. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value]
}

/** Collects repeatable `KEY=VALUE` options into an object, for commander. */
export function collectPairs(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const separator = value.indexOf('=')
  if (separator < 1) throw new InvalidArgumentError('must be KEY=VALUE')
  return { ...previous, [value.slice(0, separator)]: value.slice(separator + 1) }
}

/** The text of the file an option names (`--device-key-file`, `--answer`); `not_found` naming the option when it cannot be read. */
export async function readOptionFile(file: string, option: string): Promise<string> {
  try {
    return await readFile(file, 'utf8')
  } catch (error) {
    throw new CliError('not_found', `${option} ${file} cannot be read: ${(error as NodeJS.ErrnoException).code ?? 'error'}`)
  }
}
