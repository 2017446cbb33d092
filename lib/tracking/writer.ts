import type { Logger } from '../checks/types';
import { Spool } from './spool';
import { boundRow } from './row';
import type { RowStore } from './store';
import type { TrackingRow, TrackingWriter } from './types';

export interface BatchingOptions {
  batchSize: number;
  flushIntervalMs: number;
  /** Rows waiting in memory beyond this go straight to the spool. */
  maxQueue: number;
  spoolPath: string;
  retryIntervalMs: number;
  /** This process's spool files take at most this many bytes; beyond, rows wait in memory (up to maxQueue). Absent: unbounded. */
  maxSpoolBytes?: number;
  /** Rows of transactions older than this many days are deleted, once an hour (0 or absent: kept). */
  retentionDays?: number;
}

/** How often expired rows are deleted, and how many one statement deletes (each batch a short write lock). */
const PURGE_INTERVAL_MS = 3_600_000;
const PURGE_BATCH = 5000;
const DAY_MS = 86_400_000;

export interface WriterStats {
  /** Rows waiting in memory. */
  queued: number;
  /** Rows neither the database nor the spool took (an unwritable spool), waiting in memory. */
  held: number;
  /** Rows the database confirmed as new (direct writes and replays). */
  written: number;
  /** Rows appended to the spool (database failing, or queue full). */
  spooled: number;
  /** Rows inserted from the spool by replays. */
  replayed: number;
  /** True while the database is failing: batches go to the spool until a replay succeeds. */
  outage: boolean;
}

/**
 * The MTA's tracking writer. `write` only pushes onto an in-memory queue (or,
 * when that is full, appends to the spool file), so mail never waits for the
 * database. Batches are written on a timer or once `batchSize` rows wait; a
 * failed batch goes to the spool and the writer enters "outage": later batches
 * go straight to the spool (no connect timeout per batch), and every
 * `retryIntervalMs` a replay of the spool probes the database. The first
 * replay that succeeds ends the outage.
 *
 * All database work runs one task at a time on one promise chain, so batches
 * and replays never race. Memory: at most `maxQueue` queued rows plus one batch
 * (and, while the spool cannot be written either, up to `maxQueue` rows held)
 * in flight.
 */
export class BatchingTrackingWriter implements TrackingWriter {
  private queue: TrackingRow[] = [];
  private tail: Promise<void> = Promise.resolve();
  private drainPending = false;
  /** The batch being inserted right now: still ours to save if the process ends mid-insert. */
  private inFlight: TrackingRow[] = [];
  /** Rows neither the database nor the spool took (an unwritable spool): kept, up to maxQueue, and retried. */
  private held: TrackingRow[] = [];
  private replayPending = false;
  private outage = false;
  private closed = false;
  private readonly spool: Spool;
  private readonly flushTimer: NodeJS.Timeout;
  private readonly retryTimer: NodeJS.Timeout;
  private readonly purgeTimer?: NodeJS.Timeout;
  private readonly counts = { written: 0, spooled: 0, replayed: 0 };
  private lastOverflowWarning = 0;

  constructor(
    private readonly store: RowStore,
    private readonly options: BatchingOptions,
    private readonly log: Logger,
  ) {
    this.spool = new Spool(options.spoolPath, log, process.pid, options.maxSpoolBytes ?? Infinity);
    this.flushTimer = setInterval(() => this.scheduleDrain(), options.flushIntervalMs);
    this.retryTimer = setInterval(() => this.scheduleReplay(), options.retryIntervalMs);
    // Timers must not keep a process alive; close() drains what is left.
    this.flushTimer.unref();
    this.retryTimer.unref();
    if ((options.retentionDays ?? 0) > 0 && store.purgeBefore) {
      this.purgeTimer = setInterval(() => void this.purgeExpired(), PURGE_INTERVAL_MS);
      this.purgeTimer.unref();
      // And soon after start: a node restarted more often than hourly still purges.
      setTimeout(() => void this.purgeExpired(), 60_000 + Math.random() * 60_000).unref();
    }
    // Rows spooled by a previous run (or its interrupted replay) go in as soon as possible.
    if (this.spool.hasRows()) setImmediate(() => this.scheduleReplay());
  }

  write(written: TrackingRow): void {
    try {
      const row = boundRow(written);
      if (this.closed || this.queue.length >= this.options.maxQueue) {
        this.toSpool([row]);
        if (!this.closed) this.warnOverflow();
        return;
      }
      this.queue.push(row);
      if (this.queue.length >= this.options.batchSize) this.scheduleDrain();
    } catch (err) {
      this.log.error(`tracking: cannot queue row ${written?.ref}: ${(err as Error).message}`);
    }
  }

  /** Writes every queued row, then replays the spool (even during an outage). Never rejects. */
  async flush(): Promise<void> {
    this.scheduleDrain();
    this.scheduleReplay();
    await this.tail;
    // Rows written while that ran (and held back during an outage the replay just ended).
    this.scheduleDrain();
    await this.tail;
  }

  /** Drains the queue (into the spool if the database is failing) and closes the database. */
  async close(): Promise<void> {
    if (this.closed) return;
    clearInterval(this.flushTimer);
    clearInterval(this.retryTimer);
    clearInterval(this.purgeTimer);
    this.scheduleDrain();
    if (!this.outage) this.scheduleReplay();
    this.closed = true;
    await this.tail;
    if (this.held.length) this.log.error(`tracking: ${this.held.length} row(s) lost at shutdown: neither ${this.store.description} nor the spool took them`);
    // Anything written during the final drain went to the spool, for the next start.
    await this.store.close().catch((err) => this.log.warn(`tracking: closing ${this.store.description}: ${(err as Error).message}`));
  }

  /**
   * Synchronously appends every row not yet confirmed by the database to the
   * spool: for a process that is exiting (no event loop left to write with).
   * A batch that was in flight may be spooled although it reached the
   * database; the replay skips it (the ref is the key).
   */
  spoolPending(): void {
    const rows = [...this.held, ...this.inFlight, ...this.queue];
    this.held = [];
    this.queue = [];
    this.inFlight = [];
    if (rows.length) this.toSpool(rows);
    // The process is exiting: what the spool refused (full at max_spool_mb, unwritable) is lost
    // now, and the full-spool warning may have been said a minute ago or promise memory that is going.
    if (this.held.length) {
      this.log.error(`tracking: ${this.held.length} row(s) lost at exit: neither ${this.store.description} nor the spool ${this.spool.path} took them`);
    }
  }

  /** This process's spool file (`<spool_path>.<pid>`). */
  get spoolFile(): string {
    return this.spool.path;
  }

  stats(): WriterStats {
    return { queued: this.queue.length, held: this.held.length, ...this.counts, outage: this.outage };
  }

  private enqueue(task: () => Promise<void>): void {
    this.tail = this.tail.then(task).catch((err) => this.log.error(`tracking: ${(err as Error).stack ?? err}`));
  }

  private scheduleDrain(): void {
    if (this.drainPending || !this.queue.length) return;
    this.drainPending = true;
    this.enqueue(async () => {
      this.drainPending = false;
      await this.drain();
    });
  }

  private scheduleReplay(): void {
    if (this.replayPending) return;
    this.replayPending = true;
    this.enqueue(async () => {
      this.replayPending = false;
      if (this.held.length) await this.retryHeld();
      if (this.spool.hasRows()) await this.replay();
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length) {
      const batch = this.queue.splice(0, this.options.batchSize);
      if (this.outage) {
        this.toSpool(batch);
        continue;
      }
      try {
        this.inFlight = batch;
        this.counts.written += await this.store.insert(batch);
      } catch (err) {
        this.toSpool(batch);
        this.outage = true;
        this.log.warn(
          `tracking: ${this.store.description} failed (${(err as Error).message}); spooling rows to ${this.spool.path}, retrying every ${this.options.retryIntervalMs} ms`,
        );
      } finally {
        this.inFlight = [];
      }
    }
  }

  /**
   * Deletes the rows older than retention_days, PURGE_BATCH at a time, each
   * statement its own task on the writer's one chain (never racing a batch):
   * rows written meanwhile go in between, not after a backlog of thousands of
   * statements. Resolves with how many went; never rejects (a failure is
   * logged and the next hour tries again).
   */
  purgeExpired(now = Date.now()): Promise<number> {
    const days = this.options.retentionDays ?? 0;
    const purge = this.store.purgeBefore?.bind(this.store);
    if (!(days > 0) || !purge || this.closed) return Promise.resolve(0);
    const before = new Date(now - days * DAY_MS);
    let removed = 0;
    return new Promise((resolve) => {
      const finish = () => {
        if (removed) this.log.info(`tracking: deleted ${removed} row(s) older than ${days} days from ${this.store.description}`);
        resolve(removed);
      };
      const step = async (): Promise<void> => {
        if (this.closed) return finish();
        try {
          const n = await purge(before, PURGE_BATCH);
          removed += n;
          // Queued behind whatever was scheduled while this statement ran (a drain, a replay).
          if (n >= PURGE_BATCH && !this.closed) this.tail = this.tail.then(step);
          else finish();
        } catch (err) {
          this.log.warn(`tracking: deleting rows older than ${days} days from ${this.store.description} failed: ${(err as Error).message}`);
          finish();
        }
      };
      this.tail = this.tail.then(step);
    });
  }

  private async replay(): Promise<void> {
    try {
      const result = await this.spool.replay((rows) => this.store.insert(rows), this.options.batchSize);
      this.counts.replayed += result.added;
      this.counts.written += result.added;
      if (this.outage) this.log.info(`tracking: ${this.store.description} is back`);
      this.outage = false;
      if (result.rows) {
        this.log.info(`tracking: replayed ${result.rows} spooled row(s), ${result.added} new${result.skipped ? `, ${result.skipped} unreadable line(s) skipped` : ''}`);
      }
    } catch (err) {
      if (!this.outage) this.log.warn(`tracking: replaying the spool into ${this.store.description} failed: ${(err as Error).message}`);
      this.outage = true;
    }
  }

  private toSpool(rows: TrackingRow[]): void {
    if (this.spool.append(rows)) {
      this.counts.spooled += rows.length;
      return;
    }
    // A loop, not push(...rows): a retry hands back everything held (up to max_queue), and a spread of
    // more than ~120,000 rows overflows the stack, which dropped them all.
    for (const row of rows) this.held.push(row);
    const over = this.held.length - this.options.maxQueue;
    if (over > 0) {
      this.held.splice(0, over);
      this.log.error(`tracking: neither ${this.store.description} nor the spool takes rows, and ${this.options.maxQueue} wait in memory; ${over} oldest row(s) lost`);
    }
  }

  /** Rows the spool could not take: to the database if it is back, else to the spool if it is writable again. */
  private async retryHeld(): Promise<void> {
    const rows = this.held;
    this.held = [];
    try {
      this.counts.written += await this.store.insert(rows);
      if (this.outage) this.log.info(`tracking: ${this.store.description} is back`);
      this.outage = false;
    } catch {
      this.toSpool(rows);
    }
  }

  private warnOverflow(): void {
    const now = Date.now();
    if (now - this.lastOverflowWarning < 60000) return;
    this.lastOverflowWarning = now;
    this.log.warn(`tracking: more than ${this.options.maxQueue} rows waiting for ${this.store.description}; new rows go to the spool ${this.spool.path}`);
  }
}

/** For `[tracking] enabled = false`. */
export class DisabledTrackingWriter implements TrackingWriter {
  write(): void {}
  async flush(): Promise<void> {}
  async close(): Promise<void> {}
  spoolPending(): void {}
}
