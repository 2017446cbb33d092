import { Parser, type TokenizerCallbacks } from 'htmlparser2';
import { backgroundShorthandColor, gradientCovers, MAX_STYLE_CHARS, restateSheet, sheetBackgrounds, solidGradientImage, type SheetBackgrounds } from './css-background';
import { colorDifference, colorKey, contrastRatio, cssColor, fromKey, legacyColor, over, type ColorValue, type Rgba } from './css-color';
import { RawTextTokenizer } from './html-raw-text';
import { clippedToNothing, DEFAULT_PX, DISPLAY_GONE, fontShorthandSize, fontSizePx, styleDeclaration, styleValue, unescapedStyle } from './css-style';

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
/** Font sizes read are capped: only small ones matter, and a huge one must not print as 1e+21px (reopenLook). */
const MAX_PX = 1000;
/** `<font size>` 1 to 7 (size=0 reads as 1; +n and -n from 3). */
const FONT_ATTR_PX = [10, 10, 13, 16, 18, 24, 32, 48];
/** A text fill colour (Look.fill) that a function we do not compute sets (`var()`): the text's colour is not known. */
const UNKNOWN_FILL = 'unknown';
/** Text pieces kept per field: enough for every check, bounded for hostile input. */
const MAX_TEXT_CHARS = 200_000;
const MAX_LINKS = 500;
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
  if (!/url\(|gradient\s*\(/i.test(style)) return false;
  // The winning image declaration paints: a later `background-image:none`, or `background` without one, removes it.
  const image = paintedImage(style);
  if (!image) return false;
  if (/url\(\s*['"]?[^\s'")]/i.test(image)) return true;
  return /gradient\s*\(/i.test(image) && !solidGradientImage(style);
}

/** The value of the declaration that sets an element's background image (`background-image` or the `background` shorthand, the last of them). */
const paintedImage = (style: string): string | undefined => styleDeclaration(style, ['background', 'background-image'])?.value;

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
  if (declaration.property !== 'background') return cssColor(declaration.value);
  // A `background-image` after the shorthand sets the image in its place: the shorthand's gradient paints nothing.
  const imageLater = styleDeclaration(attrs.style!, ['background', 'background-image'])?.property === 'background-image';
  return backgroundShorthandColor(declaration.value, gradientCovers(attrs.style!), imageLater);
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
    // Read as a browser decodes its escapes (`disp\lay:n\6f ne` hides): every reading of the style then sees plain names.
    if (attrs.style?.includes('\\')) attrs.style = unescapedStyle(attrs.style);
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
    // Raw-text elements read as browsers read them (RawTextTokenizer): `<iframe><!--</iframe>` hides nothing after it.
    { decodeEntities: true, lowerCaseTags: true, lowerCaseAttributeNames: true, Tokenizer: RawTextTokenizer },
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
  const tokenizer = new RawTextTokenizer({ decodeEntities: true }, callbacks);
  tokenizer.write(html);
  tokenizer.end();
}
