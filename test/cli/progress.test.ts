import { describe, expect, it } from 'vitest'
import { createProgressBar, formatCount, renderProgress } from '../../cli/progress.js'

describe('Function: renderProgress', () => {
  it('shows the share of the input read, a bar, rows and rows per second', () => {
    // Act
    const line = renderProgress(250_000, 50, 100, 2000, 80)

    // Assess
    expect(line).toMatch(/^\[#+-+\]  50%  250,000 rows  125,000 rows\/s$/)
    expect(line.length).toBeLessThan(80)
  })

  it('fits a narrow terminal', () => {
    // Act
    const line = renderProgress(1, 1, 1, 1, 30)

    // Assess
    expect(line.length).toBeLessThanOrEqual(29)
  })
})

describe('Function: createProgressBar', () => {
  it('redraws in place at most every 100 ms on a terminal, and erases itself when done', () => {
    // Prepare
    let clock = 0
    const writes: string[] = []
    const bar = createProgressBar({ write: (text: string) => writes.push(text), isTTY: true, columns: 80 }, { now: () => clock })

    // Act
    bar.update(10, 1, 10)
    clock = 50
    bar.update(20, 2, 10)
    clock = 150
    bar.update(30, 3, 10)
    bar.done()

    // Assess
    expect(writes).toHaveLength(3)
    expect(writes[0]).toMatch(/^\r\x1b\[2K\[/)
    expect(writes[1]).toContain('30 rows')
    expect(writes[2]).toBe('\r\x1b[2K')
  })

  it('draws nothing when stderr is not a terminal', () => {
    // Prepare
    const writes: string[] = []
    const bar = createProgressBar({ write: (text: string) => writes.push(text) })

    // Act
    bar.update(10, 1, 10)
    bar.done()

    // Assess
    expect(writes).toEqual([])
  })
})

describe('Function: formatCount', () => {
  it('groups thousands', () => {
    expect([formatCount(0), formatCount(999), formatCount(1000), formatCount(1_234_567.4)]).toEqual(['0', '999', '1,000', '1,234,567'])
  })
})
