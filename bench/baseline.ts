/**
 * The baseline `npm run eval` measures in the same run: the plain token model
 * the content issue compares against ("a 64-line Robinson/Fisher token
 * model"). It reads the raw message, headers included and nothing decoded:
 * lower-cased runs of letters, digits and $'!.- of 3 to 20 characters, each
 * once, counted and combined by the same BayesModel with the same options as
 * mailward's classifier. The difference between the two is therefore the
 * tokenizer: decoded parts and chosen features against raw text.
 */
const RAW_WORD_SEPARATOR = /[^a-z0-9$'!.-]+/;

export function rawMessageTokens(raw: string): string[] {
  const out = new Set<string>();
  for (const word of raw.toLowerCase().split(RAW_WORD_SEPARATOR)) if (word.length >= 3 && word.length <= 20) out.add(word);
  return [...out];
}
