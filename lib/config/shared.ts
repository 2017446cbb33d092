import { hostname } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import type { DnsSettings } from '../dns/resolver';
import type { ActionPolicy, Thresholds } from '../score/verdict';
import type { StateSettings } from '../state/types';
import type { IniReader, SectionReader } from './reader';

export interface TrackingSettings {
  enabled: boolean;
  backend: 'sqlite' | 'postgres';
  sqlitePath: string;
  postgresUrl: string;
  postgresSchema: string;
  postgresTable: string;
  batchSize: number;
  flushIntervalMs: number;
  /** Rows waiting in memory beyond this go straight to the spool file. */
  maxQueue: number;
  spoolPath: string;
  /** How often a spool left by an outage is retried. */
  retryIntervalMs: number;
  /** This process's spool files take at most this many bytes (max_spool_mb). */
  maxSpoolBytes: number;
  /** Rows older than this many days are deleted (0: kept for ever). */
  retentionDays: number;
}

export interface QuarantineSettings {
  dir: string;
  retentionDays: number;
  /** Where `mailward quarantine release` re-injects a message by SMTP (the MTA's own listener). */
  releaseHost: string;
  releasePort: number;
  /** Bytes the directory may take (max_mb); 0: no bound. */
  maxBytes: number;
  /** What a message meant to be held gets when the bound (or the disk) is reached. */
  whenFull: 'defer' | 'deliver';
}

export interface HeaderSettings {
  /** Add X-Mailward-* headers to accepted mail too (not only add_header and above). */
  always: boolean;
  /** Value of X-Spam-Flag style header for add_header and worse: tag the subject with this, or empty. */
  subjectTag: string;
}

/** Everything in mailward.ini except `[scores]`, which needs every module's symbols first. */
export interface SharedSettings {
  nodeName: string;
  dataDir: string;
  policy: ActionPolicy;
  dns: DnsSettings;
  state: StateSettings;
  tracking: TrackingSettings;
  quarantine: QuarantineSettings;
  headers: HeaderSettings;
}

export const SHARED_FILE = 'mailward.ini';

/**
 * `[actions]`, and each `[domain:NAME]` over it. A threshold is above 0 or `off`: at 0 or below,
 * every message with nothing against it (score 0) would take that action.
 */
function readThresholds(reader: ReturnType<IniReader['section']>, base: Thresholds): Thresholds {
  const options = { off: true, above: 0 };
  const t: Thresholds = {
    reject: reader.number('reject', base.reject, options),
    soft_reject: reader.number('soft_reject', base.soft_reject, options),
    quarantine: reader.number('quarantine', base.quarantine, options),
    add_header: reader.number('add_header', base.add_header, options),
  };
  // Actions turned off (Infinity) drop out; the ones left must rise.
  const order = (['add_header', 'quarantine', 'soft_reject', 'reject'] as (keyof Thresholds)[]).filter((a) => Number.isFinite(t[a]));
  for (let i = 1; i < order.length; i++) {
    const lower = order[i - 1]!;
    const higher = order[i]!;
    if (t[higher] < t[lower]) {
      throw reader.error(higher, `threshold ${t[higher]} is below ${lower} (${t[lower]}): thresholds must rise from add_header to reject`);
    }
  }
  return t;
}

/** Reads mailward.ini. `baseDir` anchors relative paths (Haraka's directory, or the config dir's parent). */
export function parseSharedSettings(ini: IniReader, baseDir: string): SharedSettings {
  const main = ini.section('main');
  const dataDir = resolvePath(baseDir, main.string('data_dir', 'data'));
  const nodeName = main.string('node_name', hostname());

  const thresholds = readThresholds(ini.section('actions'), { reject: 15, soft_reject: 10, quarantine: 8, add_header: 5 });
  const domains = new Map<string, Thresholds>();
  for (const section of ini.sectionsMatching(/^domain:/)) {
    domains.set(section.name.slice('domain:'.length).trim().toLowerCase(), readThresholds(section, thresholds));
  }
  const policy = ini.section('policy');
  const notOverridable = new Set(policy.list('not_overridable', ['SPOOF_LOCAL_DOMAIN', 'LOOKALIKE_LOCAL_DOMAIN', 'VIRUS_FOUND']));

  const dns = ini.section('dns');
  const state = ini.section('state');
  const tracking = ini.section('tracking');
  const quarantine = ini.section('quarantine');
  const headers = ini.section('headers');

  return {
    nodeName,
    dataDir,
    policy: { thresholds, domains, notOverridable },
    dns: {
      servers: dns.ipList('servers', []),
      timeoutMs: dns.number('timeout_ms', 1500, { min: 50, max: 30000 }),
      cacheSize: dns.number('cache_size', 10000, { min: 0, integer: true }),
      cacheMaxBytes: dns.number('cache_max_kb', 16384, { min: 1, integer: true }) * 1024,
      maxTtl: dns.number('max_ttl', 3600, { min: 0 }),
      negativeTtl: dns.number('negative_ttl', 300, { min: 0 }),
    },
    state: {
      backend: state.oneOf('backend', ['memory', 'redis'] as const, 'memory'),
      redisUrl: state.url('redis_url', 'redis://127.0.0.1:6379', ['redis:', 'rediss:'], 'redis://[:password@]host:port[/db]', {
        // node-redis takes the path as the database number and throws at connect on anything else.
        check: (url) =>
          (/^(\/\d*)?$/.test(url.pathname) ? null : `the path must be a database number (/0, /1...), got ${JSON.stringify(url.pathname)}`) ??
          badPercentEscape([url.username, url.password]),
        otherForm: redisSocketUrl,
        otherForms: 'unix://[[user][:password]@]/path/to/redis.sock[?db=N]',
      }),
      prefix: state.string('prefix', 'mailward:'),
      timeoutMs: state.number('timeout_ms', 250, { min: 10, max: 30000 }),
      memoryMaxEntries: state.number('memory_max_entries', 200000, { min: 100, integer: true }),
    },
    tracking: {
      enabled: tracking.boolean('enabled', true),
      backend: tracking.oneOf('backend', ['sqlite', 'postgres'] as const, 'sqlite'),
      sqlitePath: resolvePath(dataDir, tracking.string('sqlite_path', 'tracking.sqlite')),
      postgresUrl: tracking.url('postgres_url', 'postgres://127.0.0.1:5432/mailward', ['postgres:', 'postgresql:'], 'postgres://[user[:password]@]host[:port]/database', {
        // postgres:///db?host=/run/postgresql: a Unix socket directory given as a parameter, as pg accepts.
        // postgres://user:pass@/db?host=/run/postgresql: user info and no host, the same (pg reads it).
        allowNoHost: (url) => url.searchParams.has('host'),
        userInfoWithoutHost: true,
        otherForm: postgresSocketUrl,
        otherForms: 'socket:/path/to/socket-directory[?db=database] or /path/to/socket-directory [database]',
      }),
      postgresSchema: identifier(tracking, 'postgres_schema', 'public'),
      postgresTable: identifier(tracking, 'postgres_table', 'mailward_tracking'),
      batchSize: tracking.number('batch_size', 200, { min: 1, integer: true }),
      flushIntervalMs: tracking.number('flush_interval_ms', 500, { min: 10 }),
      maxQueue: tracking.number('max_queue', 10000, { min: 1, integer: true }),
      spoolPath: resolvePath(dataDir, tracking.string('spool_path', 'tracking.spool')),
      retryIntervalMs: tracking.number('retry_interval_ms', 5000, { min: 100 }),
      retentionDays: tracking.number('retention_days', 90, { min: 0 }),
      maxSpoolBytes: tracking.number('max_spool_mb', 1024, { min: 1 }) * 1024 * 1024,
    },
    quarantine: {
      dir: resolvePath(dataDir, quarantine.string('dir', 'quarantine')),
      retentionDays: quarantine.number('retention_days', 30, { min: 1 }),
      releaseHost: quarantine.string('release_host', '127.0.0.1'),
      releasePort: quarantine.number('release_port', 25, { min: 1, max: 65535, integer: true }),
      maxBytes: Math.ceil(quarantineMaxMb(quarantine) * 1024 * 1024),
      whenFull: quarantine.oneOf('when_full', ['defer', 'deliver'] as const, 'defer'),
    },
    headers: {
      always: headers.boolean('always', true),
      subjectTag: headers.string('subject_tag', ''),
    },
  };
}

/**
 * The least non-zero `[quarantine] max_mb`. Every held message takes two
 * blocks (8 KB) at the least and a typical one tens to hundreds of KB, and the
 * directory's index counts too: below 1 MB the quarantine is full from the
 * start and every message meant to be held is deferred or delivered (with an
 * error each minute). Such a value is a slip (0.001 for 1, MB read as GB), so
 * it is refused rather than turning holding off in silence; 0 turns the bound off.
 */
export const MIN_QUARANTINE_MB = 1;

function quarantineMaxMb(quarantine: SectionReader): number {
  const value = quarantine.number('max_mb', 10240, { min: 0 });
  if (value !== 0 && value < MIN_QUARANTINE_MB) {
    throw quarantine.error('max_mb', `must be 0 (no bound) or at least ${MIN_QUARANTINE_MB} (MB), got ${quarantine.values.max_mb}: a bound this small holds nothing, so every message meant to be held would be deferred or delivered`);
  }
  return value;
}

/**
 * redis_url as a Unix socket, the form node-redis reads apart from URLs:
 * unix://[[user][:password]@]/path/to/socket[?db=N]. Undefined: not this form.
 */
export function redisSocketUrl(value: string): string | null | undefined {
  if (!value.startsWith('unix:')) return undefined;
  const expected = 'expected unix://[[user][:password]@]/path/to/redis.sock[?db=N]';
  const m = /^unix:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?(\/[^?#]*)(?:\?([^#]*))?(?:#.*)?$/.exec(value);
  if (!m || m[3] === '/') return `a Unix socket URL names the socket's path: ${expected}`;
  const escapes = badPercentEscape([m[1] ?? '', m[2] ?? '', m[3]!]);
  if (escapes) return escapes;
  const db = m[4] === undefined ? null : new URLSearchParams(m[4]).get('db');
  // node-redis selects the database given as ?db=N; anything but a number fails it.
  if (db !== null && !/^\d+$/.test(db)) return `?db= must be a database number (0, 1...), got ${JSON.stringify(db)}`;
  return null;
}

/**
 * node-redis decodes the user, password and socket path with decodeURIComponent, which
 * throws (and took Haraka down at start) on a `%` that starts no escape: `u:%@host`.
 */
function badPercentEscape(pieces: string[]): string | null {
  for (const piece of pieces) {
    try {
      decodeURIComponent(piece);
    } catch {
      // Not repeated: it may be the password.
      return 'the user name, password or path holds a % that starts no escape (write %25 for a % sign)';
    }
  }
  return null;
}

/**
 * postgres_url as a Unix socket, the forms pg reads besides postgres:// URLs:
 * `socket:/dir[?db=database]` and `/dir [database]`. Undefined: not one of these forms.
 */
export function postgresSocketUrl(value: string): string | null | undefined {
  if (value.startsWith('/')) {
    // pg splits it at spaces: the socket directory, then the database.
    return /^\/\S*(?: \S+)?$/.test(value) ? null : 'a socket directory and an optional database name, one space apart, expected (/run/postgresql mailward)';
  }
  if (!/^socket:/i.test(value)) return undefined;
  let url: URL | null = null;
  for (const form of [value, value.replace('@/', '@placeholder.invalid/')]) {
    try {
      url = new URL(form);
      break;
    } catch {
      url = null;
    }
  }
  const expected = 'expected socket:/path/to/socket-directory[?db=database]';
  if (!url) return `not a valid URL: ${expected}`;
  // pg takes the path as the socket directory and ignores a host: one written there is a mistake.
  if (url.hostname !== '' && url.hostname !== 'placeholder.invalid') return `a socket: URL names no host, the socket directory is its path: ${expected}`;
  if (!url.pathname.startsWith('/') || url.pathname === '/') return `a socket: URL names the socket directory as its path: ${expected}`;
  return null;
}

function identifier(section: ReturnType<IniReader['section']>, key: string, fallback: string): string {
  const value = section.string(key, fallback);
  if (!/^[a-z_][a-z0-9_]*$/i.test(value)) throw section.error(key, `${JSON.stringify(value)} is not a plain SQL identifier`);
  return value;
}

export function resolvePath(base: string, path: string): string {
  return isAbsolute(path) ? path : resolve(base, path);
}
