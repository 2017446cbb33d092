import { warnIfLeftBehind } from '../../util/sqlite';
import { openQuarantine } from '../../quarantine';
import { createHash } from 'node:crypto';
import { RELEASE_HEADER, RELEASE_VALIDITY_SECONDS, releaseKey, releaseStampId, verifyRelease } from '../../quarantine/release-token';
import { headerValues, type MessageContext } from '../../message';
import type { Ledger } from '../../score/ledger';
import type { Hit, SymbolDef } from '../../score/types';
import type { Check, CheckModule, Services } from '../types';
import { evaluateData, evaluateEnvelope } from './evaluate';
import { SqliteListStore, StateListStore, type SenderListStore } from './list-store';
import { parseRulesSettings, RULES_FILE, type RulesSettings } from './settings';

export type { RulesSettings } from './settings';
export { parseRules, type Rule } from './ruleset';

const GROUP = 'rules';

export const rulesSymbols: SymbolDef[] = [
  { name: 'RULE_ALLOW', score: 0, group: GROUP, description: 'A filter rule allowed the message (accept whatever the score, except not-overridable symbols)' },
  { name: 'RULE_BLOCK', score: 0, group: GROUP, description: 'A filter rule blocked the message (reject)' },
  { name: 'RULE_QUARANTINE', score: 0, group: GROUP, description: 'A filter rule sent the message to quarantine' },
  { name: 'RULE_SCORE', score: 1, group: GROUP, description: 'Filter rules added to or took from the score ("action score N"; the weight multiplies N)' },
  { name: 'RULE_UNDECIDED', score: 0, group: GROUP, description: 'A filter rule was not applied: one of its conditions (auth, ptr) could not be decided because a DNS look-up failed' },
  { name: 'RULE_SKIP', score: 0, group: GROUP, description: 'A filter rule skipped named checks; the detail lists the symbols removed' },
  { name: 'ALLOWLIST', score: 0, group: GROUP, description: 'The sender is on an allowed-senders list and the entry holds (authenticated, or from a named server)' },
  { name: 'ALLOWLIST_NOT_HELD', score: 0, group: GROUP, description: 'The sender matches an allowed-senders entry that does not hold: not authenticated, our own domain, or not allowed by every recipient' },
  { name: 'BLOCKLIST', score: 0, group: GROUP, description: 'A sender address of the message is on a blocked-senders list' },
  { name: 'RULES_LIST_ERROR', score: 0, group: GROUP, description: 'The run-time allow/block lists could not be read; the ini entries still applied' },
  { name: 'QUARANTINE_RELEASED', score: 0, group: GROUP, description: 'An operator released this message from quarantine (valid release stamp): accepted' },
];

interface Opened {
  store?: Promise<SenderListStore | undefined>;
  purgeTimer?: NodeJS.Timeout;
  firstPurge?: NodeJS.Timeout;
  closers: (() => Promise<void>)[];
}

const opened = new WeakMap<RulesSettings, Opened>();

/** The run-time list store the settings ask for (also used by the CLI). */
export function openListStore(settings: RulesSettings, services: Pick<Services, 'state'>): SenderListStore {
  const useState = settings.listStore === 'state' || (settings.listStore === 'auto' && settings.stateBackend === 'redis');
  return useState ? new StateListStore(services.state) : new SqliteListStore(settings.listSqlitePath);
}

/**
 * A message an operator released from quarantine comes back stamped: accept
 * it (the review is the override), and clear what cannot otherwise be
 * overridden, saying so. A stamp that does not verify, or was used before, is
 * only stripped.
 */
async function checkRelease(ctx: MessageContext, ledger: Ledger, settings: RulesSettings, services: Services): Promise<Hit[]> {
  const values = headerValues(ctx, RELEASE_HEADER);
  if (!values.length) return [];
  ctx.headerChanges.remove.push(RELEASE_HEADER);
  let key: Buffer | null;
  try {
    key = releaseKey(settings.quarantineDir, false);
  } catch (err) {
    // The key unreadable (made by root for another user): the released copy is held again; the log says why and what to run.
    services.log.warn(`mailward rules: ${RELEASE_HEADER} not honoured: ${(err as Error).message}`);
    return [];
  }
  if (!key || !ctx.raw) return [];
  // Every recipient of this transaction must be one the operator released to.
  const result = verifyRelease(key, values[0]!, { mailFrom: ctx.mailFrom ?? '', rcptTo: ctx.rcptTo }, ctx.raw, services.clock());
  if ('error' in result) {
    services.log.warn(`mailward rules: ${RELEASE_HEADER} not honoured: ${result.error}`);
    return [];
  }
  // Single use: a copy of the stamped message replayed within the stamp's
  // lifetime is not accepted again (fleet-wide with Redis state, per MTA
  // process with memory state).
  const stampId = createHash('sha256').update(releaseStampId(values[0]!)).digest('hex').slice(0, 32);
  if ((await services.state.incrBy(`release-used:${stampId}`, 1, RELEASE_VALIDITY_SECONDS)) > 1) {
    services.log.warn(`mailward rules: ${RELEASE_HEADER} not honoured: release stamp for ${result.ref} was already used`);
    return [];
  }
  const cleared: string[] = [];
  for (const name of services.shared.policy.notOverridable) {
    const s = ledger.get(name);
    if (s) {
      cleared.push(`${s.name} ${s.score}`);
      ledger.remove(s.name);
    }
  }
  ledger.force({ action: 'accept', source: `quarantine release of ${result.ref}`, reason: 'an operator reviewed and released it' });
  return [{ name: 'QUARANTINE_RELEASED', detail: `released from quarantine (ref ${result.ref})${cleared.length ? `; cleared ${cleared.join(', ')}` : ''}` }];
}

function startPurge(settings: RulesSettings, services: Services, state: Opened): void {
  if (!settings.purgeIntervalMinutes || !Number.isFinite(settings.purgeIntervalMinutes)) return;
  const run = async () => {
    const q = openQuarantine(services.shared, services.log);
    try {
      const purged = await q.purge(services.clock());
      if (purged.length) services.log.info(`mailward quarantine: purged ${purged.length} message(s) past ${settings.retentionDays} days`);
    } catch (err) {
      services.log.warn(`mailward quarantine purge failed: ${(err as Error).message}`);
    } finally {
      await q.close();
    }
  };
  state.purgeTimer = setInterval(() => void run(), settings.purgeIntervalMinutes * 60_000);
  state.purgeTimer.unref();
  // And soon after start (or at the interval, if sooner): an MTA restarted more often than every interval still purges.
  state.firstPurge = setTimeout(() => void run(), Math.min(60_000 + Math.random() * 60_000, settings.purgeIntervalMinutes * 60_000));
  state.firstPurge.unref();
}

export const rulesModule: CheckModule<RulesSettings> = {
  name: 'rules',
  file: 'mailward.rules.ini',
  extraFiles: [RULES_FILE],
  symbols: rulesSymbols,
  parseSettings(reader, shared, files) {
    return { settings: parseRulesSettings(reader, shared, files) };
  },
  createChecks(settings, services) {
    const state: Opened = { closers: [] };
    opened.set(settings, state);
    // The quarantine's retention is no rule: it holds with the rules switched off too (it did not,
    // and every quarantined message was kept for ever).
    startPurge(settings, services, state);
    if (!settings.enabled) return [];
    for (const warning of settings.warnings) services.log.warn(`mailward rules: ${warning}`);
    // Opened on first use: a deployment without lists never creates the file.
    const store = () => {
      state.store ??= (async () => {
        const s = openListStore(settings, services);
        state.closers.push(() => s.close());
        return s;
      })();
      return state.store;
    };
    if (settings.listStore === 'auto' && settings.stateBackend === 'redis') {
      warnIfLeftBehind(settings.listSqlitePath, 'mailward rules: run-time allow and block lists', '[lists] store', (m) => services.log.warn(m));
    }
    const dc = { settings, store, log: services.log, dns: services.dns };

    // The envelope checks are registered even without envelope rules, so a
    // reload that adds some finds the MAIL and RCPT hooks in place.
    return [
      { name: 'rules.envelope', phase: 'mail', run: (ctx, ledger) => evaluateEnvelope(settings.rules, ctx, ledger, services.dns, 'mail') },
      { name: 'rules.envelope', phase: 'rcpt', run: (ctx, ledger, input) => evaluateEnvelope(settings.rules, ctx, ledger, services.dns, 'rcpt', input.recipient) },
      {
        name: 'rules.filter',
        phase: 'data',
        async run(ctx, ledger) {
          const released = await checkRelease(ctx, ledger, settings, services);
          if (released.length) return released;
          return evaluateData(ctx, ledger, dc);
        },
      },
    ] satisfies Check[];
  },
  async close(settings) {
    const state = opened.get(settings);
    if (!state) return;
    opened.delete(settings);
    if (state.purgeTimer) clearInterval(state.purgeTimer);
    if (state.firstPurge) clearTimeout(state.firstPurge);
    for (const close of state.closers) await close().catch(() => {});
  },
};
