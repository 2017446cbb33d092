import { firstHeader, type MessageContext } from '../message';
import { KEPT_RECIPIENTS } from '../score/ledger';
import type { Verdict } from '../score/types';
import type { TrackingRow } from './types';

/** The row for a transaction that reached a verdict. */
export function rowFromVerdict(ctx: MessageContext, verdict: Verdict, node: string, now = Date.now()): TrackingRow {
  return {
    ...baseRow(ctx, node, now),
    groups: verdict.groups,
    score: verdict.score,
    action: verdict.action,
    phase: 'data',
    symbols: verdict.symbols,
    reason: verdict.reason,
  };
}

/** The row for a transaction that ended before DATA (refused, or the client went away). */
export function rowForEarlyEnd(
  ctx: MessageContext,
  node: string,
  outcome: { action: string; phase: string; reason: string; symbols?: Verdict['symbols']; score?: number; groups?: Record<string, number> },
  now = Date.now(),
): TrackingRow {
  return {
    ...baseRow(ctx, node, now),
    groups: outcome.groups ?? {},
    score: outcome.score ?? 0,
    action: outcome.action,
    phase: outcome.phase,
    symbols: outcome.symbols ?? [],
    reason: outcome.reason,
  };
}

function baseRow(ctx: MessageContext, node: string, now: number) {
  return {
    ref: ctx.ref,
    time: new Date(ctx.startedAt).toISOString(),
    node,
    queueId: ctx.queueId ?? null,
    // A message without one gets ours (outbound, bounces): the id a later complaint or trace will quote.
    messageId: ctx.raw ? (firstHeader(ctx, 'message-id') ?? ctx.headerChanges.add.find(([name]) => name.toLowerCase() === 'message-id')?.[1] ?? null) : null,
    remoteIp: ctx.ip,
    ptr: ctx.ptr ?? null,
    helo: ctx.helo || null,
    mailFrom: ctx.mailFrom ?? null,
    rcptTo: [...ctx.rcptTo],
    size: ctx.raw ? ctx.raw.length : null,
    parseResult: ctx.raw ? [ctx.parse.ok ? 'ok' : ctx.parse.error, ctx.parse.partial].filter(Boolean).join('; ') : 'no data',
    processingMs: Math.max(0, now - ctx.startedAt),
  };
}

/**
 * A row's size does not grow with what a client sends. A Message-ID folded
 * over 800 lines went into the row whole, and so did every refused recipient
 * of a transaction (3,000 RCPT TO: a reason of 244 KB): rows of megabytes in
 * tracking.sqlite from one connection. One-line fields keep RFC 5322's line
 * length, the reason and each symbol's detail a few KB, the recipients 1,000
 * (their number is then said in the reason).
 */
export const ROW_LIMITS = { field: 998, reason: 4000, detail: 2000, recipients: KEPT_RECIPIENTS } as const;

/** The first `n` UTF-16 units of `text`, one fewer where the cut would split a surrogate pair (PostgreSQL's jsonb refuses half of one). */
function head(text: string, n: number): string {
  return text.slice(0, /[\uD800-\uDBFF]/.test(text[n - 1] ?? '') ? n - 1 : n);
}

/** `text` cut to `max` characters, saying how many were left out. */
function clip(text: string, max: number): string {
  if (text.length <= max) return text;
  const kept = head(text, max - 40);
  return `${kept}… (${text.length - kept.length} more characters)`;
}

function field(text: string | null, max = ROW_LIMITS.field): string | null {
  return text === null || text.length <= max ? text : head(text, max);
}

/** The row within ROW_LIMITS (the same row when it already is). */
export function boundRow(row: TrackingRow): TrackingRow {
  const long = (s: string | null) => s !== null && s.length > ROW_LIMITS.field;
  const oversize =
    [row.node, row.queueId, row.messageId, row.remoteIp, row.ptr, row.helo, row.mailFrom, row.parseResult].some(long) ||
    row.reason.length > ROW_LIMITS.reason ||
    row.rcptTo.length > ROW_LIMITS.recipients ||
    row.rcptTo.some(long) ||
    row.symbols.some((s) => s.detail.length > ROW_LIMITS.detail);
  if (!oversize) return row;
  const recipients = row.rcptTo.length > ROW_LIMITS.recipients ? `; recipients: the first ${ROW_LIMITS.recipients} of ${row.rcptTo.length} recorded` : '';
  return {
    ...row,
    node: field(row.node)!,
    queueId: field(row.queueId),
    messageId: field(row.messageId),
    remoteIp: field(row.remoteIp)!,
    ptr: field(row.ptr),
    helo: field(row.helo),
    mailFrom: field(row.mailFrom),
    parseResult: field(row.parseResult)!,
    rcptTo: row.rcptTo.slice(0, ROW_LIMITS.recipients).map((r) => field(r)!),
    reason: clip(row.reason + recipients, ROW_LIMITS.reason),
    symbols: row.symbols.map((s) => (s.detail.length > ROW_LIMITS.detail ? { ...s, detail: clip(s.detail, ROW_LIMITS.detail) } : s)),
  };
}

/** Refused recipients named in a row's reason; the others are counted. */
export const NAMED_REFUSED_RECIPIENTS = 20;

/**
 * The reason's note on refused recipients: those another plugin refused (with
 * its reason), then those attempted that were not accepted, the first
 * NAMED_REFUSED_RECIPIENTS of them named. `attemptedCount`: every RCPT TO of
 * the transaction, when the caller kept only the first of them.
 */
export function refusedRecipientsNote(
  refused: readonly { address: string; reason: string }[],
  attempted: readonly string[],
  accepted: readonly string[],
  attemptedCount = attempted.length,
): string {
  const taken = new Set(accepted);
  const named = new Set(refused.map((r) => r.address));
  const notAccepted = attempted.filter((a) => !taken.has(a) && !named.has(a)).map((address) => ({ address, reason: 'recipient not accepted' }));
  const all = [...refused, ...notAccepted];
  const total = Math.max(all.length, attemptedCount - accepted.length);
  if (!total) return '';
  const shown = all.slice(0, NAMED_REFUSED_RECIPIENTS).map((r) => `${r.address} (${r.reason})`);
  const more = total - shown.length;
  // A repeated RCPT TO of an accepted address is in the count but has no name of its own here.
  if (!shown.length) return `; ${total} refused recipient(s)`;
  return `; refused recipients: ${shown.join(', ')}${more > 0 ? `, and ${more} more` : ''}`;
}

/** What became of a transaction's recipients, for its row (recordRecipients). */
export interface RecipientOutcome {
  /** Accepted at RCPT: the row's rcpt_to. */
  accepted: readonly string[];
  /** Refused, with the reason (another plugin's, or mailward's own: spam traps, block rules). */
  refused: readonly { address: string; reason: string }[];
  /** The RCPT TO addresses kept (not necessarily all), and how many there were in all. */
  attempted?: readonly string[];
  attemptedCount?: number;
}

/**
 * Records the recipients in `row`: `rcptTo` the accepted ones, the refused
 * ones named (then counted) at the end of `reason`. One place for both front
 * doors, the Haraka tracking plugin and createMailward().scan: before, the
 * library's rows said nothing of the recipients refused at RCPT.
 */
export function recordRecipients(row: TrackingRow, r: RecipientOutcome): TrackingRow {
  const attempted = r.attempted ?? [];
  row.rcptTo = [...r.accepted];
  row.reason += refusedRecipientsNote(r.refused, attempted, r.accepted, r.attemptedCount ?? attempted.length);
  return row;
}
