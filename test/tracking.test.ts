import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Client } from 'pg';
import type { Logger } from '../lib/checks/types';
import type { TrackingSettings } from '../lib/config/shared';
import { spawn, spawnSync } from 'node:child_process';
import { Spool } from '../lib/tracking/spool';
import { BatchingTrackingWriter, createTrackingReader, createTrackingWriter, openTrackingStore, type TrackingStore } from '../lib/tracking';
import { PostgresTrackingStore } from '../lib/tracking/postgres';
import type { TrackingRow } from '../lib/tracking/types';
import { rowFromVerdict } from '../lib/tracking/row';
import { createContext } from '../lib/message';
import type { Verdict } from '../lib/score/types';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy';
import { waitFor } from './support/wait';

const PG = { host: '127.0.0.1', port: 5432, database: 'test', user: 'postgres' };
const PG_URL = `postgres://${PG.user}@${PG.host}:${PG.port}/${PG.database}`;

/** Row number i: one second apart from 2026-01-01, varied enough for the filters. */
function makeRow(i: number, over: Partial<TrackingRow> = {}): TrackingRow {
  return {
    ref: `T${String(i).padStart(6, '0')}`,
    time: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
    node: 'mx1.example.com',
    queueId: `Q${i}`,
    messageId: `<m${i}@example.net>`,
    remoteIp: `192.0.2.${i % 4}`,
    ptr: 'mail.example.net',
    helo: 'mail.example.net',
    mailFrom: `sender${i}@Example.NET`,
    rcptTo: [`user${i}@example.com`, `other@example.org`],
    size: 1000 + i,
    groups: { reputation: 2, auth: 1.5 },
    score: 3.5,
    action: i % 3 === 0 ? 'reject' : 'accept',
    phase: 'data',
    symbols: [
      { name: 'DNSBL_LISTED', score: 2, group: 'reputation', detail: 'zen 127.0.0.2' },
      { name: 'SPF_SOFTFAIL', score: 1.5, group: 'auth', detail: 'ü ~all' },
    ],
    reason: 'score 3.5 below add_header (5)',
    parseResult: 'ok',
    processingMs: 12.5,
    ...over,
  };
}

function rows(from: number, to: number): TrackingRow[] {
  const out: TrackingRow[] = [];
  for (let i = from; i < to; i++) out.push(makeRow(i));
  return out;
}

interface CapturedLog extends Logger {
  lines: string[];
}

function captureLog(): CapturedLog {
  const lines: string[] = [];
  const push = (level: string) => (message: string) => void lines.push(`${level} ${message}`);
  return { lines, debug: push('debug'), info: push('info'), warn: push('warn'), error: push('error') };
}


/** Rows in every spool file under the configured spool path. */
function spooledRefs(settings: TrackingSettings): string[] {
  return Spool.files(settings.spoolPath).flatMap((f) =>
    readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as TrackingRow).ref),
  );
}

/** This process's spool file. */
const ownSpool = (settings: TrackingSettings) => `${settings.spoolPath}.${process.pid}`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function countRows(settings: TrackingSettings): Promise<number> {
  const reader = createTrackingReader(settings);
  try {
    return (await reader.find({ limit: 1_000_000 })).length;
  } finally {
    await reader.close();
  }
}

/** Counts each insert's batch size, around the real store. */
function countingStore(store: TrackingStore): TrackingStore & { batches: number[] } {
  const batches: number[] = [];
  return Object.assign(Object.create(store) as TrackingStore, {
    batches,
    description: store.description,
    insert: (batch: TrackingRow[]) => {
      batches.push(batch.length);
      return store.insert(batch);
    },
  });
}

/** A view of the real store whose every insert fails, as a database that is down would (close the real one). */
function unreachable(store: TrackingStore): TrackingStore {
  return Object.assign(Object.create(store) as TrackingStore, {
    description: store.description,
    insert: () => Promise.reject(new Error('connection refused')),
  });
}

interface Backend {
  name: 'sqlite' | 'postgres';
  /** Fresh settings (own file or own table) for one test. */
  settings(): TrackingSettings;
}

function baseSettings(dir: string, over: Partial<TrackingSettings>): TrackingSettings {
  return {
    enabled: true,
    backend: 'sqlite',
    sqlitePath: join(dir, 'tracking.sqlite'),
    postgresUrl: PG_URL,
    postgresSchema: 'public',
    postgresTable: 'mailward_tracking',
    batchSize: 10,
    // Long by default so tests decide when batches go; the timer has its own test.
    flushIntervalMs: 60_000,
    maxQueue: 1000,
    spoolPath: join(dir, 'tracking.spool'),
    retryIntervalMs: 60_000,
    retentionDays: 0,
    maxSpoolBytes: 1024 * 1024 * 1024,
    ...over,
  };
}

function behaviour(backend: Backend): void {
  let settings: TrackingSettings;
  let log: CapturedLog;
  const open: { close(): Promise<void> }[] = [];

  beforeEach(() => {
    settings = backend.settings();
    log = captureLog();
  });
  afterEach(async () => {
    for (const thing of open.splice(0)) await thing.close();
  });

  function writer(over: Partial<TrackingSettings> = {}, store?: TrackingStore): BatchingTrackingWriter {
    Object.assign(settings, over);
    const w = store ? new BatchingTrackingWriter(store, settings, log) : (createTrackingWriter(settings, log) as BatchingTrackingWriter);
    open.push(w);
    return w;
  }

  function reader() {
    const r = createTrackingReader(settings);
    open.push(r);
    return r;
  }

  it('retention_days: deletes the rows of transactions older than that, and only those', async () => {
    const day = 86_400_000;
    const now = Date.UTC(2026, 5, 1);
    const w = writer({ retentionDays: 30 });
    const expired = Array.from({ length: 12 }, (_, i) => makeRow(200 + i, { time: new Date(now - (31 + i) * day).toISOString() }));
    const kept = Array.from({ length: 3 }, (_, i) => makeRow(300 + i, { time: new Date(now - (29 - i) * day).toISOString() }));
    for (const row of [...expired, ...kept]) w.write(row);
    await w.flush();
    assert.equal(await w.purgeExpired(now), 12);
    const r = reader();
    for (const row of expired) assert.equal(await r.get(row.ref), null, row.time);
    for (const row of kept) assert.ok(await r.get(row.ref), row.time);
    // Nothing more to delete the next hour.
    assert.equal(await w.purgeExpired(now), 0);
  });

  it('retention_days: a purge of many rows lets rows written meanwhile in between its batches', async () => {
    const day = 86_400_000;
    const now = Date.now();
    const real = openTrackingStore(settings, log);
    open.push(real);
    // The real store, with its calls recorded in order.
    const calls: string[] = [];
    const store = Object.assign(Object.create(real) as TrackingStore, {
      description: real.description,
      insert: (rows: TrackingRow[]) => (calls.push('insert'), real.insert(rows)),
      purgeBefore: (time: Date, limit: number) => (calls.push('purge'), real.purgeBefore!(time, limit)),
    });
    // A backlog of three purge statements (5,000 rows each): a first purge after an upgrade.
    await real.insert(Array.from({ length: 10_001 }, (_, i) => makeRow(10_000 + i, { time: new Date(now - 100 * day - i * 1000).toISOString() })));
    const w = writer({ retentionDays: 30 }, store);
    const fresh = makeRow(1, { time: new Date(now).toISOString() });
    const purged = w.purgeExpired(now);
    w.write(fresh);
    await w.flush();
    assert.equal(await purged, 10_001);
    // Before: the row waited for the whole purge (purge, purge, purge, insert); on a year of rows, minutes
    // during which every new row waited, and past max_queue went to the spool.
    assert.ok(calls.indexOf('insert') < calls.lastIndexOf('purge'), calls.join(', '));
    assert.ok(await reader().get(fresh.ref));
  });

  it('retention_days = 0 keeps every row', async () => {
    const w = writer({ retentionDays: 0 });
    const old = makeRow(400, { time: '2000-01-01T00:00:00.000Z' });
    w.write(old);
    await w.flush();
    assert.equal(await w.purgeExpired(), 0);
    assert.ok(await reader().get(old.ref));
  });

  it('stores a row and reads it back field for field', async () => {
    const w = writer();
    const full = makeRow(1);
    const sparse = makeRow(2, { queueId: null, messageId: null, ptr: null, helo: null, mailFrom: null, rcptTo: [], size: null, groups: {}, symbols: [], phase: 'connect', action: 'reject', parseResult: 'no data' });
    const bounce = makeRow(3, { mailFrom: '' });
    for (const r of [full, sparse, bounce]) w.write(r);
    await w.flush();
    const db = reader();
    assert.deepEqual(await db.get(full.ref), full);
    assert.deepEqual(await db.get(sparse.ref), sparse);
    assert.equal((await db.get(bounce.ref))!.mailFrom, '', 'the null sender stays distinct from "no MAIL FROM"');
    assert.equal(await db.get('NOSUCH1'), null);
    assert.equal(w.stats().written, 3);
  });

  it('filters by time, IP, sender, recipient and action, newest first', async () => {
    const w = writer({ batchSize: 100 });
    for (const r of rows(0, 40)) w.write(r);
    w.write(makeRow(40, { mailFrom: '', rcptTo: ['postmaster@example.com'] }));
    w.write(makeRow(41, { rcptTo: ['100%_off@example.com'] }));
    // Capitals beyond ASCII (SMTPUTF8): found by the address in any case, like any other.
    w.write(makeRow(42, { mailFrom: 'ÄDMIN@BÜCHER.test', rcptTo: ['ÉLÈVE@widget.test'], time: '2025-01-01T00:00:00.000Z', action: 'accept' }));
    await w.flush();
    const db = reader();
    const refs = async (filter: Parameters<typeof db.find>[0]) => (await db.find(filter)).map((r) => r.ref);

    assert.deepEqual(await refs({ from: 'ädmin@bücher.test' }), ['T000042']);
    assert.deepEqual(await refs({ from: 'bücher.test' }), ['T000042']);
    assert.deepEqual(await refs({ to: 'élève@widget.test' }), ['T000042']);
    assert.deepEqual(await refs({ to: 'WIDGET.test' }), ['T000042']);
    const all = (await refs({})).filter((ref) => ref !== 'T000042');
    assert.equal(all.length, 42);
    assert.equal(all[0], 'T000041', 'newest first');
    assert.deepEqual(await refs({ limit: 2 }), ['T000041', 'T000040']);
    assert.deepEqual(await refs({ since: new Date(Date.UTC(2026, 0, 1, 0, 0, 39)) }), ['T000041', 'T000040', 'T000039']);
    assert.equal((await refs({ ip: '192.0.2.1' })).length, 11); // 1, 5, ... 41
    assert.deepEqual(await refs({ ip: '192.0.2.1', action: 'reject' }), ['T000033', 'T000021', 'T000009']);
    assert.deepEqual(await refs({ from: 'SENDER7@example.net' }), ['T000007'], 'address match ignores case');
    assert.equal((await refs({ from: 'example.net' })).length, 41, 'a bare domain matches every sender at it');
    assert.equal((await refs({ from: '@example.net' })).length, 41);
    assert.deepEqual(await refs({ from: '<>' }), ['T000040'], '<> is the null sender');
    assert.deepEqual(await refs({ to: 'user12@EXAMPLE.com' }), ['T000012']);
    assert.equal((await refs({ to: 'example.org' })).length, 40);
    assert.deepEqual(await refs({ to: 'postmaster@example.com' }), ['T000040']);
    assert.deepEqual(await refs({ from: 'nobody@example.net' }), []);
    assert.deepEqual(await refs({ to: '_off@example.com' }), [], 'LIKE wildcards in a value are literal');
    assert.equal((await refs({ action: 'reject' })).length, 14);
  });

  it('writes in batches of batch_size, and a partial batch on the flush timer', async () => {
    const store = countingStore(openTrackingStore(settings, log));
    const w = writer({ batchSize: 10, flushIntervalMs: 150 }, store);
    for (const r of rows(0, 9)) w.write(r);
    await sleep(20);
    assert.deepEqual(store.batches, [], 'nothing written before a batch is full or the timer fires');
    w.write(makeRow(9));
    await waitFor('the full batch', () => store.batches.length === 1, 2000, 20);
    assert.deepEqual(store.batches, [10]);
    for (const r of rows(10, 35)) w.write(r);
    await waitFor('three more batches', () => store.batches.length === 4, 2000, 20);
    assert.deepEqual(store.batches, [10, 10, 10, 5], 'a full batch goes at once, the remainder with it');
    w.write(makeRow(35));
    await waitFor('the timer flush', () => store.batches.length === 5, 2000, 20);
    assert.equal(await countRows(settings), 36);
  });

  it('never stores a ref twice (ON CONFLICT (ref) DO NOTHING)', async () => {
    const w = writer();
    const first = makeRow(1, { action: 'accept' });
    w.write(first);
    w.write(makeRow(1, { action: 'reject' })); // same ref in the same batch
    await w.flush();
    w.write(makeRow(1, { action: 'quarantine' })); // and in a later one
    await w.flush();
    assert.equal(await countRows(settings), 1);
    assert.equal((await reader().get(first.ref))!.action, 'accept', 'the first row written wins');
    const store = openTrackingStore(settings);
    open.push(store);
    assert.equal(await store.insert([makeRow(1), makeRow(2)]), 1, 'insert reports only new rows');
  });

  it('keeps memory bounded: beyond max_queue rows go straight to the spool, then all are written once', async () => {
    const w = writer({ maxQueue: 5, batchSize: 100 });
    for (const r of rows(0, 12)) w.write(r);
    assert.equal(w.stats().queued, 5);
    assert.equal(w.stats().spooled, 7);
    assert.deepEqual(Spool.files(settings.spoolPath), [ownSpool(settings)], 'each process appends to spool_path.<pid>');
    assert.deepEqual(spooledRefs(settings), rows(5, 12).map((r) => r.ref));
    assert.ok(log.lines.some((l) => l.startsWith('warn') && l.includes('more than 5 rows waiting')));
    await w.flush();
    assert.equal(await countRows(settings), 12);
    assert.deepEqual(Spool.files(settings.spoolPath), [], 'spool removed after replay');
    assert.equal(w.stats().replayed, 7);
  });

  it('rows neither the database nor the spool takes (an unwritable spool) wait in memory and go in when the database is back', async () => {
    const real = openTrackingStore(settings, log);
    open.push(real);
    let down = true;
    const flaky = Object.assign(Object.create(real) as TrackingStore, {
      description: real.description,
      insert: (batch: TrackingRow[]) => (down ? Promise.reject(new Error('connection refused')) : real.insert(batch)),
    });
    // The spool's directory is a file: every append fails (ENOTDIR), as on a full or read-only disk.
    writeFileSync(join(settings.spoolPath, '..', 'not-a-dir'), '');
    const w = writer({ spoolPath: join(settings.spoolPath, '..', 'not-a-dir', 'spool') }, flaky);
    for (const r of rows(0, 5)) w.write(r);
    await w.flush();
    assert.equal(w.stats().held, 5);
    assert.ok(!log.lines.some((l) => /lost/.test(l)), log.lines.join('\n'));
    down = false;
    await w.flush();
    assert.equal(w.stats().held, 0);
    assert.equal(w.stats().outage, false);
    assert.equal(await countRows(settings), 5);
  });

  it('max_spool_mb: a database down for long fills the spool only to its bound, then rows wait in memory up to max_queue', async () => {
    const real = openTrackingStore(settings, log);
    open.push(real);
    const down = unreachable(real);
    const w = writer({ maxQueue: 50, batchSize: 10, maxSpoolBytes: 20_000 }, down);
    for (let i = 0; i < 200; i++) w.write(makeRow(i));
    await w.flush();
    await w.flush();
    // Rows of ~700 bytes: 20 KB of spool holds about 28 of the 200.
    const spooled = Spool.files(settings.spoolPath).reduce((sum, f) => sum + statSync(f).size, 0);
    assert.ok(spooled > 0 && spooled <= 20_000, `spool files of ${spooled} bytes`);
    assert.equal(w.stats().held, 50);
    assert.ok(log.lines.some((l) => l.startsWith('error') && l.includes('max_spool_mb')), log.lines.join('\n'));
    assert.ok(log.lines.some((l) => /oldest row\(s\) lost/.test(l)), log.lines.join('\n'));
  });

  it('max_spool_mb: rows a full spool refuses at exit (spoolPending) are counted as lost in an error, not dropped silently', async () => {
    const real = openTrackingStore(settings, log);
    open.push(real);
    const down = unreachable(real);
    const w = writer({ maxQueue: 50, batchSize: 10, maxSpoolBytes: 20_000 }, down);
    for (let i = 0; i < 60; i++) w.write(makeRow(i));
    await w.flush();
    const held = w.stats().held;
    assert.ok(held > 0, 'the spool filled up: rows wait in memory');
    const before = log.lines.length;
    // The process exits: these rows and the next one have nowhere to go but the (full) spool.
    w.write(makeRow(1000));
    w.spoolPending();
    const said = log.lines.slice(before).filter((l) => l.startsWith('error'));
    assert.ok(said.some((l) => l.includes(`${held + 1} row(s) lost`)), `after spoolPending: ${said.join('\n') || '(nothing logged)'}`);
  });

  it('more rows held in memory than a spread can pass (max_queue 200,000) are kept, not lost to a RangeError, when a retry fails', async () => {
    const real = openTrackingStore(settings, log);
    open.push(real);
    const down = unreachable(real);
    writeFileSync(join(settings.spoolPath, '..', 'not-a-dir'), '');
    const w = writer({ maxQueue: 200_000, batchSize: 10_000, spoolPath: join(settings.spoolPath, '..', 'not-a-dir', 'spool') }, down);
    for (let i = 0; i < 150_000; i++) w.write(makeRow(i));
    await w.flush();
    assert.equal(w.stats().held, 150_000);
    // The retry of all 150,000 at once fails too: they go back to memory (push(...rows) overflowed the stack and dropped them).
    await w.flush();
    assert.equal(w.stats().held, 150_000);
    assert.ok(!log.lines.some((l) => /lost|stack/.test(l)), log.lines.join('\n'));
  });

  it('replays a spool whose pid now belongs to a process started after the file was written (a reused pid)', async function () {
    if (!existsSync('/proc/self/stat')) this.skip();
    const reused = spawn('sleep', ['30']);
    try {
      const file = `${settings.spoolPath}.${reused.pid}`;
      writeFileSync(file, rows(50, 53).map((r) => `${JSON.stringify(r)}\n`).join(''));
      const hourAgo = new Date(Date.now() - 3600_000);
      utimesSync(file, hourAgo, hourAgo);
      const w = writer();
      await waitFor('the start-up replay', () => w.stats().replayed > 0, 3000, 20);
      assert.equal(w.stats().replayed, 3);
      assert.equal(existsSync(file), false);
    } finally {
      reused.kill();
    }
  });

  it('replays spools left by earlier runs at start-up, exactly once, skipping torn lines', async () => {
    // Earlier processes: rows 0-4 reached the database; 3-9 are in an interrupted replay
    // (so 3 and 4 are in both); 10-14 in a spool ending with a write torn by a crash;
    // 15-17 in the spool of a worker that has exited; 30-32 in that of a live one.
    const first = writer();
    for (const r of rows(0, 5)) first.write(r);
    await first.close();
    open.pop();
    const lines = (list: TrackingRow[]) => list.map((r) => `${JSON.stringify(r)}\n`).join('');
    const dead = spawnSync('true').pid!;
    const live = process.ppid;
    writeFileSync(`${settings.spoolPath}.${dead}.replaying`, lines(rows(3, 10)));
    writeFileSync(`${settings.spoolPath}.${dead}`, `${lines(rows(10, 15))}{"ref":"T0000`);
    writeFileSync(settings.spoolPath, lines(rows(15, 18))); // no owner (written by hand)
    writeFileSync(`${settings.spoolPath}.${live}`, lines(rows(30, 33)));

    const w = writer();
    w.write(makeRow(18));
    await waitFor('the start-up replay', () => w.stats().replayed > 0, 3000, 20);
    await w.flush();
    const refs = (await reader().find({ limit: 100 })).map((r) => r.ref).sort();
    assert.deepEqual(refs, rows(0, 19).map((r) => r.ref), 'every row once, the live worker\'s rows left to it');
    assert.deepEqual(Spool.files(settings.spoolPath), [`${settings.spoolPath}.${live}`]);
    assert.ok(log.lines.some((l) => l.includes('not a row (torn write?)')), log.lines.join('\n'));

    // A new row after a torn line starts on a line of its own.
    writeFileSync(ownSpool(settings), '{"ref":"T0000');
    const spool = new Spool(settings.spoolPath);
    spool.append([makeRow(40)]);
    assert.deepEqual(readFileSync(ownSpool(settings), 'utf8').split('\n').slice(1).filter(Boolean).map((l) => JSON.parse(l).ref), ['T000040']);
  });

  it('an append cut short by a full disk leaves no torn line to swallow the next row', async function () {
    this.timeout(10000);
    // A real short write: the child's file-size limit (RLIMIT_FSIZE, as a full disk would) stops
    // the big row part-way, and the write fails with EFBIG. The small rows fit.
    const script = `
      const { Spool } = require(${JSON.stringify(join(__dirname, '..', 'lib', 'tracking', 'spool'))});
      const spool = new Spool(process.argv[1]);
      const [small1, small2] = JSON.parse(process.argv[2]);
      const big = { ...small1, ref: 'T000002', reason: 'x'.repeat(200000) };
      const results = [spool.append([small1]), spool.append([big]), spool.append([small2])];
      console.log(JSON.stringify({ results, file: spool.path }));`;
    const child = spawnSync('sh', ['-c', 'ulimit -f 32 && exec "$0" "$@"', process.execPath, '-e', script, settings.spoolPath, JSON.stringify([makeRow(1), makeRow(3)])], { encoding: 'utf8' });
    assert.equal(child.status, 0, `${child.signal} ${child.error} ${child.stderr}`);
    const { results, file } = JSON.parse(child.stdout) as { results: boolean[]; file: string };
    assert.deepEqual(results, [true, false, true], 'the big row is refused whole (its caller keeps it), the next one appended');
    assert.deepEqual(readFileSync(file, 'utf8'), [makeRow(1), makeRow(3)].map((r) => `${JSON.stringify(r)}\n`).join(''), 'no part of the big row left behind');

    // The torn tail such a write leaves when it cannot be cut off, between two appends of this process.
    const spool = new Spool(settings.spoolPath);
    spool.append([makeRow(4)]);
    appendFileSync(spool.path, JSON.stringify(makeRow(5)).slice(0, 40));
    spool.append([makeRow(6)]);

    const w = writer();
    await w.flush();
    assert.deepEqual((await reader().find({ limit: 10 })).map((r) => r.ref).sort(), ['T000001', 'T000003', 'T000004', 'T000006']);
    assert.equal(log.lines.filter((l) => l.includes('not a row (torn write?)')).length, 1, log.lines.join('\n'));
    assert.deepEqual(Spool.files(settings.spoolPath), []);
  });

  it('its replay file renamed away mid-replay (by another process) is not an outage', async () => {
    const real = openTrackingStore(settings, log);
    open.push(real);
    const taken = `${settings.spoolPath}-taken`;
    let first = true;
    const store = Object.assign(Object.create(real) as TrackingStore, {
      description: real.description,
      insert: (batch: TrackingRow[]) => {
        // Another worker renames our .replaying file while its first batch goes in.
        if (first) renameSync(`${ownSpool(settings)}.replaying`, taken);
        first = false;
        return real.insert(batch);
      },
    });
    const w = writer({ batchSize: 2 }, store);
    new Spool(settings.spoolPath).append(rows(0, 5));
    await w.flush();
    assert.equal(w.stats().outage, false, log.lines.join('\n'));
    assert.ok(!log.lines.some((l) => l.includes('replaying the spool') && l.includes('failed')), log.lines.join('\n'));
    assert.equal(await countRows(settings), 5, 'the open file is read to its end');
    w.write(makeRow(5));
    await w.flush();
    assert.equal(w.stats().spooled, 0, 'later rows go to the database, not the spool');
    assert.equal(await countRows(settings), 6);
    assert.ok(existsSync(taken));
  });

  it('drops only a row the database refuses, not its batch', async () => {
    const w = writer();
    w.write(makeRow(1));
    // A row the database cannot store: in SQLite a NOT NULL violated; in PostgreSQL, whose
    // integrity errors mean the table changed (next test), a size out of integer range.
    w.write(backend.name === 'postgres' ? makeRow(2, { size: 2 ** 40 }) : ({ ...makeRow(2), node: undefined } as unknown as TrackingRow));
    w.write(makeRow(3, { helo: 'bad\u0000helo', symbols: [{ name: 'X', score: 0, group: 'g', detail: 'nul\u0000' }] }));
    // Half a surrogate pair (a detail cut in the middle of an emoji): jsonb refuses it.
    w.write(makeRow(4, { symbols: [{ name: 'X', score: 0, group: 'g', detail: 'cut \ud83d' }] }));
    await w.flush();
    const db = reader();
    assert.ok(await db.get('T000001'));
    assert.equal(await db.get('T000002'), null);
    const nul = await db.get('T000003');
    assert.ok(nul, 'a NUL byte from a malformed message does not lose the row');
    if (backend.name === 'postgres') assert.equal(nul.helo, 'bad\ufffdhelo');
    const cut = await db.get('T000004');
    assert.ok(cut, 'a lone surrogate does not lose the row');
    if (backend.name === 'postgres') assert.equal(cut.symbols[0]!.detail, 'cut \ufffd');
    assert.ok(log.lines.some((l) => l.startsWith('error') && l.includes('T000002')));
    assert.equal(w.stats().outage, false, 'a bad row is not an outage');
    assert.deepEqual(Spool.files(settings.spoolPath), []);
  });

  it('write() never throws and close() drains what is queued', async () => {
    const w = writer({ batchSize: 1000 });
    assert.doesNotThrow(() => w.write(undefined as unknown as TrackingRow));
    for (const r of rows(0, 25)) w.write(r);
    await w.close();
    open.pop();
    assert.equal(await countRows(settings), 25);
    w.write(makeRow(99)); // after close: kept in the spool for the next start
    assert.deepEqual(spooledRefs(settings), ['T000099']);
  });
}

describe('tracking rows', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'mw-tracking-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  let n = 0;
  const fresh = () => mkdtempSync(join(dir, `t${n++}-`));

  describe('SQLite backend', () => {
    behaviour({ name: 'sqlite', settings: () => baseSettings(fresh(), {}) });

    it('uses WAL and indexes time, remote_ip, mail_from and action', async () => {
      const settings = baseSettings(fresh(), {});
      const w = createTrackingWriter(settings, captureLog());
      w.write(makeRow(1));
      await w.close();
      const Database = (await import('better-sqlite3')).default;
      const db = new Database(settings.sqlitePath, { readonly: true });
      try {
        assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
        const indexed = (db.prepare(`SELECT sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL`).all() as { sql: string }[]).map((r) => r.sql).join('\n');
        for (const column of ['(time)', '(remote_ip', '(mail_from', '(action']) assert.ok(indexed.includes(column), `${column} in\n${indexed}`);
      } finally {
        db.close();
      }
    });

    it('a file that cannot be opened (not a database) keeps no MTA from starting: rows wait in the spool and go in once it can be', async () => {
      const settings = baseSettings(fresh(), {});
      writeFileSync(settings.sqlitePath, 'this is not a database, but a backup script gone wrong\n'.repeat(100));
      const log = captureLog();
      const w = createTrackingWriter(settings, log) as BatchingTrackingWriter;
      try {
        for (const r of rows(1, 5)) w.write(r);
        await w.flush();
        assert.equal(w.stats().outage, true);
        assert.ok(log.lines.some((l) => /file is not a database/.test(l)), log.lines.join('\n'));
        rmSync(settings.sqlitePath);
        await w.flush();
        assert.equal(w.stats().outage, false, log.lines.join('\n'));
      } finally {
        await w.close();
      }
      const db = createTrackingReader(settings);
      try {
        assert.deepEqual((await db.find({ limit: 10 })).map((r) => r.ref).sort(), rows(1, 5).map((r) => r.ref).sort());
      } finally {
        await db.close();
      }
    });

    it('a write lock held by another process costs a batch a short wait on the event loop, not 2 s: the rows wait in the spool', async () => {
      const settings = baseSettings(fresh(), {});
      const log = captureLog();
      const w = createTrackingWriter(settings, log) as BatchingTrackingWriter;
      const Database = (await import('better-sqlite3')).default;
      try {
        w.write(makeRow(1));
        await w.flush();
        // A sqlite3 shell (or a backup) in a write transaction.
        const holder = new Database(settings.sqlitePath);
        holder.exec('BEGIN IMMEDIATE');
        try {
          w.write(makeRow(2));
          await w.flush();
          assert.equal(w.stats().outage, true);
          // How long a locked batch waits is the handle's busy timeout (SQLite's own wait for the lock): short
          // for the MTA's writer, not the 2 s a reader waits. Read from the handle, not timed.
          const db = (w as unknown as { store: { opened?: { db: InstanceType<typeof Database> } } }).store.opened?.db;
          assert.ok(db, 'the writer has its SQLite handle open');
          const busy = Number(db.pragma('busy_timeout', { simple: true }));
          assert.ok(busy > 0 && busy <= 250, `the MTA's writer waits ${busy} ms for a lock`);
        } finally {
          holder.exec('ROLLBACK');
          holder.close();
        }
        await w.flush();
        assert.equal(w.stats().outage, false);
      } finally {
        await w.close();
      }
      const db = createTrackingReader(settings);
      try {
        assert.ok(await db.get('T000002'), 'the row held back by the lock is written after it');
      } finally {
        await db.close();
      }
    });

    it('an orphan another live process has claimed is left to it, not taken from under its replay', async function () {
      this.timeout(15000);
      const settings = baseSettings(fresh(), {});
      const first = createTrackingWriter(settings, captureLog());
      first.write(makeRow(0)); // creates the database
      await first.close();
      // A process that died an hour ago left rows 1-3.
      const dead = `${settings.spoolPath}.${spawnSync('true').pid}`;
      writeFileSync(dead, rows(1, 4).map((r) => `${JSON.stringify(r)}\n`).join(''));
      const hourAgo = new Date(Date.now() - 3600_000);
      utimesSync(dead, hourAgo, hourAgo);

      // Worker B claims it, but its replay cannot write yet (a lock held by a backup), so it keeps
      // the claimed file and retries later; then it replays once told to.
      const Database = (await import('better-sqlite3')).default;
      const holder = new Database(settings.sqlitePath);
      holder.exec('BEGIN IMMEDIATE');
      const script = `
        const { createTrackingWriter } = require(${JSON.stringify(join(__dirname, '..', 'lib', 'tracking'))});
        const quiet = { debug() {}, info() {}, warn() {}, error() {} };
        const w = createTrackingWriter(JSON.parse(process.argv[1]), quiet);
        const report = () => console.log(JSON.stringify(w.stats()));
        w.flush().then(report);
        process.stdin.once('data', () => w.flush().then(report).then(() => w.close()).then(() => process.exit(0)));`;
      const b = spawn(process.execPath, ['-e', script, JSON.stringify(settings)], { stdio: ['pipe', 'pipe', 'inherit'] });
      const reports: { replayed: number; outage: boolean }[] = [];
      createInterface({ input: b.stdout }).on('line', (line) => reports.push(JSON.parse(line)));
      const claimed = `${settings.spoolPath}.${b.pid}.replaying`;
      try {
        await waitFor('B to claim the orphan and fail', () => reports.length === 1, 5000, 20);
        assert.equal(reports[0]!.outage, true);
        assert.ok(existsSync(claimed), 'B holds the orphan as its own replay file');
        holder.exec('ROLLBACK');

        // Worker A replays while B lives: B's replay file is not an orphan.
        const log = captureLog();
        const a = createTrackingWriter(settings, log) as BatchingTrackingWriter;
        await a.flush();
        await a.close();
        assert.equal(a.stats().replayed, 0, log.lines.join('\n'));
        assert.ok(existsSync(claimed), 'still B\'s');

        b.stdin.write('go\n');
        await waitFor('B to replay', () => reports.length === 2, 5000, 20);
        assert.deepEqual(reports[1], { ...reports[1], replayed: 3, outage: false });
      } finally {
        holder.close();
        b.kill();
      }
      assert.equal(existsSync(claimed), false);
      assert.equal(await countRows(settings), 4);
    });

    it('a reader on a missing database says where it looked', () => {
      const settings = baseSettings(fresh(), {});
      assert.throws(() => createTrackingReader(settings), /tracking\.sqlite|does not exist|unable to open/i);
    });

    it('is disabled by enabled = false', async () => {
      const settings = baseSettings(fresh(), { enabled: false });
      const w = createTrackingWriter(settings, captureLog());
      w.write(makeRow(1));
      await w.close();
      assert.equal(existsSync(settings.sqlitePath), false);
    });
  });

  describe('PostgreSQL backend (127.0.0.1:5432, own schema)', () => {
    const schema = `mwtest_tracking_${randomBytes(4).toString('hex')}`;
    let admin: Client;
    before(async () => {
      admin = new Client(PG);
      await admin.connect();
    });
    after(async () => {
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await admin.end();
    });

    let table = 0;
    const pgSettings = (over: Partial<TrackingSettings> = {}) =>
      baseSettings(fresh(), { backend: 'postgres', postgresSchema: schema, postgresTable: `rows_${table++}`, ...over });

    behaviour({ name: 'postgres', settings: () => pgSettings() });

    it('a table changed under us (a NOT NULL column added) keeps the rows in the spool, not dropped; they go in once it is fixed', async () => {
      const settings = pgSettings();
      const log = captureLog();
      const w = new BatchingTrackingWriter(new PostgresTrackingStore({ url: PG_URL, schema, table: settings.postgresTable, log }), settings, log);
      try {
        w.write(makeRow(1));
        await w.flush();
        const t = `${schema}.${settings.postgresTable}`;
        await admin.query(`ALTER TABLE ${t} ADD COLUMN tenant text NOT NULL DEFAULT 'x'`);
        await admin.query(`ALTER TABLE ${t} ALTER COLUMN tenant DROP DEFAULT`);
        for (let i = 2; i <= 6; i++) w.write(makeRow(i));
        await w.flush();
        assert.equal(w.stats().outage, true, log.lines.join('\n'));
        assert.ok(!log.lines.some((l) => /row dropped/.test(l)), log.lines.join('\n'));
        assert.equal((await admin.query(`SELECT count(*)::int AS n FROM ${t}`)).rows[0].n, 1);
        // The DBA finishes the migration: the spooled rows go in.
        await admin.query(`ALTER TABLE ${t} ALTER COLUMN tenant SET DEFAULT 'x'`);
        await w.flush();
        assert.equal((await admin.query(`SELECT count(*)::int AS n FROM ${t}`)).rows[0].n, 6);
        assert.equal(w.stats().outage, false);
      } finally {
        await w.close();
      }
    });

    it('writes into a table its owner set up, with a role that may only insert and select (docs/tracking.md)', async () => {
      const settings = pgSettings();
      const t = `${schema}.${settings.postgresTable}`;
      const role = `mwtest_tracking_role_${randomBytes(3).toString('hex')}`;
      // The owner creates the table by running the writer once, then grants the minimum.
      const owner = createTrackingWriter(settings, captureLog());
      owner.write(makeRow(1));
      await owner.close();
      await admin.query(`CREATE ROLE ${role} LOGIN`);
      try {
        await admin.query(`GRANT USAGE ON SCHEMA ${schema} TO ${role}`);
        await admin.query(`GRANT SELECT, INSERT ON ${t} TO ${role}`);
        const url = `postgres://${role}@${PG.host}:${PG.port}/${PG.database}`;
        const log = captureLog();
        const w = createTrackingWriter({ ...settings, postgresUrl: url, spoolPath: join(fresh(), 'spool') }, log);
        w.write(makeRow(2));
        await w.close();
        assert.equal((await admin.query(`SELECT count(*)::int AS n FROM ${t}`)).rows[0].n, 2, log.lines.join('\n'));
      } finally {
        await admin.query(`REVOKE ALL ON ${t} FROM ${role}`);
        await admin.query(`REVOKE ALL ON SCHEMA ${schema} FROM ${role}`);
        await admin.query(`DROP ROLE ${role}`);
      }
    });

    it('creates the schema, table, jsonb columns and indexes', async () => {
      const settings = pgSettings();
      const w = createTrackingWriter(settings, captureLog());
      w.write(makeRow(1));
      await w.close();
      const columns = await admin.query(
        `SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2`,
        [schema, settings.postgresTable],
      );
      const types = Object.fromEntries(columns.rows.map((r) => [r.column_name, r.data_type]));
      assert.equal(types.symbols, 'jsonb');
      assert.equal(types.rcpt_to, 'jsonb');
      assert.equal(types.groups, 'jsonb');
      assert.equal(types.time, 'timestamp with time zone');
      const indexes = await admin.query(`SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = $2`, [schema, settings.postgresTable]);
      const defs = indexes.rows.map((r) => r.indexdef).join('\n');
      for (const column of ['(ref)', '(("time"))', '(remote_ip', 'lower(mail_from)', '(action']) {
        assert.ok(defs.includes(column) || defs.includes(column.replace('(("time"))', '("time")')), `${column} in\n${defs}`);
      }
    });

    describe('faults: PostgreSQL unreachable while rows are written', () => {
      let proxy: TcpProxy;
      beforeEach(async () => {
        proxy = await startTcpProxy({ host: PG.host, port: PG.port });
      });
      afterEach(() => proxy.stop());

      const faultSettings = () =>
        pgSettings({
          postgresUrl: `postgres://postgres@127.0.0.1:${proxy.port}/test`,
          batchSize: 20,
          flushIntervalMs: 50,
          retryIntervalMs: 200,
        });

      it('spools rows while the server is down and replays them exactly once when it is back', async function () {
        this.timeout(30000);
        const settings = faultSettings();
        const log = captureLog();
        const w = createTrackingWriter(settings, log, { connectTimeoutMs: 500, queryTimeoutMs: 1000 }) as BatchingTrackingWriter;
        try {
          for (const r of rows(0, 50)) w.write(r);
          await w.flush();
          assert.equal(w.stats().written, 50);

          await proxy.stop(); // connections cut, port refuses
          const started = Date.now();
          for (let i = 50; i < 150; i++) {
            w.write(makeRow(i));
            if (i % 10 === 0) await sleep(15); // mail keeps flowing across several flushes and retries
          }
          // write() is synchronous and the loop only sleeps 150 ms: 100 writes each waiting the 500 ms connect
          // deadline would take 50 s. The bound, far above the sleeps, only catches that.
          assert.ok(Date.now() - started < 15_000, `writes waited for the database: ${Date.now() - started} ms`);
          await waitFor('the outage to be noticed and the queue spooled', () => w.stats().queued === 0 && w.stats().outage, 5000, 20);
          await sleep(500); // a few failed replays while it is down
          assert.equal(w.stats().outage, true);
          assert.equal(w.stats().written, 50);
          assert.deepEqual(spooledRefs(settings).sort(), rows(50, 150).map((r) => r.ref), 'every row written during the outage is in the spool');
          assert.ok(log.lines.some((l) => l.startsWith('warn') && l.includes('spooling rows')), log.lines.join('\n'));

          await proxy.start(); // back, on the same port
          for (let i = 150; i < 160; i++) w.write(makeRow(i));
          await waitFor('the replay after recovery', () => !w.stats().outage && w.stats().queued === 0, 10000, 20);
          await w.flush();
          assert.deepEqual(Spool.files(settings.spoolPath), []);
          assert.ok(log.lines.some((l) => l.includes('is back')), log.lines.join('\n'));
        } finally {
          await w.close();
        }
        const count = await admin.query(`SELECT count(*)::int AS n, count(DISTINCT ref)::int AS d FROM ${schema}.${settings.postgresTable}`);
        assert.deepEqual(count.rows[0], { n: 160, d: 160 }, 'no row lost, none duplicated');
        const refs = await admin.query(`SELECT ref FROM ${schema}.${settings.postgresTable} ORDER BY ref`);
        assert.deepEqual(refs.rows.map((r) => r.ref), rows(0, 160).map((r) => r.ref));
      });

      it('notices a black-holed server by its connect deadline, then recovers', async function () {
        this.timeout(30000);
        const settings = faultSettings();
        const log = captureLog();
        const w = createTrackingWriter(settings, log, { connectTimeoutMs: 400, queryTimeoutMs: 800 }) as BatchingTrackingWriter;
        try {
          proxy.mode = 'silent';
          await proxy.stop();
          await proxy.start(); // accepts connections, answers nothing
          for (const r of rows(0, 30)) w.write(r);
          // Without the 400 ms connect deadline a black hole is never noticed (no reply, no reset); the wait
          // is far above the deadline, so a loaded machine does not fail it.
          await waitFor('the deadline to fire', () => w.stats().outage, 15_000, 20);
          assert.match(log.lines.join('\n'), /timeout|timed out/i, 'the outage is the deadline\'s');
          await waitFor('the queue to be spooled', () => w.stats().queued === 0, 3000, 20);

          proxy.mode = 'forward';
          await proxy.stop();
          await proxy.start();
          await waitFor('recovery', () => !w.stats().outage, 10000, 20);
          await w.flush();
        } finally {
          await w.close();
        }
        const count = await admin.query(`SELECT count(*)::int AS n FROM ${schema}.${settings.postgresTable}`);
        assert.equal(count.rows[0].n, 30);
      });

      it('a node that starts while PostgreSQL is down keeps its rows and writes them later', async function () {
        this.timeout(30000);
        await proxy.stop();
        const settings = faultSettings();
        const first = createTrackingWriter(settings, captureLog(), { connectTimeoutMs: 400, queryTimeoutMs: 800 });
        for (const r of rows(0, 15)) first.write(r);
        await first.flush();
        await first.close(); // shut down during the outage: rows stay in the spool
        assert.equal(spooledRefs(settings).length, 15);

        await proxy.start();
        const second = createTrackingWriter(settings, captureLog(), { connectTimeoutMs: 400, queryTimeoutMs: 800 });
        for (const r of rows(10, 20)) second.write(r); // overlaps the spooled rows
        await second.flush();
        await second.close();
        const count = await admin.query(`SELECT count(*)::int AS n FROM ${schema}.${settings.postgresTable}`);
        assert.equal(count.rows[0].n, 20);
      });
    });
  });
});

describe('tracking row fields', () => {
  it('a message without a Message-ID is recorded with the one mailward adds for delivery (what a complaint will quote)', () => {
    const ctx = createContext({ ip: '192.0.2.1', mailFrom: 'a@example.com', rcptTo: ['b@example.org'], raw: 'From: a@example.com\r\nSubject: x\r\n\r\nhi\r\n' });
    const verdict = { groups: {}, score: 0, action: 'accept', symbols: [], reason: '' } as unknown as Verdict;
    assert.equal(rowFromVerdict(ctx, verdict, 'n1').messageId, null);
    ctx.headerChanges.add.push(['Message-ID', '<ADDED.1@mx.example.com>']);
    assert.equal(rowFromVerdict(ctx, verdict, 'n1').messageId, '<ADDED.1@mx.example.com>');
    const own = createContext({ ip: '192.0.2.1', raw: 'Message-ID: <own@example.com>\r\n\r\nhi\r\n' });
    own.headerChanges.add.push(['Message-ID', '<ADDED.2@mx.example.com>']);
    assert.equal(rowFromVerdict(own, verdict, 'n1').messageId, '<own@example.com>');
  });
});
