// Taken before the handler's logger can be silenced, so the report always reaches the terminal.
const writeStdout = process.stdout.write.bind(process.stdout)
const writeStderr = process.stderr.write.bind(process.stderr)

/** Writes one line of the report to stdout. */
export function print(line = ''): void {
  writeStdout(`${line}\n`)
}

/** Writes a progress line to stderr, so stdout holds only the report. */
export function progress(line: string): void {
  writeStderr(`${line}\n`)
}

/**
 * Takes what anything else writes to stdout and stderr (the handler's one JSON log line per
 * request, thousands in a boot storm) away from the terminal until the returned function is
 * called, handing each line to `onLine`. The handler still formats and writes every line, so
 * that cost stays in the measured latency.
 */
export function muteProcessOutput(onLine: (line: string) => void = () => undefined): () => void {
  const sink = ((chunk: unknown, encodingOrCallback?: unknown, callback?: unknown) => {
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8')
    for (const line of text.split('\n')) if (line !== '') onLine(line)
    const done = typeof encodingOrCallback === 'function' ? encodingOrCallback : callback
    if (typeof done === 'function') queueMicrotask(() => (done as () => void)())
    return true
  }) as typeof process.stdout.write
  process.stdout.write = sink
  process.stderr.write = sink
  return () => {
    process.stdout.write = writeStdout
    process.stderr.write = writeStderr
  }
}

/** Renders rows as a plain-text table with aligned columns; columns listed in `rightAligned` are numbers. */
export function formatTable(header: string[], rows: string[][], rightAligned: ReadonlySet<number> = new Set()): string[] {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)))
  const line = (cells: string[]): string =>
    cells
      .map((cell, column) => (rightAligned.has(column) ? cell.padStart(widths[column] ?? 0) : cell.padEnd(widths[column] ?? 0)))
      .join('  ')
      .trimEnd()
  return [line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)]
}
