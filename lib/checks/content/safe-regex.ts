import { RE2JS } from 're2js';

/**
 * Regular expressions written by operators (content rules, filter rules) run
 * on RE2 (re2js, a pure-JavaScript port): matching takes time linear in the
 * input, whatever the pattern. JavaScript's own engine backtracks, and no
 * load-time check catches every pattern that makes it hang: /^(a|a)*$/ or
 * /\s*\s*x/ passed one (safe-regex2 plus a quantifier count) and took
 * minutes on a few kilobytes. RE2 has no look-around and no back-references;
 * a pattern that uses them is refused at load with RE2's reason.
 */
export const MAX_PATTERN_LENGTH = 1000;
const ALLOWED_FLAGS = /^[imsu]*$/;

/** The part of RegExp the rules use. */
export interface SafeRegex {
  readonly source: string;
  readonly flags: string;
  test(text: string): boolean;
}

export class UnsafeRegexError extends Error {
  constructor(
    readonly pattern: string,
    readonly problem: string,
  ) {
    super(`/${pattern}/: ${problem}`);
    this.name = 'UnsafeRegexError';
  }
}

function re2Flags(flags: string): number {
  let out = 0;
  if (flags.includes('i')) out |= RE2JS.CASE_INSENSITIVE;
  if (flags.includes('m')) out |= RE2JS.MULTILINE;
  if (flags.includes('s')) out |= RE2JS.DOTALL;
  // 'u': RE2 always reads the pattern and the text as Unicode.
  return out;
}

function compile(source: string, flags: string): RE2JS {
  return RE2JS.compile(source, re2Flags(flags));
}

/** Why a pattern is refused, or null when it may be used. */
export function regexProblem(source: string, flags = ''): string | null {
  if (!ALLOWED_FLAGS.test(flags)) return `flags ${JSON.stringify(flags)} not allowed (use i, m, s, u)`;
  if (source.length > MAX_PATTERN_LENGTH) return `pattern longer than ${MAX_PATTERN_LENGTH} characters`;
  try {
    compile(source, flags);
  } catch (err) {
    return `does not compile (RE2 syntax: no look-around, no back-references): ${(err as Error).message}`;
  }
  return null;
}

/** Compiles an operator's pattern or throws UnsafeRegexError saying why it is refused. */
export function compileSafeRegex(source: string, flags = ''): SafeRegex {
  const problem = regexProblem(source, flags);
  if (problem) throw new UnsafeRegexError(source, problem);
  const re = compile(source, flags);
  return { source, flags, test: (text) => re.matcher(text).find() };
}
