import { round, type Ledger } from './ledger';
import { newRef } from './ref';
import type { Action, ScoredSymbol, Verdict } from './types';
import { severity } from './types';

/** Score at or above which each action applies. `Infinity` disables an action. */
export interface Thresholds {
  reject: number;
  soft_reject: number;
  quarantine: number;
  add_header: number;
}

export interface ActionPolicy {
  thresholds: Thresholds;
  /** Per recipient domain (lower case), overriding some or all thresholds. */
  domains: Map<string, Thresholds>;
  /** Symbols whose presence no allow rule can override (e.g. SPOOF_LOCAL_DOMAIN). */
  notOverridable: Set<string>;
}

const BY_HARSHNESS: Exclude<Action, 'accept'>[] = ['reject', 'soft_reject', 'quarantine', 'add_header'];

export function actionForScore(score: number, t: Thresholds): Action {
  for (const action of BY_HARSHNESS) if (score >= t[action]) return action;
  return 'accept';
}

function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1).toLowerCase();
}

/**
 * The last hundredth (scores count in hundredths) below the thresholds that
 * refuse mail, and at most `max`: the most a capped group may count.
 */
export function capBelow(max: number, t: Thresholds): number {
  const refuse = Math.min(t.reject, t.soft_reject);
  return Number.isFinite(refuse) ? Math.max(0, Math.min(max, (Math.ceil(refuse * 100 - 1e-9) - 1) / 100)) : max;
}

interface ByScore {
  action: Action;
  thresholds: Thresholds;
  /** The score for the deciding domain, capped groups (ledger.capGroup) counted at their cap there. */
  score: number;
  groups: Record<string, number>;
  /** How, e.g. "content 8.98 capped at 6.99 for example.org", when a cap took something off. */
  capped: string[];
}

/**
 * Thresholds in force for a message. Each recipient domain scores it with the
 * capped groups held below its own refusing thresholds; with recipients in
 * several domains the mildest action wins: one domain's strict policy must not
 * refuse mail another domain asked to receive (the refusal at DATA applies to
 * every recipient), nor lower the score the others see.
 */
function thresholdAction(ledger: Ledger, policy: ActionPolicy, recipients: string[]): ByScore {
  const domains = [...new Set(recipients.map(domainOf))];
  let best: ByScore | undefined;
  for (const domain of domains.length ? domains : ['']) {
    const thresholds = policy.domains.get(domain) ?? policy.thresholds;
    let score = ledger.total;
    const groups = ledger.groups;
    const capped: string[] = [];
    for (const [group, max] of ledger.groupCaps) {
      const part = groups[group] ?? 0;
      const cap = capBelow(max, thresholds);
      if (part <= cap) continue;
      score = round(score - part + cap);
      groups[group] = cap;
      capped.push(`${group} ${part} capped at ${cap}${domain ? ` for ${domain}` : ''}`);
    }
    const action = actionForScore(score, thresholds);
    // Between domains with the same action, the higher score: what a domain's cap took off is not
    // reported for the others, whatever the order of the recipients.
    if (!best || severity(action) < severity(best.action) || (action === best.action && score > best.score)) best = { action, thresholds, score, groups, capped };
  }
  return best!;
}

export function formatSymbols(symbols: ScoredSymbol[], limit = Infinity): string {
  const shown = symbols.slice(0, limit).map((s) => `${s.name} ${s.score}`);
  if (symbols.length > limit) shown.push(`+${symbols.length - limit} more`);
  return shown.join(', ');
}

/** Turns a ledger into a verdict: thresholds, then forced actions from rules. */
export function decide(ledger: Ledger, policy: ActionPolicy, recipients: string[], ref: string = newRef()): Verdict {
  const symbols = ledger.symbols;
  const byScore = thresholdAction(ledger, policy, recipients);
  // Score and groups as the deciding domain counts them, so that they add up (autolearn subtracts the content group).
  const { score, groups } = byScore;
  const scored = byScore.capped.length ? `${score} (${byScore.capped.join(', ')})` : `${score}`;
  const forced = ledger.forced;

  if (forced) {
    const blocking = symbols.filter((s) => policy.notOverridable.has(s.name));
    if (forced.action === 'accept' && blocking.length) {
      const reason = `${forced.source} would allow this message (${forced.reason}), but ${blocking
        .map((s) => s.name)
        .join(', ')} cannot be overridden; score ${scored} gives ${byScore.action}`;
      return { action: byScore.action, score, symbols, ref, reason, groups, forced };
    }
    const reason = `${forced.action} forced by ${forced.source}: ${forced.reason} (score ${scored} would give ${byScore.action})`;
    return { action: forced.action, score, symbols, ref, reason, groups, forced };
  }

  const { action, thresholds } = byScore;
  const reason =
    action === 'accept'
      ? `score ${scored} is below the add_header threshold ${thresholds.add_header}`
      : `score ${scored} reached the ${action} threshold ${thresholds[action]}`;
  return { action, score, symbols, ref, reason, groups };
}

/**
 * The symbols a reply names: the strongest that raised the score, then the
 * strongest that lowered it, so that up to six and two of each, what is
 * listed adds up to the score that decided (a reply listing only the raising
 * ones would show more than it); beyond that, `+N more` (hidden).
 */
function replySymbols(symbols: ScoredSymbol[]): { items: string[]; hidden: number } {
  const raising = symbols.filter((s) => s.score > 0);
  const lowering = symbols.filter((s) => s.score < 0);
  const shown = [...raising.slice(0, 6), ...lowering.slice(0, 2)];
  return { items: shown.map((s) => `${s.name} ${s.score}`), hidden: raising.length + lowering.length - shown.length };
}

/**
 * Most octets of reply text mailward hands the MTA, enhanced status code
 * included (everything after "550 "). RFC 5321 4.5.3.1.5: a reply line is at
 * most 512 octets with its code and CRLF, so 506 are left; Haraka may put
 * "[<transaction uuid>@<host>] " in front of a refusal (`[uuid] deny_chars`
 * in connection.ini), up to about 105 more. A longer line is cut by clients,
 * and the ref at its end with it.
 */
export const REPLY_TEXT_MAX = 400;

const octets = (text: string) => Buffer.byteLength(text, 'utf8');

/** The longest start of `text` of at most `max` octets (whole characters). */
function cutToOctets(text: string, max: number): string {
  if (octets(text) <= max) return text;
  let out = '';
  let used = 0;
  for (const ch of text) {
    used += octets(ch);
    if (used > max) break;
    out += ch;
  }
  return out;
}

export interface FitOptions {
  /** Octets the whole text may take (default REPLY_TEXT_MAX). */
  max?: number;
  /** How the items left out are counted (default "... and N more"). */
  more?: (n: number) => string;
  /** Items already left out by the caller, counted with those this leaves out. */
  hidden?: number;
}

/**
 * The one way mailward builds SMTP reply text: `head`, the items joined by
 * ", ", then `tail`, in at most `max` octets. The tail (which carries the ref)
 * is always kept whole; items that do not fit are left out from the end and
 * counted ("... and N more"); when not even the first fits, the text is cut
 * and ends in "...". Line breaks become spaces (Haraka would make each its own
 * reply line). The full text belongs in the tracking row and `mailward explain`.
 */
export function fitReply(head: string, items: string[], tail: string, options: FitOptions = {}): string {
  const max = options.max ?? REPLY_TEXT_MAX;
  const more = options.more ?? ((n: number) => `... and ${n} more`);
  const hidden = options.hidden ?? 0;
  const oneLine = (text: string) => text.replace(/[\r\n]+/g, ' ');
  head = oneLine(head);
  tail = oneLine(tail);
  const list = items.map(oneLine).filter((item) => item !== '');
  const room = max - octets(head) - octets(tail);
  // Octets of the first k items joined.
  const joined: number[] = [0];
  for (const [i, item] of list.entries()) joined.push(joined[i]! + octets(item) + (i ? 2 : 0));
  for (let k = list.length; k >= (list.length ? 1 : 0); k--) {
    const left = list.length - k + hidden;
    const suffix = left ? `${k ? ', ' : ''}${more(left)}` : '';
    if (joined[k]! + octets(suffix) <= room) return `${head}${list.slice(0, k).join(', ')}${suffix}${tail}`;
  }
  return `${cutToOctets(`${head}${list.join(', ')}`, Math.max(0, max - octets(tail) - 3))}...${tail}`;
}

const HELD_REPLY = 'Message accepted and held for review';

/**
 * The ref in a reply that says the message was held (a 250: accepted, not
 * delivered), or null: how a quarantine release learns that the MTA held
 * the released copy again instead of delivering it.
 */
export function heldRefOfReply(reply: string): string | null {
  const at = reply.indexOf(`${HELD_REPLY} (ref `);
  if (at < 0) return null;
  return /^[0-9A-Z]+/.exec(reply.slice(at + HELD_REPLY.length + 6))?.[0] ?? null;
}

const ACTION_REPLY: Record<Verdict['action'], string> = {
  reject: 'Message rejected as spam',
  soft_reject: 'Message deferred, try again later',
  quarantine: HELD_REPLY,
  add_header: 'Message accepted',
  accept: 'Message accepted',
};

/**
 * The SMTP reply text for a verdict that refuses or holds mail, at most
 * REPLY_TEXT_MAX octets with the enhanced status code ("5.7.1 ") the caller
 * puts in front: long symbol or rule names are left out ("+N more"), the ref
 * never is.
 */
export function smtpReplyText(verdict: Verdict): string {
  const { items, hidden } =
    verdict.forced && verdict.forced.action === verdict.action ? { items: [verdict.forced.source], hidden: 0 } : replySymbols(verdict.symbols);
  const head = `${ACTION_REPLY[verdict.action]} (ref ${verdict.ref}${items.some((i) => i !== '') ? ': ' : ''}`;
  return fitReply(head, items, ')', { hidden, more: (n) => `+${n} more`, max: REPLY_TEXT_MAX - '5.7.1 '.length });
}
