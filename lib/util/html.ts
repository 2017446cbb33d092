import { Parser, Tokenizer, type TokenizerCallbacks } from 'htmlparser2';

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
  /** Text a reader does not see (display:none, zero font size, white on white...). */
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
   * nothing anyway (SKIP_TAGS); '' when no hiding element is open. The MIME tail reads a part
   * from a cut with it (lib/mime/padding.ts), so that the end tags past the cut close them as
   * they close the real ones. Read flat (past MAX_DEPTH), where the open elements are not known
   * one by one: DEEP_HIDDEN when the end is hidden, which no end tag of real markup closes.
   */
  hiddenOpen: string;
}

/**
 * What hiddenOpen reopens when the input ended hidden past MAX_DEPTH: one hiding element that no
 * real markup's end tag closes (a forger's own `</mailward-deep-hidden>` would, after nesting 500 deep).
 */
export const DEEP_HIDDEN = '<mailward-deep-hidden hidden>';

/**
 * Elements whose content shows nothing: analyseHtml skips it, and the MIME tail
 * (lib/mime/padding.ts) reads a part from inside one as hidden.
 * Not `head`: browsers show what a stray <head> holds (text, or anything after <body>), and its
 * own children that show nothing (title, style, script) are skipped anyway. Not `noscript`:
 * mail clients run no scripts, so they show it.
 */
export const SKIP_TAGS: ReadonlySet<string> = new Set(['script', 'style', 'title', 'template']);
const BLOCK_TAGS = new Set(['p', 'div', 'br', 'tr', 'td', 'li', 'table', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'hr', 'blockquote']);
/**
 * Styles that hide an element's content for good: no descendant's style shows it again (display:none,
 * zero opacity, zero height with the overflow cut). A zero font size, visibility:hidden and the text
 * colour are inherited values a descendant may reset (see Look).
 */
const GONE_STYLE =
  /display\s*:\s*none|opacity\s*:\s*0*(?:\.0+)?\s*(?:;|$|!)|max-height\s*:\s*0|(?:^|;)\s*height\s*:\s*0(?:px)?\s*;[^"]*overflow\s*:\s*hidden/i;
/** A zero font size (the value of a font-size declaration). */
const ZERO_SIZE = /^0*(?:\.0+)?\s*(?:px|pt|em|rem|%)?$/i;
/**
 * A font size that shows text inside a zero-size parent: an absolute length or keyword. Not em, %, ex,
 * ch, smaller or larger (relative to the parent's zero), nor calc() or inherit: those stay zero as far as we know.
 * Each digit run has one reading (`.0*[1-9]`, not `.\d*[1-9]`): a long run of digits costs linear time, not quadratic.
 */
const SHOWN_SIZE = /^(?:0*[1-9]\d*(?:\.\d*)?|0*\.0*[1-9]\d*)\s*(?:px|pt|pc|rem|in|cm|mm|q|vw|vh|vmin|vmax)$|^(?:xx?x?-small|small|medium|large|xx?x?-large)$/i;
/** Backgrounds that paint nothing: the parent's shows through. */
const NO_BACKGROUND = /^(?:transparent|none|inherit|initial|unset|revert|(?:rgba|hsla)\([^)]*[,/]\s*0*(?:\.0+)?%?\s*\))$/i;
const WHITE = /^(?:#fff(?:fff)?|white|rgb\(\s*255\s*,\s*255\s*,\s*255\s*\))$/i;
/** Text pieces kept per field: enough for every check, bounded for hostile input. */
const MAX_TEXT_CHARS = 200_000;
const MAX_LINKS = 500;

type StyleProperty = 'color' | 'background-color' | 'background' | 'font-size' | 'visibility';
const COLOR_VALUE = /^(?:#(?:[0-9a-f]{3,4}|[0-9a-f]{6}|[0-9a-f]{8})|(?:rgba?|hsla?|hwb|lab|lch|oklab|oklch|color|var)\(.*\)|[a-z]+)$/i;
/**
 * Values a browser takes for each property we read: it drops a declaration with any other value, and the one
 * before it wins (`font-size:0;font-size:x` is still zero). Loose where a list would be long (colour names,
 * the background shorthand): an unknown word there still wins.
 */
const VALID_VALUE: Record<StyleProperty, RegExp> = {
  'font-size': /^(?:\+?(?:\d+(?:\.\d*)?|\.\d+)\s*(?:px|pt|pc|rem|em|ex|ch|%|in|cm|mm|q|vw|vh|vmin|vmax)?|xx?x?-small|small|medium|large|xx?x?-large|smaller|larger|inherit|initial|unset|revert|(?:calc|var|min|max|clamp)\(.*\))$/i,
  visibility: /^(?:visible|hidden|collapse|inherit|initial|unset|revert)$/i,
  color: COLOR_VALUE,
  'background-color': COLOR_VALUE,
  background: /./,
};

/**
 * The value of the declaration of `property` that wins in a style attribute, as in a browser: the last
 * `!important` one, else the last valid one (VALID_VALUE).
 */
function styleValue(style: string, property: StyleProperty): string | undefined {
  let value: string | undefined;
  let important = false;
  for (const match of style.matchAll(new RegExp(`(?:^|;)\\s*${property}\\s*:\\s*([^;!]+)(!\\s*important)?`, 'gi'))) {
    const candidate = match[1]!.trim();
    const isImportant = match[2] !== undefined;
    if ((important && !isImportant) || !VALID_VALUE[property].test(candidate)) continue;
    value = candidate;
    important = isImportant;
  }
  return value;
}

/**
 * A declaration giving a real background: a colour white text shows on, or an
 * image (not none, transparent, inherit..., nor white or a near-white page grey
 * such as #f4f4f4: every channel at least e0).
 */
const REAL_BACKGROUND = /background(?:-color|-image)?\s*:\s*(?!#[ef]{3}\b|#(?:[ef][0-9a-f]){3}\b|white\b|none\b|transparent\b|inherit\b|initial\b|unset\b|url\(\s*['"]?\s*\))[#a-z(]/i;
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
      if (open >= 0 && REAL_BACKGROUND.test(sheet.slice(open + 1, i))) {
        for (const selector of sheet.slice(selectorStart, open).split(',')) {
          if (NOT_AT_REST.test(selector)) continue;
          // Escaped characters belong to the class name: .md\:bg-dark is class "md:bg-dark".
          const classes = [...selector.matchAll(/\.((?:\\.|[\w-])+)/g)].map((match) => match[1]!.replace(/\\(.)/g, '$1'));
          for (const name of classes) into.classes.add(name);
          // A body, id, type or attribute selector: we do not match those, so it may be under any element.
          if (!classes.length && /\S/.test(selector)) into.elsewhere = true;
        }
      }
      open = -1;
      selectorStart = i + 1;
    }
  }
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
 * sheet gives one to a selector we do not resolve, or to one of its classes,
 * or it has a background image. Its style attribute is already cut to
 * MAX_STYLE_ATTR.
 */
function unknownBackground(attrs: Record<string, string>, sheet: SheetBackgrounds): boolean {
  if (sheet.elsewhere) return true;
  const classes = sheet.classes;
  if (classes.size && attrs.class && attrs.class.slice(0, 1024).split(/\s+/).some((c) => classes.has(c))) return true;
  if (attrs.background && attrs.background.trim()) return true;
  const style = attrs.style ?? '';
  return style.includes('url(') && /background(?:-image)?\s*:[^;]{0,200}url\(\s*['"]?[^\s'")]/i.test(style);
}

/**
 * How an element shows its text, as far as hiding goes. `gone` is inherited for good; `tiny`
 * (a zero font size), `unseen` (visibility:hidden) and `white` (the text colour) are inherited
 * values that a descendant's own font size, visibility:visible or colour resets, as in a browser:
 * responsive newsletters put their columns' text, at 14px, in a `<td style="font-size:0">`.
 */
interface Look {
  gone: boolean;
  tiny: boolean;
  unseen: boolean;
  white: boolean;
  /** White text on white, or on no background we know of (see hides). */
  faded: boolean;
}

/**
 * How an element opened under `parent` shows its text: hiding styles, or white text on a white
 * background — or on no background we know of, unless one may come from where we do not compute
 * it (a style sheet rule, a background image): a dark footer with white text is not hidden.
 */
function lookOf(tag: string, attrs: Record<string, string>, parent: Look, bg: string, bgUnknown: boolean): Look {
  const style = attrs.style ?? '';
  const gone = parent.gone || 'hidden' in attrs || (!!style && GONE_STYLE.test(style));
  const size = style ? styleValue(style, 'font-size') : undefined;
  // <font size>: any number is an absolute size (size=0 reads as 1).
  const tiny = size !== undefined ? ZERO_SIZE.test(size) || (parent.tiny && !SHOWN_SIZE.test(size)) : parent.tiny && !(tag === 'font' && /^\s*[+-]?\d/.test(attrs.size ?? ''));
  const visibility = style ? styleValue(style, 'visibility')?.toLowerCase() : undefined;
  const unseen = visibility === 'hidden' || visibility === 'collapse' ? true : visibility === 'visible' ? false : parent.unseen;
  const color = (style ? styleValue(style, 'color') : undefined) ?? (tag === 'font' ? attrs.color : undefined);
  const white = color && !/^(?:inherit|unset|currentcolor)$/i.test(color) ? WHITE.test(color) : parent.white;
  const faded = white && (bg ? WHITE.test(bg) : !bgUnknown);
  return { gone, tiny, unseen, white, faded };
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
}

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
  const sheet: SheetBackgrounds = { classes: new Set(), elsewhere: false };
  let styleText = '';
  const stack: Frame[] = [{ tag: '#root', skip: false, hidden: false, gone: false, tiny: false, unseen: false, white: false, faded: false, bg: '', bgUnknown: false }];
  const top = () => stack[stack.length - 1]!;
  /** The state an element opened under `parent` gives its text (link aside). */
  const frameFor = (name: string, attrs: Record<string, string>, parent: Frame): Frame => {
    if (attrs.style && attrs.style.length > MAX_STYLE_ATTR) attrs.style = attrs.style.slice(0, MAX_STYLE_ATTR);
    // A head's attributes style nothing that is shown: what it holds that shows moves to the body.
    if (name === 'head') attrs = {};
    // The style attribute before bgcolor, as in a browser.
    const own = (attrs.style ? (styleValue(attrs.style, 'background-color') ?? styleValue(attrs.style, 'background')) : undefined) ?? attrs.bgcolor;
    // A transparent background (or none, or inherit) shows the one behind it: white text stays on white.
    const bg = own !== undefined && !NO_BACKGROUND.test(own.trim()) ? own : parent.bg;
    const bgUnknown = parent.bgUnknown || unknownBackground(attrs, sheet);
    const look = lookOf(name, attrs, parent, bg, bgUnknown);
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
  const flatOpen = (name: string, attrs: Record<string, string>) => {
    if (flatSkip) return; // inside a script, style, title (raw text) or template
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
    const same = (['hidden', 'gone', 'tiny', 'unseen', 'white', 'bg', 'bgUnknown'] as const).every((key) => frame[key] === parent[key]);
    if (same) return;
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
      onopentag(name, attrs) {
        if (flatFrom >= 0) return; // the paused parser's last events
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
        const frame = frameFor(name, attrs, parent);
        if (name === 'a') frame.link = newLink(attrs) ?? parent.link;
        if (name === 'img') image(attrs, frame.skip);
        block(name);
        stack.push(frame);
      },
      ontext(data) {
        if (flatFrom >= 0) return;
        const frame = top();
        if (frame.tag === 'style' && styleText.length < MAX_STYLE_CHARS) styleText += data;
        take(data, frame.skip, frame.hidden, frame.link);
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
    const from = stack.findIndex((f) => f.hidden && !f.skip);
    if (from < 0) return '';
    const tags: string[] = [];
    // The elements around it too (names only: they show): an end tag of one past the cut (`</td>`, `</li>`, `</p>`)
    // closes the hiding element inside it, left unclosed, as it does in the whole part.
    // Each with what it changes of how its text shows, from the last one reopened: a visible child of a
    // `font-size:0` parent shows again, and a `<td bgcolor>` around it keeps its white text shown once it closes.
    let reopened = stack[0]!;
    for (let i = 1; i < stack.length && !stack[i]!.skip; i++) {
      if (i < from && !CLOSES_INSIDE.has(stack[i]!.tag)) continue;
      tags.push(`<${stack[i]!.tag}${reopenLook(stack[i]!, reopened)}>`);
      reopened = stack[i]!;
    }
    return tags.join('');
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
  };
}

/**
 * The attributes that give a reopened element (HtmlInfo.hiddenOpen) how it changes the look of
 * `parent` (the visible root for the outermost, so that it carries the text colour and background
 * its ancestors give it): `hidden` where it hides for good, else the resettable styles it sets or
 * resets, and the text colour and background that white-on-white is judged from after the cut (a
 * white text's dark column open at the cut shows what follows; a white one on white hides it).
 */
function reopenLook(frame: Frame, parent: Frame): string {
  if (frame.gone) return parent.gone ? '' : ' hidden';
  const style: string[] = [];
  if (frame.tiny !== parent.tiny) style.push(frame.tiny ? 'font-size:0' : 'font-size:16px');
  if (frame.unseen !== parent.unseen) style.push(frame.unseen ? 'visibility:hidden' : 'visibility:visible');
  if (frame.white !== parent.white) style.push(frame.white ? 'color:#fff' : 'color:#000');
  // Only whether the background is white counts (hides), so any other reads as black: no markup of the input is copied.
  if (frame.bg !== parent.bg && frame.bg) style.push(`background-color:${WHITE.test(frame.bg) ? '#fff' : '#000'}`);
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
