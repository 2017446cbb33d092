import { createHash } from 'node:crypto';
import { textSkeleton } from '../antispoof/lookalike';

/** Reply/forward markers in the languages bounces and auto-replies commonly use. */
const PREFIX = /^\s*(?:(?:re|fwd?|aw|wg|sv|vs|antw|doorst|tr|rif|r|odp|enc|res|ynt|atb|ref|rv)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*)/i;
/** A leading "[list-tag]" or "*SPAM*"-style tag another filter added. */
const TAG = /^\s*(?:\[[^\]]{0,40}\]|\*{1,3}[^*]{1,20}\*{1,3})\s*/;
const ADDRESS = /[^\s<>"'()]+@[^\s<>"'()]+/g;
/** Any token holding a digit: counters, dates, ticket ids, hex queue ids. */
const NUMERIC_TOKEN = /[^\s]*\d[^\s]*/g;
/** Characters that show nothing (zero-width spaces and joiners, soft hyphens, BOMs, bidi marks): one inserted must not make a new subject. */
const INVISIBLE = /[\p{Default_Ignorable_Code_Point}\p{Cf}]/gu;

/** Longest normalised subject kept (state keys hash it; listings show it). */
export const MAX_SUBJECT_CHARS = 200;

/**
 * Folds the variations a flood of one bounce subject shows into one key:
 * invisible characters, Unicode compatibility forms, case, leading
 * "Re:/Fwd:/AW:" and tags, addresses, anything with digits (counters, dates,
 * queue ids), punctuation runs and whitespace. "Undeliverable: Order 1234" and "RE: undeliverable:  order 98"
 * become the same "undeliverable: order #". The result stays readable (it is
 * what operators see); look-alike letters are folded only in subjectId.
 */
export function normaliseSubject(subject: string | undefined | null): string {
  if (!subject) return '';
  // Only the start is kept, so only the start is worked on: the address and
  // numeric-token patterns cost the square of a space-free run's length (a
  // subject of many encoded words decodes to one such run).
  // Invisible characters go first: one between a letter and its accent would keep NFKC from composing them.
  let s = subject.slice(0, MAX_SUBJECT_CHARS * 4).replace(INVISIBLE, '').normalize('NFKC').replace(/[\u0000-\u001f\u007f\ufffd]/g, ' ');
  // Prefixes and tags may be stacked ("Re: [list] Fwd: ..."); strip until none is left.
  for (let i = 0; i < 20; i++) {
    const next = s.replace(PREFIX, '').replace(TAG, '');
    if (next === s) break;
    s = next;
  }
  s = s
    .toLowerCase()
    .replace(ADDRESS, '@')
    .replace(NUMERIC_TOKEN, '#')
    .replace(/([^\p{L}\p{N}\s#@])\1+/gu, '$1')
    .replace(/\s+/g, ' ')
    .trim();
  return s.length > MAX_SUBJECT_CHARS ? s.slice(0, MAX_SUBJECT_CHARS) : s;
}

/**
 * Stable short id of a normalised subject, used in state keys and by
 * `mailward throttle clear`: of what it looks like, so a flood whose copies
 * swap Latin letters for look-alikes (Cyrillic а for a) is one subject.
 */
export function subjectId(normalised: string): string {
  return createHash('sha256').update(textSkeleton(normalised), 'utf8').digest('hex').slice(0, 20);
}
