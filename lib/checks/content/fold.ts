import unhomoglyph from 'unhomoglyph';
import { NON_ASCII, visibleNfkc } from '../../util/invisible';

/**
 * Undoing word obfuscation: what the Bayes tokenizer, the operator `body` and
 * `header` rules and the template fingerprints read instead of the text as
 * written. Spammers break a word so that it never meets the token or the rule
 * written for it, yet it looks the same to a reader: characters that show
 * nothing inside it, compatibility forms (fullwidth, mathematical letters),
 * look-alike letters of another script.
 */

export const LATIN = /\p{Script=Latin}/u;
/** Scripts with letters that read as Latin ones (Unicode's confusables). */
export const LOOKALIKE_SCRIPT = /[\p{Script=Cyrillic}\p{Script=Greek}\p{Script=Armenian}\p{Script=Cherokee}]/u;
export const LETTER = /\p{L}/u;
const ASCII_LETTERS = /^[a-z]+$/i;

/**
 * The Latin letters a letter of another script reads as, case kept, else ''.
 * A capital is read through its small letter first (Cyrillic І is I, not the
 * l of Unicode's skeleton), else as itself (В is B, its small в reads as
 * nothing Latin).
 */
function asLatin(c: string): string {
  const lower = c.toLowerCase();
  if (lower !== c) {
    const small = unhomoglyph(lower);
    if (ASCII_LETTERS.test(small)) return small.toUpperCase();
  }
  const as = unhomoglyph(c);
  return ASCII_LETTERS.test(as) ? as : '';
}

/**
 * A Latin word with look-alike letters of another script ("viаgrа", Cyrillic
 * а) in Latin letters, else the word. Folded only when Latin letters are the
 * more and every other letter reads as a Latin one (Unicode's confusables):
 * "iPhoneом" (a Russian ending, м reads as nothing Latin) and Russian words
 * stay as written. MIXED_SCRIPT_WORDS flags such words from the parts' text.
 */
export function foldLookalikes(w: string): string {
  if (!LATIN.test(w) || !LOOKALIKE_SCRIPT.test(w)) return w;
  let latin = 0;
  let other = 0;
  const folded: string[] = [];
  for (const c of w) {
    if (!LETTER.test(c) || LATIN.test(c)) {
      if (LETTER.test(c)) latin++;
      folded.push(c);
      continue;
    }
    other++;
    const as = asLatin(c);
    if (!as) return w;
    folded.push(as);
  }
  return latin > other ? folded.join('') : w;
}

/**
 * A word's compatibility forms folded (NFKC, then lower case): fullwidth
 * "ｖｉａｇｒａ", mathematical "𝐯𝐢𝐚𝐠𝐫𝐚", circled letters and ligatures ("ﬁ")
 * read as the plain word, and "…" as "...". Lower case after NFKC: mathematical
 * capitals have no lower case of their own. Look-alike letters folded too.
 */
export function foldWord(w: string): string {
  if (!NON_ASCII.test(w)) return w;
  const folded = foldLookalikes(w.normalize('NFKC').toLowerCase());
  return folded === w ? w : folded.toLowerCase();
}

const LOOKALIKE_LETTERS = new RegExp(LOOKALIKE_SCRIPT.source, 'gu');
const SPACE = /\s/;

/** Each white-space separated word with a letter of a look-alike script folded (foldLookalikes); the rest as is. */
function foldLookalikeWords(text: string): string {
  let out = '';
  let done = 0;
  LOOKALIKE_LETTERS.lastIndex = 0;
  for (let m = LOOKALIKE_LETTERS.exec(text); m; m = LOOKALIKE_LETTERS.exec(text)) {
    let start = m.index;
    while (start > done && !SPACE.test(text[start - 1]!)) start--;
    let end = LOOKALIKE_LETTERS.lastIndex;
    while (end < text.length && !SPACE.test(text[end]!)) end++;
    out += text.slice(done, start) + foldLookalikes(text.slice(start, end));
    done = end;
    LOOKALIKE_LETTERS.lastIndex = end;
  }
  return done ? out + text.slice(done) : text;
}

/**
 * A text as a reader sees its words: characters that show nothing taken out
 * (the word joins), compatibility forms folded (NFKC: fullwidth "ＦＲＥＥ" is
 * "FREE", mathematical "𝐯𝐢𝐚𝐠𝐫𝐚" is "viagra") and Latin words with
 * look-alike letters of another script read in Latin ("viаgrа", "PаyPal").
 * Case is kept (NFKC keeps it; a capital look-alike folds to a capital).
 * ASCII text is its own fold, returned as is; so is text with nothing to fold.
 * NFKC may lengthen a text (a ligature or "ﷺ" becomes several letters):
 * callers that bound what they read slice the result again.
 */
export function foldText(text: string): string {
  if (!NON_ASCII.test(text)) return text;
  // Words are white-space separated, as the tokenizer's: "e-mаil" folds as one word.
  return foldLookalikeWords(visibleNfkc(text));
}
