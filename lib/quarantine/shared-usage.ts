import { closeSync, constants, fstatSync, ftruncateSync, renameSync, statSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import Database from 'better-sqlite3';
import { createOwnedLikeDirectory, openRegularFile } from '../util/owner';
import { openSharedSqlite, refuseLinkedSqlite } from '../util/sqlite';

/**
 * The byte bound's total shared by every process on this host that holds mail
 * in one quarantine directory (Haraka's cluster workers, the `mailward` CLI):
 * a small SQLite file in the directory. Before it, each process counted on its
 * own and believed it had the whole room, so N workers could fill the
 * directory to N times `max_mb` between two counts.
 *
 * What it holds: `base`, the bytes the last scan counted plus the puts settled
 * and minus the deletes since, and one row per reservation, a put whose files
 * are being written (host, pid, start token, bytes, time). The directory holds base plus
 * every reservation. Each change is one BEGIN IMMEDIATE transaction, so two
 * processes cannot both take the last room.
 *
 * A process that dies mid-put leaves its reservation: it is dropped when room
 * runs out and its pid is gone (same host), or it is this process's pid with
 * another start token (an earlier life of the same pid: a restarted
 * container's Haraka is pid 1 again), or after RESERVATION_TTL_MS (a pid of
 * another host, or reused). The files it may have written are counted again at
 * the next scan.
 *
 * A scan walks the directory outside any transaction, then sets base to what
 * it counted. Puts settled meanwhile may be in the count or not: their rows
 * are kept (marked kept, with a sequence number) until a scan that started
 * after them, or are added on top when the last running scan finishes
 * (counted twice at worst until the next one, never missed). A scan that
 * finishes after one that started later leaves base as that one set it (its
 * own listing is older). In-flight reservations are rows and are never touched
 * by a scan.
 *
 * SQLite's locks need one host's file system: a directory shared over NFS by
 * several hosts is not supported (see docs/quarantine.md).
 */

/** The file's name in the quarantine directory; never a held message, never counted (see isSharedUsageFile). */
export const SHARED_USAGE_FILE = 'usage.sqlite';
/** Waiting for another process's transaction longer than this means something holds the file: the process counts alone. */
export const SHARED_BUSY_MS = 1000;
/** A reservation older than this is dropped whoever holds it: a put takes seconds, a pid may be reused or of another host. */
export const RESERVATION_TTL_MS = 15 * 60_000;
/** What a checkpoint leaves of this small file's WAL (SQLite checkpoints it every 1000 pages, ~4 MB: it grows to that between). */
const WAL_LIMIT_BYTES = 256 * 1024;

/**
 * This process's start: rows of this pid with another token (or none, written
 * before tokens were kept) are an earlier life's. Kept on `process`, not in the
 * module: two copies of this module in one process must not judge each other's
 * rows dead.
 */
const START_KEY = Symbol.for('mailward.quarantine.process-start');
function processStart(): string {
  const holder = process as unknown as Record<symbol, string | undefined>;
  return (holder[START_KEY] ??= randomUUID());
}

/** The shared file and SQLite's companions (WAL, shared memory, rollback journal), and the rebuild's lock (see moveAsideIfCorrupt). */
export function isSharedUsageFile(name: string): boolean {
  return name === SHARED_USAGE_FILE || (name.startsWith(`${SHARED_USAGE_FILE}-`) && ['wal', 'shm', 'journal', 'lock', 'lock-journal'].includes(name.slice(SHARED_USAGE_FILE.length + 1)));
}

/**
 * SQLite's answers for a file that is not, or no longer, a sound database. Not
 * SQLITE_BUSY/LOCKED (another process holds it), SQLITE_FULL or SQLITE_IOERR:
 * the file may be fine, so it is kept and the process counts alone meanwhile.
 */
export function isCorrupt(err: unknown): boolean {
  return /^SQLITE_(NOTADB|CORRUPT)/.test((err as { code?: unknown } | null)?.code?.toString() ?? '');
}

/** The inode at `path`, or 0 when there is no file. */
function inodeOf(path: string): number {
  try {
    return statSync(path).ino;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
}

/**
 * The shared file at `path` was found corrupt while it was the file of inode
 * `inode`: moves it (and its -wal and -shm) aside as
 * `usage.sqlite.corrupt-TIME`, kept for the operator, never deleted. Returns
 * that name, or null when the file at `path` is another one already (a
 * process that noticed at the same time replaced it: its new file must not be
 * moved aside in turn, nor the count it is rebuilding lost). A stat then a
 * rename is not atomic, so both run under a lock: an exclusive transaction
 * on a small SQLite file of its own, `usage.sqlite-lock`, whose lock the
 * kernel drops if its holder dies (a lock file left by a crash would need an
 * age to be judged stale). Throws when the lock cannot be had within
 * SHARED_BUSY_MS: the caller then counts alone, as for a busy file.
 */
export function moveAsideIfCorrupt(path: string, inode: number, now = new Date()): string | null {
  const lockPath = `${path}-lock`;
  createOwnedLikeDirectory(lockPath);
  refuseLinkedSqlite(lockPath);
  const lock = new Database(lockPath, { timeout: SHARED_BUSY_MS });
  try {
    lockExclusive(lock, lockPath);
    if (inodeOf(path) !== inode) return null;
    const aside = `${path}.corrupt-${now.toISOString().replace(/[:.]/g, '-')}`;
    // The WAL and shared memory first: a process opening the path meanwhile must not apply the old WAL to a new file.
    for (const suffix of ['-wal', '-shm', '']) {
      try {
        renameSync(`${path}${suffix}`, `${aside}${suffix}`);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    return aside;
  } finally {
    lock.close(); // Ends the transaction: the lock is released.
  }
}

/**
 * Takes the rebuild's lock. The lock file holds nothing (never written): one
 * spoilt like the shared file (garbage bytes, SQLITE_NOTADB) would refuse the
 * lock, and so every rebuild, for good. It is emptied in place (the same inode
 * for every process: no two hold two locks) and tried once more; no process
 * can hold a lock on a file SQLite cannot read.
 */
function lockExclusive(lock: Database.Database, lockPath: string): void {
  try {
    lock.exec('BEGIN EXCLUSIVE');
  } catch (err) {
    if (!isCorrupt(err)) throw err;
    // Through a descriptor, never a symlink or a file with another name: root may be the one emptying it.
    // Nor a FIFO (an open for writing would wait for a reader for ever): util/owner.
    const fd = openRegularFile(lockPath, constants.O_WRONLY);
    try {
      if (fstatSync(fd).nlink > 1) throw new Error(`${lockPath} has more than one name (a hard link): not emptied; remove it`);
      ftruncateSync(fd, 0);
    } finally {
      closeSync(fd);
    }
    lock.exec('BEGIN EXCLUSIVE');
  }
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS usage_total (
  id         INTEGER PRIMARY KEY CHECK (id = 1),
  base       INTEGER NOT NULL,   -- bytes: the last scan, plus settled puts, minus deletes since
  scanned_at INTEGER,            -- ms since the epoch of the last finished scan; NULL: never
  seq        INTEGER NOT NULL    -- orders scans and the puts settled while one runs
);
INSERT OR IGNORE INTO usage_total VALUES (1, 0, NULL, 0);
-- The start seq of the scan whose count base is: an older scan finishing later must not overwrite it.
CREATE TABLE IF NOT EXISTS usage_counted (
  id       INTEGER PRIMARY KEY CHECK (id = 1),
  scan_seq INTEGER NOT NULL
);
INSERT OR IGNORE INTO usage_counted VALUES (1, 0);
CREATE TABLE IF NOT EXISTS usage_reservation (
  id       INTEGER PRIMARY KEY,
  host     TEXT NOT NULL,
  pid      INTEGER NOT NULL,
  bytes    INTEGER NOT NULL,
  at       INTEGER NOT NULL,
  kept_seq INTEGER,             -- NULL: being written; else settled while a scan ran (see finishScan)
  start_token TEXT              -- the writer's processStart(); NULL: written before tokens were kept
);
CREATE TABLE IF NOT EXISTS usage_scan (
  id   INTEGER PRIMARY KEY,
  host TEXT NOT NULL,
  pid  INTEGER NOT NULL,
  at   INTEGER NOT NULL,
  seq  INTEGER NOT NULL,
  start_token TEXT
);
`;

/**
 * A file made by a version without start tokens gets the column. In one
 * IMMEDIATE transaction: two processes opening it at once must not both add it.
 * Older processes still running write rows without it (NULL): see stale().
 */
function addStartTokens(db: Database.Database): void {
  db.transaction(() => {
    for (const table of ['usage_reservation', 'usage_scan']) {
      const columns = db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[];
      if (!columns.some((c) => c.name === 'start_token')) db.exec(`ALTER TABLE ${table} ADD COLUMN start_token TEXT`);
    }
  }).immediate();
}

/** Whether a process of this host is alive: EPERM is a live process of another user. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/**
 * The shared total as the MTA bounds by it (base and every reservation), read
 * without changing the file: a listing's summary, instead of a stat of every
 * file in the directory. Undefined when there is no file (nothing held with a
 * bound yet: it is not made here), its first count is not done (just made or
 * rebuilt), or it cannot be read (corrupt, locked, an older schema): the
 * caller counts the directory instead.
 */
export function readSharedTotal(path: string): number | undefined {
  let db: Database.Database | undefined;
  try {
    refuseLinkedSqlite(path); // Root (the CLI's listing): SQLite would give a hard-linked -wal or -shm the file's owner.
    db = new Database(path, { fileMustExist: true, timeout: SHARED_BUSY_MS });
    const read = db.transaction(() => {
      const row = db!.prepare('SELECT base, scanned_at FROM usage_total WHERE id = 1').get() as { base: number; scanned_at: number | null } | undefined;
      if (!row || row.scanned_at === null) return undefined;
      return row.base + (db!.prepare('SELECT COALESCE(SUM(bytes), 0) AS n FROM usage_reservation').get() as { n: number }).n;
    });
    return read.deferred();
  } catch {
    return undefined;
  } finally {
    db?.close();
  }
}

/** Who wrote a reservation or scan row, and when. */
interface Row {
  host: string;
  pid: number;
  start_token: string | null;
  at: number;
}

export class SharedUsage {
  private readonly db: Database.Database;
  private readonly host = hostname();
  private readonly pid = process.pid;
  private readonly start = processStart();
  /**
   * The file this handle is on. Another process that found it corrupt may have
   * moved it aside and made a new one (replaced()); a corrupt error on opening
   * carries the inode found (`inode` on the error) for moveAsideIfCorrupt.
   */
  readonly inode: number;

  constructor(readonly path: string) {
    // The inode before the open and after the setup (which may wait SHARED_BUSY_MS for a lock): the same
    // one, so the handle is on it. Else the file was made or replaced meanwhile (moved aside as corrupt by
    // another process): the handle may be on the file moved aside while the path names the new one, and
    // replaced() would never say so. Opened again (a rebuild happens once: a third try is not expected).
    for (let tries = 1; ; tries++) {
      const found = inodeOf(path);
      let db: Database.Database;
      try {
        db = openSharedSqlite(path, SHARED_BUSY_MS, (db) => {
          // A lost commit costs at most a count that the next scan corrects: no fsync on the mail path.
          db.pragma('synchronous = NORMAL');
          db.pragma(`journal_size_limit = ${WAL_LIMIT_BYTES}`);
          db.exec(SCHEMA);
          addStartTokens(db);
        });
      } catch (err) {
        if (isCorrupt(err) && found) Object.assign(err as object, { inode: found });
        throw err;
      }
      const after = inodeOf(path);
      if (after === found || tries === 3) {
        this.db = db;
        // After three changes under it, a stale inode (0 when none): replaced() says so at the first use.
        this.inode = after === found ? after : 0;
        return;
      }
      db.close();
    }
  }

  /** The file at the path is no longer this handle's (moved aside as corrupt by another process, or removed). */
  replaced(): boolean {
    return inodeOf(this.path) !== this.inode;
  }

  private readonly statements = new Map<string, Database.Statement>();

  /** Prepared once per handle: preparing on every call cost more than the transaction itself. */
  private sql(text: string): Database.Statement {
    let statement = this.statements.get(text);
    if (!statement) {
      statement = this.db.prepare(text);
      this.statements.set(text, statement);
    }
    return statement;
  }

  private immediate<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  private get row(): { base: number; scanned_at: number | null; seq: number } {
    return this.sql('SELECT base, scanned_at, seq FROM usage_total WHERE id = 1').get() as { base: number; scanned_at: number | null; seq: number };
  }

  private reserved(): number {
    return (this.sql('SELECT COALESCE(SUM(bytes), 0) AS n FROM usage_reservation').get() as { n: number }).n;
  }

  /** Bytes in the directory by the shared count: base and every reservation. */
  total(): number {
    // A read: one snapshot of both tables, no write lock.
    return this.db.transaction(() => this.row.base + this.reserved()).deferred();
  }

  /** When the last scan by any process finished (ms), or -Infinity. */
  scannedAt(): number {
    return this.row.scanned_at ?? -Infinity;
  }

  /** Reserves `bytes` if the total stays within `maxBytes`: the reservation's id, or null (full; `total` says how full). */
  reserve(bytes: number, maxBytes: number, now: number): { id: number | null; total: number } {
    return this.immediate(() => {
      const total = this.row.base + this.reserved();
      if (total + bytes > maxBytes) return { id: null, total };
      const info = this.sql('INSERT INTO usage_reservation (host, pid, start_token, bytes, at) VALUES (?, ?, ?, ?, ?)').run(this.host, this.pid, this.start, bytes, now);
      return { id: Number(info.lastInsertRowid), total: total + bytes };
    });
  }

  /**
   * The put is done: its bytes join base (`kept`), or are given back. `id`
   * null: reserved in a file since replaced (moved aside as corrupt), so not
   * a row of this one; kept, its bytes are added as a put settled now.
   */
  settle(id: number | null, bytes: number, kept: boolean): void {
    this.immediate(() => {
      const found = id === null || this.sql('DELETE FROM usage_reservation WHERE id = ? AND kept_seq IS NULL').run(id).changes > 0;
      if (!kept) return;
      let scanning = this.sql('SELECT 1 FROM usage_scan LIMIT 1').get() !== undefined;
      if (scanning && found) {
        // A scan of a dead process would keep every put aside until some later scan starts (when full,
        // or at the purge): one row per put, each summed by every reservation. Checked only while a scan row exists.
        // By pid only: the caller's clock is not the one the scans were stamped with (tests).
        this.dropDeadScans();
        this.foldKeptIfNoScan();
        scanning = this.sql('SELECT 1 FROM usage_scan LIMIT 1').get() !== undefined;
      }
      if (scanning && found) {
        // A running scan may or may not have listed its files: kept aside until finishScan decides.
        const seq = this.row.seq + 1;
        this.sql('UPDATE usage_total SET seq = ? WHERE id = 1').run(seq);
        this.sql('INSERT INTO usage_reservation (id, host, pid, start_token, bytes, at, kept_seq) VALUES (?, ?, ?, ?, ?, ?, ?)').run(id ?? null, this.host, this.pid, this.start, bytes, 0, seq);
      } else {
        // Found or dropped meanwhile as stale (a put slower than the TTL): its files are on disk either way.
        this.sql('UPDATE usage_total SET base = base + ? WHERE id = 1').run(bytes);
      }
    });
  }

  /** Files of these bytes were deleted (a scan that runs meanwhile may count them: errs towards full). */
  subtract(bytes: number): void {
    if (bytes > 0) this.immediate(() => this.sql('UPDATE usage_total SET base = MAX(0, base - ?) WHERE id = 1').run(bytes));
  }

  /** A scan starts (before the directory is listed): its id for finishScan. */
  startScan(now: number): number {
    return this.immediate(() => {
      this.dropDeadScans(now);
      const seq = this.row.seq + 1;
      this.sql('UPDATE usage_total SET seq = ? WHERE id = 1').run(seq);
      return Number(this.sql('INSERT INTO usage_scan (host, pid, start_token, at, seq) VALUES (?, ?, ?, ?, ?)').run(this.host, this.pid, this.start, now, seq).lastInsertRowid);
    });
  }

  /**
   * The scan counted `counted` bytes: base becomes that. Puts settled before it
   * started were listed (their rows go); those settled since, maybe not: added
   * on top once no scan runs. In-flight reservations stay as they are.
   */
  finishScan(id: number, counted: number, now: number): void {
    this.immediate(() => {
      const scan = this.sql('SELECT seq FROM usage_scan WHERE id = ?').get(id) as { seq: number } | undefined;
      // Dropped as stale meanwhile: treat every kept row as unseen (errs towards full).
      const startSeq = scan?.seq ?? 0;
      this.sql('DELETE FROM usage_scan WHERE id = ?').run(id);
      const countedSeq = (this.sql('SELECT scan_seq FROM usage_counted WHERE id = 1').get() as { scan_seq: number }).scan_seq;
      if (startSeq < countedSeq) {
        // A scan that started later already set base and dropped the kept rows it listed: this older
        // count may miss those puts (they would be lost from the total). Only fold in what is left.
        this.foldKeptIfNoScan();
        return;
      }
      this.sql('DELETE FROM usage_reservation WHERE kept_seq IS NOT NULL AND kept_seq < ?').run(startSeq);
      let base = counted;
      if (this.sql('SELECT 1 FROM usage_scan LIMIT 1').get() === undefined) {
        base += (this.sql('SELECT COALESCE(SUM(bytes), 0) AS n FROM usage_reservation WHERE kept_seq IS NOT NULL').get() as { n: number }).n;
        this.sql('DELETE FROM usage_reservation WHERE kept_seq IS NOT NULL').run();
      }
      this.sql('UPDATE usage_total SET base = ?, scanned_at = ? WHERE id = 1').run(base, now);
      this.sql('UPDATE usage_counted SET scan_seq = ? WHERE id = 1').run(startSeq);
    });
  }

  /** The scan failed: it no longer holds settled puts aside. */
  abortScan(id: number): void {
    this.immediate(() => {
      this.sql('DELETE FROM usage_scan WHERE id = ?').run(id);
      this.foldKeptIfNoScan();
    });
  }

  /** No scan runs any more: puts kept aside join base (no count of this base listed them). */
  private foldKeptIfNoScan(): void {
    if (this.sql('SELECT 1 FROM usage_scan LIMIT 1').get() !== undefined) return;
    const kept = (this.sql('SELECT COALESCE(SUM(bytes), 0) AS n FROM usage_reservation WHERE kept_seq IS NOT NULL').get() as { n: number }).n;
    this.sql('DELETE FROM usage_reservation WHERE kept_seq IS NOT NULL').run();
    this.sql('UPDATE usage_total SET base = base + ? WHERE id = 1').run(kept);
  }

  /**
   * Drops reservations and scans left by processes that died (a pid of this
   * host that is gone, or this pid in an earlier life) or older than
   * RESERVATION_TTL_MS. Returns the bytes
   * given back. Called only when room runs out: a put that fits checks nothing.
   */
  dropDead(now: number): number {
    return this.immediate(() => {
      let freed = 0;
      const reservations = this.sql('SELECT id, host, pid, start_token, bytes, at FROM usage_reservation WHERE kept_seq IS NULL').all() as (Row & { id: number; bytes: number })[];
      for (const r of reservations.filter((row) => this.stale(row, now))) {
        this.sql('DELETE FROM usage_reservation WHERE id = ?').run(r.id);
        freed += r.bytes;
      }
      this.dropDeadScans(now);
      return freed;
    });
  }

  /**
   * A row left by a process of this host that is gone, or older than
   * RESERVATION_TTL_MS (when `now` is given). This pid with another start
   * token, or none, is an earlier life of it (the pid alone would call it ours
   * and hold its bytes until the TTL).
   */
  private stale(row: Row, now?: number): boolean {
    if (now !== undefined && now - row.at >= RESERVATION_TTL_MS) return true;
    if (row.host !== this.host) return false;
    if (row.pid === this.pid) return row.start_token !== this.start;
    return !alive(row.pid);
  }

  /** Scans of dead processes would hold settled puts aside for good (never folded into base): dropped. */
  private dropDeadScans(now?: number): void {
    const scans = this.sql('SELECT id, host, pid, start_token, at FROM usage_scan').all() as (Row & { id: number })[];
    for (const s of scans.filter((row) => this.stale(row, now))) this.sql('DELETE FROM usage_scan WHERE id = ?').run(s.id);
  }

  close(): void {
    this.db.close();
  }
}
