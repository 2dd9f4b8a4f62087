// Control characters (C0, DEL, C1), format characters (bidi overrides, zero-width), separators,
// private-use, unassigned and lone surrogate code points: what could move the cursor, recolour
// the terminal or reorder what an operator reads.
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Zl}\p{Zp}]|\p{Cs}/gu

/**
 * Writes every code point that is not plainly printable as `\uXXXX`, so what a device or
 * Thinger.io stored is shown, never acted on by the terminal. JSON text stays valid JSON.
 */
export function escapeUnprintable(text: string): string {
  return text.replace(UNPRINTABLE, (char) => {
    // UTF-16 units, as JSON writes a code point beyond the BMP.
    return char
      .split('')
      .map((unit) => `\\u${unit.charCodeAt(0).toString(16).padStart(4, '0')}`)
      .join('')
  })
}
