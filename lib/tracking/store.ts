import type { TraceFilter, TrackingReader, TrackingRow } from './types';

/**
 * A database that takes tracking rows. Inserting a row whose ref is already
 * there is a no-op, so replaying a spool (or a batch whose commit we never
 * heard back about) can never duplicate a row.
 */
export interface RowStore {
  /** Human-readable target for logs (never includes a password). */
  readonly description: string;
  /** Inserts the rows; resolves with how many were new. Rejects when the database is unusable. */
  insert(rows: TrackingRow[]): Promise<number>;
  /**
   * Deletes up to `limit` rows of transactions that started before `time`;
   * resolves with how many went. Without it, `retention_days` purges nothing.
   */
  purgeBefore?(time: Date, limit: number): Promise<number>;
  close(): Promise<void>;
}

/** Both backends are a writer's store and a reader at once. */
export type TrackingStore = RowStore & TrackingReader;

/** Default number of rows `find` returns when the filter has no limit. */
export const DEFAULT_FIND_LIMIT = 100;

/**
 * How `--from` / `--to` values match: `<>` is the null sender, a value without
 * `@` (or starting with `@`) is a domain, anything else an exact address.
 * Always case-insensitive.
 */
export type AddressMatch = { kind: 'null' } | { kind: 'domain'; domain: string } | { kind: 'address'; address: string };

export function addressMatch(value: string): AddressMatch {
  const v = value.trim().toLowerCase();
  if (v === '<>' || v === '') return { kind: 'null' };
  const bare = v.replace(/^<(.*)>$/, '$1');
  if (bare.startsWith('@')) return { kind: 'domain', domain: bare.slice(1) };
  if (!bare.includes('@')) return { kind: 'domain', domain: bare };
  return { kind: 'address', address: bare };
}

/**
 * The trace filter applied in memory, for rows still in a spool: the same
 * matches as the SQL of both backends (address case-insensitive, a domain
 * matches every address at it, `<>` the null sender, or for `to` no recipient).
 */
export function rowMatches(row: TrackingRow, filter: TraceFilter): boolean {
  if (filter.since && !(Date.parse(row.time) >= filter.since.getTime())) return false;
  if (filter.ip && row.remoteIp !== filter.ip) return false;
  if (filter.action && row.action !== filter.action) return false;
  if (filter.from !== undefined && !addressMatches(row.mailFrom, addressMatch(filter.from))) return false;
  if (filter.to !== undefined) {
    const m = addressMatch(filter.to);
    if (m.kind === 'null' ? row.rcptTo.length > 0 : !row.rcptTo.some((r) => addressMatches(r, m))) return false;
  }
  return true;
}

function addressMatches(address: string | null, m: AddressMatch): boolean {
  if (address === null) return false;
  const a = address.toLowerCase();
  if (m.kind === 'null') return a === '';
  if (m.kind === 'address') return a === m.address;
  return a.endsWith(`@${m.domain}`);
}

/** Escapes LIKE wildcards so a domain is matched literally (escape character: backslash). */
export function likeLiteral(value: string): string {
  return value.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/** A row's values in column order (JSON fields as text), as both backends insert them. */
export function rowValues(row: TrackingRow): unknown[] {
  return [
    row.ref, row.time, row.node, row.queueId, row.messageId, row.remoteIp, row.ptr, row.helo, row.mailFrom,
    JSON.stringify(row.rcptTo), row.size, JSON.stringify(row.groups), row.score, row.action, row.phase,
    JSON.stringify(row.symbols), row.reason, row.parseResult, row.processingMs,
  ];
}
