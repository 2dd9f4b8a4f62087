import { vi } from 'vitest'

/** Keeps what the process writes to stdout and stderr (the logger's lines) in `into`, instead of printing it; vi.restoreAllMocks() ends it. */
export function captureProcessOutput(into: string[]): void {
  const keep = (chunk: string | Uint8Array): boolean => {
    into.push(String(chunk))
    return true
  }
  vi.spyOn(process.stdout, 'write').mockImplementation(keep)
  vi.spyOn(process.stderr, 'write').mockImplementation(keep)
}
