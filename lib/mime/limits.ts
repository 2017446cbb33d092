/** How much of a message is MIME-decoded: the 2 MB / 28,000-line cut, counted in line units. */
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

export const isBase64Char = (c: number): boolean => (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2f;

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
export function insideLine(raw: Buffer, start: number, maxBytes: number, maxUnits: number): { end: number; units: number } {
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
export interface LineFit {
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
export function fitLines(raw: Buffer, start: number, end: number, maxBytes: number, maxUnits: number): LineFit {
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
export function mimeCut(raw: Buffer): LineFit {
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
