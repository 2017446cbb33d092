import { access, link, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import { closeSync, constants, fstatSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Logger } from '../checks/types';
import { ClaimBusyError, DELIVERED_SUFFIX, LOCK_SUFFIX, readClaim, takeClaim, type Claim, type ClaimInfo } from './claim';
import { SqliteQuarantineIndex } from './index-sqlite';
import { createFile, makeDirectory, NotRegularFileError, readRegularFile, readRegularFileSync } from '../util/owner';
import { tidyLeftovers } from './leftovers';
import type { HeldSummary, QuarantineEntry, QuarantineFilter, QuarantineIndex, QuarantineRecord, QuarantineStore } from './types';
import { mb, QuarantineFullError, usageFor, usageStarted, type BoundSettings } from './usage';

export interface FileQuarantineOptions {
  /** Default: a SQLite index in the quarantine directory (`index.sqlite`), one handle per process. */
  index?: QuarantineIndex;
  /** Held messages older than this are deleted by purge(). */
  retentionDays?: number;
  /** The directory's byte bound ([quarantine] max_mb): a put past it fails with QuarantineFullError. Absent or 0: none. */
  maxBytes?: number;
  /** Named in the log when full (the caller acts on it). Default defer. */
  whenFull?: BoundSettings['whenFull'];
  /** Milliseconds since the epoch (tests move it for the once-a-minute rescan). */
  clock?: () => number;
  log?: Logger;
}

/** What the disk or a quota says when it is full: handled as the bound is ([quarantine] when_full), not as a broken store. */
const NO_SPACE = new Set(['ENOSPC', 'EDQUOT']);

const INDEX_FILE = 'index.sqlite';
const sharedIndexes = new Map<string, SqliteQuarantineIndex>();

/** One SQLite handle per index file per process (the MTA builds a store per held message). */
function sharedSqliteIndex(dir: string, log?: Logger): SqliteQuarantineIndex {
  const path = join(dir, INDEX_FILE);
  let index = sharedIndexes.get(path);
  if (!index) {
    index = new SqliteQuarantineIndex(path, log);
    sharedIndexes.set(path, index);
  }
  return index;
}

/** Closes the per-process SQLite indexes (tests; a CLI exits anyway). */
export async function closeSharedIndexes(): Promise<void> {
  for (const index of sharedIndexes.values()) await index.close();
  sharedIndexes.clear();
}

const REF = /^[0-9A-Z]+$/;

/**
 * The file at `path` itself, never one a symlink put at its name points to:
 * the directory's owner (the MTA's user) controls its names, and root (the
 * CLI) reading a file of root's through one would print it (`show`) or send
 * it to the record's recipients (`release`). Put's names are never symlinks,
 * nor FIFOs (which would hang the reader for ever): see readRegularFile. A
 * message has two names for a moment (REF.eml.tmp linked to REF.eml), so a
 * hard link is refused only when not owned like the directory (root's file).
 */
async function readNamed(path: string): Promise<Buffer> {
  try {
    return await readRegularFile(path, { ownLinksOnly: true });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ELOOP') e.message = `${path} is a symlink, not a file a put made: not read; remove it`;
    throw e;
  }
}

/**
 * Writes a file and flushes it to the disk before resolving: a held message is
 * accepted (250) on the strength of these files, and without the flush a power
 * cut can leave a record beside an empty or cut-short message.
 */
async function writeDurably(path: string, data: string | Buffer, log?: Logger): Promise<void> {
  // A new file, never one written through: a name left by a crash, or planted as a symlink or hard link to a
  // file of root's by the directory's owner, is removed first. Made by root, the MTA user's (util/owner).
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
  const fd = createFile(path);
  let made;
  try {
    made = fstatSync(fd);
  } finally {
    closeSync(fd);
  }
  // Opened again for a FileHandle: the very file made above, or nothing is written. O_NONBLOCK: a FIFO the
  // directory's owner swapped in meanwhile would otherwise keep this open (root's release, or the MTA) waiting
  // for a reader for ever; it fails at once (ENXIO), or opens and is not the file made (below).
  const handle = await open(path, constants.O_WRONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const opened = await handle.stat();
    if (opened.ino !== made.ino || opened.dev !== made.dev) throw new Error(`${path} was replaced while it was being written`);
    await handle.writeFile(data);
    await syncHandle(handle, 'file', path, log);
  } finally {
    await handle.close();
  }
}

/**
 * What fsync says on a file system that cannot flush at all (some FUSE and
 * SMB mounts): not a failed write. Refusing every put there would deliver
 * every message meant to be held. EIO, ENOSPC and the rest are real failures.
 */
const CANNOT_SYNC = new Set(['EINVAL', 'ENOTSUP', 'EOPNOTSUPP']);
/** Where a refused flush was said already (once per process, file and directory apart). */
const saidCannotSync = new Set<string>();

/**
 * Flushes a file or a directory handle. A file system that does not support
 * it is warned about once per process and directory, and the write goes on
 * without that guarantee; any other error is raised.
 */
export async function syncHandle(handle: { sync(): Promise<void> }, kind: 'file' | 'directory', path: string, log?: Logger): Promise<void> {
  try {
    await handle.sync();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    // A directory handle: EISDIR, EPERM where one cannot be flushed at all (as before, not warned about).
    if (kind === 'directory' && (code === 'EISDIR' || code === 'EPERM')) return;
    if (!CANNOT_SYNC.has(code)) throw err;
    const dir = kind === 'directory' ? path : dirname(path);
    const key = `${kind}\0${dir}`;
    if (saidCannotSync.has(key)) return;
    saidCannotSync.add(key);
    log?.warn(
      `mailward quarantine: the file system of ${dir} does not flush ${kind === 'file' ? 'files' : 'directories'} to disk (fsync: ${code}); ` +
        'messages are held without that guarantee (a power cut may lose or cut short the latest ones)',
    );
  }
}

/** Flushes a directory's entries (a new name, a rename). One that cannot be opened for it (some platforms) is passed over. */
async function syncDirectory(dir: string, log?: Logger): Promise<void> {
  let handle;
  try {
    // O_DIRECTORY: a FIFO put at its name would block the open for ever.
    handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch {
    return;
  }
  try {
    await syncHandle(handle, 'directory', dir, log);
  } finally {
    await handle.close().catch(() => {});
  }
}

/** A record file that does not parse (cut short or edited by hand): the message names the file, for one line of the CLI. */
export class CorruptRecordError extends Error {
  override name = 'CorruptRecordError';
}

function parseRecord(path: string, json: string): QuarantineRecord {
  let record: unknown;
  try {
    record = JSON.parse(json);
  } catch (err) {
    // JSON.parse's message quotes the text: only where it failed is said (it may be a file of root's a hard link names).
    const at = /position \d+/.exec((err as Error).message)?.[0];
    throw new CorruptRecordError(`${path} is not a valid quarantine record (not JSON${at ? `: ${at}` : ''}): repair or remove it`);
  }
  if (!record || typeof record !== 'object' || Array.isArray(record)) throw new CorruptRecordError(`${path} is not a valid quarantine record (not a JSON object): repair or remove it`);
  const parsed = record as QuarantineRecord;
  parsed.status ??= 'held';
  return parsed;
}

/**
 * Why a held message is no longer the one that was held, if it is not: its
 * file is not the size it had when it was put (truncated or emptied on disk
 * since). Releasing it would deliver, and learn as ham, what is left of it.
 * A record written before sizes were kept has none and is not checked.
 */
export function damage(record: QuarantineRecord, raw: Buffer | number): string | undefined {
  const length = typeof raw === 'number' ? raw : raw.length;
  if (typeof record.size !== 'number' || length === record.size) return undefined;
  return `${record.ref}.eml is ${length} bytes, but it was ${record.size} bytes when held`;
}
/** Marks a record whose last index write failed (see indexRecord). */
const REINDEX = '.reindex';

/**
 * Embedded quarantine: each held message as REF.eml beside REF.json (its
 * verdict and status), written to a temporary name first so a crash never
 * leaves half a message that looks whole. The files are the truth; the index
 * (SQLite here, PostgreSQL for a fleet) makes listing fast and is brought
 * back in line with the files by sync().
 */
export class FileQuarantine implements QuarantineStore {
  private readonly ownIndex?: QuarantineIndex;
  private readonly log?: Logger;

  constructor(
    readonly dir: string,
    private readonly options: FileQuarantineOptions = {},
  ) {
    this.ownIndex = options.index;
    this.log = options.log;
  }

  /** The index, opened on first use. */
  get index(): QuarantineIndex {
    return this.ownIndex ?? sharedSqliteIndex(this.dir, this.log);
  }

  private paths(ref: string) {
    if (!REF.test(ref)) throw new Error(`invalid quarantine ref ${JSON.stringify(ref)}`);
    return { eml: join(this.dir, `${ref}.eml`), meta: join(this.dir, `${ref}.json`) };
  }

  private async writeMeta(record: QuarantineRecord, text = JSON.stringify(record, null, 2)): Promise<void> {
    const { meta } = this.paths(record.ref);
    try {
      await writeDurably(`${meta}.tmp`, text, this.log);
      await rename(`${meta}.tmp`, meta);
      await syncDirectory(this.dir, this.log);
    } catch (err) {
      // A full disk leaves a cut-short copy: not a record of anything.
      await unlink(`${meta}.tmp`).catch(() => {});
      throw err;
    }
  }

  /**
   * Indexing failures are logged, never raised: the record is safe on disk, and
   * a marker file (<ref>.reindex) makes the next sync() index it again, in
   * whichever process lists next (a status change the index missed included).
   */
  private async indexRecord(record: QuarantineRecord): Promise<void> {
    try {
      await this.index.upsert(record);
    } catch (err) {
      this.log?.warn(`mailward quarantine: ${record.ref} (${record.status}) is on disk but not in the index yet; the next listing indexes it (${(err as Error).message})`);
      const marker = join(this.dir, `${record.ref}${REINDEX}`);
      try {
        closeSync(createFile(marker)); // Exists already (EEXIST): marked before.
      } catch {
        // not marked: the warning above stands
      }
    }
  }

  private get bound(): BoundSettings {
    return { maxBytes: this.options.maxBytes ?? 0, whenFull: this.options.whenFull ?? 'defer' };
  }

  private now(): number {
    return (this.options.clock ?? Date.now)();
  }

  /**
   * Keeps the message, within the byte bound: past it (or when the disk or a
   * quota is full) it fails with a QuarantineFullError, and nothing is left in
   * the directory.
   */
  async put(entry: QuarantineEntry, raw: Buffer): Promise<void> {
    const record: QuarantineRecord = { ...entry, size: raw.length, status: 'held' };
    const text = JSON.stringify(record, null, 2);
    const sizes = [raw.length, Buffer.byteLength(text)];
    const bound = this.bound;
    const usage = bound.maxBytes ? usageFor(this.dir) : undefined;
    const reservation = await usage?.reserve(sizes, bound, this.now(), this.log);
    try {
      await this.write(record, text, raw);
      if (reservation) usage?.settle(reservation, true);
    } catch (err) {
      if (reservation) usage?.settle(reservation, false);
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (!NO_SPACE.has(code)) throw err;
      const why = `the disk of ${this.dir} is full (${code})`;
      usageFor(this.dir).sayFull(this.now(), bound, why, this.log);
      throw new QuarantineFullError('no_space', `${why}: ${(err as Error).message}`, code);
    }
    await this.indexRecord(record);
  }

  /**
   * Counts the directory for the byte bound now rather than at the first put
   * (the MTA at start: a first put then waits for no walk of the directory).
   * Returns the bytes counted, or undefined when there is no bound.
   */
  async startUsage(): Promise<number | undefined> {
    const bound = this.bound;
    if (!bound.maxBytes) return undefined;
    const usage = usageFor(this.dir);
    await usage.ensureScanned(this.now(), this.log);
    // Said at start, not at the first message to hold: after an upgrade to a version with the bound
    // (10240 MB by default), a quarantine already larger holds nothing more until it shrinks.
    if ((usage.bytes ?? 0) >= bound.maxBytes) {
      usage.sayFull(this.now(), bound, `${this.dir} already holds ${mb(usage.bytes ?? 0)} at start, its bound is [quarantine] max_mb = ${mb(bound.maxBytes)} (mailward.ini)`, this.log);
    }
    return usage.bytes;
  }

  private async write(record: QuarantineRecord, text: string, raw: Buffer): Promise<void> {
    makeDirectory(this.dir); // Owned like its parent when root (the CLI, Haraka's register()) makes it.
    const { eml, meta } = this.paths(record.ref);
    // On disk before its record is written: a record must never outlive its message's data.
    try {
      await writeDurably(`${eml}.tmp`, raw, this.log);
    } catch (err) {
      await unlink(`${eml}.tmp`).catch(() => {});
      throw err;
    }
    // Never over another held message: link() fails if the name exists, where rename() replaces.
    try {
      await link(`${eml}.tmp`, eml);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') throw new Error(`a message with ref ${record.ref} is already held: not replaced`);
      // A file system without hard links: check, then rename (not atomic, but refs are 50 random bits).
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EXDEV') throw err;
      if (await exists(eml)) throw new Error(`a message with ref ${record.ref} is already held: not replaced`);
      await rename(`${eml}.tmp`, eml);
    } finally {
      await unlink(`${eml}.tmp`).catch(() => {});
    }
    try {
      await syncDirectory(this.dir, this.log);
      await this.writeMeta(record, text);
    } catch (err) {
      // The put fails, so the MTA delivers or defers the message instead: a copy left here would be listed and
      // could go out twice. Its record goes first (one whose directory could not be flushed may be in place already).
      await unlink(meta).catch(() => {});
      await unlink(eml).catch(() => {});
      throw err;
    }
  }

  async get(ref: string): Promise<{ entry: QuarantineRecord; raw: Buffer } | null> {
    const { eml, meta } = this.paths(ref);
    try {
      const [raw, json] = await Promise.all([readNamed(eml), readNamed(meta).then((b) => b.toString('utf8'))]);
      return { entry: parseRecord(meta, json), raw };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  /** The record alone (no message). */
  async record(ref: string): Promise<QuarantineRecord | null> {
    const { meta } = this.paths(ref);
    try {
      return parseRecord(meta, (await readNamed(meta)).toString('utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  /** Changes status fields, in the file first (durable) and then in the index. */
  async update(ref: string, changes: Partial<Pick<QuarantineRecord, 'status' | 'statusTime' | 'error'>>): Promise<QuarantineRecord> {
    const current = await this.record(ref);
    if (!current) throw new Error(`no quarantined message ${ref}`);
    const next: QuarantineRecord = { ...current, ...changes };
    if ('error' in changes && changes.error === undefined) delete next.error;
    await this.writeMeta(next);
    await this.indexRecord(next);
    return next;
  }

  async list(filter: QuarantineFilter = {}): Promise<QuarantineRecord[]> {
    return this.fromIndex(
      () => this.index.list(filter),
      async () => selectRecords(await this.recordsFromFiles(), filter),
    );
  }

  /** How many messages are held and when the oldest was held: counted by the index after a sync, as list() reads it. */
  async held(): Promise<HeldSummary> {
    return this.fromIndex(
      () => this.index.held(),
      async () => heldIn(await this.recordsFromFiles()),
    );
  }

  /**
   * list() and held() from one sync, and, when the index cannot be read, one
   * pass over the record files (and one warning): `mailward quarantine list`
   * with its summary line. Called one after the other, each synced and fell
   * back on its own, reading every record twice.
   */
  async listWithHeld(filter: QuarantineFilter = {}): Promise<{ records: QuarantineRecord[]; held: HeldSummary }> {
    return this.fromIndex(
      async () => ({ records: await this.index.list(filter), held: await this.index.held() }),
      async () => {
        const all = await this.recordsFromFiles();
        return { records: selectRecords(all, filter), held: heldIn(all) };
      },
    );
  }

  /** A read of the index once it is in line with the files (sync), or of the files themselves when the index cannot be read. */
  private async fromIndex<T>(read: () => Promise<T>, fromFiles: () => Promise<T>): Promise<T> {
    try {
      const resets = this.index.resets;
      await this.sync();
      const found = await read();
      // The index was found corrupt on the way and started empty: fill it from the files, then read again.
      if (this.index.resets === resets) return found;
      await this.sync();
      return read();
    } catch (err) {
      // The index is a cache of the files (PostgreSQL down, a locked file): what is held can
      // still be listed, more slowly, from the records themselves.
      const found = await fromFiles().catch(() => undefined);
      if (found === undefined) throw err;
      this.log?.warn(`mailward quarantine: the index cannot be read (${(err as Error).message}); listed from the files`);
      return found;
    }
  }

  /**
   * Why each of these records' message is damaged (damage()) or gone, by ref:
   * a stat of each REF.eml, no read, so a listing can show it.
   */
  async damaged(records: QuarantineRecord[]): Promise<Map<string, string>> {
    const found = new Map<string, string>();
    for (let i = 0; i < records.length; i += 256) {
      await Promise.all(
        records.slice(i, i + 256).map(async (r) => {
          try {
            const why = damage(r, (await stat(this.paths(r.ref).eml)).size);
            if (why) found.set(r.ref, why);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code === 'ENOENT') found.set(r.ref, `${r.ref}.eml is missing`);
          }
        }),
      );
    }
    return found;
  }

  /** Every record file, read without the index (list() and held() when it cannot be read). */
  private async recordsFromFiles(): Promise<QuarantineRecord[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const refs = names.filter((n) => n.endsWith('.json') && REF.test(n.slice(0, -5))).map((n) => n.slice(0, -5));
    return readRecords(this.dir, refs, this.log);
  }

  /**
   * Indexes held messages the index lacks and forgets ones whose files are
   * gone, after settling what a crash or a full disk left (see leftovers.ts).
   * Returns how many changed.
   */
  async sync(): Promise<number> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw err;
    }
    // Releases that went out while their status could not be written: record them first.
    for (const marker of names.filter((n) => n.endsWith(DELIVERED_SUFFIX))) {
      const ref = marker.slice(0, -DELIVERED_SUFFIX.length);
      if (!REF.test(ref)) continue;
      const unsettled = await this.settleDelivered(ref);
      if (unsettled) this.log?.warn(`mailward quarantine: ${ref} was delivered at ${unsettled.time} but its status still cannot be recorded: ${unsettled.error}`);
    }
    const recovered = await tidyLeftovers(this.dir, names, Date.now(), this.log);
    const onDisk = new Set([...names.filter((n) => n.endsWith('.json') && REF.test(n.slice(0, -5))).map((n) => n.slice(0, -5)), ...recovered]);
    const indexed = await this.index.refs();
    // Records whose last index write failed (a lock held elsewhere): their status may be stale.
    const markers = names.filter((n) => n.endsWith(REINDEX));
    const stale = markers.map((m) => m.slice(0, -REINDEX.length)).filter((ref) => onDisk.has(ref));
    const missing = [...onDisk].filter((ref) => !indexed.has(ref));
    const records = await readRecords(this.dir, [...new Set([...stale, ...missing])], this.log);
    // In batches, each one transaction: one per record made a first listing of 20,000 files take 15 s.
    await this.index.upsertMany(records);
    for (const marker of markers) await unlink(join(this.dir, marker)).catch(() => {});
    const vanished = [...indexed].filter((ref) => !onDisk.has(ref));
    await this.index.deleteMany(vanished);
    const changed = records.length + vanished.length;
    return changed;
  }

  /** Locks one message against a concurrent release or delete (see claim.ts). */
  async claim(ref: string, action: 'release' | 'delete'): Promise<Claim> {
    this.paths(ref);
    makeDirectory(this.dir); // Owned like its parent when root (the CLI, Haraka's register()) makes it.
    return takeClaim(this.dir, ref, action, { mayBeEmpty: action === 'delete' });
  }

  /** A lock held on the message, and when a release went out without its status being recorded. */
  async lockState(ref: string): Promise<{ lock: ClaimInfo | null; delivered: string | null }> {
    const lock = await readClaim(join(this.dir, `${ref}${LOCK_SUFFIX}`));
    const delivered = await stat(join(this.dir, `${ref}${DELIVERED_SUFFIX}`)).then(
      (s) => s.mtime.toISOString(),
      () => null,
    );
    return { lock, delivered };
  }

  /**
   * A release that was delivered but whose status could not be written left
   * REF.delivered: records the release now and removes the marker. Returns
   * null when there is nothing left to settle, else when it was delivered and
   * why it still cannot be recorded (the marker stays, so it is not sent again).
   */
  async settleDelivered(ref: string): Promise<{ time: string; error: string } | null> {
    const marker = join(this.dir, `${ref}${DELIVERED_SUFFIX}`);
    let time: string;
    try {
      time = (await stat(marker)).mtime.toISOString();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    try {
      const record = await this.record(ref);
      if (record && record.status !== 'released') await this.update(ref, { status: 'released', statusTime: time, error: undefined });
      // No record: the message was deleted since; nothing to record.
      await unlink(marker);
      return null;
    } catch (err) {
      return { time, error: (err as Error).message };
    }
  }

  /**
   * Removes a message and its record; false when there was none. Refused
   * (ClaimBusyError) while the message is being released.
   */
  async delete(ref: string): Promise<boolean> {
    const { eml, meta } = this.paths(ref);
    const claim = await this.claim(ref, 'delete');
    try {
      let found = false;
      // The count shared by the host's processes (and this process's own) learns of the delete at once,
      // the CLI's included; a process that counts alone sees others' deletes at its next rescan.
      const usage = this.bound.maxBytes ? usageFor(this.dir) : undefined;
      for (const path of [meta, eml]) {
        try {
          const size = usage ? await stat(path).then((s) => s.size, () => 0) : 0;
          await unlink(path);
          usage?.subtract(size);
          found = true;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
      }
      for (const marker of [DELIVERED_SUFFIX, REINDEX]) await unlink(join(this.dir, `${ref}${marker}`)).catch(() => {});
      // The files are gone, which is what counts (a full disk must not stop a delete): the next listing forgets it.
      try {
        await this.index.delete(ref);
      } catch (err) {
        this.log?.warn(`mailward quarantine: ${ref} deleted, but still in the index until the next listing (${(err as Error).message})`);
      }
      return found;
    } finally {
      await claim.release();
    }
  }

  /** Deletes messages held longer than the retention period; returns their refs. One being released is left for the next purge. */
  async purge(now = Date.now(), retentionDays = this.options.retentionDays): Promise<string[]> {
    if (!retentionDays || !Number.isFinite(retentionDays)) return [];
    await this.sync();
    const refs = await this.index.olderThan(new Date(now - retentionDays * 86_400_000));
    const purged: string[] = [];
    for (const ref of refs) {
      try {
        await this.delete(ref);
        purged.push(ref);
      } catch (err) {
        if (!(err instanceof ClaimBusyError)) throw err;
        this.log?.info(`mailward quarantine: purge skipped ${ref}: ${err.message}`);
      }
    }
    // Counted again, from the files: deletes by the CLI and by other nodes sharing the directory.
    if (this.bound.maxBytes && usageStarted(this.dir)) await usageFor(this.dir).rescan(this.now(), this.log);
    return purged;
  }

  async close(): Promise<void> {
    await this.ownIndex?.close();
  }
}

/** list()'s filter and order (newest first) applied to records read from the files. */
function selectRecords(records: QuarantineRecord[], filter: QuarantineFilter): QuarantineRecord[] {
  const status = filter.status ?? 'held';
  const since = filter.since?.toISOString();
  const rcpt = filter.rcpt?.toLowerCase();
  return records
    .filter((r) => (status === 'all' || r.status === status) && (!since || r.time >= since) && (!rcpt || r.rcptTo.some((a) => a.toLowerCase() === rcpt)))
    .sort((a, b) => (a.time === b.time ? a.ref.localeCompare(b.ref) : a.time < b.time ? 1 : -1))
    .slice(0, filter.limit ?? 1000);
}

/** held()'s answer from records read from the files. */
function heldIn(records: QuarantineRecord[]): HeldSummary {
  const held = records.filter((r) => r.status === 'held');
  if (!held.length) return { count: 0 };
  return { count: held.length, oldest: held.reduce((oldest, r) => (r.time < oldest ? r.time : oldest), held[0]!.time) };
}

/**
 * The records of these refs that read (a first sync may read thousands).
 * Read synchronously in chunks, yielding between them: the promise API costs
 * ~45 µs a file here against ~7 µs (20,000 files: 0.9 s against 0.14 s), and
 * a chunk holds the MTA's event loop for a few milliseconds at most.
 */
async function readRecords(dir: string, refs: string[], log?: Logger): Promise<QuarantineRecord[]> {
  const out: QuarantineRecord[] = [];
  for (let i = 0; i < refs.length; i += 256) {
    if (i) await new Promise((resolve) => setImmediate(resolve));
    for (const ref of refs.slice(i, i + 256)) {
      try {
        const path = join(dir, `${ref}.json`);
        out.push(parseRecord(path, readRegularFileSync(path, { ownLinksOnly: true }).toString('utf8')));
      } catch (err) {
        // Gone meanwhile, or unreadable: as record() would, left out of the index. A corrupt
        // record is said (at every listing, until repaired): its message is otherwise never listed.
        if (err instanceof CorruptRecordError || err instanceof NotRegularFileError) log?.warn(`mailward quarantine: ${err.message}; its message is not listed`);
      }
    }
  }
  return out;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
