import { join } from 'node:path';
import type { SharedSettings } from '../config/shared';
import { BLOCK_BYTES, countDirectory, MAKE_ROOM, mb, whileFull, type FileQuarantine, type HeldSummary } from '../quarantine';
import { readSharedTotal, SHARED_USAGE_FILE } from '../quarantine/shared-usage';
import type { CliIO } from './types';

/**
 * `mailward quarantine usage`: how full the quarantine is against its byte
 * bound ([quarantine] max_mb), for an operator whose MTA answers 452
 * "Insufficient storage for quarantine". The bytes are counted now from the
 * files, as the MTA's running total counts them at a scan (countDirectory);
 * the summary line of `list` reads the MTA's shared total instead (see
 * quarantineUsage).
 */
export interface QuarantineUsageReport {
  dir: string;
  /** Bytes of every file in the directory, each rounded up to a 4 KB block. */
  bytes: number;
  /** The bound in bytes; null: no bound (max_mb = 0). */
  maxBytes: number | null;
  /** bytes / maxBytes in percent, one decimal (may pass 100 after max_mb was lowered); null without a bound. */
  percent: number | null;
  whenFull: 'defer' | 'deliver';
  /** Messages held (not released). */
  held: number;
  /** When the oldest held message was held (ISO 8601), and how long ago in seconds; null when none is held. */
  oldest: string | null;
  oldestAgeSeconds: number | null;
  /** No room left for even the smallest message (see SMALLEST_HOLD): the MTA turns messages to be held away. */
  full: boolean;
}

/**
 * The least a held message takes: its file and its record, a block each. With
 * less room than this left, the MTA can hold nothing more.
 */
const SMALLEST_HOLD = 2 * BLOCK_BYTES;

/**
 * `held`: store.held()'s answer when the caller has it already (listWithHeld),
 * else asked here (the index: a count, no record read). `shared`: the bytes
 * are the total the host's processes share in usage.sqlite, the figure the MTA
 * bounds by, when there is a bound and that file holds a count (the summary of
 * `list`: a walk of 40,000 files took 0.8 s); else, and always for `usage`,
 * counted now from the files.
 */
export async function quarantineUsage(store: FileQuarantine, settings: SharedSettings['quarantine'], now: number, held?: HeldSummary, shared = false): Promise<QuarantineUsageReport> {
  // Held first: it opens the index (and syncs it), whose files are counted too, as the MTA's open index is.
  const { count, oldest } = held ?? (await store.held());
  const bytes = (shared && settings.maxBytes ? readSharedTotal(join(settings.dir, SHARED_USAGE_FILE)) : undefined) ?? (await countDirectory(settings.dir));
  const maxBytes = settings.maxBytes || null;
  const oldestTime = oldest === undefined ? NaN : Date.parse(oldest);
  return {
    dir: settings.dir,
    bytes,
    maxBytes,
    percent: maxBytes === null ? null : Math.round((bytes / maxBytes) * 1000) / 10,
    whenFull: settings.whenFull,
    held: count,
    oldest: oldest ?? null,
    oldestAgeSeconds: Number.isNaN(oldestTime) ? null : Math.max(0, Math.floor((now - oldestTime) / 1000)),
    full: maxBytes !== null && bytes + SMALLEST_HOLD > maxBytes,
  };
}

/** 3d 4h, 5h 12m, 7m, 20s: the two largest units. */
export function age(seconds: number): string {
  const units: [string, number][] = [['d', 86_400], ['h', 3_600], ['m', 60], ['s', 1]];
  const parts: string[] = [];
  let left = seconds;
  for (const [unit, size] of units) {
    const n = Math.floor(left / size);
    left -= n * size;
    if (n || (parts.length && parts.length < 2)) parts.push(`${n}${unit}`);
    if (parts.length === 2) break;
  }
  return parts.length ? parts.join(' ') : '0s';
}

/** How much of the bound is used, in a few words: `3.20 MB of 10240 MB used (0.0%)`, or `3.20 MB used (no bound)`. */
function used(r: QuarantineUsageReport): string {
  return r.maxBytes === null ? `${mb(r.bytes)} used (no bound)` : `${mb(r.bytes)} of ${mb(r.maxBytes)} used (${r.percent!.toFixed(1)}%)`;
}

export function printUsage(io: CliIO, r: QuarantineUsageReport): void {
  const field = (label: string, value: string) => io.out(`${`${label}:`.padEnd(11)}${value}`);
  field('directory', r.dir);
  field('used', `${mb(r.bytes)} (${r.bytes} bytes, counted now, each file rounded up to ${BLOCK_BYTES / 1024} KB)`);
  field('bound', r.maxBytes === null ? 'none ([quarantine] max_mb = 0)' : `${mb(r.maxBytes)} ([quarantine] max_mb)`);
  field('percent', r.percent === null ? '-' : `${r.percent.toFixed(1)}%`);
  field('when_full', r.whenFull);
  field('held', `${r.held} message${r.held === 1 ? '' : 's'}`);
  field('oldest', r.oldest === null ? '-' : `${age(r.oldestAgeSeconds!)} ago (${r.oldest})`);
  if (r.full) io.out(`full: ${whileFull(r.whenFull)}. ${MAKE_ROOM}`);
}

/** The last line of `mailward quarantine list`. */
export function usageSummary(r: QuarantineUsageReport): string {
  return `quarantine: ${used(r)}, ${r.held} held${r.full ? ', FULL' : ''} (mailward quarantine usage)`;
}
