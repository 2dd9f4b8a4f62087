import { DEFAULT_HTTP_PORT, DEFAULT_LAMBDA_PORT, DEFAULT_SSM_PORT, DEFAULT_THINGER_PORT } from './defaults.js'

/** A setting of the local tools (`npm start`, `npm run device`) that is not usable; the message names it. */
export class LocalSettingError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'LocalSettingError'
  }
}

/** The local stack's ports, each with the setting that moves it (README, "Settings"). */
export const PORT_SETTINGS = {
  httpPort: { name: 'HTTP_PORT', fallback: DEFAULT_HTTP_PORT },
  lambdaPort: { name: 'LAMBDA_PORT', fallback: DEFAULT_LAMBDA_PORT },
  thingerPort: { name: 'THINGER_EMULATOR_PORT', fallback: DEFAULT_THINGER_PORT },
  ssmPort: { name: 'SSM_PORT', fallback: DEFAULT_SSM_PORT },
} as const

/**
 * Reads a port setting from the environment, or its default when unset.
 * @throws LocalSettingError when it is not a port number.
 */
export function readPort(name: string, fallback: number, env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[name]
  if (raw === undefined || raw.trim() === '') return fallback
  if (!/^\d{1,5}$/.test(raw.trim()) || Number(raw) < 1 || Number(raw) > 65_535) {
    throw new LocalSettingError(`${name} must be a port number from 1 to 65535, got "${raw}"`)
  }
  return Number(raw)
}
