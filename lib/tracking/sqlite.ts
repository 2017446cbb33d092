import Database from 'better-sqlite3';
import { openSharedSqlite, refuseLinkedSqlite } from '../util/sqlite';
import type { Logger } from '../checks/types';
import { addressMatch, DEFAULT_FIND_LIMIT, likeLiteral, rowValues, type TrackingStore } from './store';
import type { TraceFilter, TrackingRow } from './types';

const TABLE = 'tracking';

/** Column order shared by the INSERT and the row mapping. */
const COLUMNS = [
  'ref', 'time', 'node', 'queue_id', 'message_id', 'remote_ip', 'ptr', 'helo', 'mail_from', 'rcpt_to',
  'size', 'groups', 'score', 'action', 'phase', 'symbols', 'reason', 'parse_result', 'processing_ms',
] as const;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS ${TABLE} (
  ref           TEXT PRIMARY KEY,
  time          TEXT NOT NULL,    -- ISO 8601 UTC, sorts as text
  node          TEXT NOT NULL,
  queue_id      TEXT,
  message_id    TEXT,
  remote_ip     TEXT NOT NULL,
  ptr           TEXT,
  helo          TEXT,
  mail_from     TEXT,             -- '' is the null sender, NULL: ended before MAIL FROM
  rcpt_to       TEXT NOT NULL,    -- JSON array
  size          INTEGER,
  groups        TEXT NOT NULL,    -- JSON object: group -> score
  score         REAL NOT NULL,
  action        TEXT NOT NULL,
  phase         TEXT NOT NULL,
  symbols       TEXT NOT NULL,    -- JSON array of {name, score, group, detail}
  reason        TEXT NOT NULL,
  parse_result  TEXT NOT NULL,
  processing_ms REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ${TABLE}_time ON ${TABLE} (time);
CREATE INDEX IF NOT EXISTS ${TABLE}_remote_ip ON ${TABLE} (remote_ip, time);
CREATE INDEX IF NOT EXISTS ${TABLE}_mail_from ON ${TABLE} (mail_from COLLATE NOCASE);
CREATE INDEX IF NOT EXISTS ${TABLE}_action ON ${TABLE} (action, time);
`;

interface DbRow {
  ref: string; time: string; node: string; queue_id: string | null; message_id: string | null;
  remote_ip: string; ptr: string | null; helo: string | null; mail_from: string | null; rcpt_to: string;
  size: number | null; groups: string; score: number; action: string; phase: string; symbols: string;
  reason: string; parse_result: string; processing_ms: number;
}

const toDb = rowValues;

function fromDb(r: DbRow): TrackingRow {
  return {
    ref: r.ref, time: r.time, node: r.node, queueId: r.queue_id, messageId: r.message_id, remoteIp: r.remote_ip,
    ptr: r.ptr, helo: r.helo, mailFrom: r.mail_from, rcptTo: JSON.parse(r.rcpt_to), size: r.size,
    groups: JSON.parse(r.groups), score: r.score, action: r.action, phase: r.phase, symbols: JSON.parse(r.symbols),
    reason: r.reason, parseResult: r.parse_result, processingMs: r.processing_ms,
  };
}

export interface SqliteOptions {
  /** Open an existing database for reading only (the CLI). */
  readonly?: boolean;
  /** How long a write waits for another process's write lock (ms). Short in the MTA: it blocks the event loop. */
  busyTimeoutMs?: number;
  log?: Logger;
}

/** The row is at fault (a missing field, a value SQLite cannot bind), not the database. */
function isRowError(err: unknown): boolean {
  if (err instanceof TypeError || err instanceof RangeError) return true;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^SQLITE_(CONSTRAINT|MISMATCH)/.test(code);
}

/** Only ASCII characters (SQLite's case folding then agrees with JavaScript's). */
function ascii(text: string): boolean {
  return !/[^\x00-\x7f]/.test(text);
}

/**
 * Tracking rows in one SQLite table (WAL, so readers such as `mailward trace`
 * never block the MTA's writes). Writes are synchronous in better-sqlite3 but
 * come in batches inside one transaction: about a millisecond per batch.
 */
export class SqliteTrackingStore implements TrackingStore {
  readonly description: string;
  private opened?: { db: Database.Database; insertMany?: (rows: TrackingRow[]) => number };

  constructor(
    readonly path: string,
    private readonly options: SqliteOptions = {},
  ) {
    this.description = `sqlite ${path}`;
    // A reader (the CLI) says at once what is wrong with the file. The MTA's
    // writer tries too, but a file that cannot be opened (corrupt,
    // unwritable) must not keep Haraka from starting: the open is retried with
    // the first batch, which fails into the spool, and with every replay.
    if (options.readonly) this.open();
    else {
      try {
        this.open();
      } catch {
        // reported by the first batch that cannot be written
      }
    }
  }

  private open(): { db: Database.Database; insertMany?: (rows: TrackingRow[]) => number } {
    if (this.opened) return this.opened;
    const options = this.options;
    if (options.readonly) {
      refuseLinkedSqlite(this.path); // `mailward trace` as root: SQLite would give a hard-linked -shm the file's owner.
      this.opened = { db: new Database(this.path, { readonly: true, fileMustExist: true, timeout: Math.round(options.busyTimeoutMs ?? 2000) }) };
      return this.opened;
    }
    const db = openSharedSqlite(this.path, options.busyTimeoutMs ?? 2000, (opening) => {
      // WAL + NORMAL: a power cut may lose the last commits but never corrupts.
      opening.pragma('synchronous = NORMAL');
      opening.exec(SCHEMA);
    }, (m) => options.log?.warn(`tracking: ${m}`));
    // Like INSERT OR IGNORE for a known ref, but only for the ref: OR IGNORE would
    // also swallow a NOT NULL violation, silently losing a malformed row we want logged.
    let insert: Database.Statement;
    try {
      insert = db.prepare(`INSERT INTO ${TABLE} (${COLUMNS.join(', ')}) VALUES (${COLUMNS.map(() => '?').join(', ')}) ON CONFLICT (ref) DO NOTHING`);
    } catch (err) {
      // A table that lacks a column (made by hand, or by another program): the writer retries every
      // batch, and each try must not leave a handle open.
      db.close();
      throw err;
    }
    const insertMany = db.transaction((rows: TrackingRow[]) => {
      let added = 0;
      for (const row of rows) {
        try {
          added += insert.run(toDb(row)).changes;
        } catch (err) {
          // A failed statement aborts only itself: drop the bad row, keep the batch.
          if (!isRowError(err)) throw err;
          options.log?.error(`tracking: SQLite refused row ${(row as Partial<TrackingRow>)?.ref} (${(err as Error).message}); row dropped`);
        }
      }
      return added;
    });
    this.opened = { db, insertMany };
    return this.opened;
  }

  private get db(): Database.Database {
    const { db } = this.open();
    if (!this.lowerRegistered) {
      // SQLite's lower() and NOCASE fold ASCII only: ÄDMIN@bücher.test would never be found as
      // ädmin@bücher.test. Addresses with other letters are compared by JavaScript's lower case.
      db.function('js_lower', { deterministic: true }, (v: unknown) => (typeof v === 'string' ? v.toLowerCase() : v));
      this.lowerRegistered = true;
    }
    return db;
  }

  private lowerRegistered = false;

  async insert(rows: TrackingRow[]): Promise<number> {
    const { insertMany } = this.open();
    if (!insertMany) throw new Error(`${this.description} is open read-only`);
    return rows.length ? insertMany(rows) : 0;
  }

  async purgeBefore(time: Date, limit: number): Promise<number> {
    const { insertMany } = this.open();
    if (!insertMany) throw new Error(`${this.description} is open read-only`);
    // `time` is ISO 8601 UTC in every row, so text order is time order (and the time index serves it).
    return this.db.prepare(`DELETE FROM ${TABLE} WHERE rowid IN (SELECT rowid FROM ${TABLE} WHERE time < ? ORDER BY time LIMIT ?)`).run(time.toISOString(), limit).changes;
  }

  async get(ref: string): Promise<TrackingRow | null> {
    const row = this.db.prepare(`SELECT * FROM ${TABLE} WHERE ref = ?`).get(ref) as DbRow | undefined;
    return row ? fromDb(row) : null;
  }

  async find(filter: TraceFilter): Promise<TrackingRow[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.since) {
      where.push('time >= ?');
      params.push(filter.since.toISOString());
    }
    if (filter.ip) {
      where.push('remote_ip = ?');
      params.push(filter.ip);
    }
    if (filter.action) {
      where.push('action = ?');
      params.push(filter.action);
    }
    if (filter.from !== undefined) {
      const m = addressMatch(filter.from);
      if (m.kind === 'null') where.push(`mail_from = ''`);
      else if (m.kind === 'address') {
        // ASCII: the NOCASE index; other letters: a scan with js_lower (rare).
        where.push(ascii(m.address) ? 'mail_from = ? COLLATE NOCASE' : 'js_lower(mail_from) = ?');
        params.push(m.address);
      } else {
        where.push(ascii(m.domain) ? `mail_from LIKE ? ESCAPE '\\'` : `js_lower(mail_from) LIKE ? ESCAPE '\\'`);
        params.push(`%@${likeLiteral(m.domain)}`);
      }
    }
    if (filter.to !== undefined) {
      const m = addressMatch(filter.to);
      if (m.kind === 'address') {
        where.push(`EXISTS (SELECT 1 FROM json_each(${TABLE}.rcpt_to) r WHERE ${ascii(m.address) ? 'lower' : 'js_lower'}(r.value) = ?)`);
        params.push(m.address);
      } else if (m.kind === 'domain') {
        where.push(`EXISTS (SELECT 1 FROM json_each(${TABLE}.rcpt_to) r WHERE ${ascii(m.domain) ? 'r.value' : 'js_lower(r.value)'} LIKE ? ESCAPE '\\')`);
        params.push(`%@${likeLiteral(m.domain)}`);
      } else {
        where.push(`rcpt_to = '[]'`);
      }
    }
    params.push(filter.limit ?? DEFAULT_FIND_LIMIT);
    const sql = `SELECT * FROM ${TABLE}${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY time DESC, ref LIMIT ?`;
    return (this.db.prepare(sql).all(...params) as DbRow[]).map(fromDb);
  }

  /** Number of rows (tests, benchmarks). */
  count(): number {
    return (this.db.prepare(`SELECT count(*) AS n FROM ${TABLE}`).get() as { n: number }).n;
  }

  async close(): Promise<void> {
    if (this.opened?.db.open) this.opened.db.close();
  }
}
