/**
 * Colours as a mail client reads them from CSS and from legacy HTML attributes, and the
 * contrast between two of them: what the hidden-text judgement (html.ts) needs.
 */
import { colord, extend, type RgbaColor } from 'colord';
import labPlugin from 'colord/plugins/lab';
import namesPlugin from 'colord/plugins/names';

// CSS colour names (and `transparent`): any other word is no colour, and a browser drops the declaration.
// CIELAB for the colour difference (delta).
extend([namesPlugin, labPlugin]);

export type Rgba = RgbaColor;

/**
 * A colour value read: a colour, one we cannot compute (`var()`, `lab()`, `color-mix()`...: valid
 * at parse time, so it wins over the declarations before it), a keyword that takes the parent's
 * value (inherit, currentcolor...), or `initial`.
 */
export type ColorValue = Rgba | 'unknown' | 'inherit' | 'initial';

const TAKES_PARENT = /^(?:inherit|unset|currentcolor|revert|revert-layer)$/i;
/** A CSS function we do not compute; a colour that colord reads is tried first. */
const CSS_FUNCTION = /^[a-z-]+\([^]*\)$/i;
/** Quirks mode (mail without a doctype) reads `color: ffffff` as #ffffff. */
const HASHLESS_HEX = /^(?:[0-9a-f]{3}|[0-9a-f]{6})$/i;
/** Real colour values are short; a longer one is not handed to the parser. */
const MAX_COLOR_CHARS = 200;
/** A CSS number (`255`, `.5`, `2.55e2`), as CSS reads one. */
const CSS_NUMBER = /[+-]?(?:\d*\.\d+|\d+)(?:e[+-]?\d+)?/gi;
/** Numbers beyond any a colour needs (channels clamp at 255, percentages at 100%; a hue is an angle). */
const MAX_NUMBER = 1e6;

/**
 * A colour function's numbers written as colord reads them in linear time: each with one dot and six
 * decimals, exponents resolved. colord's number pattern (`\d*\.?\d+`) tries every split of a digit run
 * without a dot, and the tries multiply over the value's numbers: `rgba(` and four runs of 45 digits took
 * 2.5 s, and a 1 MB message holds thousands. It also reads `2.55e2` as a browser does (colord does not).
 */
function plainNumbers(value: string): string {
  return value.replace(CSS_NUMBER, (n) => Math.max(-MAX_NUMBER, Math.min(MAX_NUMBER, Number(n))).toFixed(6));
}

/** Values read, kept: a message repeats its few colours in every element's style (colord's parse dominates). */
const readColors = new Map<string, ColorValue | undefined>();
const MAX_READ_COLORS = 1024;

/** A CSS colour value (a `color` or `background-color` declaration's), or undefined when a browser drops it. */
export function cssColor(value: string): ColorValue | undefined {
  if (readColors.has(value)) return readColors.get(value);
  const read = readCssColor(value);
  if (readColors.size >= MAX_READ_COLORS) readColors.clear();
  readColors.set(value, typeof read === 'object' ? Object.freeze(read) : read);
  return read;
}

function readCssColor(value: string): ColorValue | undefined {
  const v = value.trim();
  if (TAKES_PARENT.test(v)) return 'inherit';
  if (/^initial$/i.test(v)) return 'initial';
  if (v.length <= MAX_COLOR_CHARS) {
    const parsed = colord(HASHLESS_HEX.test(v) ? `#${v}` : v.includes('(') ? plainNumbers(v) : v);
    if (parsed.isValid()) return parsed.toRgb();
  }
  return CSS_FUNCTION.test(v) ? 'unknown' : undefined;
}

/**
 * A colour attribute (`<font color>`, `bgcolor`, `<body text>`) read by the HTML standard's rules
 * for a legacy colour value: names, `#abc`, and any other string read as hex digits (`ffffff`,
 * `#fffffff0`, even `chucknorris`). Undefined for an empty value or `transparent`: no colour.
 */
export function legacyColor(value: string): Rgba | undefined {
  let v = value.trim();
  if (!v || /^transparent$/i.test(v)) return undefined;
  if (/^[a-z]{1,30}$/i.test(v)) {
    const named = colord(v);
    if (named.isValid()) return named.toRgb();
  }
  if (/^#[0-9a-f]{3}$/i.test(v)) return colord(v).toRgb();
  v = v.slice(0, 128).replace(/^#/, '').replace(/[^0-9a-f]/gi, '0');
  while (v.length === 0 || v.length % 3) v += '0';
  let parts = [0, 1, 2].map((i) => v.slice((i * v.length) / 3, ((i + 1) * v.length) / 3));
  if (parts[0]!.length > 8) parts = parts.map((p) => p.slice(-8));
  while (parts[0]!.length > 2 && parts.every((p) => p[0] === '0')) parts = parts.map((p) => p.slice(1));
  const [r, g, b] = parts.map((p) => parseInt(p.slice(0, 2), 16));
  return { r: r!, g: g!, b: b!, a: 1 };
}

/** `top` painted over the opaque `under`. */
export function over(top: Rgba, under: Rgba): Rgba {
  const mix = (a: number, b: number) => a * top.a + b * (1 - top.a);
  return { r: mix(top.r, under.r), g: mix(top.g, under.g), b: mix(top.b, under.b), a: 1 };
}

/** WCAG 2 relative luminance of an opaque colour. */
function luminance(c: Rgba): number {
  const channel = (v: number) => {
    const s = v / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b);
}

/** WCAG 2 contrast ratio (1 to 21) of text of colour `text` (alpha composited) on the opaque `background`. */
export function contrastRatio(text: Rgba, background: Rgba): number {
  const a = luminance(over(text, background));
  const b = luminance(background);
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}

/**
 * CIEDE2000 colour difference (0 to 1, ΔE00 / 100) of text of colour `text` (alpha composited) and the opaque
 * `background`: hue and chroma as well as lightness, where contrastRatio is lightness alone (red on grey: 1.01).
 */
export function colorDifference(text: Rgba, background: Rgba): number {
  return colord(over(text, background)).delta(background);
}

/** A colour as a short canonical string (`r,g,b,a`), to store and compare. */
export const colorKey = (c: Rgba): string => `${Math.round(c.r)},${Math.round(c.g)},${Math.round(c.b)},${Math.round(c.a * 1000) / 1000}`;

/** The colour of a colorKey. */
export function fromKey(key: string): Rgba {
  const [r, g, b, a] = key.split(',').map(Number);
  return { r: r!, g: g!, b: b!, a: a! };
}
