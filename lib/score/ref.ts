import { randomBytes } from 'node:crypto';

// Crockford base32: no I, L, O, U, so a ref read aloud over the phone survives.
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/**
 * A reference id for one transaction: 10 characters, 50 bits. It is the
 * tracking row's key and the quarantine file's name, fleet-wide: at 7
 * characters (35 bits) two transactions shared a ref every 250,000 or so,
 * and the second row was dropped as a replay (about 26 rows a day at 100,000
 * messages a day kept 90 days). At 50 bits a node fleet keeping 9 million
 * rows sees a repeat with odds of a few in a hundred per retention period,
 * and a quarantine put never overwrites (files.ts).
 */
export function newRef(length = 10): string {
  const bytes = randomBytes(length);
  let out = '';
  for (let i = 0; i < length; i++) out += ALPHABET[bytes[i]! & 31];
  return out;
}
