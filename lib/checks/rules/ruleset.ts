import { ConfigError } from '../../config/errors';
import { pendingCouldMatch } from '../../dns/fcrdns';
import { AUTH_TOKENS, authHas, authView, type AuthToken, type Undecided } from './auth-view';
import { AddressPattern, hostHasSuffix, IpSet } from './match';
import type { MessageView, Texts } from './message-view';
import { anyShareMatches, type SafeRegex } from '../content/safe-regex';
import { compileSafeRegex, MAX_REGEX_INPUT } from './regex-guard';

/**
 * Filter rules: named blocks in `mailward.rules`, read top to bottom.
 *
 *   rule webform
 *     sender info@widget.com
 *     header Received contains webhoster.someformservice.com
 *     action allow
 *
 * Conditions are ANDed; a comma-separated list inside one condition is any-of;
 * `not` before a condition inverts it. The first matching rule with a deciding
 * action (allow, block, quarantine) wins; score and skip actions of the
 * matching rules before it apply too.
 */

export type Decision = 'accept' | 'reject' | 'quarantine';

/**
 * The earliest phase a condition can be decided in: mail (sender, client),
 * rcpt (recipient), data (headers, body, auth results).
 */
export type Level = 'mail' | 'rcpt' | 'data';
export const LEVEL_ORDER: Record<Level, number> = { mail: 0, rcpt: 1, data: 2 };

export interface Condition {
  /** As written, for explanations. */
  text: string;
  line: number;
  level: Level;
  /** 'undecided': the answer hangs on a look-up that failed (auth results under a DNS failure). */
  test(view: MessageView): Truth | Promise<Truth>;
}

export type Truth = boolean | Undecided;

export interface Rule {
  name: string;
  line: number;
  conditions: Condition[];
  decision?: Decision;
  score: number;
  /** Module names (content), check names (content.bayes) or symbol names to skip. */
  skip: string[];
  reason: string;
  /** The phase from which every condition can be decided. */
  level: Level;
}

export const CONDITIONS = ['sender', 'from', 'recipient', 'ip', 'ptr', 'helo', 'header', 'body', 'auth', 'direction'] as const;

const DECISIONS: Record<string, Decision> = { allow: 'accept', accept: 'accept', block: 'reject', reject: 'reject', quarantine: 'quarantine' };

/** Names of modules and checks that a rule may not skip (the rules themselves decide the skipping). */
const UNSKIPPABLE = new Set(['rules', 'verdict']);

class LineError extends Error {}

/** Splits `a, "b, c", d` into [a, "b, c", d]; quotes (" or ') keep commas and spaces. */
export function splitValues(text: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && /[\s,]/.test(text[i]!)) i++;
    if (i >= text.length) break;
    const quote = text[i];
    if (quote === '"' || quote === "'") {
      const end = text.indexOf(quote, i + 1);
      if (end < 0) throw new LineError(`unterminated quote in ${JSON.stringify(text)}`);
      out.push(text.slice(i + 1, end));
      i = end + 1;
      while (i < text.length && /\s/.test(text[i]!)) i++;
      if (i < text.length && text[i] !== ',') throw new LineError(`expected a comma after the quoted value in ${JSON.stringify(text)}`);
      continue;
    }
    let end = text.indexOf(',', i);
    if (end < 0) end = text.length;
    const item = text.slice(i, end).trim();
    if (item) out.push(item);
    i = end;
  }
  return out;
}

function nonEmpty(values: string[], what: string): string[] {
  if (!values.length) throw new LineError(`${what} needs at least one value`);
  return values;
}

/** `/source/flags`, or a bare source (case-insensitive). */
function parseRegex(text: string): SafeRegex {
  const t = text.trim();
  const m = /^\/(.*)\/([a-z]*)$/s.exec(t);
  const [source, flags] = m ? [m[1]!, m[2]!] : [t, 'i'];
  if (!source) throw new LineError('empty regular expression');
  if (/[^imsu]/.test(flags)) throw new LineError(`unsupported regular expression flags ${JSON.stringify(flags)} (use i, m, s, u)`);
  try {
    return compileSafeRegex(source, flags);
  } catch (err) {
    throw new LineError((err as Error).message);
  }
}

function textTest(op: string, rest: string, what: string): (texts: Texts) => boolean {
  if (op === 'contains') {
    const needles = nonEmpty(splitValues(rest), `${what} contains`).map((n) => n.toLowerCase());
    return (texts) => texts.lower().some((lower) => needles.some((n) => lower.includes(n)));
  }
  if (op === 'matches') {
    const re = parseRegex(rest);
    // MAX_REGEX_INPUT shared among the values ("header matches" reads every header, however many), so that
    // every field's start is read whatever comes first (up to MAX_REGEX_INPUT of starts, then the longer ones further).
    return (texts) => anyShareMatches(texts.values, MAX_REGEX_INPUT, (v) => re.test(v));
  }
  throw new LineError(`expected "${what} contains TEXT" or "${what} matches /REGEX/", got ${JSON.stringify(op || '(nothing)')}`);
}

function patterns(rest: string, what: string): AddressPattern[] {
  return nonEmpty(splitValues(rest), what).map((p) => {
    try {
      return new AddressPattern(p);
    } catch (err) {
      throw new LineError(`${what}: ${(err as Error).message}`);
    }
  });
}

function compileCondition(keyword: string, rest: string, line: number, text: string): Condition {
  const make = (level: Level, test: Condition['test']): Condition => ({ text, line, level, test });
  switch (keyword) {
    case 'sender': {
      const ps = patterns(rest, 'sender');
      return make('mail', (v) => v.ctx.mailFrom !== undefined && ps.some((p) => p.matches(v.ctx.mailFrom)));
    }
    case 'from': {
      const ps = patterns(rest, 'from');
      return make('data', (v) => v.fromAddresses.some((a) => ps.some((p) => p.matches(a))));
    }
    case 'recipient': {
      const ps = patterns(rest, 'recipient');
      // At DATA every recipient must match: a rule for one user must not decide for the others.
      return make('rcpt', (v) => v.recipients.length > 0 && v.recipients.every((r) => ps.some((p) => p.matches(r))));
    }
    case 'ip': {
      let set: IpSet;
      try {
        set = new IpSet(nonEmpty(splitValues(rest), 'ip'));
      } catch (err) {
        throw new LineError((err as Error).message);
      }
      return make('mail', (v) => set.has(v.ctx.ip));
    }
    case 'ptr': {
      // Only forward-confirmed names: anyone can give their own address a PTR of yourbank.com.
      const suffixes = nonEmpty(splitValues(rest), keyword);
      return make('mail', async (v) => {
        const confirmed = await v.confirmedPtrNames();
        const wanted = (name: string) => suffixes.some((s) => hostHasSuffix(name, s));
        if (confirmed.names.some(wanted)) return true;
        return pendingCouldMatch(confirmed, wanted) ? 'undecided' : false;
      });
    }
    case 'helo': {
      const suffixes = nonEmpty(splitValues(rest), keyword);
      return make('mail', (v) => suffixes.some((s) => hostHasSuffix(v.ctx.helo, s)));
    }
    case 'header': {
      const m = /^(\S+)\s+(\S+)\s*(.*)$/s.exec(rest);
      if (!m) throw new LineError('expected "header NAME contains TEXT" or "header NAME matches /REGEX/"');
      let [, name, op, value] = m as unknown as [string, string, string, string];
      // "header contains TEXT": any header.
      if ((name === 'contains' || name === 'matches') && op !== 'contains' && op !== 'matches') {
        value = `${op} ${value}`.trim();
        op = name;
        name = '*';
      }
      const test = textTest(op, value, 'header');
      if (name === '*') return make('data', (v) => test(v.headerTexts()));
      if (!/^[\x21-\x39\x3b-\x7e]+$/.test(name)) throw new LineError(`${JSON.stringify(name)} is not a header name`);
      return make('data', (v) => test(v.headerTexts(name)));
    }
    case 'body': {
      const m = /^(\S+)\s*(.*)$/s.exec(rest);
      const test = textTest(m?.[1] ?? '', m?.[2] ?? '', 'body');
      return make('data', async (v) => test(await v.bodyTexts()));
    }
    case 'auth': {
      const tokens = nonEmpty(splitValues(rest), 'auth').map((t) => t.toLowerCase());
      for (const t of tokens) {
        if (!(AUTH_TOKENS as readonly string[]).includes(t)) throw new LineError(`unknown auth result ${JSON.stringify(t)} (expected one of ${AUTH_TOKENS.join(', ')})`);
      }
      return make('data', (v) => {
        const auth = authView(v.ctx);
        const answers = tokens.map((t) => authHas(auth, t as AuthToken, v.fromDomain));
        return answers.includes(true) ? true : answers.includes('undecided') ? 'undecided' : false;
      });
    }
    case 'direction': {
      const d = rest.trim().toLowerCase();
      if (d !== 'inbound' && d !== 'outbound') throw new LineError(`direction is inbound or outbound, got ${JSON.stringify(rest.trim())}`);
      return make('mail', (v) => (d === 'outbound') === v.ctx.relaying);
    }
    default:
      throw new LineError(`unknown condition ${JSON.stringify(keyword)} (expected one of: ${CONDITIONS.join(', ')}, optionally after "not")`);
  }
}

function applyAction(rule: Rule, rest: string): void {
  const m = /^(\S+)\s*(.*)$/s.exec(rest.trim());
  const verb = m?.[1]?.toLowerCase() ?? '';
  const arg = m?.[2]?.trim() ?? '';
  if (verb in DECISIONS) {
    if (arg) throw new LineError(`"action ${verb}" takes no value`);
    if (rule.decision) throw new LineError('a rule can have only one of allow, block, quarantine');
    rule.decision = DECISIONS[verb];
    return;
  }
  if (verb === 'score') {
    if (!/^[+-]?\d+(\.\d+)?$/.test(arg)) throw new LineError(`"action score" needs a number like +3 or -2.5, got ${JSON.stringify(arg)}`);
    rule.score += Number(arg);
    return;
  }
  if (verb === 'skip') {
    for (const name of nonEmpty(splitValues(arg), 'action skip')) {
      if (!/^([a-z][a-z0-9_-]*(\.[a-z0-9_.-]+)?|[A-Z][A-Z0-9_]*)$/.test(name)) {
        throw new LineError(`cannot skip ${JSON.stringify(name)}: name a module (content), a check (content.bayes) or a symbol (BAYES_SPAM)`);
      }
      if (UNSKIPPABLE.has(name.split('.')[0]!)) throw new LineError(`the ${name} checks cannot be skipped`);
      rule.skip.push(name);
    }
    return;
  }
  throw new LineError(`unknown action ${JSON.stringify(verb || '(nothing)')} (expected allow, block, quarantine, score N, skip NAMES)`);
}

/**
 * Compiles a rules file. Any mistake is a ConfigError naming the file, the
 * rule and the line, so a bad file never half-loads.
 */
/**
 * Conditions a remote sender cannot meet by writing something: its address is
 * one of these, its confirmed name is, its From: domain authenticated, or the
 * mail is relayed for our own users. Not `auth spf` or `auth dkim` (a forger
 * passes them for a domain of its own), not `direction inbound`, and no negated
 * condition (`not ip X` holds for every other address).
 */
function unforgeable(condition: string): boolean {
  const words = condition.trim().toLowerCase().split(/\s+/);
  if (words[0] === 'not') return false;
  if (words[0] === 'ip' || words[0] === 'ptr') return true;
  if (words[0] === 'direction') return words[1] === 'outbound';
  if (words[0] === 'auth') {
    const tokens = words.slice(1).join(' ').split(/[\s,]+/).filter(Boolean);
    return tokens.length > 0 && tokens.every((t) => ['aligned', 'dmarc', 'spf-aligned', 'dkim-aligned'].includes(t));
  }
  return false;
}

/**
 * Warnings for allow and skip rules that any sender can satisfy: every condition reads
 * something the message or the client writes itself (From:, a Received:
 * header, the body, HELO). A spammer who adds "Received: ... ccsend.constantcontact.com"
 * is then allowed, GTUBE and all.
 */
export function ruleWarnings(rules: Rule[], source: string): string[] {
  const out: string[] = [];
  for (const rule of rules) {
    // A skip switches checks off for whoever meets the conditions: as forgeable as an allow.
    // Not one that names recipients: "mail to abuse@ unfiltered" is meant for any sender.
    const skips = rule.skip.length > 0 && !rule.conditions.some((c) => c.text.trim().toLowerCase().startsWith('recipient'));
    if (rule.decision !== 'accept' && !skips) continue;
    if (rule.conditions.some((c) => unforgeable(c.text))) continue;
    const keywords = rule.conditions.map((c) => c.text.trim().split(/\s+/).slice(0, c.text.trim().toLowerCase().startsWith('not ') ? 2 : 1).join(' ').toLowerCase());
    const what = rule.decision === 'accept' ? 'allows' : `skips ${rule.skip.join(', ')}`;
    out.push(
      `${source} [rule ${rule.name}]: line ${rule.line}: ${what} on conditions any sender can meet (${[...new Set(keywords)].join(', ')}): add an ip, ptr or "auth aligned" condition`,
    );
  }
  return out;
}

export function parseRules(text: string, file = 'mailward.rules'): Rule[] {
  const rules: Rule[] = [];
  // Name -> line of its definition: a duplicate check that stays linear over tens of thousands of rules.
  const defined = new Map<string, number>();
  let current: Rule | undefined;
  const fail = (line: number, message: string): never => {
    throw new ConfigError(file, current ? `rule ${current.name}` : 'rules', null, `line ${line}: ${message}`);
  };
  const finish = () => {
    if (!current) return;
    if (!current.conditions.length) fail(current.line, `rule ${current.name} has no conditions (a rule that matches every message is almost always a mistake)`);
    if (!current.decision && !current.score && !current.skip.length) fail(current.line, `rule ${current.name} has no action (allow, block, quarantine, score N or skip NAMES)`);
    // Cheap envelope conditions first; AND does not care about order.
    current.conditions.sort((a, b) => LEVEL_ORDER[a.level] - LEVEL_ORDER[b.level]);
    current.level = current.conditions[current.conditions.length - 1]!.level;
    rules.push(current);
  };

  text.split(/\r?\n/).forEach((raw, index) => {
    const lineNo = index + 1;
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) return;
    const m = /^(\S+)\s*(.*)$/s.exec(line)!;
    const keyword = m[1]!.toLowerCase();
    const rest = m[2]!.trim();
    try {
      if (keyword === 'rule') {
        finish();
        current = undefined;
        const name = rest.replace(/:$/, '').replace(/^(["'])(.*)\1$/, '$2');
        if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name)) throw new LineError(`rule names are letters, digits, "_", "-" and ".", got ${JSON.stringify(rest)}`);
        const first = defined.get(name);
        if (first !== undefined) throw new LineError(`rule ${name} is defined twice (the first is on line ${first})`);
        defined.set(name, lineNo);
        current = { name, line: lineNo, conditions: [], score: 0, skip: [], reason: '', level: 'mail' };
        return;
      }
      if (!current) throw new LineError(`${JSON.stringify(line)} is outside a rule (start one with "rule NAME")`);
      if (keyword === 'action') return applyAction(current, rest);
      if (keyword === 'reason') {
        current.reason = rest.replace(/^(["'])(.*)\1$/, '$2');
        return;
      }
      let negate = false;
      let kw = keyword;
      let args = rest;
      if (kw === 'not') {
        negate = true;
        const n = /^(\S+)\s*(.*)$/s.exec(rest);
        if (!n) throw new LineError('"not" needs a condition after it');
        kw = n[1]!.toLowerCase();
        args = n[2]!.trim();
      }
      const condition = compileCondition(kw, args, lineNo, line);
      if (negate) {
        const inner = condition.test;
        const invert = (x: Truth): Truth => (x === 'undecided' ? x : !x);
        condition.test = (v) => {
          const r = inner(v);
          return r instanceof Promise ? r.then(invert) : invert(r);
        };
      }
      current.conditions.push(condition);
    } catch (err) {
      if (err instanceof LineError) fail(lineNo, err.message);
      throw err;
    }
  });
  finish();
  return rules;
}

export type RuleOutcome = { outcome: 'match' | 'no match' } | { outcome: 'undecided'; condition: Condition };

/**
 * Does every condition hold? Stops at the first that does not. A rule none of
 * whose conditions fails but one of which could not be decided is
 * 'undecided': it neither matches nor is passed over silently.
 */
export async function ruleOutcome(rule: Rule, view: MessageView): Promise<RuleOutcome> {
  let undecided: Condition | undefined;
  for (const c of rule.conditions) {
    // Most conditions answer at once: awaiting only promises keeps a long file's walk off the microtask queue.
    const answer = c.test(view);
    const truth = answer instanceof Promise ? await answer : answer;
    if (truth === false) return { outcome: 'no match' };
    if (truth === 'undecided') undecided ??= c;
  }
  return undecided ? { outcome: 'undecided', condition: undecided } : { outcome: 'match' };
}

/** Every condition holds (an undecided rule does not match). */
export async function ruleMatches(rule: Rule, view: MessageView): Promise<boolean> {
  return (await ruleOutcome(rule, view)).outcome === 'match';
}

export function describeDecision(decision: Decision): string {
  return decision === 'accept' ? 'allow' : decision === 'reject' ? 'block' : 'quarantine';
}
