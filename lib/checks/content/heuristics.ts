import type { Hit } from '../../score/types';
import type { MessageParts } from './parts';
import { hostOf } from './parts';
import type { HeuristicSettings } from './settings';
import { registrableDomain } from './tokenize';

/** Characters of each target the detectors and operator rules read (bounds regex time). */
export const RULE_MAX_CHARS = 64 * 1024;

const LATIN = /\p{Script=Latin}/u;
const LOOKALIKE_SCRIPT = /[\p{Script=Cyrillic}\p{Script=Greek}\p{Script=Armenian}\p{Script=Cherokee}]/u;
const WORDS = /[\p{L}\p{M}\u200b-\u200d\u2060\ufeff\u00ad]+/gu;
/** Invisible characters hidden between letters (to split words past filters). */
const HIDDEN_BETWEEN_LETTERS = /\p{L}[\u200b\u200c\u200d\u2060\ufeff\u00ad\u034f\u180e\u2061-\u2064]+\p{L}/gu;

/** Words mixing Latin letters with look-alike letters of another script ("PаyPal" with a Cyrillic а). */
export function mixedScriptWords(text: string, limit = 5): string[] {
  const found: string[] = [];
  for (const word of text.slice(0, RULE_MAX_CHARS).match(WORDS) ?? []) {
    if (word.length < 3 || !LATIN.test(word) || !LOOKALIKE_SCRIPT.test(word)) continue;
    found.push(word);
    if (found.length >= limit) break;
  }
  return found;
}

export function invisibleInsideWords(text: string): number {
  return (text.slice(0, RULE_MAX_CHARS).match(HIDDEN_BETWEEN_LETTERS) ?? []).length;
}

/** Links whose visible text names one organisational domain while the href goes to another. */
export function mismatchedLinks(parts: MessageParts, limit = 3): string[] {
  const out: string[] = [];
  for (const link of parts.html?.links ?? []) {
    const shown = link.text.trim();
    if (!/^(?:https?:\/\/)?(?:www\.)?[a-z0-9-]+(?:\.[a-z0-9-]+)+(?:[/:?#]\S*)?$/i.test(shown)) continue;
    const shownHost = hostOf(/^https?:\/\//i.test(shown) ? shown : `http://${shown}`);
    const hrefHost = hostOf(link.href);
    if (!shownHost || !hrefHost || !/^https?:/i.test(link.href.trim())) continue;
    const a = registrableDomain(shownHost);
    const b = registrableDomain(hrefHost);
    if (a && b && a !== b) out.push(`${shownHost} -> ${hrefHost}`);
    if (out.length >= limit) break;
  }
  return out;
}

function subjectHits(subject: string, s: HeuristicSettings): Hit[] {
  const hits: Hit[] = [];
  const letters = subject.match(/\p{L}/gu) ?? [];
  const upper = subject.match(/\p{Lu}/gu) ?? [];
  if (letters.length >= s.subjectMinLetters && upper.length / letters.length >= s.subjectCapsRatio) {
    hits.push({ name: 'SUBJECT_ALL_CAPS', detail: `${Math.round((100 * upper.length) / letters.length)}% capitals` });
  }
  const visible = subject.replace(/\s+/g, '');
  const punct = visible.match(/[!?$%*#@]/g) ?? [];
  if ((visible.length >= 4 && punct.length / visible.length >= s.subjectPunctRatio && punct.length >= 3) || /[!?]{3,}|\${2,}/.test(subject)) {
    hits.push({ name: 'SUBJECT_PUNCTUATION', detail: `${punct.length} of ${visible.length} characters are !?$%*#@` });
  }
  return hits;
}

/** The built-in detectors (obfuscation and presentation tricks). */
export function builtinHeuristics(parts: MessageParts, s: HeuristicSettings): Hit[] {
  const hits: Hit[] = [];
  const text = `${parts.subject}\n${parts.text}`;
  const mixed = mixedScriptWords(text);
  if (mixed.length) hits.push({ name: 'MIXED_SCRIPT_WORDS', detail: `e.g. ${mixed.slice(0, 3).map((w) => JSON.stringify(w)).join(', ')}` });
  const invisible = invisibleInsideWords(text) + (parts.html ? invisibleInsideWords(parts.html.text) : 0);
  if (invisible >= 2) hits.push({ name: 'INVISIBLE_CHARACTERS', detail: `${invisible} zero-width or invisible characters inside words` });
  if (parts.html) {
    const hiddenLetters = (parts.html.hiddenText.match(/\p{L}/gu) ?? []).length;
    if (hiddenLetters >= 200) hits.push({ name: 'HTML_HIDDEN_TEXT', detail: `${hiddenLetters} letters of text styled invisible` });
    const mismatched = mismatchedLinks(parts);
    if (mismatched.length) hits.push({ name: 'HTML_LINK_MISMATCH', detail: mismatched.join('; ') });
    const visibleChars = parts.html.text.replace(/\s+/g, '').length;
    if (!parts.plainLength && visibleChars < s.htmlMinText) {
      hits.push({ name: 'HTML_ONLY_LITTLE_TEXT', detail: `HTML only, ${visibleChars} visible characters, ${parts.html.images} images` });
    }
  }
  hits.push(...subjectHits(parts.subject, s));
  return hits;
}

/** Operator rules from mailward.content.rules. */
export function ruleHits(parts: MessageParts, s: HeuristicSettings): Hit[] {
  const hits: Hit[] = [];
  const body = `${parts.text}\n${parts.html?.altText ?? ''}`.slice(0, RULE_MAX_CHARS);
  for (const rule of s.rules) {
    let matched = false;
    if (rule.target === 'body') matched = rule.test(body);
    else if (rule.target === 'uri') matched = parts.urls.some((u) => rule.test(u.slice(0, 2048)));
    else {
      const values = rule.header === 'subject' ? [parts.subject] : parts.headers.filter((h) => h.key === rule.header).map((h) => h.value);
      matched = values.some((v) => rule.test(v.slice(0, RULE_MAX_CHARS)));
    }
    if (matched) hits.push({ name: rule.name, detail: `${rule.target}${rule.header ? ` ${rule.header}` : ''} matches ${rule.pattern}` });
  }
  return hits;
}
