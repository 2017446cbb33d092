import { compileSafeRegex as contentGuard } from '../content/safe-regex';

/**
 * Compiles an operator's regular expression through the same guard as the
 * content rules (lib/checks/content/safe-regex.ts: it must compile, no
 * quantified group that itself repeats, few unbounded quantifiers, bounded
 * length), so a rule can never hang the MTA on a crafted message.
 */
export function compileSafeRegex(source: string, flags = ''): RegExp {
  try {
    return contentGuard(source, flags);
  } catch (err) {
    const problem = (err as { problem?: string }).problem ?? (err as Error).message;
    const what = /does not compile/.test(problem) ? 'bad regular expression' : 'unsafe regular expression';
    throw new RegexError(`${what} /${source}/${flags}: ${problem}`);
  }
}

export class RegexError extends Error {
  override name = 'RegexError';
}

/**
 * Upper bound on the text one regular expression is run over: even a safe
 * expression is linear in its input, and a header or body may be huge.
 */
export const MAX_REGEX_INPUT = 256 * 1024;
