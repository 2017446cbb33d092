import { LRUCache } from 'lru-cache';
import type { DnsResolver } from '../../dns/resolver';
import { headerBlockCut, headerValues, type MessageContext } from '../../message';
import type { Ledger } from '../../score/ledger';
import type { Hit } from '../../score/types';
import type { Logger } from '../types';
import { authView } from './auth-view';
import { addressDomain } from './match';
import {
  allowHolds,
  describeScope,
  identityOf,
  isOwnDomain,
  parseEntry,
  scopesOf,
  type ListEntry,
  type ListKind,
  type ScopedEntry,
} from './lists';
import { lookupKeys, staticCandidates } from './list-index';
import type { SenderListStore } from './list-store';
import { MessageView } from './message-view';
import { describeDecision, LEVEL_ORDER, ruleMatches, ruleOutcome, type Decision, type Rule } from './ruleset';
import type { RulesSettings } from './settings';

const DECISION_SYMBOL: Record<Decision, string> = { accept: 'RULE_ALLOW', reject: 'RULE_BLOCK', quarantine: 'RULE_QUARANTINE' };

/** The checks (or modules) a rule asked to skip, as the runtime reads them. */
export function skipSet(ctx: MessageContext): Set<string> {
  let set = ctx.notes.skipChecks as Set<string> | undefined;
  if (!(set instanceof Set)) {
    set = new Set<string>();
    ctx.notes.skipChecks = set;
  }
  return set;
}

function conditionWords(rule: Rule): string {
  return rule.conditions.map((c) => c.text).join(' and ');
}

/**
 * MAIL and RCPT: rules that can be decided from the envelope alone, in file
 * order. A block decided here refuses at once (the whole transaction, or just
 * this recipient when the rule names recipients); skips of rules that name no
 * recipient are recorded so the skipped checks never run. The walk stops at the first deciding rule that
 * matches, or that cannot be decided yet: a later rule must not pre-empt it.
 */
export async function evaluateEnvelope(rules: Rule[], ctx: MessageContext, ledger: Ledger, dns: DnsResolver, phase: 'mail' | 'rcpt', recipient?: string): Promise<Hit[]> {
  const view = new MessageView(ctx, phase, dns, recipient);
  const hits: Hit[] = [];
  for (const rule of rules) {
    const decidable = LEVEL_ORDER[rule.level] <= LEVEL_ORDER[phase];
    if (!decidable) {
      if (rule.decision) break;
      continue;
    }
    if (!(await ruleMatches(rule, view))) continue;
    // The skip set is the whole transaction's: a rule that matched one recipient
    // must not switch checks off for the others. Those skips wait for DATA, where
    // every recipient must match.
    if (rule.skip.length && rule.level !== 'rcpt') for (const name of rule.skip) skipSet(ctx).add(name);
    if (!rule.decision) continue;
    if (rule.decision === 'reject') {
      const reason = rule.reason || conditionWords(rule);
      hits.push({ name: 'RULE_BLOCK', detail: `rule ${rule.name} (line ${rule.line}): ${reason}` });
      if (phase === 'rcpt' && recipient && rule.level === 'rcpt') ledger.refuseRecipient(recipient, `rule ${rule.name}: ${reason}`);
      else ledger.force({ action: 'reject', source: `rule ${rule.name}`, reason });
    }
    break;
  }
  return hits;
}

export interface DataContext {
  settings: RulesSettings;
  /** Run-time entries; undefined when the store could not be opened. */
  store: () => Promise<SenderListStore | undefined>;
  log: Logger;
  /** For ptr conditions (forward-confirmed reverse DNS). */
  dns: DnsResolver;
}

/**
 * DATA: every rule in order (score and skip actions of matching rules apply;
 * the first matching rule with allow, block or quarantine decides), then for
 * inbound mail the allowed-sender lists and then the blocked-sender lists.
 */
export async function evaluateData(ctx: MessageContext, ledger: Ledger, dc: DataContext): Promise<Hit[]> {
  const hits: Hit[] = [];
  const view = new MessageView(ctx, 'data', dc.dns);
  let score = 0;
  const scoreDetails: string[] = [];
  const skips: { rule: Rule; names: string[] }[] = [];
  let decided: Rule | undefined;
  for (const rule of dc.settings.rules) {
    const result = await ruleOutcome(rule, view);
    if (result.outcome === 'undecided') {
      // Neither applied nor silently passed over: a DNS failure must not block mail, and the operator should see why the rule did nothing.
      hits.push({ name: 'RULE_UNDECIDED', detail: `rule ${rule.name} (line ${rule.line}) not applied: "${result.condition.text}" could not be decided (a DNS look-up behind it failed)` });
      continue;
    }
    if (result.outcome === 'no match') continue;
    if (rule.score) {
      score += rule.score;
      scoreDetails.push(`rule ${rule.name} ${rule.score > 0 ? '+' : ''}${rule.score}`);
    }
    if (rule.skip.length) skips.push({ rule, names: rule.skip });
    if (rule.decision) {
      decided = rule;
      break;
    }
  }
  if (score) hits.push({ name: 'RULE_SCORE', factor: score, detail: scoreDetails.join('; ') });
  for (const { rule, names } of skips) hits.push(applySkip(ctx, ledger, rule, names));

  if (decided) {
    const reason = decided.reason || conditionWords(decided);
    hits.push({ name: DECISION_SYMBOL[decided.decision!], detail: `rule ${decided.name} (line ${decided.line}): ${reason}` });
    ledger.force({ action: decided.decision!, source: `rule ${decided.name}`, reason });
    return hits;
  }
  if (ctx.relaying) return hits;
  hits.push(...(await evaluateLists(ctx, view, ledger, dc)));
  return hits;
}

/** Records the skip for checks still to run, and removes what the skipped ones already added. */
function applySkip(ctx: MessageContext, ledger: Ledger, rule: Rule, names: string[]): Hit {
  const removed: string[] = [];
  const skip = skipSet(ctx);
  for (const name of names) {
    skip.add(name);
    for (const s of ledger.symbols) {
      if (s.name === name || s.group === name) {
        ledger.remove(s.name);
        removed.push(`${s.name} ${s.score}`);
      }
    }
  }
  const what = removed.length ? `removed ${removed.join(', ')}` : 'nothing had fired yet';
  return { name: 'RULE_SKIP', detail: `rule ${rule.name} skipped ${names.join(', ')}: ${what}` };
}

interface ListMatch {
  scope: string;
  entry: ListEntry;
}

/**
 * Run-time entries as parsed, by kind and text: the entries without a key
 * (globs) are read for every message, and would otherwise be parsed again for
 * each one. Entries are never changed once parsed.
 */
const parsedEntries = new LRUCache<string, ListEntry>({ max: 50_000 });

function parsedEntry(kind: ListKind, text: string): ListEntry {
  const key = `${kind}\0${text}`;
  let entry = parsedEntries.get(key);
  if (!entry) {
    entry = parseEntry(kind, text);
    parsedEntries.set(key, entry);
  }
  return entry;
}

/**
 * The entries of these recipients' scopes that match one of `addresses`, ini
 * entries first (file order), then run-time ones (store order): the order the
 * lists were walked in when they were read whole. Exact entries are looked up
 * by key (list-index.ts); only the others are matched one by one.
 */
async function entriesFor(kind: ListKind, recipients: string[], addresses: string[], dc: DataContext, problems: string[]): Promise<ScopedEntry[]> {
  const scopes: string[] = [...new Set(recipients.flatMap(scopesOf))];
  const keys = lookupKeys(addresses);
  const matchesOne = (e: ScopedEntry) => addresses.some((a) => e.entry.pattern.matches(a));
  const out = staticCandidates(dc.settings.staticLists[kind], scopes, keys).filter(matchesOne);
  let store: SenderListStore | undefined;
  try {
    store = await dc.store();
  } catch (err) {
    problems.push(`run-time lists unavailable: ${(err as Error).message}`);
  }
  if (!store) return out;
  try {
    for (const row of await store.entries(kind, scopes, keys)) {
      try {
        const scoped = { scope: row.scope, entry: parsedEntry(kind, row.entry) };
        if (matchesOne(scoped)) out.push(scoped);
      } catch (err) {
        dc.log.warn(`mailward rules: ignoring bad ${kind} entry ${JSON.stringify(row.entry)} for ${describeScope(row.scope)}: ${(err as Error).message}`);
      }
    }
  } catch (err) {
    problems.push(`run-time ${kind} list unavailable: ${(err as Error).message}`);
  }
  return out;
}

function listSource(kind: ListKind, matches: ListMatch[]): string {
  const parts = [...new Set(matches.map((m) => `${describeScope(m.scope)}: ${m.entry.text}`))];
  return `${kind} list (${parts.join('; ')})`;
}

async function evaluateLists(ctx: MessageContext, view: MessageView, ledger: Ledger, dc: DataContext): Promise<Hit[]> {
  const hits: Hit[] = [];
  const recipients = ctx.rcptTo.map((r) => r.toLowerCase());
  const identity = identityOf(view.fromAddresses, ctx.mailFrom, headerValues(ctx, 'from').length, !!ctx.raw && headerBlockCut(ctx.raw));
  if (!recipients.length || !identity) return hits;
  const problems: string[] = [];
  // Only the entries that can match: an allow entry is checked against the one identity, a block entry against every sender address.
  const allowEntries = await entriesFor('allow', recipients, identity.address ? [identity.address] : [], dc, problems);
  const blockEntries = await entriesFor('block', recipients, identity.all, dc, problems);
  if (problems.length) hits.push({ name: 'RULES_LIST_ERROR', detail: problems.join('; ') });

  // Allowed senders: every recipient must allow the sender, or one user's
  // entry would let the message through for everyone on it.
  if (identity.address && allowEntries.length) {
    const auth = authView(ctx);
    const own = dc.settings.localDomains.size ? dc.settings.localDomains : new Set(recipients.map(addressDomain));
    const ownDomain = isOwnDomain(addressDomain(identity.address), own);
    const held: ListMatch[] = [];
    const refused: string[] = [];
    const without: string[] = [];
    for (const r of recipients) {
      const scopes = scopesOf(r);
      const candidates = allowEntries.filter((e) => scopes.includes(e.scope as never) && e.entry.pattern.matches(identity.address));
      let holding: ListMatch | undefined;
      for (const c of candidates) {
        const result = allowHolds(c.entry, identity, ctx.ip, auth, ownDomain, dc.settings.trustedArc);
        if (result.holds) {
          holding = { ...c };
          held.push({ ...c, entry: { ...c.entry, text: `${c.entry.text}, ${result.why}` } });
          break;
        }
        refused.push(`${describeScope(c.scope)}: ${c.entry.text} does not hold: ${result.why}`);
      }
      if (!holding) without.push(r);
    }
    if (refused.length && !held.length) hits.push({ name: 'ALLOWLIST_NOT_HELD', detail: [...new Set(refused)].join('; ') });
    if (held.length && !without.length) {
      const source = listSource('allow', held);
      hits.push({ name: 'ALLOWLIST', detail: `${identity.address}: ${source}` });
      ledger.force({ action: 'accept', source, reason: `sender ${identity.address} is allowed` });
      return hits;
    }
    if (held.length) {
      hits.push({ name: 'ALLOWLIST_NOT_HELD', detail: `${identity.address} is allowed for ${[...new Set(held.map((h) => describeScope(h.scope)))].join(', ')} but not for ${without.join(', ')}` });
    }
  }

  // Blocked senders: any sender address in the message (From: or envelope).
  if (blockEntries.length) {
    const matched: ListMatch[] = [];
    const blockedFor: string[] = [];
    for (const r of recipients) {
      const scopes = scopesOf(r);
      const hit = blockEntries.find((e) => scopes.includes(e.scope as never) && identity.all.some((a) => e.entry.pattern.matches(a)));
      if (hit) {
        matched.push(hit);
        blockedFor.push(r);
      }
    }
    if (matched.length && blockedFor.length === recipients.length) {
      const source = listSource('block', matched);
      hits.push({ name: 'BLOCKLIST', detail: `${identity.all.join(', ')}: ${source}` });
      ledger.force({ action: 'reject', source, reason: `sender ${identity.all.join(', ')} is blocked` });
    } else if (matched.length) {
      hits.push({ name: 'BLOCKLIST', detail: `blocked by ${blockedFor.join(', ')} only (${listSource('block', matched)}); not refused for the other recipients` });
    }
  }
  return hits;
}

export { describeDecision };
