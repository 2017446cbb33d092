import { existsSync } from 'node:fs';
import { createOwnedLikeDirectory, foreignOwnerAdvice, linkedSqliteAdvice, nonRegularSqliteAdvice, unwritableAdvice, withWriteAdvice } from './owner';
import Database from 'better-sqlite3';

const RETRY_PAUSE_MS = 20;

/**
 * What a checkpoint leaves of the WAL file. Without a limit the -wal file
 * keeps the size of its largest burst (a bulk learn, a tracking backlog) for
 * good; with it, the next checkpoint that resets the log truncates it to this.
 * Per connection, not kept in the file: set on every open.
 */
export const WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024;

function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Throws, as root, for a SQLite file that is, or whose -wal, -shm or -journal
 * is, a symlink or a hard link in a directory others can write (see
 * linkedSqliteAdvice in util/owner), and for anyone when one of them is not a
 * regular file (a FIFO: nonRegularSqliteAdvice): to be called before every open.
 */
export function refuseLinkedSqlite(path: string): void {
  const linked = linkedSqliteAdvice(path);
  if (linked) throw Object.assign(new Error(`not opening ${path}: ${linked}`), { code: 'ELOOP' });
  const odd = nonRegularSqliteAdvice(path);
  if (odd) throw Object.assign(new Error(`not opening ${path}: ${odd}`), { code: 'ENOTREG' });
}

/**
 * Switches the file to WAL. Two processes opening a new file at once (Haraka
 * and `mailward learn`) race for the switch, and SQLite answers the loser
 * SQLITE_BUSY at once, without its busy handler: measured here, 76 of 200
 * simultaneous opens failed. The mode is kept in the file, so it is read
 * first, and a busy switch is retried until `timeoutMs`.
 */
function useWal(db: Database.Database, timeoutMs: number): void {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (db.pragma('journal_mode', { simple: true }) !== 'wal') db.pragma('journal_mode = WAL');
      db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== 'SQLITE_BUSY' || Date.now() >= deadline) throw err;
      pause(RETRY_PAUSE_MS);
    }
  }
}

/**
 * A SQLite file shared by the MTA and the CLI: WAL, so readers never wait for
 * the writer, and a busy timeout, so two writers wait briefly instead of failing.
 * `setup` (pragmas, schema) runs on the new handle; if it throws, the handle is
 * closed, so a store that tries again on every use does not leak one per try.
 *
 * Root (the CLI, or Haraka's register() before it drops privileges) makes the
 * file owned like its directory (see util/owner), and refuses one that is a
 * symlink or a hard link there. A file this process cannot write is opened
 * read-only by SQLite (reads work, the first write fails with only "attempt
 * to write a readonly database"): `warn` (a writer's) is told at once, naming
 * it and the `chown` to run, and an error here says so too. Root opening one
 * that the directory's owner could not write is told through `warn`.
 */
export function openSharedSqlite(path: string, busyTimeoutMs = 2000, setup?: (db: Database.Database) => void, warn?: (message: string) => void): Database.Database {
  createOwnedLikeDirectory(path);
  refuseLinkedSqlite(path);
  // Not refused: SQLite opens such a file read-only, and an operator's user with read access reads through it
  // (a model in use by the MTA, its -wal and -shm there); the writer is told at once, and every error below says why.
  const advice = warn && (unwritableAdvice(path) ?? foreignOwnerAdvice(path));
  if (advice) warn(advice);
  const timeout = Math.floor(busyTimeoutMs);
  let db: Database.Database;
  try {
    db = new Database(path, { timeout });
  } catch (err) {
    throw withWriteAdvice(err, path);
  }
  try {
    useWal(db, timeout);
    setup?.(db);
  } catch (err) {
    db.close();
    throw withWriteAdvice(err, path);
  }
  return db;
}

const leftBehindWarned = new Set<string>();

/**
 * Once per file and process: says that a SQLite file is left behind by a
 * store that now lives in Redis (a single node that joined a fleet), so what
 * it holds is neither lost in silence nor used. `mailward migrate` copies it.
 */
export function warnIfLeftBehind(path: string, what: string, setting: string, warn: (message: string) => void): void {
  if (leftBehindWarned.has(path) || !existsSync(path) || existsSync(copiedMark(path))) return;
  leftBehindWarned.add(path);
  warn(`${what} live in Redis now; ${path}, from when they lived in SQLite, is not used: copy it with \`mailward migrate\`, or set ${setting} = sqlite to keep it per node`);
}

/** Beside a SQLite file whose contents `mailward migrate` copied to Redis (what, where, when). */
export function copiedMark(path: string): string {
  return `${path}.copied`;
}
