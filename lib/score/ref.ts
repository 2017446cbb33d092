import { randomBytes } from 'node:crypto';

// Crockford base32: no I, L, O, U, so a ref read aloud over the phone survives.
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** A short reference id (7 characters, 35 bits) for one transaction. */
export function newRef(length = 7): string {
  const bytes = randomBytes(length);
  let out = '';
  for (let i = 0; i < length; i++) out += ALPHABET[bytes[i]! & 31];
  return out;
}
