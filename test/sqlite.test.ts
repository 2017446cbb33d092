// The shared SQLite opener: two processes (Haraka and the CLI) opening a new
// file at the same moment must both get it, in WAL mode; a failed set-up keeps no handle.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { BayesModel } from '../lib/checks/content/bayes';
import { SqliteBayesStore } from '../lib/checks/content/store';
import { SqliteListStore } from '../lib/checks/rules/list-store';
import { SqliteTrackingStore } from '../lib/tracking/sqlite';
import { openSharedSqlite } from '../lib/util/sqlite';

const run = promisify(execFile);

/** This process's open file descriptors on a file (or its -wal/-shm). */
function handlesOn(path: string): string[] {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).startsWith(path);
    } catch {
      return false;
    }
  });
}

describe('openSharedSqlite', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'mailward-sqlite-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('two processes opening the same new files at once both get them, in WAL mode', async function () {
    this.timeout(30_000);
    // Both processes open each of 40 new files at the same agreed moment, so they
    // race on every one (before the retry, about 4 in 10 such opens failed with SQLITE_BUSY).
    const script = `
      const { openSharedSqlite } = require(${JSON.stringify(join(__dirname, '..', 'lib', 'util', 'sqlite'))});
      const modes = [];
      const start = Number(process.argv[2]);
      for (let i = 0; i < 40; i++) {
        while (Date.now() < start + i * 30) {}
        try {
          const db = openSharedSqlite(require('node:path').join(process.argv[1], 'f' + i + '.sqlite'));
          modes.push(db.pragma('journal_mode', { simple: true }));
          db.close();
        } catch (err) {
          modes.push(err.code || err.message);
        }
      }
      console.log(JSON.stringify(modes));`;
    const start = String(Date.now() + 1500);
    const results = await Promise.all([0, 1].map(() => run(process.execPath, ['-e', script, dir, start])));
    for (const { stdout } of results) assert.deepEqual(JSON.parse(stdout), Array(40).fill('wal'));
  });

  it('caps what a checkpoint leaves of the WAL (journal_size_limit), so a burst does not keep its size on disk', () => {
    // Every SQLite file mailward writes (tracking, Bayes model, quarantine index, lists) opens here.
    const db = openSharedSqlite(join(dir, 'limit.sqlite'));
    try {
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
      assert.equal(db.pragma('journal_size_limit', { simple: true }), 64 * 1024 * 1024);
    } finally {
      db.close();
    }
  });

  it('closes the file again when setting it up fails, so a store that retries on every use leaks nothing', async () => {
    const path = join(dir, 'model.sqlite');
    // A file whose totals table is a view: the model store's schema set-up fails on it every time.
    const prepared = new Database(path);
    prepared.exec('CREATE VIEW bayes_totals_v2 AS SELECT 1 AS id, 0 AS spam, 0 AS ham');
    prepared.close();
    const store = new SqliteBayesStore(path);
    for (let i = 0; i < 3; i++) await assert.rejects(store.load(new BayesModel()), /view/);
    assert.deepEqual(handlesOn(path), []);
  });

  it('the list and tracking stores close the file when what follows the set-up fails on it (tables made by hand)', async () => {
    const lists = join(dir, 'lists.sqlite');
    const tracking = join(dir, 'tracking.sqlite');
    const made = [new Database(lists), new Database(tracking)];
    made[0]!.exec('CREATE TABLE sender_lists (list TEXT, scope TEXT, added TEXT)');
    made[1]!.exec('CREATE TABLE tracking (ref TEXT PRIMARY KEY, time TEXT, remote_ip TEXT, mail_from TEXT, action TEXT)');
    for (const db of made) db.close();
    for (let i = 0; i < 3; i++) assert.throws(() => new SqliteListStore(lists), /no such column/);
    // The tracking writer tries again on every batch and every spool replay.
    const store = new SqliteTrackingStore(tracking, {});
    for (let i = 0; i < 3; i++) await assert.rejects(store.insert([]), /has no column/);
    assert.deepEqual([...handlesOn(lists), ...handlesOn(tracking)], []);
  });
});
