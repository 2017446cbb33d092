import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Client } from 'pg';
import { main } from '../lib/cli/main';
import { findInSpool, findSpooled } from '../lib/cli/tracking';
import type { CliIO } from '../lib/cli/types';
import { loadConfig } from '../lib/config/load';
import { createTrackingWriter } from '../lib/tracking';
import { SqliteTrackingStore } from '../lib/tracking/sqlite';
import type { TrackingRow } from '../lib/tracking/types';
import { assertPrintable, HOSTILE, HOSTILE_SHOWN, PLAIN } from './support/terminal';

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

async function run(argv: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIO = { out: (l) => void out.push(l), err: (l) => void err.push(l) };
  const code = await main(argv, io);
  return { code, out, err };
}

const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000).toISOString();

const rejected: TrackingRow = {
  ref: '7KQ2M9X',
  time: minutesAgo(5),
  node: 'mx-test',
  queueId: 'A1B2C3D4.1',
  messageId: '<spam-1@bad.example>',
  remoteIp: '203.0.113.9',
  ptr: null,
  helo: 'bad.example',
  mailFrom: 'offers@bad.example',
  rcptTo: ['alice@example.com', 'bob@example.com'],
  size: 2048,
  groups: { policy: 1000, retired: 2 },
  score: 1002,
  action: 'reject',
  phase: 'data',
  symbols: [
    { name: 'GTUBE', score: 1000, group: 'policy', detail: 'GTUBE test string in body' },
    { name: 'OLD_RETIRED_SYMBOL', score: 2, group: 'retired', detail: 'from an older version' },
  ],
  reason: 'score 1002 reaches reject (15)',
  parseResult: 'ok',
  processingMs: 41,
};

const bounce: TrackingRow = {
  ...rejected,
  ref: 'B0UNCE1',
  time: minutesAgo(2),
  remoteIp: '198.51.100.7',
  ptr: 'mx.partner.example',
  helo: 'mx.partner.example',
  mailFrom: '',
  rcptTo: ['carol@example.com'],
  groups: {},
  score: 0,
  action: 'accept',
  symbols: [],
  reason: 'score 0 below add_header (5)',
  messageId: null,
};

const old: TrackingRow = {
  ...bounce,
  ref: '0LD0000',
  time: new Date(Date.now() - 3 * 86_400_000).toISOString(),
  remoteIp: '192.0.2.1',
  mailFrom: null,
  rcptTo: [],
  size: null,
  action: 'reject',
  phase: 'connect',
  reason: 'client listed on a blocklist',
  parseResult: 'no data',
};

async function seed(configDir: string, rows: TrackingRow[]): Promise<void> {
  const writer = createTrackingWriter(loadConfig({ configDir }).shared.tracking, quiet);
  for (const row of rows) writer.write(row);
  await writer.close();
}

describe('mailward trace / explain', () => {
  let root: string;
  let configDir: string;

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'mw-trace-'));
    configDir = join(root, 'haraka', 'config');
    mkdirSync(configDir, { recursive: true });
    writeFileSync(join(configDir, 'mailward.ini'), '[main]\nnode_name = mx-test\n[tracking]\nsqlite_path = tracking.sqlite\n');
    await seed(configDir, [rejected, bounce, old]);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('trace prints a table, newest first, and says where it read', async () => {
    const { code, out, err } = await run(['trace', '--config', configDir]);
    assert.equal(code, 0, err.join('\n'));
    assert.match(out[0]!, /^TIME \(UTC\)\s+REF\s+IP\s+ACTION\s+SCORE\s+FROM\s+TO\s+TOP SYMBOLS$/);
    assert.deepEqual(out.slice(1).map((l) => l.split(/\s+/)[2]), ['B0UNCE1', '7KQ2M9X', '0LD0000']);
    const spam = out.find((l) => l.includes('7KQ2M9X'))!;
    for (const part of ['203.0.113.9', 'reject', '1002', 'offers@bad.example', 'alice@example.com +1', 'GTUBE(1000)']) assert.ok(spam.includes(part), `${part} in ${spam}`);
    assert.ok(out.find((l) => l.includes('B0UNCE1'))!.includes('<>'), 'the null sender shows as <>');
    assert.ok(out.find((l) => l.includes('0LD0000'))!.includes('reject@connect'));
    assert.match(err.join('\n'), /3 rows from sqlite .*haraka\/data\/tracking\.sqlite/);
  });

  it('trace filters by --since, --ip, --from, --to, --action and --limit', async () => {
    const refs = async (...args: string[]) => {
      const { code, out, err } = await run(['trace', '--config', configDir, '--json', ...args]);
      assert.equal(code, 0, err.join('\n'));
      return out.map((l) => (JSON.parse(l) as TrackingRow).ref);
    };
    assert.deepEqual(await refs('--since', '1h'), ['B0UNCE1', '7KQ2M9X']);
    assert.deepEqual(await refs('--since', new Date(Date.now() - 4 * 86_400_000).toISOString().slice(0, 10)), ['B0UNCE1', '7KQ2M9X', '0LD0000']);
    assert.deepEqual(await refs('--ip', '203.0.113.9'), ['7KQ2M9X']);
    assert.deepEqual(await refs('--from', 'bad.example'), ['7KQ2M9X']);
    assert.deepEqual(await refs('--from', '<>'), ['B0UNCE1']);
    assert.deepEqual(await refs('--to', 'Bob@Example.com'), ['7KQ2M9X']);
    assert.deepEqual(await refs('--action', 'reject'), ['7KQ2M9X', '0LD0000']);
    assert.deepEqual(await refs('--action', 'reject', '--since', '2d'), ['7KQ2M9X']);
    assert.deepEqual(await refs('--limit', '1'), ['B0UNCE1']);
  });

  it('trace --json prints one whole row per line', async () => {
    const { out } = await run(['trace', '--config', configDir, '--json', '--ip', '203.0.113.9']);
    assert.equal(out.length, 1);
    assert.deepEqual(JSON.parse(out[0]!), rejected);
  });

  it('trace refuses a bad --since or --limit with a usable message', async () => {
    const since = await run(['trace', '--config', configDir, '--since', 'yesterday']);
    assert.equal(since.code, 2);
    assert.match(since.err.join('\n'), /--since "yesterday": give an ISO time .* 1h/);
    assert.doesNotMatch(since.err.join('\n'), /\n\s+at /, 'no stack trace');
    const limit = await run(['trace', '--config', configDir, '--limit', '0']);
    assert.equal(limit.code, 2);
  });

  it('explain tells the whole story, with each symbol\'s description', async () => {
    const { code, out, err } = await run(['explain', '7kq2m9x', '--config', configDir]);
    assert.equal(code, 0, err.join('\n'));
    const text = out.join('\n');
    for (const part of [
      /^ref\s+7KQ2M9X$/m,
      /^time\s+\S+ on mx-test \(queue id A1B2C3D4\.1\)$/m,
      /^client\s+203\.0\.113\.9\s+ptr \(none\)\s+helo bad\.example$/m,
      /^mail from\s+<offers@bad\.example>$/m,
      /^rcpt to\s+<alice@example\.com>, <bob@example\.com>$/m,
      /^message\s+Message-ID <spam-1@bad\.example>, 2048 bytes$/m,
      /^parse\s+ok$/m,
      /^action\s+reject \(score 1002, decided at data\)$/m,
      /^reason\s+score 1002 reaches reject \(15\)$/m,
      /^groups\s+policy 1000, retired 2$/m,
      /\+1000\s+GTUBE\s+policy: GTUBE test string in body\n\s+Body carries the GTUBE anti-spam test string/,
      /\+2\s+OLD_RETIRED_SYMBOL\s+retired: from an older version\n\s+\(no longer registered/,
      /^processing 41 ms$/m,
    ]) assert.match(text, part);
  });

  it('explain --json adds descriptions (null for a symbol no longer registered)', async () => {
    const { code, out } = await run(['explain', '7KQ2M9X', '--config', configDir, '--json']);
    assert.equal(code, 0);
    const story = JSON.parse(out[0]!);
    assert.equal(story.ref, '7KQ2M9X');
    assert.match(story.symbols[0].description, /GTUBE/);
    assert.equal(story.symbols[1].description, null);
    assert.equal(story.remoteIp, '203.0.113.9');
  });

  it('explain of a connect-time refusal and of a bounce reads sensibly', async () => {
    const early = (await run(['explain', '0LD0000', '--config', configDir])).out.join('\n');
    assert.match(early, /^mail from\s+\(none: ended before MAIL FROM\)$/m);
    assert.match(early, /^message\s+no message \(ended before DATA\)$/m);
    assert.match(early, /^symbols\s+\(none fired\)$/m);
    const b = (await run(['explain', 'B0UNCE1', '--config', configDir])).out.join('\n');
    assert.match(b, /^mail from\s+<> \(null sender/m);
  });

  it('explain of an unknown ref is a clear error with exit code 1', async () => {
    const { code, out, err } = await run(['explain', 'ZZZZZZZ', '--config', configDir]);
    assert.equal(code, 1);
    assert.deepEqual(out, []);
    assert.match(err.join('\n'), /^mailward explain: no tracked transaction with ref ZZZZZZZ in sqlite .*tracking\.sqlite$/);
    const bad = await run(['explain', 'not a ref!', '--config', configDir]);
    assert.equal(bad.code, 2);
    assert.match(bad.err.join('\n'), /is not a ref/);
  });

  it('explain finds a row still waiting in the spool, and says so', async () => {
    const spooled = { ...bounce, ref: 'SP00L01' };
    const spoolFile = join(root, 'haraka', 'data', `tracking.spool.${process.pid}`);
    writeFileSync(spoolFile, `${JSON.stringify(spooled)}\n`);
    try {
      const { code, out, err } = await run(['explain', 'SP00L01', '--config', configDir]);
      assert.equal(code, 0, err.join('\n'));
      assert.match(out[0]!, /SP00L01/);
      assert.match(err.join('\n'), /in the spool, not yet in the database/);
      const trace = await run(['trace', '--config', configDir]);
      assert.match(trace.err.join('\n'), /hold rows not yet in the database/);
    } finally {
      rmSync(spoolFile);
    }
  });

  it('trace and explain print what the client and sender wrote with control and bidi characters escaped, other text as it is', async () => {
    const hostileDir = join(root, 'hostile', 'config');
    mkdirSync(hostileDir, { recursive: true });
    writeFileSync(join(hostileDir, 'mailward.ini'), '[tracking]\nsqlite_path = tracking.sqlite\n');
    const row: TrackingRow = {
      ...rejected,
      ref: 'H0ST1LE',
      messageId: `<x1${HOSTILE}\n@attacker.test>`,
      ptr: `${PLAIN}.example`,
      helo: `\u2066${PLAIN}\u2069`,
      mailFrom: 'evil\x1b[2J@attacker.test',
      rcptTo: ['alice@example.com'],
      symbols: [{ name: 'GTUBE', score: 1000, group: 'policy', detail: `${HOSTILE} ${PLAIN}` }],
    };
    await seed(hostileDir, [row]);

    const story = await run(['explain', 'H0ST1LE', '--config', hostileDir]);
    assert.equal(story.code, 0);
    const text = story.out.join('\n');
    assertPrintable(text, 'explain');
    assert.match(text, /^message {4}Message-ID <x1Hi \\x1b\]0;OWNED\\x07.*\\u202c\\x0a@attacker\.test>, 2048 bytes$/m);
    assert.ok(text.includes(`helo \\u2066${PLAIN}\\u2069\n`), 'the HELO');
    assert.ok(text.includes(`ptr ${PLAIN}.example `), 'the PTR, as it is');
    assert.ok(text.includes(`policy: ${HOSTILE_SHOWN} ${PLAIN}\n`), 'a symbol detail');
    assert.match(text, /^mail from {2}<evil\\x1b\[2J@attacker\.test>$/m);

    const table = await run(['trace', '--config', hostileDir]);
    assert.equal(table.code, 0);
    assertPrintable(table.out.join('\n'), 'trace');
    assert.equal(table.out.length, 2, 'a header and one row');
    assert.ok(table.out[1]!.includes('evil\\x1b[2J@attacker.test'), 'the sender');

    for (const argv of [['explain', 'H0ST1LE', '--json'], ['trace', '--json']]) {
      const json = await run([...argv, '--config', hostileDir]);
      assertPrintable(json.out.join('\n'), argv.join(' '));
      assert.equal(JSON.parse(json.out[0]!).messageId, row.messageId, 'the very text, escaped the JSON way');
    }
  });

  it('without a database both commands say where they looked (exit code 1)', async () => {
    const empty = join(root, 'empty', 'config');
    mkdirSync(empty, { recursive: true });
    for (const argv of [['trace', '--config', empty], ['explain', '7KQ2M9X', '--config', empty]]) {
      const { code, err } = await run(argv);
      assert.equal(code, 1);
      assert.match(err.join('\n'), /no tracking database at .*empty\/data\/tracking\.sqlite/);
    }
  });

  describe('when the database cannot be read, rows waiting in the spool', () => {
    const spooledReject = { ...rejected, ref: 'SP00L02' };
    const spooledBounce = { ...bounce, ref: 'SP00L03' };
    const spooledOld = { ...old, ref: 'SP00L04' };
    let closedPort: number;
    before(async () => {
      // A port nothing listens on: PostgreSQL is down.
      const server = createServer();
      await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
      closedPort = (server.address() as AddressInfo).port;
      await new Promise((done) => server.close(done));
    });

    /** A config whose database is missing (SQLite) or refuses connections (PostgreSQL), and a spool with rows. */
    function unreadable(name: string, ini: string): string {
      const dir = join(root, name, 'config');
      mkdirSync(join(root, name, 'data'), { recursive: true });
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'mailward.ini'), ini);
      const lines = [spooledReject, spooledBounce].map((r) => JSON.stringify(r));
      // A line torn by a crash between them is skipped.
      writeFileSync(join(root, name, 'data', `tracking.spool.${process.pid}`), `${lines[0]}\n{"ref":"SP00L9\n${lines[1]}\n`);
      writeFileSync(join(root, name, 'data', 'tracking.spool.999999.replaying'), `${JSON.stringify(spooledOld)}\n`);
      return dir;
    }

    const cases = [
      { name: 'SQLite file missing', why: /no tracking database at .*spool-sqlite\/data\/tracking\.sqlite/, ini: () => '' },
      {
        name: 'PostgreSQL refusing connections',
        why: /cannot read postgres public\.mailward_tracking: connect ECONNREFUSED/,
        ini: () => `[tracking]\nbackend = postgres\npostgres_url = postgres://postgres@127.0.0.1:${closedPort}/test\n`,
      },
    ];
    for (const c of cases) {
      describe(c.name, () => {
        let dir: string;
        before(() => {
          dir = unreadable(c.name.startsWith('SQLite') ? 'spool-sqlite' : 'spool-pg', c.ini());
        });

        it('explain finds the row in the spool, and says why the database was not read (exit code 0)', async () => {
          const { code, out, err } = await run(['explain', 'sp00l02', '--config', dir]);
          assert.equal(code, 0, err.join('\n'));
          assert.match(out.join('\n'), /^ref\s+SP00L02$/m);
          assert.match(out.join('\n'), /Body carries the GTUBE/);
          assert.match(err.join('\n'), /^note: this row is in the spool, not yet in the database \(the database could not be read: .*\); it goes in once replayed from .*tracking\.spool\.\d+$/);
          assert.match(err.join('\n'), c.why);
          const json = await run(['explain', 'SP00L04', '--config', dir, '--json']);
          assert.equal(json.code, 0);
          assert.equal(JSON.parse(json.out[0]!).ref, 'SP00L04', 'an interrupted replay\'s file is searched too');
        });

        it('explain of a ref in neither gives both reasons (exit code 1)', async () => {
          const { code, out, err } = await run(['explain', 'ZZZZZZZ', '--config', dir]);
          assert.equal(code, 1);
          assert.deepEqual(out, []);
          assert.match(err.join('\n'), /^mailward explain: no tracked transaction with ref ZZZZZZZ in the spool \(.*tracking\.spool\.\d+.*\), and /);
          assert.match(err.join('\n'), /tracking\.spool\.999999\.replaying/, 'every spool file searched is named');
          assert.match(err.join('\n'), c.why);
        });

        it('trace lists the spooled rows its filters match, as a database would, and still fails (exit code 1)', async () => {
          const table = await run(['trace', '--config', dir]);
          assert.equal(table.code, 1);
          assert.deepEqual(table.out.slice(1).map((l) => l.split(/\s+/)[2]), ['SP00L03', 'SP00L02', 'SP00L04'], 'newest first');
          assert.match(table.err.join('\n'), /listed only the 3 rows waiting in the spool/);
          assert.match(table.err.join('\n'), c.why);
          // The same filters over the same rows give what the database gave (first describe).
          const refs = async (...args: string[]) => (await run(['trace', '--config', dir, '--json', ...args])).out.map((l) => (JSON.parse(l) as TrackingRow).ref);
          assert.deepEqual(await refs('--since', '1h'), ['SP00L03', 'SP00L02']);
          assert.deepEqual(await refs('--ip', '203.0.113.9'), ['SP00L02']);
          assert.deepEqual(await refs('--from', 'bad.example'), ['SP00L02']);
          assert.deepEqual(await refs('--from', '<>'), ['SP00L03']);
          assert.deepEqual(await refs('--to', 'Bob@Example.com'), ['SP00L02']);
          assert.deepEqual(await refs('--action', 'reject', '--since', '2d'), ['SP00L02']);
          assert.deepEqual(await refs('--limit', '1'), ['SP00L03']);
          const none = await run(['trace', '--config', dir, '--ip', '192.0.2.99']);
          assert.equal(none.code, 1);
          assert.deepEqual(none.out, []);
          assert.match(none.err.join('\n'), /none of the rows waiting in the spool .* match/);
        });
      });
    }
  });

  it('a spool file replayed (removed) between listing and reading is passed over', async () => {
    const file = join(root, 'listed.spool');
    writeFileSync(file, `${JSON.stringify(bounce)}\n`);
    const gone = join(root, 'replayed-meanwhile.spool');
    assert.deepEqual((await findInSpool([gone, file], bounce.ref))?.row, bounce);
    assert.deepEqual(await findSpooled([gone, file], {}), [bounce]);
  });

  describe('with [tracking] backend = postgres', () => {
    const schema = `mwtest_trace_${randomBytes(4).toString('hex')}`;
    let pgConfig: string;
    before(async () => {
      pgConfig = join(root, 'pg', 'config');
      mkdirSync(pgConfig, { recursive: true });
      writeFileSync(
        join(pgConfig, 'mailward.ini'),
        `[tracking]\nbackend = postgres\npostgres_url = postgres://postgres@127.0.0.1:5432/test\npostgres_schema = ${schema}\n`,
      );
      await seed(pgConfig, [rejected, bounce, old]);
    });
    after(async () => {
      const admin = new Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' });
      await admin.connect();
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await admin.end();
    });

    it('trace and explain read the same rows from PostgreSQL', async () => {
      const trace = await run(['trace', '--config', pgConfig, '--json', '--since', '1h']);
      assert.equal(trace.code, 0, trace.err.join('\n'));
      assert.deepEqual(trace.out.map((l) => JSON.parse(l)), [bounce, rejected]);
      const explain = await run(['explain', '7KQ2M9X', '--config', pgConfig]);
      assert.equal(explain.code, 0);
      assert.match(explain.out.join('\n'), /Body carries the GTUBE/);
      const unknown = await run(['explain', 'ZZZZZZZ', '--config', pgConfig]);
      assert.equal(unknown.code, 1);
      assert.match(unknown.err.join('\n'), new RegExp(`no tracked transaction with ref ZZZZZZZ in postgres ${schema}\\.mailward_tracking`));
    });
  });
});

describe('mailward trace over a large tracking store', () => {
  let root: string;
  let configDir: string;
  const ROWS = 130_000;

  before(async function () {
    this.timeout(120_000);
    root = mkdtempSync(join(tmpdir(), 'mw-trace-big-'));
    configDir = join(root, 'haraka', 'config');
    mkdirSync(configDir, { recursive: true });
    writeFileSync(join(configDir, 'mailward.ini'), '[main]\nnode_name = mx-test\n[tracking]\nsqlite_path = tracking.sqlite\n');
    // Straight into the store, in one transaction: the batched writer would take minutes.
    const store = new SqliteTrackingStore(loadConfig({ configDir }).shared.tracking.sqlitePath);
    const start = Date.now() - ROWS * 1000;
    const rows: TrackingRow[] = [];
    for (let i = 0; i < ROWS; i++) rows.push({ ...rejected, ref: `R${i.toString(36).toUpperCase().padStart(6, '0')}`, time: new Date(start + i * 1000).toISOString() });
    assert.equal(await store.insert(rows), ROWS);
    await store.close();
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it(`lists ${ROWS} rows (column widths were Math.max over a spread of every row: RangeError past ~120,000)`, async function () {
    this.timeout(120_000);
    const { code, out, err } = await run(['trace', '--config', configDir, '--limit', String(ROWS)]);
    assert.equal(code, 0, err.join('\n'));
    assert.equal(out.length, ROWS + 1, 'a title line and every row');
    assert.match(out[0]!, /^TIME \(UTC\)\s+REF\s+IP/);
    // The widest REF sets the column: every row's IP starts at the same place.
    const at = out[1]!.indexOf('203.0.113.9');
    assert.ok(at > 0 && out.every((l, i) => i === 0 || l.indexOf('203.0.113.9') === at), 'columns aligned');
    assert.match(err.join('\n'), new RegExp(`${ROWS} rows from sqlite`));
  });
});
