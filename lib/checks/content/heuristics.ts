import { isIP } from 'node:net';
import { parse } from 'tldts';
import unhomoglyph from 'unhomoglyph';
import type { Hit } from '../../score/types';
import type { MessageParts } from './parts';
import { bodyTexts, hostOf } from './parts';
import { foldText, LATIN, LETTER, LOOKALIKE_SCRIPT } from './fold';
import { NON_ASCII } from '../../util/invisible';
import { anyShareMatches } from './safe-regex';
import type { RuleTest } from './rules-file';
import type { HeuristicSettings } from './settings';
import { registrableDomain } from './tokenize';
import { IpSet } from '../../util/ip';

/** Characters of each target the detectors and operator rules read (bounds regex time). */
export const RULE_MAX_CHARS = 64 * 1024;
/** A uri rule reads each link up to this length. */
const MAX_URL_CHARS = 2048;

const WORDS = /[\p{L}\p{M}\u200b-\u200d\u2060\ufeff\u00ad]+/gu;

/** A letter of another script that reads as Latin (Unicode's confusables: Cyrillic а, Greek ο). */
function readsAsLatin(letter: string): boolean {
  return /^[a-z]+$/i.test(unhomoglyph(letter));
}

const CYRILLIC_ALPHABET = /[\u0410-\u044f\u0401\u0451\u0404\u0454\u0406\u0456\u0407\u0457\u0490\u0491\u040e\u045e]/u;

/** Latin letters that some Cyrillic or Greek letter reads as: what a Cyrillic word can hide among its own. */
const LATIN_LOOKALIKES = new Set<string>();
for (let code = 0x370; code < 0x530; code++) {
  const folded = unhomoglyph(String.fromCharCode(code));
  if (/^[a-z]$/i.test(folded)) LATIN_LOOKALIKES.add(folded);
}

/**
 * A word disguised with look-alike letters: a Latin word with a Cyrillic or
 * Greek look-alike in it ("PаyPal", "Аpple"), or a Cyrillic/Greek word with
 * Latin look-alikes ("Cбepбaнк"). Not: mis-decoded text (its foreign letters
 * read as nothing Latin), "iPhoneом" (an ending on a brand), "μmol" (a unit),
 * or Ukrainian typed with a Latin i.
 */
function disguisedWord(word: string): boolean {
  const letters = [...word].filter((c) => LETTER.test(c));
  const latin = letters.filter((c) => LATIN.test(c));
  const other = letters.filter((c) => !LATIN.test(c));
  if (!latin.length || !other.length) return false;
  // A Latin word whose every foreign letter reads as Latin, wherever it sits (Аpple, PаyPal, Googӏе).
  // A Russian ending on a brand has letters that read as nothing Latin (iPhoneом: м), so it is not one.
  if (latin.length > other.length) return other.every(readsAsLatin);
  // Russian, Ukrainian and Belarusian letters only: "вЂ" is UTF-8 punctuation read as windows-1251, not a word.
  const oneScript = other.every((c) => CYRILLIC_ALPHABET.test(c)) || other.every((c) => /\p{Script=Greek}/u.test(c));
  return letters.length >= 4 && oneScript && latin.every((c) => LATIN_LOOKALIKES.has(c)) && latin.some((c) => c !== 'i' && c !== 'I');
}

/** Words disguised with look-alike letters of another script (see disguisedWord). */
export function mixedScriptWords(text: string, limit = 5): string[] {
  const found: string[] = [];
  for (const word of text.slice(0, RULE_MAX_CHARS).match(WORDS) ?? []) {
    if (word.length < 3 || !LATIN.test(word) || !LOOKALIKE_SCRIPT.test(word) || !disguisedWord(word)) continue;
    found.push(word);
    if (found.length >= limit) break;
  }
  return found;
}

const INVISIBLE = '\u200b\u200c\u200d\u2060\ufeff\u00ad\u034f\u180e\u2061-\u2064';
const WORD_WITH_INVISIBLES = new RegExp(`[\\p{L}\\p{M}${INVISIBLE}]+`, 'gu');
const INVISIBLE_RUNS = new RegExp(`([${INVISIBLE}]+)`, 'u');
/** Scripts whose words never need a joiner or zero-width space (Persian, Thai and Indic scripts do). */
const PLAIN_SCRIPT = /[\p{Script=Latin}\p{Script=Cyrillic}\p{Script=Greek}\p{Script=Armenian}]/u;

/**
 * Invisible characters between two letters of a script that has no use for
 * them ("V\u200biagra"). Soft hyphens at syllable breaks of a long word are
 * typography (German and French newsletters), not a disguise.
 */
export function invisibleInsideWords(text: string): number {
  let count = 0;
  for (const word of text.slice(0, RULE_MAX_CHARS).match(WORD_WITH_INVISIBLES) ?? []) {
    const pieces = word.split(INVISIBLE_RUNS);
    if (pieces.length < 3) continue;
    const letters = pieces.filter((_, i) => i % 2 === 0);
    const typographic = letters.join('').length >= 8 && letters.every((p) => p.length >= 2);
    for (let i = 1; i < pieces.length; i += 2) {
      const before = pieces[i - 1]!.slice(-1);
      const after = pieces[i + 1]!.charAt(0);
      if (!PLAIN_SCRIPT.test(before) || !PLAIN_SCRIPT.test(after)) continue;
      if (typographic && /^\u00ad+$/.test(pieces[i]!)) continue;
      count++;
    }
  }
  return count;
}

/** Security gateways that rewrite links (the original is a parameter, or cannot be recovered). */
const LINK_GATEWAYS = /(?:^|\.)(?:safelinks\.protection\.outlook\.com|urldefense\.com|urldefense\.proofpoint\.com|protect[\w-]*\.mimecast\.com|linkprotect\.cudasvc\.com|secure-web\.cisco\.com|clicktime\.symantec\.com)$/i;

/** Characters of an href read: real links are far shorter, and a forger controls the length. */
const MAX_HREF = 4096;

/** The link a gateway rewrote (Safe Links, urldefense v2 and v3), '' when it cannot be recovered. */
function unwrapGateway(href: string): string {
  try {
    const url = new URL(href);
    if (/safelinks\.protection\.outlook\.com$/i.test(url.hostname)) return url.searchParams.get('url') ?? '';
    if (/urldefense\.(?:proofpoint\.)?com$/i.test(url.hostname)) {
      const start = href.indexOf('/v3/__');
      const end = start < 0 ? -1 : href.indexOf('__;', start + 6);
      if (end > 0) return href.slice(start + 6, end);
      const v2 = url.searchParams.get('u');
      if (v2) return v2.replace(/_/g, '/').replace(/-([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
    }
  } catch {
    // not a URL: nothing to recover
  }
  return '';
}

/** What a link check knows besides the message: the sender's own, authenticated domain; trackers to pass over. */
export interface LinkContext {
  /** The From: domain (organisational) when it authenticated (DMARC pass, aligned SPF or DKIM). */
  authenticatedDomain?: string;
  /** Organisational domains of click trackers ([heuristics] link_trackers). */
  trackers: string[];
}

/**
 * File extensions: bare link text "README.md" or "report.pdf" names a file.
 * Some are also ICANN top-level domains (md Moldova, zip, mov, py Paraguay,
 * pl Poland, rs Serbia, sh, ps, cc): bare, a name with one of them reads as a
 * file, and a domain there counts when written with http:// or www. The
 * others (js, pdf, txt...) are no public suffix today: listed so that a new
 * top-level domain does not turn file names into domains.
 */
const FILE_EXTENSIONS = new Set(
  'pdf md txt rtf csv doc docx xls xlsx ppt pptx odt ods zip gz tgz rar 7z png jpg jpeg gif svg webp mp3 mp4 mov avi wav html htm xml json yml yaml js ts py rb pl rs sh ps cc go java exe msi dmg apk iso ics'.split(' '),
);

/**
 * The host that link text shows when a person would read it as a domain,
 * else '': its suffix is a real (ICANN) top-level domain, so not "Node.js",
 * "v20.11.0" or "3.12.0"; and, written bare (no http://, www. or path), it is
 * not a file name ("README.md") nor a product name with the suffix in capitals
 * ("ASP.NET", "VB.NET": asp.net is a domain, but a person reads a framework).
 */
function shownDomain(shown: string): string {
  if (!/^(?:https?:\/\/)?(?:www\.)?[a-z0-9-]+(?:\.[a-z0-9-]+)+(?:[/:?#]\S*)?$/i.test(shown)) return '';
  const written = hostOf(/^https?:\/\//i.test(shown) ? shown : `http://${shown}`, true);
  const host = written.toLowerCase();
  if (!host || /^[\d.]+$/.test(host) || !parse(host, { allowPrivateDomains: false }).isIcann) return '';
  const suffix = written.slice(written.lastIndexOf('.') + 1);
  const bare = !/^(?:https?:\/\/|www\.)/i.test(shown) && !/[/:?#]/.test(shown);
  if (bare && (FILE_EXTENSIONS.has(host.slice(host.lastIndexOf('.') + 1)) || suffix === suffix.toUpperCase())) return '';
  return host;
}

/**
 * Links whose visible text names one organisational domain (as a person reads
 * it: see shownDomain) while the href goes to another. A link through a security gateway is judged by the link it
 * wraps, or skipped when the gateway hides it. One into a click tracker
 * ([heuristics] link_trackers) is not counted only when it shows the sender's
 * own authenticated From: domain: a newsletter linking its site through its
 * tracker. Anyone can open a tracker account, and a freemail address
 * authenticates for anyone, so neither alone exempts a link.
 */
export function mismatchedLinks(parts: MessageParts, context: LinkContext = { trackers: [] }, limit = 3): string[] {
  const out: string[] = [];
  for (const link of parts.html?.links ?? []) {
    const shownHost = shownDomain(link.text.trim());
    const href = link.href.trim().slice(0, MAX_HREF);
    let hrefHost = hostOf(href);
    if (!shownHost || !hrefHost || !/^https?:/i.test(href)) continue;
    if (LINK_GATEWAYS.test(hrefHost)) {
      // A gateway that hides its target (Mimecast, Barracuda...): most such links are quoted in
      // replies from its customers, and a forger needs the gateway to rewrite the link first.
      hrefHost = hostOf(unwrapGateway(href));
      if (!hrefHost) continue;
    }
    const a = registrableDomain(shownHost);
    const b = registrableDomain(hrefHost);
    if (!a || !b || a === b) continue;
    if (a === context.authenticatedDomain && context.trackers.includes(b)) continue;
    out.push(`${shownHost} -> ${hrefHost}`);
    if (out.length >= limit) break;
  }
  return out;
}

/** Addresses no one outside reaches: a link to one is an intranet device or monitoring page, not a hidden host. */
const PRIVATE_NETWORKS = new IpSet(['0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16', '172.16.0.0/12', '192.168.0.0/16', '::1/128', 'fc00::/7', 'fe80::/10']);

/** Links to a bare public IP address (also written in hex or as one number: the URL parser normalises them). */
export function publicIpLinks(parts: MessageParts, limit = 3): string[] {
  const out: string[] = [];
  for (const raw of parts.urls) {
    let host: string;
    try {
      host = new URL(raw.slice(0, 2048)).hostname.replace(/^\[|\]$/g, '');
    } catch {
      continue;
    }
    if (isIP(host) && !PRIVATE_NETWORKS.has(host)) out.push(host);
    if (out.length >= limit) break;
  }
  return out;
}

/** The subject without reply and forward prefixes and [list] tags. */
function subjectCore(subject: string): string {
  let core = subject;
  for (let i = 0; i < 5; i++) core = core.replace(/^\s*(?:(?:re|fwd?|aw|wg|sv|vs|rif|tr)\s*(?:\[\d+\])?\s*:|\[[^\]]{1,40}\])\s*/i, '');
  return core;
}

function subjectHits(subject: string, s: HeuristicSettings, isReply: boolean): Hit[] {
  const hits: Hit[] = [];
  // A reply's prefixes and a list's [TAG] are not the sender shouting; acronyms alone (DHCP, KPI) are not either.
  const core = subjectCore(subject);
  const letters = core.match(/\p{L}/gu) ?? [];
  const upper = core.match(/\p{Lu}/gu) ?? [];
  const shoutedWords = (core.match(/(?<!\p{L})\p{Lu}{4,}(?!\p{L})/gu) ?? []).length;
  if (letters.length >= s.subjectMinLetters && upper.length / letters.length >= s.subjectCapsRatio && shoutedWords >= 2) {
    hits.push({ name: 'SUBJECT_ALL_CAPS', detail: `${Math.round((100 * upper.length) / letters.length)}% capitals` });
  }
  const visible = core.replace(/\s+/g, '');
  const punct = visible.match(/[!?$%*#@]/g) ?? [];
  // "Re: Siamese Cats???" in a thread is conversation; a new subject with "!!!" or "$$" is a pitch.
  // Only a reply (In-Reply-To, References) or list mail (List-Id) is a thread: "Re:" alone is anyone's to write.
  const burst = !(isReply && core !== subject) && /[!?]{3,}|\${2,}/.test(subject);
  if ((visible.length >= 4 && punct.length / visible.length >= s.subjectPunctRatio && punct.length >= 3) || burst) {
    hits.push({ name: 'SUBJECT_PUNCTUATION', detail: `${punct.length} of ${visible.length} characters are !?$%*#@` });
  }
  return hits;
}

/** The built-in detectors (obfuscation and presentation tricks). */
export function builtinHeuristics(parts: MessageParts, s: HeuristicSettings, links: LinkContext = { trackers: s.linkTrackers }): Hit[] {
  const hits: Hit[] = [];
  // The subject with the text, and the HTML's visible text too beside a plain part (a decoy must not hide it).
  const texts = bodyTexts(parts).map((text, i) => (i ? text : `${parts.subject}\n${text}`));
  const mixed = [...new Set(texts.flatMap((text) => mixedScriptWords(text)))];
  if (mixed.length) hits.push({ name: 'MIXED_SCRIPT_WORDS', detail: `e.g. ${mixed.slice(0, 3).map((w) => JSON.stringify(w)).join(', ')}` });
  // The larger count, not the sum: the plain and HTML parts usually say the same.
  const invisible = Math.max(...texts.map(invisibleInsideWords));
  if (invisible >= 2) hits.push({ name: 'INVISIBLE_CHARACTERS', detail: `${invisible} zero-width or invisible characters inside words` });
  if (parts.html) {
    const hiddenLetters = (parts.html.hiddenText.match(/\p{L}/gu) ?? []).length;
    const visibleLetters = (parts.html.text.match(/\p{L}/gu) ?? []).length;
    // A hidden preheader or menu beside a long newsletter is layout; hidden text that outweighs a tenth of the visible is a trick.
    if (hiddenLetters >= 200 && hiddenLetters >= 0.1 * visibleLetters) {
      // No real mail nests 500 elements deep: worth saying where it comes with hidden text.
      const deep = parts.html.deep ? ', in markup nested deeper than 500 elements' : '';
      hits.push({ name: 'HTML_HIDDEN_TEXT', detail: `${hiddenLetters} letters of text styled invisible (${visibleLetters} visible)${deep}` });
    }
    const mismatched = mismatchedLinks(parts, links);
    if (mismatched.length) hits.push({ name: 'HTML_LINK_MISMATCH', detail: mismatched.join('; ') });
    const visibleChars = parts.html.text.replace(/\s+/g, '').length;
    // Image spam: pictures and no words. A short HTML receipt or sign-in code has no picture to carry it.
    if (!parts.plainLength && visibleChars < s.htmlMinText && parts.html.images > 0) {
      hits.push({ name: 'HTML_ONLY_LITTLE_TEXT', detail: `HTML only, ${visibleChars} visible characters, ${parts.html.images} images` });
    }
  }
  const ipLinks = publicIpLinks(parts);
  if (ipLinks.length) hits.push({ name: 'URI_PUBLIC_IP', detail: `link to ${ipLinks.join(', ')}` });
  const isReply = parts.headers.some((h) => h.key === 'in-reply-to' || h.key === 'references' || h.key === 'list-id');
  hits.push(...subjectHits(parts.subject, s, isReply));
  return hits;
}

/**
 * What the `body` and `header` tests read of one message: each body as decoded
 * and, when it differs, as a reader sees its words (foldText: invisible
 * characters out, NFKC, look-alike letters in Latin), each folded once per
 * message. A test matches either: "vi\u00adagra", "ｖｉａｇｒａ" and "viаgrа" meet
 * /viagra/i, and a pattern for an invisible character still meets the text
 * that has it. ASCII text is its own fold and is read once.
 */
class RuleTexts {
  readonly bodies: string[];
  private foldedBodies?: (string | undefined)[];
  private readonly foldedValues = new Map<string, string | undefined>();

  constructor(readonly parts: MessageParts) {
    // The text and, beside a plain part, the HTML's visible text (bodyTexts); the HTML's alt text goes with the last.
    const texts = bodyTexts(parts);
    const alt = parts.html?.altText ?? '';
    this.bodies = texts.map((text, i) => (i === texts.length - 1 ? `${text}\n${alt}` : text).slice(0, RULE_MAX_CHARS));
  }

  /** The body's fold when it differs from the body (read up to RULE_MAX_CHARS too: NFKC may lengthen it). */
  foldedBody(i: number): string | undefined {
    this.foldedBodies ??= this.bodies.map((body) => folded(body));
    return this.foldedBodies[i];
  }

  /** A header value's (or the part of it read) fold when it differs. */
  foldedValue(value: string): string | undefined {
    if (!NON_ASCII.test(value)) return undefined;
    if (!this.foldedValues.has(value)) this.foldedValues.set(value, folded(value));
    return this.foldedValues.get(value);
  }
}

function folded(text: string): string | undefined {
  const f = foldText(text);
  // No longer than what was read: NFKC may lengthen a text, and RULE_MAX_CHARS bounds what a rule reads.
  return f === text ? undefined : f.slice(0, text.length);
}

/** Whether one test of a rule matches (body: any of the bodies; uri: any link; header: any value). */
function testMatches(test: RuleTest, texts: RuleTexts): boolean {
  const { parts } = texts;
  if (test.target === 'body') {
    return texts.bodies.some((body, i) => {
      if (test.test(body)) return true;
      const f = texts.foldedBody(i);
      return f !== undefined && test.test(f);
    });
  }
  // RULE_MAX_CHARS shared among the links or a header's values: every link's scheme and host is read, whatever
  // comes first (parts holds at most 300 links: their starts fit the 75 KiB of starts anyShareMatches reads).
  // Links are read as written: a uri rule is about the link, and the url: tokens read its host as a browser does.
  if (test.target === 'uri') return anyShareMatches(parts.urls, RULE_MAX_CHARS, (u) => test.test(u), MAX_URL_CHARS);
  const values = test.header === 'subject' ? [parts.subject] : parts.headers.filter((h) => h.key === test.header).map((h) => h.value);
  // Every distinct value's start, up to 75 KiB of starts, then the longer ones further (anyShareMatches); each as written or folded.
  return anyShareMatches(values, RULE_MAX_CHARS, (v) => {
    if (test.test(v)) return true;
    const f = texts.foldedValue(v);
    return f !== undefined && test.test(f);
  });
}

/** Operator rules from mailward.content.rules: a rule fires when all its tests match. */
export function ruleHits(parts: MessageParts, s: HeuristicSettings): Hit[] {
  const hits: Hit[] = [];
  const texts = new RuleTexts(parts);
  for (const rule of s.rules) {
    if (!rule.tests.every((t) => testMatches(t, texts))) continue;
    const detail = rule.tests.map((t) => `${t.target}${t.header ? ` ${t.header}` : ''} matches ${t.pattern}`).join(' and ');
    hits.push({ name: rule.name, detail });
  }
  return hits;
}
