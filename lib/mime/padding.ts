/**
 * Whether what the tail walk read of a text part before its line budget ran
 * out is padding (hiding the text after it) rather than text: see tail.ts.
 */
import { analyseHtml } from '../util/html';
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

/** Whether raw[start, end), cut short by the line budget after `units` line units, is padding by its bytes: short or blank lines. */
export function bytesLookLikePadding(raw: Buffer, start: number, end: number, units: number): boolean {
  if (end - start < units * PADDING_BYTES_PER_UNIT) return true;
  let blank = 0;
  for (let i = start; i < end; i++) {
    const c = raw[i]!;
    if (c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a) blank++;
  }
  return blank >= (end - start) * PADDING_BLANK_SHARE;
}

/**
 * Whether the raw body bytes [bodyStart, at) leave an HTML comment open at `at`:
 * a part read from the cut on may start inside one comment 40,000 lines long,
 * whose text is no text. As written (7bit, 8bit, quoted-printable: `<!--` and
 * `-->` are not encoded); a base64 body shows neither. Quoted-printable soft
 * line breaks (`=` at a line's end) are read past: one falls inside `-->`
 * (`-=` CRLF `->`) of about one Outlook conditional comment in 40, and the
 * part read from the cut then counted as one comment, 0% visible. Linear: one
 * copy without them, two backward searches.
 */
export function commentOpenAt(raw: Buffer, bodyStart: number, at: number): boolean {
  const before = raw.toString('latin1', bodyStart, at).replace(/=\r?\n/g, '');
  return before.lastIndexOf('<!--') > before.lastIndexOf('-->');
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
export function htmlVisibleShare(html: string): number {
  if (!html.length) return 1;
  const { text, altText } = analyseHtml(html);
  const visible = withoutInvisibles(`${text} ${altText}`).replace(/\s+/g, '').length;
  let payload = 0;
  for (const m of html.matchAll(DATA_URI_PAYLOAD)) payload += m[0].length;
  const measured = html.length - payload;
  // All of it inline images: nothing shows but them (padding if nothing else does).
  return measured > 0 ? visible / measured : visible ? 1 : 0;
}

/** Whether the decoded HTML a line-cut reading took in is padding: almost nothing in it shows (PADDING_VISIBLE_SHARE). */
export function htmlLooksLikePadding(html: string, insideComment: boolean): boolean {
  // Read from inside a comment: what follows up to its end is comment too, as the prefix's parse read it.
  return htmlVisibleShare(insideComment ? `<!--${html}` : html) < PADDING_VISIBLE_SHARE;
}
