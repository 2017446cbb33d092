import { firstHeader, type MessageContext } from '../message';
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
