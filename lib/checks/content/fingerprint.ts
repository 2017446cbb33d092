import { createHash } from 'node:crypto';
import { trimChars } from '../../util/text';
import { foldText } from './fold';

/**
 * Template fingerprints: messages made from one template with per-recipient
 * parts (names, amounts, account numbers, dates, links with tokens) get the
 * same fingerprint; different texts do not. Shared with the outbound plugin.
 */
export interface TemplateFingerprint {
  /** Hash of the whole normalised text (exact template match). */
  key: string;
  /** Locality-sensitive band hashes (MinHash over 4-word shingles): near-identical texts share at least one. */
  bands: string[];
  /** Words the fingerprint was computed from. */
  words: number;
}

const SHINGLE = 4;
const MAX_WORD = 100;
const BANDS = 4;
const ROWS = 4;
const SEEDS = Array.from({ length: BANDS * ROWS }, (_, i) => (Math.imul(i + 1, 0x9e3779b1) ^ 0x5bd1e995) >>> 0);

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A 32-bit finaliser (murmur3 fmix) to derive independent hash functions from one. */
function mix(h: number, seed: number): number {
  let x = (h ^ seed) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

const GREETING = /^\s*(?:dear|hi|hello|hey|good\s+(?:morning|afternoon|evening)|greetings|bonjour|hallo|hola|ciao|guten\s+tag)\b[^\n]{0,80}$/i;

/**
 * The words of a body that a template keeps constant: the signature block
 * (after "-- "), quoted lines and the greeting line's name are dropped, and so
 * is every word that carries a digit (amounts, dates, account references),
 * every capitalised word (names; a template's own sentence starts repeat in
 * every copy anyway), e-mail addresses and URL paths (URLs keep their host).
 * The text is read folded first (foldText: invisible characters out, NFKC,
 * look-alike letters in Latin, case kept), so a sender who varies invisible
 * characters or fullwidth letters per recipient still sends one template.
 * ASCII text is its own fold: its fingerprint is what it was before.
 */
export function templateWords(written: string): string[] {
  const text = foldText(written);
  const sig = /^-- ?$/m.exec(text);
  const body = sig ? text.slice(0, sig.index) : text;
  const words: string[] = [];
  for (const line of body.split(/\r?\n/)) {
    if (/^\s*>/.test(line)) continue;
    const greeting = GREETING.exec(line);
    const kept = greeting ? (line.trim().split(/[\s,]+/)[0] ?? '') : line;
    const cleaned = kept
      // An address is any word with an @ inside it. Word by word: /\S+@\S+/ is quadratic on a long line without one.
      .replace(/\S+/g, (word) => (word.length > 2 && word.slice(1, -1).includes('@') ? ' ' : word))
      .replace(/\b(?:https?:\/\/|www\.)([^\s/?#<>"]+)\S*/gi, ' $1 ');
    for (const raw of cleaned.split(/[^\p{L}\p{N}.'-]+/u)) {
      // Longer is no word a template keeps (base64 debris, ids, padding); a host name is rarely near it.
      if (raw.length > MAX_WORD) continue;
      const word = trimChars(raw, ".'-");
      if (word.length < 2 || /\d/.test(word) || /^\p{Lu}/u.test(word)) continue;
      words.push(word.toLowerCase());
    }
  }
  return words;
}

/** Fingerprint of a body text, or null when it has fewer than `minWords` template words. */
export function templateFingerprint(text: string, minWords = 12): TemplateFingerprint | null {
  const words = templateWords(text);
  if (words.length < minWords) return null;
  const mins = new Array<number>(SEEDS.length).fill(0xffffffff);
  const last = Math.max(1, words.length - SHINGLE + 1);
  for (let i = 0; i < last; i++) {
    const h = fnv1a(words.slice(i, i + SHINGLE).join(' '));
    for (let k = 0; k < SEEDS.length; k++) {
      const v = mix(h, SEEDS[k]!);
      if (v < mins[k]!) mins[k] = v;
    }
  }
  const bands: string[] = [];
  for (let b = 0; b < BANDS; b++) {
    bands.push(createHash('sha1').update(`${b}:${mins.slice(b * ROWS, (b + 1) * ROWS).join(',')}`).digest('hex').slice(0, 16));
  }
  return { key: createHash('sha1').update(words.join(' ')).digest('hex').slice(0, 20), bands, words: words.length };
}
