/** The header-block helpers shared by the message facade (lib/message.ts) and the tail walk (tail.ts). */
import { trimChars } from '../util/text';

/** One header field, unfolded. `key` is the lower-case name. */
export interface HeaderField {
  key: string;
  name: string;
  value: string;
}

/** Upper bound on the header block we index; the rest is still delivered untouched. */
export const MAX_HEADER_BYTES = 1024 * 1024;

export function headerBlockEnd(raw: Buffer): number {
  const crlf = raw.indexOf('\r\n\r\n');
  const lf = raw.indexOf('\n\n');
  if (crlf < 0) return lf;
  if (lf < 0) return crlf;
  return Math.min(crlf, lf);
}

export function parseHeaderBlock(raw: Buffer): { headers: HeaderField[]; complete: boolean } {
  let end = headerBlockEnd(raw);
  const complete = end >= 0 && end <= MAX_HEADER_BYTES;
  if (end < 0 || end > MAX_HEADER_BYTES) end = Math.min(raw.length, MAX_HEADER_BYTES);
  const text = raw.subarray(0, end).toString('utf8');
  const headers: HeaderField[] = [];
  // A field's lines are joined once it is complete: appending each continuation to the value
  // so far would copy it per line, quadratic in a hostile field of 100,000 folds.
  let pieces: string[] = [];
  const finish = () => {
    if (pieces.length > 1) headers[headers.length - 1]!.value = pieces.filter(Boolean).join(' ');
    pieces = [];
  };
  for (const line of text.split(/\r?\n/)) {
    if (/^[ \t]/.test(line) && headers.length) {
      pieces.push(line.trim());
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    // Only blanks may stand before the colon (obsolete syntax): trim() would also take a NBSP or form
    // feed, and read as From: a line that other parsers (mailauth's) skip. A loop: /[ \t]+$/ is
    // quadratic in blanks followed by more name (80,000 took 6 s; scan and learn have no line limit).
    const name = trimChars(line.slice(0, colon), '', ' \t');
    if (!/^[\x21-\x39\x3b-\x7e]+$/.test(name)) continue;
    finish();
    const value = line.slice(colon + 1).trim();
    headers.push({ key: name.toLowerCase(), name, value });
    pieces.push(value);
  }
  finish();
  return { headers, complete };
}
