import { heldAuth, isQuarantineFull, openQuarantine, type FileQuarantine } from '../../lib/quarantine';
import type { Runtime } from '../../lib/runtime';
import { firstHeader, withFieldsWritten } from '../../lib/message';
import type { Verdict } from '../../lib/score/types';
import { fitReply, formatSymbols, smtpReplyText } from '../../lib/score/verdict';
import { hook, prependHeaderFields, runModulePhase, VERDICT_PRIORITY } from '../shared/adapter';
import { addressOf, DENY, DENYSOFT, DSN, OK, removeHeaderFields, type HarakaPlugin } from '../shared/haraka';
import { runtimeFor } from '../shared/runtime';
import { existingTransactionState, type MailwardState } from '../shared/state';

// The only mailward plugin that refuses mail. Its hooks run right after the
// checks (which run at CHECK_PRIORITY) and before the operator's own plugins:
// a recipient plugin's OK would end the rcpt hooks before a later refusal.
const LATE = VERDICT_PRIORITY;

/** One quarantine per configuration: its index (SQLite, or PostgreSQL for a fleet) is opened once. */
const quarantines = new WeakMap<Runtime, FileQuarantine>();
function quarantineFor(runtime: Runtime): FileQuarantine {
  let store = quarantines.get(runtime);
  if (!store) {
    store = openQuarantine(runtime.config.shared, runtime.services.log);
    quarantines.set(runtime, store);
  }
  return store;
}

const VERDICT_HEADERS = ['X-Mailward-Score', 'X-Mailward-Status', 'X-Mailward-Ref'];
const AUTH_RESULTS = 'Authentication-Results';

/**
 * Our X-Mailward-* fields are written on one line each, as filters read them:
 * the status is cut to 900 characters, all ASCII (action, numbers, ref and
 * UPPER_SNAKE symbol names), so its line stays below 998 octets
 * (HEADER_LINE_HARD); the tracking row keeps the full list.
 */
function statusHeader(verdict: Verdict): string {
  const text = `${verdict.action} score=${verdict.score} ref=${verdict.ref} symbols=${formatSymbols(verdict.symbols)}`;
  return text.length > 900 ? `${text.slice(0, 880)} ...` : text;
}

function verdictHeaders(verdict: Verdict): [string, string][] {
  return [
    ['X-Mailward-Score', String(verdict.score)],
    ['X-Mailward-Status', statusHeader(verdict)],
    ['X-Mailward-Ref', verdict.ref],
  ];
}

/**
 * The message as it would have been delivered: without the headers mailward
 * removes (a sender's forged X-Mailward-* and Authentication-Results), with
 * the ones it added on top and those of the sender's it put back at the end
 * of the header block, in the same order and written the same way
 * (applyHeaderChanges), so a released copy explains itself. When Haraka holds
 * authentication results of its own, its Authentication-Results (and ours
 * beside it under another authserv-id) stand above all of those, and no other
 * field of the name is left, as Haraka writes the delivered copy
 * (auth-results.ts).
 */
function heldCopy(state: MailwardState, taggedSubject: string | undefined): Buffer {
  const authOnTop = state.authResultsOnTop;
  const replaced = authOnTop ? [AUTH_RESULTS] : [];
  const kept = ([name]: [string, string]) => !replaced.some((r) => r.toLowerCase() === name.toLowerCase());
  const removed = [...state.ctx.headerChanges.remove, ...VERDICT_HEADERS, ...(taggedSubject !== undefined ? ['Subject'] : []), ...replaced];
  return withFieldsWritten(state.ctx.raw ?? Buffer.alloc(0), removed, [...(authOnTop ?? []), ...state.addedOnTop.filter(kept)], state.putBack.filter(kept));
}

/**
 * A refusal whose reason may be long (a rule's conditions, a check's finding):
 * the reply is cut to one SMTP line with the ref kept (fitReply), the whole
 * text kept for the tracking row.
 */
function refusalReply(code: 550 | 451, head: string, reason: string, ref: string): DSN {
  const status = code === 550 ? '5.7.1' : '4.7.1';
  const tail = ` (ref ${ref})`;
  return new DSN(code, fitReply(`${status} ${head}`, reason.split(', '), tail), `${status} ${head}${reason}${tail}`);
}

/**
 * What a quarantine verdict gets when its message cannot be held: a
 * temporary refusal (452: the sender retries, nothing is lost) when the
 * quarantine or its disk is full and `[quarantine] when_full = defer`;
 * otherwise delivery with its verdict headers. Never a permanent refusal. A
 * message larger than the whole bound is delivered whatever when_full says: it
 * could never be held, and deferring it would only have its sender retry for
 * days and then bounce it.
 */
function notHeld(plugin: HarakaPlugin, connection: unknown, state: MailwardState, runtime: Runtime, err: unknown): { code: number; message: DSN } | undefined {
  const ref = state.ctx.ref;
  const why = (err as Error).message;
  if (isQuarantineFull(err) && err.reason !== 'too_large' && runtime.config.shared.quarantine.whenFull === 'defer') {
    state.notHeld = { action: 'soft_reject', reason: `deferred (452), not held: ${why}` };
    plugin.logwarn(`mailward: quarantine cannot hold ref ${ref}, deferred (452, [quarantine] when_full = defer): ${why}`, connection);
    return { code: DENYSOFT, message: new DSN(452, `4.3.1 Insufficient storage for quarantine (ref ${ref})`) };
  }
  state.notHeld = { action: 'add_header', reason: `delivered with its verdict headers, not held: ${why}` };
  // Never lose mail: if it cannot be held, it is delivered with its verdict headers.
  const policy = isQuarantineFull(err) ? (err.reason === 'too_large' ? 'larger than the whole bound' : '[quarantine] when_full = deliver') : 'the store failed';
  plugin.logerror(`mailward: quarantine cannot hold ref ${ref}, delivering it instead (${policy}): ${why}`, connection);
  return undefined;
}

function forcedRefusal(state: MailwardState): { code: number; message: DSN } | undefined {
  const forced = state.ledger.forced;
  if (!forced || (forced.action !== 'reject' && forced.action !== 'soft_reject')) return undefined;
  const head = `Message refused by ${forced.source}: `;
  return forced.action === 'reject'
    ? { code: DENY, message: refusalReply(550, head, forced.reason, state.ctx.ref) }
    : { code: DENYSOFT, message: refusalReply(451, head, forced.reason, state.ctx.ref) };
}

export = {
  register(this: HarakaPlugin) {
    const runtime = runtimeFor(this);
    // The quarantine's byte count, taken now (a directory walk) rather than by the first held message.
    void quarantineFor(runtime)
      .startUsage()
      .catch((err: Error) => this.logwarn(`mailward: counting the quarantine failed: ${err.message}`));
    this.register_hook('mail', 'verdict_mail', LATE);
    this.register_hook('rcpt', 'verdict_rcpt', LATE);
    this.register_hook('data_post', 'verdict_data_post', LATE);
    // Before any queue plugin: a quarantined message is kept by us, not delivered.
    this.register_hook('queue', 'verdict_queue', -100);
    this.register_hook('queue_outbound', 'verdict_queue', -100);
  },

  /** Envelope rules (block lists) may already have decided. */
  verdict_mail: hook(async function (connection) {
    const state = existingTransactionState(connection.transaction);
    const refusal = state && forcedRefusal(state);
    if (refusal && state) state.outcome = { action: refusal.code === DENY ? 'reject' : 'soft_reject', phase: 'mail', reason: refusal.message.full ?? refusal.message.reply };
    return refusal;
  }),

  /** Recipients a check refused (spamtraps), and envelope-level forced refusals. */
  verdict_rcpt: hook(async function (connection, params) {
    const state = existingTransactionState(connection.transaction);
    if (!state) return;
    const refusal = forcedRefusal(state);
    if (refusal) return refusal;
    const address: string | undefined = addressOf(params[0]);
    const reason = address ? state.ledger.refusal(address) : undefined;
    if (reason) return { code: DENY, message: refusalReply(550, 'Recipient refused: ', reason, state.ctx.ref) };
  }),

  verdict_data_post: hook(async function (connection) {
    const txn = connection.transaction;
    if (!txn) return;
    const runtime = runtimeFor(this);
    // Built-in checks (GTUBE, parse errors) also load the message into the context.
    const state = await runModulePhase(this, runtime, 'builtin', 'data', connection, []);
    const verdict = runtime.decide(state.ctx, state.ledger);
    state.verdict = verdict;
    txn.results.add(this, { action: verdict.action, score: verdict.score, ref: verdict.ref, reason: verdict.reason });
    void runtime.afterVerdict(state.ctx, verdict);

    const headers = runtime.config.shared.headers;
    // A sender's copies go whether or not ours are added: downstream filters may read them.
    removeHeaderFields(txn, VERDICT_HEADERS);
    const taggedSubject =
      headers.subjectTag && (verdict.action === 'add_header' || verdict.action === 'quarantine')
        ? `${headers.subjectTag} ${firstHeader(state.ctx, 'subject') ?? ''}`.trim()
        : undefined;
    // The Subject as read is unfolded: a long one, folded by its sender, is folded again (prependHeaderFields).
    if (taggedSubject !== undefined) removeHeaderFields(txn, ['Subject']);
    // Ours on top, the tagged Subject just below them.
    prependHeaderFields(state, txn, [
      ...(verdict.action !== 'accept' || headers.always ? verdictHeaders(verdict) : []),
      ...(taggedSubject !== undefined ? [['Subject', taggedSubject] as [string, string]] : []),
    ]);
    this.loginfo(`mailward ${verdict.action} score=${verdict.score} ref=${verdict.ref}: ${verdict.reason}`, connection);

    switch (verdict.action) {
      case 'reject':
        return { code: DENY, message: new DSN(550, `5.7.1 ${smtpReplyText(verdict)}`) };
      case 'soft_reject':
        return { code: DENYSOFT, message: new DSN(451, `4.7.1 ${smtpReplyText(verdict)}`) };
      case 'quarantine':
        try {
          await quarantineFor(runtime).put(
            {
              ref: verdict.ref,
              time: new Date(state.ctx.startedAt).toISOString(),
              mailFrom: state.ctx.mailFrom ?? '',
              rcptTo: state.ctx.rcptTo,
              subject: firstHeader(state.ctx, 'subject') ?? '',
              remoteIp: state.ctx.ip,
              score: verdict.score,
              reason: verdict.reason,
              symbols: verdict.symbols,
              auth: heldAuth(state.ctx),
            },
            heldCopy(state, taggedSubject),
          );
          state.quarantined = true;
        } catch (err) {
          return notHeld(this, connection, state, runtime, err);
        }
        return;
      default:
        return;
    }
  }),

  verdict_queue: hook(async function (connection) {
    const state = existingTransactionState(connection.transaction);
    if (state?.quarantined && state.verdict) return { code: OK, message: smtpReplyText(state.verdict) };
  }),
};
