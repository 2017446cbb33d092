/**
 * Characters that show nothing, and text without them: shared by the content
 * checks (the tokenizer's and the rules' fold, lib/checks/content/fold.ts) and
 * the MIME tail's padding judgement (lib/mime/padding.ts), so it lives below both.
 */

export const NON_ASCII = /[^\x00-\x7f]/;

/**
 * Characters that show nothing (Unicode's Default_Ignorable_Code_Point: soft
 * hyphen, zero-width space, joiners, word joiner, byte order mark, bidi marks,
 * variation selectors...). A spammer puts them inside a word ("Via\u200bgra")
 * so that it never meets the token the model learnt; they are taken out, so
 * the word joins rather than splits (the BOM is white space to JavaScript's
 * \s). The heuristics read the parts' text, which keeps them
 * (INVISIBLE_CHARACTERS).
 */
const IGNORABLE = /\p{Default_Ignorable_Code_Point}/gu;

/** Text without the characters that show nothing (see IGNORABLE). */
export function withoutInvisibles(text: string): string {
  return NON_ASCII.test(text) ? text.replace(IGNORABLE, '') : text;
}

/** Text without the characters that show nothing, its compatibility forms folded (NFKC), case kept. */
export function visibleNfkc(text: string): string {
  return NON_ASCII.test(text) ? text.replace(IGNORABLE, '').normalize('NFKC') : text;
}
