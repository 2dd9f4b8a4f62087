// Thinger's own error shape: a status and `{"error":{"message":...}}`. Models throw these;
// only the server turns them into HTTP.

type JsonObject = Record<string, unknown>

/** An error answered to the API caller with its status and Thinger's error body. */
export class EmulatorHttpError extends Error {
  constructor (readonly status: number, message: string) {
    super(message)
  }
}

export const badRequest = (message: string): EmulatorHttpError => new EmulatorHttpError(400, message)

export const errorBody = (message: string): JsonObject => ({ error: { message } })
