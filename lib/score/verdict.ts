import type { Ledger } from './ledger';
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

/** The thresholds of each recipient domain of a message ([actions] for a domain without its own, or no recipients). */
export function recipientThresholds(policy: ActionPolicy, recipients: string[]): Thresholds[] {
  const domains = [...new Set(recipients.map(domainOf))];
  return (domains.length ? domains : ['']).map((domain) => policy.domains.get(domain) ?? policy.thresholds);
}

/**
 * Thresholds in force for a message. With recipients in several domains the
 * mildest action wins: one domain's strict policy must not refuse mail another
 * domain asked to receive (the refusal at DATA applies to every recipient).
 */
function thresholdAction(score: number, policy: ActionPolicy, recipients: string[]): { action: Action; thresholds: Thresholds } {
  let best: { action: Action; thresholds: Thresholds } | undefined;
  for (const thresholds of recipientThresholds(policy, recipients)) {
    const action = actionForScore(score, thresholds);
    if (!best || severity(action) < severity(best.action)) best = { action, thresholds };
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
  const score = ledger.total;
  const symbols = ledger.symbols;
  const groups = ledger.groups;
  const byScore = thresholdAction(score, policy, recipients);
  const forced = ledger.forced;

  if (forced) {
    const blocking = symbols.filter((s) => policy.notOverridable.has(s.name));
    if (forced.action === 'accept' && blocking.length) {
      const reason = `${forced.source} would allow this message (${forced.reason}), but ${blocking
        .map((s) => s.name)
        .join(', ')} cannot be overridden; score ${score} gives ${byScore.action}`;
      return { action: byScore.action, score, symbols, ref, reason, groups, forced };
    }
    const reason = `${forced.action} forced by ${forced.source}: ${forced.reason} (score ${score} would give ${byScore.action})`;
    return { action: forced.action, score, symbols, ref, reason, groups, forced };
  }

  const { action, thresholds } = byScore;
  const reason =
    action === 'accept'
      ? `score ${score} is below the add_header threshold ${thresholds.add_header}`
      : `score ${score} reached the ${action} threshold ${thresholds[action]}`;
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
