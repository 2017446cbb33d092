import { ConfigError } from '../../config/errors';
import { compileSafeRegex, UnsafeRegexError } from './safe-regex';

export type RuleTarget = 'body' | 'header' | 'uri';

/** One test of a rule: a pattern on the body, a header or each link. */
export interface RuleTest {
  target: RuleTarget;
  /** For header tests: the header name, lower case. */
  header?: string;
  /** The pattern as written, for explanations. */
  pattern: string;
  test: (text: string) => boolean;
  line: number;
}

/**
 * One operator rule from mailward.content.rules; it is also a symbol of group
 * content. It fires when every one of its tests matches: two signs together
 * ("next of kin" and "beneficiary") where either alone is ordinary mail.
 */
export interface ContentRule {
  name: string;
  tests: RuleTest[];
  score: number;
  description: string;
  line: number;
}

interface Draft {
  name: string;
  tests: RuleTest[];
  score?: number;
  description?: string;
  line: number;
}

const NAME = /^[A-Z][A-Z0-9_]{1,63}$/;

/**
 * Parses a pattern: /regex/flags (guarded against catastrophic backtracking)
 * or "literal" (case-insensitive substring).
 */
function parsePattern(text: string): { pattern: string; test: (s: string) => boolean } {
  const literal = /^"(.*)"$/.exec(text);
  if (literal) {
    const needle = literal[1]!.toLowerCase();
    if (!needle) throw new Error('empty literal');
    return { pattern: text, test: (s) => s.toLowerCase().includes(needle) };
  }
  const regex = /^\/(.*)\/([a-z]*)$/.exec(text);
  if (!regex) throw new Error(`pattern must be /regex/flags or "literal", got ${JSON.stringify(text)}`);
  const re = compileSafeRegex(regex[1]!, regex[2]!);
  return { pattern: text, test: (s) => re.test(s) };
}

/**
 * Reads a rules file, SpamAssassin style, one directive per line:
 *
 *   body     NAME  /regex/flags        (or "literal")
 *   header   NAME  Subject =~ /regex/flags
 *   uri      NAME  /regex/flags
 *   score    NAME  2.5
 *   describe NAME  One line saying what it means
 *
 * A rule may have several test lines: it fires when every one matches.
 * Every rule needs a test, a score and a description. Any mistake, including
 * a regex that could backtrack catastrophically, is a ConfigError naming the
 * file, the rule and the line.
 */
export function parseRules(text: string, source: string): ContentRule[] {
  const drafts = new Map<string, Draft>();
  const fail = (name: string, line: number, problem: string) => new ConfigError(source, `rule ${name}`, null, `line ${line}: ${problem}`);
  text.split(/\r?\n/).forEach((rawLine, index) => {
    const line = index + 1;
    const trimmed = rawLine.trim();
    if (!trimmed || trimmed.startsWith('#') || trimmed.startsWith(';')) return;
    const match = /^(\S+)\s+(\S+)\s*(.*)$/.exec(trimmed);
    if (!match) throw new ConfigError(source, 'rules', null, `line ${line}: expected "<directive> NAME ...", got ${JSON.stringify(trimmed)}`);
    const [, directive, name, rest] = match as unknown as [string, string, string, string];
    if (!NAME.test(name)) throw fail(name, line, 'rule names are UPPER_SNAKE_CASE (A-Z, 0-9, _), 2-64 characters');
    let draft = drafts.get(name);
    switch (directive) {
      case 'body':
      case 'uri':
      case 'header': {
        draft ??= { name, line, tests: [] };
        let patternText = rest.trim();
        let header: string | undefined;
        if (directive === 'header') {
          const h = /^([A-Za-z0-9-]+)\s+=~\s+(.+)$/.exec(patternText);
          if (!h) throw fail(name, line, 'header rules read "header NAME Header-Name =~ /regex/flags" (or "literal")');
          header = h[1]!.toLowerCase();
          patternText = h[2]!.trim();
        }
        try {
          const parsed = parsePattern(patternText);
          draft.tests.push({ target: directive, ...(header ? { header } : {}), pattern: parsed.pattern, test: parsed.test, line });
        } catch (err) {
          const problem = err instanceof UnsafeRegexError ? `unsafe regex ${err.message}` : (err as Error).message;
          throw fail(name, line, problem);
        }
        drafts.set(name, draft);
        return;
      }
      case 'score': {
        const score = Number(rest.trim());
        if (!rest.trim() || !Number.isFinite(score)) throw fail(name, line, `score must be a number, got ${JSON.stringify(rest.trim())}`);
        draft ??= { name, line, tests: [] };
        draft.score = score;
        drafts.set(name, draft);
        return;
      }
      case 'describe': {
        if (!rest.trim()) throw fail(name, line, 'empty description');
        draft ??= { name, line, tests: [] };
        draft.description = rest.trim();
        drafts.set(name, draft);
        return;
      }
      default:
        throw fail(name, line, `unknown directive ${JSON.stringify(directive)} (body, header, uri, score, describe)`);
    }
  });
  const rules: ContentRule[] = [];
  for (const d of drafts.values()) {
    if (!d.tests.length) throw fail(d.name, d.line, 'has a score or description but no body/header/uri test');
    if (d.score === undefined) throw fail(d.name, d.line, 'has no "score" line');
    if (!d.description) throw fail(d.name, d.line, 'has no "describe" line');
    rules.push({ name: d.name, tests: d.tests, score: d.score, description: d.description, line: d.tests[0]!.line });
  }
  return rules;
}
