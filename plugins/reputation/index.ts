import { recordRecipientOutcome, type ReputationSettings } from '../../lib/checks/reputation';
import { definePlugin } from '../shared/adapter';
import { addressOf, DENY, type HarakaConnection, type HarakaPlugin } from '../shared/haraka';
import { runtimeFor } from '../shared/runtime';
import { existingTransactionState } from '../shared/state';

// Haraka decides whether a recipient exists in other plugins (rcpt_to.*). We
// learn the outcome afterwards: rcpt_ok says "known"; a DENY from a rcpt
// plugin, or a recipient nobody accepted (Haraka's default 550, which runs no
// hook), says "unknown". The latter is noticed at the next RCPT, DATA or
// disconnect, as a recipient still pending.
const PENDING = 'mailward_reputation_pending_rcpt';
const DENY_DISCONNECT = 904;

async function record(plugin: HarakaPlugin, connection: HarakaConnection, known: boolean): Promise<void> {
  const runtime = runtimeFor(plugin);
  const settings = runtime.config.modules.find((m) => m.module.name === 'reputation')?.settings as ReputationSettings | undefined;
  if (!settings || connection.relaying || connection.notes.auth_user) return;
  await recordRecipientOutcome(runtime.services, settings, connection.remote.ip, known);
}

async function settlePending(plugin: HarakaPlugin, connection: HarakaConnection): Promise<void> {
  if (!connection.notes[PENDING]) return;
  delete connection.notes[PENDING];
  await record(plugin, connection, false);
}

/** Refused by mailward itself (a spam trap): that is a trap hit, not an unknown recipient. */
function refusedByUs(connection: HarakaConnection, address: string | undefined): boolean {
  const state = existingTransactionState(connection.transaction);
  return !!address && state?.ledger.refusal(address) !== undefined;
}

export = definePlugin('reputation', {
  hooks: {
    async rcpt(connection, params) {
      await settlePending(this, connection);
      const address = addressOf(params[0]);
      if (address && !refusedByUs(connection, address)) connection.notes[PENDING] = address;
    },
    async rcpt_ok(connection) {
      // Also runs for recipients accepted before our rcpt hook saw them.
      delete connection.notes[PENDING];
      await record(this, connection, true);
    },
    async deny(connection, params) {
      const [code, , , , hookParams, hookName] = params as [number, unknown, string, string, unknown[], string];
      if (hookName !== 'rcpt') return;
      delete connection.notes[PENDING];
      if (code !== DENY && code !== DENY_DISCONNECT) return;
      if (refusedByUs(connection, addressOf(hookParams?.[0]))) return;
      await record(this, connection, false);
    },
    async data(connection) {
      await settlePending(this, connection);
    },
    async disconnect(connection) {
      await settlePending(this, connection);
    },
  },
});
