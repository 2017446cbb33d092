/** The header-block helpers shared by the message facade (lib/message.ts) and the tail walk (tail.ts). */

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

/** Part of the header block lies past what parseHeaderBlock indexes (MAX_HEADER_BYTES): a field there is seen by others, not by us. */
export function headerBlockCut(raw: Buffer): boolean {
  const end = headerBlockEnd(raw);
  return end > MAX_HEADER_BYTES || (end < 0 && raw.length > MAX_HEADER_BYTES);
}

export function parseHeaderBlock(raw: Buffer): { headers: HeaderField[]; complete: boolean } {
  let end = headerBlockEnd(raw);
  const complete = end >= 0 && end <= MAX_HEADER_BYTES;
  if (end < 0 || end > MAX_HEADER_BYTES) end = Math.min(raw.length, MAX_HEADER_BYTES);
  // Read as mailauth reads it (byte for byte, as latin1; values decoded as UTF-8): what authentication
  // takes for a From: field, the rules and antispoof must too, and the reverse.
  const text = raw.subarray(0, end).toString('latin1');
  const utf8 = (part: string) => Buffer.from(part, 'latin1').toString('utf8');
  const headers: HeaderField[] = [];
  // A field's lines are joined once it is complete: appending each continuation to the value
  // so far would copy it per line, quadratic in a hostile field of 100,000 folds.
  let pieces: string[] = [];
  const finish = () => {
    if (pieces.length > 1) headers[headers.length - 1]!.value = pieces.filter(Boolean).join(' ');
    pieces = [];
  };
  let first = true;
  for (const line of text.split(/\r?\n/)) {
    // Any line after the first that starts with white space (a form feed too) continues a field;
    // the first line is a field even so (" From: x" is a From: to mailauth and to mail readers).
    if (!first && /^\s/.test(line)) {
      if (headers.length) pieces.push(utf8(line).trim());
      continue;
    }
    first = false;
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    // The name trimmed of white space on both sides, bytes as latin1 (a form feed or a 0xA0 byte
    // before the colon is trimmed, a UTF-8 no-break space is not). trim() is linear; a regex such
    // as /[ \t]+$/ is quadratic in blanks followed by more name (80,000 took 6 s).
    const name = line.slice(0, colon).trim();
    if (!/^[\x21-\x39\x3b-\x7e]+$/.test(name)) continue;
    finish();
    const value = utf8(line.slice(colon + 1)).trim();
    headers.push({ key: name.toLowerCase(), name, value });
    pieces.push(value);
  }
  finish();
  return { headers, complete };
}
