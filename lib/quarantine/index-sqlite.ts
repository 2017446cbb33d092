import { renameSync, statSync } from 'node:fs';
import type Database from 'better-sqlite3';
import type { Logger } from '../checks/types';
import type { HeldSummary, QuarantineFilter, QuarantineIndex, QuarantineRecord } from './types';
import { openSharedSqlite } from '../util/sqlite';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS quarantine (
  ref    TEXT PRIMARY KEY,
  time   TEXT NOT NULL,          -- ISO 8601 UTC: sorts as text
  status TEXT NOT NULL,
  record TEXT NOT NULL           -- the whole QuarantineRecord as JSON
);
CREATE INDEX IF NOT EXISTS quarantine_time ON quarantine (status, time);
CREATE TABLE IF NOT EXISTS quarantine_rcpt (
  ref  TEXT NOT NULL REFERENCES quarantine (ref) ON DELETE CASCADE,
  rcpt TEXT NOT NULL,            -- lower case
  PRIMARY KEY (rcpt, ref)
);
-- By ref too: rewriting or deleting one message's recipients must not scan every message's.
CREATE INDEX IF NOT EXISTS quarantine_rcpt_ref ON quarantine_rcpt (ref);
`;

/** Records per transaction in a sync. */
const BATCH = 1000;

/** SQLite's answers for a file that is not, or no longer, a sound database. */
function isCorrupt(err: unknown): boolean {
  return /^SQLITE_(NOTADB|CORRUPT)/.test((err as { code?: string }).code ?? '');
}

/**
 * The embedded index: a SQLite file beside the held messages (WAL: the MTA
 * writes while the CLI reads). It holds nothing the files do not: a file that
 * turns out corrupt is moved aside (kept for a look) and the index starts
 * afresh, which the next sync fills from the files (see `resets`).
 */
export class SqliteQuarantineIndex implements QuarantineIndex {
  readonly description: string;
  private db!: Database.Database;
  /** The file the handle is on: another process may have replaced a corrupt one already. */
  private inode = 0;
  resets = 0;

  constructor(
    readonly path: string,
    private readonly log?: Logger,
  ) {
    this.description = `sqlite ${path}`;
    this.open();
  }

  private open(): void {
    try {
      this.connect();
    } catch (err) {
      if (!isCorrupt(err)) throw err;
      this.moveAside(err as Error);
      this.connect();
    }
  }

  private connect(): void {
    // Short: better-sqlite3 waits on the event loop, and the files are the truth
    // (a put or status change the index misses is still listed), so a lock held
    // elsewhere (a shell, a backup) costs the MTA 250 ms, not 2 s.
    this.db = openSharedSqlite(this.path, 250, (db) => {
      db.pragma('foreign_keys = ON');
      db.exec(SCHEMA);
    }, (m) => this.log?.warn(`mailward quarantine: ${m}`));
    this.inode = statSync(this.path).ino;
  }

  /** Keeps the corrupt file (and its WAL) under another name; the next open makes a new one. */
  private moveAside(err: Error): void {
    const aside = `${this.path}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    for (const suffix of ['', '-wal', '-shm']) {
      try {
        renameSync(`${this.path}${suffix}`, `${aside}${suffix}`);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
    }
    this.resets++;
    this.log?.warn(`mailward quarantine: the index ${this.path} is corrupt (${err.message}): moved aside to ${aside}; it is rebuilt from the message files`);
  }

  /** Runs one operation; a corrupt file found on the way is replaced and the operation run again on the new one. */
  private run<T>(op: () => T): T {
    try {
      return op();
    } catch (err) {
      if (!isCorrupt(err)) throw err;
      if (this.db.open) this.db.close();
      // Unless another process replaced it already (then the new file is just opened).
      const current = (() => {
        try {
          return statSync(this.path).ino;
        } catch {
          return 0;
        }
      })();
      if (current === this.inode) this.moveAside(err as Error);
      else this.resets++;
      this.open();
      return op();
    }
  }

  async upsert(record: QuarantineRecord): Promise<void> {
    await this.upsertMany([record]);
  }

  /**
   * Writes `items` in transactions of BATCH: short write locks, so the MTA's
   * own index writes wait at most 250 ms. The transaction is built inside
   * run(): after a reset, on the new handle.
   */
  private inBatches<T>(items: T[], write: (db: Database.Database, batch: T[]) => void): void {
    for (let i = 0; i < items.length; i += BATCH) {
      const batch = items.slice(i, i + BATCH);
      this.run(() => this.db.transaction(() => write(this.db, batch))());
    }
  }

  async upsertMany(records: QuarantineRecord[]): Promise<void> {
    this.inBatches(records, (db, rs) => {
      const put = db.prepare('INSERT INTO quarantine (ref, time, status, record) VALUES (?, ?, ?, ?) ON CONFLICT (ref) DO UPDATE SET time = excluded.time, status = excluded.status, record = excluded.record');
      const clear = db.prepare('DELETE FROM quarantine_rcpt WHERE ref = ?');
      const add = db.prepare('INSERT OR IGNORE INTO quarantine_rcpt (ref, rcpt) VALUES (?, ?)');
      for (const r of rs) {
        put.run(r.ref, r.time, r.status, JSON.stringify(r));
        clear.run(r.ref);
        for (const rcpt of r.rcptTo) add.run(r.ref, rcpt.toLowerCase());
      }
    });
  }

  async get(ref: string): Promise<QuarantineRecord | null> {
    const row = this.run(() => this.db.prepare('SELECT record FROM quarantine WHERE ref = ?').get(ref)) as { record: string } | undefined;
    return row ? (JSON.parse(row.record) as QuarantineRecord) : null;
  }

  async list(filter: QuarantineFilter): Promise<QuarantineRecord[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const status = filter.status ?? 'held';
    if (status !== 'all') {
      where.push('q.status = ?');
      params.push(status);
    }
    if (filter.since) {
      where.push('q.time >= ?');
      params.push(filter.since.toISOString());
    }
    if (filter.rcpt) {
      where.push('q.ref IN (SELECT ref FROM quarantine_rcpt WHERE rcpt = ?)');
      params.push(filter.rcpt.toLowerCase());
    }
    const sql = `SELECT record FROM quarantine q ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY q.time DESC, q.ref LIMIT ?`;
    params.push(filter.limit ?? 1000);
    return (this.run(() => this.db.prepare(sql).all(...params)) as { record: string }[]).map((r) => JSON.parse(r.record) as QuarantineRecord);
  }

  async delete(ref: string): Promise<void> {
    await this.deleteMany([ref]);
  }

  async deleteMany(refs: string[]): Promise<void> {
    this.inBatches(refs, (db, rs) => {
      const del = db.prepare('DELETE FROM quarantine WHERE ref = ?');
      for (const ref of rs) del.run(ref);
    });
  }

  async refs(): Promise<Set<string>> {
    return new Set((this.run(() => this.db.prepare('SELECT ref FROM quarantine').all()) as { ref: string }[]).map((r) => r.ref));
  }

  async olderThan(time: Date): Promise<string[]> {
    return (this.run(() => this.db.prepare('SELECT ref FROM quarantine WHERE time < ?').all(time.toISOString())) as { ref: string }[]).map((r) => r.ref);
  }

  async held(): Promise<HeldSummary> {
    const row = this.run(() => this.db.prepare("SELECT COUNT(*) AS count, MIN(time) AS oldest FROM quarantine WHERE status = 'held'").get()) as { count: number; oldest: string | null };
    return row.oldest === null ? { count: row.count } : { count: row.count, oldest: row.oldest };
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
