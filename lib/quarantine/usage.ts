import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../checks/types';

/**
 * The byte bound of the quarantine (`[quarantine] max_mb`). Retention alone
 * bounds it by age, not size: a flood of quarantined mail filled the disk.
 *
 * Each process keeps a running total per quarantine directory: one scan of the
 * directory at start (or at the first put), then what it writes is added and
 * what it deletes is subtracted, so a put costs no directory walk. Other
 * processes (the CLI's deletes, other nodes sharing the directory) are seen at
 * the next rescan: at every purge, and at most once a minute while the bound is
 * reached. Sizes are rounded up to 4 KB blocks, as a file system stores them
 * (a 300-byte record takes a block), so the total is close to what `du` says.
 */

/** The allocation unit the total rounds each file up to. */
export const BLOCK_BYTES = 4096;
/** While full, the directory is scanned again at most this often (other nodes' deletes). */
export const RESCAN_MS = 60_000;
/** The error saying the quarantine is full is logged at most this often. */
export const FULL_LOG_MS = 60_000;

export function onDisk(bytes: number): number {
  return Math.ceil(bytes / BLOCK_BYTES) * BLOCK_BYTES;
}

/** Files of these sizes on disk, each in whole blocks. */
function onDiskTotal(sizes: readonly number[]): number {
  return sizes.reduce((sum, s) => sum + onDisk(s), 0);
}

/**
 * Why a message could not be held for lack of room: `full`, the bound is
 * reached; `too_large`, the message alone is larger than the bound (it can never
 * be held); `no_space`, the disk or a quota refused the write (ENOSPC, EDQUOT).
 */
export type FullReason = 'full' | 'too_large' | 'no_space';

export class QuarantineFullError extends Error {
  override name = 'QuarantineFullError';
  constructor(
    readonly reason: FullReason,
    message: string,
    /** For no_space: the system's code (ENOSPC, EDQUOT). */
    readonly code?: string,
  ) {
    super(message);
  }
}

/** By name, not instanceof: a caller may hold another copy of this module. */
export function isQuarantineFull(err: unknown): err is QuarantineFullError {
  return err instanceof Error && err.name === 'QuarantineFullError' && typeof (err as QuarantineFullError).reason === 'string';
}

/** What the bound's messages name: the key to raise and what happens meanwhile. */
export interface BoundSettings {
  maxBytes: number;
  whenFull: 'defer' | 'deliver';
}

/** Bytes as MB, two decimals below 10 MB (the log lines, `mailward quarantine usage`). */
export const mb = (bytes: number) => `${(bytes / 1048576).toFixed(bytes < 10 * 1048576 ? 2 : 0)} MB`;

/** The running total of one quarantine directory in this process (see usageFor). */
export class QuarantineUsage {
  private total = 0;
  private scanned = false;
  private scannedAt = -Infinity;
  private scanning?: Promise<void>;
  /** Changes made while a scan runs: the scan's own count may not include them. */
  private duringScan = 0;
  /**
   * Room reserved by puts whose files are still being written. A scan that
   * starts meanwhile may list the directory before they land: it keeps them
   * (counted twice at worst, never missed), or the total forgot them for good.
   */
  private writing = 0;
  private saidFullAt = -Infinity;
  /** Scans done so far (tests). */
  scans = 0;

  constructor(readonly dir: string) {}

  /** Bytes this process counts in the directory (undefined before the first scan). */
  get bytes(): number | undefined {
    return this.scanned ? this.total : undefined;
  }

  /** The first scan, once; later calls wait for it. */
  async ensureScanned(now: number, log?: Logger): Promise<void> {
    if (this.scanning) return this.scanning;
    if (!this.scanned) await this.rescan(now, log);
  }

  /**
   * Counts the directory again: every file in it (messages, records, the
   * index, temporary files), each rounded up to a block. A scan already
   * running is joined rather than repeated.
   */
  rescan(now: number, log?: Logger): Promise<void> {
    if (this.scanning) return this.scanning;
    this.duringScan = this.writing;
    this.scanning = (async () => {
      try {
        const counted = await countDirectory(this.dir);
        // Reserved by this process before or while the files were counted: maybe counted twice,
        // never missed (a put during the scan errs on the full side until the next one); deletes, see subtract().
        this.total = Math.max(0, counted + this.duringScan);
      } catch (err) {
        // Unreadable (permissions, not a directory): the put itself will say so. The total stays.
        log?.warn(`mailward quarantine: cannot count the bytes in ${this.dir} for [quarantine] max_mb: ${(err as Error).message}`);
      } finally {
        this.scanned = true;
        this.scannedAt = now;
        this.scans++;
        this.scanning = undefined;
      }
    })();
    return this.scanning;
  }

  private change(bytes: number): void {
    this.total = Math.max(0, this.total + bytes);
    if (this.scanning) this.duringScan += bytes;
  }

  /**
   * Files of these sizes were removed. During a scan the total it sets does
   * not subtract them again: the scan may have listed the directory after they
   * were gone (subtracted twice, the total below the disk, the bound passed),
   * so they count until the next scan if it saw them (errs towards full).
   */
  subtract(...sizes: number[]): void {
    const bytes = onDiskTotal(sizes);
    this.total = Math.max(0, this.total - bytes);
  }

  /**
   * Room for files of these sizes, counted at once (so puts running side by
   * side cannot all pass a bound only one of them fits under), or a
   * QuarantineFullError. Settle it (settle()) when the write is done or failed.
   */
  async reserve(sizes: number[], bound: BoundSettings, now: number, log?: Logger): Promise<void> {
    if (!bound.maxBytes) return;
    await this.ensureScanned(now, log);
    const need = onDiskTotal(sizes);
    if (need > bound.maxBytes) {
      throw new QuarantineFullError('too_large', `the message alone (${mb(need)}) is larger than the quarantine's bound ([quarantine] max_mb, ${mb(bound.maxBytes)})`);
    }
    if (this.total + need > bound.maxBytes && now - this.scannedAt >= RESCAN_MS) {
      // Full by our count: deletes elsewhere (the CLI, another node) may have made room since.
      await this.rescan(now, log);
    }
    if (this.total + need > bound.maxBytes) {
      const why = `${this.dir} holds ${mb(this.total)}, its bound is [quarantine] max_mb = ${mb(bound.maxBytes)} (mailward.ini)`;
      this.sayFull(now, bound, why, log);
      throw new QuarantineFullError('full', `the quarantine is full: ${why}`);
    }
    this.writing += need;
    this.change(need);
  }

  /**
   * The put that reserved room for files of these sizes is done: written
   * (`kept`), or failed, and its room is given back.
   */
  settle(sizes: number[], kept: boolean): void {
    const bytes = onDiskTotal(sizes);
    this.writing = Math.max(0, this.writing - bytes);
    if (!kept) this.change(-bytes);
  }

  /**
   * The operator's signal, at most once a minute however many messages are
   * turned away: what is full, the key to raise, and what happens meanwhile.
   */
  sayFull(now: number, bound: BoundSettings, why: string, log?: Logger): void {
    if (now - this.saidFullAt < FULL_LOG_MS) return;
    this.saidFullAt = now;
    log?.error(`mailward quarantine: full: ${why}; ${whileFull(bound.whenFull)}. ${MAKE_ROOM}`);
  }
}

/** What happens to a message to be held while the quarantine is full (the log line, `mailward quarantine usage`). */
export function whileFull(whenFull: BoundSettings['whenFull']): string {
  return whenFull === 'defer'
    ? 'messages to be held are deferred (452, [quarantine] when_full = defer) until there is room'
    : 'messages to be held are delivered with their verdict headers instead ([quarantine] when_full = deliver)';
}

/** The operator's ways out of a full quarantine. */
export const MAKE_ROOM = 'Raise [quarantine] max_mb, lower retention_days, or delete held messages.';

/**
 * Sum of every file in the directory, each rounded up to a block; 0 if it does
 * not exist yet. The running total's scan, and `mailward quarantine usage`.
 */
export async function countDirectory(dir: string): Promise<number> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  let total = 0;
  // In chunks: a directory of 100,000 files must not open 100,000 stats at once.
  for (let i = 0; i < names.length; i += 256) {
    const sizes = await Promise.all(
      names.slice(i, i + 256).map((name) =>
        stat(join(dir, name)).then(
          (s) => (s.isFile() ? onDisk(s.size) : 0),
          () => 0, // Gone meanwhile.
        ),
      ),
    );
    for (const size of sizes) total += size;
  }
  return total;
}

const usages = new Map<string, QuarantineUsage>();

/** The one running total of this directory in this process, shared by every store opened on it. */
export function usageFor(dir: string): QuarantineUsage {
  let usage = usages.get(dir);
  if (!usage) {
    usage = new QuarantineUsage(dir);
    usages.set(dir, usage);
  }
  return usage;
}

/** Whether this process counts the directory already (a purge then rescans it). */
export function usageStarted(dir: string): boolean {
  return usages.get(dir)?.bytes !== undefined;
}

/** Forgets every running total (tests). */
export function forgetUsage(): void {
  usages.clear();
}
