// Root acting in a directory of the MTA's user (util/owner): that user, perhaps
// compromised, controls the names there and may put a symlink or a hard link to
// a file of root's where root is about to make or write one. Root must neither
// hand that file over (chown) nor write through the name. Root only: skipped otherwise.
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, closeSync, constants, linkSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { closeSharedIndexes, FileQuarantine } from '../lib/quarantine/files';
import { tidyLeftovers } from '../lib/quarantine/leftovers';
import { takeClaim } from '../lib/quarantine/claim';
import { releaseKey } from '../lib/quarantine/release-token';
import { findInSpool, findSpooled } from '../lib/cli/tracking';
import { Spool } from '../lib/tracking/spool';
import { SqliteTrackingStore } from '../lib/tracking/sqlite';
import { readSharedTotal } from '../lib/quarantine/shared-usage';
import type { TrackingRow } from '../lib/tracking/types';
import { openSharedSqlite } from '../lib/util/sqlite';
import { readRegularFileSync } from '../lib/util/owner';

const MTA = 65534; // nobody:nogroup
const SECRET = 'root:$6$secret:19000:0:99999:7:::\n';
const silent = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * A world for an attack: `own`, a data directory of the MTA user's (nobody), and `victim`, a file of
 * root's (0600) on the same file system (a hard link needs one), as /etc/shadow is.
 */
function plantedWorld(prefix: string): { base: string; own: string; victim: string } {
  const base = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(base, 0o755);
  const own = join(base, 'data');
  mkdirSync(own);
  chownSync(own, MTA, MTA);
  mkdirSync(join(base, 'etc'), { mode: 0o755 });
  const victim = join(base, 'etc', 'shadow');
  writeFileSync(victim, SECRET, { mode: 0o600 });
  return { base, own, victim };
}

describe('root in a directory of the MTA user: symlinks and hard links planted there (needs root: skipped otherwise)', () => {
  let base: string;
  let own: string;
  let victim: string;
  before(function () {
    if (process.getuid?.() !== 0) this.skip(); // Needs root: only root can be tricked into giving a file away.
  });
  beforeEach(() => {
    ({ base, own, victim } = plantedWorld('mailward-owner-attack-'));
  });
  afterEach(async () => {
    await closeSharedIndexes();
    rmSync(base, { recursive: true, force: true });
  });

  /** The victim as it was: root's, 0600, its content unchanged. */
  function assertUntouched(): void {
    const s = statSync(victim);
    assert.deepEqual([s.uid, s.gid, s.mode & 0o777], [0, 0, 0o600], 'the file of root\'s was handed to the MTA user');
    assert.equal(readFileSync(victim, 'utf8'), SECRET, 'root wrote through the planted name');
  }

  const row = { ref: 'ATTACK0001', time: 1 } as unknown as TrackingRow;

  it('the tracking spool (root: Haraka\'s master in cluster mode) a symlink to a file of root\'s', () => {
    const spool = new Spool(join(own, 'tracking.spool'), silent, 4242);
    symlinkSync(victim, spool.path);
    spool.append([row]);
    assertUntouched();
  });

  it('the tracking spool a hard link to a file of root\'s', () => {
    const spool = new Spool(join(own, 'tracking.spool'), silent, 4243);
    linkSync(victim, spool.path);
    spool.append([row]);
    assertUntouched();
  });

  for (const plant of [symlinkSync, linkSync]) {
    it(`the tracking spool replayed by root, a ${plant === symlinkSync ? 'symlink' : 'hard link'} to a file of root's: not read (its lines would go to the log, or become rows)`, async () => {
      const logged: string[] = [];
      const log = { ...silent, warn: (m: string) => logged.push(m), error: (m: string) => logged.push(m) };
      const spool = new Spool(join(own, 'tracking.spool'), log, 4244);
      plant(victim, spool.path);
      const inserted: TrackingRow[] = [];
      await spool
        .replay(async (rows) => {
          inserted.push(...rows);
          return rows.length;
        }, 100)
        .catch((err: Error) => logged.push(err.message));
      assert.deepEqual(inserted, []);
      assert.equal(logged.filter((m) => m.includes('$6$')).length, 0, logged.join('\n'));
      assertUntouched();
    });
  }

  it('a held message\'s record being rewritten by root (`mailward quarantine release`): REF.json.tmp a symlink to a file of root\'s', async () => {
    const qdir = join(own, 'quarantine');
    const store = new FileQuarantine(qdir, { log: silent });
    const ref = 'ATTACKREF1';
    await store.put({ ref, time: new Date().toISOString(), mailFrom: 'bob@partner.test', rcptTo: ['alice@example.com'], subject: 'hi', remoteIp: '192.0.2.1', score: 9, reason: 'test', symbols: [] }, Buffer.from('Subject: hi\r\n\r\nhello\r\n'));
    symlinkSync(victim, join(qdir, `${ref}.json.tmp`));
    await store.update(ref, { status: 'released', statusTime: new Date().toISOString() });
    assertUntouched();
    assert.equal((await store.record(ref))?.status, 'released', 'the record is still written');
    assert.equal(statSync(join(qdir, `${ref}.json`)).uid, MTA, 'and is the MTA user\'s');
  });

  it('a held message read by root (`mailward quarantine show`/`release`): REF.eml a symlink to a file of root\'s is not read', async () => {
    const qdir = join(own, 'quarantine');
    const store = new FileQuarantine(qdir, { log: silent });
    const ref = 'ATTACKREF3';
    await store.put({ ref, time: new Date().toISOString(), mailFrom: 'bob@partner.test', rcptTo: ['mallory@evil.test'], subject: 'hi', remoteIp: '192.0.2.1', score: 9, reason: 'test', symbols: [] }, Buffer.from('Subject: hi\r\n\r\nhello\r\n'));
    rmSync(join(qdir, `${ref}.eml`));
    symlinkSync(victim, join(qdir, `${ref}.eml`));
    // Released, the message would go to the record's recipients: root's file must never be what is read.
    await assert.rejects(store.get(ref), /is a symlink, not a file a put made: not read; remove it/);
    rmSync(join(qdir, `${ref}.json`));
    symlinkSync(victim, join(qdir, `${ref}.json`));
    await assert.rejects(store.record(ref), /is a symlink/);
  });

  it('a held message or its record read by root (`show`/`release`), a hard link to a file of root\'s: not read', async () => {
    const qdir = join(own, 'quarantine');
    const store = new FileQuarantine(qdir, { log: silent });
    const ref = 'ATTACKREF4';
    await store.put({ ref, time: new Date().toISOString(), mailFrom: 'bob@partner.test', rcptTo: ['mallory@evil.test'], subject: 'hi', remoteIp: '192.0.2.1', score: 9, reason: 'test', symbols: [] }, Buffer.from('Subject: hi\r\n\r\nhello\r\n'));
    rmSync(join(qdir, `${ref}.eml`));
    linkSync(victim, join(qdir, `${ref}.eml`));
    await assert.rejects(store.get(ref), /ATTACKREF4\.eml has more than one name \(a hard link\): root does not open it; remove it/);
    rmSync(join(qdir, `${ref}.json`));
    writeFileSync(victim, JSON.stringify({ ref, time: 'x', secret: SECRET }), { mode: 0o600 });
    linkSync(victim, join(qdir, `${ref}.json`));
    await assert.rejects(store.record(ref), /ATTACKREF4\.json has more than one name/);
  });

  it('a record recovered by root for a message without one: REF.json.recovered.tmp a symlink to a file of root\'s', async () => {
    const qdir = join(own, 'q');
    mkdirSync(qdir);
    chownSync(qdir, MTA, MTA);
    const ref = 'ATTACKREF2';
    const eml = join(qdir, `${ref}.eml`);
    writeFileSync(eml, 'Subject: hi\r\n\r\nhello\r\n');
    const hourAgo = new Date(Date.now() - 2 * 3600_000);
    utimesSync(eml, hourAgo, hourAgo);
    symlinkSync(victim, join(qdir, `${ref}.json.recovered.tmp`));
    await tidyLeftovers(qdir, [`${ref}.eml`, `${ref}.json.recovered.tmp`], Date.now(), silent);
    assertUntouched();
  });

  for (const suffix of ['-wal', '-shm']) {
    it(`a SQLite file of the MTA user's opened by root, its ${suffix} a hard link to a file of root's (SQLite would fchown it)`, () => {
      const path = join(own, 'bayes.sqlite');
      const made = new Database(path);
      made.pragma('journal_mode = WAL');
      made.exec('CREATE TABLE t (x)');
      made.close(); // removes -wal and -shm
      chownSync(path, MTA, MTA);
      linkSync(victim, `${path}${suffix}`);
      try {
        openSharedSqlite(path).close();
      } catch {
        // refused: what is asserted is the victim
      }
      assertUntouched();
    });
  }

  it('a SQLite file in a directory of root\'s that others can write (/tmp-like), its -wal a hard link: refused, the error saying why', () => {
    const shared = join(base, 'shared');
    mkdirSync(shared);
    chmodSync(shared, 0o1777);
    const path = join(shared, 'bayes.sqlite');
    new Database(path).close();
    chownSync(path, MTA, MTA);
    linkSync(victim, `${path}-wal`);
    // Not "owned by another user": the directory is root's; what matters is that another user can write it.
    assert.throws(() => openSharedSqlite(path), /-wal a symlink or a file with more than one name \(hard link\), in .*shared, which another user can write: root does not open it/);
    assertUntouched();
  });

  for (const [what, read] of [
    ['`mailward trace` (the tracking read-only)', (p: string) => new SqliteTrackingStore(p, { readonly: true })],
    ['a quarantine listing (the shared usage read)', (p: string) => readSharedTotal(p)],
  ] as const) {
    it(`${what} by root of a SQLite file of the MTA user's, its -shm a hard link to a file of root's`, async () => {
      const path = join(own, 'usage.sqlite');
      const made = new Database(path);
      made.pragma('journal_mode = WAL');
      made.exec('CREATE TABLE t (x)');
      made.close();
      chownSync(path, MTA, MTA);
      linkSync(victim, `${path}-shm`);
      try {
        const store = read(path);
        if (store instanceof SqliteTrackingStore) {
          await store.get('NOSUCHREF').catch(() => null);
          await store.close();
        }
      } catch {
        // refused: what is asserted is the victim
      }
      assertUntouched();
    });
  }

  it('nothing is chowned in a directory of root\'s', () => {
    const dir = join(base, 'rootdata');
    mkdirSync(dir, { mode: 0o755 });
    openSharedSqlite(join(dir, 'sub', 'x.sqlite')).close();
    for (const p of [join(dir, 'sub'), join(dir, 'sub', 'x.sqlite')]) assert.equal(`${statSync(p).uid}:${statSync(p).gid}`, '0:0', p);
  });
});

// The MTA's user may also put a FIFO (or a device, a socket) where root, or the MTA, opens a file
// of the data directory to read or append: open() and read() would then wait for a writer for ever,
// and the CLI or the MTA hang. Each such open must refuse what is not a regular file, saying so.
// Old code blocked; so that it fails here instead of hanging the suite, a helper process opens
// each FIFO now and then (a reader blocked on it then reads an empty file), and is killed after.
describe('root in a directory of the MTA user: FIFOs and symlinks planted where a file is read (needs root: skipped otherwise)', () => {
  let base: string;
  let own: string;
  let victim: string;
  const unblockers: ChildProcess[] = [];
  before(function () {
    if (process.getuid?.() !== 0) this.skip();
  });
  beforeEach(() => {
    ({ base, own, victim } = plantedWorld('mailward-owner-fifo-'));
  });
  afterEach(async () => {
    for (const child of unblockers.splice(0)) child.kill();
    await closeSharedIndexes();
    rmSync(base, { recursive: true, force: true });
  });

  /** A FIFO at each path (the first), opened and closed by a helper every half second at any of them. */
  function plantFifo(...paths: string[]): void {
    execFileSync('mkfifo', [paths[0]!]);
    chownSync(paths[0]!, MTA, MTA);
    const script = 'i=0; while [ $i -lt 120 ]; do for f; do [ -p "$f" ] && : 3<>"$f"; done; sleep 0.5; i=$((i+1)); done';
    unblockers.push(spawn('sh', ['-c', script, 'sh', ...paths], { stdio: 'ignore' }));
  }

  const row = { ref: 'ATTACK0001', time: '2026-01-01T00:00:00.000Z' } as unknown as TrackingRow;

  it('the tracking spool a FIFO: append refuses it (the caller keeps the rows) instead of writing them into a pipe', function () {
    this.timeout(30_000);
    const logged: string[] = [];
    const spool = new Spool(join(own, 'tracking.spool'), { ...silent, error: (m: string) => logged.push(m) }, 4250);
    plantFifo(spool.path);
    assert.equal(spool.append([row]), false, 'rows went into a pipe');
    assert.match(logged.join('\n'), /is a FIFO \(named pipe\), not a regular file/);
  });

  it('an orphan spool file a FIFO: the replay refuses it with a clear error (passed over, not a database failure), not hung', async function () {
    this.timeout(30_000);
    const logged: string[] = [];
    const spool = new Spool(join(own, 'tracking.spool'), { ...silent, error: (m: string) => logged.push(m) }, 4251);
    plantFifo(join(own, 'tracking.spool'), spool.replayingPath); // no pid: an orphan, claimed by a rename
    assert.equal((await spool.replay(async (rows) => rows.length, 100)).rows, 0);
    assert.match(logged.join('\n'), /tracking\.spool\.4251\.replaying is a FIFO \(named pipe\), not a regular file: not opened; remove it/);
  });

  it('an orphan spool file a symlink to a file of root\'s: its claim does not touch the target\'s times', async () => {
    const past = new Date('2001-02-03T04:05:06Z');
    utimesSync(victim, past, past);
    const spool = new Spool(join(own, 'tracking.spool'), silent, 4252);
    symlinkSync(victim, join(own, 'tracking.spool'));
    await spool.replay(async (rows) => rows.length, 100).catch(() => {});
    assert.equal(statSync(victim).mtime.toISOString(), past.toISOString(), 'root touched the symlink\'s target');
    assert.equal(readFileSync(victim, 'utf8'), SECRET);
  });

  for (const plant of [symlinkSync, linkSync]) {
    it(`\`mailward trace\`/\`explain\` reading the spool, a ${plant === symlinkSync ? 'symlink' : 'hard link'} to a file of root's: not read, and no error quotes it`, async () => {
      const secretRow = JSON.stringify({ ref: 'SECRETREF1', time: '2026-01-01T00:00:00.000Z', mailFrom: 'ceo@example.com' });
      writeFileSync(victim, `${secretRow}\n${SECRET}`, { mode: 0o600 });
      plant(victim, join(own, 'tracking.spool.4253'));
      const files = Spool.files(join(own, 'tracking.spool'));
      const found = await findInSpool(files, 'SECRETREF1').catch((err: Error) => err);
      assert.ok(found instanceof Error, `read through the planted name: ${JSON.stringify(found)}`);
      assert.match(found.message, plant === symlinkSync ? /tracking\.spool\.4253 is a symlink, not a spool file: not read; remove it/ : /has more than one name \(a hard link\)/);
      assert.doesNotMatch(found.message, /SECRETREF1|ceo@|\$6\$/);
      const listed = await findSpooled(files, {}).catch((err: Error) => err);
      assert.ok(listed instanceof Error, `listed through the planted name: ${JSON.stringify(listed)}`);
    });
  }

  it('`mailward trace` as root reading a spool file of the MTA user\'s that has a second name of its own (a `cp -al` backup): read', async () => {
    const spoolFile = join(own, 'tracking.spool.4255');
    writeFileSync(spoolFile, `${JSON.stringify({ ref: 'BACKEDUP01', time: '2026-01-01T00:00:00.000Z', mailFrom: 'a@example.com' })}\n`);
    chownSync(spoolFile, MTA, MTA);
    mkdirSync(join(own, 'backup'));
    linkSync(spoolFile, join(own, 'backup', 'tracking.spool.4255'));
    const found = await findInSpool([spoolFile], 'BACKEDUP01');
    assert.equal(found?.row.ref, 'BACKEDUP01');
  });

  it('`mailward trace` reading a spool file that is a FIFO: refused, not hung', async function () {
    this.timeout(30_000);
    const fifo = join(own, 'tracking.spool.4254');
    plantFifo(fifo);
    await assert.rejects(findSpooled([fifo], {}), /tracking\.spool\.4254 is a FIFO \(named pipe\), not a regular file/);
  });

  async function heldMessage(qdir: string, ref: string): Promise<FileQuarantine> {
    const store = new FileQuarantine(qdir, { log: silent });
    await store.put({ ref, time: new Date().toISOString(), mailFrom: 'bob@partner.test', rcptTo: ['alice@example.com'], subject: 'hi', remoteIp: '192.0.2.1', score: 9, reason: 'test', symbols: [] }, Buffer.from('Subject: hi\r\n\r\nhello\r\n'));
    return store;
  }

  it('a held message (`quarantine show`/`release`) or its record a FIFO: refused, not hung', async function () {
    this.timeout(30_000);
    const qdir = join(own, 'quarantine');
    const ref = 'FIFOREF001';
    const store = await heldMessage(qdir, ref);
    rmSync(join(qdir, `${ref}.eml`));
    plantFifo(join(qdir, `${ref}.eml`));
    await assert.rejects(store.get(ref), /FIFOREF001\.eml is a FIFO \(named pipe\), not a regular file/);
    rmSync(join(qdir, `${ref}.json`));
    plantFifo(join(qdir, `${ref}.json`));
    await assert.rejects(store.record(ref), /FIFOREF001\.json is a FIFO/);
  });

  it('a record the index lacks a FIFO: a listing (sync) says so and goes on', async function () {
    this.timeout(30_000);
    const qdir = join(own, 'quarantine');
    const logged: string[] = [];
    const store = new FileQuarantine(qdir, { log: { ...silent, warn: (m: string) => logged.push(m) } });
    mkdirSync(qdir, { recursive: true });
    plantFifo(join(qdir, 'FIFOREF002.json'));
    await store.sync();
    assert.match(logged.join('\n'), /FIFOREF002\.json is a FIFO \(named pipe\), not a regular file: not opened; remove it; its message is not listed/);
  });

  it('a message without a record a FIFO: no record is made up for it', async function () {
    this.timeout(30_000);
    const qdir = join(own, 'q');
    mkdirSync(qdir);
    const logged: string[] = [];
    const eml = join(qdir, 'FIFOREF003.eml');
    plantFifo(eml);
    const hourAgo = new Date(Date.now() - 2 * 3600_000);
    utimesSync(eml, hourAgo, hourAgo);
    const recorded = await tidyLeftovers(qdir, ['FIFOREF003.eml'], Date.now(), { ...silent, warn: (m: string) => logged.push(m) });
    assert.deepEqual(recorded, []);
    assert.match(logged.join('\n'), /FIFOREF003\.eml has no record and none could be written: .*is a FIFO/);
  });

  it('release.key a FIFO: said (the MTA holds the released copy again, the CLI says what to remove), not hung', function () {
    this.timeout(30_000);
    const qdir = join(own, 'quarantine');
    mkdirSync(qdir);
    plantFifo(join(qdir, 'release.key'));
    assert.throws(() => releaseKey(qdir, false), /release\.key is a FIFO \(named pipe\), not a regular file/);
    assert.throws(() => releaseKey(qdir, true), /release\.key is a FIFO/);
  });

  it('release.key a symlink: refused, not taken for "no key"', () => {
    const qdir = join(own, 'quarantine');
    mkdirSync(qdir);
    symlinkSync(victim, join(qdir, 'release.key'));
    assert.throws(() => releaseKey(qdir, true), /ELOOP/);
  });

  for (const [what, open] of [
    ['a SQLite file opened by root (`mailward learn`, `quarantine`, Haraka\'s register())', (p: string) => openSharedSqlite(p).close()],
    ['the tracking database read by `mailward trace`', (p: string) => new SqliteTrackingStore(p, { readonly: true })],
  ] as const) {
    it(`${what}, its -journal a FIFO: refused, not hung (SQLite opens a journal it finds to look for a hot one)`, async function () {
      this.timeout(30_000);
      const path = join(own, 'x.sqlite');
      const made = new Database(path);
      made.pragma('journal_mode = WAL');
      made.exec('CREATE TABLE t (x)');
      made.close();
      chownSync(path, MTA, MTA);
      plantFifo(`${path}-journal`);
      let failure: unknown;
      try {
        const store = open(path);
        if (store instanceof SqliteTrackingStore) {
          await store.get('NOSUCHREF');
          await store.close();
        }
      } catch (err) {
        failure = err;
      }
      assert.match(String(failure), /x\.sqlite-journal is a FIFO \(named pipe\), not a regular file: SQLite does not open it/);
    });
  }

  it('a claim (REF.lock) a FIFO: a release is refused with a clear error, not hung', async function () {
    this.timeout(30_000);
    const qdir = join(own, 'quarantine');
    mkdirSync(qdir);
    plantFifo(join(qdir, 'FIFOREF004.lock'));
    await assert.rejects(takeClaim(qdir, 'FIFOREF004', 'release'), /FIFOREF004\.lock is a FIFO \(named pipe\), not a regular file/);
  });
});

describe('root in a directory others can write: names planted or swapped while root reads or writes (needs root: skipped otherwise)', () => {
  let base: string;
  let own: string;
  let victim: string;
  const fifos: string[] = [];
  const restore: (() => void)[] = [];
  before(function () {
    if (process.getuid?.() !== 0) this.skip();
  });
  beforeEach(() => {
    ({ base, own, victim } = plantedWorld('mailward-owner-swap-'));
  });
  afterEach(async () => {
    for (const undo of restore.splice(0)) undo();
    // A writer still waiting on a FIFO (the old code) is let go: a reader opens it.
    for (const fifo of fifos.splice(0)) {
      try {
        closeSync(openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK));
      } catch {
        // gone
      }
    }
    await closeSharedIndexes();
    rmSync(base, { recursive: true, force: true });
  });

  const entry = (ref: string) => ({ ref, time: new Date().toISOString(), mailFrom: 'bob@partner.test', rcptTo: ['mallory@evil.test'], subject: 'hi', remoteIp: '192.0.2.1', score: 9, reason: 'test', symbols: [] });

  it('a quarantine directory of root\'s the MTA\'s group can write (root:group 0770): REF.eml a hard link to a file of root\'s is not read', async () => {
    const qdir = join(base, 'quarantine');
    mkdirSync(qdir);
    chownSync(qdir, 0, MTA);
    chmodSync(qdir, 0o770);
    const store = new FileQuarantine(qdir, { log: silent });
    const ref = 'SWAPREF001';
    await store.put(entry(ref), Buffer.from('Subject: hi\r\n\r\nhello\r\n'));
    rmSync(join(qdir, `${ref}.eml`));
    linkSync(victim, join(qdir, `${ref}.eml`)); // what a member of the group may do where fs.protected_hardlinks = 0
    const got = await store.get(ref).then((g) => g?.raw.toString('utf8'), (err: Error) => err);
    assert.notEqual(got, SECRET, 'root read its own file through the hard link (show prints it, release mails it)');
    assert.match(String(got), /SWAPREF001\.eml has more than one name \(a hard link\)/);
  });

  it('the quarantine directory swapped for a symlink to a directory of root\'s while root reads REF.eml: the hard link is judged by the directory it was opened in', () => {
    const qdir = join(own, 'quarantine');
    mkdirSync(qdir);
    chownSync(qdir, MTA, MTA);
    const eml = join(qdir, 'SWAPREF002.eml');
    linkSync(victim, eml); // where fs.protected_hardlinks = 0
    // The MTA's user swaps its quarantine directory for a symlink to a directory of root's right after root opened
    // REF.eml (it sees the open with inotify): here, at the first look at the directory by its path.
    const fs = require('node:fs') as typeof import('node:fs');
    const writable = fs as unknown as { statSync: typeof fs.statSync };
    const statSync0 = fs.statSync;
    restore.push(() => (writable.statSync = statSync0));
    writable.statSync = ((path: string, ...rest: unknown[]) => {
      if (path === qdir && fs.lstatSync(qdir).isDirectory()) {
        fs.renameSync(qdir, `${qdir}.away`);
        fs.symlinkSync(join(base, 'etc'), qdir);
      }
      return (statSync0 as (...a: unknown[]) => unknown)(path, ...rest);
    }) as typeof fs.statSync;
    let got: unknown;
    try {
      got = readRegularFileSync(eml, { ownLinksOnly: true }).toString('utf8');
    } catch (err) {
      got = err;
    }
    writable.statSync = statSync0;
    assert.notEqual(got, SECRET, 'root read its own file through the hard link');
    assert.match(String(got), /SWAPREF002\.eml has more than one name \(a hard link\)/);
  });

  it('an operator\'s quarantine directory that is a symlink to the real one: a message read by root mid-put (two names, the MTA user\'s) is read', async () => {
    const real = join(own, 'quarantine.real');
    mkdirSync(real);
    chownSync(real, MTA, MTA);
    const qdir = join(base, 'quarantine'); // only the last component of a path is never followed
    symlinkSync(real, qdir);
    const store = new FileQuarantine(qdir, { log: silent });
    const ref = 'SWAPREF004';
    await store.put(entry(ref), Buffer.from('Subject: hi\r\n\r\nhello\r\n'));
    linkSync(join(real, `${ref}.eml`), join(real, `${ref}.eml.tmp`)); // the moment a put links REF.eml.tmp to REF.eml
    assert.equal((await store.get(ref))?.raw.toString('utf8'), 'Subject: hi\r\n\r\nhello\r\n');
  });

  it('a FIFO at the spool\'s own .replaying name (an orphan claimed by its rename): refused and passed over, not taken for a database outage that stops every replay', async () => {
    const logged: string[] = [];
    const spool = new Spool(join(own, 'tracking.spool'), { ...silent, error: (m: string) => logged.push(m) }, 4270);
    const row = { ref: 'SWAPROW001', time: '2026-01-01T00:00:00.000Z' } as unknown as TrackingRow;
    assert.equal(spool.append([row]), true);
    execFileSync('mkfifo', [spool.replayingPath]);
    fifos.push(spool.replayingPath);
    const inserted: TrackingRow[] = [];
    // The writer takes a rejected replay for the database being down: every row then goes to the spool, for ever.
    const result = await spool.replay(async (rows) => (inserted.push(...rows), rows.length), 100);
    assert.deepEqual(inserted.map((r) => r.ref), ['SWAPROW001'], 'the rows waiting in the spool were not replayed');
    assert.equal(result.added, 1);
    assert.match(logged.join('\n'), /tracking\.spool\.4270\.replaying is a FIFO \(named pipe\), not a regular file/);
  });

  it('an orphan spool file of the MTA user\'s with a second name of its own (a `cp -al` backup), replayed by root: its rows are inserted, not renamed over and lost', async () => {
    const spool = new Spool(join(own, 'tracking.spool'), silent, 4271);
    const orphan = join(own, 'tracking.spool.4272'); // a dead process's file, claimed by a rename to our .replaying
    writeFileSync(orphan, `${JSON.stringify({ ref: 'BACKEDUP02', time: '2026-01-01T00:00:00.000Z' })}\n`);
    chownSync(orphan, MTA, MTA);
    mkdirSync(join(own, 'backup'));
    linkSync(orphan, join(own, 'backup', 'tracking.spool.4272'));
    assert.equal(spool.append([{ ref: 'OWNROW0001', time: '2026-01-01T00:00:00.000Z' } as unknown as TrackingRow]), true);
    const inserted: string[] = [];
    await spool.replay(async (rows) => (inserted.push(...rows.map((r) => r.ref)), rows.length), 100);
    assert.deepEqual(inserted.sort(), ['BACKEDUP02', 'OWNROW0001'], 'the backed-up orphan\'s rows were passed over');
  });

  it('a spool file with a second name root does not trust (not owned like the directory): set aside, not renamed over by the next claim', async () => {
    const logged: string[] = [];
    const spool = new Spool(join(own, 'tracking.spool'), { ...silent, error: (m: string) => logged.push(m) }, 4273);
    const orphan = join(own, 'tracking.spool.4274');
    writeFileSync(orphan, `${JSON.stringify({ ref: 'ROOTSROW01', time: '2026-01-01T00:00:00.000Z' })}\n`); // root's (an older version's)
    mkdirSync(join(own, 'backup'));
    linkSync(orphan, join(own, 'backup', 'tracking.spool.4274'));
    assert.equal(spool.append([{ ref: 'OWNROW0002', time: '2026-01-01T00:00:00.000Z' } as unknown as TrackingRow]), true);
    const inserted: string[] = [];
    await spool.replay(async (rows) => (inserted.push(...rows.map((r) => r.ref)), rows.length), 100);
    assert.deepEqual(inserted, ['OWNROW0002']);
    const aside = readdirSync(own).filter((n: string) => n.startsWith('tracking.spool.4273.replaying.refused-'));
    assert.equal(aside.length, 1, `not set aside: ${readdirSync(own).join(' ')}`);
    assert.match(readFileSync(join(own, aside[0]), 'utf8'), /ROOTSROW01/);
    assert.match(logged.join('\n'), /has more than one name \(a hard link\).*set aside as .*tracking\.spool\.4273\.replaying\.refused-/);
  });

  it('a refusal or failure of root\'s open through the held directory names the file, not /proc/self/fd/N', () => {
    const qdir = join(own, 'quarantine');
    mkdirSync(qdir);
    chownSync(qdir, MTA, MTA);
    symlinkSync(victim, join(qdir, 'SWAPREF005.eml'));
    for (const name of ['SWAPREF005.eml', 'SWAPREF006.eml']) {
      const err = (() => {
        try {
          readRegularFileSync(join(qdir, name), { ownLinksOnly: true });
        } catch (e) {
          return e as NodeJS.ErrnoException;
        }
      })();
      assert.ok(err?.message.includes(join(qdir, name)) && !err.message.includes('/proc/self/fd'), String(err));
      assert.equal(err?.path, join(qdir, name));
    }
  });

  it('release.key a hard link to a file of root\'s (a hex secret of another program): not taken as the key, nor its length said', () => {
    const qdir = join(own, 'quarantine');
    mkdirSync(qdir);
    chownSync(qdir, MTA, MTA);
    const secret = 'ab'.repeat(20) + '\n'; // 20 bytes of hex: a cut-short key's error would say how long root's file is
    writeFileSync(victim, secret, { mode: 0o600 });
    linkSync(victim, join(qdir, 'release.key')); // where fs.protected_hardlinks = 0
    const got = (() => {
      try {
        return releaseKey(qdir, false);
      } catch (err) {
        return err as Error;
      }
    })();
    assert.ok(got instanceof Error, 'root read its own file as the release key');
    assert.match(got.message, /release\.key has more than one name \(a hard link\)/);
    assert.doesNotMatch(got.message, /20 of the/);
  });

  it('a claim (REF.lock) a hard link to a file of root\'s: not read, so nothing of it is said in the busy error', async () => {
    const qdir = join(own, 'quarantine');
    mkdirSync(qdir);
    chownSync(qdir, MTA, MTA);
    // A file of root's that happens to read as a claim (JSON with pid, host and time): its other fields would be said.
    writeFileSync(victim, JSON.stringify({ pid: process.pid, host: 'h', time: new Date().toISOString(), action: SECRET }), { mode: 0o600 });
    linkSync(victim, join(qdir, 'SWAPREF007.lock')); // where fs.protected_hardlinks = 0
    const err = await takeClaim(qdir, 'SWAPREF007', 'release').then(
      () => new Error('claimed'),
      (e: Error) => e,
    );
    assert.doesNotMatch(err.message, /\$6\$/, 'the busy error quoted root\'s file');
    assert.match(err.message, /SWAPREF007\.lock has more than one name \(a hard link\)/);
  });

  it('REF.json.tmp swapped for a FIFO between its creation and its write (`mailward quarantine release` rewriting a record): refused, not hung', async function () {
    this.timeout(20_000); // the hang guard: the old code waited here for a reader for ever
    const qdir = join(own, 'quarantine');
    const store = new FileQuarantine(qdir, { log: silent });
    const ref = 'SWAPREF003';
    await store.put(entry(ref), Buffer.from('Subject: hi\r\n\r\nhello\r\n'));
    // The MTA's user sees REF.json.tmp made (inotify) and puts a FIFO at its name before root opens it again.
    const owner = require('../lib/util/owner') as { createFile: (path: string, ...rest: unknown[]) => number };
    const createFile0 = owner.createFile;
    restore.push(() => (owner.createFile = createFile0));
    owner.createFile = (path: string, ...rest: unknown[]) => {
      const fd = createFile0(path, ...rest);
      if (path.endsWith('.json.tmp')) {
        rmSync(path);
        execFileSync('mkfifo', [path]);
        fifos.push(path);
      }
      return fd;
    };
    await assert.rejects(store.update(ref, { status: 'released', statusTime: new Date().toISOString() }), /ENXIO|was replaced while it was being written/);
    owner.createFile = createFile0;
    assert.equal((await store.record(ref))?.status, 'held', 'the record is as it was');
  });
});
