/**
 * htmlparser2's tokenizer, taught the raw-text elements of HTML it does not know. Browsers read what `<iframe>`,
 * `<noembed>`, `<noframes>` and `<xmp>` hold as text up to their end tag, as they read `<script>` and `<style>`:
 * a `<!--`, a `<style>` or an open attribute quote inside opens nothing. htmlparser2 reads it as markup, so
 * `<iframe><!--</iframe><p>spam</p>` hid all that follows in a comment no browser sees (lib/util/html.ts).
 *
 * Browsers also ignore `/>` on these start tags and on htmlparser2's own (`<style/>`, `<iframe/>`): their content is
 * raw text all the same, where htmlparser2 stops reading it raw. Not in SVG or MathML, where `/>` closes the element
 * (the Parser's foreign context where the tag starts decides; without a Parser, `/>` is read as htmlparser2 reads it).
 * Inside SVG or MathML they are markup, as in a browser (htmlparser2's own `<style>` is still read raw there), but not
 * after an HTML element broke out of it, which closes the SVG in a browser (`<svg><div><iframe>`, `<svg><p></p><iframe>`
 * are raw text, `<svg><div><style/>` too).
 *
 * It relies on htmlparser2 9's internal states (startSpecial, the `</name` end sequences): test/html-raw-text.test.ts
 * tells when an upgrade changes them.
 */
import { Tokenizer } from 'htmlparser2';

/** The end sequences (`</name`, lower-case bytes, as htmlparser2's own) of the raw-text elements htmlparser2 does not know. */
const RAW_TEXT_ENDS = new Map(['iframe', 'noembed', 'noframes', 'xmp'].map((name) => [name, Uint8Array.from(`</${name}`, (c) => c.charCodeAt(0))]));
/** Every element RawTextTokenizer reads as raw text to its end tag: htmlparser2's own and those taught here. */
export const RAW_TEXT_ELEMENTS: ReadonlySet<string> = new Set(['script', 'style', 'title', 'textarea', ...RAW_TEXT_ENDS.keys()]);
/** The first letters of their names: other tags take htmlparser2's path alone. */
const FIRST_LETTERS = new Set([...RAW_TEXT_ENDS.keys()].map((name) => name.charCodeAt(0)));
/**
 * The HTML elements that, started inside SVG or MathML, close it in a browser and are HTML again (the HTML standard's
 * "in foreign content" breakout; `<font>` only with a color, face or size attribute). htmlparser2's Parser does not
 * model them: its foreign context stays SVG's, so the tokenizer marks it HTML (the browser has popped the SVG: all
 * after it is HTML until the Parser's `</svg>` drops the entry, or an integration point's end brings the outer back).
 */
const BREAKOUT = new Set(
  'b big blockquote body center code dd div dl dt em h1 h2 h3 h4 h5 h6 head i li listing menu nobr ol p pre ruby s small span strong strike sub sup table tt u ul var'.split(' '),
);
/** The attributes that make `<font>` break out. */
const FONT_BREAKOUT = new Set(['color', 'face', 'size']);
/** A tag name at the start of a slice (longer than any name above), with what ends it. */
const TAG_NAME = /^[a-z][a-z0-9]*(?=[\s/>]|$)/i;
const EQ = '='.charCodeAt(0);
/** What ends an attribute name besides `=`, `/` and `>` (htmlparser2's blanks: space, tab, LF, FF, CR). */
const TAG_BLANKS = new Set([0x20, 0x09, 0x0a, 0x0c, 0x0d]);

/** Whether a tag starting here is in SVG or MathML as a browser reads it (the Parser's foreign context). Without a Parser, false. */
function inForeignContent(cbs: TokenizerInternals['cbs']): boolean {
  return cbs.foreignContext?.[0] === true;
}
const GT = '>'.charCodeAt(0);
const SLASH = '/'.charCodeAt(0);
const SPACE = ' '.charCodeAt(0);

/** The tokenizer internals used here (private in htmlparser2's typings). */
interface TokenizerInternals {
  buffer: string;
  offset: number;
  index: number;
  xmlMode: boolean;
  isSpecial: boolean;
  /** The `</name` end sequence looked for in raw text, and how much of it has matched. */
  currentSequence: Uint8Array;
  sequenceIndex: number;
  /** The Parser reading the tokens, or readFlat's callbacks: the Parser says whether SVG or MathML is open, and what is open. */
  cbs: { foreignContext?: boolean[] };
  /** A `<font>` started in SVG or MathML is being read: a color, face or size attribute makes it break out. */
  fontInForeignContent?: boolean;
  sectionStart: number;
  /** Whether the tag being read started inside SVG or MathML, or may have (the Parser's context before the tag: `<title>` changes it). */
  inForeignContent?: boolean;
  startSpecial(sequence: Uint8Array, offset: number): void;
  stateBeforeTagName(c: number): void;
  stateBeforeAttributeName(c: number): void;
  stateInSelfClosingTag(c: number): void;
  stateInSpecialTag(c: number): void;
  stateInAttributeName(c: number): void;
}

/** A Tokenizer (for htmlparser2's Parser option `Tokenizer`, or alone) that reads the raw-text elements as browsers do. */
export class RawTextTokenizer extends Tokenizer {}

const base = Tokenizer.prototype as unknown as TokenizerInternals;
const own = RawTextTokenizer.prototype as unknown as TokenizerInternals;

own.stateBeforeTagName = function (this: TokenizerInternals, c: number): void {
  base.stateBeforeTagName.call(this, c);
  this.fontInForeignContent = false;
  if (!this.xmlMode && inForeignContent(this.cbs)) breakOut(this);
  // Read alone (no Parser: readFlat, the MIME tail), the context is not known: `/>` is read as htmlparser2 reads it.
  this.inForeignContent = this.cbs.foreignContext === undefined || inForeignContent(this.cbs);
  if (this.xmlMode || !FIRST_LETTERS.has(c | 0x20)) return;
  // The name is read from the buffer: the whole input is written at once (a name a chunk cuts is read as before).
  const at = this.index - this.offset;
  const name = /^[a-z]+/i.exec(this.buffer.slice(at, at + 9))?.[0].toLowerCase() ?? '';
  const end = RAW_TEXT_ENDS.get(name);
  // Matched from the name's second letter on by htmlparser2, with the end of the name after it (`<iframes>` is not one).
  // Inside SVG or MathML (known only with a Parser) they are markup: `<svg><iframe><!--</iframe>x-->` hides x; not
  // after an element that broke out of it (`<svg><div><iframe>`, `<svg><p></p><iframe>` are raw text).
  if (end && !inForeignContent(this.cbs)) this.startSpecial(end, 3);
};

own.stateInSelfClosingTag = function (this: TokenizerInternals, c: number): void {
  // `<style/>` opens a style element whose content is raw text: read the `/` as a browser does, as nothing.
  if (c === GT && this.isSpecial && !this.xmlMode && !this.inForeignContent) this.stateBeforeAttributeName(c);
  else base.stateInSelfClosingTag.call(this, c);
};

own.stateInSpecialTag = function (this: TokenizerInternals, c: number): void {
  // `</iframe/>` (`</style/ x>`) ends raw text in a browser, as `</iframe >` does: htmlparser2 takes only `>` or a
  // blank after the name, and read all that follows as the element's text. A blank in its place ends it the same way
  // (the name is read up to here, the rest skipped to its `>`).
  const named = this.sequenceIndex === this.currentSequence.length;
  base.stateInSpecialTag.call(this, named && c === SLASH && !this.xmlMode ? SPACE : c);
};

/** An HTML element starting in SVG or MathML breaks out of it: the Parser's innermost foreign context is HTML from here. */
function breakOut(tokenizer: TokenizerInternals): void {
  const at = tokenizer.index - tokenizer.offset;
  const name = TAG_NAME.exec(tokenizer.buffer.slice(at, at + 12))?.[0].toLowerCase() ?? '';
  if (name === 'font') tokenizer.fontInForeignContent = true;
  else if (BREAKOUT.has(name)) tokenizer.cbs.foreignContext![0] = false;
}

own.stateInAttributeName = function (this: TokenizerInternals, c: number): void {
  if (this.fontInForeignContent && (c === EQ || c === GT || c === SLASH || TAG_BLANKS.has(c))) {
    const name = this.buffer.slice(this.sectionStart - this.offset, this.index - this.offset).toLowerCase();
    if (FONT_BREAKOUT.has(name)) {
      this.cbs.foreignContext![0] = false;
      this.fontInForeignContent = false;
    }
  }
  base.stateInAttributeName.call(this, c);
};
