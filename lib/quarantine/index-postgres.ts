import { Pool } from 'pg';
import type { Logger } from '../checks/types';
import type { HeldSummary, QuarantineFilter, QuarantineIndex, QuarantineRecord } from './types';
import { redactUrl } from '../config/reader';

export interface PostgresIndexOptions {
  url: string;
  schema: string;
  /** Table name; the recipients table is `<table>_rcpt`. */
  table?: string;
  connectTimeoutMs?: number;
  log?: Logger;
}

/** Records per statement in a sync. */
const BATCH = 1000;

const quote = (identifier: string) => `"${identifier.replace(/"/g, '""')}"`;

/**
 * The fleet's index: one PostgreSQL table every node writes to, beside a
 * directory all nodes share for the messages themselves. Created on first
 * use, so a node that starts while the server is down still starts.
 */
export class PostgresQuarantineIndex implements QuarantineIndex {
  readonly description: string;
  private readonly pool: Pool;
  private readonly t: string;
  private readonly r: string;
  private ready: Promise<void> | null = null;

  constructor(private readonly options: PostgresIndexOptions) {
    const table = options.table ?? 'mailward_quarantine';
    this.t = `${quote(options.schema)}.${quote(table)}`;
    this.r = `${quote(options.schema)}.${quote(`${table}_rcpt`)}`;
    this.description = `postgres ${redactUrl(options.url)} ${options.schema}.${table}`;
    this.pool = new Pool({
      connectionString: options.url,
      max: 2,
      idleTimeoutMillis: 10000,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 3000,
      statement_timeout: 10000,
      query_timeout: 11000,
      application_name: 'mailward-quarantine',
    });
    this.pool.on('error', (err) => options.log?.debug(`quarantine: idle PostgreSQL connection closed: ${err.message}`));
  }

  private ensure(): Promise<void> {
    this.ready ??= (async () => {
      // Tables set up by their owner are used as they are (the role may lack the right to create).
      // By ref too: rewriting or deleting one message's recipients (and the cascade) must not scan every message's.
      const byRefName = quote(`${this.options.table ?? 'mailward_quarantine'}_rcpt_ref_idx`);
      const byRef = `CREATE INDEX IF NOT EXISTS ${byRefName} ON ${this.r} (ref)`;
      const found = await this.pool.query('SELECT to_regclass($1) AS t, to_regclass($2) AS r, to_regclass($3) AS i', [this.t, this.r, `${quote(this.options.schema)}.${byRefName}`]);
      if (found.rows[0]?.t && found.rows[0]?.r) {
        // Tables made by an older mailward lack it; a role without the right to add it still works, slower.
        if (!found.rows[0]?.i) await this.pool.query(byRef).catch((err: Error) => this.options.log?.warn(`mailward quarantine: index on ${this.r} (ref) not added, listings of many new files are slow: ${err.message}`));
        return;
      }
      const statements = [
        `CREATE SCHEMA IF NOT EXISTS ${quote(this.options.schema)}`,
        `CREATE TABLE IF NOT EXISTS ${this.t} (ref text PRIMARY KEY, time timestamptz NOT NULL, status text NOT NULL, record jsonb NOT NULL)`,
        `CREATE INDEX IF NOT EXISTS ${quote(`${this.options.table ?? 'mailward_quarantine'}_time_idx`)} ON ${this.t} (status, time)`,
        `CREATE TABLE IF NOT EXISTS ${this.r} (ref text NOT NULL REFERENCES ${this.t} (ref) ON DELETE CASCADE, rcpt text NOT NULL, PRIMARY KEY (rcpt, ref))`,
        byRef,
      ];
      for (const sql of statements) {
        try {
          await this.pool.query(sql);
        } catch (err) {
          // Two nodes creating the same object at once: the object exists.
          if (!['23505', '42P07', '42P06'].includes((err as { code?: string }).code ?? '')) throw err;
        }
      }
    })().catch((err) => {
      this.ready = null;
      throw err;
    });
    return this.ready;
  }

  async upsert(record: QuarantineRecord): Promise<void> {
    await this.upsertMany([record]);
  }

  /** A few statements per batch of records (a sync of thousands), each batch one transaction. */
  async upsertMany(records: QuarantineRecord[]): Promise<void> {
    if (!records.length) return;
    await this.ensure();
    // One row per ref (the last wins): ON CONFLICT cannot update a row twice in one statement.
    const unique = [...new Map(records.map((r) => [r.ref, r])).values()];
    const client = await this.pool.connect();
    try {
      for (let i = 0; i < unique.length; i += BATCH) {
        const batch = unique.slice(i, i + BATCH);
        const refs = batch.map((r) => r.ref);
        const rcpts = batch.flatMap((r) => [...new Set(r.rcptTo.map((x) => x.toLowerCase()))].map((rcpt) => [r.ref, rcpt] as const));
        try {
          await client.query('BEGIN');
          await client.query(
            `INSERT INTO ${this.t} (ref, time, status, record)
             SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::jsonb[])
             ON CONFLICT (ref) DO UPDATE SET time = EXCLUDED.time, status = EXCLUDED.status, record = EXCLUDED.record`,
            [refs, batch.map((r) => r.time), batch.map((r) => r.status), batch.map((r) => JSON.stringify(r).replace(/\\u0000/g, '\\ufffd'))],
          );
          await client.query(`DELETE FROM ${this.r} WHERE ref = ANY($1::text[])`, [refs]);
          if (rcpts.length) {
            await client.query(`INSERT INTO ${this.r} (ref, rcpt) SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING`, [rcpts.map((x) => x[0]), rcpts.map((x) => x[1])]);
          }
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch(() => {});
          throw err;
        }
      }
    } finally {
      client.release();
    }
  }

  async get(ref: string): Promise<QuarantineRecord | null> {
    await this.ensure();
    const { rows } = await this.pool.query(`SELECT record FROM ${this.t} WHERE ref = $1`, [ref]);
    return rows[0] ? (rows[0].record as QuarantineRecord) : null;
  }

  async list(filter: QuarantineFilter): Promise<QuarantineRecord[]> {
    await this.ensure();
    const where: string[] = [];
    const params: unknown[] = [];
    const status = filter.status ?? 'held';
    if (status !== 'all') {
      params.push(status);
      where.push(`q.status = $${params.length}`);
    }
    if (filter.since) {
      params.push(filter.since.toISOString());
      where.push(`q.time >= $${params.length}`);
    }
    if (filter.rcpt) {
      params.push(filter.rcpt.toLowerCase());
      where.push(`q.ref IN (SELECT ref FROM ${this.r} WHERE rcpt = $${params.length})`);
    }
    params.push(filter.limit ?? 1000);
    const sql = `SELECT record FROM ${this.t} q ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY q.time DESC, q.ref LIMIT $${params.length}`;
    const { rows } = await this.pool.query(sql, params);
    return rows.map((r) => r.record as QuarantineRecord);
  }

  async delete(ref: string): Promise<void> {
    await this.deleteMany([ref]);
  }

  async deleteMany(refs: string[]): Promise<void> {
    if (!refs.length) return;
    await this.ensure();
    for (let i = 0; i < refs.length; i += BATCH) await this.pool.query(`DELETE FROM ${this.t} WHERE ref = ANY($1::text[])`, [refs.slice(i, i + BATCH)]);
  }

  async refs(): Promise<Set<string>> {
    await this.ensure();
    const { rows } = await this.pool.query(`SELECT ref FROM ${this.t}`);
    return new Set(rows.map((r) => r.ref as string));
  }

  async olderThan(time: Date): Promise<string[]> {
    await this.ensure();
    const { rows } = await this.pool.query(`SELECT ref FROM ${this.t} WHERE time < $1`, [time.toISOString()]);
    return rows.map((r) => r.ref as string);
  }

  async held(): Promise<HeldSummary> {
    await this.ensure();
    const { rows } = await this.pool.query(`SELECT COUNT(*)::int AS count, MIN(time) AS oldest FROM ${this.t} WHERE status = 'held'`);
    const { count, oldest } = rows[0] as { count: number; oldest: Date | null };
    return oldest === null ? { count } : { count, oldest: oldest.toISOString() };
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => {});
  }
}
