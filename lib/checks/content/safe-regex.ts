import { RE2JS } from 're2js';

/**
 * Regular expressions written by operators (content rules, filter rules) run
 * on RE2 (re2js, a pure-JavaScript port): matching takes time linear in the
 * input, whatever the pattern. JavaScript's own engine backtracks, and no
 * load-time check catches every pattern that makes it hang: /^(a|a)*$/ or
 * /\s*\s*x/ passed one (safe-regex2 plus a quantifier count) and took
 * minutes on a few kilobytes. RE2 has no look-around and no back-references;
 * a pattern that uses them is refused at load with RE2's reason. Where the
 * two syntaxes mean different things (\s, ., \uXXXX), the pattern is rewritten
 * to mean what it means in JavaScript (fromJavaScriptSyntax).
 */
export const MAX_PATTERN_LENGTH = 1000;
/**
 * Linear is not cheap: RE2 compiles x{0,200} to 200 states, each of which can
 * be live at every character, so the time per character grows with the
 * copies counted repetitions make (re2js on 64 KiB: .{0,998} 2 s, .{0,200}
 * 0.5 s, (?:x.{0,30}){30} 5 s). 200 is the shipped rules' widest gap (a
 * few lines of text); `*` and `+` cost one state whatever the length.
 */
export const MAX_REPETITION = 200;
const ALLOWED_FLAGS = /^[imsu]*$/;
const COUNTED = /^\{(\d+)(?:,(\d*))?\}/;

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

/** JavaScript's \s: ASCII blanks plus the Unicode spaces (a spammer's &nbsp; decodes to U+00A0). */
const JS_SPACE = '\\t\\n\\x0B\\f\\r \\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}\\x{FEFF}';

/**
 * Rewrites the JavaScript escapes whose meaning RE2 does not share, so an
 * operator's pattern matches what it would in JavaScript: `\s` and `\S`
 * (RE2: ASCII only), `.` (RE2 without `s`: anything but \n; JavaScript: also
 * not \r, U+2028, U+2029) and `\uXXXX` / `\u{X}` (RE2: `\x{X}`).
 */
export function fromJavaScriptSyntax(source: string, flags: string): string {
  let out = '';
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i]!;
    if (c === '\\') {
      const next = source[i + 1] ?? '';
      const braced = next === 'u' ? /^u\{([0-9a-fA-F]{1,6})\}/.exec(source.slice(i + 1)) : null;
      const plain = next === 'u' && !braced ? /^u([0-9a-fA-F]{4})/.exec(source.slice(i + 1)) : null;
      if (braced || plain) {
        out += `\\x{${(braced ?? plain)![1]}}`;
        i += (braced ?? plain)![0].length;
      } else if (next === 's') {
        out += inClass ? JS_SPACE : `[${JS_SPACE}]`;
        i++;
      } else if (next === 'S' && !inClass) {
        out += `[^${JS_SPACE}]`;
        i++;
      } else {
        out += c + next;
        i++;
      }
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      out += c;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      // A ']' right after '[' or '[^' is a member, not the end.
      if (source[i + 1] === '^') out += source[++i];
      if (source[i + 1] === ']') out += source[++i];
      continue;
    }
    out += c === '.' && !flags.includes('s') ? '[^\\n\\r\\x{2028}\\x{2029}]' : c;
  }
  return out;
}

/** Index of the ']' closing the class that opens at `start` (or the last index: RE2 refuses it anyway). */
function classEnd(source: string, start: number): number {
  let i = start + 1;
  if (source[i] === '^') i++;
  if (source[i] === ']') i++;
  for (; i < source.length; i++) {
    if (source[i] === '\\') i++;
    else if (source[i] === ']') return i;
  }
  return source.length - 1;
}

/**
 * Copies of what they repeat that the counted repetitions of a pattern make,
 * nested ones multiplied: x{0,200} 200, (?:x.{0,30}){30} 30 x 31.
 */
export function repetitionCopies(source: string): number {
  const groups = [0]; // copies so far in each open group
  let last = 0; // copies inside the atom a quantifier would repeat
  for (let i = 0; i < source.length; i++) {
    const c = source[i]!;
    let counted: RegExpExecArray | null;
    if (c === '\\') {
      // The braces of \p{L}, \x{41} and \u{1F600} are no repetition.
      const braced = source[i + 2] === '{' && 'pPxu'.includes(source[i + 1] ?? '') ? source.indexOf('}', i) : -1;
      i = braced >= 0 ? braced : i + 1;
      last = 0;
    } else if (c === '[') {
      i = classEnd(source, i);
      last = 0;
    } else if (c === '(') {
      groups.push(0);
    } else if (c === ')' && groups.length > 1) {
      last = groups.pop()!;
      groups[groups.length - 1]! += last;
    } else if (c === '{' && (counted = COUNTED.exec(source.slice(i, i + 24)))) {
      const copies = Number(counted[2] || counted[1]) * (last + 1);
      groups[groups.length - 1]! += copies - last;
      last = copies;
      i += counted[0].length - 1;
    } else if (c !== '?' && c !== '*' && c !== '+') {
      last = 0;
    }
  }
  return groups.reduce((sum, n) => sum + n, 0);
}

function compile(source: string, flags: string): RE2JS {
  return RE2JS.compile(fromJavaScriptSyntax(source, flags), re2Flags(flags));
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
  const copies = repetitionCopies(source);
  if (copies > MAX_REPETITION) {
    return `counted repetitions ({n,m}) make ${copies} copies, more than ${MAX_REPETITION}: matching time grows with them; use smaller bounds, or * and + where any length will do`;
  }
  return null;
}

/** Compiles an operator's pattern or throws UnsafeRegexError saying why it is refused. */
export function compileSafeRegex(source: string, flags = ''): SafeRegex {
  const problem = regexProblem(source, flags);
  if (problem) throw new UnsafeRegexError(source, problem);
  const re = compile(source, flags);
  // test() asks for no capture positions, which lets re2js run its DFA: .{0,200} on 64 KiB of x, 0.05 s against 0.9 s.
  return { source, flags, test: (text) => re.test(text) };
}

/** The least of a budget each value is read up to: a link's scheme and host, a header value's start. */
export const MIN_SHARE = 256;

/** Distinct texts whose start is read whatever the budget (a message's links are capped at 300). */
const HEADS = 300;

/**
 * Whether `test` matches one of `texts`, reading about `budget` characters in
 * all (and no text beyond `maxEach`). Read in order until the budget ran out,
 * junk placed first (40 links of 2 KiB, a 70 KB header field) hid what
 * followed. So first each distinct text is read up to its share, half the
 * budget split among them but at least MIN_SHARE (a link's scheme and host, a
 * header value's start), charged by what it really holds, up to
 * max(budget, HEADS * MIN_SHARE) in all; then what is left of the budget reads
 * the longer texts further, in order. Only junk of that size placed first can
 * keep a later text from being read.
 */
export function anyShareMatches(texts: readonly string[], budget: number, test: (text: string) => boolean, maxEach = budget): boolean {
  const distinct = [...new Set(texts)];
  const share = Math.min(maxEach, Math.max(MIN_SHARE, Math.floor(budget / (2 * Math.max(1, distinct.length)))));
  let heads = Math.max(budget, HEADS * MIN_SHARE);
  let spent = 0;
  const longer: string[] = [];
  for (const text of distinct) {
    if (heads <= 0) return false;
    // An empty value is tested too (a blank Subject), at no cost.
    const read = Math.min(text.length, share, heads);
    if (test(read < text.length ? text.slice(0, read) : text)) return true;
    heads -= read;
    spent += read;
    if (text.length > read) longer.push(text);
  }
  let left = budget - spent;
  for (const text of longer) {
    if (left <= 0) return false;
    const read = Math.min(text.length, maxEach, share + left);
    if (read <= share) continue;
    if (test(text.slice(0, read))) return true;
    left -= read - share;
  }
  return false;
}
