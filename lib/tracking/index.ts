import type { Logger } from '../checks/types';
import type { TrackingSettings } from '../config/shared';
import { PostgresTrackingStore, type PostgresOptions } from './postgres';
import { SqliteTrackingStore } from './sqlite';
import type { TrackingStore } from './store';
import type { TrackingReader } from './types';
import { BatchingTrackingWriter, DisabledTrackingWriter } from './writer';

export type { TrackingReader, TrackingRow, TrackingWriter, TraceFilter } from './types';
export { BatchingTrackingWriter, DisabledTrackingWriter, type WriterStats } from './writer';
export { rowForEarlyEnd, rowFromVerdict } from './row';
export type { RowStore, TrackingStore } from './store';

/** Deadlines for the PostgreSQL backend (not in mailward.ini: the defaults suit a LAN). */
export type PostgresTimeouts = Pick<PostgresOptions, 'connectTimeoutMs' | 'queryTimeoutMs'>;

/** The configured backend as a store (the writer's database and a reader at once). */
export function openTrackingStore(settings: TrackingSettings, log?: Logger, timeouts: PostgresTimeouts = {}, readonly = false): TrackingStore {
  if (settings.backend === 'postgres') {
    return new PostgresTrackingStore({
      url: settings.postgresUrl,
      schema: settings.postgresSchema,
      table: settings.postgresTable,
      log,
      ...timeouts,
    });
  }
  return new SqliteTrackingStore(settings.sqlitePath, { readonly, log, busyTimeoutMs: readonly ? 2000 : MTA_BUSY_TIMEOUT_MS });
}

/**
 * How long the MTA's writer waits for another process's lock on the SQLite
 * file (a backup, a sqlite3 shell). better-sqlite3 waits on the event loop, so
 * every connection of the process waits with it; past this the batch goes to
 * the spool and is replayed later.
 */
const MTA_BUSY_TIMEOUT_MS = 100;

/**
 * The writer an MTA uses: one per process, `write(row)` at the end of every
 * transaction, `close()` at shutdown. Opening never fails: PostgreSQL is
 * connected and an SQLite file opened on the first batch, and a database that
 * cannot be reached or opened sends rows to the spool until it can.
 */
export function createTrackingWriter(settings: TrackingSettings, log: Logger, timeouts?: PostgresTimeouts): BatchingTrackingWriter | DisabledTrackingWriter {
  if (!settings.enabled) return new DisabledTrackingWriter();
  return new BatchingTrackingWriter(openTrackingStore(settings, log, timeouts), settings, log);
}

/** Reads rows for `mailward trace` / `explain` from the configured backend. */
export function createTrackingReader(settings: TrackingSettings): TrackingReader {
  return openTrackingStore(settings, undefined, {}, true);
}
