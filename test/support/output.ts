import { afterEach, beforeEach, expect, vi } from 'vitest'

/** Keeps what the process writes to stdout and stderr (the logger's lines) in `into`, instead of printing it; vi.restoreAllMocks() ends it. */
export function captureProcessOutput(into: string[]): void {
  const keep = (chunk: string | Uint8Array): boolean => {
    into.push(String(chunk))
    return true
  }
  vi.spyOn(process.stdout, 'write').mockImplementation(keep)
  vi.spyOn(process.stderr, 'write').mockImplementation(keep)
}

/**
 * For every test of the file: captures the process output (the handler's log lines) and, after the
 * test, whatever it did, fails if any of `secrets` (a token, a key, a credential the test saw)
 * reached it. Returns what the current test has captured so far.
 */
export function captureOutputOfEachTest(secrets: ReadonlySet<string>): () => string {
  let output: string[] = []
  beforeEach(() => {
    output = []
    captureProcessOutput(output)
  })
  afterEach(() => {
    vi.restoreAllMocks()
    const logs = output.join('')
    for (const secret of secrets) expect(logs).not.toContain(secret)
  })
  return () => output.join('')
}
