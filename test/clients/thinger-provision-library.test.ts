import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

const LIBRARY = 'clients/ThingerProvision'
// Twelve C++ compiles on a busy machine: a limit for a hung compiler, not a speed assertion.
const COMPILE_LIMIT_MS = 120_000
const compiler = spawnSync('sh', ['-c', 'echo "#include <mbedtls/md.h>" | c++ -x c++ -E - >/dev/null'], { stdio: 'ignore' }).status === 0

function properties(): Record<string, string> {
  const text = readFileSync(join(LIBRARY, 'library.properties'), 'utf8')
  return Object.fromEntries(text.split('\n').filter((line) => line.includes('=')).map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]))
}

/** Every file under a folder, relative to the repository, skipping what git ignores here. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (['node_modules', '.git', 'build', '.local-stack', '.esbuild', '.serverless'].includes(entry.name)) return []
    return entry.isDirectory() ? filesUnder(path) : [path]
  })
}

describe('Library: ThingerProvision (Arduino and PlatformIO)', () => {
  it('describes the same library and version for Arduino and PlatformIO', () => {
    // Act
    const arduino = properties()
    const platformio = JSON.parse(readFileSync(join(LIBRARY, 'library.json'), 'utf8'))

    // Assess
    expect(platformio.name).toBe(arduino.name)
    expect(platformio.version).toBe(arduino.version)
    expect(arduino.version).toMatch(/^\d+\.\d+\.\d+$/)
    expect(platformio.headers).toEqual([arduino.includes])
    expect(existsSync(join(LIBRARY, 'src', arduino.includes!))).toBe(true)
  })

  it('has the Arduino layout: each example is a folder holding the sketch of the same name', () => {
    // Act
    const examples = readdirSync(join(LIBRARY, 'examples'))
    const declared = JSON.parse(readFileSync(join(LIBRARY, 'library.json'), 'utf8')).examples as { base: string; files: string[] }[]

    // Assess
    expect(examples.length).toBeGreaterThan(0)
    for (const example of examples) expect(existsSync(join(LIBRARY, 'examples', example, `${example}.ino`))).toBe(true)
    for (const example of declared) for (const file of example.files) expect(existsSync(join(LIBRARY, example.base, file))).toBe(true)
  })

  it('is the only copy of the C core, and the sketch includes it from the installed library', () => {
    // Act
    const copies = filesUnder('.').filter((path) => /(^|\/)thinger_provision\.[ch]$/.test(path))
    const sketch = readFileSync(join(LIBRARY, 'examples/thinger_provisioning/thinger_provisioning.ino'), 'utf8')

    // Assess
    expect(copies.sort()).toEqual([join(LIBRARY, 'src/thinger_provision.c'), join(LIBRARY, 'src/thinger_provision.h')])
    expect(sketch).toMatch(/^#include <thinger_provision\.h>$/m)
  })

  it.skipIf(!compiler)('compiles the ESP32 sketch on the host against the stub headers, with the key in NVS, in eFuse and as an X.509 P-256 key, and stops the eFuse build on a chip without the HMAC peripheral or beside X.509, and the X.509 build without an answer key (a compile check, not a chip build)', () => {
    // Prepare
    const buildDir = mkdtempSync(join(tmpdir(), 'sketch-check-'))

    // Act
    const make = spawnSync('make', ['-C', 'clients/c', 'sketch-check', `BUILD_DIR=${buildDir}`], { encoding: 'utf8' })
    rmSync(buildDir, { recursive: true, force: true })

    // Assess
    expect(make.stderr).toBe('')
    expect(make.status).toBe(0)
    expect(make.stdout).toContain('with the device key in NVS (with and without a pinned answer key) and in eFuse, and with an X.509 certificate and P-256 key')
    expect(make.stdout).toContain('stops on a chip without the HMAC peripheral, when eFuse and X.509 are both asked for, and for X.509 without an answer key')
  }, COMPILE_LIMIT_MS)
})
