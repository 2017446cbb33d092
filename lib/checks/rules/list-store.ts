import { randomUUID } from 'node:crypto';
import type Database from 'better-sqlite3';
import { LRUCache } from 'lru-cache';
import type { StateStore } from '../../state/types';
import { entryKey, KeyIndex } from './list-index';
import type { ListKind } from './lists';
import { openSharedSqlite } from '../../util/sqlite';

export interface StoredEntry {
  list: ListKind;
  scope: string;
  entry: string;
}

/**
 * Allow and block entries added at run time (`mailward allow add`, release
 * and approve). Read by the MTA on every message and written by the CLI, a
 * separate process: so they live in Redis when the state is shared, and in a
 * SQLite file in the data directory otherwise (the in-process memory store
 * would not outlive the CLI command that wrote to it).
 */
export interface SenderListStore {
  readonly kind: 'state' | 'sqlite';
  /**
   * Entries of one list for the given scopes: with `keys` (lookupKeys()),
   * only those filed under one of them or under none (''), a superset of
   * those that can match; in the order they were added (SQLite) or scope by
   * scope in the set's order (state store).
   */
  entries(list: ListKind, scopes: string[], keys?: string[]): Promise<StoredEntry[]>;
  /** false when the entry was already there. */
  add(list: ListKind, scope: string, entry: string): Promise<boolean>;
  /** false when there was no such entry. */
  remove(list: ListKind, scope: string, entry: string): Promise<boolean>;
  all(list?: ListKind, scope?: string): Promise<StoredEntry[]>;
  close(): Promise<void>;
}

const KEY_PREFIX = 'senders:';
/** Set to a new random value after every change, so readers in every process know to read the sets again. */
const CHANGED_KEY = 'senders-changed';
/**
 * Sets read longer ago than this are read again even without a change mark:
 * bounds how long a change the mark missed (a writer that died between the
 * set and the mark, an older mailward, a hand edit) goes unseen.
 */
const REREAD_AFTER_MS = 60_000;

/** Entries as sets in the shared state store: `senders:<list>:<scope>`. */
export class StateListStore implements SenderListStore {
  readonly kind = 'state' as const;
  /**
   * The sets read so far, indexed by key, valid while the change mark is the
   * one read before them: reading a list of thousands from Redis for every
   * message costs more than matching it.
   */
  private cache?: { mark: string | null; readAt: number; sets: LRUCache<string, KeyIndex<string>> };
  /** Entries' keys, kept across reads: after a change, only the new entries are parsed. */
  private readonly keys = new LRUCache<string, string>({ max: 100_000 });

  private readonly rereadAfterMs: number;

  constructor(
    private readonly state: StateStore,
    options: { rereadAfterMs?: number } = {},
  ) {
    this.rereadAfterMs = options.rereadAfterMs ?? REREAD_AFTER_MS;
  }

  private key(list: ListKind, scope: string): string {
    return `${KEY_PREFIX}${list}:${scope}`;
  }

  async entries(list: ListKind, scopes: string[], keys?: string[]): Promise<StoredEntry[]> {
    // Never the fallback's empty sets, which would read as "no entries": a failure is RULES_LIST_ERROR.
    const unreadable = (err: Error) => new Error(`the shared state (${this.state.backend}) could not be read: ${err.message}`);
    if (!keys) {
      const sets = await Promise.all(scopes.map((scope) => this.state.setMembersShared(this.key(list, scope)))).catch((err: Error) => {
        throw unreadable(err);
      });
      return sets.flatMap((members, i) => members.map((entry) => ({ list, scope: scopes[i]!, entry })));
    }
    const mark = await this.state.getShared(CHANGED_KEY).catch((err: Error) => {
      throw unreadable(err);
    });
    const now = Date.now();
    if (!this.cache || this.cache.mark !== mark || now - this.cache.readAt >= this.rereadAfterMs) {
      this.cache = { mark, readAt: now, sets: new LRUCache({ max: 10_000 }) };
    }
    const sets = this.cache.sets;
    const indexes = scopes.map((scope) => sets.get(this.key(list, scope)));
    const missing = scopes.filter((_, i) => !indexes[i]);
    const read = await Promise.all(missing.map((scope) => this.state.setMembersShared(this.key(list, scope)))).catch((err: Error) => {
      throw unreadable(err);
    });
    for (const [i, members] of read.entries()) {
      const index = new KeyIndex(members, (entry) => this.keyOf(list, entry));
      sets.set(this.key(list, missing[i]!), index);
      indexes[scopes.indexOf(missing[i]!)] = index;
    }
    return scopes.flatMap((scope, i) => indexes[i]!.find(keys).map((entry) => ({ list, scope, entry })));
  }

  private keyOf(list: ListKind, entry: string): string {
    const id = `${list}\0${entry}`;
    let key = this.keys.get(id);
    if (key === undefined) {
      key = entryKey(list, entry);
      this.keys.set(id, key);
    }
    return key;
  }

  /** After a change: this process reads the sets again, and so does every other one. */
  private async changed(): Promise<void> {
    this.cache = undefined;
    await this.state.set(CHANGED_KEY, randomUUID());
  }

  async add(list: ListKind, scope: string, entry: string): Promise<boolean> {
    const key = this.key(list, scope);
    const existing = await this.state.setMembers(key);
    if (existing.includes(entry)) return false;
    await this.state.setAdd(key, [entry]);
    await this.changed();
    return true;
  }

  async remove(list: ListKind, scope: string, entry: string): Promise<boolean> {
    const key = this.key(list, scope);
    const existing = await this.state.setMembers(key);
    if (!existing.includes(entry)) return false;
    await this.state.setRemove(key, [entry]);
    await this.changed();
    return true;
  }

  async all(list?: ListKind, scope?: string): Promise<StoredEntry[]> {
    const keys = await this.state.keys(KEY_PREFIX);
    const out: StoredEntry[] = [];
    for (const key of keys.sort()) {
      const rest = key.slice(KEY_PREFIX.length);
      const colon = rest.indexOf(':');
      const l = rest.slice(0, colon) as ListKind;
      const s = rest.slice(colon + 1);
      if ((list && l !== list) || (scope && s !== scope)) continue;
      for (const entry of (await this.state.setMembers(key)).sort()) out.push({ list: l, scope: s, entry });
    }
    return out;
  }

  async close(): Promise<void> {}
}

/**
 * What the key column means (AddressPattern.key), kept as the file's
 * user_version: a file whose keys mean something else (a newer mailward's)
 * is read whole, never looked up by keys this version would compute.
 */
const KEY_FORMAT = 1;

/**
 * Entries in a SQLite file (WAL, so the MTA reads while the CLI writes). Each
 * row carries its entry's key (list-index.ts), so a message reads the few rows
 * filed under its sender's keys instead of the whole list. A row without one
 * (written by an older mailward, or by hand) is read for every message, and
 * given its key the next time the file is opened.
 */
export class SqliteListStore implements SenderListStore {
  readonly kind = 'sqlite' as const;
  private readonly db: Database.Database;
  private readonly keyFormat: Database.Statement;

  constructor(readonly path: string) {
    this.db = openSharedSqlite(path, undefined, (db) =>
      db.exec(`CREATE TABLE IF NOT EXISTS sender_lists (
        list TEXT NOT NULL, scope TEXT NOT NULL, entry TEXT NOT NULL, added TEXT NOT NULL, key TEXT,
        PRIMARY KEY (list, scope, entry))`),
    );
    this.keyFormat = this.db.prepare('PRAGMA user_version').pluck();
    try {
      this.upgradeOnce();
    } catch (err) {
      // A file the upgrade cannot read (a table made by hand): no handle is left open per load.
      this.db.close();
      throw err;
    }
  }

  private upgradeOnce(): void {
    if (!this.upgradeNeeded()) return;
    // Immediate, checked again inside: two processes opening an old file at once upgrade it once.
    try {
      this.db.transaction(() => this.upgradeNeeded() && this.upgrade()).immediate();
    } catch (err) {
      // A writer held the file past the busy timeout: read it as it is (rows without keys are read whole) until the next open.
      if ((err as { code?: string }).code !== 'SQLITE_BUSY') throw err;
    }
  }

  private hasKeyColumn(): boolean {
    return (this.db.prepare('PRAGMA table_info(sender_lists)').all() as { name: string }[]).some((c) => c.name === 'key');
  }

  private upgradeNeeded(): boolean {
    const format = this.keyFormat.get() as number;
    if (format > KEY_FORMAT) return false;
    return format < KEY_FORMAT || !this.hasKeyColumn() || !!this.db.prepare('SELECT 1 FROM sender_lists WHERE key IS NULL LIMIT 1').get();
  }

  private upgrade(): void {
    if (!this.hasKeyColumn()) this.db.exec('ALTER TABLE sender_lists ADD COLUMN key TEXT');
    this.db.exec('CREATE INDEX IF NOT EXISTS sender_lists_by_key ON sender_lists (list, key, scope)');
    if ((this.keyFormat.get() as number) !== KEY_FORMAT) {
      this.db.exec('UPDATE sender_lists SET key = NULL');
      this.db.pragma(`user_version = ${KEY_FORMAT}`);
    }
    const rows = this.db.prepare('SELECT rowid AS id, list, entry FROM sender_lists WHERE key IS NULL').all() as { id: number; list: ListKind; entry: string }[];
    const set = this.db.prepare('UPDATE sender_lists SET key = ? WHERE rowid = ?');
    for (const r of rows) set.run(entryKey(r.list, r.entry), r.id);
  }

  private allStatement?: Database.Statement;
  private keyedStatement?: Database.Statement;

  async entries(list: ListKind, scopes: string[], keys?: string[]): Promise<StoredEntry[]> {
    if (!scopes.length) return [];
    // Read for every message: prepared once, whatever the number of scopes and keys (passed as JSON arrays).
    if (!keys || this.keyFormat.get() !== KEY_FORMAT) {
      this.allStatement ??= this.db.prepare(
        'SELECT list, scope, entry FROM sender_lists WHERE list = ? AND scope IN (SELECT value FROM json_each(?)) ORDER BY added, rowid',
      );
      return this.allStatement.all(list, JSON.stringify(scopes)) as StoredEntry[];
    }
    // Two index searches (list, key, scope): with "OR key IS NULL" in one WHERE, SQLite scans the scopes instead.
    this.keyedStatement ??= this.db.prepare(
      `SELECT list, scope, entry, added, rowid AS id FROM sender_lists
         WHERE list = @list AND key IN (SELECT value FROM json_each(@keys)) AND scope IN (SELECT value FROM json_each(@scopes))
       UNION ALL
       SELECT list, scope, entry, added, rowid AS id FROM sender_lists
         WHERE list = @list AND key IS NULL AND scope IN (SELECT value FROM json_each(@scopes))
       ORDER BY added, id`,
    );
    const rows = this.keyedStatement.all({ list, scopes: JSON.stringify(scopes), keys: JSON.stringify(keys) }) as StoredEntry[];
    return rows.map((r) => ({ list: r.list, scope: r.scope, entry: r.entry }));
  }

  async add(list: ListKind, scope: string, entry: string): Promise<boolean> {
    // No key in a file of another key format: it is read whole, and keyed when its own version opens it.
    const keyed = this.keyFormat.get() === KEY_FORMAT;
    const r = this.db
      .prepare(`INSERT OR IGNORE INTO sender_lists (list, scope, entry, added${keyed ? ', key' : ''}) VALUES (?, ?, ?, ?${keyed ? ', ?' : ''})`)
      .run(list, scope, entry, new Date().toISOString(), ...(keyed ? [entryKey(list, entry)] : []));
    return r.changes > 0;
  }

  async remove(list: ListKind, scope: string, entry: string): Promise<boolean> {
    return this.db.prepare('DELETE FROM sender_lists WHERE list = ? AND scope = ? AND entry = ?').run(list, scope, entry).changes > 0;
  }

  async all(list?: ListKind, scope?: string): Promise<StoredEntry[]> {
    return this.db
      .prepare('SELECT list, scope, entry FROM sender_lists WHERE (? IS NULL OR list = ?) AND (? IS NULL OR scope = ?) ORDER BY list, scope, entry')
      .all(list ?? null, list ?? null, scope ?? null, scope ?? null) as StoredEntry[];
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
