import safeRegex from 'safe-regex2';

/**
 * Guard for regular expressions written by operators (content rules, filter
 * rules). JavaScript regexes backtrack, so a pattern such as /(a+)+$/ can hang
 * the process on a crafted message. Patterns are refused at load time when:
 * - they do not compile;
 * - safe-regex2 finds a quantifier inside a quantified group (star height > 1,
 *   the shape of exponential backtracking) or more than 25 repetitions;
 * - they have more than MAX_UNBOUNDED unbounded quantifiers (*, +, {n,}), the
 *   shape of polynomial backtracking (/.*a.*b.*c/);
 * - they are longer than MAX_PATTERN_LENGTH.
 * Callers should also bound the input a pattern runs on (the content rules
 * read at most [heuristics] rule_max_chars characters per target).
 */
export const MAX_UNBOUNDED = 3;
export const MAX_PATTERN_LENGTH = 1000;
const ALLOWED_FLAGS = /^[imsu]*$/;

export class UnsafeRegexError extends Error {
  constructor(
    readonly pattern: string,
    readonly problem: string,
  ) {
    super(`/${pattern}/: ${problem}`);
    this.name = 'UnsafeRegexError';
  }
}

/** Number of *, + and {n,} quantifiers outside character classes and escapes. */
export function unboundedQuantifiers(source: string): number {
  let count = 0;
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === '\\') {
      i++;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      continue;
    }
    if (c === '[') inClass = true;
    else if (c === '*' || c === '+') count++;
    else if (c === '{' && /^\{\d+,\}/.test(source.slice(i, i + 12))) count++;
  }
  return count;
}

/** Why a pattern is refused, or null when it may be used. */
export function regexProblem(source: string, flags = ''): string | null {
  if (!ALLOWED_FLAGS.test(flags)) return `flags ${JSON.stringify(flags)} not allowed (use i, m, s, u)`;
  if (source.length > MAX_PATTERN_LENGTH) return `pattern longer than ${MAX_PATTERN_LENGTH} characters`;
  try {
    new RegExp(source, flags);
  } catch (err) {
    return `does not compile: ${(err as Error).message}`;
  }
  if (!safeRegex(source)) {
    return 'a quantifier inside a repeated group, or more than 25 repetitions: catastrophic backtracking possible (rewrite without nested repetition, e.g. (a+)+ -> a+)';
  }
  const unbounded = unboundedQuantifiers(source);
  if (unbounded > MAX_UNBOUNDED) {
    return `${unbounded} unbounded quantifiers (*, +, {n,}); at most ${MAX_UNBOUNDED}: use bounded ones such as .{0,40}`;
  }
  return null;
}

/** Compiles an operator's pattern or throws UnsafeRegexError saying why it is refused. */
export function compileSafeRegex(source: string, flags = ''): RegExp {
  const problem = regexProblem(source, flags);
  if (problem) throw new UnsafeRegexError(source, problem);
  return new RegExp(source, flags);
}
