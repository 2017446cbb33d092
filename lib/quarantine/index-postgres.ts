import { Pool } from 'pg';
import type { Logger } from '../checks/types';
import type { QuarantineFilter, QuarantineIndex, QuarantineRecord } from './types';

export interface PostgresIndexOptions {
  url: string;
  schema: string;
  /** Table name; the recipients table is `<table>_rcpt`. */
  table?: string;
  connectTimeoutMs?: number;
  log?: Logger;
}

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
    this.description = `postgres ${options.url.replace(/\/\/[^@/]*@/, '//***@')} ${options.schema}.${table}`;
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
      const found = await this.pool.query('SELECT to_regclass($1) AS t, to_regclass($2) AS r', [this.t, this.r]);
      if (found.rows[0]?.t && found.rows[0]?.r) return;
      const statements = [
        `CREATE SCHEMA IF NOT EXISTS ${quote(this.options.schema)}`,
        `CREATE TABLE IF NOT EXISTS ${this.t} (ref text PRIMARY KEY, time timestamptz NOT NULL, status text NOT NULL, record jsonb NOT NULL)`,
        `CREATE INDEX IF NOT EXISTS ${quote(`${this.options.table ?? 'mailward_quarantine'}_time_idx`)} ON ${this.t} (status, time)`,
        `CREATE TABLE IF NOT EXISTS ${this.r} (ref text NOT NULL REFERENCES ${this.t} (ref) ON DELETE CASCADE, rcpt text NOT NULL, PRIMARY KEY (rcpt, ref))`,
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
    await this.ensure();
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(
        `INSERT INTO ${this.t} (ref, time, status, record) VALUES ($1, $2, $3, $4)
         ON CONFLICT (ref) DO UPDATE SET time = EXCLUDED.time, status = EXCLUDED.status, record = EXCLUDED.record`,
        [record.ref, record.time, record.status, JSON.stringify(record).replace(/\\u0000/g, '\\ufffd')],
      );
      await client.query(`DELETE FROM ${this.r} WHERE ref = $1`, [record.ref]);
      const rcpts = [...new Set(record.rcptTo.map((x) => x.toLowerCase()))];
      if (rcpts.length) await client.query(`INSERT INTO ${this.r} (ref, rcpt) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING`, [record.ref, rcpts]);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
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
    await this.ensure();
    await this.pool.query(`DELETE FROM ${this.t} WHERE ref = $1`, [ref]);
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

  async close(): Promise<void> {
    await this.pool.end().catch(() => {});
  }
}
