// Expiry of the Bayes model: rare tokens not learnt again for a while are
// removed (SQLite and Redis on 127.0.0.1:6379), a learn dates its tokens
// again, stores from before dating start the clock, and `mailward learn --prune`.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createClient } from 'redis';
import { Classifier, prunePolicy } from '../lib/checks/content/classifier';
import { DEFAULT_CONTENT_SETTINGS } from '../lib/checks/content/settings';
import { dayNumber, RedisBayesStore, SqliteBayesStore, type BayesStore } from '../lib/checks/content/store';
import { main } from '../lib/cli/main';
import type { CliIO } from '../lib/cli/types';
import { silentLogger } from '../lib/runtime';
import { deleteRedisKeys, REDIS_URL, uniqueRedisPrefix } from './support/redis';

const DAY = 86_400_000;
const inDays = (days: number) => Date.now() + days * DAY;

async function open(store: BayesStore): Promise<Classifier> {
  const c = new Classifier(store, silentLogger);
  await c.ready();
  assert.equal(c.loaded, true, c.lastError);
  return c;
}

/**
 * The behaviour both stores share. `backdate` moves every stored token's last
 * learn `days` into the past (as if learnt then).
 */
async function expiry(makeStore: () => BayesStore, backdate: (days: number) => Promise<void>): Promise<void> {
  const c = await open(makeStore());
  await c.learnOnce(['common', 'spamword', 'rare-a'], 'spam');
  await c.learnOnce(['common', 'hamword', 'rare-b'], 'ham');
  await c.learnOnce(['spamword', 'hamword'], 'ham');

  // Learnt today: nothing is old enough.
  assert.equal((await c.store.prune({ olderThanDays: 180, maxCount: 1 })).tokens, 0);
  // 100 days on: still not.
  assert.equal((await c.store.prune({ olderThanDays: 180, maxCount: 1, now: inDays(100) })).tokens, 0);
  // 200 days on: the tokens seen once go, those seen twice stay.
  assert.equal((await c.store.prune({ olderThanDays: 180, maxCount: 1, now: inDays(200) })).tokens, 2);
  await c.reload();
  assert.equal(c.model.tokens.has('rare-a'), false);
  assert.equal(c.model.tokens.has('rare-b'), false);
  assert.deepEqual(c.model.tokens.get('common'), { spam: 1, ham: 1 });
  assert.deepEqual([c.model.nspam, c.model.nham], [1, 2], 'message totals are not touched');

  // A learn dates its tokens again: backdate everything, learn one token anew.
  await backdate(200);
  await c.learnOnce(['common', 'fresh'], 'spam');
  assert.equal((await c.store.prune({ olderThanDays: 180, maxCount: 2 })).tokens, 2, 'spamword and hamword (2 each, old) go');
  await c.reload();
  assert.deepEqual(c.model.tokens.get('common'), { spam: 2, ham: 1 }, 'learnt again today: kept although old before');
  assert.deepEqual(c.model.tokens.get('fresh'), { spam: 1, ham: 0 });
  assert.equal(c.model.tokens.has('spamword'), false);
  assert.equal(c.model.tokens.size, 2);

  // Moving a message whose tokens were pruned never drives a count below zero.
  assert.equal(await c.learnOnce(['common', 'spamword', 'rare-a'], 'ham'), 'relearnt');
  await c.reload();
  assert.deepEqual(c.model.tokens.get('rare-a'), { spam: 0, ham: 1 });
  assert.deepEqual(c.model.tokens.get('common'), { spam: 1, ham: 2 });
  assert.deepEqual([c.model.nspam, c.model.nham], [1, 3]);

  // Seen records: kept until seen_days, then gone (learning the message again then counts it again).
  const policy = { olderThanDays: 100_000, maxCount: 1, seenDays: 365 };
  assert.deepEqual(await c.store.prune({ ...policy, now: inDays(364) }), { tokens: 0, seen: 0 });
  assert.equal(await c.learnOnce(['common', 'fresh'], 'spam'), 'already learnt');
  assert.deepEqual(await c.store.prune({ ...policy, now: inDays(366) }), { tokens: 0, seen: 4 });
  assert.equal(await c.learnOnce(['common', 'fresh'], 'spam'), 'learnt');
  assert.equal(await c.learnOnce(['common', 'fresh'], 'spam'), 'already learnt', 'and is recorded again');
  await c.close();
}

describe('content: Bayes model expiry', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'mw-expiry-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('SQLite: rare tokens not learnt for the given days go; a learn dates a token again', async () => {
    const path = join(dir, 'bayes.sqlite');
    await expiry(
      () => new SqliteBayesStore(path),
      async (days) => {
        const db = new Database(path);
        db.prepare('UPDATE bayes_tokens_v2 SET last_day = ?').run(dayNumber(Date.now()) - days);
        db.close();
      },
    );
  });

  it('SQLite: a model file from before expiry gets the column, its tokens aged from today', async () => {
    const path = join(dir, 'old.sqlite');
    const db = new Database(path);
    db.exec(`CREATE TABLE bayes_tokens_v2 (token TEXT PRIMARY KEY, spam INTEGER NOT NULL, ham INTEGER NOT NULL) WITHOUT ROWID;
             CREATE TABLE bayes_totals_v2 (id INTEGER PRIMARY KEY CHECK (id = 1), spam INTEGER NOT NULL, ham INTEGER NOT NULL);
             INSERT INTO bayes_totals_v2 VALUES (1, 1, 0); INSERT INTO bayes_tokens_v2 VALUES ('legacy', 1, 0);`);
    db.close();
    const store = new SqliteBayesStore(path);
    try {
      assert.equal((await store.prune({ olderThanDays: 180, maxCount: 1, now: inDays(179) })).tokens, 0);
      assert.equal((await store.prune({ olderThanDays: 180, maxCount: 1, now: inDays(181) })).tokens, 1);
    } finally {
      await store.close();
    }
  });

  describe('Redis', () => {
    let prefix: string;
    beforeEach(() => (prefix = uniqueRedisPrefix('expiry')));
    afterEach(() => deleteRedisKeys(prefix));

    it('the same on 127.0.0.1:6379, dates in <prefix>bayes:v2:day, emptied tokens lose their date', async () => {
      const client = createClient({ url: REDIS_URL });
      await client.connect();
      try {
        await expiry(
          () => new RedisBayesStore(REDIS_URL, `${prefix}bayes:`),
          async (days) => {
            const dated = await client.hGetAll(`${prefix}bayes:v2:day`);
            for (const token of Object.keys(dated)) await client.hSet(`${prefix}bayes:v2:day`, token, String(dayNumber(Date.now()) - days));
          },
        );
        const dated = Object.keys(await client.hGetAll(`${prefix}bayes:v2:day`)).sort();
        assert.deepEqual(dated, ['common', 'fresh', 'rare-a', 'spamword'], 'a date for every counted token and no other');
      } finally {
        await client.quit();
      }
    });

    it('seen records written before they carried a day still say their class, and are dated by the first prune', async () => {
      const client = createClient({ url: REDIS_URL });
      await client.connect();
      const store = new RedisBayesStore(REDIS_URL, `${prefix}bayes:`);
      try {
        await client.hSet(`${prefix}bayes:v2:seen`, { old: 'spam', other: 'ham' });
        await client.hSet(`${prefix}bayes:v2:spam`, { word: '1' });
        await client.hSet(`${prefix}bayes:v2:totals`, { spam: '1', ham: '1' });
        assert.equal(await store.relabel('old', ['word'], 'spam'), 'spam', 'an undated record is read as its class');
        assert.equal(await store.relabel('old', ['word'], 'ham'), 'spam', 'and moved from it');
        assert.match((await client.hGet(`${prefix}bayes:v2:seen`, 'old'))!, /^ham:\d+$/);
        const policy = { olderThanDays: 100_000, maxCount: 1, seenDays: 30 };
        assert.equal((await store.prune({ ...policy, now: inDays(1) })).seen, 0);
        assert.equal(await client.hGet(`${prefix}bayes:v2:seen`, 'other'), `ham:${dayNumber(inDays(1))}`);
        assert.equal((await store.prune({ ...policy, now: inDays(32) })).seen, 2);
        assert.equal(await client.hLen(`${prefix}bayes:v2:seen`), 0);
      } finally {
        await store.close();
        await client.quit();
      }
    });

    it('tokens counted before dating existed are dated by the first prune, not removed by it', async () => {
      const client = createClient({ url: REDIS_URL });
      await client.connect();
      const store = new RedisBayesStore(REDIS_URL, `${prefix}bayes:`);
      try {
        await client.hSet(`${prefix}bayes:v2:spam`, { legacy: '1' });
        assert.equal((await store.prune({ olderThanDays: 0, maxCount: 1, now: inDays(1) })).tokens, 0);
        assert.equal(await client.hGet(`${prefix}bayes:v2:day`, 'legacy'), String(dayNumber(inDays(1))));
        assert.equal((await store.prune({ olderThanDays: 180, maxCount: 1, now: inDays(182) })).tokens, 1);
        assert.equal(await client.hGet(`${prefix}bayes:v2:spam`, 'legacy'), null);
      } finally {
        await store.close();
        await client.quit();
      }
    });
  });

  it('the daily policy follows [bayes]: prune_after_days = 0 keeps every token, seen_days = 0 every record, both 0 no prune', async () => {
    const bayes = DEFAULT_CONTENT_SETTINGS.bayes;
    assert.deepEqual(prunePolicy(bayes), { olderThanDays: 180, maxCount: 1, seenDays: 365, maxTokens: 1_000_000 });
    assert.equal(prunePolicy({ ...bayes, pruneAfterDays: 0, seenDays: 0, maxTokens: 0 }), undefined);
    const seenOnly = prunePolicy({ ...bayes, pruneAfterDays: 0 })!;
    const c = await open(new SqliteBayesStore(join(dir, 'policy.sqlite')));
    await c.learnOnce(['lonely'], 'spam');
    assert.deepEqual(await c.store.prune({ ...seenOnly, now: inDays(100_000) }), { tokens: 0, seen: 1 });
    await c.reload();
    assert.deepEqual(c.model.tokens.get('lonely'), { spam: 1, ham: 0 });
    await c.close();
  });

  it('a daily prune that cannot reach its store logs a warning and returns 0, throwing nothing', async () => {
    const warnings: string[] = [];
    const c = new Classifier(new RedisBayesStore('redis://127.0.0.1:1', 'mwtest:dead:', 500), { ...silentLogger, warn: (m: string) => warnings.push(m) });
    assert.deepEqual(await c.prune({ olderThanDays: 1, maxCount: 1, seenDays: 1 }), { tokens: 0, seen: 0 });
    assert.match(warnings.join('\n'), /expiring the Bayes model in redis redis:\/\/127\.0\.0\.1:1 mwtest:dead:v2:\* failed/);
    await c.close();
  });

  it('mailward learn --prune expires with the given or configured policy, and refuses bad options', async () => {
    const config = join(dir, 'config');
    mkdirSync(config);
    writeFileSync(join(config, 'mailward.ini'), `[main]\ndata_dir = ${join(dir, 'data')}\n`);
    const cli = async (...args: string[]) => {
      const out: string[] = [];
      const err: string[] = [];
      const io: CliIO = { out: (l) => out.push(l), err: (l) => err.push(l) };
      const code = await main(['learn', ...args, '--config', config], io);
      return { code, out: out.join('\n'), err: err.join('\n') };
    };
    const c = await open(new SqliteBayesStore(join(dir, 'data', 'bayes.sqlite')));
    await c.learnOnce(['once', 'twice'], 'spam');
    await c.learnOnce(['twice'], 'ham');
    await c.close();

    let r = await cli('--prune');
    assert.equal(r.code, 0, r.err);
    assert.match(
      r.out,
      /^expired 0 tokens \(seen in at most 1 learnt message, not learnt for 180 days\) and 0 seen records \(older than 365 days\)$/m,
      'the shipped policy: nothing is old yet',
    );
    r = await cli('--prune', '--older-than', '0', '--max-count', '2', '--seen-days', '0');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^expired 0 tokens \(.*2 learnt messages, not learnt for 0 days\)$/m, 'learnt today is not older than today; seen records kept');

    const db = new Database(join(dir, 'data', 'bayes.sqlite'));
    db.prepare('UPDATE bayes_tokens_v2 SET last_day = last_day - 1').run();
    db.close();
    r = await cli('--prune', '--older-than', '0');
    assert.match(r.out, /^expired 1 tokens \(seen in at most 1 learnt message/m);
    assert.match(r.out, /: 1 spam and 1 ham \(was 1 and 1\), 1 tokens/);

    r = await cli('--max-count', '2');
    assert.equal(r.code, 2);
    assert.match(r.err, /--older-than, --max-count and --seen-days go with --prune/);
    r = await cli('--prune', '--older-than', 'soon');
    assert.equal(r.code, 2);
    assert.match(r.err, /--older-than takes a whole number, not "soon"/);
    writeFileSync(join(config, 'mailward.content.ini'), '[bayes]\nprune_after_days = 0\n');
    r = await cli('--prune');
    assert.equal(r.code, 2);
    assert.match(r.err, /prune_after_days = 0 \(expiry off\): say how old with --older-than DAYS/);
  });
});
