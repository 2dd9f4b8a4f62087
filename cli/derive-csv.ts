import { randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { type FileHandle, open, rename, stat, unlink } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { Transform, type TransformCallback } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { parse } from 'csv-parse'
import { deriveDeviceKey } from '../lib/attestation/keys.js'
import type { Fleet } from '../lib/fleets/fleet.js'
import { CliError, type CsvProblem, CsvProblemsError } from './errors.js'
import { SeenDevices } from './seen-devices.js'
import { findDeviceIdProblem, quote } from './settings.js'

/** The input column holding device IDs. */
export const DEVICE_COLUMN = 'device'
/** The output columns added after the input's own. */
export const KEY_COLUMN = 'device_key'
export const KEY_VERSION_COLUMN = 'key_version'
/** Problems listed one by one; beyond them only their number is reported. */
export const MAX_LISTED_PROBLEMS = 20
const READ_CHUNK_BYTES = 1024 * 1024
const WRITE_BATCH_CHARS = 64 * 1024
const PROGRESS_EVERY_ROWS = 4096
// The output holds device keys: readable by its owner only.
const OUTPUT_FILE_MODE = 0o600
const NEEDS_QUOTES = /[",\r\n]/
const LINE_BREAKS = /\r\n|\r|\n/g

export interface DeriveCsvOptions {
  input: string
  output: string
  fleetKey: Buffer
  keyVersion: number
  /** Device IDs must also match this fleet's pattern. */
  fleet?: Pick<Fleet, 'devicePattern'>
  /** Replace `output` when it exists (otherwise refused). */
  overwrite?: boolean
  /** Aborting stops the job and removes everything it wrote. */
  signal?: AbortSignal
  onProgress?: (rows: number, bytesRead: number, totalBytes: number) => void
  now?: () => number
}

export interface DeriveCsvResult {
  rows: number
  elapsedMs: number
  rowsPerSecond: number
}

interface ReaderState {
  rows: number
  problems: CsvProblem[]
  problemCount: number
}

/**
 * Derives the device key of every row of a CSV with a header row and a `device` column, streaming:
 * memory holds one batch of rows plus a fingerprint of each device seen (for duplicates, see
 * {@link SeenDevices}), whatever the file's length. The output is the input's columns followed by `device_key` and `key_version`,
 * written to a temporary file beside `output` (mode 0600) and renamed into place only when every
 * row is valid; on any problem, or when aborted, nothing is left behind.
 * @throws CsvProblemsError listing malformed and duplicate rows with their line numbers;
 *   CliError `usage` (output exists), `not_found` (input or folder), `invalid_csv` (no header),
 *   `interrupted` (aborted).
 */
export async function deriveKeysCsv(options: DeriveCsvOptions): Promise<DeriveCsvResult> {
  const now = options.now ?? Date.now
  const started = now()
  const totalBytes = await inputSize(options.input)
  await checkOutput(options)
  const temporary = join(dirname(options.output), `.${basename(options.output)}.${process.pid}-${randomBytes(4).toString('hex')}.partial`)
  let handle: FileHandle
  try {
    handle = await open(temporary, 'wx', OUTPUT_FILE_MODE)
  } catch (error) {
    throw new CliError('not_found', `cannot write beside --out ${options.output}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`, { cause: error })
  }
  const state: ReaderState = { rows: 0, problems: [], problemCount: 0 }
  const source = createReadStream(options.input, { highWaterMark: READ_CHUNK_BYTES })
  try {
    await pipeline(
      source,
      parse({ bom: true, relax_column_count: true, skip_empty_lines: false }),
      deriveRows(options, state, () => options.onProgress?.(state.rows, source.bytesRead, totalBytes)),
      // Flushed to disk before it is closed, so the rename never publishes a file still in the page cache only.
      handle.createWriteStream({ flush: true }),
      ...(options.signal ? [{ signal: options.signal }] : []),
    )
    await rename(temporary, options.output)
  } catch (error) {
    await handle.close().catch(() => undefined)
    await unlink(temporary).catch(() => undefined)
    throw toCliError(error, state)
  }
  options.onProgress?.(state.rows, totalBytes, totalBytes)
  const elapsedMs = Math.max(1, now() - started)
  return { rows: state.rows, elapsedMs, rowsPerSecond: (state.rows * 1000) / elapsedMs }
}

/** A field as CSV writes it: quoted only when it must be. */
export function formatCsvField(value: string): string {
  return NEEDS_QUOTES.test(value) ? `"${value.replace(/"/g, '""')}"` : value
}

function deriveRows(options: DeriveCsvOptions, state: ReaderState, reportProgress: () => void): Transform {
  const suffix = `,${options.keyVersion}\n`
  const seen = new SeenDevices()
  let columns = 0
  let deviceIndex = -1
  let nextLine = 1
  let batch = ''
  const problem = (line: number, reason: string): void => {
    state.problemCount++
    if (state.problems.length < MAX_LISTED_PROBLEMS) state.problems.push({ line, reason })
    batch = ''
  }
  return new Transform({
    writableObjectMode: true,
    transform(record: string[], _encoding: BufferEncoding, callback: TransformCallback) {
      const line = nextLine
      nextLine += 1 + lineBreaksIn(record)
      if (deviceIndex < 0) {
        const names = record.map((name) => name.trim())
        deviceIndex = names.indexOf(DEVICE_COLUMN)
        const problemWithHeader =
          deviceIndex < 0
            ? `the header row has no "${DEVICE_COLUMN}" column (found: ${record.map((name) => quote(name)).join(', ')})`
            : names.indexOf(DEVICE_COLUMN, deviceIndex + 1) >= 0
              ? `the header row has two "${DEVICE_COLUMN}" columns`
              : names.includes(KEY_COLUMN) || names.includes(KEY_VERSION_COLUMN)
                ? `the header row already has a "${KEY_COLUMN}" or "${KEY_VERSION_COLUMN}" column: is this an output file?`
                : undefined
        if (problemWithHeader !== undefined) return callback(new CliError('invalid_csv', `line ${line}: ${problemWithHeader}`))
        columns = record.length
        batch = `${record.map(formatCsvField).join(',')},${KEY_COLUMN},${KEY_VERSION_COLUMN}\n`
        return callback()
      }
      // An empty line: tolerated anywhere (a spreadsheet's trailing blank rows).
      if (record.length === 1 && record[0] === '') return callback()
      state.rows++
      const device = record[deviceIndex]
      if (record.length !== columns) {
        problem(line, `${record.length} field${record.length === 1 ? '' : 's'}, the header has ${columns}`)
      } else {
        const invalid = findDeviceIdProblem(device!, options.fleet)
        const key = invalid === undefined ? deriveDeviceKey(options.fleetKey, device!) : undefined
        const first = key === undefined ? undefined : seen.add(key, line)
        if (invalid !== undefined) problem(line, invalid)
        else if (first !== undefined) problem(line, `device ${quote(device!)} repeats line ${first}`)
        // After the first problem the output is discarded anyway: only validate the rest.
        else if (state.problemCount === 0) batch += `${record.map(formatCsvField).join(',')},${key!.toString('base64')}${suffix}`
      }
      if (state.rows % PROGRESS_EVERY_ROWS === 0) reportProgress()
      if (batch.length >= WRITE_BATCH_CHARS) {
        this.push(batch)
        batch = ''
      }
      callback()
    },
    flush(callback: TransformCallback) {
      if (deviceIndex < 0) return callback(new CliError('invalid_csv', `the file is empty: it needs a header row with a "${DEVICE_COLUMN}" column`))
      if (state.problemCount > 0) return callback(new CsvProblemsError(state.problems, state.problemCount))
      if (batch !== '') this.push(batch)
      callback()
    },
  })
}

function lineBreaksIn(record: string[]): number {
  let count = 0
  for (const field of record) {
    if (field.includes('\n') || field.includes('\r')) count += field.match(LINE_BREAKS)?.length ?? 0
  }
  return count
}

async function inputSize(input: string): Promise<number> {
  try {
    const info = await stat(input)
    if (!info.isFile()) throw new CliError('usage', `--csv ${input} is not a file`)
    return info.size
  } catch (error) {
    if (error instanceof CliError) throw error
    throw new CliError('not_found', `--csv ${input} cannot be read: ${(error as NodeJS.ErrnoException).code ?? 'error'}`, { cause: error })
  }
}

async function checkOutput(options: DeriveCsvOptions): Promise<void> {
  if (resolve(options.output) === resolve(options.input)) throw new CliError('usage', '--out must not be the input file')
  const existing = await stat(options.output).catch(() => undefined)
  if (existing?.isDirectory()) throw new CliError('usage', `--out ${options.output} is a folder`)
  if (existing !== undefined && options.overwrite !== true) throw new CliError('usage', `--out ${options.output} exists; add --force to replace it`)
}

function toCliError(error: unknown, state: ReaderState): unknown {
  if (error instanceof CliError) return error
  if ((error as Error)?.name === 'AbortError') return new CliError('interrupted', 'interrupted: no output was written', { cause: error })
  const csvError = error as { code?: unknown; lines?: unknown; message?: string }
  if (typeof csvError.code === 'string' && csvError.code.startsWith('CSV_')) {
    // The parser stops at a broken quote: what it found before still counts.
    const line = typeof csvError.lines === 'number' ? csvError.lines : 0
    const reason = (csvError.message ?? csvError.code).replace(/ at line \d+.*$/s, '')
    state.problemCount++
    state.problems.push({ line, reason: `${reason} (the file is not read past this point)` })
    return new CsvProblemsError(state.problems, state.problemCount)
  }
  return error
}
