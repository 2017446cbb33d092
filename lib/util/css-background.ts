/**
 * Backgrounds CSS paints, as far as the hidden-text judgement (lib/util/html.ts) computes them: the colour of the
 * `background` shorthand, a gradient of one colour and whether it covers the element, and which classes and
 * selectors a page's style sheets give a background (read, and restated for the MIME tail).
 */
import { contrastRatio, cssColor, type ColorValue, type Rgba } from './css-color';
import { cssTokens, styleDeclaration, ZERO_LENGTH } from './css-style';

/**
 * The colour the `background` shorthand paints (`background: #000 url(x) no-repeat`): the colour among
 * its parts, 'unknown' when a gradient or a function we do not compute paints it, undefined when none
 * (`none`, an image alone: the image is unknownBackground's). `imageLater`: a later `background-image` replaces its
 * image (`background:#fff linear-gradient(...);background-image:none` paints white), only its colour counts.
 */
export function backgroundShorthandColor(value: string, gradientCovers: boolean, imageLater = false): ColorValue | undefined {
  const tokens = cssTokens(value);
  if (tokens.length === 1 && cssColor(tokens[0]!) === 'inherit') return 'inherit';
  let color: ColorValue | undefined;
  let painted: Rgba | undefined;
  for (const token of tokens) {
    if (/^url\(/i.test(token) || (imageLater && GRADIENT.test(token))) continue;
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
/** `background-repeat` keywords; of them only `repeat` and `round` tile without gaps in their direction. */
const REPEAT_KEYWORD = /^(?:repeat|repeat-x|repeat-y|no-repeat|space|round)$/i;

/**
 * Whether a background image covers the whole element: sized to it (the winning `background-size`, or the shorthand's
 * `/ size`), or tiled both ways (the winning `background-repeat`, or the shorthand's; `repeat` by default) at a size
 * above zero. A gradient of one colour sized `100% 1px` and not repeated is an underline (a link's, a heading's), not
 * the background under the text: white on a dark cell with a white underline read as white on white. Sized `10px`
 * and repeated it covers all, as a spammer's white tiles under white text do.
 */
export function gradientCovers(style: string): boolean {
  if (!/background-(?:size|repeat)|\/|repeat|space|round/i.test(style)) return true;
  const size = styleDeclaration(style, ['background', 'background-size']);
  const tokens = size ? cssTokens(size.value) : [];
  const slash = tokens.indexOf('/');
  const given = size?.property === 'background-size' ? tokens : slash < 0 ? [] : tokens.slice(slash + 1, slash + 3).filter((t) => /^[\d.+-]|^(?:auto|cover|contain)$/i.test(t));
  if (given.some((t) => ZERO_LENGTH.test(t))) return false; // no tile is painted
  if (given.every((t) => FULL_SIZE.test(t))) return true;
  const repeat = styleDeclaration(style, ['background', 'background-repeat']);
  const keywords = repeat ? cssTokens(repeat.value).filter((t) => REPEAT_KEYWORD.test(t)) : [];
  return keywords.every((k) => /^(?:repeat|round)$/i.test(k));
}

/** The gradient of one colour the winning background image declaration paints over the element's colour, if that is what it paints. */
export function solidGradientImage(style: string): Rgba | undefined {
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
/** Style sheet text read per message (a forger controls its size). */
export const MAX_STYLE_CHARS = 64 * 1024;

/** Backgrounds the style sheets give that we do not compute: white text on one is not counted as hidden. */
export interface SheetBackgrounds {
  /** Classes given a real background (`.ftr td`, `td.dark`): an element carrying one may sit on it. */
  classes: Set<string>;
  /** Of those classes, ones given a background image or an `!important` background: painted over an element's inline colour too. */
  covering: Set<string>;
  /** A real background on a selector naming no class (`body`, `#hero`, `td`, `table[role] td`): it may be under any element. */
  elsewhere: boolean;
}

/** Reads one style sheet's real backgrounds into `into` (see SheetBackgrounds). */
export function sheetBackgrounds(css: string, into: SheetBackgrounds): void {
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
export function restateSheet(sheet: SheetBackgrounds): string {
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
