import type { BayesOptions } from '../lib/checks/content/bayes';

/**
 * The baseline `npm run eval` measures in the same run: the plain token model
 * the content issue compares against ("a 64-line Robinson/Fisher token
 * model"). It reads the raw message, headers included and nothing decoded:
 * lower-cased runs of letters, digits and $'!.- of 3 to 20 characters, each
 * once, counted and combined by the same BayesModel with SpamBayes' classic
 * options (PLAIN_BAYES_OPTIONS), pinned here so that the baseline stays put
 * when mailward's own defaults change.
 */
export const PLAIN_BAYES_OPTIONS: BayesOptions = {
  unknownWordStrength: 0.45,
  unknownWordProb: 0.5,
  minimumProbStrength: 0.1,
  maxDiscriminators: 150,
  minTokenCount: 1,
  balanceClasses: false,
};

const RAW_WORD_SEPARATOR = /[^a-z0-9$'!.-]+/;

export function rawMessageTokens(raw: string): string[] {
  const out = new Set<string>();
  for (const word of raw.toLowerCase().split(RAW_WORD_SEPARATOR)) if (word.length >= 3 && word.length <= 20) out.add(word);
  return [...out];
}
