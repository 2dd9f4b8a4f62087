import { LOCAL_USERNAME } from '../../local/defaults.js'

/** What a test asks the local stack's Thinger.io emulator through its admin routes. */
export function emulatorClient(thingerUrl: string) {
  const json = async <T>(path: string, init?: RequestInit): Promise<T> => (await (await fetch(`${thingerUrl}${path}`, init)).json()) as T
  return {
    /** The HTTP status of a device login with this credential: 200 accepted, 401 refused. */
    async login(device: string, credential: string, username: string = LOCAL_USERNAME): Promise<number> {
      const response = await fetch(`${thingerUrl}/__emulator/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username, device, credential }),
      })
      await response.body?.cancel()
      return response.status
    },
    async callCount(): Promise<number> {
      return (await json<unknown[]>('/__emulator/calls')).length
    },
    resources: <T>(username: string = LOCAL_USERNAME) => json<T>(`/__emulator/resources/${username}`),
    async setFaults(rules: unknown[]): Promise<number> {
      const response = await fetch(`${thingerUrl}/__emulator/faults`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(rules) })
      await response.body?.cancel()
      return response.status
    },
    async clearFaults(): Promise<void> {
      await (await fetch(`${thingerUrl}/__emulator/faults`, { method: 'DELETE' })).body?.cancel()
    },
  }
}
