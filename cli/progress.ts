const REDRAW_INTERVAL_MS = 100
const DEFAULT_COLUMNS = 80
const MIN_BAR_CHARS = 10
const MAX_BAR_CHARS = 40
const CLEAR_LINE = '\r\x1b[2K'

/** Where progress is drawn: a terminal's stderr, or anything that is not one (then nothing is drawn). */
export interface ProgressStream {
  write(text: string): unknown
  isTTY?: boolean
  columns?: number
}

/** A progress line redrawn in place at most every 100 ms, on a terminal only. */
export interface ProgressBar {
  update(rows: number, bytesDone: number, totalBytes: number): void
  /** Erases the line, so the summary that follows starts clean. */
  done(): void
}

/** Groups thousands with commas: 1,000,000. */
export function formatCount(value: number): string {
  return Math.round(value).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',')
}

/**
 * Draws the progress of a bulk job on `stream` when it is a terminal: percentage of the input
 * read, a bar, rows done and rows per second.
 */
export function createProgressBar(stream: ProgressStream, options: { now?: () => number } = {}): ProgressBar {
  const now = options.now ?? Date.now
  const started = now()
  let lastDrawn = Number.NEGATIVE_INFINITY
  let drawn = false
  if (stream.isTTY !== true) return { update: () => undefined, done: () => undefined }
  return {
    update(rows, bytesDone, totalBytes) {
      const at = now()
      if (at - lastDrawn < REDRAW_INTERVAL_MS) return
      lastDrawn = at
      drawn = true
      stream.write(CLEAR_LINE + renderProgress(rows, bytesDone, totalBytes, at - started, stream.columns ?? DEFAULT_COLUMNS))
    },
    done() {
      if (drawn) stream.write(CLEAR_LINE)
    },
  }
}

/** One progress line, at most `columns - 1` characters wide. */
export function renderProgress(rows: number, bytesDone: number, totalBytes: number, elapsedMs: number, columns: number): string {
  const fraction = totalBytes > 0 ? Math.min(1, bytesDone / totalBytes) : 0
  const rate = elapsedMs > 0 ? (rows * 1000) / elapsedMs : 0
  const text = ` ${String(Math.floor(fraction * 100)).padStart(3)}%  ${formatCount(rows)} rows  ${formatCount(rate)} rows/s`
  const width = Math.max(MIN_BAR_CHARS, Math.min(MAX_BAR_CHARS, columns - text.length - 3))
  const filled = Math.round(fraction * width)
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]${text}`.slice(0, Math.max(1, columns - 1))
}
