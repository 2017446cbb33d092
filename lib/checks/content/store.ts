import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { createClient } from 'redis';
import type { BayesModel } from './bayes';

/** Changes to persist: token -> [spam delta, ham delta]; the key '' holds the message totals. */
export type Deltas = Map<string, [number, number]>;

/**
 * Where the classifier's counts live. Stores only ever ADD deltas, so several
 * processes (a Haraka cluster, `mailward learn`, other nodes on Redis) can
 * learn into one model without overwriting each other; `load` reads the sum.
 */
export interface BayesStore {
  readonly description: string;
  /** Replaces the model's counts with the stored ones (pending deltas are the caller's). */
  load(model: BayesModel): Promise<void>;
  save(deltas: Deltas): Promise<void>;
  close(): Promise<void>;
}

/** One SQLite file per node (default): WAL, so readers and the writer do not block each other. */
export class SqliteBayesStore implements BayesStore {
  private db?: Database.Database;

  constructor(readonly path: string) {}

  get description(): string {
    return `sqlite ${this.path}`;
  }

  private open(): Database.Database {
    if (!this.db) {
      mkdirSync(dirname(this.path), { recursive: true });
      const db = new Database(this.path);
      db.pragma('journal_mode = WAL');
      db.pragma('busy_timeout = 5000');
      db.exec(`CREATE TABLE IF NOT EXISTS bayes_tokens (token TEXT PRIMARY KEY, spam INTEGER NOT NULL, ham INTEGER NOT NULL) WITHOUT ROWID;
               CREATE TABLE IF NOT EXISTS bayes_totals (id INTEGER PRIMARY KEY CHECK (id = 1), spam INTEGER NOT NULL, ham INTEGER NOT NULL);
               INSERT OR IGNORE INTO bayes_totals VALUES (1, 0, 0);`);
      this.db = db;
    }
    return this.db;
  }

  async load(model: BayesModel): Promise<void> {
    const db = this.open();
    const totals = db.prepare('SELECT spam, ham FROM bayes_totals WHERE id = 1').get() as { spam: number; ham: number };
    model.tokens.clear();
    for (const row of db.prepare('SELECT token, spam, ham FROM bayes_tokens').raw().iterate() as Iterable<[string, number, number]>) {
      model.setCounts(row[0], row[1], row[2]);
    }
    model.nspam = Math.max(0, totals.spam);
    model.nham = Math.max(0, totals.ham);
  }

  async save(deltas: Deltas): Promise<void> {
    if (!deltas.size) return;
    const db = this.open();
    const upsert = db.prepare(
      `INSERT INTO bayes_tokens (token, spam, ham) VALUES (?, max(0, ?), max(0, ?))
       ON CONFLICT(token) DO UPDATE SET spam = max(0, spam + excluded.spam), ham = max(0, ham + excluded.ham)`,
    );
    const prune = db.prepare('DELETE FROM bayes_tokens WHERE token = ? AND spam = 0 AND ham = 0');
    const totals = db.prepare('UPDATE bayes_totals SET spam = max(0, spam + ?), ham = max(0, ham + ?) WHERE id = 1');
    db.transaction(() => {
      for (const [token, [s, h]] of deltas) {
        if (token === '') {
          totals.run(s, h);
          continue;
        }
        upsert.run(token, s, h);
        if (s < 0 || h < 0) prune.run(token);
      }
    })();
  }

  async close(): Promise<void> {
    this.db?.close();
    this.db = undefined;
  }
}

function newClient(url: string, timeoutMs: number) {
  return createClient({ url, disableOfflineQueue: true, socket: { connectTimeout: timeoutMs, reconnectStrategy: false } });
}
type RedisClient = ReturnType<typeof newClient>;

/**
 * Redis for a fleet: hashes <prefix>spam and <prefix>ham (token -> count) and
 * <prefix>totals. Deltas are HINCRBY in one MULTI, so nodes add up.
 */
export class RedisBayesStore implements BayesStore {
  private client?: RedisClient;
  private connecting?: Promise<RedisClient>;

  constructor(
    readonly url: string,
    readonly prefix: string,
    private readonly timeoutMs = 5000,
  ) {}

  get description(): string {
    return `redis ${this.url} ${this.prefix}*`;
  }

  private async connect(): Promise<RedisClient> {
    if (this.client?.isReady) return this.client;
    this.connecting ??= (async () => {
      const client = newClient(this.url, this.timeoutMs);
      client.on('error', () => {});
      await client.connect();
      this.client = client;
      return client;
    })().finally(() => (this.connecting = undefined));
    return this.connecting!;
  }

  async load(model: BayesModel): Promise<void> {
    const c = await this.connect();
    const counts = new Map<string, [number, number]>();
    for (const [index, key] of [`${this.prefix}spam`, `${this.prefix}ham`].entries()) {
      // HSCAN in batches: a big model never blocks Redis with one huge reply.
      for await (const batch of c.hScanIterator(key, { COUNT: 5000 })) {
        for (const { field, value } of batch) {
          const entry = counts.get(field) ?? [0, 0];
          entry[index] = Number(value) || 0;
          counts.set(field, entry);
        }
      }
    }
    const totals = await c.hGetAll(`${this.prefix}totals`);
    model.tokens.clear();
    for (const [token, [s, h]] of counts) model.setCounts(token, s, h);
    model.nspam = Math.max(0, Number(totals.spam) || 0);
    model.nham = Math.max(0, Number(totals.ham) || 0);
  }

  async save(deltas: Deltas): Promise<void> {
    if (!deltas.size) return;
    const c = await this.connect();
    const multi = c.multi();
    for (const [token, [s, h]] of deltas) {
      const spamKey = token === '' ? `${this.prefix}totals` : `${this.prefix}spam`;
      const hamKey = token === '' ? `${this.prefix}totals` : `${this.prefix}ham`;
      const spamField = token === '' ? 'spam' : token;
      const hamField = token === '' ? 'ham' : token;
      if (s) multi.hIncrBy(spamKey, spamField, s);
      if (h) multi.hIncrBy(hamKey, hamField, h);
    }
    await multi.exec();
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    if (c?.isOpen) await c.quit().catch(() => c.destroy());
  }
}
