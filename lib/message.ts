import { TextDecoder } from 'node:util';
import PostalMime, { addressParser } from 'postal-mime';
import type { Email } from 'postal-mime';
import { newRef } from './score/ref';
import { plainIp } from './util/ip';
import { trimChars } from './util/text';

/** One header field, unfolded. `key` is the lower-case name. */
export interface HeaderField {
  key: string;
  name: string;
  value: string;
}

export interface HeaderChanges {
  /** [name, value] pairs, added in order. */
  add: [string, string][];
  /** Names of headers to remove (all instances), e.g. forged X-Mailward-* from outside. */
  remove: string[];
}

export interface ParseResult {
  ok: boolean;
  /** What went wrong, for the tracking row's parse result; empty when ok. */
  error: string;
  /** Set when only the start of a large message was MIME-decoded: how much of it. */
  partial?: string;
}

/**
 * What every check reads about one SMTP transaction. Built up phase by phase
 * (connect, helo, mail, rcpt, data) by whichever front door is in use: the
 * Haraka plugins or `createMailward().scan()`.
 */
export interface MessageContext {
  /** Reference id of this transaction (SMTP reply, headers, tracking row). */
  ref: string;
  startedAt: number;
  /** The MTA's own id for the transaction (Haraka's uuid), when it has one. */
  queueId?: string;
  ip: string;
  /** Remote host name from reverse DNS: undefined when not looked up, null when there is none. */
  ptr?: string | null;
  helo: string;
  /** Our own host name, as the MTA announces itself. */
  localHostname: string;
  /** True for authenticated submission or a relay-allowed client (outbound mail). */
  relaying: boolean;
  authUser?: string;
  /** Envelope sender; '' is the null sender (bounces); undefined before MAIL FROM. */
  mailFrom?: string;
  rcptTo: string[];
  /** The whole message, headers and body, once DATA has been received. */
  raw?: Buffer;
  headers: HeaderField[];
  /** Where checks leave results for later checks (e.g. auth results for the rules). */
  notes: Record<string, unknown>;
  /** Header changes checks ask the MTA to make on the delivered message (e.g. Authentication-Results). */
  headerChanges: HeaderChanges;
  /** Parsed MIME, computed on first use and shared by every check. */
  parsed?: Promise<Email | null>;
  parse: ParseResult;
}

export interface ContextInit {
  ip: string;
  helo?: string;
  ptr?: string | null;
  localHostname?: string;
  relaying?: boolean;
  authUser?: string;
  mailFrom?: string;
  rcptTo?: string[];
  queueId?: string;
  ref?: string;
  raw?: Buffer | string;
}

export function createContext(init: ContextInit): MessageContext {
  const ctx: MessageContext = {
    ref: init.ref ?? newRef(),
    startedAt: Date.now(),
    queueId: init.queueId,
    // One form for every check and the tracking row: an IPv4 client of a dual-stack socket is IPv4.
    ip: plainIp(init.ip),
    ptr: init.ptr,
    helo: init.helo ?? '',
    localHostname: init.localHostname ?? 'localhost',
    relaying: init.relaying ?? false,
    authUser: init.authUser,
    mailFrom: init.mailFrom,
    rcptTo: [...(init.rcptTo ?? [])],
    headers: [],
    notes: {},
    headerChanges: { add: [], remove: [] },
    parse: { ok: true, error: '' },
  };
  if (init.raw !== undefined) setMessage(ctx, init.raw);
  return ctx;
}

/** Upper bound on the header block we index; the rest is still delivered untouched. */
const MAX_HEADER_BYTES = 1024 * 1024;

/** Attaches the message data and indexes its header block (tolerant of malformed input). */
export function setMessage(ctx: MessageContext, raw: Buffer | string): void {
  ctx.raw = Buffer.isBuffer(raw) ? raw : Buffer.from(raw, 'utf8');
  ctx.parsed = undefined;
  const { headers, complete } = parseHeaderBlock(ctx.raw);
  ctx.headers = headers;
  ctx.parse = complete ? { ok: true, error: '' } : { ok: false, error: 'header block not terminated or too large' };
}

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

/**
 * The message with every field named in `names` (any case) taken out of its
 * header block, continuation lines included, except the first `keepFirst`
 * fields of each name; the body and every other byte are left as they were.
 */
export function withoutHeaders(raw: Buffer, names: string[], keepFirst = 0): Buffer {
  const end = headerBlockEnd(raw);
  if (end < 0 || !names.length) return raw;
  const seen = new Map(names.map((n) => [n.toLowerCase(), 0]));
  // The last field's own line ending belongs to it (the blank line follows): dropping that field
  // must not leave its ending behind as a second blank line, which would move the body down.
  const blockEnd = end + (raw[end] === 0x0d ? 2 : 1);
  // latin1 maps bytes to characters one to one, so the kept lines come back byte for byte.
  const lines = raw.subarray(0, blockEnd).toString('latin1').split(/(?<=\n)/);
  let dropping = false;
  const kept = lines.filter((line) => {
    if (/^[ \t]/.test(line)) return !dropping;
    const colon = line.indexOf(':');
    const name = colon > 0 ? trimChars(line.slice(0, colon), '', ' \t').toLowerCase() : '';
    const count = seen.get(name);
    if (count !== undefined) seen.set(name, count + 1);
    dropping = count !== undefined && count >= keepFirst;
    return !dropping;
  });
  return Buffer.concat([Buffer.from(kept.join(''), 'latin1'), raw.subarray(blockEnd)]);
}

/** All values of a header, in message order. */
export function headerValues(ctx: MessageContext, name: string): string[] {
  const key = name.toLowerCase();
  return ctx.headers.filter((h) => h.key === key).map((h) => h.value);
}

/** One mailbox of a From: header: the display name decoded, the address lower-cased ('' when it has none). */
export interface Mailbox {
  name: string;
  address: string;
  /** The address as written: case matters to what a reader sees (an upper-case I reads as l). */
  written: string;
}

/** One address header parsed: its mailboxes (groups flattened) and every name written in it (group names too). */
interface AddressField {
  mailboxes: Mailbox[];
  names: string[];
}

function parseAddressField(value: string): AddressField {
  const field: AddressField = { mailboxes: [], names: [] };
  const add = (a: { name?: string; address?: string; group?: unknown[] }): void => {
    field.names.push(a.name ?? '');
    if (Array.isArray(a.group)) {
      for (const member of a.group) add(member as typeof a);
      return;
    }
    // A name without an address ("Jane Doe" <>) is kept: it is still what the reader sees.
    if (a.address || a.name) field.mailboxes.push({ name: a.name ?? '', address: (a.address ?? '').toLowerCase(), written: a.address ?? '' });
  };
  try {
    for (const a of addressParser(value)) add(a);
  } catch {
    // an unparseable field names no mailbox; its text is still what the reader sees
    field.names.push(value);
  }
  return field;
}

/** Every mailbox in these address-header values, groups flattened (an unparseable value names none). */
export function mailboxesOf(values: string[]): Mailbox[] {
  return values.flatMap((v) => parseAddressField(v).mailboxes);
}

/**
 * The From: header(s) parsed once per message: several checks read them, and
 * a forger controls their size.
 */
const fromFields = new WeakMap<MessageContext, { headers: HeaderField[]; fields: AddressField[] }>();

function fromFieldsOf(ctx: MessageContext): AddressField[] {
  let cached = fromFields.get(ctx);
  if (!cached || cached.headers !== ctx.headers) {
    cached = { headers: ctx.headers, fields: headerValues(ctx, 'from').map(parseAddressField) };
    fromFields.set(ctx, cached);
  }
  return cached.fields;
}

/**
 * Every mailbox in every From: header, groups flattened, in message order.
 * Checks that judge the sender must look at all of them: a forger puts the
 * address it wants believed second, in a group, or in a second From: header.
 */
export function fromMailboxes(ctx: MessageContext): Mailbox[] {
  return fromFieldsOf(ctx).flatMap((f) => f.mailboxes);
}

/** A word that reads as an address: what a reader takes for one in a display or group name (any script in the domain). */
const SHOWN_ADDRESS = /^[^@]+@[\p{L}\p{N}-]+(?:\.[\p{L}\p{N}-]+)*\.[\p{L}\p{N}-]{2,}$/u;

/**
 * Addresses written as text in a name: `"ceo@example.com" <x@y>`, an encoded
 * word, a group's name. Split into words first and each tested anchored, so
 * the time stays linear in the text (a forger controls its length).
 */
export function addressesInText(text: string, asWritten = false): string[] {
  const words = text
    .normalize('NFKC')
    .split(/[\s<>"'(),;:[\]]+/)
    .filter((word) => word.includes('@') && SHOWN_ADDRESS.test(word));
  return asWritten ? words : words.map((word) => word.toLowerCase());
}

/**
 * The addresses a reader sees in From: when it holds no address at all (an
 * encoded word, or a group, whose text is an address; RFC 2047 forbids the
 * first, but clients show it): the author DMARC and the local-domain check
 * must judge. Empty when From: has an address.
 */
export function shownFromAddresses(ctx: MessageContext, asWritten = false): string[] {
  const fields = fromFieldsOf(ctx);
  if (fields.some((f) => f.mailboxes.some((m) => m.address))) return [];
  return [...new Set(fields.flatMap((f) => f.names).flatMap((name) => addressesInText(name, asWritten)))];
}

export function firstHeader(ctx: MessageContext, name: string): string | undefined {
  const key = name.toLowerCase();
  return ctx.headers.find((h) => h.key === key)?.value;
}

/** The message body as text (undecoded), or '' before DATA. */
export function rawBody(ctx: MessageContext): string {
  if (!ctx.raw) return '';
  const end = headerBlockEnd(ctx.raw);
  if (end < 0) return '';
  const sep = ctx.raw[end] === 0x0d ? 4 : 2;
  return ctx.raw.subarray(end + sep).toString('utf8');
}

/**
 * How much of a message is MIME-decoded. postal-mime decodes in one stretch of
 * the event loop, about 200 ms per MB of text lines here (a 24 MB message held
 * every other connection for 8 s); what the checks read lies at the start (the
 * text up to max_text_kb, the HTML up to max_html_kb, the structure from the
 * first 512 KB), so the rest is left undecoded. The raw-byte checks (GTUBE,
 * DKIM body hashes, rules' `body contains`) still read the whole message.
 */
export const MAX_PARSE_BYTES = 2 * 1024 * 1024;

/**
 * ...and at most this many lines of it, whichever bound comes first. postal-mime's
 * cost is per line and per part, not per byte: measured here under load, 2 MB
 * of `--` lines (524k) took 13.7 s, 2 MB of 18-byte lines 2.5 s, 2 MB of
 * 76-character lines (27k) 0.44 s, 233k tiny parts in 2 MB 23 s. 2 MB of
 * 76-character lines (78 bytes with CRLF: base64, quoted-printable, most text)
 * is 26,886 lines, so for ordinary mail the byte bound still comes first and
 * it is decoded as far as before; cut here, the costliest lines found (short
 * text or HTML lines, header fields, parts with headers) took 0.35-0.42 s in
 * the run where 2 MB of 76-character text took 0.23-0.58 s.
 */
export const MAX_PARSE_LINES = 28_000;
/**
 * What a line starting with `--` counts towards MAX_PARSE_LINES: it may be a
 * boundary delimiter, and a part costs postal-mime 2-3 lines' time (28k
 * one-line parts took ~1.3 s, 9k ~0.45 s; 233k tiny parts in 2 MB, 23 s).
 */
const DELIMITER_LINE_COST = 3;

const isBase64Char = (c: number): boolean => (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2f;

/**
 * `=` signs that cost a line unit, in a line of nothing but base64 characters:
 * postal-mime's base64 decoder starts a new chunk at each one, and joining
 * them is slow (2 MB of `QQ==` took 3-4 s, 2 MB of ordinary base64 0.05 s).
 * Quoted-printable `=XX` is cheap to decode and its lines mostly hold other
 * characters too (blanks, punctuation); a line of CJK text in
 * quoted-printable (25 `=` in 76 characters) costs 4 units.
 */
const PADDING_PER_UNIT = 8;

/** The extra line units of raw[start, end) for its `=` signs (see PADDING_PER_UNIT): one pass over the line. */
function paddingUnits(raw: Buffer, start: number, end: number): number {
  let pads = 0;
  for (let i = start; i < end; i++) {
    const c = raw[i]!;
    if (c === 0x3d) pads++;
    else if (c !== 0x0d && c !== 0x0a && !isBase64Char(c)) return 0;
  }
  return Math.floor(pads / PADDING_PER_UNIT);
}

/**
 * Where a line too long for `maxBytes` is cut: at `maxBytes`, or sooner where
 * its `=` signs reach `maxUnits` (PADDING_PER_UNIT; all of them counted, a
 * line this long being no ordinary text): 2 MB of `QQ==` on one line is one
 * line, and 1 MB of it took postal-mime 2 s. `units`: what the piece costs,
 * 1 and its `=` signs.
 */
function insideLine(raw: Buffer, start: number, maxBytes: number, maxUnits: number): { end: number; units: number } {
  const end = Math.min(raw.length, start + maxBytes);
  let pads = 0;
  for (let i = start; i < end; i++) {
    if (raw[i] !== 0x3d) continue;
    if (pads + 1 >= maxUnits * PADDING_PER_UNIT) return { end: i, units: 1 + Math.floor(pads / PADDING_PER_UNIT) };
    pads++;
  }
  return { end, units: 1 + Math.floor(pads / PADDING_PER_UNIT) };
}

/** How far whole lines fit in a byte and a line bound: where the last one that fits ends, what was spent, and which bound stopped them short. */
interface LineFit {
  end: number;
  lines: number;
  units: number;
  /** What stopped it short of `end`. */
  by?: 'bytes' | 'lines';
}

/**
 * How far the lines of raw[start, end) fit in `maxBytes` bytes and `maxUnits`
 * line units (a line ends at LF, as postal-mime splits them; one starting with
 * `--` costs DELIMITER_LINE_COST, a base64 line dense with `=` more:
 * PADDING_PER_UNIT). Cheap: one Buffer.indexOf a line, at most `maxUnits` + 1
 * of them, and one pass over the bytes.
 */
function fitLines(raw: Buffer, start: number, end: number, maxBytes: number, maxUnits: number): LineFit {
  const view = raw.subarray(0, end);
  const limit = Math.min(end, start + maxBytes);
  let at = start;
  let lines = 0;
  let units = 0;
  while (at < end) {
    const lf = view.indexOf(0x0a, at);
    const next = lf < 0 ? end : lf + 1;
    if (next > limit) return { end: at, lines, units, by: 'bytes' };
    const cost = (raw[at] === 0x2d && raw[at + 1] === 0x2d ? DELIMITER_LINE_COST : 1) + paddingUnits(raw, at, next);
    if (units + cost > maxUnits) return { end: at, lines, units, by: 'lines' };
    units += cost;
    lines++;
    at = next;
  }
  return { end, lines, units };
}

/** Where the MIME-decoded part of a message ends (raw.length when whole), and, when it is cut, how many lines it holds and which bound cut it. */
function mimeCut(raw: Buffer): LineFit {
  const fit = fitLines(raw, 0, raw.length, MAX_PARSE_BYTES, MAX_PARSE_LINES);
  // A first line longer than the byte bound is cut inside it, as before.
  return fit.by === 'bytes' && fit.end === 0 ? { ...fit, end: MAX_PARSE_BYTES } : fit;
}

/**
 * The part of a message that is MIME-decoded: its first MAX_PARSE_BYTES or
 * MAX_PARSE_LINES lines, whichever ends first, cut at a line end. For every
 * parser that decodes a message whole (a bounce's original, a DSN, a feedback
 * report), not only parsedMessage.
 */
export function mimePrefix(raw: Buffer): Buffer {
  return raw.subarray(0, mimeCut(raw).end);
}

/**
 * The decoded MIME structure (text, html, attachments, addresses). Parsed once;
 * a message that cannot be parsed yields null and records the error, so every
 * check can still run on headers and raw body. Of a message over
 * MAX_PARSE_BYTES or MAX_PARSE_LINES only the start is decoded, and
 * `ctx.parse.partial` says so.
 * An HTML part with no charset parameter is read in the charset its <meta>
 * declares (redecodeByMeta).
 */
export function parsedMessage(ctx: MessageContext): Promise<Email | null> {
  if (!ctx.raw) return Promise.resolve(null);
  ctx.parsed ??= parseMime(ctx, ctx.raw);
  return ctx.parsed;
}

function parseMime(ctx: MessageContext, raw: Buffer): Promise<Email | null> {
  const cut = mimeCut(raw);
  const input = raw.subarray(0, cut.end);
  const why = cut.by === 'lines' ? ` (${cut.lines} lines: the line limit)` : '';
  let partial = input.length < raw.length ? `decoded the first ${Math.round(input.length / 1024)} KB${why} of ${Math.round(raw.length / 1024)} KB` : undefined;
  if (partial) ctx.parse = { ...ctx.parse, partial };
  return decodeParts(input)
    .then(async (email) => {
      if (!partial) return email;
      const found = await appendTailTextParts(email, raw, input.length);
      if (found) {
        partial = `${partial} and ${found} text part${found === 1 ? '' : 's'} crossing or after it`;
        ctx.parse = { ...ctx.parse, partial };
      }
      return email;
    })
    .catch((err: unknown) => {
      ctx.parse = { ok: false, error: `MIME parse failed: ${err instanceof Error ? err.message : String(err)}`, partial };
      return null;
    });
}

/** Text parts read at or past the cut of a partial parse: counted cheaply, the bound that matters is MAX_TAIL_BYTES. */
const MAX_TAIL_PARTS = 32;
/**
 * Multiparts open at once that the walk follows: each open boundary is
 * searched for, so time is the message's bytes times this. A multipart nested
 * deeper is decoded whole by postal-mime, as a text part is (within the same
 * budget), its own structure walked by postal-mime.
 */
const MAX_TAIL_DEPTH = 12;
/**
 * Lines past the cut that start like an open boundary's delimiter but are not
 * one (`--B` then more than blanks): each restarts a search, so after this
 * many the walk stops where it is. A boundary chosen as RFC 2046 asks is
 * never one.
 */
const MAX_TAIL_DECOYS = 50000;
/** Parts walked at or past the cut (each costs a few microseconds: a message of 25 MB of tiny parts took seconds). */
const MAX_TAIL_WALKED = 10000;
/**
 * A part's header block must end within this many bytes of its delimiter
 * line: postal-mime's own limit (maxHeadersSize), so a part whose header a
 * small copy of the message has read is read past the cut too. Only its
 * Content-* fields are decoded (tailPart), so a long header costs the budget
 * nothing.
 */
const MAX_TAIL_HEADER_BYTES = MAX_HEADER_BYTES;
/** Bytes of text parts (header blocks and bodies) decoded past the cut, in all: the content checks read at most 1 MB of HTML and 256 KB of text. */
const MAX_TAIL_BYTES = 1024 * 1024;
/** Line units (DELIMITER_LINE_COST) of them, in all: half the prefix's, as MAX_TAIL_BYTES is half MAX_PARSE_BYTES (1 MB of 4-byte lines there took postal-mime ~4 s). */
const MAX_TAIL_LINES = MAX_PARSE_LINES / 2;
/** Share of the tail budgets the text part the cut falls in may spend (it comes first: the parts past it have the rest). */
const CROSSING_SHARE = 0.5;
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
interface ContentFields {
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
function tailPartType(block: Buffer, digest: boolean): { type: string; boundary?: string; read: boolean; fields: ContentFields } {
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
function blankLineEnd(raw: Buffer, at: number, limit: number): number {
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
function base64Resume(raw: Buffer, bodyStart: number, cut: number, end: number): number {
  const pad = raw.lastIndexOf(0x3d, cut - 1);
  let count = 0;
  for (let i = Math.max(bodyStart, pad + 1); i < cut; i++) if (isBase64Char(raw[i]!)) count++;
  let skip = (4 - (count % 4)) % 4;
  let at = cut;
  while (skip > 0 && at < end && raw[at] !== 0x3d) if (isBase64Char(raw[at++]!)) skip--;
  return at;
}

interface TailPart {
  header: Buffer;
  start: number;
  end: number;
  /** An inline message/rfc822: dropped when the message turns out to be a report. */
  message: boolean;
}

/** The header block postal-mime needs to decode a part's body (type, charset, transfer encoding, disposition), one field a line. */
function decodingHeader(fields: ContentFields, type: string): Buffer {
  // The type as the walk took it when the part has none: message/rfc822 in a digest, which a part decoded alone would not know.
  const lines = [`Content-Type: ${fields.type || type}`];
  if (fields.encoding !== undefined) lines.push(`Content-Transfer-Encoding: ${fields.encoding}`);
  if (fields.disposition !== undefined) lines.push(`Content-Disposition: ${fields.disposition}`);
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'utf8');
}

/** A multipart the walk is inside: its delimiter as searched for, and what is known of where it next stands. */
interface OpenMultipart {
  /** `\n--` and the boundary: a delimiter line starts just past the line end. */
  search: Buffer;
  digest: boolean;
  /** Start of the next delimiter line found (valid while at or after the walk's position), or -1. */
  hit: number;
  /** No delimiter line of it starts before this (from where the walk was when it looked). */
  clearTo: number;
}

/** Where the delimiter line whose `\n--boundary` ends at `at` ends (past its LF, or the message end), and whether it closes; end -1 when it is not one. */
function delimiterLineEnd(raw: Buffer, at: number): { end: number; close: boolean } {
  let i = at;
  const close = raw[i] === 0x2d && raw[i + 1] === 0x2d;
  if (close) i += 2;
  // As postal-mime reads a line: blanks may follow the boundary (RFC 2046), CRs are dropped before the LF.
  while (raw[i] === 0x20 || raw[i] === 0x09) i++;
  while (raw[i] === 0x0d) i++;
  if (i >= raw.length) return { end: raw.length, close };
  return raw[i] === 0x0a ? { end: i + 1, close } : { end: -1, close };
}

/**
 * The byte ranges (header block and body) of the text parts at and past the
 * cut of a partial parse, to be decoded one by one: a spammer puts a large
 * image first so that the text after it is never decoded. The message is
 * walked from its own header block by the delimiters of the boundaries that
 * its multiparts declare (RFC 2046 §5.1: `--boundary` alone on a line, the
 * close delimiter ending in `--`), no other line: a line like `--x` and a
 * header block inside an attachment or a text part starts no part, so it
 * can neither make text the check reads out of an attachment's body nor end
 * a text part early. As in postal-mime, a delimiter of any open multipart
 * ends the part it is in (the innermost one's wins a line both match), and
 * an outer one closes the multiparts inside. A multipart's children are
 * walked; a text/plain or text/html part that is not an attachment (no
 * Content-Type is text/plain, message/rfc822 in a multipart/digest) and ends
 * past the cut is taken, from its header block on; of the one straddling the
 * cut (a line cut can fall early in a long part) its header block and its body
 * from the cut on are taken, in walk order, with at most half the budgets
 * (CROSSING_SHARE): re-reading what the prefix decoded would spend the budget
 * on nothing new, padding that part with short lines must not hide the parts
 * after it, and padding in a part after it must not hide the text just past
 * the cut (a base64 body is resumed where its 4-character units line up:
 * base64Resume); a message that is one text part, not a multipart, has its
 * body from the cut taken the same way; any other part (an
 * attachment, an attached message, other types) is jumped over to the next
 * delimiter, unread, so the text and boundaries of an attached message are
 * not read; an inline message/rfc822 is taken like a text part (tailPartType).
 * Bounded: each open boundary is searched for with Buffer.indexOf, resuming
 * where it stopped (bytes times MAX_TAIL_DEPTH at most), MAX_TAIL_DECOYS
 * lines that only look like a delimiter, MAX_TAIL_WALKED parts past the cut,
 * MAX_TAIL_BYTES and MAX_TAIL_LINES taken in all, MAX_TAIL_PARTS parts
 * taken. The parts before
 * the cut are walked too, to know which multiparts are open at it: fewer
 * than postal-mime has just decoded there, each far cheaper.
 */
function tailTextRanges(raw: Buffer, cut: number): TailPart[] {
  const top = headerBlockEnd(raw);
  if (top < 0) return [];
  const open: OpenMultipart[] = [];
  const enter = (boundary: string | undefined, type: string): boolean => {
    if (!boundary || open.length >= MAX_TAIL_DEPTH) return false;
    // UTF-8, as the header block was read and as postal-mime encodes a boundary.
    open.push({ search: Buffer.from(`\n--${boundary}`, 'utf8'), digest: type === 'multipart/digest', hit: -1, clearTo: 0 });
    return true;
  };
  let decoys = 0;
  /** The first delimiter line of `m` starting in [pos, bound], or -1 (also when the decoys ran out: `decoys` says so). */
  const delimiterOf = (m: OpenMultipart, pos: number, bound: number): number => {
    if (m.hit >= pos) return m.hit <= bound ? m.hit : -1;
    const from = Math.max(pos, m.clearTo);
    if (from > bound) return -1;
    // Only as far as `bound`: an inner boundary is not looked for past the outer delimiter that closes it.
    const window = raw.subarray(0, Math.min(raw.length, bound + m.search.length - 1));
    for (let i = window.indexOf(m.search, from - 1); i >= 0; i = window.indexOf(m.search, i + 1)) {
      if (delimiterLineEnd(raw, i + m.search.length).end >= 0) return (m.hit = i + 1);
      // Before the cut they are fewer than the lines postal-mime has just read there.
      if (i >= cut && ++decoys > MAX_TAIL_DECOYS) return -1;
    }
    m.hit = -1;
    m.clearTo = bound + 1;
    return -1;
  };
  /** The next delimiter line of any open multipart at or after `pos`: outer ones first, each inner one only up to it. */
  const nextDelimiter = (pos: number): { start: number; level: number } | undefined => {
    let found: { start: number; level: number } | undefined;
    for (let level = 0; level < open.length; level++) {
      const start = delimiterOf(open[level]!, pos, found ? found.start : raw.length);
      if (start >= 0) found = { start, level };
    }
    return found;
  };
  const sep = raw[top] === 0x0d ? 4 : 2;
  const topType = tailPartType(raw.subarray(0, top + sep), false);
  /**
   * Whether a delivery-status or feedback-report part was walked, anywhere:
   * postal-mime then keeps every message/rfc822 an attachment (a bounce's or
   * complaint's original is evidence), and so is one past the cut. Not the
   * top-level multipart/report alone: postal-mime reads the inline message of
   * one without such a part, and so must the walk, or declaring it hid text.
   */
  let report = false;
  const ranges: TailPart[] = [];
  /**
   * Inline messages have a count and budgets of their own: they are dropped
   * if a report part turns up later, and had they used up the shared ones, a
   * report part placed after them would leave the text parts between unread.
   */
  const left = {
    text: { parts: MAX_TAIL_PARTS, bytes: MAX_TAIL_BYTES, lines: MAX_TAIL_LINES },
    message: { parts: MAX_TAIL_PARTS, bytes: MAX_TAIL_BYTES, lines: MAX_TAIL_LINES },
  };
  type Limits = (typeof left)['text'];
  const hasRoom = (l: Limits) => l.parts > 0 && l.bytes > 0 && l.lines > 0;
  /**
   * Takes a part within `l`: its decoding header (whole, or nothing), and its body from `start`,
   * cut to the budgets at a line end (a first line too long for the bytes left is cut inside it).
   */
  const take = (part: TailPart, l: Limits, share = 1): void => {
    // What this part may spend: all that is left, or a share of it.
    let bytes = Math.floor(l.bytes * share);
    let lines = Math.floor(l.lines * share);
    const headerLines = part.header.toString('latin1').split('\n').length - 2;
    if (part.header.length >= bytes || headerLines >= lines) {
      if (share === 1) l.bytes = 0;
      return;
    }
    bytes -= part.header.length;
    lines -= headerLines;
    const fit = fitLines(raw, part.start, part.end, bytes, lines);
    // A piece cut inside a line costs its = signs too: charged nothing, each such part had the whole line budget again.
    const { end, units } = fit.by === 'bytes' && fit.end === part.start ? insideLine(raw, part.start, bytes, lines) : fit;
    l.bytes -= part.header.length + end - part.start;
    l.lines -= headerLines + units;
    l.parts--;
    ranges.push({ ...part, end });
  };
  /** Where a text part's body is read from past the cut: the cut, or the next whole base64 unit after it. */
  const resumeAt = (fields: ContentFields, bodyStart: number, end: number): number => {
    const from = Math.max(cut, bodyStart);
    const base64 = (fields.encoding ?? '').replace(/\([^()]*\)/g, '').trim().toLowerCase() === 'base64';
    return base64 && from > bodyStart ? base64Resume(raw, bodyStart, from, end) : from;
  };
  if (!enter(topType.boundary, topType.type)) {
    // A message that is one text part (no multipart): the rest of its body, or its padding with short lines hides the text after them.
    if (topType.read && topType.type.startsWith('text/') && raw.length > cut) {
      take({ header: decodingHeader(topType.fields, topType.type), start: resumeAt(topType.fields, top + sep, raw.length), end: raw.length, message: false }, left.text);
    }
    return ranges;
  }
  let walked = 0;
  /** Header bytes of the parts read past the cut: postal-mime refuses a message whose part headers pass MAX_HEADER_BYTES in all, and each costs a parse. */
  let headerBytes = 0;
  let pos = top + sep;
  while ((hasRoom(left.text) || hasRoom(left.message)) && decoys <= MAX_TAIL_DECOYS) {
    const delimiter = nextDelimiter(pos);
    if (!delimiter) break;
    const { end, close } = delimiterLineEnd(raw, delimiter.start - 1 + open[delimiter.level]!.search.length);
    const parent = open[delimiter.level]!;
    open.length = delimiter.level + (close ? 0 : 1);
    pos = end;
    // After a close delimiter comes its epilogue, up to the next delimiter of a multipart still open.
    if (close || pos >= raw.length) {
      if (!open.length) break;
      continue;
    }
    const partEnd = nextDelimiter(pos)?.start ?? raw.length;
    if (decoys > MAX_TAIL_DECOYS || (partEnd > cut && ++walked > MAX_TAIL_WALKED)) break;
    // Its header block ends at its first blank line, within the part (a delimiter first: no body) and MAX_TAIL_HEADER_BYTES.
    const headerEnd = blankLineEnd(raw, pos, Math.min(partEnd, pos + MAX_TAIL_HEADER_BYTES));
    if (headerEnd < 0) continue;
    // Beyond it a small copy of the message does not decode at all (postal-mime throws), and parsing on cost 200 ms a MB.
    if (partEnd > cut && (headerBytes += headerEnd - pos) > MAX_HEADER_BYTES) break;
    const part = tailPartType(raw.subarray(pos, headerEnd), parent.digest);
    if (part.type === 'message/delivery-status' || part.type === 'message/feedback-report') report = true;
    if (part.type.startsWith('multipart/')) {
      // Its children are walked from its body on; one without a boundary has none (postal-mime finds none either).
      if (enter(part.boundary, part.type)) {
        pos = headerEnd;
        continue;
      }
      // One nested too deep for the walk is decoded whole below, by postal-mime's own walk (within the
      // budget): passed over, its text was never read, while a small copy had it read (postal-mime goes 50 deep).
      if (!part.boundary) continue;
    }
    // Decoded whole in the prefix; or not text the checks read.
    if (partEnd <= cut || (!part.read && !part.type.startsWith('multipart/'))) continue;
    const message = part.type === 'message/rfc822';
    if (message && report) continue;
    const limits = message ? left.message : left.text;
    if (!hasRoom(limits)) continue;
    const header = decodingHeader(part.fields, part.type);
    // The text part the cut falls in: its body from the cut on, with at most half the budgets, so that neither
    // its padding hides the parts after it nor theirs the text just past the cut. The body from the cut on of a
    // message or a multipart is neither: one straddling the cut is taken whole (its start twice).
    if (headerEnd < cut && part.type.startsWith('text/')) take({ header, start: resumeAt(part.fields, headerEnd, partEnd), end: partEnd, message }, limits, CROSSING_SHARE);
    else take({ header, start: headerEnd, end: partEnd, message }, limits);
  }
  return report ? ranges.filter((r) => !r.message) : ranges;
}

/** Decodes the text parts at and past the cut (tailTextRanges) and appends their text and HTML to `email`; returns how many had any. */
async function appendTailTextParts(email: Email, raw: Buffer, cut: number): Promise<number> {
  let found = 0;
  const text: string[] = [];
  const html: string[] = [];
  for (const { header, start, end } of tailTextRanges(raw, cut)) {
    const part = await decodeParts(Buffer.concat([header, raw.subarray(start, end)])).catch(() => undefined);
    if (!part || (!part.text && !part.html)) continue;
    found++;
    if (part.text) text.push(part.text);
    if (part.html) html.push(part.html);
  }
  if (text.length) email.text = [email.text ?? '', ...text].filter(Boolean).join('\n');
  if (html.length) email.html = [email.html ?? '', ...html].filter(Boolean).join('\n');
  return found;
}

async function decodeParts(raw: Buffer): Promise<Email> {
  const parser = new PostalMime({ maxNestingDepth: 50, maxHeadersSize: MAX_HEADER_BYTES });
  const email = await parser.parse(raw);
  // The part tree is postal-mime's own (not in its types): where it is not, the HTML stays as it decoded it.
  redecodeByMeta(email, (parser as unknown as { root?: PartNode }).root);
  return email;
}

/** What redecodeByMeta reads of a postal-mime part (MimeNode): its type and parameters, disposition, transfer-decoded bytes. */
interface PartNode {
  contentType?: { parsed?: { value?: string; params?: Record<string, string> } };
  contentDisposition?: { parsed?: { value?: string } };
  content?: ArrayBuffer | null;
  childNodes?: PartNode[];
}

/** Bytes of an HTML part that browsers search for a <meta> charset (the HTML standard's prescan). */
const META_PRESCAN_BYTES = 1024;
/** A `<meta ...>` tag: what stands between `<meta` and its `>` (quoted values may hold `>`). */
const META_TAG = /<meta[\s/]((?:"[^"]*"|'[^']*'|[^'">])*)>?/gi;
/** One attribute of a tag: name, and its value double-quoted, single-quoted or bare. */
const TAG_ATTRIBUTE = /([^\s"'>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?/g;
/** The charset in a Content-Type value (`text/html; charset=koi8-r`). */
const CONTENT_CHARSET = /charset\s*=\s*["']?\s*([\w.:-]{1,40})/i;

/** The charset one `<meta>` tag declares: its `charset` attribute, or `content` when `http-equiv` is Content-Type. */
function metaTagCharset(attributes: string): string | undefined {
  const attrs = new Map<string, string>();
  for (const m of attributes.matchAll(TAG_ATTRIBUTE)) {
    const name = m[1]!.toLowerCase();
    if (!attrs.has(name)) attrs.set(name, m[2] ?? m[3] ?? m[4] ?? '');
  }
  const charset = attrs.get('charset')?.trim();
  if (charset) return charset;
  if (attrs.get('http-equiv')?.trim().toLowerCase() !== 'content-type') return undefined;
  return CONTENT_CHARSET.exec(attrs.get('content') ?? '')?.[1];
}

/**
 * The decoder that an HTML part's `<meta>` charset names, or undefined: a
 * byte order mark (it wins over any `<meta>`, as in the HTML standard), no
 * meta tag in the first 1024 bytes (outside comments) with a `charset`
 * attribute or an `http-equiv="Content-Type"` `content` naming one (a
 * keywords meta or a `data-charset` attribute is no declaration), a label
 * TextDecoder does not know, or a UTF (UTF-8 is what postal-mime read it as;
 * the HTML standard reads a UTF-16 label found by the prescan as UTF-8).
 */
function metaDecoder(content: ArrayBuffer): TextDecoder | undefined {
  const bytes = Buffer.from(content, 0, Math.min(content.byteLength, META_PRESCAN_BYTES));
  const bom = (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) || (bytes[0] === 0xfe && bytes[1] === 0xff) || (bytes[0] === 0xff && bytes[1] === 0xfe);
  if (bom) return undefined;
  const head = bytes.toString('latin1').replace(/<!--[\s\S]*?(?:-->|$)/g, '');
  let label: string | undefined;
  for (const tag of head.matchAll(META_TAG)) if ((label = metaTagCharset(tag[1]!))) break;
  if (!label) return undefined;
  try {
    const decoder = new TextDecoder(label);
    return decoder.encoding.startsWith('utf-') ? undefined : decoder;
  } catch {
    return undefined;
  }
}

/**
 * An inline text/html part with no charset parameter is read in the charset
 * its `<meta>` declares, as browsers and mail clients do; postal-mime reads
 * it as UTF-8, which turns koi8-r or windows-1251 into U+FFFD, so it is
 * decoded again from its bytes. A charset parameter wins, as in mail clients.
 * Parts are met in tree order, the order postal-mime joins them in
 * (`email.html`), so each is looked for after the last one replaced: time
 * linear in the message. A part not found as it is (format=flowed) is skipped;
 * after MAX_META_MISSES of those the rest are left as postal-mime read them.
 */
function redecodeByMeta(email: Email, root: PartNode | undefined): void {
  const html = email.html;
  if (!html || !root) return;
  // Pieces joined once: replacing in the string part by part would copy it per part.
  const pieces: string[] = [];
  let from = 0;
  let misses = 0;
  const stack = [root];
  for (let node = stack.pop(); node; node = stack.pop()) {
    if (Array.isArray(node.childNodes)) for (let i = node.childNodes.length - 1; i >= 0; i--) stack.push(node.childNodes[i]!);
    const type = node.contentType?.parsed;
    if (type?.value !== 'text/html' || type.params?.charset || node.contentDisposition?.parsed?.value === 'attachment') continue;
    if (!(node.content instanceof ArrayBuffer)) continue;
    const decoder = metaDecoder(node.content);
    if (!decoder) continue;
    const read = utf8.decode(node.content);
    const at = html.indexOf(read, from);
    // Not as postal-mime joined it (format=flowed, nested alternatives): that part is left as it is and the
    // later ones still looked for; after MAX_META_MISSES misses, no more (each searches the rest again).
    if (at < 0) {
      if (++misses >= MAX_META_MISSES) break;
      continue;
    }
    pieces.push(html.slice(from, at), decoder.decode(node.content));
    from = at + read.length;
  }
  if (pieces.length) email.html = pieces.join('') + html.slice(from);
}

/** HTML parts redecodeByMeta fails to find in the joined HTML before it stops looking: each miss searches the rest. */
const MAX_META_MISSES = 20;

/** What postal-mime decodes a part with no charset with. */
const utf8 = new TextDecoder();

export function domainOf(address: string | undefined): string {
  if (!address) return '';
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1).toLowerCase().replace(/>$/, '');
}
