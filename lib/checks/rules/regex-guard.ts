import safeRegex from 'safe-regex2';

/**
 * Compiles an operator's regular expression only when it cannot backtrack
 * catastrophically (safe-regex2: star height at most 1, a bounded number of
 * repetitions). Kept behind this one function so the content module's guard
 * can replace it without touching the rule parser.
 */
export function compileSafeRegex(source: string, flags = ''): RegExp {
  let re: RegExp;
  try {
    re = new RegExp(source, flags);
  } catch (err) {
    throw new RegexError(`bad regular expression /${source}/${flags}: ${(err as Error).message.replace(/^Invalid regular expression: /, '')}`);
  }
  if (!safeRegex(re)) {
    throw new RegexError(`regular expression /${source}/${flags} could backtrack catastrophically (nested or too many repetitions); rewrite it without a repeated group that itself repeats`);
  }
  return re;
}

export class RegexError extends Error {
  override name = 'RegexError';
}

/**
 * Upper bound on the text one regular expression is run over: even a safe
 * expression is linear in its input, and a header or body may be huge.
 */
export const MAX_REGEX_INPUT = 256 * 1024;
