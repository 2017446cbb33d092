// Files root makes for the MTA's user (util/owner): owned like their directory,
// and a clear error, naming the `chown` to run, for one the process cannot write.
// Root only (only root makes files for another user): skipped otherwise.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, closeSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { releaseKey } from '../lib/quarantine/release-token';
import { createFile, createOwnedLikeDirectory, makeDirectory } from '../lib/util/owner';
import { openSharedSqlite } from '../lib/util/sqlite';
import { repoPath } from './support/paths';

const MTA = 65534; // nobody:nogroup

describe('files made by root in a directory of the MTA user (needs root: skipped otherwise)', () => {
  let base: string;
  let own: string;
  before(function () {
    if (process.getuid?.() !== 0) this.skip(); // Needs root: only root makes files for another user.
  });
  beforeEach(() => {
    base = mkdtempSync(join(tmpdir(), 'mailward-owner-'));
    chmodSync(base, 0o755);
    own = join(base, 'data');
    mkdirSync(own);
    chownSync(own, MTA, MTA);
  });
  afterEach(() => rmSync(base, { recursive: true, force: true }));

  const owners = (dir: string) => readdirSync(dir).map((n) => `${n} ${statSync(join(dir, n)).uid}:${statSync(join(dir, n)).gid}`);

  it('a SQLite file (the Bayes model, tracking, the quarantine index) and its -wal/-shm, in directories made on the way: the directory owner\'s', () => {
    const db = openSharedSqlite(join(own, 'sub', 'bayes.sqlite'));
    try {
      db.exec('CREATE TABLE t (x); INSERT INTO t VALUES (1)');
      assert.deepEqual(owners(own), [`sub ${MTA}:${MTA}`]);
      assert.deepEqual(owners(join(own, 'sub')).sort(), ['bayes.sqlite', 'bayes.sqlite-shm', 'bayes.sqlite-wal'].map((n) => `${n} ${MTA}:${MTA}`));
    } finally {
      db.close();
    }
  });

  it('mkdir -p: every directory made is the owner\'s of the one it is made in', () => {
    makeDirectory(join(own, 'a', 'b', 'c'));
    for (const d of ['a', 'a/b', 'a/b/c']) assert.equal(`${statSync(join(own, d)).uid}:${statSync(join(own, d)).gid}`, `${MTA}:${MTA}`, d);
  });

  it('the release key (0600) made by `mailward quarantine release`: the MTA\'s, so it can read it', () => {
    const qdir = join(own, 'quarantine');
    releaseKey(qdir, true);
    const s = statSync(join(qdir, 'release.key'));
    assert.deepEqual([s.uid, s.gid, s.mode & 0o777], [MTA, MTA, 0o600]);
  });

  it('root opening a file an older version left root\'s in the MTA user\'s directory: it works (root), and says which chown the MTA needs', () => {
    const path = join(own, 'tracking.sqlite');
    writeFileSync(path, '');
    const warned: string[] = [];
    openSharedSqlite(path, 2000, undefined, (m) => warned.push(m)).close();
    assert.deepEqual(warned, [`${path} not owned by nobody:nogroup, the owner of ${own}: that user (the MTA's, after it drops privileges) cannot write it; run \`chown nobody:nogroup ${path}\``]);
    const fresh = join(own, 'bayes.sqlite');
    openSharedSqlite(fresh, 2000, undefined, (m) => warned.push(m)).close();
    assert.equal(warned.length, 1, 'a file made now is the directory owner\'s: nothing to say');
  });

  it('the MTA user facing a file root made before: an error naming the file and the chown to run (the store falls back, mail flows)', () => {
    const path = join(own, 'tracking.sqlite');
    writeFileSync(path, ''); // root's, 0644: what an older version left
    const key = join(own, 'quarantine', 'release.key');
    mkdirSync(join(own, 'quarantine'));
    chownSync(join(own, 'quarantine'), MTA, MTA);
    writeFileSync(key, 'ab'.repeat(32), { mode: 0o600 });
    const script = `
      const { openSharedSqlite } = require(${JSON.stringify(repoPath('dist', 'lib', 'util', 'sqlite.js'))});
      const { releaseKey } = require(${JSON.stringify(repoPath('dist', 'lib', 'quarantine', 'release-token.js'))});
      for (const f of [() => openSharedSqlite(${JSON.stringify(path)}), () => releaseKey(${JSON.stringify(join(own, 'quarantine'))}, false)]) {
        try { f(); console.log('no error'); } catch (e) { console.log(e.message); }
      }`;
    const out = execFileSync(process.execPath, ['-e', script], { uid: MTA, gid: MTA, cwd: base, encoding: 'utf8' }).trim().split('\n');
    assert.equal(out[0], `attempt to write a readonly database; ${path} not writable by nobody:nogroup (this process's user): run \`chown nobody:nogroup ${path}\``);
    assert.match(out[1]!, new RegExp(`EACCES.*; ${key} not readable by nobody:nogroup \\(this process's user\\): run \`chown nobody:nogroup ${key}\`$`));
  });

  it('an operator\'s user with read access reads a model the MTA has open (its -wal and -shm there): not refused, and not told to take the MTA\'s files', () => {
    const path = join(own, 'bayes.sqlite');
    const mta = openSharedSqlite(path); // root here; the files are the MTA user's, as if it had made them
    try {
      mta.exec('CREATE TABLE t (x); INSERT INTO t VALUES (1)');
      assert.deepEqual(owners(own).sort(), ['bayes.sqlite', 'bayes.sqlite-shm', 'bayes.sqlite-wal'].map((n) => `${n} ${MTA}:${MTA}`));
      const script = `
        const { openSharedSqlite } = require(${JSON.stringify(repoPath('dist', 'lib', 'util', 'sqlite.js'))});
        const warned = [];
        const db = openSharedSqlite(${JSON.stringify(path)}, 2000, undefined, (m) => warned.push(m));
        console.log(JSON.stringify({ rows: db.prepare('SELECT x FROM t').all(), warned }));`;
      const out = JSON.parse(execFileSync(process.execPath, ['-e', script], { uid: 1234, gid: 1234, cwd: base, encoding: 'utf8' })) as { rows: unknown[]; warned: string[] };
      assert.deepEqual(out.rows, [{ x: 1 }]);
      assert.equal(out.warned.length, 1);
      assert.match(out.warned[0]!, new RegExp(`${own} is nobody's; run this as nobody or as root$`));
    } finally {
      mta.close();
    }
  });

  it('createFile: a new file is the directory owner\'s through its descriptor; a name planted as a symlink is refused (EEXIST), its target untouched', () => {
    closeSync(createFile(join(own, 'new')));
    assert.equal(`${statSync(join(own, 'new')).uid}`, `${MTA}`);
    const victim = join(base, 'victim');
    writeFileSync(victim, 'x', { mode: 0o600 });
    symlinkSync(victim, join(own, 'planted'));
    assert.throws(() => createFile(join(own, 'planted')), { code: 'EEXIST' });
    createOwnedLikeDirectory(join(own, 'planted')); // what openSharedSqlite does first: nothing
    assert.deepEqual([statSync(victim).uid, statSync(victim).mode & 0o777, readFileSync(victim, 'utf8')], [0, 0o600, 'x']);
    assert.ok(lstatSync(join(own, 'planted')).isSymbolicLink());
  });

  it('mkdir -p: a directory that exists (made by another process, or a symlink root did not make) is not chowned', () => {
    mkdirSync(join(own, 'a'));
    const elsewhere = join(base, 'elsewhere');
    mkdirSync(elsewhere);
    symlinkSync(elsewhere, join(own, 'link'));
    makeDirectory(join(own, 'a', 'b'));
    makeDirectory(join(own, 'link', 'c'));
    assert.equal(statSync(join(own, 'a')).uid, 0);
    assert.equal(statSync(join(own, 'a', 'b')).uid, 0, 'made in a directory of root\'s: root\'s');
    assert.deepEqual([statSync(elsewhere).uid, statSync(join(elsewhere, 'c')).uid], [0, 0], 'made in a directory of root\'s: root\'s');
  });
});
