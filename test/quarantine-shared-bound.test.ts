// The byte bound ([quarantine] max_mb) across processes of one host sharing the
// quarantine directory (Haraka's cluster workers, the CLI): one count in
// usage.sqlite in the directory. Before it, each process counted alone and
// believed it had the whole room: N workers filled the directory to N times
// the bound.
import assert from 'node:assert/strict';
import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { hostname, tmpdir } from 'node:os';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { closeSharedIndexes, countDirectory, FileQuarantine, forgetUsage, isQuarantineFull, SqliteQuarantineIndex, usageFor } from '../lib/quarantine';
import { moveAsideIfCorrupt, SharedUsage } from '../lib/quarantine/shared-usage';
import { entry, RAW } from './support/quarantine';

const WORKER = join(__dirname, 'support', 'quarantine-put-worker.js');

/** What one held RAW takes by the count: the message and its record, a block each. */
const HELD = 2 * 4096;

function nextMessage<T>(child: ChildProcess): Promise<T> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`worker ${child.pid} exited (${code}) before answering`));
    child.once('exit', onExit);
    child.once('message', (m) => {
      child.off('exit', onExit);
      if (m && typeof m === 'object' && 'error' in m) reject(new Error(String((m as { error: unknown }).error)));
      else resolve(m as T);
    });
  });
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));
}

function logger() {
  const warnings: string[] = [];
  return { warnings, log: { debug() {}, info() {}, warn: (m: string) => warnings.push(m), error() {} } };
}

describe('quarantine byte bound shared by processes on one host', function () {
  this.timeout(60_000);
  let dir: string;
  let indexDir: string;
  const children: ChildProcess[] = [];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'mailward-qshared-'));
    indexDir = mkdtempSync(join(tmpdir(), 'mailward-qshared-index-'));
  });
  /**
   * A worker holding mail in `dir` with its own index (another Haraka worker),
   * once it says it is ready: killed after the test if still running.
   * `mode`: see test/support/quarantine-put-worker.ts.
   */
  async function startWorker(maxBytes: number, ...mode: string[]): Promise<ChildProcess> {
    const child = fork(WORKER, [dir, String(maxBytes), indexDir, ...mode], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.push(child);
    await nextMessage<string>(child);
    return child;
  }
  afterEach(async () => {
    for (const child of children.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited(child);
    }
    await closeSharedIndexes();
    forgetUsage();
    rmSync(dir, { recursive: true, force: true });
    rmSync(indexDir, { recursive: true, force: true });
  });

  it('two processes putting at once hold no more than the bound together', async () => {
    // Room for 12 held messages; each process tries 12. Counting alone, each held 12: 24 on disk, twice the bound.
    const bound = 12 * HELD;
    const workers = await Promise.all(['A', 'B'].map((p) => startWorker(bound, 'put', '12', `PUT${p}`)));
    const results = workers.map((w) => nextMessage<{ held: number; full: number }>(w));
    for (const w of workers) w.send('go');
    const answers = await Promise.all(results);
    await Promise.all(workers.map(exited));
    const held = readdirSync(dir).filter((n) => n.endsWith('.eml'));
    assert.equal(answers[0]!.held + answers[1]!.held, held.length);
    assert.equal(held.length, 12, `${held.length} messages held (${answers.map((a) => a.held).join(' + ')}) against room for 12`);
    assert.ok((await countDirectory(dir)) <= bound, 'the directory within the bound');
    assert.equal(answers[0]!.full + answers[1]!.full, 12, 'the rest turned away as full');

    // The shared file is bookkeeping: not counted, not listed, not a leftover for the listing or the purge.
    assert.ok(readdirSync(dir).includes('usage.sqlite'), readdirSync(dir).join(' '));
    const index = new SqliteQuarantineIndex(join(indexDir, 'parent.sqlite'));
    try {
      const store = new FileQuarantine(dir, { index, maxBytes: bound, retentionDays: 30 });
      assert.equal(await store.startUsage(), bound);
      assert.equal((await store.list()).length, 12);
      assert.equal((await store.held()).count, 12);
      assert.deepEqual(await store.purge(Date.now() + 31 * 86_400_000), held.map((n) => n.slice(0, -4)).sort());
      assert.deepEqual(readdirSync(dir).filter((n) => !n.startsWith('usage.sqlite')), [], 'the purge left the shared file alone');
      // The purge's deletes and its rescan gave the room back to every process.
      assert.equal(usageFor(dir).bytes, 0);
    } finally {
      await index.close();
    }
  });

  it("a process killed mid-put does not keep its reservation: it counts until room runs out, then is dropped", async () => {
    const child = await startWorker(2 * HELD, 'hang', 'KILLED0001');
    await nextMessage<string>(child); // hanging: room reserved, its file being written
    child.kill('SIGKILL');
    await exited(child);
    const index = new SqliteQuarantineIndex(join(indexDir, 'parent.sqlite'));
    try {
      const store = new FileQuarantine(dir, { index, maxBytes: 2 * HELD });
      await store.startUsage();
      assert.equal(usageFor(dir).bytes, HELD, "the dead process's reservation is still counted (shared, not forgotten by this process's scan)");
      await store.put(entry('ALIVE00001'), RAW);
      // Full by the count with the dead reservation: it is dropped (its pid is gone) and the put fits.
      await store.put(entry('ALIVE00002'), RAW);
      assert.equal(usageFor(dir).bytes, 2 * HELD);
      await assert.rejects(store.put(entry('ALIVE00003'), RAW), (err: unknown) => isQuarantineFull(err));
    } finally {
      await index.close();
    }
  });

  it('a reservation left by an earlier life of this pid (a restarted container, Haraka pid 1 again) is dropped when room runs out, in a file made before start tokens', async () => {
    // The file as a version without start tokens made it, with a put of the previous life of this very pid in it:
    // by pid alone it is this process's own, held for 15 minutes (the TTL) while mail is turned away.
    const path = join(dir, 'usage.sqlite');
    const old = new Database(path);
    try {
      old.exec(`
        CREATE TABLE usage_total (id INTEGER PRIMARY KEY CHECK (id = 1), base INTEGER NOT NULL, scanned_at INTEGER, seq INTEGER NOT NULL);
        INSERT INTO usage_total VALUES (1, 0, NULL, 0);
        CREATE TABLE usage_counted (id INTEGER PRIMARY KEY CHECK (id = 1), scan_seq INTEGER NOT NULL);
        INSERT INTO usage_counted VALUES (1, 0);
        CREATE TABLE usage_reservation (id INTEGER PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, bytes INTEGER NOT NULL, at INTEGER NOT NULL, kept_seq INTEGER);
        CREATE TABLE usage_scan (id INTEGER PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, at INTEGER NOT NULL, seq INTEGER NOT NULL);`);
      old.prepare('INSERT INTO usage_reservation (host, pid, bytes, at) VALUES (?, ?, ?, ?)').run(hostname(), process.pid, HELD, Date.now());
    } finally {
      old.close();
    }
    const index = new SqliteQuarantineIndex(join(indexDir, 'parent.sqlite'));
    try {
      const store = new FileQuarantine(dir, { index, maxBytes: 2 * HELD });
      await store.startUsage();
      assert.equal(usageFor(dir).bytes, HELD, 'the leftover counts until room runs out');
      await store.put(entry('RESTART001'), RAW);
      await store.put(entry('RESTART002'), RAW);
      assert.equal(usageFor(dir).bytes, 2 * HELD);
      await assert.rejects(store.put(entry('RESTART003'), RAW), (err: unknown) => isQuarantineFull(err));
    } finally {
      await index.close();
    }
  });

  it("rows of this pid with another start token are an earlier life's and dropped at once; this handle's own are kept", () => {
    const path = join(dir, 'usage.sqlite');
    const shared = new SharedUsage(path);
    const other = new Database(path);
    try {
      const now = Date.now();
      other.prepare("INSERT INTO usage_reservation (host, pid, start_token, bytes, at) VALUES (?, ?, 'an earlier start', ?, ?)").run(hostname(), process.pid, HELD, now);
      other.prepare("INSERT INTO usage_scan (host, pid, start_token, at, seq) VALUES (?, ?, 'an earlier start', ?, 1)").run(hostname(), process.pid, now);
      const mine = shared.reserve(HELD, 2 * HELD, now);
      assert.notEqual(mine.id, null);
      assert.equal(shared.reserve(HELD, 2 * HELD, now).id, null, 'full with the leftover');
      assert.equal(shared.dropDead(now), HELD, "only the earlier life's reservation given back");
      assert.equal((other.prepare('SELECT COUNT(*) AS n FROM usage_scan').get() as { n: number }).n, 0, "the earlier life's scan dropped");
      assert.equal(shared.total(), HELD, 'this handle\'s reservation kept');
      shared.settle(mine.id!, HELD, true);
      assert.equal(shared.total(), HELD);
    } finally {
      other.close();
      shared.close();
    }
  });

  for (const [what, spoil] of [
    ['a directory in its place', (path: string) => mkdirSync(path)],
    [
      'locked by another process past a second',
      (path: string) => {
        const holder = new Database(path);
        holder.pragma('journal_mode = WAL');
        holder.exec('CREATE TABLE usage_total (id INTEGER PRIMARY KEY); BEGIN EXCLUSIVE; INSERT INTO usage_total VALUES (1)');
        return () => holder.close();
      },
    ],
  ] as const) {
    it(`the shared file unusable (${what}): messages are still held, within this process's own count, with one warning`, async () => {
      const release = spoil(join(dir, 'usage.sqlite'));
      const { warnings, log } = logger();
      const index = new SqliteQuarantineIndex(join(indexDir, 'parent.sqlite'));
      try {
        const store = new FileQuarantine(dir, { index, maxBytes: 2 * HELD, log });
        await store.startUsage();
        await store.put(entry('FALLBACK01'), RAW);
        await store.put(entry('FALLBACK02'), RAW);
        assert.ok(await store.get('FALLBACK02'), 'held');
        // The bound still holds, by this process's count.
        await assert.rejects(store.put(entry('FALLBACK03'), RAW), (err: unknown) => isQuarantineFull(err));
        assert.equal(usageFor(dir).bytes, 2 * HELD);
        const said = warnings.filter((w) => /usage\.sqlite, cannot be used .*counts \[quarantine\] max_mb on its own/.test(w));
        assert.equal(said.length, 1, warnings.join('\n'));
        // Not corrupt: left where it is for the operator (only a corrupt file is rebuilt).
        assert.deepEqual(readdirSync(dir).filter((n) => n.includes('corrupt')), []);
      } finally {
        if (typeof release === 'function') release();
        await index.close();
      }
    });
  }

  /** Bytes that are no SQLite file (no header), as a disk error or a stray write leaves them. */
  function garbage(bytes: number): Buffer {
    const b = randomBytes(bytes);
    b.write('garbage!', 0);
    return b;
  }
  const asideFiles = () => readdirSync(dir).filter((n) => /^usage\.sqlite\.corrupt-[-0-9TZ]+$/.test(n));

  it('a corrupt shared file (garbage bytes) is moved aside, made anew and counted from the directory: one warning naming it, the shared count decides again', async () => {
    // Before, the process warned, counted alone (trying again each minute, failing again) until someone removed the file.
    const path = join(dir, 'usage.sqlite');
    const bad = garbage(6000);
    writeFileSync(path, bad);
    writeFileSync(join(dir, 'OTHER.bin'), Buffer.alloc(10_000)); // something to count
    const { warnings, log } = logger();
    const index = new SqliteQuarantineIndex(join(indexDir, 'parent.sqlite'));
    try {
      const store = new FileQuarantine(dir, { index, maxBytes: 10 * HELD, log });
      await store.startUsage();
      const aside = asideFiles();
      assert.equal(aside.length, 1, readdirSync(dir).join(' '));
      assert.deepEqual(readFileSync(join(dir, aside[0]!)), bad, 'kept as it was, for the operator');
      assert.equal(warnings.length, 1, warnings.join('\n'));
      assert.ok(warnings[0]!.includes(`${path}, is corrupt`) && warnings[0]!.includes(`moved aside to ${join(dir, aside[0]!)}`), warnings[0]);
      assert.equal(usageFor(dir).isShared, true, 'the new file is used');
      const other = new SharedUsage(path); // another process of this host
      try {
        const counted = await countDirectory(dir); // OTHER.bin and the file moved aside: 12 KB + 8 KB
        assert.equal(counted, 20 * 1024);
        assert.equal(other.total(), counted, 'the new file starts from a count of the directory');
        await store.put(entry('REBUILT001'), RAW);
        assert.equal(other.total(), counted + HELD);
        // The shared count decides: another process takes the rest of the room, this one is full.
        assert.notEqual(other.reserve(10 * HELD - counted - HELD, 10 * HELD, Date.now()).id, null);
        await assert.rejects(store.put(entry('REBUILT002'), RAW), (err: unknown) => isQuarantineFull(err));
      } finally {
        other.close();
      }
      assert.equal(warnings.length, 1, warnings.join('\n'));
    } finally {
      await index.close();
    }
  });

  it('a shared file replaced by another process that found it corrupt: not moved aside again; this process opens the new one and counts into it', async () => {
    const path = join(dir, 'usage.sqlite');
    const { warnings, log } = logger();
    const index = new SqliteQuarantineIndex(join(indexDir, 'parent.sqlite'));
    try {
      const store = new FileQuarantine(dir, { index, maxBytes: 10 * HELD, log });
      await store.startUsage();
      await store.put(entry('BEFORE0001'), RAW);
      const corrupt = statSync(path).ino;
      // Another process found it corrupt: moved it aside and made a new one (empty: its count not yet done).
      const aside = moveAsideIfCorrupt(path, corrupt);
      assert.ok(aside && existsSync(aside));
      const other = new SharedUsage(path);
      try {
        // A third noticing the same file at once finds the new one in its place: it moves nothing.
        assert.equal(moveAsideIfCorrupt(path, corrupt), null);
        assert.equal(statSync(path).ino, other.inode, 'the new file stays');
        await store.put(entry('AFTER00001'), RAW);
        await store.startUsage(); // waits for the count into the new file
        assert.equal(usageFor(dir).isShared, true);
        assert.equal(other.total(), await countDirectory(dir), 'counted into the new file: nothing missed');
      } finally {
        other.close();
      }
      assert.deepEqual(warnings, [], 'the process that moved it said so, not this one');
    } finally {
      await index.close();
    }
  });

  it('a file counted around because it was locked, found corrupt when tried again a minute later: moved aside and rebuilt then', async () => {
    const path = join(dir, 'usage.sqlite');
    const holder = new Database(path);
    holder.pragma('journal_mode = WAL');
    holder.exec('CREATE TABLE usage_total (id INTEGER PRIMARY KEY); BEGIN EXCLUSIVE; INSERT INTO usage_total VALUES (1)');
    const { warnings, log } = logger();
    let now = 1_000_000_000_000;
    const index = new SqliteQuarantineIndex(join(indexDir, 'parent.sqlite'));
    try {
      const store = new FileQuarantine(dir, { index, maxBytes: 10 * HELD, log, clock: () => now });
      await store.startUsage();
      assert.equal(usageFor(dir).isShared, false, 'locked: counting alone');
      holder.close();
      writeFileSync(path, garbage(4096));
      now += 60_000; // SHARED_RETRY_MS
      await store.put(entry('RETRIED001'), RAW);
      await store.startUsage(); // waits for the count into the new file
      assert.equal(usageFor(dir).isShared, true);
      assert.equal(asideFiles().length, 1, readdirSync(dir).join(' '));
      assert.equal(warnings.length, 2, warnings.join('\n'));
      assert.match(warnings[0]!, /cannot be used/);
      assert.match(warnings[1]!, /is corrupt .*moved aside to/);
      const other = new SharedUsage(path);
      try {
        assert.equal(other.total(), await countDirectory(dir));
      } finally {
        other.close();
      }
    } finally {
      if (holder.open) holder.close();
      await index.close();
    }
  });

  it('the rebuild\'s lock file itself spoilt (garbage bytes): the corrupt shared file is still moved aside and rebuilt, not counted around for good', async () => {
    // Before, the lock could not be taken (SQLITE_NOTADB on usage.sqlite-lock): every process warned and
    // counted alone, the bound passable N-fold, at every retry again, though the lock file holds nothing.
    const path = join(dir, 'usage.sqlite');
    writeFileSync(`${path}-lock`, garbage(4096));
    writeFileSync(path, garbage(4096));
    const { warnings, log } = logger();
    const index = new SqliteQuarantineIndex(join(indexDir, 'parent.sqlite'));
    try {
      const store = new FileQuarantine(dir, { index, maxBytes: 10 * HELD, log });
      await store.startUsage();
      assert.equal(asideFiles().length, 1, readdirSync(dir).join(' '));
      assert.equal(usageFor(dir).isShared, true, 'the new file is used');
      assert.equal(warnings.length, 1, warnings.join('\n'));
      assert.match(warnings[0]!, /is corrupt .*moved aside to/);
      // The lock works again for the next one.
      const other = new SharedUsage(path);
      other.close();
      assert.equal(moveAsideIfCorrupt(path, statSync(path).ino) !== null, true);
    } finally {
      await index.close();
    }
  });

  it('a shared file moved aside while another process is opening it: that process ends on the new file, or knows it is not on it', async () => {
    // Before, the opener took the inode of the path after its setup: the new file's, though its handle was on the
    // old one. replaced() said no, so it kept reserving in the file moved aside, unseen by the others (the bound
    // passable), and would have moved the sound new file aside at its first corrupt answer.
    const path = join(dir, 'usage.sqlite');
    const old = new SharedUsage(path);
    const oldInode = old.inode;
    old.close();
    const holder = new Database(path);
    holder.exec('BEGIN IMMEDIATE'); // the opener's setup waits for it (SHARED_BUSY_MS)
    let fresh: SharedUsage | undefined;
    try {
      const child = fork(join(__dirname, 'support', 'shared-usage-open-worker.js'), [path, String(3 * HELD)], { stdio: 'ignore' });
      children.push(child);
      const answer = nextMessage<{ replaced: boolean; reserved: boolean }>(child);
      // Its file, WAL and shared memory open: the open is done, the setup waits for the lock.
      const wanted = [path, `${path}-wal`, `${path}-shm`];
      const open = () => {
        try {
          const links = readdirSync(`/proc/${child.pid}/fd`).map((fd) => {
            try {
              return readlinkSync(`/proc/${child.pid}/fd/${fd}`);
            } catch {
              return '';
            }
          });
          return wanted.every((w) => links.includes(w));
        } catch {
          return false;
        }
      };
      // A worker that failed before opening answers with its error (nextMessage rejects).
      while (!open() && child.exitCode === null) await new Promise((resolve) => setImmediate(resolve));
      assert.ok(moveAsideIfCorrupt(path, oldInode)); // found corrupt by another process: moved aside, made anew
      fresh = new SharedUsage(path);
      holder.exec('COMMIT');
      holder.close();
      const { replaced, reserved } = await answer;
      assert.equal(reserved, true);
      assert.ok(replaced || fresh.total() === 3 * HELD, `the reservation went to the file moved aside, and the opener believes it is on the new one (replaced: ${replaced}, new file's total: ${fresh.total()})`);
    } finally {
      if (holder.open) holder.close();
      fresh?.close();
    }
  });

  it('two processes opening a corrupt shared file at once: one moves it aside, both share the new one and hold no more than the bound together', async () => {
    const bad = garbage(4096);
    writeFileSync(join(dir, 'usage.sqlite'), bad);
    const bound = 12 * HELD + 4096; // the file moved aside is counted: it stays in the directory
    const workers = await Promise.all(['A', 'B'].map((p) => startWorker(bound, 'putlate', '12', `COR${p}`)));
    const results = workers.map((w) => nextMessage<{ held: number; full: number }>(w));
    for (const w of workers) w.send('go');
    const answers = await Promise.all(results);
    await Promise.all(workers.map(exited));
    assert.equal(asideFiles().length, 1, readdirSync(dir).join(' '));
    assert.deepEqual(readFileSync(join(dir, asideFiles()[0]!)), bad);
    const held = readdirSync(dir).filter((n) => n.endsWith('.eml')).length;
    assert.equal(answers[0]!.held + answers[1]!.held, held);
    // Counting alone, each would hold 12. Both count the directory into the new file as they start: a put
    // settled during the other's count may be counted twice until the next one (errs towards full), so fewer than 12 may fit.
    assert.ok(held <= 12 && held >= 6, `${answers.map((a) => a.held).join(' + ')} held against room for 12`);
    assert.ok((await countDirectory(dir)) <= bound, 'the directory within the bound');
  });

  it('the shared file repaired: tried again at most once a minute; once it opens, the directory is counted again and the shared count decides again', async () => {
    // Before, one failure (a lock held past a second, a broken file) left the process counting alone until it restarted.
    const RETRY_MS = 60_000; // SHARED_RETRY_MS
    const path = join(dir, 'usage.sqlite');
    mkdirSync(path);
    const warnings: string[] = [];
    const infos: string[] = [];
    const debugs: string[] = [];
    const log = { debug: (m: string) => debugs.push(m), info: (m: string) => infos.push(m), warn: (m: string) => warnings.push(m), error() {} };
    let now = 1_000_000_000_000;
    const index = new SqliteQuarantineIndex(join(indexDir, 'parent.sqlite'));
    try {
      const store = new FileQuarantine(dir, { index, maxBytes: 6 * HELD, log, clock: () => now });
      await store.startUsage();
      await store.put(entry('ALONE00001'), RAW);
      assert.equal(usageFor(dir).isShared, false, 'counting alone');
      now += RETRY_MS;
      await store.put(entry('ALONE00002'), RAW);
      assert.equal(usageFor(dir).isShared, false, 'still broken a minute later: tried, still alone');
      assert.equal(debugs.filter((m) => /still cannot be used/.test(m)).length, 1, debugs.join('\n'));
      assert.equal(warnings.length, 1, `one warning, not one per try: ${warnings.join('\n')}`);
      rmSync(path, { recursive: true }); // repaired
      now += RETRY_MS / 2;
      await store.put(entry('ALONE00003'), RAW);
      assert.equal(usageFor(dir).isShared, false, 'not tried again within a minute of the last try');
      now += RETRY_MS / 2;
      await store.put(entry('SHARED0001'), RAW);
      assert.equal(usageFor(dir).isShared, true, 'the shared count is used again');
      assert.deepEqual(infos.filter((m) => /usage\.sqlite, can be used again/.test(m)).length, 1, infos.join('\n'));
      const other = new SharedUsage(path); // another process of this host
      try {
        assert.equal(other.total(), 4 * HELD, 'the puts made while counting alone are in the shared total (the directory counted again), and the one since');
        // Another process's put in flight takes the last room: by its own count (4 of 6) this process would hold more.
        assert.notEqual(other.reserve(2 * HELD, 6 * HELD, now).id, null);
        await assert.rejects(store.put(entry('SHARED0002'), RAW), (err: unknown) => isQuarantineFull(err));
      } finally {
        other.close();
      }
      assert.equal(warnings.length, 1, warnings.join('\n'));
    } finally {
      await index.close();
    }
  });

  it("a scan left by a dead process does not hold settled puts aside for good: the next scan drops it and folds them in", async () => {
    const path = join(dir, 'usage.sqlite');
    const shared = new SharedUsage(path);
    const deadPid = spawnSync(process.execPath, ['-e', '']).pid!;
    const other = new Database(path);
    try {
      other.prepare('INSERT INTO usage_scan (host, pid, at, seq) VALUES (?, ?, ?, 1)').run(hostname(), deadPid, Date.now());
      const reservations = () => (other.prepare('SELECT COUNT(*) AS n FROM usage_reservation').get() as { n: number }).n;
      for (let i = 0; i < 3; i++) shared.settle(shared.reserve(HELD, 1e9, Date.now()).id!, HELD, true);
      // Not kept aside for the dead scan until some later scan (at a full quarantine or the hourly purge,
      // never with purge_interval_minutes = 0): one row per put, each summed by every reservation.
      assert.equal(reservations(), 0, 'a put settled while only a dead scan seems to run joins the base at once');
      assert.equal(shared.total(), 3 * HELD);
      const scan = shared.startScan(Date.now());
      // Settled while this scan lists the directory: kept aside until no scan runs, then folded in.
      shared.settle(shared.reserve(HELD, 1e9, Date.now()).id!, HELD, true);
      shared.finishScan(scan, 3 * HELD, Date.now());
      assert.equal(reservations(), 0, 'the dead scan dropped, the put settled during the scan folded into the base');
      assert.equal(shared.total(), 4 * HELD);
    } finally {
      other.close();
      shared.close();
    }
  });
  it('an older scan that finishes after a newer one does not overwrite its count: a put both saw settled between them is not lost', () => {
    // Two processes count the directory at once (workers starting, a purge). A put settles while only A runs:
    // kept aside. B starts after it (lists its files), finishes first and drops the kept row. A listed before
    // the put and finishes last: before, base became A's count, the put's bytes gone from the total.
    const shared = new SharedUsage(join(dir, 'usage.sqlite'));
    try {
      const before = 10 * HELD;
      const a = shared.startScan(Date.now());
      shared.settle(shared.reserve(HELD, 1e9, Date.now()).id!, HELD, true);
      const b = shared.startScan(Date.now());
      shared.finishScan(b, before + HELD, Date.now());
      shared.finishScan(a, before, Date.now());
      assert.equal(shared.total(), before + HELD, 'the put counted once, neither lost nor twice');
    } finally {
      shared.close();
    }
  });
  it('created by root (the CLI) in a directory of another user (the MTA): owned like the directory, so the MTA can write it', function () {
    if (process.getuid?.() !== 0) this.skip(); // Only root creates files for another user; CI runs as root.
    const own = join(dir, 'mta-owned');
    mkdirSync(own);
    chownSync(own, 65534, 65534);
    // What `mailward quarantine delete` run by root does first on a directory without the file yet.
    const shared = new SharedUsage(join(own, 'usage.sqlite'));
    try {
      shared.subtract(4096);
      for (const name of readdirSync(own)) {
        const s = statSync(join(own, name));
        assert.deepEqual([name, s.uid, s.gid], [name, 65534, 65534], `${name} owned by the directory's owner, not root`);
      }
    } finally {
      shared.close();
    }
  });
});
