// The quarantine store (files + SQLite or PostgreSQL index), release stamps,
// a failed release, and the quarantine/allow/block commands through main().
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { main } from '../lib/cli/main';
import { closeSharedIndexes, FileQuarantine, PostgresQuarantineIndex, releaseMessage, ReleaseError, type QuarantineEntry, type QuarantineIndex } from '../lib/quarantine';
import { createContext, headerValues } from '../lib/message';
import { releaseHeaderLine, releaseKey, signRelease, verifyRelease } from '../lib/quarantine/release-token';
import { freePort } from './support/haraka';
import { capture, entry as heldEntry, RAW } from './support/quarantine';
import { assertPrintable, HOSTILE, HOSTILE_SHOWN, PLAIN } from './support/terminal';

const DAY = 86_400_000;

const entry = (ref: string, fields: Partial<QuarantineEntry> = {}): QuarantineEntry =>
  heldEntry(ref, { symbols: [{ name: 'BAYES_SPAM', score: 9, group: 'content', detail: 'p=0.99' }], ...fields });


async function exerciseStore(q: FileQuarantine): Promise<void> {
  const old = new Date(Date.now() - 40 * DAY).toISOString();
  await q.put(entry('AAA1', { time: old }), RAW);
  await q.put(entry('BBB2', { rcptTo: ['carol@example.com', 'Alice@Example.com'] }), RAW);
  await q.put(entry('CCC3', { rcptTo: ['carol@example.com'] }), RAW);

  const got = await q.get('BBB2');
  assert.ok(got);
  assert.equal(got.raw.toString(), RAW.toString());
  assert.equal(got.entry.status, 'held');

  assert.deepEqual((await q.list()).map((r) => r.ref).sort(), ['AAA1', 'BBB2', 'CCC3']);
  assert.deepEqual((await q.list({ rcpt: 'alice@example.com' })).map((r) => r.ref).sort(), ['AAA1', 'BBB2']);
  assert.deepEqual((await q.list({ since: new Date(Date.now() - DAY) })).map((r) => r.ref).sort(), ['BBB2', 'CCC3']);

  assert.deepEqual(await q.held(), { count: 3, oldest: old });
  await q.update('CCC3', { status: 'released', statusTime: new Date().toISOString() });
  assert.deepEqual((await q.list()).map((r) => r.ref).sort(), ['AAA1', 'BBB2']);
  assert.deepEqual(await q.held(), { count: 2, oldest: old }, 'a released message is not held');
  assert.deepEqual(await q.listWithHeld({ status: 'all' }), { records: await q.list({ status: 'all' }), held: { count: 2, oldest: old } });
  assert.deepEqual((await q.list({ status: 'all' })).map((r) => r.ref).sort(), ['AAA1', 'BBB2', 'CCC3']);

  assert.deepEqual(await q.purge(Date.now(), 30), ['AAA1']);
  assert.equal(await q.get('AAA1'), null);
  assert.equal(await q.delete('BBB2'), true);
  assert.equal(await q.delete('BBB2'), false);
  assert.deepEqual((await q.list({ status: 'all' })).map((r) => r.ref), ['CCC3']);
  assert.deepEqual(await q.held(), { count: 0 });
}

describe('quarantine store', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'mailward-q-'))));
  afterEach(async () => {
    await closeSharedIndexes();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps messages whole with a SQLite index: list by recipient and time, status, delete, retention purge', async () => {
    const q = new FileQuarantine(dir);
    await exerciseStore(q);
    assert.ok(existsSync(join(dir, 'index.sqlite')));
  });

  it('a status change the index missed (its lock held elsewhere) is indexed by the next listing', async () => {
    const q = new FileQuarantine(dir);
    await q.put(entry('LOCKED1234'), RAW);
    assert.equal((await q.list({ status: 'all' })).find((r) => r.ref === 'LOCKED1234')?.status, 'held');
    const holder = new Database(join(dir, 'index.sqlite'));
    holder.exec('BEGIN IMMEDIATE');
    try {
      await q.update('LOCKED1234', { status: 'released', statusTime: new Date().toISOString() });
    } finally {
      holder.exec('ROLLBACK');
      holder.close();
    }
    assert.equal((await q.record('LOCKED1234'))?.status, 'released', 'the file has it');
    assert.equal((await q.list({ status: 'all' })).find((r) => r.ref === 'LOCKED1234')?.status, 'released', 'and the index after the next listing');
    assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.reindex')), []);
  });

  it('a put never replaces a message already held under the same ref', async () => {
    const q = new FileQuarantine(dir);
    await q.put(entry('SAME123456', { subject: 'first' }), Buffer.from('Subject: first\r\n\r\none\r\n'));
    await assert.rejects(q.put(entry('SAME123456', { subject: 'second' }), Buffer.from('Subject: second\r\n\r\ntwo\r\n')), /a message with ref SAME123456 is already held: not replaced/);
    const held = await q.get('SAME123456');
    assert.match(held!.raw.toString(), /Subject: first/);
    assert.equal(held!.entry.subject, 'first');
    assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.tmp')), []);
  });

  it('the files are the truth: a message the index missed is listed, one deleted by hand is forgotten', async () => {
    const q = new FileQuarantine(dir);
    await q.put(entry('DDD4'), RAW);
    // Written by another node (or while the index was down): files only.
    writeFileSync(join(dir, 'EEE5.eml'), RAW);
    writeFileSync(join(dir, 'EEE5.json'), JSON.stringify(entry('EEE5')));
    unlinkSync(join(dir, 'DDD4.json'));
    unlinkSync(join(dir, 'DDD4.eml'));
    assert.deepEqual((await q.list()).map((r) => r.ref), ['EEE5']);
  });

  it('a put with a broken index still keeps the message (and says so)', async () => {
    const warnings: string[] = [];
    const broken: QuarantineIndex = {
      description: 'broken',
      upsert: async () => { throw new Error('index down'); },
      upsertMany: async () => { throw new Error('index down'); },
      get: async () => null, list: async () => [], delete: async () => {}, deleteMany: async () => {}, refs: async () => new Set(), olderThan: async () => [], held: async () => ({ count: 0 }), close: async () => {},
    };
    const q = new FileQuarantine(dir, { index: broken, log: { debug() {}, info() {}, error() {}, warn: (m) => warnings.push(m) } });
    await q.put(entry('FFF6'), RAW);
    assert.ok(await q.get('FFF6'));
    assert.match(warnings.join(), /FFF6 \(held\) is on disk but not in the index yet; the next listing indexes it \(index down\)/);
    // The index cannot be brought in line (its writes fail): counted from the record files instead.
    const time = new Date(Date.now() - DAY).toISOString();
    await q.put(entry('GGG6', { time }), RAW);
    assert.deepEqual(await q.held(), { count: 2, oldest: time });
    assert.match(warnings.at(-1)!, /the index cannot be read \(index down\); listed from the files/);
  });

  it('a release that fails leaves the message held with the error recorded', async () => {
    const q = new FileQuarantine(dir);
    await q.put(entry('GGG7'), RAW);
    const port = await freePort(); // nothing listens there
    await assert.rejects(releaseMessage(q, 'GGG7', { host: '127.0.0.1', port, timeoutMs: 2000 }), (err: unknown) => err instanceof ReleaseError && /GGG7 stays in quarantine: release to 127\.0\.0\.1:\d+ failed: .*ECONNREFUSED/.test((err as Error).message));
    const record = await q.record('GGG7');
    assert.equal(record!.status, 'held');
    assert.match(record!.error!, /ECONNREFUSED/);
    assert.deepEqual((await q.list()).map((r) => r.ref), ['GGG7']);
    await assert.rejects(releaseMessage(q, 'NOPE', { host: '127.0.0.1', port }), /no quarantined message NOPE/);
  });

  it('a release.key cut short (empty after a failed write or a crash) is refused, not used as an empty key anyone can sign with', () => {
    const kdir = join(dir, 'cut-key');
    mkdirSync(kdir, { recursive: true });
    writeFileSync(join(kdir, 'release.key'), '');
    // The MTA's side: a stamp signed with an empty key must not be honoured.
    assert.throws(() => releaseKey(kdir, false), /holds 0 of the 32 bytes of a release key \(cut short\): not used; remove it/);
    assert.throws(() => releaseKey(kdir, true), /cut short/);
    writeFileSync(join(kdir, 'release.key'), 'ab'.repeat(32));
    assert.equal(releaseKey(kdir, false)!.length, 32, 'a whole key is used');
  });

  it('release stamps verify for the same sender and body only, and expire', () => {
    const key = releaseKey(dir, true)!;
    assert.deepEqual(releaseKey(dir, false), key, 'the key is kept');
    const bob = 'bob@partner.test';
    const alice = ['alice@example.com'];
    const stamp = signRelease(key, 'HHH8', { mailFrom: bob, rcptTo: alice }, RAW, 1_000_000_000_000);
    // Re-injected: headers added on top, line ends and trailing blanks changed in transit.
    const reinjected = Buffer.from(`Received: from localhost\r\nX-Mailward-Release: x\r\n${RAW.toString().replace(/\r\n/g, '\n').replace('Hello Alice', 'Hello Alice  ')}`);
    assert.deepEqual(verifyRelease(key, stamp, { mailFrom: 'Bob@Partner.test', rcptTo: alice }, reinjected, 1_000_000_000_000 + 1000), { ref: 'HHH8' });
    assert.match((verifyRelease(key, stamp, { mailFrom: 'eve@evil.test', rcptTo: alice }, RAW, 1_000_000_000_000) as { error: string }).error, /does not match/);
    const changed = Buffer.from(RAW.toString().replace('Hello Alice', 'Send money'));
    assert.match((verifyRelease(key, stamp, { mailFrom: bob, rcptTo: alice }, changed, 1_000_000_000_000) as { error: string }).error, /does not match/);
    assert.match((verifyRelease(key, stamp, { mailFrom: bob, rcptTo: alice }, RAW, 1_000_000_000_000 + 2 * DAY) as { error: string }).error, /expired/);
    assert.match((verifyRelease(key, 'HHH8 1 abc', { mailFrom: bob, rcptTo: alice }, RAW) as { error: string }).error, /malformed/);
    // Anyone can send the header: what is logged of it stays short, however long its ref (it was echoed whole, 100 KB a message).
    const long = 'A'.repeat(100_000);
    for (const forged of [`${long} 1 ${'0'.repeat(32)}`, `${long} 1 deadbeef ${'0'.repeat(32)}`]) {
      const { error } = verifyRelease(key, forged, { mailFrom: bob, rcptTo: alice }, RAW) as { error: string };
      assert.equal(error, 'malformed release stamp');
    }
    assert.deepEqual(verifyRelease(releaseKey(join(dir, 'other'), true)!, stamp, { mailFrom: bob, rcptTo: alice }, RAW, 1_000_000_000_000), { error: 'release stamp for HHH8 does not match this message' }, 'another key');
  });

  it('release stamps digest the body from where the header ends for each separator (\\n\\r\\n too), and a stamp made before that still verifies', () => {
    const key = Buffer.alloc(32, 0x5a);
    const envelope = { mailFrom: 'bob@partner.test', rcptTo: ['alice@example.com'] };
    const now = 1_000_000_000_000;
    // Made by mailward before its header ended at \n\r\n (da0ee86), with this key, for this body
    // under a \r\n\r\n, \n\n or \r\n\n header: a stamp still queued across an upgrade.
    const before = 'OLD1 1000086400 6ac1e9bf 18758ef146e543409131d5f9f9e72c25';
    for (const [eol, sep] of [['\r\n', '\r\n\r\n'], ['\n', '\n\n'], ['\n', '\n\r\n'], ['\r\n', '\r\n\n']] as const) {
      const held = Buffer.from(`From: bob@partner.test${eol}Subject: hi${sep}Hello Alice\r\n\r\nBob\r\n`);
      // Released: stamped on top, its line ends made CRLF by the SMTP transit (nodemailer writes CRLF only).
      const arrived = (stamp: string) => Buffer.from(`Received: from localhost\r\n${releaseHeaderLine(stamp, '\r\n')}${held.toString('latin1').replace(/\r?\n/g, '\r\n')}`, 'latin1');
      const stamp = signRelease(key, 'NEW1', envelope, held, now);
      const what = JSON.stringify(sep);
      assert.deepEqual(verifyRelease(key, stamp, envelope, arrived(stamp), now), { ref: 'NEW1' }, what);
      assert.deepEqual(verifyRelease(key, before, envelope, held, now), { ref: 'OLD1' }, what);
      assert.deepEqual(verifyRelease(key, before, envelope, arrived(before), now), { ref: 'OLD1' }, what);
    }
  });

  it('a forged stamp on a body of long blank runs is refused at once: the body digest is not quadratic in them', () => {
    const key = releaseKey(dir, true)!;
    const bob = 'bob@partner.test';
    const alice = ['alice@example.com'];
    // Trailing blanks and blank lines still do not count, wherever they are.
    const body = 'Hello Alice\r\n\r\nSee you.';
    const stamp = signRelease(key, 'LLL1', { mailFrom: bob, rcptTo: alice }, Buffer.from(`Subject: a\r\n\r\n${body}\r\n`), 1_000_000_000_000);
    const spaced = Buffer.from(`Subject: a\r\n\r\n\r\n\r\n${body.replace(/\r\n/g, ' \t\r\n')}  \r\n\r\n\r\n`);
    assert.deepEqual(verifyRelease(key, stamp, { mailFrom: bob, rcptTo: alice }, spaced, 1_000_000_000_000), { ref: 'LLL1' });
    // Anyone can send a made-up stamp; its body is digested before the MAC is compared. /[ \t]+$/gm and
    // /^\n+|\n+$/g retried at every position of a run: 100,000 blanks took 17 s.
    const forged = `LLL1 ${2_000_000_000} 0123abcd ${'0'.repeat(32)}`;
    for (const hostile of [`x${' '.repeat(100_000)}y`, `x${'\r\n'.repeat(100_000)}y`]) {
      const started = Date.now();
      const result = verifyRelease(key, forged, { mailFrom: bob, rcptTo: alice }, Buffer.from(`Subject: a\r\n\r\n${hostile}\r\n`), 1_000_000_000_000);
      const ms = Date.now() - started;
      // hang guard, not a performance test: typical 2ms (bench/hostile.ts times it against a body of text).
      assert.ok(ms < 3000, `${ms} ms`);
      assert.deepEqual(result, { error: 'release stamp for LLL1 does not match this message' });
    }
  });

  it('release stamps bind the recipients: the same or fewer verify, any other is named, case does not matter', () => {
    const key = releaseKey(dir, true)!;
    const now = 1_000_000_000_000;
    const mailFrom = 'bob@partner.test';
    const released = ['alice@example.com', 'carol@example.com', 'Dave@Example.com', 'alice@example.com'];
    const stamp = signRelease(key, 'JJJ9', { mailFrom, rcptTo: released }, RAW, now);
    const verify = (rcptTo: string[], value = stamp) => verifyRelease(key, value, { mailFrom, rcptTo }, RAW, now);
    // One tag per distinct recipient (deduplicated), in an order that does not depend on the recipients'.
    assert.match(stamp, /^JJJ9 \d+ [0-9a-f]{8},[0-9a-f]{8},[0-9a-f]{8} [0-9a-f]{32}$/);
    assert.equal(signRelease(key, 'JJJ9', { mailFrom, rcptTo: ['dave@example.com', 'CAROL@example.com', 'alice@example.com'] }, RAW, now), stamp, 'same recipients, other order and case: same stamp');
    assert.doesNotMatch(stamp, /example/, 'the stamp does not spell out the recipients');

    assert.deepEqual(verify(['alice@example.com', 'carol@example.com', 'dave@example.com']), { ref: 'JJJ9' }, 'the same recipients');
    assert.deepEqual(verify(['carol@example.com']), { ref: 'JJJ9' }, 'a subset (the MTA refused the others)');
    assert.deepEqual(verify(['ALICE@Example.COM', 'dave@example.com']), { ref: 'JJJ9' }, 'case-insensitive');
    assert.deepEqual(verify(['carol@example.com', 'x@example.org']), { error: 'release stamp for JJJ9 does not cover recipient x@example.org' });
    assert.deepEqual(verify(['eve@example.com']), { error: 'release stamp for JJJ9 does not cover recipient eve@example.com' });

    // The tag list is signed: dropping, adding or swapping a tag breaks the stamp.
    const [ref, exp, tags, mac] = stamp.split(' ') as [string, string, string, string];
    const list = tags.split(',');
    const other = signRelease(key, 'JJJ9', { mailFrom, rcptTo: ['x@example.org'] }, RAW, now).split(' ')[2]!;
    assert.deepEqual(verify(['alice@example.com'], [ref, exp, list.slice(1).join(','), mac].join(' ')), { error: 'release stamp for JJJ9 does not match this message' });
    assert.deepEqual(verify(['x@example.org'], [ref, exp, [...list, other].join(','), mac].join(' ')), { error: 'release stamp for JJJ9 does not match this message' });
    assert.deepEqual(verify(['x@example.org'], [ref, exp, [other, ...list.slice(1)].join(','), mac].join(' ')), { error: 'release stamp for JJJ9 does not match this message' });

    // A stamp from before recipients were bound: REF EXPIRY HMAC.
    assert.deepEqual(verify(['alice@example.com'], `${ref} ${exp} ${mac}`), { error: 'release stamp for JJJ9 without recipients (made by an older mailward): release again' });
    assert.throws(() => signRelease(key, 'JJJ9', { mailFrom, rcptTo: [] }, RAW, now), /no recipients/);
  });

  it('a stamp for many recipients is folded into short header lines and still verifies as the rules module reads it', () => {
    const key = releaseKey(dir, true)!;
    const now = 1_000_000_000_000;
    const rcptTo = Array.from({ length: 150 }, (_, i) => `user${i}@example.com`);
    const stamp = signRelease(key, 'KKK1', { mailFrom: 'bob@partner.test', rcptTo }, RAW, now);
    const line = releaseHeaderLine(stamp, '\r\n');
    const lines = line.split('\r\n').slice(0, -1);
    assert.ok(lines.length > 15, `folded: ${lines.length} lines`);
    for (const l of lines) assert.ok(l.length <= 78, `short line: ${l}`);
    assert.ok(lines.slice(1).every((l) => l.startsWith(' ')), 'continuation lines');
    const ctx = createContext({ ip: '127.0.0.1', raw: Buffer.concat([Buffer.from(line), RAW]) });
    const [value] = headerValues(ctx, 'X-Mailward-Release');
    assert.notEqual(value, stamp, 'unfolded, it is not the one-line stamp');
    assert.deepEqual(verifyRelease(key, value!, { mailFrom: 'bob@partner.test', rcptTo: [rcptTo[0]!, rcptTo[149]!] }, ctx.raw!, now), { ref: 'KKK1' });
    assert.deepEqual(verifyRelease(key, value!, { mailFrom: 'bob@partner.test', rcptTo: ['user150@example.com'] }, ctx.raw!, now), { error: 'release stamp for KKK1 does not cover recipient user150@example.com' });
    assert.equal(releaseHeaderLine(signRelease(key, 'KKK1', { mailFrom: 'bob@partner.test', rcptTo: ['a@example.com'] }, RAW, now), '\n').split('\n').length, 2, 'one recipient: one line');
  });
});

describe('quarantine index in PostgreSQL (a fleet)', function () {
  const schema = `mwtest_rules_${process.pid}_${Math.floor(Math.random() * 1e6)}`;
  const url = 'postgres://postgres@127.0.0.1:5432/test';
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'mailward-qpg-'))));
  after(async () => {
    rmSync(dir, { recursive: true, force: true });
    const client = new Client({ connectionString: url });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await client.end();
  });

  it('does what the SQLite index does', async () => {
    const index = new PostgresQuarantineIndex({ url, schema });
    const q = new FileQuarantine(dir, { index });
    try {
      await exerciseStore(q);
    } finally {
      await q.close();
    }
  });
});

describe('mailward quarantine / allow / block commands', () => {
  let base: string;
  let configDir: string;
  beforeEach(() => {
    base = mkdtempSync(join(tmpdir(), 'mailward-qcli-'));
    configDir = join(base, 'config');
    require('node:fs').mkdirSync(configDir);
  });
  afterEach(async () => {
    await closeSharedIndexes();
    rmSync(base, { recursive: true, force: true });
  });

  async function cli(...argv: string[]) {
    const io = capture();
    const code = await main([...argv, '--config', configDir], io);
    return { code, out: io.outText(), err: io.errText() };
  }

  it('list, show, digest and delete held messages', async () => {
    const q = new FileQuarantine(join(base, 'data', 'quarantine'));
    await q.put(entry('JJJ1', { rcptTo: ['alice@example.com', 'carol@example.com'], subject: 'Invoice 42' }), RAW);
    await q.put(entry('KKK2', { rcptTo: ['carol@example.com'], time: new Date(Date.now() - 3 * DAY).toISOString() }), RAW);
    await q.put(entry('7KQ2M9XA4F', { rcptTo: ['dave@example.com'], subject: 'A ref of full length' }), RAW);

    const list = await cli('quarantine', 'list');
    assert.equal(list.code, 0, list.err);
    // Columns line up under the header with refs of their real length (10).
    const lines = list.out.split('\n');
    assert.match(lines.pop()!, /^quarantine: .* used .*, 3 held \(mailward quarantine usage\)$/, 'the usage summary last');
    const [header, ...rows] = lines;
    for (const row of rows) assert.equal(row.indexOf(' held '), header!.indexOf('STATUS') - 1, `${header}\n${row}`);
    assert.match(list.out, /JJJ1 .*held .*bob@partner\.test .*alice@example\.com \+1 .*Invoice 42/);
    assert.match(list.out, /KKK2/);
    const forAlice = await cli('quarantine', 'list', '--rcpt', 'alice@example.com', '--json');
    assert.deepEqual(JSON.parse(forAlice.out).map((r: { ref: string }) => r.ref), ['JJJ1']);
    const recent = await cli('quarantine', 'list', '--since', '1d');
    assert.doesNotMatch(recent.out, /KKK2/);

    const show = await cli('quarantine', 'show', 'jjj1');
    assert.equal(show.code, 0, show.err);
    assert.match(show.out, /reason: +score 9 reached the quarantine threshold 8/);
    assert.match(show.out, /BAYES_SPAM +9 +p=0\.99/);
    assert.match(show.out, /Hello Alice/);
    // The envelope and the From: the recipient sees (what release-approve would approve), each named.
    assert.match(show.out, /^from: +bob@partner\.test \(envelope\)$/m);
    assert.match(show.out, /^From: +Bob <bob@partner\.test>$/m);

    const digest = await cli('quarantine', 'digest');
    assert.match(digest.out, /To: alice@example\.com\nSubject: 1 message held for you in quarantine/);
    assert.match(digest.out, /To: carol@example\.com\nSubject: 2 messages held for you/);
    const one = await cli('quarantine', 'digest', '--rcpt', 'alice@example.com');
    assert.doesNotMatch(one.out, /carol/);
    assert.match(one.out, /JJJ1 .*score 9\n +From: +bob@partner\.test\n +Subject: Invoice 42/);

    assert.equal((await cli('quarantine', 'delete', 'JJJ1')).code, 0);
    const missing = await cli('quarantine', 'show', 'JJJ1');
    assert.equal(missing.code, 1);
    assert.match(missing.err, /mailward quarantine: no quarantined message JJJ1/);
    assert.equal((await cli('quarantine', 'show')).code, 2);
  });

  it('prints what a sender wrote with control and bidi characters escaped, other text as it is: list, show, digest, --json', async () => {
    const subject = `${HOSTILE}\nFAKE ROW ${PLAIN}`;
    const raw = Buffer.from(`From: "${HOSTILE} ${PLAIN}" <evil@attacker.test>\r\nTo: alice@example.com\r\nSubject: x\r\n\r\nDear ${PLAIN}\r\n${HOSTILE}\rhidden\r\n`);
    const q = new FileQuarantine(join(base, 'data', 'quarantine'));
    await q.put(entry('EVIL000001', { subject, mailFrom: 'a\x1bc@attacker.test', symbols: [{ name: 'FROM_MISSING', score: 1, group: 'auth', detail: `text shows ${HOSTILE}` }] }), raw);

    const list = await cli('quarantine', 'list');
    assert.equal(list.code, 0, list.err);
    assertPrintable(list.out, 'list');
    const rows = list.out.split('\n');
    assert.equal(rows.length, 3, 'a newline in the subject starts no row of its own (header, row, usage summary)');
    assert.ok(rows[1]!.includes('a\\x1bc@attacker.test'), 'the sender, escaped');
    assert.ok(rows[1]!.includes(HOSTILE_SHOWN.slice(0, 40)), 'the subject (clipped), escaped');

    const show = await cli('quarantine', 'show', 'EVIL000001');
    assert.equal(show.code, 0, show.err);
    assertPrintable(show.out, 'show');
    assert.ok(show.out.includes(`subject:   ${HOSTILE_SHOWN}\\x0aFAKE ROW ${PLAIN}\n`), 'the subject');
    // The address parser drops C0 from a display name itself; C1 and bidi it keeps.
    assert.ok(show.out.includes(`\\x9b2J \\u202eevil\\u202c ${PLAIN} <evil@attacker.test>\n`), 'the From: name');
    assert.ok(show.out.includes(`text shows ${HOSTILE_SHOWN}\n`), 'a symbol detail');
    // The body keeps its lines; a CR that would let a line overwrite itself is shown.
    assert.ok(show.out.includes(`  Dear ${PLAIN}\n  ${HOSTILE_SHOWN}\\x0dhidden`), 'the body text');

    const digest = await cli('quarantine', 'digest');
    assertPrintable(digest.out, 'digest');
    assert.ok(digest.out.includes(`    Subject: ${HOSTILE_SHOWN}\\x0aFAKE ROW ${PLAIN}\n`), 'the digest subject');

    // JSON keeps the very text (escaped the JSON way), and nothing raw either.
    const json = await cli('quarantine', 'list', '--json');
    assertPrintable(json.out, 'list --json');
    assert.equal(JSON.parse(json.out)[0].subject, subject);

    // release-approve adds the From: address of a message to the allow list: listed escaped too.
    assert.equal((await cli('allow', 'add', '--rcpt', 'alice@example.com', 'a\x1bc\x9b@attacker.test')).code, 0);
    const allowed = await cli('allow', 'list');
    assertPrintable(allowed.out, 'allow list');
    assert.match(allowed.out, /alice@example\.com +run-time +a\\x1bc\\x9b@attacker\.test/);
  });

  it('a failed release exits 1, keeps the message and shows the error in list and show', async () => {
    const port = await freePort();
    writeFileSync(join(configDir, 'mailward.ini'), `[quarantine]\nrelease_port = ${port}\n`);
    const q = new FileQuarantine(join(base, 'data', 'quarantine'));
    await q.put(entry('LLL3'), RAW);
    const r = await cli('quarantine', 'release', 'LLL3');
    assert.equal(r.code, 1);
    assert.match(r.err, /LLL3 stays in quarantine: release to 127\.0\.0\.1:\d+ failed/);
    assert.match((await cli('quarantine', 'list')).out, /LLL3 +held!/);
    assert.match((await cli('quarantine', 'show', 'LLL3')).out, /error: +release to 127\.0\.0\.1/);
  });

  it('allow and block add, list and remove entries per scope, warning about weak ones', async () => {
    const add = await cli('allow', 'add', '--rcpt', 'alice@example.com', 'bob@partner.test');
    assert.equal(add.code, 0, add.err);
    assert.match(add.out, /allow bob@partner\.test for alice@example\.com/);
    assert.equal(add.err, '');
    const again = await cli('allow', 'add', '--rcpt', 'alice@example.com', 'bob@partner.test');
    assert.match(again.out, /already allowed/);
    const weak = await cli('allow', 'add', '--domain', 'example.com', '--unauthenticated', 'partner.test');
    assert.match(weak.err, /warning: .*unauthenticated:partner\.test is unauthenticated/);
    const own = await cli('allow', 'add', '--domain', 'example.com', 'example.com');
    assert.match(own.err, /names our own domain example\.com/);
    const via = await cli('allow', 'add', '--via', '192.0.2.0/24', 'news@partner.test');
    assert.match(via.out, /allow news@partner\.test\[192\.0\.2\.0\/24\] for everyone/);
    const bad = await cli('allow', 'add', '--via', 'mail.partner.test', 'news@partner.test');
    assert.equal(bad.code, 2);
    assert.match(bad.err, /must be an IP or CIDR/);

    const list = await cli('allow', 'list');
    assert.match(list.out, /alice@example\.com +run-time +bob@partner\.test/);
    assert.match(list.out, /domain example\.com +run-time +unauthenticated:partner\.test/);
    const mine = await cli('allow', 'list', '--rcpt', 'alice@example.com', '--json');
    assert.deepEqual(JSON.parse(mine.out), [{ scope: 'user:alice@example.com', entry: 'bob@partner.test', source: 'run-time' }]);

    assert.equal((await cli('allow', 'remove', '--rcpt', 'alice@example.com', 'bob@partner.test')).code, 0);
    const gone = await cli('allow', 'remove', '--rcpt', 'alice@example.com', 'bob@partner.test');
    assert.equal(gone.code, 1);
    assert.match(gone.err, /is not allowed for alice@example\.com/);
    assert.equal((await cli('allow', 'remove', '--via', '1.2.3.4', 'news@partner.test')).code, 0, 'removing by the bare sender');

    assert.equal((await cli('block', 'add', 'spammer.test')).code, 0);
    assert.match((await cli('block', 'list')).out, /everyone +run-time +spammer\.test/);
    assert.equal((await cli('block', 'add', '--via', '1.2.3.4', 'x.test')).code, 2);
    assert.ok(readdirSync(join(base, 'data')).includes('senders.sqlite'));
  });
});
