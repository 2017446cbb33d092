/**
 * Whether what the tail walk read of a text part before its line or byte budget
 * ran out is padding (hiding the text after it) rather than text: see tail.ts.
 */
import { analyseHtml, SKIP_TAGS } from '../util/html';
import { withoutInvisibles } from '../util/invisible';

/**
 * Bytes per line unit below which a stretch the line budget cut short reads as
 * padding (blank or near-blank lines), not text: the tail's bytes per line
 * (MAX_TAIL_BYTES / MAX_TAIL_LINES) is 75, so any text of lines shorter than
 * that (HTML of 70-byte lines, text wrapped at 72) is cut by the line budget
 * too, and is no sign of hiding.
 */
const PADDING_BYTES_PER_UNIT = 24;
/** At least this share of white space (blanks, tabs, line ends) makes a stretch padding whatever its line length. */
const PADDING_BLANK_SHARE = 0.9;
/**
 * Share of visible characters below which the HTML read reads as padding:
 * comments, empty elements, `&nbsp;` runs show nothing, whatever the length of
 * their lines. Measured with htmlVisibleShare: the HTML parts of 5 KB or more
 * of the SpamAssassin corpus's ham have 1.7% at the least (a comic strip of
 * images and scripts), 3.2% for the commercial newsletters of hard-ham, 13.7%
 * the median; the tests' newsletters: 6.9% (inline CSS and an attribute a
 * line), 18% (70-byte table rows); crafted padding 0%.
 */
const PADDING_VISIBLE_SHARE = 0.005;

/**
 * Whether raw[start, end), cut short by the line or byte budget (`by`) after
 * `units` line units, is padding by its bytes: short or blank lines. Cut by
 * the byte budget, only white space tells: short lines are no sign there. The
 * bytes left per line left fall far below 75 once an earlier part spent bytes
 * in few lines (an HTML part of 900-byte lines), and a list of 15-byte lines
 * after it then ran out of bytes first and read as padding.
 */
export function bytesLookLikePadding(raw: Buffer, start: number, end: number, units: number, by: 'lines' | 'bytes'): boolean {
  if (by === 'lines' && end - start < units * PADDING_BYTES_PER_UNIT) return true;
  let blank = 0;
  for (let i = start; i < end; i++) {
    const c = raw[i]!;
    if (c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a) blank++;
  }
  return blank >= (end - start) * PADDING_BLANK_SHARE;
}

/** Base64 alphabet values by byte, -1 for any other byte. */
const BASE64_VALUE = new Int8Array(256).fill(-1);
for (const [i, c] of [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'].entries()) BASE64_VALUE[c.charCodeAt(0)] = i;
const HEX_VALUE = new Int8Array(256).fill(-1);
for (const [i, c] of [...'0123456789abcdef'].entries()) HEX_VALUE[c.charCodeAt(0)] = HEX_VALUE[c.toUpperCase().charCodeAt(0)] = i;

/**
 * Base64 decoded as postal-mime decodes it: bytes outside the alphabet
 * skipped, a `=` ending a chunk and the next starting afresh. Not
 * Buffer.from(..., 'base64'), which stops at the first `=`: a `QQ==` line
 * early in a part hid every `<!--` after it. One pass, no allocation a chunk.
 */
function decodeBase64(bytes: Buffer): Buffer {
  const out = Buffer.allocUnsafe(Math.ceil((bytes.length * 3) / 4));
  let n = 0;
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < bytes.length; i++) {
    const v = BASE64_VALUE[bytes[i]!]!;
    if (v < 0) {
      if (bytes[i] === 0x3d) acc = bits = 0;
      continue;
    }
    acc = ((acc << 6) | v) & 0xffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (acc >> bits) & 0xff;
    }
  }
  return out.subarray(0, n);
}

/**
 * Quoted-printable decoded: `=XX` is the byte, `=` before the line end (blanks
 * allowed) a soft line break that joins the lines; a `=` that is neither stays.
 * A soft break inside `-->` (`-=` CRLF `->`: about one Outlook conditional
 * comment in 40) or an encoded `<` (`=3C!--`, `<=73tyle>`) is read as a reader's
 * client reads it. One pass: the blanks after a `=` hold no other `=`.
 */
function decodeQuotedPrintable(bytes: Buffer): Buffer {
  const out = Buffer.allocUnsafe(bytes.length);
  let n = 0;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i]!;
    if (c !== 0x3d) {
      out[n++] = c;
      continue;
    }
    let j = i + 1;
    while (bytes[j] === 0x20 || bytes[j] === 0x09) j++;
    if (bytes[j] === 0x0d) j++;
    if (bytes[j] === 0x0a || j >= bytes.length) {
      i = Math.min(j, bytes.length);
      continue;
    }
    const hi = i + 2 < bytes.length ? HEX_VALUE[bytes[i + 1]!]! : -1;
    const lo = hi >= 0 ? HEX_VALUE[bytes[i + 2]!]! : -1;
    if (lo >= 0) {
      out[n++] = hi * 16 + lo;
      i += 2;
    } else out[n++] = c;
  }
  return out.subarray(0, n);
}

/**
 * A part's body bytes raw[bodyStart, at) with their transfer encoding undone
 * (`encoding` as the part declares it, lower case, comments out), as latin1:
 * what is looked for in them (markup) is ASCII. Linear; at most the 2 MB
 * before the cut.
 */
export function bodyBefore(raw: Buffer, bodyStart: number, at: number, encoding: string): string {
  const bytes = raw.subarray(bodyStart, Math.max(bodyStart, at));
  if (encoding === 'base64') return decodeBase64(bytes).toString('latin1');
  if (encoding === 'quoted-printable') return decodeQuotedPrintable(bytes).toString('latin1');
  return bytes.toString('latin1');
}

/** The next `<!--` or start tag of an element whose content shows nothing (SKIP_TAGS). */
const UNSHOWN_START = new RegExp(`<!--|<(${[...SKIP_TAGS].join('|')})(?=[\\s/>]|$)`, 'gi');
/** The end tag of each of them. */
const UNSHOWN_END = new Map([...SKIP_TAGS].map((name) => [name, new RegExp(`</${name}(?=[\\s/>]|$)`, 'gi')]));

/** Characters of the hidden content before the cut kept with its opener (unshownOpenAt): more than an end tag. */
const OPEN_TAIL = 64;

/**
 * What is open at the end of the HTML `before` whose content shows nothing (a
 * comment, or `<style>`, `<script>`, `<title>`, `<template>`: SKIP_TAGS), to
 * be put before the HTML read from there on: the opener and the last
 * characters after it; '' when none is open. A part read from the cut on may
 * start inside one comment or style sheet 40,000 lines long, whose text is
 * no text: it is judged with this put before it (htmlLooksLikePadding). The
 * last characters are kept because a cut inside a line (base64, a soft line
 * break, the byte bound) may split the end tag or `-->` itself: `</sty` |
 * `le>` must close the style sheet again, or the text after it read as hidden.
 * Read forward as a browser does: a `<style>` inside a comment opens nothing,
 * nor a `<!--` inside a script. Linear: each search starts where the last ended.
 *
 * An element hidden by its attributes (display:none, visibility:hidden, a zero
 * font size, `hidden`...: whatever analyseHtml reads as hiding) open at the
 * cut goes first, as its start tag and those of the elements open inside it
 * (hiddenOpenAt): a `<div style="display:none">` opened before the cut and
 * holding 1 MB of words hid the text after it, which was read as shown.
 */
export function unshownOpenAt(before: string): string {
  return hiddenOpenAt(before) + skippedOpenAt(before);
}

/**
 * The start tags that reopen the hiding element open at the end of `before`
 * and those open inside it (HtmlInfo.hiddenOpen), '' when none is: one pass of
 * analyseHtml over all of it (at most the 2 MB before the cut; it reads
 * nesting past 500 levels flat, and then reopens one hiding element that
 * nothing after the cut closes when what is open there hides: only forged
 * markup nests so deep). A hiding element closed before the cut reopens nothing.
 */
function hiddenOpenAt(before: string): string {
  return before.length ? analyseHtml(before, before.length).hiddenOpen : '';
}

/** What is open at the end of `before` whose content shows nothing, and a tag the cut split (see unshownOpenAt). */
function skippedOpenAt(before: string): string {
  for (let at = 0; ; ) {
    UNSHOWN_START.lastIndex = at;
    const start = UNSHOWN_START.exec(before);
    if (!start) return partialOpener(before, at);
    const name = start[1]?.toLowerCase();
    const end = name ? endTagAfter(before, name, start.index + start[0].length) : commentEndAfter(before, start.index);
    if (end >= 0) {
      at = end;
      continue;
    }
    if (before.length - start.index <= OPEN_TAIL) return before.slice(start.index);
    // Cut inside an inline data: payload (a font or image in a style sheet): its `data:` goes with it, so the
    // payload read after the cut is known as one (dataPayloads), not as 1 MB of hidden text.
    const payload = dataPayloadRunAt(before);
    const tail = payload >= 0 ? `data:,${before.slice(-Math.min(OPEN_TAIL, payload))}` : before.slice(-OPEN_TAIL);
    // A blank after the opener: `<!--` and `->` of the tail must not make `<!--->`, an empty comment.
    return `${name ? `<${name}>` : '<!--'} ${tail}`;
  }
}

/** Base64 payload characters and line ends (what an inline data: payload wrapped in the HTML source holds). */
function isBase64Char(c: number): boolean {
  return BASE64_VALUE[c]! >= 0 || c === 0x3d || c === 0x0d || c === 0x0a;
}

/**
 * When `before` ends inside the base64 payload of a data: URI (`data:...,` then
 * base64 and line ends up to its end), that payload's length so far; else -1.
 * One backward scan over the payload.
 */
function dataPayloadRunAt(before: string): number {
  let i = before.length;
  while (i > 0 && isBase64Char(before.charCodeAt(i - 1))) i--;
  return /data:[^,"'<>\s]{0,200},$/i.test(before.slice(Math.max(0, i - 206), i)) ? before.length - i : -1;
}

/** Characters of a tag the cut split kept (partialOpener): more than real start tags with their style attributes. */
const MAX_PARTIAL_TAG = 4096;

/**
 * The start of a tag that `before` ends with, cut short (`<!-`, `<sty`, `<div
 * style="display:no`, `</di`), at or after `from`: its last `<` with no `>`
 * after it, within MAX_PARTIAL_TAG characters; else ''. A cut inside a line (a
 * quoted-printable soft break `<!-=` CRLF `-`, a base64 line, the byte bound)
 * may split the tag itself: put before the HTML read from the cut it is read
 * whole again, where the read alone began with `- ...` or `ne">...` and the
 * whole hidden content after it read as text. Kept whatever the tag: the two
 * halves together are what a reader's client reads.
 */
function partialOpener(before: string, from: number): string {
  const at = before.lastIndexOf('<');
  if (at < Math.max(from, before.length - MAX_PARTIAL_TAG) || before.indexOf('>', at) >= 0) return '';
  return before.slice(at);
}

/** Where the comment opened at `open` ends, or -1: `<!-->` and `<!--->` are empty comments, as in htmlparser2 and browsers. */
function commentEndAfter(html: string, open: number): number {
  const end = html.indexOf('-->', open + 2);
  return end < 0 ? -1 : end + 3;
}

/** Where the end tag of `name` first found at or after `from` ends, or -1. */
function endTagAfter(html: string, name: string, from: number): number {
  const endTag = UNSHOWN_END.get(name)!;
  endTag.lastIndex = from;
  const end = endTag.exec(html);
  return end ? end.index + end[0].length : -1;
}

/**
 * The payload of a data: URI (an inline image, base64 wrapped or not): bytes
 * that show as an image, not as padding, and that cost the line budget
 * little. Counted in the length, 1,200 inline thumbnails with their captions
 * read as 0.02% visible. The media type part is bounded, so a crafted run of
 * `data:` without a comma costs a bounded scan from each.
 */
const DATA_URI_PAYLOAD = /\bdata:[^,"'<>\s]{0,200},[A-Za-z0-9+/=%\s]*/gi;

/**
 * Visible characters of `html` (what analyseHtml leaves of its text and of the
 * alt texts of its images, white space and characters that show nothing taken
 * out: comments, tags, style, script, hidden elements, `&nbsp;`, zero-width
 * characters) over its length without data: URI payloads. Alt texts count: a
 * catalogue of images and their alt texts (0% visible text) is no padding.
 * Linear (htmlparser2, one regular expression without backtracking past 200
 * characters); analyseHtml reads at most 1 MB, which bounds the part read past
 * the cut anyway.
 */
export function htmlVisibleShare(html: string, payloads = dataPayloads(html)): number {
  if (!html.length) return 1;
  const { text, altText } = analyseHtml(html);
  const visible = withoutInvisibles(`${text} ${altText}`).replace(/\s+/g, '').length;
  const measured = html.length - payloads.bytes;
  // All of it inline images: nothing shows but them (padding if nothing else does).
  return measured > 0 ? visible / measured : visible ? 1 : 0;
}

/** The characters of data: URI payloads in `html`, and the length of the last one if `html` ends inside it. */
function dataPayloads(html: string): { bytes: number; endsInside: number } {
  let bytes = 0;
  let endsInside = 0;
  let last: RegExpMatchArray | undefined;
  for (const m of html.matchAll(DATA_URI_PAYLOAD)) {
    bytes += m[0].length;
    last = m;
  }
  // Base64 and line ends only: words and blanks after a `data:` are hidden text, not an object.
  if (last && last.index! + last[0].length === html.length && !/[^A-Za-z0-9+/=\r\n]/.test(last[0].slice(last[0].indexOf(',') + 1))) {
    endsInside = last[0].length;
  }
  return { bytes, endsInside };
}

/**
 * A data: payload at least this long that the reading ended inside is one large
 * inline object (a photo, a font) the bound ran out in, not padding: images of
 * nothing are a few dozen characters each (a 1x1 GIF: 40).
 */
const LARGE_INLINE_OBJECT = 64 * 1024;

/**
 * Whether the decoded HTML a reading cut short took in is padding: almost
 * nothing in it shows (PADDING_VISIBLE_SHARE). `open`: what was open where it
 * was read from (unshownOpenAt): up to its end, what follows is hidden too.
 */
export function htmlLooksLikePadding(html: string, open: string): boolean {
  // A reading that ran out inside one large base64 inline image or font (a greeting card's photo first in its HTML;
  // a font in a style sheet the cut fell in, whose `data:` unshownOpenAt keeps): one object, as an <img> data: URI
  // across the cut reads, not padding.
  const read = open + html;
  const payloads = dataPayloads(read);
  if (payloads.endsInside >= LARGE_INLINE_OBJECT) return false;
  return htmlVisibleShare(read, payloads) < PADDING_VISIBLE_SHARE;
}

