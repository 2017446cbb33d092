import { Pool, type PoolClient } from 'pg';
import type { Logger } from '../checks/types';
import { addressMatch, DEFAULT_FIND_LIMIT, likeLiteral, rowValues, type TrackingStore } from './store';
import type { TraceFilter, TrackingRow } from './types';
import { redactUrl } from '../config/reader';

export interface PostgresOptions {
  url: string;
  schema: string;
  table: string;
  /** Give up connecting after this long (ms): a dead server must be noticed quickly. */
  connectTimeoutMs?: number;
  /** Deadline of one statement (ms), enforced by the server and, in case it is unreachable, by the client. */
  queryTimeoutMs?: number;
  log?: Logger;
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 3000;
export const DEFAULT_QUERY_TIMEOUT_MS = 10000;

const COLUMNS = [
  'ref', 'time', 'node', 'queue_id', 'message_id', 'remote_ip', 'ptr', 'helo', 'mail_from', 'rcpt_to',
  'size', 'groups', 'score', 'action', 'phase', 'symbols', 'reason', 'parse_result', 'processing_ms',
] as const;

/** Postgres limits a statement to 65535 parameters; 19 columns x 1000 rows stays well below. */
const ROWS_PER_STATEMENT = 1000;

interface DbRow {
  ref: string; time: Date; node: string; queue_id: string | null; message_id: string | null;
  remote_ip: string; ptr: string | null; helo: string | null; mail_from: string | null; rcpt_to: string[];
  size: number | null; groups: Record<string, number>; score: number; action: string; phase: string;
  symbols: TrackingRow['symbols']; reason: string; parse_result: string; processing_ms: number;
}

const quote = (identifier: string) => `"${identifier.replace(/"/g, '""')}"`;

/** A UTF-16 surrogate without its pair: not a character, and not valid UTF-8. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
/** What JSON.stringify writes for NUL or a lone surrogate (a paired one it writes as is). */
const NEEDS_REPLACING = /\\u0000|\\ud[89a-f][0-9a-f]{2}/i;

/**
 * PostgreSQL text and jsonb cannot hold NUL, nor a lone surrogate (jsonb
 * refuses the row); a malformed message must not poison a batch or lose its row.
 */
function withoutNul<T>(value: T): T {
  if (typeof value === 'string') return value.replace(/\u0000/g, '\ufffd').replace(LONE_SURROGATE, '\ufffd') as T;
  if (Array.isArray(value)) return value.map(withoutNul) as T;
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [withoutNul(k), withoutNul(v)])) as T;
  }
  return value;
}

function toDb(row: TrackingRow): unknown[] {
  if (NEEDS_REPLACING.test(JSON.stringify(row))) row = withoutNul(row);
  return rowValues(row);
}

function fromDb(r: DbRow): TrackingRow {
  return {
    ref: r.ref, time: r.time.toISOString(), node: r.node, queueId: r.queue_id, messageId: r.message_id,
    remoteIp: r.remote_ip, ptr: r.ptr, helo: r.helo, mailFrom: r.mail_from, rcptTo: r.rcpt_to, size: r.size,
    groups: r.groups, score: r.score, action: r.action, phase: r.phase, symbols: r.symbols, reason: r.reason,
    parseResult: r.parse_result, processingMs: r.processing_ms,
  };
}

/**
 * SQLSTATE class 22 (data exception: a character the database cannot store,
 * a number out of range): this row is at fault, and only it is dropped.
 * Not class 23 (a NOT NULL or CHECK constraint, a foreign key) nor 22001 (a
 * value too long): every column mailward writes is text, jsonb or a number it
 * always fills, so those mean the table was changed under us (a DBA adding a
 * NOT NULL column). The batch then waits in the spool, as in any outage,
 * instead of being dropped row by row.
 */
function isDataError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('22') && code !== '22001';
}

/**
 * Tracking rows in one PostgreSQL table shared by a fleet of MTAs. The schema,
 * table and indexes are created on first use (so a node starting while the
 * server is down still starts); rows go in with multi-row
 * `INSERT ... ON CONFLICT (ref) DO NOTHING`.
 */
export class PostgresTrackingStore implements TrackingStore {
  readonly description: string;
  readonly qualifiedTable: string;
  private readonly pool: Pool;
  private ready: Promise<void> | null = null;
  private readonly log?: Logger;
  private closed = false;

  constructor(private readonly options: PostgresOptions) {
    const queryTimeout = options.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS;
    this.log = options.log;
    this.qualifiedTable = `${quote(options.schema)}.${quote(options.table)}`;
    this.description = `postgres ${redactUrl(options.url)} ${options.schema}.${options.table}`;
    this.pool = new Pool({
      connectionString: options.url,
      // Writes are serialised by the writer; a second connection serves readers.
      max: 2,
      idleTimeoutMillis: 30000,
      connectionTimeoutMillis: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      statement_timeout: queryTimeout,
      // The client-side deadline also covers a server that vanished without closing the socket.
      query_timeout: queryTimeout + 1000,
      application_name: 'mailward-tracking',
    });
    // An idle connection dropped by the server must not become an uncaught 'error'.
    this.pool.on('error', (err) => this.log?.debug(`tracking: idle PostgreSQL connection closed: ${err.message}`));
  }

  /** Creates the schema, table and indexes if missing; retried after a failure. */
  ensureSchema(): Promise<void> {
    if (!this.ready) {
      this.ready = this.createSchema().catch((err) => {
        this.ready = null;
        throw err;
      });
    }
    return this.ready;
  }

  private async createSchema(): Promise<void> {
    const t = this.qualifiedTable;
    const { schema, table } = this.options;
    // A table set up by its owner (docs/tracking.md: mailward's role may only
    // insert and select) is used as it is: creating the schema or an index
    // needs rights that role has no reason to hold.
    const existing = await this.pool.query('SELECT to_regclass($1) AS found', [t]);
    if (existing.rows[0]?.found) return;
    const statements = [
      `CREATE SCHEMA IF NOT EXISTS ${quote(schema)}`,
      `CREATE TABLE IF NOT EXISTS ${t} (
        ref           text PRIMARY KEY,
        time          timestamptz NOT NULL,
        node          text NOT NULL,
        queue_id      text,
        message_id    text,
        remote_ip     text NOT NULL,
        ptr           text,
        helo          text,
        mail_from     text,
        rcpt_to       jsonb NOT NULL,
        size          integer,
        groups        jsonb NOT NULL,
        score         double precision NOT NULL,
        action        text NOT NULL,
        phase         text NOT NULL,
        symbols       jsonb NOT NULL,
        reason        text NOT NULL,
        parse_result  text NOT NULL,
        processing_ms double precision NOT NULL
      )`,
      `CREATE INDEX IF NOT EXISTS ${quote(`${table}_time_idx`)} ON ${t} (time)`,
      `CREATE INDEX IF NOT EXISTS ${quote(`${table}_remote_ip_idx`)} ON ${t} (remote_ip, time)`,
      `CREATE INDEX IF NOT EXISTS ${quote(`${table}_mail_from_idx`)} ON ${t} (lower(mail_from))`,
      `CREATE INDEX IF NOT EXISTS ${quote(`${table}_action_idx`)} ON ${t} (action, time)`,
    ];
    for (const sql of statements) {
      try {
        await this.pool.query(sql);
      } catch (err) {
        // Two nodes creating the same object at once: the loser sees a duplicate; the object exists.
        const code = (err as { code?: string }).code;
        if (code !== '23505' && code !== '42P07' && code !== '42P06') throw err;
      }
    }
  }

  async insert(rows: TrackingRow[]): Promise<number> {
    if (!rows.length) return 0;
    await this.ensureSchema();
    let added = 0;
    for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT) {
      added += await this.insertChunk(rows.slice(i, i + ROWS_PER_STATEMENT));
    }
    return added;
  }

  private async insertChunk(rows: TrackingRow[]): Promise<number> {
    try {
      return await this.insertStatement(this.pool, rows);
    } catch (err) {
      if ((err as { code?: string }).code === '42P01') this.ready = null; // table dropped under us: recreate next time
      if (!isDataError(err) || rows.length === 1) {
        if (isDataError(err)) {
          this.log?.error(`tracking: PostgreSQL refused row ${rows[0]!.ref} (${(err as Error).message}); row dropped`);
          return 0;
        }
        throw err;
      }
      // One bad row fails the whole statement: insert one by one so only that row is dropped.
      const client = await this.pool.connect();
      try {
        let added = 0;
        for (const row of rows) {
          try {
            added += await this.insertStatement(client, [row]);
          } catch (rowErr) {
            if (!isDataError(rowErr)) throw rowErr;
            this.log?.error(`tracking: PostgreSQL refused row ${row.ref} (${(rowErr as Error).message}); row dropped`);
          }
        }
        return added;
      } finally {
        client.release();
      }
    }
  }

  private async insertStatement(db: Pool | PoolClient, rows: TrackingRow[]): Promise<number> {
    const params: unknown[] = [];
    const tuples = rows.map((row) => {
      const values = toDb(row);
      const start = params.length;
      params.push(...values);
      return `(${values.map((_, j) => `$${start + j + 1}`).join(', ')})`;
    });
    const result = await db.query(
      `INSERT INTO ${this.qualifiedTable} (${COLUMNS.join(', ')}) VALUES ${tuples.join(', ')} ON CONFLICT (ref) DO NOTHING`,
      params,
    );
    return result.rowCount ?? 0;
  }

  async get(ref: string): Promise<TrackingRow | null> {
    const result = await this.read(`SELECT * FROM ${this.qualifiedTable} WHERE ref = $1`, [ref]);
    return result[0] ?? null;
  }

  async find(filter: TraceFilter): Promise<TrackingRow[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const param = (value: unknown) => {
      params.push(value);
      return `$${params.length}`;
    };
    if (filter.since) where.push(`time >= ${param(filter.since)}`);
    if (filter.ip) where.push(`remote_ip = ${param(filter.ip)}`);
    if (filter.action) where.push(`action = ${param(filter.action)}`);
    if (filter.from !== undefined) {
      const m = addressMatch(filter.from);
      if (m.kind === 'null') where.push(`mail_from = ''`);
      else if (m.kind === 'address') where.push(`lower(mail_from) = ${param(m.address)}`);
      else where.push(`lower(mail_from) LIKE ${param(`%@${likeLiteral(m.domain)}`)}`);
    }
    if (filter.to !== undefined) {
      const m = addressMatch(filter.to);
      const each = 'SELECT 1 FROM jsonb_array_elements_text(rcpt_to) AS r(address) WHERE';
      if (m.kind === 'address') where.push(`EXISTS (${each} lower(r.address) = ${param(m.address)})`);
      else if (m.kind === 'domain') where.push(`EXISTS (${each} lower(r.address) LIKE ${param(`%@${likeLiteral(m.domain)}`)})`);
      else where.push(`rcpt_to = '[]'::jsonb`);
    }
    const limit = param(filter.limit ?? DEFAULT_FIND_LIMIT);
    return this.read(
      `SELECT * FROM ${this.qualifiedTable}${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY time DESC, ref LIMIT ${limit}`,
      params,
    );
  }

  private async read(sql: string, params: unknown[]): Promise<TrackingRow[]> {
    try {
      return (await this.pool.query<DbRow>(sql, params)).rows.map(fromDb);
    } catch (err) {
      if ((err as { code?: string }).code === '42P01') {
        throw new Error(`no tracking table ${this.options.schema}.${this.options.table} yet at ${redactUrl(this.options.url)}`);
      }
      throw err;
    }
  }

  async purgeBefore(time: Date, limit: number): Promise<number> {
    await this.ensureSchema();
    const t = this.qualifiedTable;
    const result = await this.pool.query(`DELETE FROM ${t} WHERE ctid IN (SELECT ctid FROM ${t} WHERE time < $1 ORDER BY time LIMIT $2)`, [time, limit]);
    return result.rowCount ?? 0;
  }

  /** Number of rows (tests, benchmarks). */
  async count(): Promise<number> {
    const result = await this.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${this.qualifiedTable}`);
    return Number(result.rows[0]!.n);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}

