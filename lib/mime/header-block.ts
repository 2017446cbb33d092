/** The header-block helpers shared by the message facade (lib/message.ts) and the tail walk (tail.ts). */

/** One header field, unfolded. `key` is the lower-case name. */
export interface HeaderField {
  key: string;
  name: string;
  value: string;
  /**
   * fieldsPastIndex only: this is the field the cut falls in, and the index holds it (its name and
   * colon lie before the cut) with its value cut short. Decided by position, never by comparing
   * text: a different field whose value merely starts with an indexed one's is another field.
   */
  cutShort?: boolean;
}

/** Upper bound on the header block we index; the rest is still delivered untouched. */
export const MAX_HEADER_BYTES = 1024 * 1024;

/**
 * Where the header block ends, as mailauth (its DKIM message parser) and Haraka end it: at the first
 * LF, optional CR, LF. So `\r\n\r\n`, `\n\n` (and `\r\n\n`, which holds it) and also `\n\r\n` (bare-LF
 * header lines, then a CRLF blank line): what follows it is body to them, so it must be to us, or a
 * body's quoted `From:` line becomes a header field. `end`: just past the last field's line ending
 * (where the blank line starts); `bodyStart`: just past the blank line. Undefined without one.
 */
export function headerBlockBounds(raw: Buffer): { end: number; bodyStart: number } | undefined {
  // The CRLF form first: in CRLF mail (the usual) it ends the header, and the LF form, which
  // CRLF mail has nowhere, is then looked for within the header only, not through the whole body.
  const crlf = raw.indexOf('\n\r\n');
  const lf = (crlf < 0 ? raw : raw.subarray(0, crlf + 1)).indexOf('\n\n');
  const at = lf >= 0 ? lf : crlf;
  if (at < 0) return undefined;
  return { end: at + 1, bodyStart: at + (raw[at + 1] === 0x0d ? 3 : 2) };
}

/** headerBlockBounds' `end` (just past the last field's line ending), or -1 without a blank line. */
export function headerBlockEnd(raw: Buffer): number {
  return headerBlockBounds(raw)?.end ?? -1;
}

/**
 * Where the last field's text ends, its own line ending (LF or CRLF) left out, given headerBlockBounds'
 * `end`. This, not `end`, is what must lie within MAX_HEADER_BYTES for the index to hold every field
 * whole: a block of fields filling the 1 MB, whose last CRLF falls just past it, is indexed whole
 * (its trailing CR is no part of a field), not cut.
 */
function fieldsEnd(raw: Buffer, end: number): number {
  return end - (end >= 2 && raw[end - 2] === 0x0d ? 2 : 1);
}

/**
 * Where the last field's text ends in a message without a blank line (all header): at its end, its
 * final line ending (CRLF, LF or a lone CR) left out, as fieldsEnd leaves it out before a blank line.
 */
function unterminatedFieldsEnd(raw: Buffer): number {
  const n = raw.length;
  if (raw[n - 1] === 0x0a) return n - (n >= 2 && raw[n - 2] === 0x0d ? 2 : 1);
  return raw[n - 1] === 0x0d ? n - 1 : n;
}

/** Part of the header block lies past what parseHeaderBlock indexes (MAX_HEADER_BYTES): a field there is seen by others, not by us. */
export function headerBlockCut(raw: Buffer): boolean {
  const bounds = headerBlockBounds(raw);
  return (bounds ? fieldsEnd(raw, bounds.end) : unterminatedFieldsEnd(raw)) > MAX_HEADER_BYTES;
}

/**
 * One field of a header block, split as mailauth splits it (see splitHeaderFields). `start` and
 * `end` are its offsets in the text: its first line's start, the end of its last line's ending.
 */
export interface RawHeaderField {
  /** What precedes the first colon (which may be on a continuation line), or without one the whole field, trimmed of white space; not lower-cased. */
  name: string;
  /** The value's lines without their endings: the rest of the colon's line, then the lines below it; undefined without a colon. */
  value?: string[];
  start: number;
  end: number;
}

/**
 * The header block's text (latin1, one character per byte) split into fields as mailauth splits it,
 * so that what DKIM, DMARC and every mailward reader take for a field is one and the same field:
 * a line that starts with white space (a form feed or a 0xA0 byte too) continues the field above
 * it; the first line starts a field even so (" From: x" is a From: to mailauth and to mail
 * readers); a field's name is trimmed of white space on both sides (String.prototype.trim, as
 * mailauth does: linear, where a regex such as /[ \t]+$/ is quadratic in blanks followed by more
 * name). Lines end at \n or \r\n, as mailauth splits them. Linear in the text: a forger writes it.
 */
export function splitHeaderFields(text: string): RawHeaderField[] {
  const fields: RawHeaderField[] = [];
  let lines: string[] = [];
  let start = 0;
  const finish = (end: number) => {
    if (!lines.length) return;
    const at = lines.findIndex((line) => line.includes(':'));
    if (at < 0) {
      fields.push({ name: lines.join('').trim(), start, end });
    } else {
      const colon = lines[at]!.indexOf(':');
      const name = (lines.slice(0, at).join('') + lines[at]!.slice(0, colon)).trim();
      fields.push({ name, value: [lines[at]!.slice(colon + 1), ...lines.slice(at + 1)], start, end });
    }
    lines = [];
  };
  let at = 0;
  for (const piece of text.split('\n')) {
    if (at >= text.length) break; // what follows the block's last line ending is no line
    const line = piece.endsWith('\r') ? piece.slice(0, -1) : piece;
    if (!(lines.length && /^\s/.test(line))) {
      finish(at);
      start = at;
    }
    lines.push(line);
    at += piece.length + 1;
  }
  finish(text.length);
  return fields;
}

export function parseHeaderBlock(raw: Buffer): { headers: HeaderField[]; complete: boolean } {
  const bounds = headerBlockBounds(raw);
  // Complete when every field lies within the limit (headerBlockCut's test), though the last one's
  // line ending may not: the text read then ends at the limit, in that ending.
  const complete = !!bounds && fieldsEnd(raw, bounds.end) <= MAX_HEADER_BYTES;
  const end = Math.min(bounds?.end ?? raw.length, MAX_HEADER_BYTES);
  // Read as mailauth reads it (byte for byte, as latin1; values decoded as UTF-8): what authentication
  // takes for a From: field, the rules and antispoof must too, and the reverse.
  const text = raw.subarray(0, end).toString('latin1');
  const utf8 = (part: string) => Buffer.from(part, 'latin1').toString('utf8');
  const headers: HeaderField[] = [];
  for (const { name, value } of splitHeaderFields(text)) {
    // A field without a colon, or whose name is not printable ASCII, is no header (its continuation
    // lines go with it: they never join the field above it, as they do not for mailauth).
    if (!value || !/^[\x21-\x39\x3b-\x7e]+$/.test(name)) continue;
    // Folded lines joined once the field is whole, blank ones dropped: appending each to the
    // value so far would copy it per line, quadratic in a hostile field of 100,000 folds.
    headers.push({ key: name.toLowerCase(), name, value: value.map((piece) => utf8(piece).trim()).filter(Boolean).join(' ') });
  }
  return { headers, complete };
}

/**
 * Fields named `keys` (lower case) that lie past what parseHeaderBlock indexes, when the header
 * block is cut (headerBlockCut): mailauth and mail readers read the whole header, so a forger
 * can put a From: after 1 MB of padding fields. Read from the start of the field the cut falls in,
 * split as splitHeaderFields splits (names trimmed, continuation lines joined). One linear walk
 * by line, with no array of lines (the rest of the block may be 20 MB of tiny lines); only the
 * fields asked for are decoded.
 */
export function fieldsPastIndex(raw: Buffer, keys: readonly string[]): HeaderField[] {
  if (!headerBlockCut(raw)) return [];
  // Where mailauth (and Haraka) end the header (headerBlockBounds): what follows is body, whose
  // quoted From: lines (a forward, a digest) must not be claimed as fields.
  const bounds = headerBlockBounds(raw);
  // Up to the end of the last field's text (without a blank line, of the message, a final CR left out).
  const last = bounds ? fieldsEnd(raw, bounds.end) : raw[raw.length - 1] === 0x0d ? raw.length - 1 : raw.length;
  if (last <= MAX_HEADER_BYTES) return [];
  const text = raw.subarray(0, last).toString('latin1');
  const continues = (at: number) => at > 0 && /\s/.test(text[at] ?? '') && !(text[at] === '\r' && (at + 1 >= text.length || text[at + 1] === '\n'));
  // Back to the first line of the field the cut falls in: its name may have been indexed with its value cut short.
  let start = text.lastIndexOf('\n', MAX_HEADER_BYTES - 1) + 1;
  while (continues(start)) start = text.lastIndexOf('\n', start - 2) + 1;
  const fields: HeaderField[] = [];
  const finish = (from: number, to: number) => {
    const field = text.slice(from, to);
    const colon = field.indexOf(':');
    if (colon < 0) return;
    const name = field.slice(0, colon).replace(/\r?\n/g, '').trim();
    const key = name.toLowerCase();
    if (!keys.includes(key) || !/^[\x21-\x39\x3b-\x7e]+$/.test(name)) return;
    // Decoded once, then split: per line, a 20 MB field of blank continuation lines cost a Buffer
    // and a decode per line (5 s). The same text either way: no UTF-8 sequence holds a CR or an LF.
    const decoded = Buffer.from(field.slice(colon + 1), 'latin1').toString('utf8');
    const value = decoded.split('\n').map((piece) => piece.trim()).filter(Boolean).join(' ');
    // Its colon before the cut: parseHeaderBlock indexed this field (same name), its value cut short.
    fields.push({ key, name, value, ...(from + colon < MAX_HEADER_BYTES ? { cutShort: true } : {}) });
  };
  let fieldStart = start;
  let at = start;
  while (at < text.length) {
    const nl = text.indexOf('\n', at);
    const next = nl < 0 ? text.length : nl + 1;
    if (next < text.length && !continues(next)) {
      finish(fieldStart, next);
      fieldStart = next;
    }
    at = next;
  }
  finish(fieldStart, text.length);
  return fields;
}

/**
 * Characters of field values past the index (fieldsPastIndex) that are parsed as addresses: each
 * costs a parse and a domain look-up (400,000 in 13 MB took 6 s). Ordinary mail never gets here.
 */
export const PAST_INDEX_BUDGET = 256 * 1024;

/**
 * Of fields read past the index, the values within PAST_INDEX_BUDGET (`read`; the field the budget
 * runs out in cut at its last comma within it, so no address is read cut short) and the rest
 * (`unread`: that field's remainder, and every field after it whole). Antispoof and auth budget
 * the same text this one way.
 */
export function withinPastBudget(fields: readonly HeaderField[]): { read: HeaderField[]; unread: HeaderField[] } {
  const read: HeaderField[] = [];
  const unread: HeaderField[] = [];
  let left = PAST_INDEX_BUDGET;
  for (const field of fields) {
    if (unread.length) unread.push(field);
    else if (field.value.length <= left) {
      read.push(field);
      left -= field.value.length;
    } else {
      const cut = field.value.lastIndexOf(',', left);
      if (cut > 0) read.push({ ...field, value: field.value.slice(0, cut) });
      unread.push({ ...field, value: field.value.slice(Math.max(cut, 0)) });
    }
  }
  return { read, unread };
}
