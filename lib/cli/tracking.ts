import { constants, createReadStream, existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { MailwardConfig } from '../config/load';
import { createTrackingReader } from '../tracking';
import { parseRow, Spool } from '../tracking/spool';
import { DEFAULT_FIND_LIMIT, rowMatches } from '../tracking/store';
import { openRegularFile } from '../util/owner';
import type { TraceFilter, TrackingReader, TrackingRow } from '../tracking/types';

/**
 * The configured tracking database, opened for reading, and the spool files
 * beside it. A database that cannot be opened or read is not an error here:
 * that is exactly when rows wait in the spool, so the commands still search it
 * and say why the database was left out.
 */
export interface TrackingSource {
  config: MailwardConfig;
  /** Null when the database could not be opened (`problem` says why). */
  reader: TrackingReader | null;
  /** What is read, for messages: "sqlite /var/haraka/data/tracking.sqlite". */
  where: string;
  /** Why the database could not be opened or read, in words for the user; null while it can. */
  problem: string | null;
  /** The spool files that may hold rows not in the database yet. */
  spoolFiles: string[];
  /** Where spool files would be, for messages: "/var/haraka/data/tracking.spool.*". */
  spoolWhere: string;
}

export function openTracking(config: MailwardConfig): TrackingSource {
  const configDir = config.configDir;
  const t = config.shared.tracking;
  const where = t.backend === 'postgres' ? `postgres ${t.postgresSchema}.${t.postgresTable}` : `sqlite ${t.sqlitePath}`;
  const source: TrackingSource = { config, reader: null, where, problem: null, spoolFiles: Spool.files(t.spoolPath), spoolWhere: `${t.spoolPath}.*` };
  if (t.backend === 'sqlite' && !existsSync(t.sqlitePath)) {
    const hint = configDir ? `from ${configDir}` : 'no --config given: give the MTA\'s config directory';
    source.problem = `no tracking database at ${t.sqlitePath} (${hint}; rows appear once mailward/tracking has written some)`;
    return source;
  }
  try {
    source.reader = createTrackingReader(t);
  } catch (err) {
    source.problem = `cannot open ${where}: ${(err as Error).message}`;
  }
  return source;
}

/** Runs a read; null when the database cannot be read, with the reason kept in `source.problem`. */
export async function tryRead<T>(source: TrackingSource, read: (reader: TrackingReader) => Promise<T>): Promise<T | null> {
  if (!source.reader) return null;
  try {
    return await read(source.reader);
  } catch (err) {
    source.problem = `cannot read ${source.where}: ${(err as Error).message}`;
    return null;
  }
}

export async function closeTracking(source: TrackingSource): Promise<void> {
  await source.reader?.close();
}

/** The spool files in words: the files, or where there are none. */
export function spoolNames(source: TrackingSource): string {
  return source.spoolFiles.length ? source.spoolFiles.join(' and ') : `none at ${source.spoolWhere}`;
}

/**
 * The spool file at `file`, open for reading, or null when it is gone (replayed since it was
 * listed). Only a regular file with that very name: the MTA's user controls the directory, and
 * root (the CLI) would otherwise hang on a FIFO put there, or read a file of root's a symlink or
 * a hard link names. A second name the MTA's user made of its own spool file (a backup made with
 * `cp -al` or rsnapshot on the same file system) is read: only reading, and nothing of root's.
 * Refused with an error that names the file, never quotes it.
 */
function openSpoolFile(file: string): number | null {
  try {
    return openRegularFile(file, constants.O_RDONLY, { ownLinksOnly: true });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') return null;
    if (e.code === 'ELOOP') e.message = `${file} is a symlink, not a spool file: not read; remove it`;
    throw e;
  }
}

/** Each line of the spool files; a file replayed (removed) since it was listed is simply done. */
async function* spoolLines(files: string[]): AsyncGenerator<{ file: string; line: string }> {
  for (const file of files) {
    const fd = openSpoolFile(file);
    if (fd === null) continue;
    const input = createReadStream('', { fd, encoding: 'utf8' });
    const lines = createInterface({ input, crlfDelay: Infinity });
    try {
      for await (const line of lines) yield { file, line };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    } finally {
      lines.close();
      input.destroy();
    }
  }
}

/** Looks for a row in the spool (database unreachable when it was written). */
export async function findInSpool(files: string[], ref: string): Promise<{ row: TrackingRow; file: string } | null> {
  // Only lines naming the ref are parsed: a spool after a long outage can be large.
  const needle = `"ref":${JSON.stringify(ref)}`;
  for await (const { file, line } of spoolLines(files)) {
    if (!line.includes(needle)) continue;
    const row = parseRow(line);
    if (row?.ref === ref) return { row, file };
  }
  return null;
}

/** Spooled rows matching a trace filter, newest first, as the databases order them. */
export async function findSpooled(files: string[], filter: TraceFilter): Promise<TrackingRow[]> {
  const limit = filter.limit ?? DEFAULT_FIND_LIMIT;
  const newestFirst = (a: TrackingRow, b: TrackingRow) => Date.parse(b.time) - Date.parse(a.time) || (a.ref < b.ref ? -1 : a.ref > b.ref ? 1 : 0);
  let found: TrackingRow[] = [];
  for await (const { line } of spoolLines(files)) {
    const row = parseRow(line);
    if (!row || !rowMatches(row, filter)) continue;
    found.push(row);
    // Memory stays bounded by the limit, however large the spool.
    if (found.length >= 2 * limit + 1000) found = found.sort(newestFirst).slice(0, limit);
  }
  return found.sort(newestFirst).slice(0, limit);
}

/** `<a@b>`, `<>` for the null sender, or a note when the transaction ended before MAIL FROM. */
export function envelopeAddress(address: string | null): string {
  if (address === null) return '(none: ended before MAIL FROM)';
  return `<${address}>`;
}

export function formatScore(score: number): string {
  return Number.isInteger(score) ? String(score) : score.toFixed(2).replace(/0$/, '');
}
