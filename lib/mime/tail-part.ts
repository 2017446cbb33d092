/** What the tail walk (tail.ts) reads of one part: its Content-* fields and type, where its header and delimiter lines end, where a base64 body resumes. */
import PostalMime from 'postal-mime';
import { trimChars } from '../util/text';
import { isBase64Char } from './limits';

/** Longest boundary followed (RFC 2046 allows 70 characters). */
const MAX_BOUNDARY_LENGTH = 200;

/** postal-mime's reading of a structured header value (type, parameters; comments, quotes and RFC 2231 sections as it takes them). */
interface StructuredValue {
  value: string;
  params: Record<string, string>;
}
let structuredParser: { parseStructuredHeader(value: string): StructuredValue } | undefined;

/**
 * A Content-Type or Content-Disposition value read by postal-mime's own
 * parser (a method of its part node, stateless), so the walk takes the same
 * boundary as the decoder that reads the parts: a parser of our own differed
 * on RFC 2231 sections (`boundary*0=`, `boundary*=utf-8''B`), blanks inside
 * quotes and `(` inside a value, and each difference hid every text part past
 * the cut.
 */
function parseStructured(value: string): StructuredValue {
  structuredParser ??= (new PostalMime() as unknown as { root: { parseStructuredHeader(value: string): StructuredValue } }).root;
  return structuredParser.parseStructuredHeader(value);
}

/** The first of each field of a part's header block that decides how postal-mime reads its body. */
export interface ContentFields {
  type?: string;
  disposition?: string;
  encoding?: string;
}

/**
 * The first Content-Type, Content-Disposition and Content-Transfer-Encoding of a part's header block,
 * unfolded as postal-mime unfolds them (the line break dropped, the folding
 * blanks kept; trailing CRs dropped from each line), not as parseHeaderBlock
 * does (blanks collapsed), which changes a folded quoted boundary.
 */
function contentFields(block: Buffer): ContentFields {
  const fields: ContentFields = {};
  const text = block.toString('utf8');
  // Only the lines that start these fields are looked at: parsing every line of a header block of
  // 1 MB in 3-byte lines took 140 ms a part. A field starts a line (a continuation starts with a blank).
  const starts = /(?:^|\n)content-(type|disposition|transfer-encoding)[ \t]*:/gi;
  for (let m = starts.exec(text); m; m = starts.exec(text)) {
    const key = m[1]!.toLowerCase() as 'type' | 'disposition' | 'transfer-encoding';
    const name = key === 'transfer-encoding' ? 'encoding' : key;
    if (fields[name] !== undefined) continue;
    // The field's first line and its continuations, each without its trailing CRs, joined as postal-mime unfolds them.
    const pieces: string[] = [];
    let at = m.index + m[0].length;
    for (;;) {
      const lf = text.indexOf('\n', at);
      const line = trimChars(text.slice(at, lf < 0 ? text.length : lf), '', '\r');
      if (pieces.length && !line) break;
      pieces.push(line);
      if (lf < 0 || (text[lf + 1] !== ' ' && text[lf + 1] !== '\t')) break;
      at = lf + 1;
    }
    // trimChars, not a regex: /[ \t]+$/ is quadratic in a long blank run followed by more text.
    fields[name] = trimChars(pieces.join('').replace(/\r+/g, ' '), ' \t');
    starts.lastIndex = Math.max(starts.lastIndex, at);
  }
  return fields;
}

/**
 * What the walk needs of one part's header block: its media type (RFC 2046
 * defaults), boundary, and whether postal-mime reads its text into the body:
 * a text/plain or text/html part not disposed as an attachment, or a
 * message/rfc822 disposed inline or not at all (its text is the body's too,
 * as MUAs show it; tailTextRanges drops it from a report, as postal-mime does).
 */
export function tailPartType(block: Buffer, digest: boolean): { type: string; boundary?: string; read: boolean; fields: ContentFields } {
  const fields = contentFields(block);
  const contentType = parseStructured(fields.type ?? '');
  const type = contentType.value || (digest ? 'message/rfc822' : 'text/plain');
  const boundary = type.startsWith('multipart/') ? contentType.params.boundary : undefined;
  const disposition = parseStructured(fields.disposition ?? '').value;
  const read = type === 'message/rfc822' ? (disposition || 'inline') === 'inline' : (type === 'text/plain' || type === 'text/html') && disposition !== 'attachment';
  return { type, boundary: boundary && boundary.length <= MAX_BOUNDARY_LENGTH ? boundary : undefined, read, fields };
}

/**
 * Where the header block starting at `at` ends (just past its blank line), or
 * -1 when no blank line comes before `limit`. A blank line is empty but for
 * CRs, as postal-mime reads a line (it drops CRs before the LF): one written
 * `\r\r\n` ended the header for postal-mime and a mail client, not for a
 * search of `\n\r\n`, and the part's text went unread. Linear: each line is
 * looked at once, and only its leading CRs are scanned.
 */
export function blankLineEnd(raw: Buffer, at: number, limit: number): number {
  for (let line = at; line < limit; ) {
    const lf = raw.indexOf(0x0a, line);
    if (lf < 0 || lf >= limit) return -1;
    let i = line;
    while (i < lf && raw[i] === 0x0d) i++;
    if (i === lf) return lf + 1;
    line = lf + 1;
  }
  return -1;
}

/** A text part to decode past the cut: a header block of its Content-* fields alone, and where its body lies in the message. */
/**
 * Where to resume decoding a base64 body at `cut` so that its 4-character
 * units line up as they did from `bodyStart`: postal-mime joins the lines
 * and decodes in units of 4 alphabet characters, a run of `=` closing one.
 * Started at the cut after a count of characters that is not a multiple of 4
 * (lines of 77 characters, one of 6), the rest decodes to noise: a spammer's
 * text would be hidden. The characters of the unit the cut splits are skipped
 * (at most 3: up to 2 decoded bytes lost). Cheap: one backward search, one
 * pass over the bytes before the cut (2 MB at most, milliseconds).
 */
export function base64Resume(raw: Buffer, bodyStart: number, cut: number, end: number): number {
  const pad = raw.lastIndexOf(0x3d, cut - 1);
  let count = 0;
  for (let i = Math.max(bodyStart, pad + 1); i < cut; i++) if (isBase64Char(raw[i]!)) count++;
  let skip = (4 - (count % 4)) % 4;
  let at = cut;
  while (skip > 0 && at < end && raw[at] !== 0x3d) if (isBase64Char(raw[at++]!)) skip--;
  return at;
}

export interface TailPart {
  header: Buffer;
  start: number;
  end: number;
  /** An inline message/rfc822: dropped when the message turns out to be a report. */
  message: boolean;
  /**
   * Set when the line or byte budget (`by`) cut its reading short in what is not padding by its
   * bytes: if it is HTML, what was read is judged decoded (htmlLooksLikePadding), with what the
   * body before `start` (from `bodyStart`, in its transfer `encoding`) leaves open (unshownOpenAt).
   */
  readInPart?: { by: 'lines' | 'bytes'; bodyStart: number; encoding: string };
}

/** A part's Content-Transfer-Encoding as postal-mime takes it: comments out, trimmed, lower case. */
export function transferEncoding(fields: ContentFields): string {
  return (fields.encoding ?? '').replace(/\([^()]*\)/g, '').trim().toLowerCase();
}

/** The header block postal-mime needs to decode a part's body (type, charset, transfer encoding, disposition), one field a line. */
export function decodingHeader(fields: ContentFields, type: string): Buffer {
  // The type as the walk took it when the part has none: message/rfc822 in a digest, which a part decoded alone would not know.
  const lines = [`Content-Type: ${fields.type || type}`];
  if (fields.encoding !== undefined) lines.push(`Content-Transfer-Encoding: ${fields.encoding}`);
  if (fields.disposition !== undefined) lines.push(`Content-Disposition: ${fields.disposition}`);
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'utf8');
}

/** A multipart the walk is inside: its delimiter as searched for, and what is known of where it next stands. */
export interface OpenMultipart {
  /** `\n--` and the boundary: a delimiter line starts just past the line end. */
  search: Buffer;
  digest: boolean;
  /** Start of the next delimiter line found (valid while at or after the walk's position), or -1. */
  hit: number;
  /** No delimiter line of it starts before this (from where the walk was when it looked). */
  clearTo: number;
}

/** Where the delimiter line whose `\n--boundary` ends at `at` ends (past its LF, or the message end), and whether it closes; end -1 when it is not one. */
export function delimiterLineEnd(raw: Buffer, at: number): { end: number; close: boolean } {
  let i = at;
  const close = raw[i] === 0x2d && raw[i + 1] === 0x2d;
  if (close) i += 2;
  // As postal-mime reads a line: blanks may follow the boundary (RFC 2046), CRs are dropped before the LF.
  while (raw[i] === 0x20 || raw[i] === 0x09) i++;
  while (raw[i] === 0x0d) i++;
  if (i >= raw.length) return { end: raw.length, close };
  return raw[i] === 0x0a ? { end: i + 1, close } : { end: -1, close };
}
