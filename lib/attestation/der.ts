/**
 * A strict reader of the few DER structures of an X.509 certificate that `node:crypto`'s
 * `X509Certificate` does not expose (key usage bits, basic constraints' path length, the exact
 * subject CN and SAN entries, critical extensions). It only reads: every length is checked
 * against its parent, so a hostile certificate ends in {@link DerError}, never a wrong answer.
 */

const MAX_LENGTH_OCTETS = 3

/** One DER element: its tag byte, its content, and the bytes that follow it in its parent. */
export interface DerElement {
  tag: number
  content: Buffer
}

/** Raised for any byte sequence that is not the DER the reader expects. */
export class DerError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'DerError'
  }
}

export const DER_TAG = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  oid: 0x06,
  utf8String: 0x0c,
  printableString: 0x13,
  ia5String: 0x16,
  utcTime: 0x17,
  generalizedTime: 0x18,
  sequence: 0x30,
  set: 0x31,
} as const

/** Reads one element at `offset`; returns it and the offset after it. @throws DerError */
export function readElement(bytes: Buffer, offset = 0): DerElement & { end: number } {
  if (offset + 2 > bytes.length) throw new DerError('truncated element')
  const tag = bytes[offset] as number
  if ((tag & 0x1f) === 0x1f) throw new DerError('high tag numbers are not used in certificates')
  let length = bytes[offset + 1] as number
  let start = offset + 2
  if (length & 0x80) {
    const octets = length & 0x7f
    if (octets === 0 || octets > MAX_LENGTH_OCTETS || start + octets > bytes.length) throw new DerError('bad length')
    length = 0
    for (let i = 0; i < octets; i++) length = length * 256 + (bytes[start + i] as number)
    // DER: the shortest form only.
    if (length < 0x80 || (bytes[start] as number) === 0) throw new DerError('length not in its shortest form')
    start += octets
  }
  const end = start + length
  if (end > bytes.length) throw new DerError('element longer than its parent')
  return { tag, content: bytes.subarray(start, end), end }
}

/** Reads the elements of a constructed element's content, all of it. @throws DerError */
export function readChildren(content: Buffer): DerElement[] {
  const children: DerElement[] = []
  let offset = 0
  while (offset < content.length) {
    const { tag, content: childContent, end } = readElement(content, offset)
    children.push({ tag, content: childContent })
    offset = end
  }
  return children
}

/** Reads an element that must be the whole of `bytes` and have tag `tag`. @throws DerError */
export function readWhole(bytes: Buffer, tag: number): Buffer {
  const element = readElement(bytes)
  if (element.end !== bytes.length) throw new DerError('trailing bytes')
  if (element.tag !== tag) throw new DerError(`expected tag 0x${tag.toString(16)}`)
  return element.content
}

/** Expects `element` to have tag `tag`. @throws DerError */
export function expectTag(element: DerElement | undefined, tag: number, what: string): DerElement {
  if (element === undefined || element.tag !== tag) throw new DerError(`${what}: missing or of the wrong type`)
  return element
}

/** The dotted form of an OID's content bytes. @throws DerError */
export function oidToString(content: Buffer): string {
  if (content.length === 0 || ((content[content.length - 1] as number) & 0x80) !== 0) throw new DerError('bad OID')
  const arcs: number[] = []
  let value = 0
  for (const byte of content) {
    if (value === 0 && byte === 0x80) throw new DerError('OID arc not in its shortest form')
    value = value * 128 + (byte & 0x7f)
    if (value > Number.MAX_SAFE_INTEGER / 128) throw new DerError('OID arc too large')
    if ((byte & 0x80) === 0) {
      if (arcs.length === 0) arcs.push(value < 80 ? Math.floor(value / 40) : 2, value < 80 ? value % 40 : value - 80)
      else arcs.push(value)
      value = 0
    }
  }
  return arcs.join('.')
}

/** A UTCTime or GeneralizedTime (the forms RFC 5280 allows: `Z`, whole seconds) in Unix seconds. @throws DerError */
export function readTime(element: DerElement | undefined): number {
  if (element === undefined) throw new DerError('missing time')
  const text = element.content.toString('latin1')
  const match =
    element.tag === DER_TAG.utcTime
      ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text)
      : element.tag === DER_TAG.generalizedTime
        ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text)
        : null
  if (match === null) throw new DerError('time not in the form RFC 5280 allows')
  const [, yearText, month, day, hour, minute, second] = match as unknown as [string, string, string, string, string, string, string]
  let year = Number(yearText)
  // RFC 5280 4.1.2.5.1: two-digit years 50-99 are 19xx, 00-49 are 20xx.
  if (element.tag === DER_TAG.utcTime) year += year >= 50 ? 1900 : 2000
  const millis = Date.UTC(year, Number(month) - 1, Number(day), Number(hour), Number(minute), Number(second))
  const check = new Date(millis)
  if (check.getUTCMonth() !== Number(month) - 1 || check.getUTCDate() !== Number(day) || Number(hour) > 23 || Number(minute) > 59 || Number(second) > 59) {
    throw new DerError('time is not a calendar date')
  }
  return Math.floor(millis / 1000)
}

/** A non-negative INTEGER as lowercase hex without leading zero bytes (how serials are written). @throws DerError */
export function readUnsignedHex(element: DerElement | undefined, what: string): string {
  const { content } = expectTag(element, DER_TAG.integer, what)
  if (content.length === 0) throw new DerError(`${what}: empty integer`)
  if (content.length > 1 && content[0] === 0 && ((content[1] as number) & 0x80) === 0) throw new DerError(`${what}: integer not in its shortest form`)
  if (content.length > 1 && content[0] === 0xff && ((content[1] as number) & 0x80) !== 0) throw new DerError(`${what}: integer not in its shortest form`)
  let start = 0
  while (start < content.length - 1 && content[start] === 0) start++
  return content.subarray(start).toString('hex')
}

/** The DER encoding of an element read by {@link readElement}: the reader accepts the shortest length form only, so this is the original bytes. */
export function encodeElement(element: DerElement): Buffer {
  const { length } = element.content
  let header: number[]
  if (length < 0x80) header = [element.tag, length]
  else {
    const octets: number[] = []
    for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) octets.unshift(rest % 256)
    header = [element.tag, 0x80 | octets.length, ...octets]
  }
  return Buffer.concat([Buffer.from(header), element.content])
}
