import type Database from 'better-sqlite3';
import type { StateStore } from '../../state/types';
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
  /** Entries of one list for the given scopes. */
  entries(list: ListKind, scopes: string[]): Promise<StoredEntry[]>;
  /** false when the entry was already there. */
  add(list: ListKind, scope: string, entry: string): Promise<boolean>;
  /** false when there was no such entry. */
  remove(list: ListKind, scope: string, entry: string): Promise<boolean>;
  all(list?: ListKind, scope?: string): Promise<StoredEntry[]>;
  close(): Promise<void>;
}

const KEY_PREFIX = 'senders:';

/** Entries as sets in the shared state store: `senders:<list>:<scope>`. */
export class StateListStore implements SenderListStore {
  readonly kind = 'state' as const;

  constructor(private readonly state: StateStore) {}

  private key(list: ListKind, scope: string): string {
    return `${KEY_PREFIX}${list}:${scope}`;
  }

  async entries(list: ListKind, scopes: string[]): Promise<StoredEntry[]> {
    // Never the fallback's empty sets, which would read as "no entries": a failure is RULES_LIST_ERROR.
    const sets = await Promise.all(scopes.map((scope) => this.state.setMembersShared(this.key(list, scope)))).catch((err: Error) => {
      throw new Error(`the shared state (${this.state.backend}) could not be read: ${err.message}`);
    });
    return sets.flatMap((members, i) => members.map((entry) => ({ list, scope: scopes[i]!, entry })));
  }

  async add(list: ListKind, scope: string, entry: string): Promise<boolean> {
    const key = this.key(list, scope);
    const existing = await this.state.setMembers(key);
    if (existing.includes(entry)) return false;
    await this.state.setAdd(key, [entry]);
    return true;
  }

  async remove(list: ListKind, scope: string, entry: string): Promise<boolean> {
    const key = this.key(list, scope);
    const existing = await this.state.setMembers(key);
    if (!existing.includes(entry)) return false;
    await this.state.setRemove(key, [entry]);
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

/** Entries in a SQLite file (WAL, so the MTA reads while the CLI writes). */
export class SqliteListStore implements SenderListStore {
  readonly kind = 'sqlite' as const;
  private readonly db: Database.Database;

  constructor(readonly path: string) {
    this.db = openSharedSqlite(path);
    this.db.exec(`CREATE TABLE IF NOT EXISTS sender_lists (
      list TEXT NOT NULL, scope TEXT NOT NULL, entry TEXT NOT NULL, added TEXT NOT NULL,
      PRIMARY KEY (list, scope, entry))`);
  }

  private entriesStatement?: Database.Statement;

  async entries(list: ListKind, scopes: string[]): Promise<StoredEntry[]> {
    if (!scopes.length) return [];
    // Read for every message: prepared once, whatever the number of scopes (passed as a JSON array).
    this.entriesStatement ??= this.db.prepare(
      'SELECT list, scope, entry FROM sender_lists WHERE list = ? AND scope IN (SELECT value FROM json_each(?)) ORDER BY added',
    );
    return this.entriesStatement.all(list, JSON.stringify(scopes)) as StoredEntry[];
  }

  async add(list: ListKind, scope: string, entry: string): Promise<boolean> {
    const r = this.db.prepare('INSERT OR IGNORE INTO sender_lists (list, scope, entry, added) VALUES (?, ?, ?, ?)').run(list, scope, entry, new Date().toISOString());
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
