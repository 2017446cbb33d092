import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

/**
 * A SQLite file shared by the MTA and the CLI: WAL, so readers never wait for
 * the writer, and a busy timeout, so two writers wait briefly instead of failing.
 */
export function openSharedSqlite(path: string, busyTimeoutMs = 2000): Database.Database {
  mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma(`busy_timeout = ${Math.floor(busyTimeoutMs)}`);
  return db;
}
