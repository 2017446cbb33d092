import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { GTUBE } from '../lib/checks/builtin';
import { loadConfig } from '../lib/config/load';
import { createTrackingReader } from '../lib/tracking';
import type { TrackingReader, TrackingRow } from '../lib/tracking/types';
import { freePort, type HarakaInstance, removeDir, sendMail, simpleMessage, startHaraka } from './support/haraka';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy';
import { waitFor } from './support/wait';

const REF = /ref ([0-9A-Z]{10})/;


function readerFor(haraka: HarakaInstance): TrackingReader {
  return createTrackingReader(loadConfig({ configDir: haraka.configDir }).shared.tracking);
}

function headerOf(file: string, name: string): string | undefined {
  const text = readFileSync(file, 'utf8');
  return new RegExp(`^${name}: (.*)$`, 'mi').exec(text)?.[1];
}

describe('spine end to end: a real Haraka with verdict and tracking (SQLite)', function () {
  this.timeout(60_000);
  let haraka: HarakaInstance;
  let reader: TrackingReader;
  const rowFor = (ref: string) => waitFor(`tracking row ${ref}`, () => reader.get(ref));

  before(async () => {
    haraka = await startHaraka({
      plugins: [],
      hostList: ['example.com', 'lenient.example.com'],
      // lenient.example.com only defers what example.com rejects.
      files: { 'mailward.ini': '[main]\ndata_dir = data\n[tracking]\nflush_interval_ms = 50\n[dns]\nservers = 127.0.0.1:9\ntimeout_ms = 300\n[domain:lenient.example.com]\nreject = 5000\n' },
      // Another (non-mailward) plugin refusing a client at connect: its transaction still gets a row.
      pluginFiles: { test_refuse_connect: "exports.hook_connect = function (next, connection) { if (connection.remote.ip === '127.0.0.66') return next(902, 'no mail from this client'); next(); };\n" },
    });
    reader = readerFor(haraka);
  });
  after(async () => {
    await reader?.close();
    await haraka?.stop();
    if (haraka) removeDir(haraka.dir);
  });

  it('accepts clean mail, adds X-Mailward headers, and writes a row with the same ref', async () => {
    const result = await sendMail({ port: haraka.port, from: 'alice@example.net', to: ['bob@example.com'], raw: simpleMessage({ messageId: '<clean-1@example.net>' }), helo: 'client.example.net' });
    assert.equal(result.code, 250, result.response);
    const file = haraka.delivered().at(-1)!;
    assert.equal(headerOf(file, 'X-Mailward-Score'), '0');
    assert.match(headerOf(file, 'X-Mailward-Status')!, /^accept score=0 ref=[0-9A-Z]{10} symbols=$/);
    const ref = headerOf(file, 'X-Mailward-Ref')!;
    const row = await rowFor(ref);
    assert.equal(row.action, 'accept');
    assert.equal(row.phase, 'data');
    assert.equal(row.messageId, '<clean-1@example.net>');
    assert.equal(row.remoteIp, '127.0.0.1');
    assert.equal(row.helo, 'client.example.net');
    assert.equal(row.mailFrom, 'alice@example.net');
    assert.deepEqual(row.rcptTo, ['bob@example.com']);
    assert.equal(row.parseResult, 'ok');
    assert.ok(row.size! > 100);
    assert.ok(row.queueId);
  });

  it('rejects GTUBE with 550 5.7.1 naming the ref and the symbol, and tracks it', async () => {
    const result = await sendMail({ port: haraka.port, from: 'alice@example.net', to: ['bob@example.com'], raw: simpleMessage({ body: `test\r\n${GTUBE}\r\n` }) });
    assert.equal(result.code, 550, result.response);
    assert.match(result.response, /5\.7\.1 Message rejected as spam \(ref [0-9A-Z]{10}: GTUBE 1000\)/);
    const row = await rowFor(REF.exec(result.response)![1]!);
    assert.equal(row.action, 'reject');
    assert.equal(row.score, 1000);
    assert.deepEqual(row.groups, { policy: 1000 });
    assert.equal(row.symbols[0]!.name, 'GTUBE');
  });

  it('defers with 451 4.7.1 and the ref where a recipient domain\'s thresholds say soft_reject', async () => {
    const result = await sendMail({ port: haraka.port, from: 'alice@example.net', to: ['bob@lenient.example.com'], raw: simpleMessage({ body: `test\r\n${GTUBE}\r\n` }) });
    assert.equal(result.code, 451, result.response);
    assert.match(result.response, /^451 4\.7\.1 Message deferred, try again later \(ref [0-9A-Z]{10}: GTUBE 1000\)/);
    const row = await rowFor(REF.exec(result.response)![1]!);
    assert.equal(row.action, 'soft_reject');
  });

  it('removes X-Mailward headers forged by the sender', async () => {
    const raw = simpleMessage({ headers: { 'X-Mailward-Status': 'accept score=-100 ref=FORGED1', 'X-Mailward-Ref': 'FORGED1' } });
    const result = await sendMail({ port: haraka.port, from: 'alice@example.net', to: ['bob@example.com'], raw });
    assert.equal(result.code, 250);
    assert.doesNotMatch(readFileSync(haraka.delivered().at(-1)!, 'utf8'), /FORGED1/);
  });

  it('removes forged X-Mailward headers written with white space before the colon, as mail readers and mailauth still read them', async () => {
    // Haraka's remove_header drops only fields written exactly "Name:": these two reached the delivered copy,
    // above ours, where a filter reading the first X-Mailward-Status saw the forged "accept".
    const raw = simpleMessage({ headers: { 'X-Mailward-Status ': 'accept score=-100 ref=FORGED3', 'X-Mailward-Score\f': '-100 FORGED3' } });
    const result = await sendMail({ port: haraka.port, from: 'alice@example.net', to: ['bob@example.com'], raw });
    assert.equal(result.code, 250, result.response);
    const delivered = readFileSync(haraka.delivered().at(-1)!, 'utf8');
    assert.doesNotMatch(delivered, /FORGED3/);
    assert.match(headerOf(haraka.delivered().at(-1)!, 'X-Mailward-Status')!, /^accept score=/);
  });

  it('removes forged X-Mailward headers also where ours are not added to accepted mail ([headers] always = false)', async () => {
    const quiet = await startHaraka({ plugins: [], hostList: ['example.com'], files: { 'mailward.ini': '[main]\ndata_dir = data\n[tracking]\nenabled = false\n[dns]\nservers = 127.0.0.1:9\ntimeout_ms = 300\n[headers]\nalways = false\n' } });
    try {
      const raw = simpleMessage({ headers: { 'X-Mailward-Status': 'accept score=-100 ref=FORGED2', 'X-Mailward-Score': '-100' } });
      const result = await sendMail({ port: quiet.port, from: 'alice@example.net', to: ['bob@example.com'], raw });
      assert.equal(result.code, 250, result.response);
      const delivered = readFileSync(quiet.delivered().at(-1)!, 'utf8');
      assert.doesNotMatch(delivered, /X-Mailward-/i);
    } finally {
      await quiet.stop();
      removeDir(quiet.dir);
    }
  });

  it('writes a row for a transaction refused at RCPT (no verdict reached)', async () => {
    const result = await sendMail({ port: haraka.port, from: 'probe@example.net', to: ['nobody@elsewhere.example'], raw: simpleMessage() });
    assert.equal(result.code, 550);
    const row = await waitFor('rcpt-refused row', async () => (await reader.find({ from: 'probe@example.net', limit: 5 }))[0]);
    assert.equal(row.action, 'reject');
    assert.equal(row.phase, 'rcpt');
    assert.match(row.reason, /nobody@elsewhere\.example/);
  });

  it('writes a row for a client refused at connect by another plugin', async () => {
    const result = await sendMail({ port: haraka.port, from: 'a@example.net', to: ['bob@example.com'], raw: simpleMessage(), localAddress: '127.0.0.66' }).catch((err: Error) => ({ code: 0, response: err.message }));
    assert.notEqual(result.code, 250);
    const row = await waitFor('connect-refused row', async () => (await reader.find({ ip: '127.0.0.66', limit: 5 }))[0]);
    assert.equal(row.action, 'reject');
    assert.equal(row.phase, 'connect');
    assert.match(row.reason, /no mail from this client \(by test_refuse_connect\)/);
    assert.equal(row.mailFrom, null);
  });

  describe('bad input gets a verdict and a row, never a crash', () => {
    const cases: [string, string | Buffer][] = [
      ['broken MIME boundaries', 'From: a@example.net\r\nTo: bob@example.com\r\nSubject: broken\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="xx"\r\n\r\n--xx\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n--yy--\r\n'],
      ['an 8-bit header', Buffer.concat([Buffer.from('From: J\xfcrgen <j@example.net>\r\nTo: bob@example.com\r\nSubject: Gr\xfc\xdfe \xff\xfe\r\n\r\nhello\r\n', 'latin1')])],
      ['a 0-byte body', 'From: a@example.net\r\nTo: bob@example.com\r\nSubject: empty\r\n\r\n'],
      ['an over-long header line', `From: a@example.net\r\nTo: bob@example.com\r\nSubject: ${'x'.repeat(20000)}\r\n\r\nbody\r\n`],
      ['no header block at all', 'just some text without headers\r\n'],
    ];
    for (const [name, raw] of cases) {
      it(name, async () => {
        const from = `bad-${name.replace(/\W+/g, '-')}@example.net`;
        const result = await sendMail({ port: haraka.port, from, to: ['bob@example.com'], raw });
        assert.ok([250, 550].includes(result.code), `${result.code} ${result.response}`);
        const row = await waitFor(`row for ${name}`, async () => (await reader.find({ from, limit: 5 }))[0]);
        assert.ok(['accept', 'add_header'].includes(row.action), row.reason);
        assert.equal(row.phase, 'data');
      });
    }
  });
});

describe('spine end to end: PostgreSQL tracking, an outage, and the quarantine', function () {
  this.timeout(90_000);
  const schema = `mwtest_spine_${process.pid}`;
  let proxy: TcpProxy;
  let haraka: HarakaInstance;
  let pg: Client;

  const rows = async (): Promise<TrackingRow[]> => {
    try {
      const { rows: found } = await pg.query(`SELECT ref, action FROM ${schema}.mailward_tracking`);
      return found as TrackingRow[];
    } catch (err) {
      // The writer creates the table with its first batch.
      if ((err as { code?: string }).code === '42P01') return [];
      throw err;
    }
  };

  before(async () => {
    pg = new Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' });
    await pg.connect();
    proxy = await startTcpProxy({ host: '127.0.0.1', port: 5432 });
    haraka = await startHaraka({
      plugins: [],
      files: {
        'mailward.ini': [
          '[main]', 'data_dir = data',
          '[dns]', 'servers = 127.0.0.1:9', 'timeout_ms = 300',
          // GTUBE weighs 9 here, so it lands in the quarantine band (8..10).
          '[scores]', 'GTUBE = 9',
          '[headers]', 'subject_tag = [SPAM?]',
          '[tracking]', 'backend = postgres', `postgres_url = postgres://postgres@127.0.0.1:${proxy.port}/test`, `postgres_schema = ${schema}`,
          'flush_interval_ms = 50', 'retry_interval_ms = 300',
        ].join('\n'),
      },
    });
  });
  after(async () => {
    await haraka?.stop();
    await proxy?.stop();
    await pg?.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await pg?.end();
    if (haraka) removeDir(haraka.dir);
  });

  it('writes rows to PostgreSQL', async () => {
    const result = await sendMail({ port: haraka.port, from: 'alice@example.net', to: ['bob@example.com'], raw: simpleMessage() });
    assert.equal(result.code, 250);
    const ref = headerOf(haraka.delivered().at(-1)!, 'X-Mailward-Ref')!;
    await waitFor('row in PostgreSQL', async () => (await rows()).some((r) => r.ref === ref));
  });

  it('keeps accepting mail while PostgreSQL is unreachable, spools the rows and replays each exactly once', async () => {
    const before = (await rows()).length;
    await proxy.stop();
    const sent = 15;
    for (let i = 0; i < sent; i++) {
      const result = await sendMail({ port: haraka.port, from: `outage${i}@example.net`, to: ['bob@example.com'], raw: simpleMessage() });
      assert.equal(result.code, 250, `message ${i} during the outage: ${result.response}`);
    }
    await waitFor('rows in the spool', async () => readdirSync(haraka.dataDir).some((f) => f.startsWith('tracking.spool')));
    assert.equal((await rows()).length, before, 'nothing reached PostgreSQL during the outage');
    await proxy.start();
    const after = await waitFor('replayed rows', async () => {
      const all = await rows();
      return all.length >= before + sent ? all : undefined;
    }, 30_000);
    await new Promise((r) => setTimeout(r, 1000));
    const final = await rows();
    assert.equal(final.length, before + sent, 'every row once: none lost, none duplicated');
    assert.equal(new Set(final.map((r) => r.ref)).size, final.length);
    assert.ok(after.length >= before + sent);
  });

  it('holds a quarantined message with its verdict, answers 250 with the ref, and does not deliver it', async () => {
    const delivered = haraka.delivered().length;
    const result = await sendMail({ port: haraka.port, from: 'alice@example.net', to: ['bob@example.com'], raw: simpleMessage({ subject: 'hold me', body: `${GTUBE}\r\n` }) });
    assert.equal(result.code, 250, result.response);
    assert.match(result.response, /Message accepted and held for review \(ref [0-9A-Z]{10}: GTUBE 9\)/);
    const ref = REF.exec(result.response)![1]!;
    assert.equal(haraka.delivered().length, delivered, 'not passed to the queue');
    const meta = JSON.parse(readFileSync(join(haraka.dataDir, 'quarantine', `${ref}.json`), 'utf8'));
    assert.equal(meta.subject, 'hold me');
    assert.equal(meta.score, 9);
    const held = readFileSync(join(haraka.dataDir, 'quarantine', `${ref}.eml`), 'utf8');
    assert.match(held, /X-Mailward-Ref: /);
    // As it would have been delivered: with [headers] subject_tag, tagged (once).
    assert.deepEqual(held.match(/^Subject: [^\r\n]*/gim), ['Subject: [SPAM?] hold me']);
    // Ours on top, in the order the delivered copy would have them (prependHeaderFields).
    const names = held.slice(0, held.search(/\r?\n\r?\n/)).split(/\r?\n/).filter((l) => !/^[ \t]/.test(l)).map((l) => l.slice(0, l.indexOf(':')));
    assert.deepEqual(names.slice(0, 4), ['X-Mailward-Score', 'X-Mailward-Status', 'X-Mailward-Ref', 'Subject']);
    await waitFor('quarantine row', async () => (await rows()).some((r) => r.ref === ref && r.action === 'quarantine'));
  });
});

describe('spine end to end: rows still in memory when Haraka is stopped', function () {
  this.timeout(60_000);
  let haraka: HarakaInstance | undefined;
  after(async () => {
    await haraka?.stop();
    if (haraka) removeDir(haraka.dir);
  });

  it('are spooled at exit (SIGTERM) and written by the next start, each once', async () => {
    // A long flush interval keeps the rows in memory until the signal.
    const files = { 'mailward.ini': '[main]\ndata_dir = data\n[tracking]\nflush_interval_ms = 60000\nretry_interval_ms = 200\n[dns]\nservers = 127.0.0.1:9\ntimeout_ms = 300\n' };
    haraka = await startHaraka({ plugins: [], files });
    const refs: string[] = [];
    for (let i = 0; i < 5; i++) {
      const result = await sendMail({ port: haraka.port, from: `exit${i}@example.net`, to: ['bob@example.com'], raw: simpleMessage() });
      assert.equal(result.code, 250);
      refs.push(headerOf(haraka.delivered().at(-1)!, 'X-Mailward-Ref')!);
    }
    await haraka.stop();
    assert.ok(readdirSync(haraka.dataDir).some((f) => f.startsWith('tracking.spool')), 'rows spooled at exit');
    haraka = await startHaraka({ plugins: [], files, dir: haraka.dir });
    const reader = readerFor(haraka);
    try {
      // find() reads the database only (get() also looks into spools).
      const stored = await waitFor('rows after restart', async () => {
        const rows = (await reader.find({ limit: 100 })).filter((r) => refs.includes(r.ref));
        return rows.length >= refs.length ? rows : undefined;
      });
      assert.deepEqual(stored.map((r) => r.ref).sort(), [...refs].sort());
    } finally {
      await reader.close();
    }
  });
});

describe('spine end to end: Haraka cluster mode', function () {
  this.timeout(60_000);
  const WARNING = /Haraka runs several worker processes and \[state\] backend = memory/;

  for (const [nodes, warned] of [['1', false], ['2', true]] as const) {
    it(`nodes = ${nodes} with memory state: ${warned ? 'warns that each worker counts alone' : 'no warning (one worker counts for all)'}`, async () => {
      const port = await freePort();
      const haraka = await startHaraka({ plugins: [], port, files: { 'smtp.ini': `[main]\nlisten=127.0.0.1:${port}\nnodes=${nodes}\n` } });
      try {
        const result = await sendMail({ port, from: 'alice@example.net', to: ['bob@example.com'], raw: simpleMessage() });
        assert.equal(result.code, 250, result.response);
        assert.equal(WARNING.test(haraka.logs()), warned, haraka.logs().slice(-3000));
      } finally {
        await haraka.stop();
        removeDir(haraka.dir);
      }
    });
  }
});
