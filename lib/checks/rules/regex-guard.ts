import { compileSafeRegex as contentGuard, type SafeRegex } from '../content/safe-regex';

/**
 * Compiles an operator's regular expression as the content rules do
 * (lib/checks/content/safe-regex.ts: RE2, linear-time matching, bounded
 * length), so a rule can never hang the MTA on a crafted message.
 */
export function compileSafeRegex(source: string, flags = ''): SafeRegex {
  try {
    return contentGuard(source, flags);
  } catch (err) {
    const problem = (err as { problem?: string }).problem ?? (err as Error).message;
    const what = 'bad regular expression';
    throw new RegexError(`${what} /${source}/${flags}: ${problem}`);
  }
}

export class RegexError extends Error {
  override name = 'RegexError';
}

/**
 * Upper bound on the text one regular expression is run over per message (a
 * header's values together): matching is linear in its input, and a header
 * or body may be huge.
 */
export const MAX_REGEX_INPUT = 256 * 1024;
