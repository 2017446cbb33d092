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
 * past an HTML element that breaks out of it (`<svg><div><iframe>` is raw text, `<svg><div><style/>` too).
 *
 * It relies on htmlparser2 9's internal states (startSpecial, the `</name` end sequences): test/html-raw-text.test.ts
 * tells when an upgrade changes them.
 */
import { Tokenizer } from 'htmlparser2';

/** The end sequences (`</name`, lower-case bytes, as htmlparser2's own) of the raw-text elements htmlparser2 does not know. */
const RAW_TEXT_ENDS = new Map(['iframe', 'noembed', 'noframes', 'xmp'].map((name) => [name, Uint8Array.from(`</${name}`, (c) => c.charCodeAt(0))]));
/** The first letters of their names: other tags take htmlparser2's path alone. */
const FIRST_LETTERS = new Set([...RAW_TEXT_ENDS.keys()].map((name) => name.charCodeAt(0)));
/**
 * The HTML elements that, started inside SVG or MathML, close it in a browser and are HTML again (the HTML standard's
 * "in foreign content" breakout; `<font>` only with color, face or size there, taken as one always). htmlparser2's
 * Parser does not model them: its foreign context stays SVG's. The void ones are never open and need no place here.
 */
const BREAKOUT = new Set(
  'b big blockquote body center code dd div dl dt em font h1 h2 h3 h4 h5 h6 head i li listing menu nobr ol p pre ruby s small span strong strike sub sup table tt u ul var'.split(' '),
);

/**
 * Whether a tag starting here is in SVG or MathML as a browser reads it: the Parser's foreign context (integration
 * points such as foreignObject are HTML again), unless an element that breaks out of it is open inside the SVG or MathML
 * (`<svg><div><iframe>` is an HTML iframe). Without a Parser, false.
 */
function inForeignContent(cbs: TokenizerInternals['cbs']): boolean {
  if (cbs.foreignContext?.[0] !== true) return false;
  const stack = cbs.stack ?? [];
  // The innermost BREAKOUT_WALK open elements only (each tag start looks): past them, the Parser's context stands.
  for (let i = 0; i < Math.min(stack.length, BREAKOUT_WALK); i++) {
    const name = stack[i]!;
    if (name === 'svg' || name === 'math') return true;
    if (BREAKOUT.has(name)) return false;
  }
  return true;
}
/** How many of the innermost open elements are looked at for a breakout (a bound on the work per tag). */
const BREAKOUT_WALK = 32;
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
  cbs: { foreignContext?: boolean[]; stack?: string[] };
  /** Whether the tag being read started inside SVG or MathML, or may have (the Parser's context before the tag: `<title>` changes it). */
  inForeignContent?: boolean;
  startSpecial(sequence: Uint8Array, offset: number): void;
  stateBeforeTagName(c: number): void;
  stateBeforeAttributeName(c: number): void;
  stateInSelfClosingTag(c: number): void;
  stateInSpecialTag(c: number): void;
}

/** A Tokenizer (for htmlparser2's Parser option `Tokenizer`, or alone) that reads the raw-text elements as browsers do. */
export class RawTextTokenizer extends Tokenizer {}

const base = Tokenizer.prototype as unknown as TokenizerInternals;
const own = RawTextTokenizer.prototype as unknown as TokenizerInternals;

own.stateBeforeTagName = function (this: TokenizerInternals, c: number): void {
  base.stateBeforeTagName.call(this, c);
  // Read alone (no Parser: readFlat, the MIME tail), the context is not known: `/>` is read as htmlparser2 reads it.
  this.inForeignContent = this.cbs.foreignContext === undefined || inForeignContent(this.cbs);
  if (this.xmlMode || !FIRST_LETTERS.has(c | 0x20)) return;
  // The name is read from the buffer: the whole input is written at once (a name a chunk cuts is read as before).
  const at = this.index - this.offset;
  const name = /^[a-z]+/i.exec(this.buffer.slice(at, at + 9))?.[0].toLowerCase() ?? '';
  const end = RAW_TEXT_ENDS.get(name);
  // Matched from the name's second letter on by htmlparser2, with the end of the name after it (`<iframes>` is not one).
  // Inside SVG or MathML (known only with a Parser) they are markup: `<svg><iframe><!--</iframe>x-->` hides x; not
  // past an element that breaks out of it (`<svg><div><iframe>` is raw text).
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
