import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../checks/types';
import { isCorrupt, isSharedUsageFile, moveAsideIfCorrupt, SHARED_USAGE_FILE, SharedUsage } from './shared-usage';

/**
 * The byte bound of the quarantine (`[quarantine] max_mb`). Retention alone
 * bounds it by age, not size: a flood of quarantined mail filled the disk.
 *
 * The total is shared by the processes of one host through a small SQLite
 * file in the directory (shared-usage.ts): Haraka's cluster workers and the
 * CLI reserve room from one count, so together they stay within the bound.
 * Each process also keeps its own running total, as before the shared file:
 * one scan of the directory at start (or at the first put), then what it
 * writes is added and what it deletes is subtracted, so a put costs no
 * directory walk. That total decides only when the shared file cannot be used
 * (it cannot be opened, or stays locked): said once, and mail is
 * still held or handled by when_full, never rejected for it. A file found
 * corrupt is not waited on: it holds only a count, so it is moved aside and
 * made anew at once, and the directory counted again (rebuild()). The file is tried
 * again at most once a minute (at a put or a scan); once it opens, the
 * directory is counted again (this process's puts and deletes meanwhile are
 * not in the shared total) and the shared total decides again. Deletes elsewhere
 * are seen at the next rescan: at every purge, and at most once a minute while
 * the bound is reached. Sizes are rounded up to 4 KB blocks, as a file system
 * stores them (a 300-byte record takes a block), so the total is close to what
 * `du` says.
 */

/** The allocation unit the total rounds each file up to. */
export const BLOCK_BYTES = 4096;
/** While full, the directory is scanned again at most this often (other nodes' deletes). */
export const RESCAN_MS = 60_000;
/** After the shared file failed, it is tried again at most this often (by the callers' clock). */
export const SHARED_RETRY_MS = 60_000;
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

/**
 * Room taken by reserve(): settle() it. `id`: its row in the shared file,
 * `file`: that file's handle (a row of a file since replaced is not one of the
 * new file's); `bounded`: there was a bound to reserve against.
 */
export interface Reservation {
  bytes: number;
  id?: number;
  file?: SharedUsage;
  bounded?: boolean;
}

/** The shared file could not be used (see QuarantineUsage.attempt). */
const FAILED = Symbol('shared usage failed');

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
  /** The total shared with the host's other processes; null: it cannot be used, this process counts alone. */
  private shared?: SharedUsage | null;
  /** When the shared file failed or was last tried again (the last `now` seen: some callers give none). */
  private offAt = -Infinity;
  private lastNow = -Infinity;
  /**
   * The shared file opened again, the scan that refreshes its base not done:
   * puts go by this process's own total until then (the base misses what this
   * process held and deleted while it counted alone).
   */
  private returning = false;
  /** Room reserved by puts that went by this process's own total (no shared row), still being written. */
  private writingAlone = 0;
  /** Those reserved before or during the running scan: added to its shared count (maybe twice, never missed). */
  private aloneDuringScan = 0;
  /** Scans done so far (tests). */
  scans = 0;

  constructor(readonly dir: string) {}

  /** Bytes counted in the directory, shared or by this process alone (undefined before this process's first scan). */
  get bytes(): number | undefined {
    if (!this.scanned) return undefined;
    const shared = this.attempt(undefined, (s) => s.total());
    return shared === FAILED ? this.total : shared;
  }

  /** Whether the shared total is in use (not fallen back to this process's own). */
  get isShared(): boolean {
    return this.attempt(undefined, () => true) === true;
  }

  /**
   * Runs `op` on the shared file (opened on first use). A file found corrupt
   * is rebuilt (rebuild()); any other failure (the file cannot be opened,
   * stays locked past SHARED_BUSY_MS, the disk is full) turns it off for this
   * process, with one warning. Either way the answer is FAILED: the caller goes
   * on with this process's own total until the file is open again and counted
   * (reopenIfDue(), then a rescan).
   */
  private attempt<T>(log: Logger | undefined, op: (shared: SharedUsage) => T): T | typeof FAILED {
    if (this.shared === null) return FAILED;
    const path = join(this.dir, SHARED_USAGE_FILE);
    let inode: number | undefined;
    try {
      if (this.shared?.replaced()) {
        // Another process found it corrupt and made a new one (or it was removed): its count starts
        // afresh, so this process counts the directory into it, as after a rebuild of its own.
        this.off();
        this.rebuilt = true;
        this.recountSoon(log);
        return FAILED;
      }
      this.shared ??= new SharedUsage(path);
      inode = this.shared.inode;
      return op(this.shared);
    } catch (err) {
      inode ??= (err as { inode?: number }).inode;
      this.off();
      if (isCorrupt(err) && inode !== undefined && this.rebuild(path, inode, err as Error, log)) return FAILED;
      (log ?? this.log)?.warn(
        `mailward quarantine: the byte count shared by this host's processes, ${path}, cannot be used (${(err as Error).message}); ` +
          'this process counts [quarantine] max_mb on its own and tries the file again at most once a minute, so processes sharing the directory may together pass the bound meanwhile. ' +
          'Mail is still held (or handled by when_full). Remove or repair the file.',
      );
      return FAILED;
    }
  }

  /** Closes the shared handle: this process counts alone until reopenIfDue(). */
  private off(): void {
    try {
      this.shared?.close();
    } catch {
      // Closing a broken handle: nothing more to do.
    }
    this.shared = null;
    this.offAt = this.lastNow;
  }

  /**
   * The shared file is corrupt: it holds only a count the files give again,
   * so it is moved aside (kept for the operator), made anew and counted by a
   * scan at once, with one warning naming the file moved aside. Another
   * process that found it at the same time and moved it first is not a
   * second warning: this one opens the new file and counts too. False when it
   * could not be moved (the lock busy, a rename refused): the caller warns
   * and counts alone, as for any other failure.
   */
  private rebuild(path: string, inode: number, err: Error, log?: Logger): boolean {
    let aside: string | null;
    try {
      aside = moveAsideIfCorrupt(path, inode);
    } catch (moveErr) {
      (log ?? this.log)?.debug(`mailward quarantine: ${path} is corrupt, but could not be moved aside (${(moveErr as Error).message})`);
      return false;
    }
    if (aside) {
      (log ?? this.log)?.warn(
        `mailward quarantine: the byte count shared by this host's processes, ${path}, is corrupt (${err.message}): ` +
          `moved aside to ${aside} (kept for a look; delete it when done) and made anew from a count of the directory. Nothing to do: mail is held (or handled by when_full) meanwhile.`,
      );
    }
    this.rebuilt = true;
    this.recountSoon(log);
    return true;
  }

  /** Set by a rebuild: the reopen that follows is not news ("can be used again"), its failure is (said once). */
  private rebuilt = false;
  /** The recount after a rebuild (tests wait for it through ensureScanned/rescan). */
  private recounting?: Promise<void>;

  /**
   * Opens the (new) shared file now and counts the directory into it, after a
   * scan that runs already (it started on the old file, or alone).
   */
  private recountSoon(log?: Logger): void {
    this.offAt = -Infinity;
    this.recounting ??= (async () => {
      try {
        // Not within the call that found the file corrupt: rescan() may be on its way to set `scanning`.
        await Promise.resolve();
        while (this.scanning) await this.scanning;
        if (this.shared === null) await this.rescan(Number.isFinite(this.lastNow) ? this.lastNow : Date.now(), log);
      } finally {
        this.recounting = undefined;
      }
    })();
  }

  /**
   * Off, and SHARED_RETRY_MS since it failed or was last tried: opens the
   * shared file again. True when it opened (the caller rescans before trusting
   * it); a failed try is silent (the warning was said once) and waits another
   * interval.
   */
  private reopenIfDue(now: number, log?: Logger): boolean {
    if (this.shared !== null || now - this.offAt < SHARED_RETRY_MS) return false;
    this.offAt = now;
    const path = join(this.dir, SHARED_USAGE_FILE);
    try {
      this.shared = new SharedUsage(path);
    } catch (err) {
      // Found corrupt at this try (it was busy before, say): rebuilt, and opened by the recount that follows.
      const inode = (err as { inode?: number }).inode;
      if (isCorrupt(err) && inode !== undefined && this.rebuild(path, inode, err as Error, log)) return false;
      if (this.rebuilt) {
        this.rebuilt = false;
        (log ?? this.log)?.warn(`mailward quarantine: ${path} could not be made anew (${(err as Error).message}); this process counts [quarantine] max_mb on its own and tries the file again at most once a minute`);
      } else (log ?? this.log)?.debug(`mailward quarantine: ${path} still cannot be used (${(err as Error).message}); tried again in a minute`);
      return false;
    }
    this.returning = true;
    if (this.rebuilt) {
      this.rebuilt = false;
      return true;
    }
    (log ?? this.log)?.info(`mailward quarantine: the byte count shared by this host's processes, ${path}, can be used again: this process counts the directory again and shares [quarantine] max_mb with them`);
    return true;
  }

  /** The logger last given (the fallback warning may come from a call that has none). */
  private log?: Logger;

  /** The first scan, once; later calls wait for it. */
  async ensureScanned(now: number, log?: Logger): Promise<void> {
    if (!this.scanned && !this.scanning && !this.recounting) await this.rescan(now, log);
    // The count a rebuilt shared file starts from (rebuild()) is part of the first count too.
    while (this.recounting || this.scanning) await (this.recounting ?? this.scanning);
  }

  /**
   * Counts the directory again: every file in it (messages, records, the
   * index, temporary files), each rounded up to a block. A scan already
   * running is joined rather than repeated.
   */
  rescan(now: number, log?: Logger): Promise<void> {
    if (this.scanning) return this.scanning;
    this.log = log ?? this.log;
    this.lastNow = now;
    this.reopenIfDue(now, log);
    this.duringScan = this.writing;
    this.aloneDuringScan = this.writingAlone;
    // Before the listing: puts other processes settle meanwhile are held aside until it ends (shared-usage.ts).
    const scanId = this.attempt(log, (s) => s.startScan(now));
    this.scanning = (async () => {
      try {
        const counted = await countDirectory(this.dir);
        // Reserved by this process before or while the files were counted: maybe counted twice,
        // never missed (a put during the scan errs on the full side until the next one); deletes, see subtract().
        this.total = Math.max(0, counted + this.duringScan);
        // Puts that went by this process's own total have no shared row: added, as duringScan is to its own.
        if (scanId !== FAILED) this.attempt(log, (s) => s.finishScan(scanId, counted + Math.max(0, this.aloneDuringScan), now));
      } catch (err) {
        // Unreadable (permissions, not a directory): the put itself will say so. The total stays.
        log?.warn(`mailward quarantine: cannot count the bytes in ${this.dir} for [quarantine] max_mb: ${(err as Error).message}`);
        if (scanId !== FAILED) this.attempt(log, (s) => s.abortScan(scanId));
      } finally {
        this.scanned = true;
        this.scannedAt = now;
        this.scans++;
        this.scanning = undefined;
        // Whether the shared base is fresh now or the file failed again (off, said once): no longer returning.
        this.returning = false;
      }
    })();
    return this.scanning;
  }

  private change(bytes: number, alone: boolean): void {
    this.total = Math.max(0, this.total + bytes);
    if (this.scanning) this.duringScan += bytes;
    if (this.scanning && alone) this.aloneDuringScan += bytes;
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
    this.attempt(undefined, (s) => s.subtract(bytes));
  }

  /**
   * Room for files of these sizes, counted at once (so puts running side by
   * side, in this process or another of the host, cannot all pass a bound only
   * one of them fits under), or a QuarantineFullError. Settle the reservation
   * (settle()) when the write is done or failed.
   */
  async reserve(sizes: number[], bound: BoundSettings, now: number, log?: Logger): Promise<Reservation> {
    const need = onDiskTotal(sizes);
    if (!bound.maxBytes) return { bytes: need };
    this.log = log ?? this.log;
    this.lastNow = now;
    await this.ensureScanned(now, log);
    // Counting alone since the shared file failed: tried again at most once a minute; if it opens, a scan first.
    if (this.shared === null && !this.scanning && this.reopenIfDue(now, log)) await this.rescan(now, log);
    if (need > bound.maxBytes) {
      throw new QuarantineFullError('too_large', `the message alone (${mb(need)}) is larger than the quarantine's bound ([quarantine] max_mb, ${mb(bound.maxBytes)})`);
    }
    const shared = await this.reserveShared(need, bound, now, log);
    let total: number;
    if (shared === FAILED) {
      if (this.total + need > bound.maxBytes && now - this.scannedAt >= RESCAN_MS) {
        // Full by our count: deletes elsewhere (the CLI, another node) may have made room since.
        await this.rescan(now, log);
      }
      if (this.total + need <= bound.maxBytes) return this.reserved(need);
      total = this.total;
    } else if (shared.id !== null) {
      return this.reserved(need, shared.id, this.shared ?? undefined);
    } else {
      total = shared.total;
    }
    const why = `${this.dir} holds ${mb(total)}, its bound is [quarantine] max_mb = ${mb(bound.maxBytes)} (mailward.ini)`;
    this.sayFull(now, bound, why, log);
    throw new QuarantineFullError('full', `the quarantine is full: ${why}`);
  }

  /**
   * The shared file's answer: a reservation's id, or null (full) with the
   * total; FAILED when it cannot be used. A put that fits is one transaction;
   * only when room runs out are dead processes' reservations dropped and, at
   * most once a minute for all the host's processes, the directory scanned.
   */
  private async reserveShared(need: number, bound: BoundSettings, now: number, log?: Logger): Promise<{ id: number | null; total: number } | typeof FAILED> {
    if (this.returning) return FAILED;
    let r = this.attempt(log, (s) => s.reserve(need, bound.maxBytes, now));
    if (r === FAILED || r.id !== null) return r;
    const freed = this.attempt(log, (s) => s.dropDead(now));
    if (freed === FAILED) return FAILED;
    if (freed > 0) r = this.attempt(log, (s) => s.reserve(need, bound.maxBytes, now));
    if (r === FAILED || r.id !== null) return r;
    const scannedAt = this.attempt(log, (s) => s.scannedAt());
    if (scannedAt === FAILED) return FAILED;
    if (now - scannedAt < RESCAN_MS) return r;
    await this.rescan(now, log);
    return this.attempt(log, (s) => s.reserve(need, bound.maxBytes, now));
  }

  private reserved(bytes: number, id?: number, file?: SharedUsage): Reservation {
    this.writing += bytes;
    if (id === undefined) this.writingAlone += bytes;
    this.change(bytes, id === undefined);
    return { bytes, id, file, bounded: true };
  }

  /**
   * The put holding this reservation is done: written (`kept`), or failed,
   * and its room is given back.
   */
  settle(reservation: Reservation, kept: boolean): void {
    if (!reservation.bounded) return;
    const { bytes, id } = reservation;
    this.writing = Math.max(0, this.writing - bytes);
    if (id === undefined) this.writingAlone = Math.max(0, this.writingAlone - bytes);
    if (!kept) this.change(-bytes, id === undefined);
    // Reserved in a file replaced since (corrupt): its id is not a row of this one.
    if (id !== undefined) this.attempt(undefined, (s) => s.settle(s === reservation.file ? id : null, bytes, kept));
  }

  /** Closes the shared file (tests; a process exits anyway). */
  close(): void {
    if (this.shared) this.shared.close();
    this.shared = undefined;
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
  // The shared count's own file is bookkeeping of the bound (a few KB, its WAL a few MB at most): not counted.
  names = names.filter((name) => !isSharedUsageFile(name));
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

/** Forgets every running total and closes the shared files (tests). */
export function forgetUsage(): void {
  for (const usage of usages.values()) usage.close();
  usages.clear();
}
