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
 * ones would show more than it); beyond that, `+N more`.
 */
function replySymbols(symbols: ScoredSymbol[]): string {
  const raising = symbols.filter((s) => s.score > 0);
  const lowering = symbols.filter((s) => s.score < 0);
  const shown = [...raising.slice(0, 6), ...lowering.slice(0, 2)];
  const rest = raising.length + lowering.length - shown.length;
  return [...shown.map((s) => `${s.name} ${s.score}`), ...(rest ? [`+${rest} more`] : [])].join(', ');
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

/** The SMTP reply text for a verdict that refuses or holds mail. */
export function smtpReplyText(verdict: Verdict): string {
  const why = verdict.forced && verdict.forced.action === verdict.action ? `${verdict.forced.source}` : replySymbols(verdict.symbols);
  const detail = `(ref ${verdict.ref}${why ? `: ${why}` : ''})`;
  switch (verdict.action) {
    case 'reject':
      return `Message rejected as spam ${detail}`;
    case 'soft_reject':
      return `Message deferred, try again later ${detail}`;
    case 'quarantine':
      return `${HELD_REPLY} ${detail}`;
    default:
      return `Message accepted ${detail}`;
  }
}
