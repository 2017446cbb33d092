import { closeSync, constants, createReadStream, fstatSync, ftruncateSync, futimesSync, readdirSync, readFileSync, readSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Logger } from '../checks/types';
import type { TrackingRow } from './types';
import { processAlive } from '../util/process';
import { createFile, isRefusedFile, makeDirectory, openRegularFile, withWriteAdvice } from '../util/owner';

export interface ReplayResult {
  /** Rows read back from the spool. */
  rows: number;
  /** Rows the database did not have yet. */
  added: number;
  /** Lines that were not a row (a write torn by a crash). */
  skipped: number;
}

/** A spool file and the process that owns it (null: no owner, e.g. written by hand). */
interface SpoolFile {
  path: string;
  pid: number | null;
  replaying: boolean;
}

/**
 * Append-only JSON-lines files for rows the database could not take.
 *
 * Each process appends to its own file, `<spool_path>.<pid>`, so the several
 * worker processes of a Haraka cluster never write into a file another one is
 * replaying. A replay renames the file to `<spool_path>.<pid>.replaying`
 * (appends are synchronous, so none can interleave with the rename), inserts
 * its rows in batches, and deletes it only once every batch is in. A failure
 * or a crash part-way leaves the `.replaying` file, which the next replay
 * starts with; rows already inserted are then ignored, because the database
 * keys rows by ref. Files of processes that no longer run are claimed (by an
 * atomic rename) and replayed by whichever process gets there first. So a
 * row is never lost and never stored twice.
 */
export class Spool {
  /** This process's file. */
  readonly path: string;
  readonly replayingPath: string;

  constructor(
    readonly basePath: string,
    private readonly log?: Logger,
    readonly pid = process.pid,
    /** This process's files (its spool and the one it is replaying) take at most this many bytes (max_spool_mb). */
    readonly maxBytes = Infinity,
  ) {
    this.path = `${basePath}.${pid}`;
    this.replayingPath = `${this.path}.replaying`;
  }

  private lastFullWarning = 0;

  /** Appends rows; never throws (a failure is logged, and false returned: the caller keeps the rows). */
  append(rows: TrackingRow[]): boolean {
    if (!rows.length) return true;
    let fd: number | undefined;
    let before = 0;
    try {
      let text = '';
      for (const row of rows) text += `${JSON.stringify(row)}\n`;
      // A database down for weeks must not fill the disk: past max_spool_mb the rows are the
      // caller's to keep (in memory up to max_queue, then dropped, counted, in an error).
      const used = size(this.path) + size(this.replayingPath);
      if (used + Buffer.byteLength(text) > this.maxBytes) {
        this.warnFull(used);
        return false;
      }
      fd = openForAppend(this.path);
      before = fstatSync(fd).size;
      // Half a line at the end (a crash mid-append, a reused pid): start ours on a fresh one, or
      // the first row of this append would be glued to it and unreadable at replay. Checked on
      // every append, not once: a failed append can leave such a line too (below).
      if (before > 0 && !endsWithNewline(fd, before)) text = `\n${text}`;
      writeAll(fd, text);
      return true;
    } catch (err) {
      // A write cut short (ENOSPC, EFBIG, EIO) leaves part of a line. The caller keeps these rows
      // and retries them, so cut the part off; if that fails, the next append starts a fresh line.
      if (fd !== undefined) {
        try {
          ftruncateSync(fd, before);
        } catch {
          // the tail check of the next append covers it
        }
      }
      this.log?.error(`tracking: cannot append to spool ${this.path}: ${(err as Error).message}; ${rows.length} row(s) kept in memory instead`);
      return false;
    } finally {
      try {
        if (fd !== undefined) closeSync(fd);
      } catch {
        // append never throws; the rows are written or already reported
      }
    }
  }

  private warnFull(used: number): void {
    const now = Date.now();
    if (now - this.lastFullWarning < 60_000) return;
    this.lastFullWarning = now;
    this.log?.error(`tracking: the spool ${this.path} holds ${Math.round(used / 1024)} KB, its bound (max_spool_mb); rows wait in memory up to max_queue, then the oldest are lost`);
  }

  /** True when rows wait in a spool file this process should replay (its own, or a dead process's). */
  hasRows(): boolean {
    return this.replayable().some((f) => size(f.path) > 0);
  }

  /**
   * Inserts every replayable spooled row, `batchSize` at a time, removing each
   * file once all its rows are in. Rejects, keeping what is not confirmed,
   * when an insert fails.
   */
  async replay(insert: (rows: TrackingRow[]) => Promise<number>, batchSize: number): Promise<ReplayResult> {
    const total: ReplayResult = { rows: 0, added: 0, skipped: 0 };
    const add = (r: ReplayResult) => {
      total.rows += r.rows;
      total.added += r.added;
      total.skipped += r.skipped;
    };
    // Our own interrupted replay first, then orphans, then our current file.
    if (exists(this.replayingPath)) add(await this.replayClaimed(insert, batchSize));
    for (const orphan of this.replayable().filter((f) => f.pid !== this.pid)) {
      if (!this.claim(orphan.path)) continue;
      add(await this.replayClaimed(insert, batchSize));
    }
    if (size(this.path) > 0 && this.claim(this.path)) {
      add(await this.replayClaimed(insert, batchSize));
    }
    return total;
  }

  /** Every spool file under this base path, whoever owns it (for `mailward trace`/`explain`). */
  static files(basePath: string): string[] {
    return listSpoolFiles(basePath)
      .map((f) => f.path)
      .filter((p) => size(p) > 0);
  }

  private replayable(): SpoolFile[] {
    return listSpoolFiles(this.basePath).filter((f) => f.pid === this.pid || f.pid === null || !ownedByLiveProcess(f.pid, f.path));
  }

  /** Renames a file to our `.replaying` name; false if another process claimed it first. */
  private claim(path: string): boolean {
    try {
      renameSync(path, this.replayingPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
    return true; // replayClaimed, called right after, makes it ours by its mtime
  }

  private async replayClaimed(insert: (rows: TrackingRow[]) => Promise<number>, batchSize: number): Promise<ReplayResult> {
    let fd: number;
    try {
      // Never through a symlink or (as root) a hard link the directory's owner put there to a file not its own
      // (root's, whose lines would become rows readable in the tracking database), nor a FIFO (a replay hung for
      // ever). A second name of the MTA user's own spool file (a `cp -al` backup) is read: it holds real rows.
      fd = openRegularFile(this.replayingPath, constants.O_RDONLY, { ownLinksOnly: true });
    } catch (err) {
      if (isRefusedFile(err)) {
        // Not read: said, and passed over. Thrown, the writer would take it for the database being down and
        // spool every row from then on. The next claim's rename replaces the name: a FIFO or a symlink holds no
        // rows, but a refused hard link may (a spool file of root's, from an older version, with a backup
        // name), so that one is set aside under a name no replay claims, for the operator.
        this.log?.error(`tracking: ${(err as Error).message}; not replayed${this.setAside(err)}`);
        return { rows: 0, added: 0, skipped: 0 };
      }
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      // Another process claimed it (its replay inserts the rows): not a database failure.
      return { rows: 0, added: 0, skipped: 0 };
    }
    // A rename keeps the mtime: an orphan's is older than our start, so other processes would
    // take the file for one still and rename it away from under our replay. Written "now", it
    // is ours for as long as we live (ownership is not an age, so no refresh is needed later).
    // Through the descriptor: the name may be a symlink by now (root would touch its target).
    try {
      const now = new Date();
      futimesSync(fd, now, now);
    } catch {
      // not ours to touch (another user's file): its replay goes on all the same
    }
    // Read through the open descriptor: a rename by another process cannot fail it part-way.
    const result = await this.replayFile(fd, insert, batchSize);
    try {
      unlinkSync(this.replayingPath);
    } catch (err) {
      // Gone already: taken by another process mid-replay, which inserts the same rows again
      // (ignored by ref). Every row here is in, so this is no outage.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      this.log?.warn(`tracking: ${this.replayingPath} was taken by another process during its replay; its rows are in`);
    }
    return result;
  }

  /** For a refused hard link at our `.replaying` name: renames it aside (see replayClaimed); what the log adds. */
  private setAside(err: unknown): string {
    if ((err as NodeJS.ErrnoException).code !== 'ELINKED') return '';
    const aside = `${this.replayingPath}.refused-${Date.now()}`;
    try {
      renameSync(this.replayingPath, aside); // a rename only moves the name, whatever file it is
      return `; set aside as ${aside}`;
    } catch (e) {
      return `; could not set it aside (${(e as Error).message})`;
    }
  }

  private async replayFile(fd: number, insert: (rows: TrackingRow[]) => Promise<number>, batchSize: number): Promise<ReplayResult> {
    const result: ReplayResult = { rows: 0, added: 0, skipped: 0 };
    const input = createReadStream('', { fd, encoding: 'utf8' });
    const lines = createInterface({ input, crlfDelay: Infinity });
    let batch: TrackingRow[] = [];
    try {
      for await (const line of lines) {
        if (!line.trim()) continue;
        const row = parseRow(line);
        if (!row) {
          result.skipped++;
          this.log?.warn(`tracking: skipping a spool line that is not a row (torn write?): ${line.slice(0, 80)}`);
          continue;
        }
        batch.push(row);
        if (batch.length >= batchSize) {
          result.added += await insert(batch);
          result.rows += batch.length;
          batch = [];
        }
      }
      if (batch.length) {
        result.added += await insert(batch);
        result.rows += batch.length;
      }
    } finally {
      lines.close();
      // Closes the descriptor also when an insert failed part-way (readline leaves the stream open).
      input.destroy();
    }
    return result;
  }
}

/** `<base>`, `<base>.replaying`, `<base>.<pid>` and `<base>.<pid>.replaying`. */
function listSpoolFiles(basePath: string): SpoolFile[] {
  const dir = dirname(basePath);
  const base = basename(basePath);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const files: SpoolFile[] = [];
  for (const name of names) {
    if (name === base || name === `${base}.replaying`) {
      files.push({ path: join(dir, name), pid: null, replaying: name !== base });
      continue;
    }
    if (!name.startsWith(`${base}.`)) continue;
    const m = /^(\d+)(\.replaying)?$/.exec(name.slice(base.length + 1));
    if (m) files.push({ path: join(dir, name), pid: Number(m[1]), replaying: !!m[2] });
  }
  return files;
}

/**
 * Is the file still its writer's? Its pid must be alive, and (where Linux's
 * /proc tells) that process must have started before the file was last
 * written: after a reboot or a container restart the pid may belong to
 * another process, and the file would otherwise never be replayed.
 */
function ownedByLiveProcess(pid: number, path: string): boolean {
  if (!processAlive(pid)) return false;
  const started = processStartMs(pid);
  if (started === null) return true;
  try {
    // A second of slack for clock-tick rounding.
    return started <= statSync(path).mtimeMs + 1000;
  } catch {
    return true;
  }
}

/** When a process started (ms since the epoch), from /proc on Linux; null where that cannot be read. */
function processStartMs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime, in clock ticks since boot) counts from after the ")" that ends the command name.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[19]);
    const boot = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'));
    if (!Number.isFinite(ticks) || !boot) return null;
    // USER_HZ is 100 on every Linux ABI Node runs on.
    return Number(boot[1]) * 1000 + (ticks / 100) * 1000;
  } catch {
    return null;
  }
}


/** A spool line as a row; null for a line that is none (torn by a crash mid-write). */
export function parseRow(line: string): TrackingRow | null {
  try {
    const row = JSON.parse(line) as TrackingRow;
    return row && typeof row.ref === 'string' && typeof row.time === 'string' ? row : null;
  } catch {
    return null;
  }
}

function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

function size(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** Opens (creating it, and its directory, if missing) a file to append to and read its tail. */
function openForAppend(path: string): number {
  const append = constants.O_RDWR | constants.O_APPEND;
  for (let attempt = 0; ; attempt++) {
    try {
      // Made by root (Haraka's master in cluster mode, or before the drop), the MTA user's, who replays it (util/owner).
      return createFile(path, 0o666, append);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && attempt === 0) {
        makeDirectory(dirname(path));
        continue;
      }
      if (code !== 'EEXIST' && code !== 'ENOENT') throw withWriteAdvice(err, path);
    }
    // There already. Never through a symlink or (as root) a hard link: the directory's owner may have put one
    // there to a file of root's, which root would append rows to; nor into a FIFO (rows lost, or a hang).
    try {
      return openRegularFile(path, append, { oneName: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && attempt < 3) continue; // replayed (renamed) meanwhile
      throw withWriteAdvice(err, path);
    }
  }
}

/** Is the last byte of the open file (`length` bytes long) a newline? */
function endsWithNewline(fd: number, length: number): boolean {
  const last = Buffer.alloc(1);
  return readSync(fd, last, 0, 1, length - 1) === 1 && last[0] === 0x0a;
}

/** writeSync until every byte is written (a write may take only part of it); throws on the first error. */
function writeAll(fd: number, text: string): void {
  const data = Buffer.from(text, 'utf8');
  let offset = 0;
  while (offset < data.length) offset += writeSync(fd, data, offset, data.length - offset);
}
