/**
 * Reading an element's `style` attribute as a browser does: its declarations split as a CSS parser splits them, the
 * one of a property that applies (the last valid one, an `!important` one first), and the values the hidden-text
 * judgement reads (lib/util/html.ts): display, font sizes, overflow and height. Colours are css-color's, backgrounds
 * and style sheets css-background's.
 */
import { cssColor } from './css-color';
import { readName, startsIdent, unescapeValue } from './css-escape';

/** A length of zero in any unit (`0`, `0px`, `0em`, `0%`). */
export const ZERO_LENGTH = /^[+-]?(?:0+\.?0*|\.0+)(?:[a-z]+|%)?$/i;
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
export function clippedToNothing(style: string): boolean {
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
export const DISPLAY_GONE = new Set(['none', 'table-column', 'table-column-group']);

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
/** The size of a page's text where no one sets it (medium). */
export const DEFAULT_PX = 16;
const KEYWORD_PX: Record<string, number> = { 'xx-small': 9, 'x-small': 10, small: 13, medium: 16, large: 18, 'x-large': 24, 'xx-large': 32, 'xxx-large': 48 };
const UNIT_PX: Record<string, number> = { px: 1, pt: 4 / 3, pc: 16, in: 96, cm: 96 / 2.54, mm: 96 / 25.4, q: 96 / 101.6, rem: DEFAULT_PX };
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
  background: backgroundShorthandValue,
  'background-image': backgroundImageValue,
  'background-size': (value) => /./.test(value),
  'background-repeat': (value) => /./.test(value),
  'background-clip': (value) => BACKGROUND_CLIP_VALUE.test(value),
  '-webkit-background-clip': (value) => BACKGROUND_CLIP_VALUE.test(value),
};

/**
 * A `background-image` a browser takes: layers of `none` or an image function (url(), a gradient...), or a global
 * keyword. Any other is dropped: `background-image:junk` after a gradient leaves the gradient painted.
 */
function backgroundImageValue(value: string): boolean {
  const layers = cssTokens(value);
  if (layers.length === 1 && /^(?:inherit|initial|unset|revert|revert-layer)$/i.test(layers[0]!)) return true;
  return layers.every((layer) => layer === ',' || /^none$/i.test(layer) || /^[a-z-]+\(.*\)$/is.test(layer));
}

/** The keywords of the `background` shorthand: repeat, attachment, position, size, box, and the global ones. */
const BACKGROUND_KEYWORD =
  /^(?:none|repeat|repeat-x|repeat-y|no-repeat|space|round|scroll|fixed|local|left|right|top|bottom|center|auto|cover|contain|border-box|padding-box|content-box|text|inherit|initial|unset|revert|revert-layer)$/i;
/**
 * The system colours (CSS Color 4, the deprecated ones too): a browser takes them, css-color does not compute them.
 * The shorthand is taken with them (its colour not known), not dropped for the dark background before it.
 */
const SYSTEM_COLOR =
  /^(?:accentcolor|accentcolortext|activetext|buttonborder|buttonface|buttontext|canvas|canvastext|field|fieldtext|graytext|highlight|highlighttext|linktext|mark|marktext|selecteditem|selecteditemtext|visitedtext|activeborder|activecaption|appworkspace|background|buttonhighlight|buttonshadow|captiontext|inactiveborder|inactivecaption|inactivecaptiontext|infobackground|infotext|menu|menutext|scrollbar|threeddarkshadow|threedface|threedhighlight|threedlightshadow|threedshadow|window|windowframe|windowtext)$/i;
/**
 * A `background` shorthand a browser may take, loosely: each part a keyword, a length or percentage (its number with
 * an exponent or not: `1e1px`), a colour (a system one too) or a function (an image), `/` or `,`. A word it does not
 * know makes it drop the declaration (`background:junk` after a gradient leaves the gradient), where reading it would
 * take the gradient away.
 */
function backgroundShorthandValue(value: string): boolean {
  const known = (word: string) =>
    BACKGROUND_KEYWORD.test(word) || /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?(?:[a-z]+|%)?$/i.test(word) || cssColor(word) !== undefined || SYSTEM_COLOR.test(word);
  // A part holding a function is taken as it is (`url(a.jpg)no-repeat` is two tokens to a browser); a `#` starts a token (`no-repeat#fff`).
  return cssTokens(value).every((part) => part === ',' || part === '/' || part.includes('(') || part.split(/(?=#)/).every(known));
}

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
    const property = colon > 0 ? propertyName(current.slice(0, colon).trim()) : '';
    // Escapes decoded where a browser reads them as part of a name (`n\6f ne`): before `!important` is looked for.
    let value = colon > 0 ? unescapeValue(current.slice(colon + 1).trim()) : '';
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
    // The raw character before, not `current`'s last: indexing a string built by `+=` flattens it, each time.
    const urlStart = !quote && (c === 'u' || c === 'U' || c === '\\') && !/[\w-]/.test(style[i - 1] ?? '') && unquotedUrlAt(style, i);
    if (c === '\\' && !urlStart) {
      current += style.slice(i, i + 2);
      i++;
    } else if (quote) {
      current += c;
      // A newline ends a string as a bad one: what follows is read as declarations again.
      if (c === quote || c === '\n' || c === '\r' || c === '\f') quote = '';
    } else if (urlStart) {
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
 * A declaration's property name as a browser matches it: escapes decoded (`disp\lay`, `d\69splay`), ASCII letters
 * lower-cased (no other: the Kelvin sign is no `k`); '' when it is no identifier.
 */
function propertyName(raw: string): string {
  const { name, end } = readName(raw, 0);
  if (end !== raw.length || !startsIdent(raw, 0)) return '';
  return name.replace(/[A-Z]+/g, (letters) => letters.toLowerCase());
}

/**
 * Whether an unquoted `url(` starts at `style[i]`, its name written with escapes or not (`\75rl(`): one token to its
 * `)`. The blanks after `(` are skipped however many (a browser skips them all): each is skipped for one `url(` only.
 */
function unquotedUrlAt(style: string, i: number): boolean {
  const { name, end } = readName(style.slice(i, i + 80), 0);
  if (!/^url$/i.test(name) || style[i + end] !== '(') return false;
  let j = i + end + 1;
  // CSS's blanks only: a no-break space starts the address (`url(\u00a0"a)` is a bad url to its `)`, no string).
  while (j < style.length && /[ \t\n\r\f]/.test(style[j]!)) j++;
  return j < style.length && !/["']/.test(style[j]!);
}

/**
 * A style attribute written back without the escapes a browser decodes (styleDeclarations, unescapeValue): its
 * declarations a browser keeps, names and values decoded, `;`-separated, so that every reading of the style, pattern
 * or declaration, sees what a browser sees. Meant for a style holding a backslash.
 */
export function unescapedStyle(style: string): string {
  return styleDeclarations(style)
    .map((d) => `${d.property}:${d.value}${d.important ? ' !important' : ''}`)
    .join(';');
}

/**
 * The declaration of one of `properties` that wins in a style attribute, as in a browser: the last
 * `!important` one, else the last valid one (VALID_VALUE). Several properties when one sets what the
 * other does (`font` and `font-size`): the last of them wins.
 */
export function styleDeclaration(style: string, properties: readonly StyleProperty[]): Declaration | undefined {
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

export const styleValue = (style: string, property: StyleProperty): string | undefined => styleDeclaration(style, [property])?.value;

/** A value's space-separated parts at the top level (not inside parentheses), commas and slashes apart too. */
export function cssTokens(value: string): string[] {
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
export function fontShorthandSize(value: string): string | undefined {
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
export function fontSizePx(value: string, parentPx: number): number {
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

