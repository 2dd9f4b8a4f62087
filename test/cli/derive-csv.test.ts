import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { decodeFleetKey, deriveDeviceKey } from '../../lib/attestation/keys.js'
import { deriveKeysCsv, MAX_LISTED_PROBLEMS } from '../../cli/derive-csv.js'
import { CliError, CsvProblemsError } from '../../cli/errors.js'
import { captureRejection } from '../lib/capture-error.js'

// The protocol test vector (docs/protocol.md).
const VECTOR_FLEET_KEY = 'dGhpbmdlci1wcm92aXNpb25lci10ZXN0LWZsZWV0LWtleS0wMDE='
const VECTOR_DEVICE = 'esp32_a1b2c3d4e5f6'
const VECTOR_DEVICE_KEY = 'slJ/UknDHHGumvra+RjeJHZq2Cp87+EN3n7coIJFlxA='
const fleetKey = decodeFleetKey(VECTOR_FLEET_KEY, 'test')
const keyOf = (device: string): string => deriveDeviceKey(fleetKey, device).toString('base64')

describe('Function: deriveKeysCsv', () => {
  let dir: string
  const input = (): string => join(dir, 'devices.csv')
  const output = (): string => join(dir, 'keys.csv')
  const derive = (text: string | Buffer, options: Partial<Parameters<typeof deriveKeysCsv>[0]> = {}) => {
    writeFileSync(input(), text)
    return deriveKeysCsv({ input: input(), output: output(), fleetKey, keyVersion: 1, ...options })
  }
  const failure = async (promise: Promise<unknown>): Promise<CliError> => (await captureRejection(() => promise)) as CliError

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'derive-csv-'))
  })

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true })
  })

  it('derives the protocol test vector’s device key and adds device_key and key_version after the input columns', async () => {
    // Act
    const result = await derive(`device,site\n${VECTOR_DEVICE},north_3\n`)

    // Assess
    expect(result.rows).toBe(1)
    expect(readFileSync(output(), 'utf8')).toBe(`device,site,device_key,key_version\n${VECTOR_DEVICE},north_3,${VECTOR_DEVICE_KEY},1\n`)
    expect(readdirSync(dir).sort()).toEqual(['devices.csv', 'keys.csv'])
  })

  it('writes the output readable by its owner only, since it holds device keys', async () => {
    // Act
    await derive(`device\n${VECTOR_DEVICE}\n`)

    // Assess
    expect(statSync(output()).mode & 0o777).toBe(0o600)
  })

  it('tolerates a BOM, CRLF line ends, a missing final newline, blank lines and any column order', async () => {
    // Prepare
    const text = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(`batch,device\r\n7,${VECTOR_DEVICE}\r\n\r\n7,dev_2`)])

    // Act
    const result = await derive(text, { keyVersion: 2 })

    // Assess
    expect(result.rows).toBe(2)
    expect(readFileSync(output(), 'utf8')).toBe(`batch,device,device_key,key_version\n7,${VECTOR_DEVICE},${VECTOR_DEVICE_KEY},2\n7,dev_2,${keyOf('dev_2')},2\n`)
  })

  it('copies other columns through, quoting them only where CSV requires', async () => {
    // Prepare
    const text = 'device,note\ndev_1,"north, shelf ""3"""\ndev_2,"two\nlines"\ndev_3,plain\n'

    // Act
    await derive(text)

    // Assess
    expect(readFileSync(output(), 'utf8')).toBe(
      'device,note,device_key,key_version\n' +
        `dev_1,"north, shelf ""3""",${keyOf('dev_1')},1\n` +
        `dev_2,"two\nlines",${keyOf('dev_2')},1\n` +
        `dev_3,plain,${keyOf('dev_3')},1\n`,
    )
  })

  it('reports every malformed and duplicate row with its line number and leaves no output file', async () => {
    // Prepare
    const text = ['device,site', 'dev_1,a', 'bad id,b', 'dev_1,c', 'dev_2', 'dev_3,"multi', 'line"', 'dev_4,d,extra', 'dev_3,e', ''].join('\n')

    // Act
    const error = await failure(derive(text))

    // Assess
    expect(error).toBeInstanceOf(CsvProblemsError)
    expect(error.exitCode).toBe(1)
    expect((error as CsvProblemsError).problems).toEqual([
      { line: 3, reason: '"bad id" is not a Thinger.io device ID (^[A-Za-z0-9_-]{1,32}$)' },
      { line: 4, reason: 'device "dev_1" repeats line 2' },
      { line: 5, reason: '1 field, the header has 2' },
      { line: 8, reason: '3 fields, the header has 2' },
      { line: 9, reason: 'device "dev_3" repeats line 6' },
    ])
    expect(error.message).toContain('5 bad rows; no output was written')
    expect(readdirSync(dir)).toEqual(['devices.csv'])
  })

  it('checks the fleet’s devicePattern too', async () => {
    // Act
    const error = await failure(derive('device\ngh_0123456789ab\nesp32_1\n', { fleet: { devicePattern: /^(?:gh_[0-9a-f]{12})$/ } }))

    // Assess
    expect((error as CsvProblemsError).problems).toEqual([{ line: 3, reason: '"esp32_1" does not match the fleet\'s devicePattern ^(?:gh_[0-9a-f]{12})$' }])
  })

  it(`lists the first ${MAX_LISTED_PROBLEMS} problems and counts the rest`, async () => {
    // Prepare
    const rows = Array.from({ length: 50 }, (_, i) => `bad.${i}`)

    // Act
    const error = (await failure(derive(['device', ...rows].join('\n')))) as CsvProblemsError

    // Assess
    expect(error.problems).toHaveLength(MAX_LISTED_PROBLEMS)
    expect(error.problems[0]!.line).toBe(2)
    expect(error.total).toBe(50)
    expect(error.message).toContain('… and 30 more')
  })

  it('stops at a broken quote, reporting its line with the problems found before it', async () => {
    // Act
    const error = (await failure(derive('device,site\ndev_1,a\ndev_1,b\ndev_2,"un"closed\ndev_3,c\n'))) as CsvProblemsError

    // Assess
    expect(error.problems[0]).toEqual({ line: 3, reason: 'device "dev_1" repeats line 2' })
    expect(error.problems[1]!.line).toBe(4)
    expect(error.problems[1]!.reason).toMatch(/Invalid Closing Quote.*not read past this point/)
    expect(readdirSync(dir)).toEqual(['devices.csv'])
  })

  it.each([
    ['has no device column', 'id,site\na,b\n', 'line 1: the header row has no "device" column (found: "id", "site")'],
    ['is an output file already', `device,device_key,key_version\n${VECTOR_DEVICE},x,1\n`, 'already has a "device_key"'],
    ['is empty', '', 'the file is empty'],
  ])('refuses a file that %s', async (_label, text, message) => {
    // Act
    const error = await failure(derive(text))

    // Assess
    expect(error).toBeInstanceOf(CliError)
    expect(error.code).toBe('invalid_csv')
    expect(error.message).toContain(message)
    expect(readdirSync(dir)).toEqual(['devices.csv'])
  })

  it('refuses to replace an existing output unless asked to, and then replaces it whole', async () => {
    // Prepare
    writeFileSync(output(), 'keys of an earlier batch\n')

    // Act
    const refused = await failure(derive(`device\n${VECTOR_DEVICE}\n`))
    await derive(`device\n${VECTOR_DEVICE}\n`, { overwrite: true })

    // Assess
    expect(refused).toMatchObject({ code: 'usage', exitCode: 2 })
    expect(readFileSync(output(), 'utf8')).toBe(`device,device_key,key_version\n${VECTOR_DEVICE},${VECTOR_DEVICE_KEY},1\n`)
  })

  it('leaves an existing output untouched when the new input is bad', async () => {
    // Prepare
    writeFileSync(output(), 'keys of an earlier batch\n')

    // Act
    await failure(derive('device\ndev_1\ndev_1\n', { overwrite: true }))

    // Assess
    expect(readFileSync(output(), 'utf8')).toBe('keys of an earlier batch\n')
    expect(readdirSync(dir).sort()).toEqual(['devices.csv', 'keys.csv'])
  })

  it('removes everything it wrote when aborted midway', async () => {
    // Prepare
    const rows = Array.from({ length: 200_000 }, (_, i) => `dev_${i}`)
    const abort = new AbortController()

    // Act
    const error = await failure(
      derive(['device', ...rows].join('\n'), {
        signal: abort.signal,
        onProgress: (done) => {
          if (done >= 20_000) abort.abort()
        },
      }),
    )

    // Assess
    expect(error).toMatchObject({ code: 'interrupted', exitCode: 130 })
    expect(readdirSync(dir)).toEqual(['devices.csv'])
  })

  it('reports progress with the bytes read, ending at the file size', async () => {
    // Prepare
    const rows = Array.from({ length: 10_000 }, (_, i) => `dev_${i}`)
    const reports: Array<[number, number, number]> = []

    // Act
    await derive(['device', ...rows].join('\n'), { onProgress: (...report) => reports.push(report) })

    // Assess
    const size = statSync(input()).size
    expect(reports.length).toBeGreaterThan(1)
    expect(reports.at(-1)).toEqual([10_000, size, size])
  })

  it('fails with not_found for a missing input, naming it', async () => {
    // Act
    const error = await failure(deriveKeysCsv({ input: join(dir, 'nope.csv'), output: output(), fleetKey, keyVersion: 1 }))

    // Assess
    expect(error).toMatchObject({ code: 'not_found' })
    expect(error.message).toContain('nope.csv')
  })
})
