import { ALL_MODULES } from '../../lib/checks';
import type { Phase } from '../../lib/checks/types';
import { setMessage, splitPutBack } from '../../lib/message';
import type { Runtime } from '../../lib/runtime';
import { headerValueToWrite } from '../../lib/util/header';
import { addressOf, removeHeaderFields, type HarakaConnection, type HarakaPlugin, type HarakaTransaction, type Next } from './haraka';
import { takeOutDataDoneField } from './auth-results';
import { runtimeFor } from './runtime';
import { connectionState, type MailwardState, transactionState } from './state';

/** A hook body: resolves to nothing (CONT) or to a reply. */
export type HookResult = void | { code: number; message?: unknown };
export type HookBody = (this: HarakaPlugin, connection: HarakaConnection, params: any[]) => Promise<HookResult>;

/**
 * Turns an async hook body into Haraka's callback style. An async hook that
 * rejects kills Haraka, so every error becomes a logged CONT: mail keeps
 * flowing when a check or a dependency fails.
 */
export function hook(body: HookBody) {
  // Haraka calls hooks as (next, connection, params), params being the hook's array (or nothing).
  return function (this: HarakaPlugin, next: Next, connection: HarakaConnection, params?: unknown): void {
    let result: Promise<HookResult>;
    try {
      result = body.call(this, connection, Array.isArray(params) ? params : params === undefined ? [] : [params]);
    } catch (err) {
      result = Promise.reject(err);
    }
    result.then(
      (reply) => (reply ? next(reply.code, reply.message) : next()),
      (err: unknown) => {
        this.logerror(`mailward ${this.name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`, connection);
        next();
      },
    );
  };
}

/** The raw message, fetched from Haraka once per transaction and attached to the context. */
export async function loadMessage(state: MailwardState, connection: HarakaConnection, txn: HarakaTransaction): Promise<void> {
  if (!state.data) {
    // Haraka's own Authentication-Results (data_done) is not the sender's: see auth-results.ts.
    takeOutDataDoneField(state, connection, txn);
    state.data = new Promise<Buffer>((resolve) => txn.message_stream.get_data(resolve));
  }
  const raw = await state.data;
  if (!state.ctx.raw) setMessage(state.ctx, raw);
}

/** Keeps the context's recipients equal to those Haraka accepted (plus the one being checked). */
function syncRecipients(state: MailwardState, txn: HarakaTransaction, current?: string): void {
  const accepted = txn.rcpt_to.map((r) => addressOf(r)!);
  state.ctx.rcptTo = current && !accepted.includes(current) ? [...accepted, current] : accepted;
}

/**
 * A field's value as mailward writes it: folded to lines of at most 78 octets
 * where white space allows (never over 998), since Haraka writes a value as it
 * is given, on one line however long. Non-ASCII text is encoded first, in words
 * short enough to fold between (Haraka would encode it as one word, folds
 * included), except in Authentication-Results, which is written in ASCII and
 * never encoded (headerValueToWrite). X-Mailward-* fields are left on one line.
 */
export function writtenValue(name: string, value: string): string {
  return headerValueToWrite(name, value);
}

/**
 * Puts mailward's own header fields at the top of the message as delivered,
 * in the order given, above every field there, those of an earlier call too:
 * the latest on top, as trace fields are added (RFC 8601 §5 asks this of
 * Authentication-Results, RFC 7208 §9.1 of Received-SPF). Every field
 * mailward adds goes through here. Appended (txn.add_header), a field could
 * land in the body: Haraka writes a header line that starts with a bare CR as
 * an empty line, where the delivered copy's header block ends, and a field
 * added after it was body to a filter or mail reader (no verdict, no
 * Authentication-Results). Whatever the message holds, the top is in the
 * header block.
 */
export function prependHeaderFields(state: MailwardState, txn: HarakaTransaction, fields: readonly (readonly [string, string])[]): void {
  const written = fields.map(([name, value]): [string, string] => [name, writtenValue(name, value)]);
  // Each add_leading_header goes above the one before: the last first keeps the order given.
  for (const [name, value] of [...written].reverse()) txn.add_leading_header(name, value);
  state.addedOnTop.unshift(...written);
}

/** Applies header edits checks asked for since the last time. */
export function applyHeaderChanges(state: MailwardState, txn: HarakaTransaction): void {
  const { add, remove, putBack } = state.ctx.headerChanges;
  // Both lists are kept whole: the held copy takes the removals out of the message as received, the
  // tracking row reads an added Message-ID.
  const removals = remove.slice(state.appliedRemovals);
  removeHeaderFields(txn, removals);
  state.appliedRemovals = remove.length;
  const added = add.slice(state.appliedHeaders);
  state.appliedHeaders = add.length;
  // The sender's fields put back go at the end, where they always went (txn.add_header; after a bare-CR
  // line that is the body, as before), mailward's own on top (see splitPutBack).
  const { onTop, back } = splitPutBack(added, putBack.slice(state.appliedPutBack ?? 0));
  state.appliedPutBack = putBack.length;
  prependHeaderFields(state, txn, onTop);
  for (const [name, value] of back) {
    const written = writtenValue(name, value);
    txn.add_header(name, written);
    state.putBack.push([name, written]);
  }
}

/** Runs one module's checks of one phase for the connection's current state. */
export async function runModulePhase(
  plugin: HarakaPlugin,
  runtime: Runtime,
  moduleName: string,
  phase: Phase,
  connection: HarakaConnection,
  params: any[],
): Promise<MailwardState> {
  const txn = connection.transaction;
  const early = phase === 'connect' || phase === 'helo';
  const state = early || !txn ? connectionState(runtime, connection) : transactionState(runtime, connection, txn);
  let recipient: string | undefined;
  if (txn && phase === 'rcpt') {
    recipient = addressOf(params[0]);
    syncRecipients(state, txn, recipient);
  }
  if (txn && phase === 'data') {
    syncRecipients(state, txn);
    await loadMessage(state, connection, txn);
  }
  const before = new Set(state.ledger.symbols.map((s) => s.name));
  await runtime.runPhase([moduleName], phase, state.ctx, state.ledger, { recipient });
  if (txn && phase === 'data') applyHeaderChanges(state, txn);
  const added = state.ledger.symbols.filter((s) => !before.has(s.name));
  if (added.length) {
    (txn ?? connection).results.add(plugin, {
      score: added.reduce((sum, s) => sum + s.score, 0),
      symbols: added.map((s) => `${s.name}(${s.score})`),
    });
  }
  return state;
}

/** Checks run from this priority on; the verdict plugin decides just after (VERDICT_PRIORITY). */
export const CHECK_PRIORITY = -20;
export const VERDICT_PRIORITY = -10;

/**
 * The priority of a module's phase hooks: one step per place in the pipeline
 * order (lib/checks ALL_MODULES), so Haraka runs the checks in the order
 * createMailward().scan() does, whatever order config/plugins lists them in.
 * Hooks of one priority run in config/plugins order, and a plugins file with
 * rules above auth would have the allow lists judge mail before it was
 * authenticated.
 */
export function checkPriority(moduleName: string): number {
  const place = ALL_MODULES.findIndex((m) => m.name === moduleName);
  return CHECK_PRIORITY + Math.max(0, place);
}

const HOOK_PHASES: [hook: string, phase: Phase][] = [
  ['connect', 'connect'],
  ['helo', 'helo'],
  ['ehlo', 'helo'],
  ['mail', 'mail'],
  ['rcpt', 'rcpt'],
  ['data_post', 'data'],
];

export interface PluginExtras {
  /** More hooks, registered after the phase hooks: hook name -> body. */
  hooks?: Record<string, HookBody>;
  /** Priorities of some of those hooks (Haraka's default 0 otherwise). */
  hookPriorities?: Record<string, number>;
  /** Runs in the data_post hook after the module's checks and their header changes. */
  afterData?: (state: MailwardState, connection: HarakaConnection) => void;
  /**
   * Priority of the phase hooks (Haraka runs lower first). The default,
   * checkPriority(module) (-20 to -13), runs checks before the operator's own
   * plugins: a recipient plugin's OK (rcpt_to.in_host_list) ends the rcpt
   * hooks, so checks must come first.
   */
  priority?: number;
}

/**
 * A Haraka plugin for one check module: registers a hook for every phase the
 * module has checks in and runs them. Export the result from the plugin's
 * index (Haraka copies a module's enumerable exports onto the plugin object).
 */
export function definePlugin(moduleName: string, extras: PluginExtras = {}): Record<string, unknown> {
  const plugin: Record<string, unknown> = {
    register(this: HarakaPlugin) {
      const runtime = runtimeFor(this);
      const phases = new Set(runtime.phasesOf(moduleName));
      for (const [hookName, phase] of HOOK_PHASES) {
        if (phases.has(phase)) this.register_hook(hookName, `mailward_${hookName}`, extras.priority ?? checkPriority(moduleName));
      }
      for (const hookName of Object.keys(extras.hooks ?? {})) this.register_hook(hookName, `mailward_extra_${hookName}`, extras.hookPriorities?.[hookName]);
    },
  };
  for (const [hookName, phase] of HOOK_PHASES) {
    plugin[`mailward_${hookName}`] = hook(async function (connection, params) {
      const state = await runModulePhase(this, runtimeFor(this), moduleName, phase, connection, params);
      if (phase === 'data' && connection.transaction) extras.afterData?.(state, connection);
    });
  }
  for (const [hookName, body] of Object.entries(extras.hooks ?? {})) plugin[`mailward_extra_${hookName}`] = hook(body);
  return plugin;
}
