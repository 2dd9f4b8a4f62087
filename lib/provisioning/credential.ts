import { randomBytes } from 'node:crypto'

const CREDENTIAL_LENGTH = 24
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
// 248 is the largest multiple of 62 below 256: bytes at or above it are dropped so every character is equally likely.
const UNBIASED_BYTE_LIMIT = 256 - (256 % ALPHABET.length)

/** Generates a device credential: 24 characters of `[A-Za-z0-9]` from the CSPRNG (about 143 bits). */
export function generateCredential(length: number = CREDENTIAL_LENGTH): string {
  let credential = ''
  while (credential.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte >= UNBIASED_BYTE_LIMIT) continue
      credential += ALPHABET[byte % ALPHABET.length]
      if (credential.length === length) break
    }
  }
  return credential
}
