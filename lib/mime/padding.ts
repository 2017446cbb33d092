/**
 * Whether what the tail walk read of a text part before its line or byte budget
 * ran out is padding (hiding the text after it) rather than text: see tail.ts.
 */
import { randomBytes } from 'node:crypto';
import { type TokenizerCallbacks } from 'htmlparser2';
import { RESTATED_SHEET } from '../util/css-background';
import { analyseHtml, DEEP_HIDDEN, LOOK_ATTRIBUTES, PAGE_LOOK, SKIP_TAGS } from '../util/html';
import { RAW_TEXT_ELEMENTS, RawTextTokenizer } from '../util/html-raw-text';
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
 * Read as analyseHtml reads it, by htmlparser2's tokenizer (endOfHtml): a
 * `<style>` inside a comment opens nothing, nor a `<!--` inside a script or in
 * an attribute value (`<img alt="<!--">`).
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
 *
 * That element (DEEP_HIDDEN) is renamed here for each call, with a random
 * name: markup past the cut that writes `</mailward-deep-hidden>` after 500
 * levels of nesting closed it, and the words after it read as shown while a
 * browser, which knows no such element, still hid them.
 */
function hiddenOpenAt(before: string): string {
  if (!before.length) return '';
  const info = analyseHtml(before, before.length);
  // The style sheets' backgrounds first: a class past the cut (or on a tag it splits) is read on them.
  const open = info.sheetOpen + info.hiddenOpen;
  const name = randomBytes(8).toString('hex');
  // The page's look (PAGE_LOOK) likewise: a forged `</mailward-page>` closed a dark body's background and its black text read as shown.
  return open.split(DEEP_HIDDEN).join(`<mailward-deep-hidden-${name} hidden>`).split(`<${PAGE_LOOK}`).join(`<${PAGE_LOOK}-${name}`);
}

/** Of SKIP_TAGS, those whose content the tokenizer reads as raw text up to their end tag (RawTextTokenizer; `<template>` holds markup). */
const RAW_TEXT = new Set([...SKIP_TAGS].filter((name) => RAW_TEXT_ELEMENTS.has(name)));

/** How htmlparser2's tokenizer leaves HTML it was given up to here: what is open, what is cut short. */
interface HtmlEnd {
  /** The outermost element open whose content shows nothing (SKIP_TAGS), and where its start tag begins. */
  skip?: { name: string; from: number };
  /** Where the token the end cuts short begins (a tag, a comment, a declaration...): the input's length when none is. */
  pending: number;
  /**
   * The start tag cut short, once its name is read: its name, the first value of each attribute in
   * LOOK_ATTRIBUTES, and where what follows its name or last whole attribute begins (the attribute being read).
   */
  tag?: { name: string; attrs: Map<string, string>; restFrom: number };
}

/**
 * `html` through htmlparser2's tokenizer, as analyseHtml's parser reads it
 * (quoted attribute values, comments, raw text elements): where each token
 * starts is the tokenizer's own, so a `<` or `>` inside an attribute value
 * (`<div title="a<b" style="display:none">`) starts or ends no tag, and a
 * `<!--` or `<style>` inside one opens nothing. Linear; attribute values are
 * kept only for LOOK_ATTRIBUTES (html.ts: all its reader is given of an element).
 */
function endOfHtml(html: string): HtmlEnd {
  let pending = 0;
  let skip: { name: string; from: number; depth: number } | undefined;
  let tag: HtmlEnd['tag'];
  let tagFrom = 0;
  let attrName = '';
  let attrValue = '';
  const slice = (start: number, end: number) => html.slice(start, end);
  const opened = (end: number) => {
    pending = end + 1;
    const name = tag!.name;
    if (!skip && SKIP_TAGS.has(name)) skip = { name, from: tagFrom, depth: 1 };
    else if (skip?.name === name) skip.depth++;
    tag = undefined;
  };
  const done = (_start: number, end: number) => {
    pending = end + 1;
  };
  const callbacks: TokenizerCallbacks = {
    ontext: (_start, end) => {
      pending = end;
    },
    ontextentity: (_codepoint, end) => {
      pending = end;
    },
    onopentagname(start, end) {
      tagFrom = start - 1;
      tag = { name: slice(start, end).toLowerCase(), attrs: new Map(), restFrom: end };
    },
    onattribname(start, end) {
      attrName = slice(start, end).toLowerCase();
      attrValue = '';
    },
    onattribdata(start, end) {
      if (LOOK_ATTRIBUTES.has(attrName)) attrValue += slice(start, end);
    },
    onattribentity(codepoint) {
      if (LOOK_ATTRIBUTES.has(attrName)) attrValue += String.fromCodePoint(codepoint);
    },
    onattribend(_quote, end) {
      if (!tag) return;
      if (LOOK_ATTRIBUTES.has(attrName) && !tag.attrs.has(attrName)) tag.attrs.set(attrName, attrValue);
      tag.restFrom = end;
    },
    onopentagend: opened,
    onselfclosingtag: opened,
    onclosetag(start, end) {
      const name = slice(start, end).toLowerCase();
      if (skip?.name === name && --skip.depth === 0) skip = undefined;
      // The tokenizer reads on to the next `>` (no callback there): up to it, the end tag is what the end cuts short.
      const gt = html.indexOf('>', end);
      pending = gt < 0 ? start - 2 : gt + 1;
    },
    oncomment: done,
    oncdata: done,
    ondeclaration: done,
    onprocessinginstruction: done,
    onend() {},
  };
  new RawTextTokenizer({ decodeEntities: true }, callbacks).write(html);
  return { skip, pending, tag };
}

/** What is open at the end of `before` whose content shows nothing, and a tag the cut split (see unshownOpenAt). */
function skippedOpenAt(before: string): string {
  const end = endOfHtml(before);
  // Raw text up to its end tag: its opener and last characters (a split `</sty`), whatever the tokenizer holds back.
  if (end.skip && RAW_TEXT.has(end.skip.name)) return withTail(before, `<${end.skip.name}>`, end.skip.from);
  // A <template> holds markup: what the end cuts short inside it goes after it.
  const template = end.skip ? `<${end.skip.name}>` : '';
  if (before.startsWith('<!--', end.pending)) return template + withTail(before, '<!--', end.pending);
  return template + cutTag(before, end);
}

/**
 * `opener` (a comment's or a raw text element's, whose start tag begins at
 * `from`) and the last OPEN_TAIL characters of `before`; the whole of it from
 * `from` when that is no longer.
 */
function withTail(before: string, opener: string, from: number): string {
  if (before.length - from <= OPEN_TAIL) return before.slice(from);
  // Cut inside an inline data: payload (a font or image in a style sheet): its `data:` goes with it, so the
  // payload read after the cut is known as one (dataPayloads), not as 1 MB of hidden text.
  const payload = dataPayloadRunAt(before);
  const tail = payload >= 0 ? `data:,${before.slice(-Math.min(OPEN_TAIL, payload))}` : before.slice(-OPEN_TAIL);
  // A blank after the opener: `<!--` and `->` of the tail must not make `<!--->`, an empty comment.
  return `${opener} ${tail}`;
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

/**
 * Characters kept of each end of a name or value of a tag the cut splits
 * (cutTag). The tag must not be kept whole: the HTML read past the cut is
 * judged after it within analyseHtml's 1 MB, so a tag padded to 1 MB would
 * push what was read out of what is judged; and a bound on its characters (4
 * KB, before) was evaded by padding the hiding tag past it. What decides how
 * the tag hides is its name and the attributes analyseHtml reads
 * (LOOK_ATTRIBUTES), each of which it reads only so far (a style's first 2,048
 * characters, a class's first 1,024) or by its start and end (colours, sizes,
 * `rgba(..., 0)`): kept by their first and last 2,048 characters, they read as
 * the whole does, however long the rest. At most 11 such attributes, the name
 * and what the cut falls in: under 56 KB of characters kept, but each `"`
 * kept grows to `&quot;` (6): about 250 KB at worst, which still leaves the
 * read past the cut (half the tail's 1 MB at most) within analyseHtml's 1 MB.
 */
const MAX_TAG_END_CHARS = 2048;

/** `s` with its middle left out past MAX_TAG_END_CHARS characters at each end. */
function bothEnds(s: string): string {
  return s.length <= 2 * MAX_TAG_END_CHARS ? s : s.slice(0, MAX_TAG_END_CHARS) + s.slice(-MAX_TAG_END_CHARS);
}

/**
 * The token `before` ends inside, cut short (`<!-`, `<sty`, `<div
 * style="display:no`, `</di`), as htmlparser2's tokenizer reads it (endOfHtml);
 * else ''. A cut inside a line (a quoted-printable soft break `<!-=` CRLF `-`,
 * a base64 line, the byte bound) may split the tag itself: put before the HTML
 * read from the cut it is read whole again, where the read alone began with `-
 * ...` or `ne">...` and the whole hidden content after it read as text. Kept
 * whatever the tag: the two halves together are what a reader's client reads.
 * A start tag whose name was read is kept as its name, its LOOK_ATTRIBUTES and
 * what follows its last whole attribute (the one the cut falls in), raw, so that the rest past the cut (`ne">`)
 * ends it as in the whole part; each by both ends (MAX_TAG_END_CHARS).
 */
function cutTag(before: string, end: HtmlEnd): string {
  if (before.charCodeAt(end.pending) !== 0x3c) return '';
  const { tag } = end;
  if (!tag) return headAndTail(before, end.pending);
  const attrs = [...tag.attrs].map(([name, value]) => ` ${name}="${bothEnds(value).replace(/&/g, '&amp;').replace(/"/g, '&quot;')}"`);
  return `<${bothEnds(tag.name)}${attrs.join('')} ${headAndTail(before, tag.restFrom)}`;
}

/** before.slice(from) by both ends (MAX_TAG_END_CHARS), without copying the middle. */
function headAndTail(before: string, from: number): string {
  return before.length - from <= 2 * MAX_TAG_END_CHARS ? before.slice(from) : before.slice(from, from + MAX_TAG_END_CHARS) + before.slice(-MAX_TAG_END_CHARS);
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
export function htmlVisibleShare(html: string, payloads = dataPayloads(html), unmeasured = 0): number {
  if (!html.length) return 1;
  const { text, altText } = analyseHtml(html);
  const visible = withoutInvisibles(`${text} ${altText}`).replace(/\s+/g, '').length;
  const measured = html.length - payloads.bytes - unmeasured;
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
  // The style sheets restated before it (HtmlInfo.sheetOpen) are not what was read: up to 64 KB of them must not make a short read's text a small share.
  const sheet = open.startsWith(`<${RESTATED_SHEET}>`) ? open.indexOf('</style>') + '</style>'.length : 0;
  return htmlVisibleShare(read, payloads, sheet) < PADDING_VISIBLE_SHARE;
}

