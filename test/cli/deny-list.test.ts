import { describe, expect, it } from 'vitest'
import {
  ADVANCED_TIER_MAX_BYTES,
  emptyDenyList,
  encodeDenyList,
  loadDenyList,
  saveDenyList,
  setDevicesRevoked,
  setKeyVersionsRetired,
  STANDARD_TIER_MAX_BYTES,
} from '../../cli/deny-list.js'
import { CliError } from '../../cli/errors.js'
import { MemorySsm } from './fakes.js'

const PARAM = '/thinger-provisioner/prod/default-deny-list'
const ids = (count: number, prefix = 'device_'): string[] => Array.from({ length: count }, (_, i) => `${prefix}${String(i).padStart(8, '0')}`)

describe('Function: setDevicesRevoked', () => {
  it('adds devices keeping the list sorted and reports only what changed', () => {
    // Prepare
    const list = { version: 1 as const, devices: ['b'], retiredKeyVersions: [2] }

    // Act
    const edit = setDevicesRevoked(list, ['c', 'a', 'b', 'a'], true)

    // Assess
    expect(edit.list).toEqual({ version: 1, devices: ['a', 'b', 'c'], retiredKeyVersions: [2] })
    expect(edit.changed).toEqual(['c', 'a'])
    expect(list.devices).toEqual(['b'])
  })

  it('is idempotent: revoking a revoked device changes nothing', () => {
    // Act
    const edit = setDevicesRevoked({ version: 1, devices: ['a'], retiredKeyVersions: [] }, ['a'], true)

    // Assess
    expect(edit.changed).toEqual([])
    expect(edit.list.devices).toEqual(['a'])
  })

  it('removes devices on unrevoke, ignoring ones not listed', () => {
    // Act
    const edit = setDevicesRevoked({ version: 1, devices: ['a', 'b'], retiredKeyVersions: [] }, ['a', 'z'], false)

    // Assess
    expect(edit.list.devices).toEqual(['b'])
    expect(edit.changed).toEqual(['a'])
  })
})

describe('Function: setKeyVersionsRetired', () => {
  it('retires and restores key versions, sorted numerically', () => {
    // Act
    const retired = setKeyVersionsRetired({ version: 1, devices: [], retiredKeyVersions: [10] }, [2, 1], true)
    const restored = setKeyVersionsRetired(retired.list, [10, 3], false)

    // Assess
    expect(retired.list.retiredKeyVersions).toEqual([1, 2, 10])
    expect(retired.changed).toEqual([2, 1])
    expect(restored.list.retiredKeyVersions).toEqual([1, 2])
    expect(restored.changed).toEqual([10])
  })
})

describe('Function: encodeDenyList', () => {
  it('writes the JSON the function reads, as a Standard parameter while it fits 4096 bytes', () => {
    // Act
    const encoded = encodeDenyList({ version: 1, devices: ['a', 'b'], retiredKeyVersions: [1] })

    // Assess
    expect(encoded).toEqual({ value: '{"version":1,"devices":["a","b"],"retiredKeyVersions":[1]}', bytes: encoded.value.length, tier: 'Standard' })
  })

  it('needs the Advanced tier beyond 4096 bytes', () => {
    // Prepare
    const devices = ids(250)

    // Act
    const encoded = encodeDenyList({ version: 1, devices, retiredKeyVersions: [] })

    // Assess
    expect(encoded.bytes).toBeGreaterThan(STANDARD_TIER_MAX_BYTES)
    expect(encoded.bytes).toBeLessThanOrEqual(ADVANCED_TIER_MAX_BYTES)
    expect(encoded.tier).toBe('Advanced')
  })

  it('throws deny_list_too_large beyond 8192 bytes, suggesting to drop devices gone for good', () => {
    // Prepare
    const devices = ids(500)

    // Act
    let error: unknown
    try {
      encodeDenyList({ version: 1, devices, retiredKeyVersions: [] })
    } catch (caught) {
      error = caught
    }

    // Assess
    expect(error).toBeInstanceOf(CliError)
    expect(error).toMatchObject({ code: 'deny_list_too_large', exitCode: 1 })
    expect((error as Error).message).toMatch(/more than the 8192.*unrevoke devices that are gone for good/)
  })
})

describe('Function: loadDenyList and saveDenyList', () => {
  it('reads a missing parameter as an empty list, then creates it as a String', async () => {
    // Prepare
    const ssm = new MemorySsm()

    // Act
    const read = await loadDenyList(ssm, PARAM)
    const warning = await saveDenyList(ssm, PARAM, read, setDevicesRevoked(read.list, ['dev_1'], true).list)

    // Assess
    expect(read).toEqual({ list: emptyDenyList(), version: 0 })
    expect(warning).toBeUndefined()
    expect(ssm.parameters.get(PARAM)).toMatchObject({ type: 'String', tier: 'Standard', version: 1, value: '{"version":1,"devices":["dev_1"],"retiredKeyVersions":[]}' })
  })

  it('keeps an Advanced parameter Advanced when the list shrinks again', async () => {
    // Prepare
    const ssm = new MemorySsm()
    const big = { version: 1 as const, devices: ids(250), retiredKeyVersions: [] }
    await saveDenyList(ssm, PARAM, await loadDenyList(ssm, PARAM), big)

    // Act
    const read = await loadDenyList(ssm, PARAM)
    await saveDenyList(ssm, PARAM, read, setDevicesRevoked(read.list, ids(240), false).list)

    // Assess
    expect(ssm.writes.map((write) => write.tier)).toEqual(['Advanced', undefined])
    expect(ssm.parameters.get(PARAM)).toMatchObject({ tier: 'Advanced', version: 2 })
    expect((await loadDenyList(ssm, PARAM)).list.devices).toHaveLength(10)
  })

  it('warns when someone else wrote the list between the read and the write', async () => {
    // Prepare
    const ssm = new MemorySsm()
    const read = await loadDenyList(ssm, PARAM)
    ssm.seed(PARAM, '{"version":1,"devices":["other"],"retiredKeyVersions":[]}', 'String')

    // Act
    const warning = await saveDenyList(ssm, PARAM, read, setDevicesRevoked(read.list, ['dev_1'], true).list)

    // Assess
    expect(warning).toContain('changed while this command ran')
  })

  it('refuses to edit a parameter that is not a deny list, and leaves it alone', async () => {
    // Prepare
    const ssm = new MemorySsm()
    ssm.seed(PARAM, '["dev_1"]', 'String')

    // Act
    let error: unknown
    try {
      await loadDenyList(ssm, PARAM)
    } catch (caught) {
      error = caught
    }

    // Assess
    expect(error).toMatchObject({ code: 'invalid_deny_list' })
    expect(ssm.parameters.get(PARAM)!.value).toBe('["dev_1"]')
  })
})
