const INITIAL_CAPACITY = 1 << 16
const MAX_LOAD = 0.5

/**
 * The device IDs a bulk derivation has seen, for duplicate detection in 24 to 48 bytes per row
 * outside the JavaScript heap (12-byte slots, a quarter to half of them used): each ID is remembered by a 64-bit fingerprint (the first 8 bytes of
 * its device key, an HMAC, so IDs cannot be chosen to collide without the fleet key) and the line
 * it was first seen on, in an open-addressing table that doubles when half full. Two different
 * IDs share a fingerprint with a chance of about n²/2^65 (1 in 37 million for a million rows);
 * such a pair would be reported as a duplicate, never given the same key.
 */
export class SeenDevices {
  #capacity = INITIAL_CAPACITY
  #size = 0
  #fingerprints = new Uint32Array(INITIAL_CAPACITY * 2)
  #lines = new Uint32Array(INITIAL_CAPACITY)

  /** How many IDs are remembered. */
  get size(): number {
    return this.#size
  }

  /** Bytes the table holds now (it grows by doubling). */
  get bytes(): number {
    return this.#fingerprints.byteLength + this.#lines.byteLength
  }

  /**
   * Remembers a device by its key, first seen on `line` (at least 1).
   * @returns the line it was first seen on when it was seen before, else `undefined`.
   */
  add(deviceKey: Buffer, line: number): number | undefined {
    // Zero marks an empty slot; a zero fingerprint becomes 1 (one more chance in 2^64 of a false duplicate).
    const high = deviceKey.readUInt32LE(0)
    const low = deviceKey.readUInt32LE(4) || (high === 0 ? 1 : 0)
    const slot = this.#find(high, low)
    if (this.#lines[slot] !== 0) return this.#lines[slot]
    this.#put(slot, high, low, line)
    if (++this.#size > this.#capacity * MAX_LOAD) this.#grow()
    return undefined
  }

  #find(high: number, low: number): number {
    const mask = this.#capacity - 1
    // The fingerprint is already uniformly random: its low bits are the hash.
    let slot = (low ^ high) & mask
    while (this.#lines[slot] !== 0 && (this.#fingerprints[slot * 2] !== high || this.#fingerprints[slot * 2 + 1] !== low)) slot = (slot + 1) & mask
    return slot
  }

  #put(slot: number, high: number, low: number, line: number): void {
    this.#fingerprints[slot * 2] = high
    this.#fingerprints[slot * 2 + 1] = low
    this.#lines[slot] = line
  }

  #grow(): void {
    const fingerprints = this.#fingerprints
    const lines = this.#lines
    this.#capacity *= 2
    this.#fingerprints = new Uint32Array(this.#capacity * 2)
    this.#lines = new Uint32Array(this.#capacity)
    for (let old = 0; old < lines.length; old++) {
      if (lines[old] === 0) continue
      const high = fingerprints[old * 2]!
      const low = fingerprints[old * 2 + 1]!
      this.#put(this.#find(high, low), high, low, lines[old]!)
    }
  }
}
