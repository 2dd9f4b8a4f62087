import { describe, expect, it } from 'vitest'
import { loadConfig } from '../../lib/config.js'
import { ConfigError } from '../../lib/errors.js'
import { captureError } from './capture-error.js'

const MINIMAL_ENV = { THINGER_USERNAME: 'alice' }

const expectConfigError = (env: NodeJS.ProcessEnv, setting: string, reason?: string): ConfigError => {
  const error = captureError(() => loadConfig(env))
  expect(error).toBeInstanceOf(ConfigError)
  const configError = error as ConfigError
  expect(configError).toMatchObject({ setting, code: 'internal_error', statusCode: 500, message: 'internal error' })
  if (reason !== undefined) expect(configError.detail).toBe(`setting ${setting}: ${reason}`)
  return configError
}

describe('Function: loadConfig', () => {
  describe('defaults', () => {
    it('fills every optional setting with its documented default', () => {
      // Act
      const config = loadConfig({ ...MINIMAL_ENV })

      // Assess
      expect(config).toEqual({
        thingerApiUrl: 'https://backend.thinger.io',
        thingerUsername: 'alice',
        thingerDeviceHost: 'backend.thinger.io',
        thingerTokenParam: '/thinger-provisioner/dev/thinger-token',
        answerKeyParam: '/thinger-provisioner/dev/answer-key',
        fleets: new Map([
          [
            'default',
            {
              name: 'default',
              proof: ['hmac'],
              keyParam: '/thinger-provisioner/dev/fleet-key',
              keyVersions: [1],
              denyListParam: '/thinger-provisioner/dev/default-deny-list',
              replayProtection: true,
              sealing: 'optional',
              devicePattern: expect.any(RegExp),
              reprovision: 'rotate',
              profile: { type: 'Generic' },
              thinger: { apiUrl: 'https://backend.thinger.io', username: 'alice', tokenParam: '/thinger-provisioner/dev/thinger-token', deviceHost: 'backend.thinger.io' },
            },
          ],
        ]),
        fleetsSource: 'environment',
        clockSkewSeconds: 300,
        ssmCacheSeconds: 300,
        thingerTimeoutMs: 5000,
      })
    })

    it('names the SSM parameters after STAGE', () => {
      // Act
      const config = loadConfig({ ...MINIMAL_ENV, STAGE: 'prod' })

      // Assess
      expect(config.thingerTokenParam).toBe('/thinger-provisioner/prod/thinger-token')
      expect(config.answerKeyParam).toBe('/thinger-provisioner/prod/answer-key')
      expect(config.fleets.get('default')?.keyParam).toBe('/thinger-provisioner/prod/fleet-key')
    })

    it('treats empty settings as absent', () => {
      // Act
      const config = loadConfig({
        ...MINIMAL_ENV,
        STAGE: '',
        THINGER_API_URL: '',
        THINGER_DEVICE_HOST: '',
        THINGER_TOKEN_PARAM: '',
        FLEET_KEY_PARAM: '',
        DEVICE_ID_PATTERN: '',
        CLOCK_SKEW_SECONDS: '',
        SSM_CACHE_SECONDS: '',
        THINGER_TIMEOUT_MS: '',
      })

      // Assess
      expect(config).toEqual(loadConfig({ ...MINIMAL_ENV }))
    })

    it('accepts by default exactly the device IDs Thinger.io accepts', () => {
      // Prepare
      const deviceIdPattern = loadConfig({ ...MINIMAL_ENV }).fleets.get('default')!.devicePattern

      // Act & Assess
      expect(deviceIdPattern.test('a')).toBe(true)
      expect(deviceIdPattern.test('esp32_a1b2-C3')).toBe(true)
      expect(deviceIdPattern.test('a'.repeat(32))).toBe(true)
      expect(deviceIdPattern.test('a'.repeat(33))).toBe(false)
      expect(deviceIdPattern.test('')).toBe(false)
      expect(deviceIdPattern.test('esp32.a1')).toBe(false)
      expect(deviceIdPattern.test('esp32 a1')).toBe(false)
    })

    it('derives the device host from a custom API URL, port included', () => {
      // Act
      const config = loadConfig({ ...MINIMAL_ENV, THINGER_API_URL: 'http://localhost:3000/' })

      // Assess
      expect(config.thingerApiUrl).toBe('http://localhost:3000')
      expect(config.thingerDeviceHost).toBe('localhost:3000')
    })
  })

  describe('explicit settings', () => {
    it('uses every setting given', () => {
      // Act
      const config = loadConfig({
        STAGE: 'prod',
        THINGER_API_URL: 'https://eu.example.test/api/',
        THINGER_USERNAME: 'fleet_owner-1',
        THINGER_DEVICE_HOST: 'mqtt.example.test:8883',
        THINGER_TOKEN_PARAM: '/custom/token',
        ANSWER_KEY_PARAM: '/custom/answer-key',
        FLEET_KEY_PARAM: '/custom/fleet.key',
        FLEET_KEY_VERSIONS: '2,1',
        DENY_LIST_PARAM: '/custom/deny',
        REPLAY_PROTECTION: 'off',
        SEALING: 'Required',
        DEVICE_ID_PATTERN: 'esp32_[0-9a-f]{12}',
        CLOCK_SKEW_SECONDS: '60',
        SSM_CACHE_SECONDS: '3600',
        THINGER_TIMEOUT_MS: '2500',
      })

      // Assess
      expect(config).toEqual({
        thingerApiUrl: 'https://eu.example.test/api',
        thingerUsername: 'fleet_owner-1',
        thingerDeviceHost: 'mqtt.example.test:8883',
        thingerTokenParam: '/custom/token',
        answerKeyParam: '/custom/answer-key',
        fleets: new Map([
          [
            'default',
            {
              name: 'default',
              proof: ['hmac'],
              keyParam: '/custom/fleet.key',
              keyVersions: [1, 2],
              denyListParam: '/custom/deny',
              replayProtection: false,
              sealing: 'required',
              devicePattern: /^(?:esp32_[0-9a-f]{12})$/,
              reprovision: 'rotate',
              profile: { type: 'Generic' },
              thinger: { apiUrl: 'https://eu.example.test/api', username: 'fleet_owner-1', tokenParam: '/custom/token', deviceHost: 'mqtt.example.test:8883' },
            },
          ],
        ]),
        fleetsSource: 'environment',
        clockSkewSeconds: 60,
        ssmCacheSeconds: 3600,
        thingerTimeoutMs: 2500,
      })
    })

    it.each([
      ['CLOCK_SKEW_SECONDS', '1', 'clockSkewSeconds', 1],
      ['CLOCK_SKEW_SECONDS', '86400', 'clockSkewSeconds', 86_400],
      ['SSM_CACHE_SECONDS', '1', 'ssmCacheSeconds', 1],
      ['SSM_CACHE_SECONDS', '86400', 'ssmCacheSeconds', 86_400],
      ['THINGER_TIMEOUT_MS', '100', 'thingerTimeoutMs', 100],
      ['THINGER_TIMEOUT_MS', '25000', 'thingerTimeoutMs', 25_000],
    ])('accepts %s=%s at the edge of its range', (setting, raw, key, expected) => {
      // Act
      const config = loadConfig({ ...MINIMAL_ENV, [setting]: raw })

      // Assess
      expect(config[key as keyof typeof config]).toBe(expected)
    })
  })

  describe('invalid settings', () => {
    it.each([
      ['missing', undefined],
      ['empty', ''],
    ])('throws ConfigError naming THINGER_USERNAME when it is %s', (_label, value) => {
      // Act & Assess
      expectConfigError({ THINGER_USERNAME: value }, 'THINGER_USERNAME', 'is required')
    })

    it.each([
      ['with a space', 'al ice'],
      ['33 characters', 'a'.repeat(33)],
      ['with a slash', 'alice/bob'],
    ])('throws ConfigError naming THINGER_USERNAME when it is %s', (_label, value) => {
      // Act & Assess
      expectConfigError({ THINGER_USERNAME: value }, 'THINGER_USERNAME', 'must match ^[A-Za-z0-9_-]{1,32}$')
    })

    it.each([
      ['not a URL', 'backend.thinger.io', 'must be an absolute http(s) URL'],
      ['a relative path', '/v1', 'must be an absolute http(s) URL'],
      ['not http(s)', 'ftp://backend.thinger.io', 'must be an absolute http(s) URL'],
      ['a websocket URL', 'wss://backend.thinger.io', 'must be an absolute http(s) URL'],
      ['with a query', 'https://backend.thinger.io/?authorization=x', 'must not carry credentials, a query or a fragment'],
      ['with a fragment', 'https://backend.thinger.io/#top', 'must not carry credentials, a query or a fragment'],
      ['with a user name', 'https://admin@backend.thinger.io', 'must not carry credentials, a query or a fragment'],
    ])('throws ConfigError naming THINGER_API_URL when it is %s', (_label, value, reason) => {
      // Act & Assess
      expectConfigError({ ...MINIMAL_ENV, THINGER_API_URL: value }, 'THINGER_API_URL', reason)
    })

    it('throws ConfigError naming THINGER_API_URL without repeating credentials found in it', () => {
      // Act
      const error = expectConfigError(
        { ...MINIMAL_ENV, THINGER_API_URL: 'https://alice:hunter2-secret@backend.thinger.io' },
        'THINGER_API_URL',
      )

      // Assess
      expect(error.detail).not.toContain('hunter2-secret')
      expect(error.message).not.toContain('hunter2-secret')
    })

    it.each([
      ['a URL', 'https://mqtt.example.test'],
      ['with a path', 'mqtt.example.test/x'],
      ['with a space', 'mqtt example'],
      ['with a six-digit port', 'mqtt.example.test:123456'],
    ])('throws ConfigError naming THINGER_DEVICE_HOST when it is %s', (_label, value) => {
      // Act & Assess
      expectConfigError({ ...MINIMAL_ENV, THINGER_DEVICE_HOST: value }, 'THINGER_DEVICE_HOST', 'must be a host name, optionally with :port')
    })

    it.each(['THINGER_TOKEN_PARAM', 'FLEET_KEY_PARAM', 'ANSWER_KEY_PARAM'])('throws ConfigError naming %s when it is not an SSM path', (setting) => {
      // Act & Assess
      for (const value of ['thinger-token', '/with space', '/with:colon', `/${'a'.repeat(2048)}`, 'arn:aws:ssm:eu-west-1:1:parameter/x']) {
        expectConfigError({ ...MINIMAL_ENV, [setting]: value }, setting, 'must be an SSM parameter path starting with /')
      }
    })

    it('throws ConfigError naming STAGE-derived parameters when STAGE makes them invalid', () => {
      // Act & Assess
      expectConfigError({ ...MINIMAL_ENV, STAGE: 'my stage' }, 'THINGER_TOKEN_PARAM')
    })

    it.each(['yes', 'on', 'v2', 'require'])('throws ConfigError naming SEALING when it is %j', (value) => {
      // Act & Assess
      expectConfigError({ ...MINIMAL_ENV, SEALING: value }, 'SEALING', 'must be required or optional')
    })

    it.each([
      ['an unclosed group', '(esp32'],
      ['an unclosed class', 'esp32_[0-9'],
      ['a dangling quantifier', '*esp32'],
      ['a parenthesis that would escape the anchors', 'a)|(b'],
    ])('throws ConfigError naming DEVICE_ID_PATTERN when it has %s', (_label, value) => {
      // Act & Assess
      expectConfigError({ ...MINIMAL_ENV, DEVICE_ID_PATTERN: value }, 'DEVICE_ID_PATTERN', 'must be a valid regular expression')
    })

    it.each([
      ['CLOCK_SKEW_SECONDS', '0', 'must be a whole number from 1 to 86400'],
      ['CLOCK_SKEW_SECONDS', '86401', 'must be a whole number from 1 to 86400'],
      ['CLOCK_SKEW_SECONDS', '1.5', 'must be a whole number from 1 to 86400'],
      ['CLOCK_SKEW_SECONDS', '-1', 'must be a whole number from 1 to 86400'],
      ['CLOCK_SKEW_SECONDS', '5m', 'must be a whole number from 1 to 86400'],
      ['CLOCK_SKEW_SECONDS', ' 300', 'must be a whole number from 1 to 86400'],
      ['CLOCK_SKEW_SECONDS', '3e2', 'must be a whole number from 1 to 86400'],
      ['SSM_CACHE_SECONDS', '0', 'must be a whole number from 1 to 86400'],
      ['SSM_CACHE_SECONDS', '99999999999999999999999', 'must be a whole number from 1 to 86400'],
      ['SSM_CACHE_SECONDS', 'forever', 'must be a whole number from 1 to 86400'],
      ['THINGER_TIMEOUT_MS', '99', 'must be a whole number from 100 to 25000'],
      ['THINGER_TIMEOUT_MS', '25001', 'must be a whole number from 100 to 25000'],
      ['THINGER_TIMEOUT_MS', '0x100', 'must be a whole number from 100 to 25000'],
    ])('throws ConfigError naming %s when it is %j', (setting, value, reason) => {
      // Act & Assess
      expectConfigError({ ...MINIMAL_ENV, [setting]: value }, setting, reason)
    })

    it('names the API URL before the user name when both are wrong', () => {
      // Act & Assess
      expectConfigError({ THINGER_API_URL: 'nope' }, 'THINGER_API_URL')
    })
  })
})
