import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { SeenDevices } from '../../cli/seen-devices.js'

const keyOf = (device: string): Buffer => createHash('sha256').update(device).digest()

describe('Class: SeenDevices', () => {
  it('returns the first line of a device seen before, and undefined for a new one', () => {
    // Prepare
    const seen = new SeenDevices()

    // Act
    const first = seen.add(keyOf('a'), 2)
    const other = seen.add(keyOf('b'), 3)
    const repeat = seen.add(keyOf('a'), 9)

    // Assess
    expect([first, other, repeat]).toEqual([undefined, undefined, 2])
    expect(seen.size).toBe(2)
  })

  it('keeps every device through its growth, in at most 48 bytes per device', () => {
    // Prepare
    const seen = new SeenDevices()
    const count = 300_000

    // Act
    for (let i = 0; i < count; i++) seen.add(keyOf(`dev_${i}`), i + 2)
    const repeats = [0, 1, 65_536, count - 1].map((i) => seen.add(keyOf(`dev_${i}`), 1))

    // Assess
    expect(repeats).toEqual([2, 3, 65_538, count + 1])
    expect(seen.size).toBe(count)
    expect(seen.bytes / count).toBeLessThanOrEqual(48)
  })

  it('tells apart fingerprints that are zero or differ in one half only', () => {
    // Prepare
    const seen = new SeenDevices()
    const zero = Buffer.alloc(32)
    const highOnly = Buffer.alloc(32)
    highOnly.writeUInt32LE(1, 0)
    const lowOnly = Buffer.alloc(32)
    lowOnly.writeUInt32LE(2, 4)

    // Act
    const added = [seen.add(zero, 2), seen.add(highOnly, 3), seen.add(lowOnly, 4)]

    // Assess
    expect(added).toEqual([undefined, undefined, undefined])
    expect(seen.add(zero, 5)).toBe(2)
  })
})
