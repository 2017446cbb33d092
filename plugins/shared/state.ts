import { createContext, type MessageContext } from '../../lib/message';
import type { Ledger } from '../../lib/score/ledger';
import type { Verdict } from '../../lib/score/types';
import type { Runtime } from '../../lib/runtime';
import { addressOf, type HarakaConnection, type HarakaTransaction } from './haraka';

/** How a transaction (or a connection without one) ended before or instead of a verdict. */
export interface Outcome {
  action: string;
  phase: string;
  reason: string;
}

/** What mailward keeps per connection (connect/helo symbols) and per transaction. */
export interface MailwardState {
  ctx: MessageContext;
  ledger: Ledger;
  /** Raw message, fetched once at data_post for every plugin. */
  data?: Promise<Buffer>;
  /** Header additions and removals already applied to the transaction. */
  appliedHeaders: number;
  appliedRemovals: number;
  /** Of headerChanges.putBack, how many were applied (absent: none). */
  appliedPutBack?: number;
  /** The fields mailward put on top of the header (prependHeaderFields), top first, as written: the held copy has the same. */
  addedOnTop: [name: string, written: string][];
  /** The sender's fields a check removed by name and put back, at the end of the header (see applyHeaderChanges), as written. */
  putBack: [name: string, written: string][];
  verdict?: Verdict;
  outcome?: Outcome;
  /** Recipients refused at RCPT by any plugin, with the reason. */
  refusedRecipients: { address: string; reason: string }[];
  quarantined?: boolean;
  /**
   * A quarantine verdict whose message could not be held (the quarantine full,
   * the disk full, the store failing): what was done instead, for the tracking
   * row (soft_reject: deferred with 452; add_header: delivered with its verdict headers).
   */
  notHeld?: { action: 'soft_reject' | 'add_header'; reason: string };
  /**
   * When Haraka holds authentication results of its own (auth-results.ts): the
   * Authentication-Results fields as they stand on top of the delivered copy,
   * above every field mailward added (Haraka writes its field there after the
   * data_post hooks, having removed every other of the name; with another
   * authserv-id ours goes above it at queue time). The held copy writes them
   * first, and no other field of the name.
   */
  authResultsOnTop?: [name: string, written: string][];
  /** The auth check's Authentication-Results entries were handed to Haraka's own field (see auth-results.ts). */
  authResultsShared?: boolean;
  tracked?: boolean;
}

const KEY = 'mailward';

export function connectionState(runtime: Runtime, connection: HarakaConnection): MailwardState {
  let state = connection.notes[KEY] as MailwardState | undefined;
  if (!state) {
    const host = connection.remote.host;
    const ctx = createContext({
      ip: connection.remote.ip,
      // Haraka's own rDNS leaves markers rather than names when it fails.
      ptr: host && !['NXDOMAIN', 'DNSERROR', 'Unknown'].includes(host) ? host : undefined,
      helo: connection.hello.host ?? '',
      localHostname: connection.local.host ?? 'localhost',
      relaying: connection.relaying,
      authUser: connection.notes.auth_user,
    });
    state = { ctx, ledger: runtime.newLedger(), appliedHeaders: 0, appliedRemovals: 0, addedOnTop: [], putBack: [], refusedRecipients: [] };
    connection.notes[KEY] = state;
  }
  state.ctx.helo = connection.hello.host ?? state.ctx.helo;
  state.ctx.relaying = connection.relaying;
  state.ctx.authUser = connection.notes.auth_user ?? state.ctx.authUser;
  return state;
}

/**
 * The transaction's state, created on first use in the transaction: a fresh
 * context and ref that start from what the connection already established
 * (ip, PTR, HELO, and the connect/helo symbols).
 */
export function transactionState(runtime: Runtime, connection: HarakaConnection, txn: HarakaTransaction): MailwardState {
  let state = txn.notes[KEY] as MailwardState | undefined;
  const conn = connectionState(runtime, connection);
  if (!state) {
    const ctx = createContext({
      ip: conn.ctx.ip,
      ptr: conn.ctx.ptr,
      helo: conn.ctx.helo,
      localHostname: conn.ctx.localHostname,
      relaying: connection.relaying,
      authUser: connection.notes.auth_user,
      queueId: txn.uuid,
    });
    Object.assign(ctx.notes, conn.ctx.notes);
    const ledger = runtime.newLedger();
    for (const s of conn.ledger.symbols) ledger.add({ name: s.name, detail: s.detail, factor: factorOf(runtime, s.name, s.score) });
    state = { ctx, ledger, appliedHeaders: 0, appliedRemovals: 0, addedOnTop: [], putBack: [], refusedRecipients: [] };
    txn.notes[KEY] = state;
  }
  const ctx = state.ctx;
  ctx.ptr = ctx.ptr ?? conn.ctx.ptr;
  ctx.relaying = connection.relaying;
  ctx.authUser = connection.notes.auth_user ?? ctx.authUser;
  if (txn.mail_from) ctx.mailFrom = txn.mail_from.isNull() ? '' : (addressOf(txn.mail_from) ?? '');
  return state;
}

/** Keeps a carried-over symbol's exact score when its weight is non-zero. */
function factorOf(runtime: Runtime, name: string, score: number): number {
  const weight = runtime.config.symbols.get(name).score;
  return weight === 0 ? 1 : score / weight;
}

export function existingTransactionState(txn: HarakaTransaction | null): MailwardState | undefined {
  return txn ? (txn.notes[KEY] as MailwardState | undefined) : undefined;
}

export function existingConnectionState(connection: HarakaConnection): MailwardState | undefined {
  return connection.notes[KEY] as MailwardState | undefined;
}
