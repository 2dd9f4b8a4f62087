/** Runs `operation` and returns what it threw; fails the test when it returns instead. */
export function captureError(operation: () => unknown): unknown {
  try {
    operation()
  } catch (error) {
    return error
  }
  throw new Error('expected the operation to throw, it returned')
}

/** Awaits `operation` and returns what it rejected with; fails the test when it resolves instead. */
export async function captureRejection(operation: () => Promise<unknown>): Promise<unknown> {
  try {
    await operation()
  } catch (error) {
    return error
  }
  throw new Error('expected the operation to reject, it resolved')
}
