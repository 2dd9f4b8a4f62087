import { describe, expect, it } from 'vitest'
import { generateCredential } from '../../../lib/provisioning/credential.js'

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
const SAMPLE_CREDENTIALS = 20_000
// 61 degrees of freedom: mean 61, standard deviation 11. 200 is over 12 deviations out (p far below 1e-15),
// yet the modulo bias of dropping no bytes (A-H 25% more likely) gives a statistic in the thousands.
const CHI_SQUARE_BOUND = 200

describe('Function: generateCredential', () => {
  it('returns 24 characters of [A-Za-z0-9] by default', () => {
    // Act
    const credential = generateCredential()

    // Assess
    expect(credential).toMatch(/^[A-Za-z0-9]{24}$/)
  })

  it.each([1, 7, 24, 100, 500])('returns %i characters of [A-Za-z0-9] when asked', (length) => {
    // Act
    const credential = generateCredential(length)

    // Assess
    expect(credential).toHaveLength(length)
    expect(credential).toMatch(/^[A-Za-z0-9]+$/)
  })

  it('returns an empty string for length 0', () => {
    // Act & Assess
    expect(generateCredential(0)).toBe('')
  })

  it('returns 1000 distinct credentials in 1000 calls', () => {
    // Act
    const credentials = Array.from({ length: 1000 }, () => generateCredential())

    // Assess
    expect(new Set(credentials).size).toBe(1000)
  })

  it('draws every character of the alphabet about equally often', () => {
    // Prepare
    const counts = new Map<string, number>([...ALPHABET].map((character) => [character, 0]))

    // Act
    for (let i = 0; i < SAMPLE_CREDENTIALS; i++) {
      for (const character of generateCredential()) counts.set(character, (counts.get(character) ?? 0) + 1)
    }

    // Assess
    expect([...counts.keys()].sort().join('')).toBe([...ALPHABET].sort().join(''))
    const total = SAMPLE_CREDENTIALS * 24
    const expected = total / ALPHABET.length
    let chiSquare = 0
    for (const count of counts.values()) {
      expect(count).toBeGreaterThan(0)
      chiSquare += (count - expected) ** 2 / expected
    }
    expect(chiSquare).toBeLessThan(CHI_SQUARE_BOUND)
  })
})
