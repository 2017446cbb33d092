import type Database from 'better-sqlite3';
import type { QuarantineFilter, QuarantineIndex, QuarantineRecord } from './types';
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
`;

/** The embedded index: a SQLite file beside the held messages (WAL: the MTA writes while the CLI reads). */
export class SqliteQuarantineIndex implements QuarantineIndex {
  readonly description: string;
  private readonly db: Database.Database;

  constructor(readonly path: string) {
    // Short: better-sqlite3 waits on the event loop, and the files are the truth
    // (a put or status change the index misses is still listed), so a lock held
    // elsewhere (a shell, a backup) costs the MTA 250 ms, not 2 s.
    this.db = openSharedSqlite(path, 250);
    this.db.pragma('foreign_keys = ON');
    this.db.exec(SCHEMA);
    this.description = `sqlite ${path}`;
  }

  async upsert(record: QuarantineRecord): Promise<void> {
    const write = this.db.transaction((r: QuarantineRecord) => {
      this.db
        .prepare('INSERT INTO quarantine (ref, time, status, record) VALUES (?, ?, ?, ?) ON CONFLICT (ref) DO UPDATE SET time = excluded.time, status = excluded.status, record = excluded.record')
        .run(r.ref, r.time, r.status, JSON.stringify(r));
      this.db.prepare('DELETE FROM quarantine_rcpt WHERE ref = ?').run(r.ref);
      const add = this.db.prepare('INSERT OR IGNORE INTO quarantine_rcpt (ref, rcpt) VALUES (?, ?)');
      for (const rcpt of r.rcptTo) add.run(r.ref, rcpt.toLowerCase());
    });
    write(record);
  }

  async get(ref: string): Promise<QuarantineRecord | null> {
    const row = this.db.prepare('SELECT record FROM quarantine WHERE ref = ?').get(ref) as { record: string } | undefined;
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
    return (this.db.prepare(sql).all(...params) as { record: string }[]).map((r) => JSON.parse(r.record) as QuarantineRecord);
  }

  async delete(ref: string): Promise<void> {
    this.db.prepare('DELETE FROM quarantine WHERE ref = ?').run(ref);
  }

  async refs(): Promise<Set<string>> {
    return new Set((this.db.prepare('SELECT ref FROM quarantine').all() as { ref: string }[]).map((r) => r.ref));
  }

  async olderThan(time: Date): Promise<string[]> {
    return (this.db.prepare('SELECT ref FROM quarantine WHERE time < ?').all(time.toISOString()) as { ref: string }[]).map((r) => r.ref);
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
