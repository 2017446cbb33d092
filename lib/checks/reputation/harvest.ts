import type { StateStore } from '../../state/types';
import { normaliseIp } from './net';
import type { ReputationSettings } from './settings';

type HarvestSettings = ReputationSettings['harvest'];

/** Buckets per window: the window slides in steps of a sixth of its length. */
const STEPS = 6;

export interface RecipientRate {
  known: number;
  unknown: number;
}

function key(ip: string): string {
  return `harvest:${normaliseIp(ip)}`;
}

function bucketSeconds(s: HarvestSettings): number {
  return Math.max(1, Math.floor(s.windowSeconds / STEPS));
}

/**
 * Known and unknown recipients per client IP over a sliding window, for
 * directory-harvest detection. Counters live in the state store, so every node
 * of a fleet sees the same rate.
 */
export async function countRecipient(state: StateStore, s: HarvestSettings, ip: string, known: boolean, now: number): Promise<void> {
  const b = bucketSeconds(s);
  const start = Math.floor(now / 1000 / b) * b;
  // The field names the writer's window: nodes whose window_minutes differ share the hash, and
  // only the writer's window says when a bucket is spent for everyone.
  await state.hashIncrBy(key(ip), { [`${start}:${known ? 'k' : 'u'}:${s.windowSeconds}`]: 1 }, s.windowSeconds + b);
}

export async function recipientRate(state: StateStore, s: HarvestSettings, ip: string, now: number): Promise<RecipientRate> {
  const fields = await state.hashGetAll(key(ip));
  const rate: RecipientRate = { known: 0, unknown: 0 };
  const stale: string[] = [];
  for (const [field, value] of Object.entries(fields)) {
    const [start, kind, window] = field.split(':');
    const age = now - Number(start) * 1000;
    // A bucket is dropped once past the window of the node that wrote it (fields without one
    // were written by an older version, presumably configured as this node), never by a node
    // with a shorter window: that one just does not count it.
    if (age >= (window === undefined ? s.windowSeconds : Number(window)) * 1000) {
      stale.push(field);
      continue;
    }
    if (age >= s.windowSeconds * 1000) continue;
    if (kind === 'k') rate.known += Number(value) || 0;
    else if (kind === 'u') rate.unknown += Number(value) || 0;
  }
  if (stale.length) void state.hashDel(key(ip), stale).catch(() => {});
  return rate;
}

export function isHarvest(rate: RecipientRate, s: HarvestSettings): boolean {
  const total = rate.known + rate.unknown;
  return total >= s.minRecipients && rate.unknown / total > s.maxUnknownShare;
}

export async function forgetRecipients(state: StateStore, ip: string): Promise<void> {
  await state.del(key(ip));
}
