import { createReadStream, existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { loadConfig, type MailwardConfig } from '../config/load';
import { createTrackingReader } from '../tracking';
import { Spool } from '../tracking/spool';
import type { TrackingReader, TrackingRow } from '../tracking/types';
import { UserError } from './types';

/** The configured tracking database, opened for reading, with errors a user can act on. */
export interface TrackingSource {
  config: MailwardConfig;
  reader: TrackingReader;
  /** What is read, for messages: "sqlite /var/haraka/data/tracking.sqlite". */
  where: string;
  /** The spool files that may hold rows not in the database yet. */
  spoolFiles: string[];
}

export function openTracking(configDir: string | undefined): TrackingSource {
  const config = loadConfig({ configDir });
  const t = config.shared.tracking;
  const where = t.backend === 'postgres' ? `postgres ${t.postgresSchema}.${t.postgresTable}` : `sqlite ${t.sqlitePath}`;
  if (t.backend === 'sqlite' && !existsSync(t.sqlitePath)) {
    throw new UserError(
      `no tracking database at ${t.sqlitePath} (${configDir ? `from ${configDir}` : 'no --config given: give the MTA\'s config directory'}; rows appear once mailward/tracking has written some)`,
      1,
    );
  }
  let reader: TrackingReader;
  try {
    reader = createTrackingReader(t);
  } catch (err) {
    throw new UserError(`cannot open ${where}: ${(err as Error).message}`, 1);
  }
  const spoolFiles = Spool.files(t.spoolPath);
  return { config, reader, where, spoolFiles };
}

/** Runs a read, turning a database failure into one line for the user. */
export async function readRows<T>(source: TrackingSource, read: (reader: TrackingReader) => Promise<T>): Promise<T> {
  try {
    return await read(source.reader);
  } catch (err) {
    throw new UserError(`cannot read ${source.where}: ${(err as Error).message}`, 1);
  }
}

/** Looks for a row in the spool (database unreachable when it was written). */
export async function findInSpool(files: string[], ref: string): Promise<TrackingRow | null> {
  const needle = `"ref":${JSON.stringify(ref)}`;
  for (const file of files) {
    const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
    try {
      for await (const line of lines) {
        if (!line.includes(needle)) continue;
        try {
          const row = JSON.parse(line) as TrackingRow;
          if (row.ref === ref) return row;
        } catch {
          // a torn line: not this row
        }
      }
    } finally {
      lines.close();
    }
  }
  return null;
}

/** `<a@b>`, `<>` for the null sender, or a note when the transaction ended before MAIL FROM. */
export function envelopeAddress(address: string | null): string {
  if (address === null) return '(none: ended before MAIL FROM)';
  return `<${address}>`;
}

export function formatScore(score: number): string {
  return Number.isInteger(score) ? String(score) : score.toFixed(2).replace(/0$/, '');
}
