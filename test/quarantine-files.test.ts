// The quarantine directory after a crash or a full disk: leftovers listed or
// removed, never while a write may still be in progress; a corrupt index
// rebuilt from the files; a first listing of many files the index lacks.
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Client } from 'pg';
import { main } from '../lib/cli/main';
import { closeSharedIndexes, FileQuarantine, PostgresQuarantineIndex, releaseMessage, SqliteQuarantineIndex } from '../lib/quarantine';
import { syncHandle } from '../lib/quarantine/files';
import { entry, RAW } from './support/quarantine';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;


describe('quarantine leftovers', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'mailward-qleft-'))));
  afterEach(async () => {
    await closeSharedIndexes();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A file as a crash left it, `ageMs` ago. */
  function leftover(name: string, content: string | Buffer, ageMs: number): void {
    writeFileSync(join(dir, name), content);
    const at = new Date(Date.now() - ageMs);
    utimesSync(join(dir, name), at, at);
  }

  it('a message whose record was never written is listed as held (envelope unknown) once an hour old: shown, not released, purged with retention', async () => {
    const q = new FileQuarantine(dir);
    await q.put(entry('KEPT000001'), RAW);
    const held = Buffer.concat([Buffer.from('X-Mailward-Score: 9.5\r\nX-Mailward-Status: quarantine score=9.5 ref=ORPH000001 symbols=BAYES_SPAM(9.5)\r\n'), RAW]);
    leftover('ORPH000001.eml', held, 2 * HOUR);
    leftover('ORPH000001.json.tmp', '{"ref":"ORPH000001","ti', 2 * HOUR); // cut short by the crash
    leftover('OLD0000001.eml', RAW, 40 * DAY);
    leftover('YOUNG00001.eml', RAW, 60_000); // a put may still be writing its record

    const listed = await q.list();
    assert.deepEqual(listed.map((r) => r.ref), ['KEPT000001', 'ORPH000001', 'OLD0000001'], 'newest first, by the time of the file');
    const orphan = listed.find((r) => r.ref === 'ORPH000001')!;
    assert.equal(orphan.status, 'held');
    assert.equal(orphan.subject, 'hi');
    assert.equal(orphan.score, 9.5);
    assert.deepEqual(orphan.rcptTo, []);
    assert.match(orphan.recovered!, /envelope unknown/);
    assert.match(orphan.reason, /verdict header: quarantine score=9\.5/);
    assert.ok(Math.abs(Date.parse(orphan.time) - (Date.now() - 2 * HOUR)) < 60_000, 'held at the time of its file');
    assert.equal((await q.get('ORPH000001'))!.raw.toString(), held.toString(), 'the message is whole');
    assert.ok(existsSync(join(dir, 'YOUNG00001.eml')) && !existsSync(join(dir, 'YOUNG00001.json')), 'a young one is left alone');
    assert.ok(!existsSync(join(dir, 'ORPH000001.json.tmp')), 'the cut-short record is removed');

    await assert.rejects(
      releaseMessage(q, 'ORPH000001', { host: '127.0.0.1', port: 9 }),
      /ORPH000001 was kept without its record .* so it cannot be released; read it with `mailward quarantine show ORPH000001 --raw`, or delete it/,
    );
    assert.deepEqual(await q.purge(Date.now(), 30), ['OLD0000001'], 'retention counts from the time of the file');
    assert.equal(await q.delete('ORPH000001'), true);
    assert.deepEqual((await q.list()).map((r) => r.ref), ['KEPT000001']);
  });

  it('a record cut short between its write and its rename is restored whole; temporary files are removed once an hour old', async () => {
    const q = new FileQuarantine(dir);
    await q.put(entry('DONE000001'), RAW);
    // The put crashed after writing the record, before its rename.
    leftover('REST000001.eml', RAW, 2 * HOUR);
    leftover('REST000001.json.tmp', JSON.stringify({ ...entry('REST000001', { mailFrom: 'carol@partner.test' }), status: 'held' }), 2 * HOUR);
    leftover('DONE000001.json.tmp', '{"ref":"DONE', 2 * HOUR); // a status change cut short: the record stands
    leftover('CUT0000001.eml.tmp', 'Subject: par', 2 * HOUR); // a message cut short: never acknowledged
    leftover('WRIT000001.eml.tmp', 'Subject: being written', 60_000);
    leftover('WRIT000002.json.tmp', '{"ref":', 60_000);

    const listed = await q.list();
    assert.deepEqual(listed.map((r) => [r.ref, r.mailFrom, r.recovered]).sort(), [['DONE000001', 'bob@partner.test', undefined], ['REST000001', 'carol@partner.test', undefined]]);
    assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.tmp')).sort(), ['WRIT000001.eml.tmp', 'WRIT000002.json.tmp'], 'only writes that may be in progress remain');
    assert.equal((await q.record('DONE000001'))!.status, 'held');
  });

  it('a put flushes the message to disk before its record is written, and the record before it resolves', async () => {
    // A spy over the real file system (each call goes through): what was flushed, in what order.
    const fsp = require('node:fs/promises') as typeof import('node:fs/promises');
    const steps: string[] = [];
    const name = (p: unknown) => String(p).slice(dir.length + 1) || '(dir)';
    const { open, rename, link } = fsp;
    fsp.open = (async (path: Parameters<typeof open>[0], ...rest: unknown[]) => {
      const handle = await (open as (...a: unknown[]) => ReturnType<typeof open>)(path, ...rest);
      const sync = handle.sync.bind(handle);
      handle.sync = async () => {
        await sync();
        steps.push(`sync ${name(path)}`);
      };
      return handle;
    }) as typeof open;
    fsp.rename = (async (from: string, to: string) => {
      await rename(from, to);
      steps.push(`rename ${name(from)} ${name(to)}`);
    }) as typeof rename;
    fsp.link = (async (from: string, to: string) => {
      await link(from, to);
      steps.push(`link ${name(from)} ${name(to)}`);
    }) as typeof link;
    try {
      await new FileQuarantine(dir).put(entry('SYNC000001'), RAW);
    } finally {
      Object.assign(fsp, { open, rename, link });
    }
    assert.deepEqual(steps, [
      'sync SYNC000001.eml.tmp',
      'link SYNC000001.eml.tmp SYNC000001.eml',
      'sync (dir)',
      'sync SYNC000001.json.tmp',
      'rename SYNC000001.json.tmp SYNC000001.json',
      'sync (dir)',
    ]);
    assert.deepEqual(readFileSync(join(dir, 'SYNC000001.eml')), RAW);
  });

  it('a put whose record cannot be written leaves no message behind (the MTA delivers it instead)', async () => {
    const q = new FileQuarantine(dir);
    mkdirSync(join(dir, 'NOREC00001.json.tmp')); // the record's write fails, as on a full disk
    await assert.rejects(q.put(entry('NOREC00001'), RAW), /EISDIR/);
    assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('NOREC00001') && f !== 'NOREC00001.json.tmp'), []);
  });
});

describe('a corrupt quarantine index', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'mailward-qidx-'))));
  afterEach(async () => {
    await closeSharedIndexes();
    rmSync(dir, { recursive: true, force: true });
  });

  async function holdSome(n: number): Promise<void> {
    const q = new FileQuarantine(dir);
    for (let i = 0; i < n; i++) await q.put(entry(`IDX${String(i).padStart(7, '0')}`, { time: new Date(Date.now() - i * 1000).toISOString() }), RAW);
    await closeSharedIndexes();
  }

  const warnings: string[] = [];
  const log = { debug() {}, info() {}, error() {}, warn: (m: string) => warnings.push(m) };
  beforeEach(() => (warnings.length = 0));

  it('not a database at all: moved aside with a warning, and the listing rebuilt from the files', async () => {
    await holdSome(3);
    writeFileSync(join(dir, 'index.sqlite'), 'this is not a database\n'.repeat(400));
    const listed = await new FileQuarantine(dir, { log }).list();
    assert.deepEqual(listed.map((r) => r.ref), ['IDX0000000', 'IDX0000001', 'IDX0000002']);
    assert.match(warnings.join('\n'), /the index .*index\.sqlite is corrupt \(file is not a database\): moved aside to .*index\.sqlite\.corrupt-[0-9T-]+Z; it is rebuilt from the message files/);
    const aside = readdirSync(dir).filter((f) => f.startsWith('index.sqlite.corrupt-'));
    assert.equal(aside.length, 1, 'the corrupt file is kept for a look');
    await closeSharedIndexes();
    warnings.length = 0;
    assert.equal((await new FileQuarantine(dir, { log }).list()).length, 3);
    assert.deepEqual(warnings, [], 'the new index is sound');
  });

  it('damaged inside (its header intact): found on use, replaced, and the listing still complete', async () => {
    await holdSome(300);
    const path = join(dir, 'index.sqlite');
    const bytes = readFileSync(path);
    assert.ok(bytes.length > 3 * 4096);
    // Page 1 (header and schema) stays; the tables' pages are overwritten.
    bytes.fill(0x5a, 4096);
    writeFileSync(path, bytes);
    const listed = await new FileQuarantine(dir, { log }).list({ limit: 1000 });
    assert.equal(listed.length, 300);
    assert.equal(listed[0]!.ref, 'IDX0000000');
    assert.match(warnings.join('\n'), /is corrupt \(.*\): moved aside/);
  });

  it('mailward quarantine list: exit 0, the held messages, and the warning on stderr', async () => {
    const configDir = join(dir, 'config');
    mkdirSync(configDir);
    writeFileSync(join(configDir, 'mailward.ini'), `[quarantine]\ndir = ${join(dir, 'q')}\n`);
    const q = new FileQuarantine(join(dir, 'q'));
    await q.put(entry('CLIX000001'), RAW);
    await closeSharedIndexes();
    writeFileSync(join(dir, 'q', 'index.sqlite'), 'garbage'.repeat(1000));
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(['quarantine', 'list', '--config', configDir], { out: (l) => out.push(l), err: (l) => err.push(l) });
    assert.equal(code, 0, err.join('\n'));
    assert.match(out.join('\n'), /CLIX000001 +held/);
    assert.match(err.join('\n'), /^warning: the index .* is corrupt \(file is not a database\): moved aside to /);
    assert.doesNotMatch(err.join('\n'), /internal error|SqliteError/);
  });
});

describe('a first listing of many files the index lacks', function () {
  this.timeout(60_000);
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'mailward-qmany-'))));
  afterEach(async () => {
    await closeSharedIndexes();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Held messages written by another node, or before the index was lost: files only. */
  function filesOnly(n: number): void {
    for (let i = 0; i < n; i++) {
      const ref = `MANY${String(i).padStart(6, '0')}`;
      writeFileSync(join(dir, `${ref}.eml`), RAW);
      writeFileSync(join(dir, `${ref}.json`), JSON.stringify({ ...entry(ref, { rcptTo: [`user${i % 50}@example.com`], time: new Date(Date.now() - i * 1000).toISOString() }), status: 'held' }));
    }
  }

  it('SQLite: a message\'s recipients are found by their ref through an index, not by scanning every message\'s', () => {
    const index = new SqliteQuarantineIndex(join(dir, 'index.sqlite'));
    try {
      const db = new Database(join(dir, 'index.sqlite'), { readonly: true });
      const plan = (db.prepare('EXPLAIN QUERY PLAN DELETE FROM quarantine_rcpt WHERE ref = ?').all('X') as { detail: string }[]).map((r) => r.detail).join('; ');
      db.close();
      assert.match(plan, /USING (COVERING )?INDEX/, plan);
    } finally {
      void index.close();
    }
  });

  // How long the first listing takes is measured by `npm run bench` (bench/quarantine.ts), as a
  // ratio to reading the records; the query plan above keeps the per-record scan from coming back.
  it('SQLite: 10,000 files the index lacks are indexed at the first listing, newest first, and found by recipient', async () => {
    filesOnly(10_000);
    const listed = await new FileQuarantine(dir).list({ limit: 5 });
    assert.deepEqual(listed.map((r) => r.ref), ['MANY000000', 'MANY000001', 'MANY000002', 'MANY000003', 'MANY000004']);
    assert.equal((await new FileQuarantine(dir).list({ rcpt: 'USER7@example.com', limit: 10_000 })).length, 200);
  });

  it('PostgreSQL unreachable: held messages are listed from the files, filters and order kept, with a warning', async () => {
    filesOnly(30);
    const warnings: string[] = [];
    const log = { debug() {}, info() {}, warn: (m: string) => warnings.push(m), error: (m: string) => warnings.push(m) };
    // Nothing listens on port 1: every index query fails at once.
    const q = new FileQuarantine(dir, { index: new PostgresQuarantineIndex({ url: 'postgres://postgres@127.0.0.1:1/test', schema: 'mwtest_q_down' }), log });
    try {
      const all = await q.list({ limit: 10 });
      assert.deepEqual(all.map((r) => r.ref), Array.from({ length: 10 }, (_, i) => `MANY${String(i).padStart(6, '0')}`), 'newest first');
      assert.equal((await q.list({ rcpt: 'USER7@example.com' })).length, 1);
      assert.equal((await q.list({ status: 'released' })).length, 0);
      assert.match(warnings[0]!, /the index cannot be read \(.*ECONNREFUSED.*\); listed from the files/);
    } finally {
      await q.close();
    }
  });

  it('PostgreSQL: the same batched indexing, recipients included', async () => {
    const schema = `mwtest_q_${process.pid}_${Math.floor(Math.random() * 1e6)}`;
    const url = 'postgres://postgres@127.0.0.1:5432/test';
    filesOnly(1200); // more than one batch
    const q = new FileQuarantine(dir, { index: new PostgresQuarantineIndex({ url, schema }) });
    try {
      // A status change the index missed, of a message it never had: indexed once, with the new status.
      const record = JSON.parse(readFileSync(join(dir, 'MANY000003.json'), 'utf8'));
      writeFileSync(join(dir, 'MANY000003.json'), JSON.stringify({ ...record, status: 'released', statusTime: new Date().toISOString() }));
      writeFileSync(join(dir, 'MANY000003.reindex'), '');
      assert.equal(await q.sync(), 1200);
      assert.equal((await q.list({ limit: 5000 })).length, 1199);
      assert.equal((await q.list({ rcpt: 'user7@example.com', limit: 5000 })).length, 24);
      assert.equal((await q.list({ status: 'released' })).map((r) => r.ref).join(), 'MANY000003');
      assert.equal(await q.sync(), 0, 'nothing left to index');
      const client = new Client({ connectionString: url });
      await client.connect();
      const { rows } = await client.query('SELECT indexdef FROM pg_indexes WHERE schemaname = $1', [schema]);
      await client.end();
      assert.ok(rows.some((r) => /\(ref\)$/.test(r.indexdef) && /_rcpt/.test(r.indexdef)), 'recipients found by ref through an index');
    } finally {
      await q.close();
      const client = new Client({ connectionString: url });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await client.end();
    }
  });
});

describe('a file system that refuses fsync', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'mailward-qsync-'))));
  afterEach(async () => {
    await closeSharedIndexes();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Runs `fn` while fsync of the given kinds of handle fails with `code`, as on some FUSE or SMB mounts (or a failing disk). */
  async function refusingSync<T>(code: string, kinds: ('file' | 'directory')[], fn: () => Promise<T>): Promise<T> {
    const probe = await open(join(dir, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as FileHandle;
    await probe.close();
    rmSync(join(dir, 'probe'));
    const original = proto.sync;
    proto.sync = async function (this: FileHandle) {
      const kind = (await this.stat()).isDirectory() ? 'directory' : 'file';
      if (kinds.includes(kind)) throw Object.assign(new Error(`${code}: fsync refused`), { code, syscall: 'fsync' });
      return original.call(this);
    };
    try {
      return await fn();
    } finally {
      proto.sync = original;
    }
  }

  function logger() {
    const warnings: string[] = [];
    return { warnings, log: { debug() {}, info() {}, warn: (m: string) => warnings.push(m), error() {} } };
  }

  for (const code of ['EINVAL', 'ENOTSUP']) {
    it(`fsync refused with ${code} (files and the directory): messages are still held, with one warning of each`, async () => {
      const { warnings, log } = logger();
      const q = new FileQuarantine(dir, { log });
      await refusingSync(code, ['file', 'directory'], async () => {
        await q.put(entry('NOSYNC0001'), RAW);
        await q.put(entry('NOSYNC0002'), RAW);
        await q.update('NOSYNC0001', { status: 'released', statusTime: new Date().toISOString() });
      });
      assert.deepEqual((await q.get('NOSYNC0002'))!.raw, RAW);
      assert.equal((await q.record('NOSYNC0001'))!.status, 'released');
      assert.deepEqual((await q.list()).map((r) => r.ref), ['NOSYNC0002']);
      assert.equal(warnings.length, 2, warnings.join('\n'));
      assert.match(warnings[0]!, new RegExp(`the file system of ${dir} does not flush files to disk \\(fsync: ${code}\\); messages are held without that guarantee`));
      assert.match(warnings[1]!, new RegExp(`the file system of ${dir} does not flush directories to disk \\(fsync: ${code}\\)`));
    });
  }

  for (const [code, kind] of [['EIO', 'file'], ['ENOSPC', 'file'], ['EIO', 'directory']] as const) {
    it(`fsync of a ${kind} failing with ${code} still fails the put, and leaves nothing behind (the MTA delivers or defers the message instead)`, async () => {
      const { warnings, log } = logger();
      const q = new FileQuarantine(dir, { log });
      await refusingSync(code, [kind], async () => {
        await assert.rejects(q.put(entry('FAILSYNC01'), RAW), (err: unknown) => (err as NodeJS.ErrnoException).code === code);
      });
      assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith('FAILSYNC01')), [], 'no message, record or temporary file left');
      assert.equal(await q.get('FAILSYNC01'), null);
      assert.deepEqual(warnings, []);
    });
  }

  it('syncHandle: EINVAL and ENOTSUP are passed over, EIO is raised', async () => {
    const failing = (code: string) => ({ sync: async () => Promise.reject(Object.assign(new Error(code), { code })) });
    await syncHandle(failing('EINVAL'), 'file', join(dir, 'a'));
    await syncHandle(failing('ENOTSUP'), 'directory', dir);
    await assert.rejects(syncHandle(failing('EIO'), 'file', join(dir, 'a')), /EIO/);
    await assert.rejects(syncHandle(failing('EIO'), 'directory', dir), /EIO/);
  });
});
