import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import type { TrackingSettings } from '../lib/config/shared';
import { BatchingTrackingWriter, openTrackingStore } from '../lib/tracking';
import type { TrackingRow } from '../lib/tracking/types';
import { loadConfig } from '../lib/config/load';

export interface TrackingBackendFigures {
  backend: 'sqlite' | 'postgres';
  rows: number;
  seconds: number;
  /** Rows from the first write() until flush() confirmed them all in the database. */
  rowsPerSec: number;
  /** Mean time the MTA spends in one write() call: the cost on the mail path. */
  writeMicros: number;
  /** Rows found in the database afterwards (must equal rows). */
  stored: number;
  /** Rows that went to the spool (0 unless the database failed or the queue overflowed). */
  spooled: number;
}

export interface TrackingBenchResult {
  sqlite: TrackingBackendFigures;
  postgres: TrackingBackendFigures | { backend: 'postgres'; error: string };
}

const PG_URL = process.env.MAILWARD_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test';

function benchRow(i: number, run: string): TrackingRow {
  return {
    ref: `${run}${i.toString(36).toUpperCase().padStart(6, '0')}`,
    time: new Date(Date.now() - i).toISOString(),
    node: 'bench.example.com',
    queueId: `${run}.${i}`,
    messageId: `<bench-${i}@sender.example>`,
    remoteIp: `198.51.100.${i % 250}`,
    ptr: `host-${i % 250}.sender.example`,
    helo: `host-${i % 250}.sender.example`,
    mailFrom: `user${i % 1000}@sender.example`,
    rcptTo: [`rcpt${i % 50}@example.com`],
    size: 2000 + (i % 5000),
    groups: { reputation: 1, auth: -1, content: 2.5 },
    score: 2.5,
    action: 'accept',
    phase: 'data',
    symbols: [
      { name: 'SPF_PASS', score: -1, group: 'auth', detail: 'sender.example' },
      { name: 'DKIM_VALID', score: 0, group: 'auth', detail: 'd=sender.example' },
      { name: 'BAYES_50', score: 2.5, group: 'content', detail: 'p=0.52' },
      { name: 'RDNS_GENERIC', score: 1, group: 'reputation', detail: `host-${i % 250}.sender.example` },
    ],
    reason: 'score 2.5 below add_header (5)',
    parseResult: 'ok',
    processingMs: 20 + (i % 30),
  };
}

/** Writes `rows` rows the way an MTA does (a chunk per event-loop turn) and times them into the database. */
async function measure(settings: TrackingSettings, rows: number): Promise<TrackingBackendFigures> {
  const log = { debug() {}, info() {}, warn: (m: string) => console.error(m), error: (m: string) => console.error(m) };
  const store = openTrackingStore(settings, log);
  const writer = new BatchingTrackingWriter(store, settings, log);
  const run = randomBytes(2).toString('hex').toUpperCase().slice(0, 1);
  let inWrite = 0n;
  const start = process.hrtime.bigint();
  for (let i = 0; i < rows; ) {
    const end = Math.min(rows, i + settings.batchSize);
    const t0 = process.hrtime.bigint();
    for (; i < end; i++) writer.write(benchRow(i, run));
    inWrite += process.hrtime.bigint() - t0;
    await new Promise((r) => setImmediate(r));
  }
  await writer.flush();
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const stats = writer.stats();
  const stored = (await store.find({ limit: rows + 1 })).length;
  await writer.close();
  return {
    backend: settings.backend,
    rows,
    seconds: Number(seconds.toFixed(3)),
    rowsPerSec: Math.round(rows / seconds),
    writeMicros: Number((Number(inWrite) / 1000 / rows).toFixed(2)),
    stored,
    spooled: stats.spooled,
  };
}

function settingsIn(dir: string, over: Partial<TrackingSettings>): TrackingSettings {
  // The shipped defaults of [tracking] (read as an operator's would be), except where the data goes.
  return {
    ...loadConfig({ configDir: dir }).shared.tracking,
    sqlitePath: join(dir, 'tracking.sqlite'),
    postgresUrl: PG_URL,
    spoolPath: join(dir, 'tracking.spool'),
    ...over,
  };
}

/**
 * The tracking writer's throughput into SQLite (a temporary file) and
 * PostgreSQL (127.0.0.1:5432/test, or $MAILWARD_BENCH_PG, in a schema of its
 * own that is dropped afterwards), with the shipped [tracking] defaults
 * (batches of 200) except max_queue.
 */
export async function benchTracking({ rows = 20000 }: { rows?: number } = {}): Promise<TrackingBenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'mw-bench-tracking-'));
  try {
    // The bench offers rows far faster than mail arrives; a queue that holds them all
    // makes the figure the database's intake rather than the spool's.
    const maxQueue = rows + 200;
    const sqlite = await measure(settingsIn(dir, { maxQueue }), rows);
    const schema = `mwbench_${randomBytes(4).toString('hex')}`;
    let postgres: TrackingBenchResult['postgres'];
    try {
      postgres = await measure(settingsIn(dir, { backend: 'postgres', postgresSchema: schema, spoolPath: join(dir, 'pg.spool'), maxQueue }), rows);
    } catch (err) {
      postgres = { backend: 'postgres', error: (err as Error).message };
    } finally {
      const admin = new Client({ connectionString: PG_URL, connectionTimeoutMillis: 3000 });
      await admin
        .connect()
        .then(() => admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`))
        .catch(() => undefined)
        .finally(() => admin.end().catch(() => undefined));
    }
    return { sqlite, postgres };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function formatTrackingBench(result: TrackingBenchResult): string[] {
  return [result.sqlite, result.postgres].map((f) =>
    'error' in f
      ? `tracking ${f.backend}: not measured (${f.error})`
      : `tracking ${f.backend}: ${f.rowsPerSec} rows/s (${f.rows} rows in ${f.seconds} s, write() ${f.writeMicros} µs each, ${f.stored} stored, ${f.spooled} spooled)`,
  );
}

if (require.main === module) {
  const rows = Number(process.argv[2] ?? 20000);
  benchTracking({ rows })
    .then((result) => {
      for (const line of formatTrackingBench(result)) console.log(line);
    })
    .catch((err) => {
      console.error(err);
      process.exit(1);
    });
}
