import { Parser, Tokenizer, type TokenizerCallbacks } from 'htmlparser2';
import { colorDifference, colorKey, contrastRatio, cssColor, fromKey, legacyColor, over, type ColorValue, type Rgba } from './css-color';

/** One `<a href>` with the text a reader sees. */
export interface HtmlLink {
  href: string;
  text: string;
}

/** What the content checks need from an HTML part, from one streaming pass. */
export interface HtmlInfo {
  /** Visible text (script, style and hidden elements left out). */
  text: string;
  /** `alt` and `title` texts of images. */
  altText: string;
  /** Text a reader does not see (display:none, a font size of 2px or less, text colour of too low a contrast with its background...). */
  hiddenText: string;
  links: HtmlLink[];
  images: number;
  /** Names of the elements used (a structure clue for the classifier), at most 64. */
  tags: Set<string>;
  /** True when the input was cut at the byte limit. */
  truncated: boolean;
  /** True when elements nested deeper than MAX_DEPTH (500): no real mail does; the rest was read flat. */
  deep: boolean;
  /**
   * Start tags that, put before HTML that continues this input, hide it as what is open at its end
   * hides it: the block and table elements open around the outermost hiding element open at the
   * end (CLOSES_INSIDE), that element and the elements open inside it, each with what it
   * changes of how its text shows (a text colour and background around it included) (reopenLook: `<div hidden>`, `<td style="font-size:0">`, a child
   * that shows again `<div style="font-size:16px">`), up to the first whose content shows
   * nothing anyway (SKIP_TAGS). When no hiding element is open, the block and table elements open
   * with what they change of the look (a dark table's background and white text), '' when none
   * changes it: white text past the cut is then judged on the background it has. An open html or body
   * that changes the look (`<body bgcolor="#000" text="#fff">`) is reopened first as PAGE_LOOK with it. The MIME tail reads a part
   * from a cut with it (lib/mime/padding.ts), so that the end tags past the cut close them as
   * they close the real ones. Read flat (past MAX_DEPTH), where the open elements are not known
   * one by one: DEEP_HIDDEN when the end is hidden, which no end tag of real markup closes.
   */
  hiddenOpen: string;
  /**
   * A `<style>` element restating the backgrounds the input's style sheets give (SheetBackgrounds: the classes
   * given one, those given an image, a selector naming no class), '' when none: put before HTML that continues
   * this input (the MIME tail, lib/mime/padding.ts), a `class` past the cut, or on a start tag the cut splits,
   * gives the background it gives in the whole part. At most MAX_STYLE_CHARS.
   */
  sheetOpen: string;
}

/**
 * What hiddenOpen reopens when the input ended hidden past MAX_DEPTH: one hiding element that no
 * real markup's end tag closes (a forger's own `</mailward-deep-hidden>` would, after nesting 500 deep).
 */
export const DEEP_HIDDEN = '<mailward-deep-hidden hidden>';

/**
 * What hiddenOpen reopens the look of an open `<html>` or `<body>` under (its background, its text colour): an element
 * no real markup's end tag closes (the MIME tail renames it at random for each message: a forged end tag closes nothing).
 */
export const PAGE_LOOK = 'mailward-page';

/**
 * Elements whose content shows nothing: analyseHtml skips it, and the MIME tail
 * (lib/mime/padding.ts) reads a part from inside one as hidden.
 * `iframe`, `noembed` and `noframes` hold raw text that browsers do not render (an iframe shows its
 * src, not its content; embeds and frames are supported, so their fallbacks never show).
 * Not `head`: browsers show what a stray <head> holds (text, or anything after <body>), and its
 * own children that show nothing (title, style, script) are skipped anyway. Not `noscript`:
 * mail clients run no scripts, so they show it.
 */
export const SKIP_TAGS: ReadonlySet<string> = new Set(['script', 'style', 'title', 'template', 'iframe', 'noembed', 'noframes']);
const BLOCK_TAGS = new Set(['p', 'div', 'br', 'tr', 'td', 'li', 'table', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'hr', 'blockquote']);
/** A length of zero in any unit (`0`, `0px`, `0em`, `0%`). */
const ZERO_LENGTH = /^[+-]?(?:0+\.?0*|\.0+)(?:[a-z]+|%)?$/i;
/** A `height`/`max-height` value a browser takes: a length, a keyword, a function. */
const HEIGHT_VALUE = /^(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[a-z]+|%)?|auto|none|min-content|max-content|fit-content|inherit|initial|unset|revert|(?:calc|min|max|clamp|var|fit-content)\(.*\))$/i;
/** An `overflow` (one or two keywords: x, then y) or `overflow-y` value a browser takes. */
const OVERFLOW_VALUE = /^(?:visible|hidden|clip|scroll|auto|overlay|inherit|initial|unset|revert)(?:\s+(?:visible|hidden|clip|scroll|auto|overlay))?$/i;

/**
 * Styles that hide an element's content for good, no descendant's style shows it again (lookOf): `display:none`,
 * an opacity of at most FAINT_ALPHA (a descendant's multiplies it), and this one — each read as the declaration
 * that applies, since `opacity:0;opacity:1` shows. A zero font size, visibility:hidden and the text colour are
 * inherited values a descendant may reset (see Look).
 *
 * Zero height (`height` or `max-height`) with the vertical overflow cut (`overflow`/`overflow-y` hidden or clip): what
 * the element holds is clipped away, for good. Without the cut it overflows and shows (`max-height:0` alone hid
 * nothing in a browser, but read as hidden here). Each the declaration that applies.
 */
function clippedToNothing(style: string): boolean {
  if (!/height/i.test(style) || !/overflow/i.test(style)) return false;
  const zero = (property: 'height' | 'max-height') => ZERO_LENGTH.test(styleValue(style, property) ?? '');
  if (!zero('height') && !zero('max-height')) return false;
  const overflow = styleDeclaration(style, ['overflow', 'overflow-y']);
  if (!overflow) return false;
  const words = overflow.value.toLowerCase().split(/\s+/);
  const vertical = overflow.property === 'overflow' ? (words[1] ?? words[0]) : words[0];
  return vertical === 'hidden' || vertical === 'clip';
}
/**
 * A one-keyword `display` value that Blink, WebKit and Gecko all take: any other is dropped and the declaration before
 * it wins, so `display:none;display:nonsense` still hides. Not `run-in`, `ruby-base`, the ruby containers nor `-ms-`
 * and `-moz-` values: some engine drops them, and a reader of Gmail or Apple Mail would see `display:none` win.
 */
const DISPLAY_KEYWORD =
  /^(?:none|contents|block|inline|inline-block|flow-root|list-item|flex|inline-flex|grid|inline-grid|table|inline-table|table-(?:row-group|header-group|footer-group|row|cell|column-group|column|caption)|ruby|ruby-text|math|-webkit-box|-webkit-inline-box|-webkit-flex|-webkit-inline-flex|inherit|initial|unset|revert|revert-layer)$/i;
/** `display` values that hide what an element holds: a table column's children are not rendered (CSS 2.1 17.2.1). */
const DISPLAY_GONE = new Set(['none', 'table-column', 'table-column-group']);

/**
 * A two- or three-keyword `display` value (CSS Display 3): an outer type and an inner one, or `list-item` with at
 * most one of each (its inner one flow or flow-root), no keyword twice. `block block` and `inline run-in` are
 * dropped by browsers: read as valid, they let a `display:none` before them read as shown.
 */
function displayMulti(value: string): boolean {
  const words = value.toLowerCase().split(/\s+/);
  if (words.length < 2 || words.length > 3 || new Set(words).size !== words.length) return false;
  const outer = words.filter((w) => w === 'block' || w === 'inline').length;
  const inner = words.filter((w) => /^(?:flow|flow-root|table|flex|grid|ruby)$/.test(w));
  const listItem = words.includes('list-item');
  if (outer + inner.length + (listItem ? 1 : 0) !== words.length || outer > 1 || inner.length > 1) return false;
  return listItem ? inner.every((w) => w === 'flow' || w === 'flow-root') : outer === 1 && inner.length === 1;
}
/**
 * Font size (px) at or below which text is too small to read (1.5pt, 0.125em of 16px). The SpamAssassin
 * corpus's ham has no text at 4px or less; 2px letters are specks. See docs/content.md.
 */
const TINY_PX = 2;
/**
 * WCAG 2 contrast ratio below which text reads as hidden on its background (1 is the same colour,
 * 21 black on white; WCAG asks 4.5 for body text, #999 on white is 2.8). See docs/content.md.
 */
const LOW_CONTRAST = 1.3;
/** CIEDE2000 difference (ΔE00 / 100) under which a low contrast hides text: a hue apart shows (red on grey, yellow on white). */
const LOW_DIFFERENCE = 0.2;
/** Text of at most this opacity is hidden on any background (contrast under 1.2 on black or white alike). */
const FAINT_ALPHA = 0.1;
const WHITE_RGBA: Rgba = { r: 255, g: 255, b: 255, a: 1 };
/** The size of a page's text where no one sets it (medium). */
const DEFAULT_PX = 16;
/** Font sizes read are capped: only small ones matter, and a huge one must not print as 1e+21px (reopenLook). */
const MAX_PX = 1000;
const KEYWORD_PX: Record<string, number> = { 'xx-small': 9, 'x-small': 10, small: 13, medium: 16, large: 18, 'x-large': 24, 'xx-large': 32, 'xxx-large': 48 };
const UNIT_PX: Record<string, number> = { px: 1, pt: 4 / 3, pc: 16, in: 96, cm: 96 / 2.54, mm: 96 / 25.4, q: 96 / 101.6, rem: DEFAULT_PX };
/** `<font size>` 1 to 7 (size=0 reads as 1; +n and -n from 3). */
const FONT_ATTR_PX = [10, 10, 13, 16, 18, 24, 32, 48];
/** A font-size value a browser takes: a length (unitless in quirks mode), a keyword, a function. Negative ones are dropped. */
const FONT_SIZE_VALUE = /^(?:\+?(?:\d+(?:\.\d*)?|\.\d+)\s*(?:px|pt|pc|rem|em|ex|ch|%|in|cm|mm|q|vw|vh|vmin|vmax)?|xx?x?-small|small|medium|large|xx?x?-large|smaller|larger|inherit|initial|unset|revert|(?:calc|var|min|max|clamp)\(.*\))$/i;
/** What may stand before the size in the `font` shorthand: style, variant, weight, stretch. */
const FONT_PREFIX = /^(?:normal|italic|oblique|small-caps|bold|bolder|lighter|[1-9]\d{0,2}|1000|(?:ultra-|extra-|semi-)?(?:condensed|expanded))$/i;
/** The `font` shorthand of a system font: its size is the system's, readable. */
const SYSTEM_FONT = /^(?:caption|icon|menu|message-box|small-caption|status-bar)$/i;
/** An opacity a browser takes: a number or a percentage (clamped to 0..1). */
const OPACITY_VALUE = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?%?$/i;
/** A `background-clip` a browser takes: a box or `text` per background layer. */
const BACKGROUND_CLIP_VALUE = /^(?:(?:border-box|padding-box|content-box|text|border|padding|content)\s*(?:,\s*|$))+$|^(?:inherit|initial|unset|revert)$/i;
/** A text fill colour (Look.fill) that a function we do not compute sets (`var()`): the text's colour is not known. */
const UNKNOWN_FILL = 'unknown';
/** Text pieces kept per field: enough for every check, bounded for hostile input. */
const MAX_TEXT_CHARS = 200_000;
const MAX_LINKS = 500;

type StyleProperty =
  | 'color'
  | '-webkit-text-fill-color'
  | 'background-color'
  | 'background'
  | 'background-image'
  | 'background-size'
  | 'background-repeat'
  | 'background-clip'
  | '-webkit-background-clip'
  | 'font-size'
  | 'font'
  | 'visibility'
  | 'display'
  | 'height'
  | 'max-height'
  | 'overflow'
  | 'overflow-y'
  | 'opacity';
/**
 * Values a browser takes for each property we read: it drops a declaration with any other value, and the one
 * before it wins (`font-size:0;font-size:x` is still zero). Colours must be real CSS colours (a name of the
 * list, hex, rgb(), hsl()...: cssColor) or a function we do not compute; loose for the background shorthand.
 */
const VALID_VALUE: Record<StyleProperty, (value: string) => boolean> = {
  'font-size': (value) => FONT_SIZE_VALUE.test(value),
  font: (value) => fontShorthandSize(value) !== undefined,
  visibility: (value) => /^(?:visible|hidden|collapse|inherit|initial|unset|revert)$/i.test(value),
  color: (value) => cssColor(value) !== undefined,
  '-webkit-text-fill-color': (value) => cssColor(value) !== undefined,
  opacity: (value) => OPACITY_VALUE.test(value),
  height: (value) => HEIGHT_VALUE.test(value),
  'max-height': (value) => HEIGHT_VALUE.test(value),
  overflow: (value) => OVERFLOW_VALUE.test(value),
  'overflow-y': (value) => OVERFLOW_VALUE.test(value),
  display: (value) => DISPLAY_KEYWORD.test(value) || displayMulti(value),
  'background-color': (value) => cssColor(value) !== undefined,
  background: (value) => /./.test(value),
  'background-image': (value) => /./.test(value),
  'background-size': (value) => /./.test(value),
  'background-repeat': (value) => /./.test(value),
  'background-clip': (value) => BACKGROUND_CLIP_VALUE.test(value),
  '-webkit-background-clip': (value) => BACKGROUND_CLIP_VALUE.test(value),
};

/** One declaration of a style attribute. */
interface Declaration {
  property: StyleProperty;
  value: string;
}

/** One declaration of a style attribute as a browser's CSS parser splits it (styleDeclarations). */
interface ParsedDeclaration {
  property: string;
  value: string;
  important: boolean;
}

/** The last style attribute split (styleDeclarations): each element's is read for a dozen properties. */
let lastSplit: { style: string; declarations: ParsedDeclaration[] } = { style: '', declarations: [] };

/**
 * A style attribute's declarations, split as a browser's CSS parser splits them, in one linear pass: at a `;`
 * outside a string, an escape and (), [] or {} (`font-family:"a;display:block"` and `url(a;b)` are one value each);
 * a CSS comment is a blank (`display:` a comment `none` hides). A declaration whose value holds a `!` other than a
 * final `!important` is dropped (`display:block!ie`, `display:block !important x`): a browser drops it too.
 */
function styleDeclarations(style: string): ParsedDeclaration[] {
  if (lastSplit.style === style) return lastSplit.declarations;
  const declarations: ParsedDeclaration[] = [];
  let current = '';
  let bangs = 0;
  let quote = '';
  let depth = 0;
  const end = () => {
    const colon = current.indexOf(':');
    const property = colon > 0 ? current.slice(0, colon).trim().toLowerCase() : '';
    let value = colon > 0 ? current.slice(colon + 1).trim() : '';
    const important = /!\s*important$/i.test(value);
    if (important) value = value.replace(/\s*!\s*important$/i, '');
    // Each `!` outside strings and brackets: any but the one of a final !important makes a value no browser takes.
    if (/^-?[a-z][a-z0-9-]*$/.test(property) && value && bangs === (important ? 1 : 0)) {
      declarations.push({ property, value, important });
    }
    current = '';
    bangs = 0;
  };
  for (let i = 0; i < style.length; i++) {
    const c = style[i]!;
    if (c === '\\') {
      current += style.slice(i, i + 2);
      i++;
    } else if (quote) {
      current += c;
      // A newline ends a string as a bad one: what follows is read as declarations again.
      if (c === quote || c === '\n' || c === '\r' || c === '\f') quote = '';
    } else if ((c === 'u' || c === 'U') && !/[\w-]/.test(current[current.length - 1] ?? '') && /^url\(\s*[^\s"']/i.test(style.slice(i, i + 80))) {
      // An unquoted url() is one token to its `)`: a quote or `/*` in it opens nothing (`url(a"b);display:none`).
      let j = style.indexOf('(', i) + 1;
      while (j < style.length && style[j] !== ')') j += style[j] === '\\' ? 2 : 1;
      current += style.slice(i, j + 1);
      i = j;
    } else if (c === '/' && style[i + 1] === '*') {
      const close = style.indexOf('*/', i + 2);
      current += ' ';
      i = close < 0 ? style.length : close + 1;
    } else if (c === ';' && depth === 0) {
      end();
    } else {
      if (c === '"' || c === "'") quote = c;
      else if (c === '(' || c === '[' || c === '{') depth++;
      else if ((c === ')' || c === ']' || c === '}') && depth > 0) depth--;
      else if (c === '!' && depth === 0) bangs++;
      current += c;
    }
  }
  end();
  lastSplit = { style, declarations };
  return declarations;
}

/**
 * The declaration of one of `properties` that wins in a style attribute, as in a browser: the last
 * `!important` one, else the last valid one (VALID_VALUE). Several properties when one sets what the
 * other does (`font` and `font-size`): the last of them wins.
 */
function styleDeclaration(style: string, properties: readonly StyleProperty[]): Declaration | undefined {
  let winner: Declaration | undefined;
  let important = false;
  for (const declaration of styleDeclarations(style)) {
    const property = declaration.property as StyleProperty;
    if (!properties.includes(property)) continue;
    if ((important && !declaration.important) || !VALID_VALUE[property](declaration.value)) continue;
    winner = { property, value: declaration.value };
    important = declaration.important;
  }
  return winner;
}

const styleValue = (style: string, property: StyleProperty): string | undefined => styleDeclaration(style, [property])?.value;

/** A value's space-separated parts at the top level (not inside parentheses), commas and slashes apart too. */
function cssTokens(value: string): string[] {
  const tokens: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i <= value.length; i++) {
    const c = value[i];
    if (c === '(') depth++;
    else if (c === ')') depth = Math.max(0, depth - 1);
    else if (i === value.length || (depth === 0 && /[\s,/]/.test(c!))) {
      if (i > start) tokens.push(value.slice(start, i));
      if (c === ',' || c === '/') tokens.push(c);
      start = i + 1;
    }
  }
  return tokens;
}

/**
 * The size the `font` shorthand sets (`font: 0/0 a`, `font: bold 12px/1.4 Arial`), or undefined when a
 * browser drops it: a size with a family after it, after style, variant, weight and stretch only.
 */
function fontShorthandSize(value: string): string | undefined {
  const tokens = cssTokens(value);
  if (tokens.length === 1 && (SYSTEM_FONT.test(tokens[0]!) || /^(?:inherit|initial|unset|revert)$/i.test(tokens[0]!))) {
    return SYSTEM_FONT.test(tokens[0]!) ? 'small' : tokens[0];
  }
  let i = 0;
  while (i < tokens.length && FONT_PREFIX.test(tokens[i]!)) i++;
  const size = tokens[i];
  // Unitless lengths (quirks mode) are for font-size alone: in the shorthand only 0 goes without a unit.
  if (size === undefined || !FONT_SIZE_VALUE.test(size) || /^\+?[\d.]+$/.test(size) !== /^\+?0*\.?0*$/.test(size)) return undefined;
  if (/^(?:inherit|initial|unset|revert)$/i.test(size)) return undefined;
  i++;
  if (tokens[i] === '/') i += 2;
  return i < tokens.length ? size : undefined;
}

/**
 * A constant length of a simple math function's argument, read as fontSizePx reads a size: px, pt, pc, rem, em and %
 * (of the parent's size), and viewport units (of a phone's 400px screen): fluid type (`clamp(14px, 2vw, 18px)`) is read.
 */
const MATH_LENGTH = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(px|em|rem|pt|pc|%|vw|vh|vmin|vmax)$/;

/**
 * What `calc(a)`, `min(a, ...)`, `max(a, ...)` or `clamp(a, b, c)` of constant lengths (MATH_LENGTH) comes to in px,
 * clamped at 0 as a browser clamps a math function's font size; undefined for anything else (other units, operators,
 * nested functions, var()): not computed.
 */
function mathFunctionPx(v: string, parentPx: number): number | undefined {
  const call = /^(calc|min|max|clamp)\(([^()]*)\)$/.exec(v);
  if (!call) return undefined;
  const args: number[] = [];
  for (const arg of call[2]!.split(',')) {
    const length = MATH_LENGTH.exec(arg.trim());
    if (!length) return undefined;
    const unit = length[2]!;
    args.push(parseFloat(length[1]!) * (unit === 'em' ? parentPx : unit === '%' ? parentPx / 100 : unit.startsWith('v') ? 4 : UNIT_PX[unit]!));
  }
  const name = call[1]!;
  if ((name === 'calc' && args.length !== 1) || (name === 'clamp' && args.length !== 3)) return undefined;
  const px = name === 'min' ? Math.min(...args) : name === 'max' || name === 'calc' ? Math.max(...args) : Math.max(args[0]!, Math.min(args[1]!, args[2]!));
  return Math.max(0, px);
}

/** A font-size value (FONT_SIZE_VALUE) in px, from the parent's; a size we do not compute (var(), calc() of more than constants) is the parent's. */
function fontSizePx(value: string, parentPx: number): number {
  const v = value.toLowerCase().trim();
  const math = mathFunctionPx(v, parentPx);
  if (math !== undefined) return math;
  const length = /^\+?(\d+(?:\.\d*)?|\.\d+)\s*([a-z%]*)$/.exec(v);
  if (length) {
    const n = parseFloat(length[1]!);
    const unit = length[2] || 'px';
    if (unit in UNIT_PX) return n * UNIT_PX[unit]!;
    if (unit === 'em') return n * parentPx;
    if (unit === '%') return (n * parentPx) / 100;
    if (unit === 'ex' || unit === 'ch') return (n * parentPx) / 2;
    // vw, vh, vmin, vmax: of a phone's 400px screen, about.
    return n * 4;
  }
  if (v in KEYWORD_PX) return KEYWORD_PX[v]!;
  if (v === 'smaller') return parentPx / 1.2;
  if (v === 'larger') return parentPx * 1.2;
  if (v === 'initial') return DEFAULT_PX;
  return parentPx;
}

/** The font size an element gives its text, in px: its style's `font-size` or `font` (the last of them), or `<font size>`. */
function fontPxOf(tag: string, attrs: Record<string, string>, parentPx: number): number {
  const declaration = attrs.style ? styleDeclaration(attrs.style, ['font-size', 'font']) : undefined;
  if (declaration) {
    const value = declaration.property === 'font' ? fontShorthandSize(declaration.value)! : declaration.value;
    return Math.min(MAX_PX, fontSizePx(value, parentPx));
  }
  const size = tag === 'font' ? /^\s*([+-]?)(\d+)/.exec(attrs.size ?? '') : null;
  if (!size) return parentPx;
  const n = Number(size[2]!.slice(0, 3));
  const index = size[1] === '+' ? 3 + n : size[1] === '-' ? 3 - n : n;
  return FONT_ATTR_PX[Math.max(0, Math.min(7, index))]!;
}

/**
 * The colour the `background` shorthand paints (`background: #000 url(x) no-repeat`): the colour among
 * its parts, 'unknown' when a gradient or a function we do not compute paints it, undefined when none
 * (`none`, an image alone: the image is unknownBackground's).
 */
function backgroundShorthandColor(value: string, gradientCovers: boolean): ColorValue | undefined {
  const tokens = cssTokens(value);
  if (tokens.length === 1 && cssColor(tokens[0]!) === 'inherit') return 'inherit';
  let color: ColorValue | undefined;
  let painted: Rgba | undefined;
  for (const token of tokens) {
    if (/^url\(/i.test(token)) continue;
    if (GRADIENT.test(token)) {
      // Painted over the colour: known only when it is one colour all the way, over all of it.
      painted = gradientCovers ? solidGradient(token) : undefined;
      if (!painted) return 'unknown';
      continue;
    }
    const read = cssColor(token);
    if (read === 'unknown') return 'unknown';
    if (read !== undefined && read !== 'inherit' && read !== 'initial') color = read;
  }
  return painted ?? color;
}

/** A gradient image: `linear-gradient(...)`, its repeating, radial and conic forms, with or without a vendor prefix. */
const GRADIENT = /^(?:-(?:webkit|moz|o|ms)-)?(?:repeating-)?(?:linear|radial|conic)-gradient\(/i;
/** Colour stops of one gradient at most this far apart (contrast ratio) paint one colour: text judged on the first reads alike on all. */
const SOLID_GRADIENT_CONTRAST = 1.05;

/**
 * The colour a gradient paints when every stop is one opaque colour (`linear-gradient(#fff,#fff)`: white text on
 * it is as hidden as on white), else undefined: a gradient of several colours, a translucent stop or a function
 * we do not compute leaves what is under the text unknown.
 */
function solidGradient(token: string): Rgba | undefined {
  const open = token.indexOf('(');
  if (open < 0 || !token.endsWith(')')) return undefined;
  const stops: Rgba[] = [];
  for (const part of cssTokens(token.slice(open + 1, -1))) {
    const read = cssColor(part);
    if (read === undefined) continue; // a direction, a shape, a position
    if (typeof read !== 'object' || read.a < 1) return undefined;
    stops.push(read);
  }
  if (stops.length < 2) return undefined;
  const first = stops[0]!;
  return stops.every((stop) => contrastRatio(stop, first) < SOLID_GRADIENT_CONTRAST) ? first : undefined;
}

/** A `background-size` that makes a gradient as large as the element: `auto`, `cover`, `contain`, `100%` (a gradient has no size of its own). */
const FULL_SIZE = /^(?:auto|cover|contain|100%)$/i;
/** A `background-size` of nothing: no tile is painted. */
const ZERO_SIZE = /^[+-]?(?:0+\.?0*|\.0+)(?:[a-z]+|%)?$/i;
/** `background-repeat` keywords; of them only `repeat` and `round` tile without gaps in their direction. */
const REPEAT_KEYWORD = /^(?:repeat|repeat-x|repeat-y|no-repeat|space|round)$/i;

/**
 * Whether a background image covers the whole element: sized to it (the winning `background-size`, or the shorthand's
 * `/ size`), or tiled both ways (the winning `background-repeat`, or the shorthand's; `repeat` by default) at a size
 * above zero. A gradient of one colour sized `100% 1px` and not repeated is an underline (a link's, a heading's), not
 * the background under the text: white on a dark cell with a white underline read as white on white. Sized `10px`
 * and repeated it covers all, as a spammer's white tiles under white text do.
 */
function gradientCovers(style: string): boolean {
  if (!/background-(?:size|repeat)|\/|repeat|space|round/i.test(style)) return true;
  const size = styleDeclaration(style, ['background', 'background-size']);
  const tokens = size ? cssTokens(size.value) : [];
  const slash = tokens.indexOf('/');
  const given = size?.property === 'background-size' ? tokens : slash < 0 ? [] : tokens.slice(slash + 1, slash + 3).filter((t) => /^[\d.+-]|^(?:auto|cover|contain)$/i.test(t));
  if (given.some((t) => ZERO_SIZE.test(t))) return false;
  if (given.every((t) => FULL_SIZE.test(t))) return true;
  const repeat = styleDeclaration(style, ['background', 'background-repeat']);
  const keywords = repeat ? cssTokens(repeat.value).filter((t) => REPEAT_KEYWORD.test(t)) : [];
  return keywords.every((k) => /^(?:repeat|round)$/i.test(k));
}

/** The gradient of one colour the winning background image declaration paints over the element's colour, if that is what it paints. */
function solidGradientImage(style: string): Rgba | undefined {
  if (!/gradient\s*\(/i.test(style) || !gradientCovers(style)) return undefined;
  const image = styleDeclaration(style, ['background', 'background-image']);
  if (!image || !/gradient\s*\(/i.test(image.value)) return undefined;
  const layers = cssTokens(image.value).filter((token) => GRADIENT.test(token) || /^url\(/i.test(token));
  return layers.length === 1 && GRADIENT.test(layers[0]!) ? solidGradient(layers[0]!) : undefined;
}

/**
 * A declaration giving a real background: a colour white text shows on, or an
 * image (not none, transparent, inherit..., nor white or a near-white page grey
 * such as #f4f4f4: every channel at least e0).
 */
const REAL_BACKGROUND = /background(?:-color|-image)?\s*:\s*(?!#[ef]{3}\b|#(?:[ef][0-9a-f]){3}\b|white\b|none\b|transparent\b|inherit\b|initial\b|unset\b|url\(\s*['"]?\s*\))[#a-z(]/i;
/** A background declaration that paints over an inline background colour: an image, or an `!important` one. */
const COVERING_BACKGROUND = /background(?:-image)?\s*:[^;}]*url\(|background(?:-color|-image)?\s*:[^;}]*!\s*important/i;
/** Selectors that match only on hover, focus and the like: their background is not under the text at rest. */
const NOT_AT_REST = /:(?:hover|focus|active|visited)\b|::?(?:selection|placeholder)\b/i;
/**
 * Elements reopened around a hiding element (hiddenOpen): those whose end tag a browser closes every
 * element open inside them with (`</td>`, `</li>`, `</p>`, `</div>`, `</table>`...). Not html, head or
 * body (their end tags close nothing), nor inline or unknown ones: past a `<div>` a browser's `</x>` or
 * `</font>` does not close it, and one past the cut must not show what the hiding element still hides.
 */
const CLOSES_INSIDE = new Set(
  'address article aside blockquote button caption center dd details dialog dir div dl dt fieldset figcaption figure footer form h1 h2 h3 h4 h5 h6 header hgroup li listing main menu nav ol p pre section summary table tbody td tfoot th thead tr ul'.split(' '),
);
/**
 * The attributes analyseHtml reads of an element (frameFor, lookOf, textColorOf, fontPxOf, ownBackground,
 * unknownBackground, newLink, image): it is given only these (lookAttributes), so an attribute read that is not
 * listed here reads as absent. The MIME tail keeps these of a start tag the cut splits (lib/mime/padding.ts).
 */
export const LOOK_ATTRIBUTES: ReadonlySet<string> = new Set(['style', 'hidden', 'class', 'bgcolor', 'background', 'color', 'size', 'alt', 'title', 'text', 'href']);

/** Of an element's attributes, those in LOOK_ATTRIBUTES: what the reader sees of it. */
function lookAttributes(attrs: Record<string, string>): Record<string, string> {
  const seen: Record<string, string> = {};
  for (const name of LOOK_ATTRIBUTES) if (Object.prototype.hasOwnProperty.call(attrs, name)) seen[name] = attrs[name]!;
  return seen;
}

/** Open elements followed; deeper markup is read flat (see analyseHtml). */
const MAX_DEPTH = 500;
/** Past MAX_DEPTH, open elements followed that change how their text looks (hide it, give it a background). */
const MAX_FLAT_STYLED = 64;
/** Elements that have no close tag: past MAX_DEPTH, open ones are counted by name to pair them with their close tags. */
const VOID_TAGS = new Set(['area', 'base', 'br', 'col', 'embed', 'hr', 'img', 'input', 'link', 'meta', 'param', 'source', 'track', 'wbr']);
/** Characters of a style attribute read: real ones are short, and the style patterns are not all linear. */
const MAX_STYLE_ATTR = 2048;
/** Style sheet text read per message (a forger controls its size). */
const MAX_STYLE_CHARS = 64 * 1024;

/** Backgrounds the style sheets give that we do not compute: white text on one is not counted as hidden. */
interface SheetBackgrounds {
  /** Classes given a real background (`.ftr td`, `td.dark`): an element carrying one may sit on it. */
  classes: Set<string>;
  /** Of those classes, ones given a background image or an `!important` background: painted over an element's inline colour too. */
  covering: Set<string>;
  /** A real background on a selector naming no class (`body`, `#hero`, `td`, `table[role] td`): it may be under any element. */
  elsewhere: boolean;
}

/** Reads one style sheet's real backgrounds into `into` (see SheetBackgrounds). */
function sheetBackgrounds(css: string, into: SheetBackgrounds): void {
  const sheet = withoutComments(css.slice(0, MAX_STYLE_CHARS));
  // One linear pass over "selector { declarations }" at the innermost level (inside @media too).
  let selectorStart = 0;
  let open = -1;
  for (let i = 0; i < sheet.length; i++) {
    const c = sheet[i];
    if (c === '{') {
      // Inside an outer block (@media), this selector starts after its brace.
      if (open >= 0) selectorStart = open + 1;
      open = i;
    } else if (c === '}') {
      const declarations = open >= 0 ? sheet.slice(open + 1, i) : '';
      if (REAL_BACKGROUND.test(declarations)) {
        const covers = COVERING_BACKGROUND.test(declarations);
        for (const selector of sheet.slice(selectorStart, open).split(',')) {
          if (NOT_AT_REST.test(selector)) continue;
          // Escaped characters belong to the class name: .md\:bg-dark is class "md:bg-dark".
          const classes = [...selector.matchAll(/\.((?:\\.|[\w-])+)/g)].map((match) => match[1]!.replace(/\\(.)/g, '$1'));
          for (const name of classes) into.classes.add(name);
          if (covers) for (const name of classes) into.covering.add(name);
          // A body, id, type or attribute selector: we do not match those, so it may be under any element.
          if (!classes.length && /\S/.test(selector)) into.elsewhere = true;
        }
      }
      open = -1;
      selectorStart = i + 1;
    }
  }
}

/** The start tag of a restated sheet (sheetOpen): the MIME tail leaves it out of the length it judges (htmlLooksLikePadding). */
export const RESTATED_SHEET = 'style mailward-sheet';

/**
 * `sheet` restated as one style sheet that sheetBackgrounds reads back the same (see HtmlInfo.sheetOpen), within
 * MAX_STYLE_CHARS: class names escaped (every character but letters, digits, `_` and `-`), those holding a blank
 * or a comma left out (no selector reads back as them).
 */
function restateSheet(sheet: SheetBackgrounds): string {
  const rules: string[] = [];
  let size = 0;
  const add = (rule: string): boolean => {
    if (size + rule.length > MAX_STYLE_CHARS - 16) return false;
    rules.push(rule);
    size += rule.length;
    return true;
  };
  if (sheet.elsewhere) add('mailward-elsewhere{background:#000}');
  const selector = (name: string) => (/[\s,]/.test(name) ? '' : `.${name.replace(/[^\w-]/g, '\\$&')}`);
  for (const [names, declaration] of [
    [sheet.covering, '{background:url(#)}'],
    [sheet.classes, '{background:#000}'],
  ] as const) {
    for (const name of names) {
      const s = selector(name);
      if (s && !add(s + declaration)) break;
    }
  }
  return rules.length ? `<${RESTATED_SHEET}>${rules.join('')}</style>` : '';
}

/** CSS without its comments (a commented-out rule gives nothing a background), in one pass. */
function withoutComments(css: string): string {
  const kept: string[] = [];
  let at = 0;
  for (let start = css.indexOf('/*'); start >= 0; start = css.indexOf('/*', at)) {
    kept.push(css.slice(at, start));
    const end = css.indexOf('*/', start + 2);
    if (end < 0) return kept.join('');
    at = end + 2;
  }
  kept.push(css.slice(at));
  return kept.join('');
}

/**
 * Whether an element may sit on a background we do not compute: the style
 * sheet gives one to a selector we do not resolve (unless an ancestor paints a
 * colour inline: `underKnown`), or to one of its classes,
 * or it has a background image. Its style attribute is already cut to
 * MAX_STYLE_ATTR.
 */
function unknownBackground(attrs: Record<string, string>, sheet: SheetBackgrounds, underKnown: boolean): boolean {
  // A rule on a selector we do not resolve: taken to be under an element only where no inline colour of an ancestor is.
  if (sheet.elsewhere && !underKnown) return true;
  const classes = sheet.classes;
  if (hasClassOf(attrs, classes)) return true;
  return backgroundImage(attrs);
}

/** Whether an element carries one of `classes`. */
const hasClassOf = (attrs: Record<string, string>, classes: Set<string>): boolean =>
  classes.size > 0 && !!attrs.class && attrs.class.slice(0, 1024).split(/\s+/).some((c) => classes.has(c));

/** Whether an element has a background image (attribute or style): a picture, or a gradient painted over its colour. */
function backgroundImage(attrs: Record<string, string>): boolean {
  if (attrs.background && attrs.background.trim()) return true;
  const style = attrs.style ?? '';
  if (style.includes('url(') && /background(?:-image)?\s*:[^;]{0,200}url\(\s*['"]?[^\s'")]/i.test(style)) return true;
  return /gradient\s*\(/i.test(style) && /background(?:-image)?\s*:[^;]{0,200}gradient\s*\(/i.test(style) && !solidGradientImage(style);
}

/**
 * How an element shows its text, as far as hiding goes. `gone` is inherited for good; the font
 * size, visibility and text colour are inherited values that a descendant's own font size,
 * visibility:visible or colour resets, as in a browser: responsive newsletters put their
 * columns' text, at 14px, in a `<td style="font-size:0">`.
 */
interface Look {
  gone: boolean;
  /** The font size (px) as far as we know it: DEFAULT_PX where nothing sets it. */
  fontPx: number;
  /** Too small to read: fontPx at most TINY_PX. */
  tiny: boolean;
  unseen: boolean;
  /** The text colour an element or an ancestor sets (colorKey); '' for the default one, a link's, or one we do not compute. */
  color: string;
  /**
   * The text fill colour an element or an ancestor sets (`-webkit-text-fill-color`, colorKey; UNKNOWN_FILL for one
   * we do not compute): WebKit, Blink and Gecko paint the text with it instead of `color`; '' for none (`color` paints).
   */
  fill: string;
  /** The product of the element's and its ancestors' opacities (a browser composites each group over the one around it). */
  opacity: number;
  /**
   * The background an element or an ancestor clips to its text (`background-clip:text`, the gradient headings of
   * marketing mail): colorKey of its colour, UNKNOWN_FILL for an image or gradient; '' for none. Text painted
   * transparent (`-webkit-text-fill-color:transparent`) shows it: that text is not hidden.
   */
  clip: string;
  /** Text of too low a contrast with its background to read (see lookOf). */
  faded: boolean;
}

/** The text fill colour an element gives (see Look.fill), from its parent's. */
function fillOf(attrs: Record<string, string>, parent: string): string {
  const value = attrs.style ? styleValue(attrs.style, '-webkit-text-fill-color') : undefined;
  if (value === undefined) return parent;
  if (/^currentcolor$/i.test(value)) return '';
  const read = cssColor(value);
  if (read === 'inherit' || read === undefined) return parent;
  if (read === 'initial') return '';
  return read === 'unknown' ? UNKNOWN_FILL : colorKey(read);
}

/** The opacity an element's style sets (the winning declaration, clamped to 0..1), 1 where none. */
function ownOpacity(attrs: Record<string, string>): number {
  const value = attrs.style ? styleValue(attrs.style, 'opacity') : undefined;
  if (value === undefined) return 1;
  const n = parseFloat(value) / (value.endsWith('%') ? 100 : 1);
  return Number.isNaN(n) ? 1 : Math.max(0, Math.min(1, n));
}

/**
 * The background an element clips to its text (see Look.clip) when its style sets `background-clip:text`: its
 * colour, UNKNOWN_FILL for an image, a gradient, a colour we do not compute or a style sheet's background on one of
 * its classes; undefined when it clips none.
 */
function clipOf(attrs: Record<string, string>, own: ColorValue | undefined, sheet: SheetBackgrounds): string | undefined {
  const style = attrs.style;
  if (!style || !/background-clip/i.test(style)) return undefined;
  // The last of them wins: the `background` shorthand after the clip resets it (`-webkit-background-clip` is an alias).
  const last = styleDeclaration(style, ['background', 'background-clip', '-webkit-background-clip']);
  if (!last || !/(?:^|[\s,])text(?:$|[\s,])/i.test(last.property === 'background' ? last.value.replace(/\([^()]*\)/g, '()') : last.value)) return undefined;
  // A style sheet's image or !important background on one of its classes paints over its own colour; any other only where it has none.
  if (backgroundImage(attrs) || own === 'unknown' || hasClassOf(attrs, sheet.covering)) return UNKNOWN_FILL;
  if (typeof own === 'object' && own.a > 0) return colorKey(own);
  return hasClassOf(attrs, sheet.classes) ? UNKNOWN_FILL : undefined;
}

/**
 * The background an element paints: a gradient of one colour its style paints over its colour (solidGradientImage),
 * else its style's `background-color` or `background` (the last of them), else `bgcolor`.
 */
function ownBackground(attrs: Record<string, string>, textColor: string): ColorValue | undefined {
  const gradient = attrs.style ? solidGradientImage(attrs.style) : undefined;
  if (gradient) return gradient;
  const declaration = attrs.style ? styleDeclaration(attrs.style, ['background-color', 'background']) : undefined;
  if (!declaration) return attrs.bgcolor !== undefined ? legacyColor(attrs.bgcolor) : undefined;
  // currentcolor paints the text's own colour.
  if (/^currentcolor$/i.test(declaration.value)) return textColor ? fromKey(textColor) : 'unknown';
  return declaration.property === 'background' ? backgroundShorthandColor(declaration.value, gradientCovers(attrs.style!)) : cssColor(declaration.value);
}

/**
 * The text colour an element gives (colorKey, '' for none known): its style's `color`, else
 * `<font color>` or `<body text>`; a link without its own colour takes the client's link colour.
 */
function textColorOf(tag: string, attrs: Record<string, string>, parent: string): string {
  const style = attrs.style ? styleValue(attrs.style, 'color') : undefined;
  let value: ColorValue | undefined = style !== undefined ? cssColor(style) : undefined;
  if (value === undefined && tag === 'font' && attrs.color !== undefined) value = legacyColor(attrs.color);
  if (value === undefined && tag === 'body' && attrs.text !== undefined) value = legacyColor(attrs.text);
  if (value === undefined) return tag === 'a' && attrs.href !== undefined ? '' : parent;
  if (value === 'inherit') return parent;
  return value === 'unknown' || value === 'initial' ? '' : colorKey(value);
}

/**
 * How an element opened under `parent` shows its text: hiding styles, a font size too small to read,
 * or a text colour of too low a contrast with the background behind it (`bg`, white where none is
 * known) — not judged where a background may come from where we do not compute it (a style sheet
 * rule, a background image, a gradient): a dark footer with white text is not hidden. Text drawn
 * fully or almost transparent is hidden on any background.
 */
function lookOf(tag: string, attrs: Record<string, string>, parent: Look, color: string, bg: string, bgUnknown: boolean, clip: string): Look {
  const style = attrs.style ?? '';
  // Opacities multiply down the tree (0.3 inside 0.3 is 0.09): no descendant raises what its ancestors lowered.
  const opacity = parent.opacity * ownOpacity(attrs);
  const gone = parent.gone || opacity <= FAINT_ALPHA || 'hidden' in attrs || (!!style && (DISPLAY_GONE.has(styleValue(style, 'display')?.toLowerCase() ?? '') || clippedToNothing(style)));
  const fontPx = fontPxOf(tag, attrs, parent.fontPx);
  const fill = fillOf(attrs, parent.fill);
  // The fill colour paints the text where one is set: `color` is then not what shows.
  let painted = fill === UNKNOWN_FILL ? '' : fill || color;
  // A background clipped to the text shows through a translucent paint (gradient text): its colour, or unknown for a gradient.
  if (painted && clip && fromKey(painted).a < 1) painted = clip === UNKNOWN_FILL ? '' : colorKey(over(fromKey(painted), fromKey(clip)));
  const visibility = style ? styleValue(style, 'visibility')?.toLowerCase() : undefined;
  const unseen = visibility === 'hidden' || visibility === 'collapse' ? true : visibility === 'visible' ? false : parent.unseen;
  let faded = false;
  if (painted) {
    const text = fromKey(painted);
    const under = bg ? fromKey(bg) : WHITE_RGBA;
    faded = text.a * opacity <= FAINT_ALPHA || (!bgUnknown && contrastRatio(text, under) < LOW_CONTRAST && colorDifference(text, under) < LOW_DIFFERENCE);
  }
  return { gone, fontPx, tiny: fontPx <= TINY_PX, unseen, color, fill, opacity, clip, faded };
}

const hides = (look: Look): boolean => look.gone || look.tiny || look.unseen || look.faded;

interface Frame extends Look {
  tag: string;
  skip: boolean;
  /** Its text is hidden (hides(look)). */
  hidden: boolean;
  bg: string;
  /** A background may be set where we do not look (a style sheet rule, a background image). */
  bgUnknown: boolean;
  link?: HtmlLink;
  /** Past MAX_DEPTH: how many elements of its name were open, itself included, when it opened. */
  at?: number;
  /**
   * Of a table, table section or row: the frame whose look content misplaced directly in it takes (FOSTER_KEPT),
   * the table's parent's: browsers move that content out before the table (HTML foster parenting).
   */
  outside?: Frame;
  /** Moved out of a table (outside): reopened on the look of the element reopened before that table (reopenHidden). */
  fostered?: boolean;
  /**
   * Of content moved out of a table and what it holds: the table section it was moved out of. A cell, row or section
   * tag in it goes back into that table in a browser (its stack is cleared back to the table), and takes its look.
   */
  section?: Frame;
  /** The frame its look was computed from where that is not the one it is open in (a row back in its table). */
  lookFrom?: Frame;
}

/**
 * Elements whose misplaced content a browser moves out before the table (foster parenting). A column group too: any
 * content but a `col` closes it and is then misplaced in the table (`<colgroup><font color=#fff>` on a white page).
 */
const TABLE_SECTIONS = new Set(['table', 'tbody', 'thead', 'tfoot', 'tr', 'colgroup']);
/** Table structure: in content moved out of a table, a browser puts it back in that table. */
const TABLE_STRUCTURE = new Set(['caption', 'colgroup', 'col', 'tbody', 'thead', 'tfoot', 'tr', 'td', 'th', 'table']);
/**
 * Elements a browser keeps in a table section (structure, a style sheet...): any other is moved out. A table in a
 * table (which a browser closes and follows) is kept too: judged on the outer table's look, as before.
 */
const FOSTER_KEPT = new Set([...TABLE_STRUCTURE, 'style', 'script', 'template', 'input', 'form']);

/**
 * Reads an HTML part once with htmlparser2 (tolerant of broken markup, linear
 * time), up to `maxBytes` characters: visible text, alt text, hidden text,
 * links with their visible text, image count.
 */
export function analyseHtml(html: string, maxBytes = 1024 * 1024): HtmlInfo {
  const truncated = html.length > maxBytes;
  const input = truncated ? html.slice(0, maxBytes) : html;
  const text: string[] = [];
  const hidden: string[] = [];
  const alt: string[] = [];
  const links: HtmlLink[] = [];
  let textChars = 0;
  let hiddenChars = 0;
  let images = 0;
  const tags = new Set<string>();
  // Real backgrounds the style sheets give, and the text of the <style> element being read.
  const sheet: SheetBackgrounds = { classes: new Set(), covering: new Set(), elsewhere: false };
  let styleText = '';
  const stack: Frame[] = [
    { tag: '#root', skip: false, hidden: false, gone: false, fontPx: DEFAULT_PX, tiny: false, unseen: false, color: '', fill: '', opacity: 1, clip: '', faded: false, bg: '', bgUnknown: false },
  ];
  const top = () => stack[stack.length - 1]!;
  /** The state an element opened under `parent` gives its text (link aside). */
  const frameFor = (name: string, attrs: Record<string, string>, parent: Frame): Frame => {
    if (attrs.style && attrs.style.length > MAX_STYLE_ATTR) attrs.style = attrs.style.slice(0, MAX_STYLE_ATTR);
    // A head's attributes style nothing that is shown: what it holds that shows moves to the body.
    if (name === 'head') attrs = {};
    const color = textColorOf(name, attrs, parent.color);
    const own = ownBackground(attrs, color);
    // A background clipped to the text (`background-clip:text`) is painted in the text, not behind it: the text
    // keeps the background behind its parent, and the clipped one is judged as its paint (lookOf).
    const clip = clipOf(attrs, own, sheet);
    let bg = parent.bg;
    // An opaque colour of its own is painted over its ancestors' backgrounds and a style sheet's colours: not over its own
    // image, nor over an image or an !important background a style sheet gives one of its classes.
    const bgUnknown =
      clip !== undefined
        ? parent.bgUnknown || (sheet.elsewhere && !parent.bg) || hasClassOf(attrs, sheet.classes)
        : typeof own === 'object' && own.a === 1
          ? backgroundImage(attrs) || hasClassOf(attrs, sheet.covering)
          : parent.bgUnknown || unknownBackground(attrs, sheet, !!parent.bg) || own === 'unknown';
    // A transparent background (or none, or inherit) shows the one behind it: white text stays on white;
    // a translucent one is painted over it.
    if (clip === undefined && typeof own === 'object' && own.a > 0) bg = colorKey(own.a < 1 ? over(own, bg ? fromKey(bg) : WHITE_RGBA) : own);
    const look = lookOf(name, attrs, parent, color, bg, bgUnknown, clip ?? parent.clip);
    return {
      tag: name,
      skip: parent.skip || SKIP_TAGS.has(name),
      hidden: hides(look),
      ...look,
      bg,
      bgUnknown,
      link: parent.link,
    };
  };

  const take = (data: string, skip: boolean, isHidden: boolean, link: HtmlLink | undefined) => {
    if (skip) return;
    if (isHidden) {
      if (hiddenChars < MAX_TEXT_CHARS && /\S/.test(data)) {
        hidden.push(data);
        hiddenChars += data.length;
      }
      return;
    }
    if (textChars < MAX_TEXT_CHARS) {
      text.push(data);
      textChars += data.length;
    }
    if (link && link.text.length < 500) link.text += data;
  };
  const newLink = (attrs: Record<string, string>): HtmlLink | undefined => {
    if (!attrs.href || links.length >= MAX_LINKS) return undefined;
    const link = { href: attrs.href.trim(), text: '' };
    links.push(link);
    return link;
  };
  const image = (attrs: Record<string, string>, skip: boolean) => {
    images++;
    const words = `${attrs.alt ?? ''} ${attrs.title ?? ''}`.trim();
    if (words && !skip) alt.push(words);
  };
  const block = (name: string) => {
    if (BLOCK_TAGS.has(name) && textChars < MAX_TEXT_CHARS) text.push('\n');
  };
  /** Pops the open elements down to the last one named `name`, if any (the stack holds at most MAX_DEPTH + 1). */
  const close = (name: string): boolean => {
    for (let at = stack.length - 1; at > 0; at--) {
      if (stack[at]!.tag === name) {
        stack.length = at;
        return true;
      }
    }
    return false;
  };

  // Past MAX_DEPTH the rest is read flat: no stack of every open element. Open elements are counted by
  // name, so that a close tag closes a deep element of its name when one is open and one of the stack
  // otherwise; links, images and script or style to skip are still followed. Text takes the state of
  // the innermost element that changed it: a styled frame (hiding, or giving a background the colour
  // test needs), of which MAX_FLAT_STYLED are kept, or else the innermost element of the stack.
  let flatFrom = -1;
  let flatSkip = '';
  let flatLink: HtmlLink | undefined;
  const flatOpenCount = new Map<string, number>();
  const styled: Frame[] = [];
  // Set when a styled frame found no room: a hiding element not followed would show its text once the
  // elements around it closed, so the rest counts as hidden. Only hostile markup gets here.
  let flatHideRest = false;
  const state = () => styled[styled.length - 1] ?? top();
  const flatOpen = (name: string, all: Record<string, string>) => {
    if (flatSkip) return; // inside a script, style, title (raw text) or template
    const attrs = lookAttributes(all);
    if (tags.size < 64) tags.add(name);
    if (SKIP_TAGS.has(name)) flatSkip = name;
    else if (name === 'a') flatLink = newLink(attrs) ?? flatLink;
    else if (name === 'img') image(attrs, top().skip);
    block(name);
    if (VOID_TAGS.has(name)) return;
    const at = (flatOpenCount.get(name) ?? 0) + 1;
    flatOpenCount.set(name, at);
    const parent = state();
    const frame = frameFor(name, attrs, parent);
    const sameLook = (['hidden', 'gone', 'tiny', 'unseen', 'bg', 'bgUnknown', 'opacity'] as const).every((key) => frame[key] === parent[key]);
    if (sameLook && frame.color === parent.color && frame.fill === parent.fill && frame.clip === parent.clip) return;
    // No room for a frame that only recolours shown text: let go, its text shows as it does (old editors leave a
    // `<font color>` open per paragraph); a descendant it would hide changes more than the colour and finds no room either.
    if (styled.length >= MAX_FLAT_STYLED && sameLook && !frame.hidden) return;
    if (styled.length >= MAX_FLAT_STYLED) flatHideRest = true;
    else styled.push({ ...frame, at });
  };
  const flatClose = (name: string) => {
    if (flatSkip) {
      if (name === flatSkip) flatSkip = '';
      return;
    }
    const open = flatOpenCount.get(name) ?? 0;
    if (open > 0) {
      // Closes the innermost deep element of that name, and with it its styled frame and those inside.
      flatOpenCount.set(name, open - 1);
      if (name === 'a') flatLink = undefined;
      for (let i = styled.length - 1; i >= 0; i--) {
        if (styled[i]!.tag === name && styled[i]!.at === open) {
          styled.length = i;
          break;
        }
      }
    } else if (close(name)) {
      // An element of the stack closed: every deep element was inside it.
      flatOpenCount.clear();
      styled.length = 0;
      flatLink = undefined;
    }
    block(name);
  };

  const parser = new Parser(
    {
      onopentag(name, all) {
        if (flatFrom >= 0) return; // the paused parser's last events
        const attrs = lookAttributes(all);
        if (stack.length > MAX_DEPTH) {
          // htmlparser2 walks its stack of open elements for every unmatched close tag: no real
          // message nests this deep, and a forged one would cost time quadratic in its size. The
          // rest is read by its tokenizer alone, which keeps no stack.
          flatOpen(name, attrs);
          flatFrom = parser.endIndex + 1;
          parser.pause();
          return;
        }
        const parent = top();
        if (tags.size < 64) tags.add(name);
        // Misplaced directly in a table (not in a cell or a caption), it is moved out before it by browsers: it shows
        // on the background and with the look of the table's parent (`<table bgcolor=#000><font color=#fff>` on white).
        // A row or cell in content moved out goes back into the table (htmlparser2 nests it in that content).
        const back = parent.section !== undefined && TABLE_STRUCTURE.has(name);
        const under = back ? parent.section! : parent;
        const fostered = under.outside !== undefined && !FOSTER_KEPT.has(name);
        const from = fostered ? under.outside! : under;
        const frame = frameFor(name, attrs, from);
        if (from !== parent) frame.lookFrom = from;
        if (fostered) {
          frame.fostered = true;
          frame.section = under;
        } else if (parent.section && !back) frame.section = parent.section;
        if (name === 'table') frame.outside = under;
        else if (TABLE_SECTIONS.has(name) && under.outside) frame.outside = under.outside;
        if (name === 'a') frame.link = newLink(attrs) ?? from.link;
        if (name === 'img') image(attrs, frame.skip);
        block(name);
        stack.push(frame);
      },
      ontext(data) {
        if (flatFrom >= 0) return;
        const frame = top();
        if (frame.tag === 'style' && styleText.length < MAX_STYLE_CHARS) styleText += data;
        // Text misplaced directly in a table is moved out before it too (blanks stay, and show nothing).
        const shown = frame.outside && /\S/.test(data) ? frame.outside : frame;
        take(data, shown.skip, shown.hidden, shown.link);
      },
      onclosetag(name) {
        if (flatFrom >= 0) return;
        if (name === 'style' && styleText) {
          sheetBackgrounds(styleText, sheet);
          styleText = '';
        }
        // htmlparser2 closes implied elements itself, so opens and closes pair up: close() finds the top at once.
        close(name);
        block(name);
      },
    },
    { decodeEntities: true, lowerCaseTags: true, lowerCaseAttributeNames: true },
  );
  /** See HtmlInfo.hiddenOpen: read at the end of the input, before parser.end() closes what is open. */
  const reopenHidden = (): string => {
    if (flatFrom >= 0) return state().hidden || flatHideRest ? DEEP_HIDDEN : '';
    const hiding = stack.findIndex((f) => f.hidden && !f.skip);
    // None hiding: the block elements open are still reopened when one of them changes the look (a dark
    // table's background, its white text), or the white text past the cut reads as on white, hidden.
    const from = hiding < 0 ? stack.length : hiding;
    let looks = false;
    const tags: string[] = [];
    // The elements around it too (names only: they show): an end tag of one past the cut (`</td>`, `</li>`, `</p>`)
    // closes the hiding element inside it, left unclosed, as it does in the whole part.
    // Each with what it changes of how its text shows, from the last one reopened: a visible child of a
    // `font-size:0` parent shows again, and a `<td bgcolor>` around it keeps its white text shown once it closes.
    let reopened = stack[0]!;
    // What a table reopened was reopened under: re-read, the element moved out of it (Frame.fostered) is moved there again.
    const underTable: Frame[] = [];
    for (let i = 1; i < stack.length && !stack[i]!.skip; i++) {
      const page = i < from && (stack[i]!.tag === 'body' || stack[i]!.tag === 'html');
      if (i < from && !CLOSES_INSIDE.has(stack[i]!.tag) && !page) continue;
      if (stack[i]!.tag === 'table') underTable.push(reopened);
      // Re-read, each is judged on the look a browser gives it (lookFrom): a table section is always reopened.
      const on = stack[i]!.fostered ? (underTable[underTable.length - 1] ?? reopened) : (stack[i]!.lookFrom ?? reopened);
      const look = reopenLook(stack[i]!, on);
      looks ||= look !== '';
      // The page's background and text colour (`<body bgcolor>`, `<html style>`) under an element of its own whose end
      // tag nothing writes: `</body>` past the cut must not close it where a browser's closes nothing.
      if (page && !look) continue;
      tags.push(`<${page ? PAGE_LOOK : stack[i]!.tag}${look}>`);
      reopened = stack[i]!;
    }
    return hiding >= 0 || looks ? tags.join('') : '';
  };
  let hiddenOpen = '';
  parser.write(input);
  if (flatFrom < 0) {
    hiddenOpen = reopenHidden();
    parser.end();
  } else {
    readFlat(input.slice(flatFrom), flatOpen, flatClose, (data) => take(data, top().skip || !!flatSkip, state().hidden || flatHideRest, flatLink ?? top().link));
    hiddenOpen = reopenHidden();
  }
  for (const link of links) link.text = link.text.replace(/\s+/g, ' ').trim();
  return {
    text: text.join('').replace(/[ \t\r\f\v\u00a0]+/g, ' ').replace(/\n\s*/g, '\n').trim(),
    altText: alt.join(' '),
    hiddenText: hidden.join(' ').replace(/\s+/g, ' ').trim(),
    links,
    images,
    tags,
    truncated,
    deep: flatFrom >= 0,
    hiddenOpen,
    sheetOpen: restateSheet(sheet),
  };
}

/**
 * The attributes that give a reopened element (HtmlInfo.hiddenOpen) how it changes the look of
 * `parent` (the visible root for the outermost, so that it carries the text colour and background
 * its ancestors give it): `hidden` where it hides for good, else the resettable styles it sets or
 * resets, and the font size, text colour and background that the judgement is made from after the
 * cut (a white text's dark column open at the cut shows what follows; a white one on white hides it).
 */
function reopenLook(frame: Frame, parent: Frame): string {
  if (frame.gone) return parent.gone ? '' : ' hidden';
  const style: string[] = [];
  if (frame.fontPx !== parent.fontPx) style.push(`font-size:${Number(frame.fontPx.toFixed(6))}px`);
  if (frame.unseen !== parent.unseen) style.push(frame.unseen ? 'visibility:hidden' : 'visibility:visible');
  // Colours as we computed them (rgba()): no markup of the input is copied.
  if (frame.color !== parent.color) style.push(frame.color ? `color:rgba(${frame.color})` : 'color:initial');
  if (frame.fill !== parent.fill) {
    style.push(`-webkit-text-fill-color:${frame.fill === UNKNOWN_FILL ? 'var(--fill)' : frame.fill ? `rgba(${frame.fill})` : 'currentcolor'}`);
  }
  if (frame.opacity !== parent.opacity) style.push(`opacity:${Number((frame.opacity / parent.opacity).toFixed(6))}`);
  if (frame.bg !== parent.bg && frame.bg) style.push(`background-color:rgba(${frame.bg})`);
  // Last: with it, the background given is the one clipped to the text, not one behind it (clipOf).
  if (frame.clip !== parent.clip && frame.clip) {
    style.push(`background:${frame.clip === UNKNOWN_FILL ? 'url(#)' : `rgba(${frame.clip})`};-webkit-background-clip:text`);
  }
  if (frame.bgUnknown && !parent.bgUnknown) style.push('background-image:url(#)');
  return style.length ? ` style="${style.join(';')}"` : '';
}

/**
 * Tags and text of HTML through htmlparser2's tokenizer alone: no stack of
 * open elements, so time linear in the input whatever its nesting.
 * Script, style and title contents come as text (the tokenizer knows where they end).
 */
function readFlat(html: string, open: (name: string, attrs: Record<string, string>) => void, close: (name: string) => void, text: (data: string) => void): void {
  let name = '';
  let attrs: Record<string, string> = {};
  let attrName = '';
  let attrValue = '';
  const slice = (start: number, end: number) => html.slice(start, end);
  const callbacks: TokenizerCallbacks = {
    ontext: (start, end) => text(slice(start, end)),
    ontextentity: (codepoint) => text(String.fromCodePoint(codepoint)),
    onopentagname(start, end) {
      name = slice(start, end).toLowerCase();
      attrs = {};
    },
    onattribname(start, end) {
      attrName = slice(start, end).toLowerCase();
      attrValue = '';
    },
    onattribdata(start, end) {
      attrValue += slice(start, end);
    },
    onattribentity(codepoint) {
      attrValue += String.fromCodePoint(codepoint);
    },
    onattribend() {
      if (!(attrName in attrs)) attrs[attrName] = attrValue;
    },
    onopentagend: () => open(name, attrs),
    onselfclosingtag: () => open(name, attrs),
    onclosetag: (start, end) => close(slice(start, end).toLowerCase()),
    oncdata() {},
    oncomment() {},
    ondeclaration() {},
    onprocessinginstruction() {},
    onend() {},
  };
  const tokenizer = new Tokenizer({ decodeEntities: true }, callbacks);
  tokenizer.write(html);
  tokenizer.end();
}
