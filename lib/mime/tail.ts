/** The walk past the cut of a partial parse, following declared boundaries, and the decoding of the text parts it finds. */
import type { Email } from 'postal-mime';
import { decodeParts } from './decode';
import { headerBlockBounds, MAX_HEADER_BYTES } from './header-block';
import { fitLines, insideLine, MAX_PARSE_LINES } from './limits';
import { bodyBefore, bytesLookLikePadding, htmlLooksLikePadding, unshownOpenAt } from './padding';
import { base64Resume, blankLineEnd, decodingHeader, delimiterLineEnd, tailPartType, transferEncoding, type ContentFields, type OpenMultipart, type TailPart } from './tail-part';

/**
 * Text parts read at or past the cut of a partial parse: the bounds that matter
 * are MAX_TAIL_BYTES and MAX_TAIL_LINES. Not fewer: Apple Mail puts an HTML
 * fragment between inline photos, and the parts left unread are scored
 * (MIME_TEXT_UNREAD). Each is a parse of its own: 256 tiny ones cost ~40 ms.
 */
const MAX_TAIL_PARTS = 256;
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
function tailTextRanges(raw: Buffer, cut: number): TailWalk {
  const bounds = headerBlockBounds(raw);
  if (!bounds) return { ranges: [], unread: 0, cutShort: { lines: 0, bytes: 0 } };
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
  const bodyStart = bounds.bodyStart;
  const topType = tailPartType(raw.subarray(0, bodyStart), false);
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
  /** Text parts wholly past the cut that the budgets left unread: the walk goes on to count them. */
  let unread = 0;
  /** Text parts whose reading the line or byte budget cut short inside padding by its bytes (short or blank lines): it hides what follows. */
  const cutShort = { lines: 0, bytes: 0 };
  /**
   * Takes a part within `l`: its decoding header (whole, or nothing), and its body from `start`,
   * cut to the budgets at a line end (a first line too long for the bytes left is cut inside it).
   * `bodyStart`: where its body begins, before `start` when it is read from the cut, and `encoding` its
   * transfer encoding: what its body before the cut leaves open is read from them (unshownOpenAt).
   */
  const take = (part: TailPart, l: Limits, share = 1, bodyStart = part.start, encoding = ''): void => {
    // What this part may spend: all that is left, or a share of it.
    let bytes = Math.floor(l.bytes * share);
    let lines = Math.floor(l.lines * share);
    const headerLines = part.header.toString('latin1').split('\n').length - 2;
    if (part.header.length >= bytes || headerLines >= lines) {
      if (share === 1) l.bytes = 0;
      if (share === 1 && !part.message) unread++;
      return;
    }
    bytes -= part.header.length;
    lines -= headerLines;
    const fit = fitLines(raw, part.start, part.end, bytes, lines);
    // A piece cut inside a line costs its = signs too: charged nothing, each such part had the whole line budget again.
    const { end, units } = fit.by === 'bytes' && fit.end === part.start ? insideLine(raw, part.start, bytes, lines) : fit;
    // Cut short by either bound: padding by its bytes (short or blank lines) is counted here; other lines
    // may still show nothing (comments, empty elements, &nbsp;), which only the decoded HTML tells. The byte
    // bound too: 1 MB of 76-byte comment lines is under 14,000 lines, and hid what followed it in silence.
    let readInPart: TailPart['readInPart'];
    if (fit.by && !part.message) {
      if (bytesLookLikePadding(raw, part.start, end, units, fit.by)) cutShort[fit.by]++;
      else readInPart = { by: fit.by, bodyStart, encoding };
    }
    l.bytes -= part.header.length + end - part.start;
    l.lines -= headerLines + units;
    l.parts--;
    ranges.push({ ...part, end, readInPart });
  };
  /** Where a text part's body is read from past the cut: the cut, or the next whole base64 unit after it. */
  const resumeAt = (fields: ContentFields, bodyStart: number, end: number): number => {
    const from = Math.max(cut, bodyStart);
    return transferEncoding(fields) === 'base64' && from > bodyStart ? base64Resume(raw, bodyStart, from, end) : from;
  };
  if (!enter(topType.boundary, topType.type)) {
    // A message that is one text part (no multipart): the rest of its body, or its padding with short lines hides the text after them.
    if (topType.read && topType.type.startsWith('text/') && raw.length > cut) {
      take({ header: decodingHeader(topType.fields, topType.type), start: resumeAt(topType.fields, bodyStart, raw.length), end: raw.length, message: false }, left.text, 1, bodyStart, transferEncoding(topType.fields));
    }
    return { ranges, unread: 0, cutShort };
  }
  let walked = 0;
  /** Header bytes of the parts read past the cut: postal-mime refuses a message whose part headers pass MAX_HEADER_BYTES in all, and each costs a parse. */
  let headerBytes = 0;
  let pos = bodyStart;
  /** Why the walk stopped before the message's end, if it did: what comes after was not looked at. */
  let stopped: string | undefined;
  /** The decoys ran out (in any search: then "no delimiter" is not the message's end). */
  const decoysSpent = (): boolean => {
    if (decoys <= MAX_TAIL_DECOYS) return false;
    stopped = `${MAX_TAIL_DECOYS} lines like a boundary delimiter`;
    return true;
  };
  // On once the budgets are spent, to count the text parts they leave unread: the walk's own
  // bounds (decoys, parts walked, header bytes) bound its cost either way.
  for (;;) {
    const delimiter = nextDelimiter(pos);
    if (decoysSpent() || !delimiter) break;
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
    if (decoysSpent()) break;
    if (partEnd > cut && ++walked > MAX_TAIL_WALKED) {
      stopped = `${MAX_TAIL_WALKED} parts past the cut`;
      break;
    }
    // Its header block ends at its first blank line, within the part (a delimiter first: no body) and MAX_TAIL_HEADER_BYTES.
    const headerEnd = blankLineEnd(raw, pos, Math.min(partEnd, pos + MAX_TAIL_HEADER_BYTES));
    if (headerEnd < 0) continue;
    // Beyond it a small copy of the message does not decode at all (postal-mime throws), and parsing on cost 200 ms a MB.
    if (partEnd > cut && (headerBytes += headerEnd - pos) > MAX_HEADER_BYTES) {
      stopped = `${MAX_HEADER_BYTES / 1024 / 1024} MB of part headers past the cut`;
      break;
    }
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
    if (!hasRoom(limits)) {
      // Not an inline message (read only when no report part turns up): their own budget is theirs.
      if (!message && headerEnd >= cut) unread++;
      continue;
    }
    const header = decodingHeader(part.fields, part.type);
    // The text part the cut falls in: its body from the cut on, with at most half the budgets, so that neither
    // its padding hides the parts after it nor theirs the text just past the cut. The body from the cut on of a
    // message or a multipart is neither: one straddling the cut is taken whole (its start twice).
    if (headerEnd < cut && part.type.startsWith('text/')) take({ header, start: resumeAt(part.fields, headerEnd, partEnd), end: partEnd, message }, limits, CROSSING_SHARE, headerEnd, transferEncoding(part.fields));
    else take({ header, start: headerEnd, end: partEnd, message }, limits);
  }
  return { ranges: report ? ranges.filter((r) => !r.message) : ranges, unread, cutShort, stopped };
}

interface TailWalk {
  ranges: TailPart[];
  /** Text parts wholly past the cut left unread because the budgets were spent. */
  unread: number;
  /** Text parts read only in part because the line or byte budget ran out inside padding of short or blank lines (see TailPart.readInPart for the rest). */
  cutShort: { lines: number; bytes: number };
  /** Set when the walk stopped before the message's end (one of its own bounds): why. */
  stopped?: string;
}

export interface TailText {
  /** Text parts at or past the cut that were decoded and had text. */
  found: number;
  /** What the walk left unread, for MIME_TEXT_UNREAD; undefined when it read every text part it found to the end of the message. */
  unread?: string;
}

/** The detail for `n` text parts whose reading the tail's `bound` cut short inside padding. */
function readInPartDetail(n: number, bound: string): string {
  if (!n) return '';
  return `${n} text part${n === 1 ? '' : 's'} read only in part (the tail's ${bound} ran out inside ${n === 1 ? 'it' : 'them'}, in what reads as padding: short or blank lines, or HTML that shows almost nothing)`;
}

/** Decodes the text parts at and past the cut (tailTextRanges) and appends their text and HTML to `email`. */
export async function appendTailTextParts(email: Email, raw: Buffer, cut: number): Promise<TailText> {
  let found = 0;
  const text: string[] = [];
  const html: string[] = [];
  const walk = tailTextRanges(raw, cut);
  const cutShort = { ...walk.cutShort };
  for (const { header, start, end, readInPart } of walk.ranges) {
    const part = await decodeParts(Buffer.concat([header, raw.subarray(start, end)])).catch(() => undefined);
    // One HTML read of what was decoded anyway (within the tail's byte budget), and one scan of the body before the cut.
    if (readInPart && part?.html && htmlLooksLikePadding(part.html, unshownOpenAt(bodyBefore(raw, readInPart.bodyStart, start, readInPart.encoding)))) cutShort[readInPart.by]++;
    if (!part || (!part.text && !part.html)) continue;
    found++;
    if (part.text) text.push(part.text);
    if (part.html) html.push(part.html);
  }
  if (text.length) email.text = [email.text ?? '', ...text].filter(Boolean).join('\n');
  if (html.length) email.html = [email.html ?? '', ...html].filter(Boolean).join('\n');
  const unread = [
    walk.unread ? `${walk.unread} text part${walk.unread === 1 ? '' : 's'} past the cut left unread (the tail budget: ${MAX_TAIL_BYTES / 1024 / 1024} MB, ${MAX_TAIL_LINES} lines, ${MAX_TAIL_PARTS} parts)` : '',
    readInPartDetail(cutShort.lines, `${MAX_TAIL_LINES} lines`),
    readInPartDetail(cutShort.bytes, `${MAX_TAIL_BYTES / 1024 / 1024} MB`),
    walk.stopped ? `the walk past the cut stopped at ${walk.stopped}: what follows was not read` : '',
  ].filter(Boolean);
  return { found, unread: unread.length ? unread.join('; ') : undefined };
}
