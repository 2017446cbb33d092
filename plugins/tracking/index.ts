import { createTrackingWriter } from '../../lib/tracking';
import { KEPT_RECIPIENTS } from '../../lib/score/ledger';
import { recordRecipients, rowForEarlyEnd, rowFromVerdict, type RecipientOutcome } from '../../lib/tracking/row';
import type { TrackingWriter } from '../../lib/tracking/types';
import { hook } from '../shared/adapter';
import { addressOf, DENYSOFT, replyText, type HarakaConnection, type HarakaPlugin } from '../shared/haraka';
import { runtimeFor } from '../shared/runtime';
import { connectionState, existingConnectionState, existingTransactionState, type MailwardState, transactionState } from '../shared/state';

// One row per SMTP transaction, whoever ended it: our verdict, another
// plugin's refusal (seen through Haraka's `deny` hook), Haraka's own default
// refusal of unknown recipients, or a client that went away. Rows are queued
// and written in batches by the writer, never on the mail path.

let writer: ReturnType<typeof createTrackingWriter> | undefined;

/**
 * Rows still in memory when Haraka ends go to the spool, synchronously, and
 * are written by the next start. Haraka exits with process.exit() on SIGINT,
 * and SIGTERM (unless it runs as pid 1) ends it with no exit handlers at all:
 * for that one we save the rows first, then let the signal do what it did.
 */
function saveRowsAtExit(): void {
  process.once('exit', () => writer?.spoolPending());
  if (process.listenerCount('SIGTERM') === 0) {
    process.once('SIGTERM', () => {
      writer?.spoolPending();
      process.kill(process.pid, 'SIGTERM');
    });
  }
}

function writerFor(plugin: HarakaPlugin): TrackingWriter | undefined {
  const runtime = runtimeFor(plugin);
  if (!runtime.config.shared.tracking.enabled) return undefined;
  if (!writer) {
    writer = createTrackingWriter(runtime.config.shared.tracking, runtime.services.log);
    saveRowsAtExit();
  }
  return writer;
}

const ATTEMPTED = 'mailward_attempted_rcpts';
const ATTEMPTED_COUNT = 'mailward_attempted_rcpt_count';
// Recipients are kept per transaction for the row's note (which names only
// NAMED_REFUSED_RECIPIENTS of them) up to KEPT_RECIPIENTS, then counted: Haraka
// sets no limit on RCPT TO, and a client that sent 100,000 kept as many here
// until the transaction ended.

function write(plugin: HarakaPlugin, state: MailwardState, accepted: string[] | undefined, attempted: string[] = [], attemptedCount = attempted.length): void {
  if (state.tracked) return;
  state.tracked = true;
  const out = writerFor(plugin);
  if (!out) return;
  const node = runtimeFor(plugin).config.shared.nodeName;
  // Without a transaction (refused at connect) the row keeps the context's (no) recipients.
  const recipients: RecipientOutcome = { accepted: accepted ?? state.ctx.rcptTo, refused: state.refusedRecipients, attempted, attemptedCount };
  if (state.verdict) {
    const row = rowFromVerdict(state.ctx, state.verdict, node);
    if (state.notHeld) {
      // A quarantine verdict whose message could not be held: what was done instead (deferred, or delivered).
      row.action = state.notHeld.action;
      row.reason = `${state.verdict.reason}; then ${state.notHeld.reason}`;
    }
    if (state.outcome && state.outcome.phase !== 'data' && state.outcome.phase !== 'data_post') {
      // Accepted by us, but refused later (e.g. by the queue): record what the client was told.
      row.action = state.outcome.action;
      row.phase = state.outcome.phase;
      row.reason = `${row.reason}; then ${state.outcome.reason}`;
    }
    if (state.quarantined) row.reason = `${row.reason}; held in quarantine`;
    out.write(recordRecipients(row, recipients));
    return;
  }
  const anyRefused = state.refusedRecipients.length > 0 || attemptedCount > (accepted ?? []).length;
  const outcome = state.outcome ??
    (anyRefused && !(accepted ?? []).length
      ? { action: 'reject', phase: 'rcpt', reason: 'every recipient was refused' }
      : { action: 'abandoned', phase: state.ctx.mailFrom === undefined ? 'connect' : 'rcpt', reason: 'the client ended the transaction before a verdict' });
  const ledger = state.ledger;
  out.write(
    recordRecipients(rowForEarlyEnd(state.ctx, node, { ...outcome, symbols: ledger.symbols, score: ledger.total, groups: ledger.groups }), recipients),
  );
}

export = {
  register(this: HarakaPlugin) {
    writerFor(this);
    // Early, so every transaction has a ref and a start time from its first command.
    this.register_hook('mail', 'tracking_mail', -100);
    this.register_hook('rcpt', 'tracking_rcpt', -100);
    this.register_hook('deny', 'tracking_deny');
    this.register_hook('reset_transaction', 'tracking_reset');
    this.register_hook('disconnect', 'tracking_disconnect');
  },

  tracking_mail: hook(async function (connection) {
    if (connection.transaction) transactionState(runtimeFor(this), connection, connection.transaction);
  }),

  tracking_rcpt: hook(async function (connection, params) {
    const txn = connection.transaction;
    const address: string | undefined = addressOf(params[0]);
    if (!txn || !address) return;
    txn.notes[ATTEMPTED_COUNT] = (txn.notes[ATTEMPTED_COUNT] ?? 0) + 1;
    const attempted: string[] = (txn.notes[ATTEMPTED] ??= []);
    if (attempted.length < KEPT_RECIPIENTS) attempted.push(address);
  }),

  /** Any plugin's refusal: params are [code, message, plugin, function, params, hook]. */
  tracking_deny: hook(async function (connection: HarakaConnection, params) {
    const [code, message, pluginName, , hookParams, hookName] = params as [number, unknown, string, string, any, string];
    const action = code === DENYSOFT || code === 909 ? 'soft_reject' : 'reject';
    const reason = `${replyText(message)} (by ${pluginName})`.trim();
    const runtime = runtimeFor(this);
    const txn = connection.transaction;
    if (hookName === 'rcpt' && txn) {
      const state = transactionState(runtime, connection, txn);
      const address = addressOf(Array.isArray(hookParams) ? hookParams[0] : hookParams);
      if (address && state.refusedRecipients.length < KEPT_RECIPIENTS) state.refusedRecipients.push({ address, reason });
      return;
    }
    const state = txn ? transactionState(runtime, connection, txn) : connectionState(runtime, connection);
    state.outcome = { action, phase: hookName ?? 'unknown', reason };
  }),

  tracking_reset: hook(async function (connection) {
    const txn = connection.transaction;
    const state = existingTransactionState(txn);
    if (txn && state) write(this, state, txn.rcpt_to.map((r) => addressOf(r)!), txn.notes[ATTEMPTED], txn.notes[ATTEMPTED_COUNT]);
  }),

  /** A connection refused before any transaction still gets its row. */
  tracking_disconnect: hook(async function (connection) {
    const state = existingConnectionState(connection);
    if (state?.outcome) write(this, state, undefined);
  }),

  shutdown() {
    void writer?.close();
  },
};
