// The Bayes model's size bound ([bayes] max_tokens): tokens seen in two
// messages or more never expire by age, so a steady feed of new spam would
// grow the model (held whole in memory) without limit. Past the bound the
// daily prune, and the start before the first load, remove the least useful
// tokens (lowest count, then oldest last learn): SQLite and Redis on 127.0.0.1:6379.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createClient } from 'redis';
import { BayesModel } from '../lib/checks/content/bayes';
import { Classifier, prunePolicy } from '../lib/checks/content/classifier';
import { BucketCounts, FirstTokens, RecentTokens } from '../lib/checks/content/cut';
import { DEFAULT_CONTENT_SETTINGS } from '../lib/checks/content/settings';
import { dayNumber, RedisBayesStore, SqliteBayesStore, type BayesStore } from '../lib/checks/content/store';
import { silentLogger } from '../lib/runtime';
import { deleteRedisKeys, REDIS_URL, uniqueRedisPrefix } from './support/redis';

async function storedTokens(store: BayesStore): Promise<Map<string, number>> {
  const model = new BayesModel();
  await store.load(model);
  return new Map([...model.tokens].map(([token, c]) => [token, c.spam + c.ham]));
}

/**
 * 22 tokens: `common` (12 messages) and `hamword` (5), pair-0..2 (2 each, so
 * age never expires them), and tokens seen once: old-*, oldh-* learnt 10 days
 * ago, new-*, newh-* today. A bound of 12 keeps the strong ones and the newest
 * of the once-seen: the 9 old ones go, then new-0 (ties by token).
 */
async function bound(makeStore: () => BayesStore, backdateAll: (days: number) => Promise<void>): Promise<void> {
  const c = new Classifier(makeStore(), silentLogger);
  await c.ready();
  assert.equal(c.loaded, true, c.lastError);
  for (let i = 0; i < 6; i++) await c.learnOnce(['common', `old-${i}`], 'spam');
  for (let i = 0; i < 3; i++) await c.learnOnce(['hamword', `oldh-${i}`], 'ham');
  await backdateAll(10);
  for (let i = 0; i < 6; i++) await c.learnOnce(['common', `new-${i}`, `pair-${i >> 1}`], 'spam');
  for (let i = 0; i < 2; i++) await c.learnOnce(['hamword', `newh-${i}`], 'ham');
  assert.equal((await storedTokens(c.store)).size, 22);

  // The shipped age expiry removes nothing here (all younger than 180 days): only the bound does.
  const policy = { olderThanDays: 180, maxCount: 1, seenDays: 365, maxTokens: 12 };
  await c.store.prune(policy);
  const kept = await storedTokens(c.store);
  assert.equal(kept.size, 12, `kept: ${[...kept.keys()].sort().join(' ')}`);
  assert.equal(kept.get('common'), 12);
  assert.equal(kept.get('hamword'), 5);
  for (const token of ['pair-0', 'pair-1', 'pair-2', 'new-1', 'new-5', 'newh-0', 'newh-1']) assert.ok(kept.has(token), `${token} kept`);
  for (const token of ['old-0', 'old-5', 'oldh-2', 'new-0']) assert.equal(kept.has(token), false, `${token} evicted`);
  await c.reload();
  assert.equal(c.model.tokens.size, 12, 'the reload holds no more in memory');
  assert.deepEqual([c.model.nspam, c.model.nham], [12, 5], 'message totals are not touched');

  // Within the bound the prune removes nothing more.
  await c.store.prune(policy);
  assert.equal((await storedTokens(c.store)).size, 12);
  await c.close();

  // At start: a store past the bound is cut down before the first load.
  const started = new Classifier(makeStore(), silentLogger);
  started.start(3600, 3600, { ...policy, maxTokens: 4 });
  await started.ready();
  assert.equal(started.loaded, true, started.lastError);
  assert.deepEqual([...started.model.tokens.keys()].sort(), ['common', 'hamword', 'pair-1', 'pair-2']);
  await started.close();
}

interface Seeded {
  token: string;
  spam: number;
  ham: number;
  day: number;
}

/**
 * `n` tokens with counts 1..4 and days among the last 5, some spam, some ham,
 * some both (a Redis token in both hashes), in no order: many ties of (count,
 * day), broken by token. Deterministic.
 */
function seededModel(n: number): Seeded[] {
  const today = dayNumber(Date.now());
  const out: Seeded[] = [];
  for (let i = 0; i < n; i++) {
    const x = (i * 7919) % 1009;
    const spam = x % 3 === 0 ? 0 : 1 + (x % 2);
    const ham = x % 3 === 1 ? 0 : 1 + ((x >> 2) % 2);
    out.push({ token: `k${((i * 104_729) % 1_000_003).toString(36)}-${i}`, spam, ham, day: today - (x % 5) });
  }
  return out;
}

/** What the bound keeps: all but the `excess` first in (spam + ham, day, token) order. */
function expectedKept(model: Seeded[], maxTokens: number): string[] {
  const order = [...model].sort((a, b) => a.spam + a.ham - (b.spam + b.ham) || a.day - b.day || (a.token < b.token ? -1 : a.token > b.token ? 1 : 0));
  return order
    .slice(Math.max(0, model.length - maxTokens))
    .map((t) => t.token)
    .sort();
}

function seedSqlite(path: string, model: Seeded[]): void {
  const db = new Database(path);
  const insert = db.prepare('INSERT INTO bayes_tokens_v2 (token, spam, ham, last_day) VALUES (?, ?, ?, ?)');
  db.transaction(() => {
    for (const t of model) insert.run(t.token, t.spam, t.ham, t.day);
  })();
  db.close();
}

async function seedRedis(client: ReturnType<typeof createClient>, prefix: string, model: Seeded[]): Promise<void> {
  for (let i = 0; i < model.length; i += 5000) {
    const part = model.slice(i, i + 5000);
    const spam = part.filter((t) => t.spam);
    const ham = part.filter((t) => t.ham);
    if (spam.length) await client.hSet(`${prefix}spam`, Object.fromEntries(spam.map((t) => [t.token, String(t.spam)])));
    if (ham.length) await client.hSet(`${prefix}ham`, Object.fromEntries(ham.map((t) => [t.token, String(t.ham)])));
    await client.hSet(`${prefix}day`, Object.fromEntries(part.map((t) => [t.token, String(t.day)])));
  }
}

/** Setting up a model file: the store creates its tables. */
async function newSqliteModel(path: string): Promise<void> {
  const store = new SqliteBayesStore(path);
  await store.load(new BayesModel());
  await store.close();
}

/**
 * Runs `work` while a setImmediate loop counts the event loop's turns, and
 * of them those before `stillWhole()` turns false (the first token removed).
 */
async function countTurns<T>(work: () => Promise<T>, stillWhole: () => boolean | Promise<boolean>): Promise<{ result: T; turns: number; turnsBeforeRemoval: number }> {
  let done = false;
  let turns = 0;
  let turnsBeforeRemoval = 0;
  let removing = false;
  const tick = async () => {
    if (done) return;
    turns++;
    if (!removing && (await stillWhole())) turnsBeforeRemoval++;
    else removing = true;
    setImmediate(tick);
  };
  setImmediate(tick);
  try {
    return { result: await work(), turns, turnsBeforeRemoval };
  } finally {
    done = true;
  }
}

describe('content: Bayes model size bound (max_tokens)', () => {
  it('[bayes] max_tokens: 1,000,000 by default, in the daily policy even with age expiry off; 0 turns it off', () => {
    const bayes = DEFAULT_CONTENT_SETTINGS.bayes;
    assert.equal(bayes.maxTokens, 1_000_000);
    assert.equal(prunePolicy(bayes)?.maxTokens, 1_000_000);
    assert.equal(prunePolicy({ ...bayes, pruneAfterDays: 0, seenDays: 0 })?.maxTokens, 1_000_000);
    assert.equal(prunePolicy({ ...bayes, pruneAfterDays: 0, seenDays: 0, maxTokens: 0 }), undefined);
  });

  it('SQLite: past the bound the weakest tokens go, the strongest stay', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mw-bound-'));
    const path = join(dir, 'bayes.sqlite');
    try {
      await bound(
        () => new SqliteBayesStore(path),
        async (days) => {
          const db = new Database(path);
          db.prepare('UPDATE bayes_tokens_v2 SET last_day = ?').run(dayNumber(Date.now()) - days);
          db.close();
        },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('Redis', () => {
    let prefix: string;
    beforeEach(() => (prefix = uniqueRedisPrefix('bound')));
    afterEach(() => deleteRedisKeys(prefix));

    it('the same on 127.0.0.1:6379', async () => {
      const client = createClient({ url: REDIS_URL });
      await client.connect();
      try {
        await bound(
          () => new RedisBayesStore(REDIS_URL, `${prefix}bayes:`),
          async (days) => {
            const dated = await client.hGetAll(`${prefix}bayes:v2:day`);
            for (const token of Object.keys(dated)) await client.hSet(`${prefix}bayes:v2:day`, token, String(dayNumber(Date.now()) - days));
          },
        );
        const dated = await client.hLen(`${prefix}bayes:v2:day`);
        assert.equal(dated, 4, 'evicted tokens lose their date too');
      } finally {
        await client.quit();
      }
    });
  });

  it('the cut: buckets in (count, day) order, the cut bucket partly; the first tokens kept once each', () => {
    const buckets = new BucketCounts();
    buckets.add(2, 100, 5);
    buckets.add(1, 101, 3);
    buckets.add(1, 100, 4);
    buckets.add(1, 101, 1);
    assert.equal(buckets.total, 13);
    assert.equal(buckets.cut(13), undefined);
    assert.deepEqual(buckets.cut(12), { count: 1, day: 100, take: 1, whole: false });
    assert.deepEqual(buckets.cut(9), { count: 1, day: 100, take: 4, whole: true });
    assert.deepEqual(buckets.cut(6), { count: 1, day: 101, take: 3, whole: false });
    assert.deepEqual(buckets.cut(0), { count: 2, day: 100, take: 5, whole: true });

    const first = new FirstTokens(4);
    for (const token of ['m', 'c', 'x', 'c', 'a', 'q', 'b', 'a', 'z']) first.offer(token);
    assert.deepEqual([...first.tokens].sort(), ['a', 'b', 'c', 'm']);
    const none = new FirstTokens(0);
    none.offer('a');
    assert.deepEqual(none.tokens, []);

    // A batch's repeats of the recent batches (at least `window` tokens of them) are dropped; older ones are forgotten.
    const recent = new RecentTokens(3);
    assert.deepEqual(recent.fresh(['a', 'b', 'a']), ['a', 'b']);
    assert.deepEqual(recent.fresh(['c', 'b']), ['c']);
    assert.deepEqual(recent.fresh(['d', 'e', 'f', 'c']), ['d', 'e', 'f']);
    assert.deepEqual(recent.fresh(['a', 'd']), ['a']);
  });

  describe('the cut on a larger model: same order as a full sort, and the event loop turns', () => {
    const model = seededModel(3000);

    it('SQLite: each bound keeps exactly what a full (count, day, token) sort keeps', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'mw-bound-'));
      try {
        // 2999: one token; 2500, 1800: inside a bucket; 3000 and above: none; 1: all but the strongest.
        for (const max of [3000, 2999, 2500, 1800, 700, 1]) {
          const path = join(dir, `bayes-${max}.sqlite`);
          await newSqliteModel(path);
          seedSqlite(path, model);
          const store = new SqliteBayesStore(path);
          assert.equal(await store.capTokens(max), Math.max(0, model.length - max));
          assert.deepEqual([...(await storedTokens(store)).keys()].sort(), expectedKept(model, max), `max_tokens ${max}`);
          await store.close();
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('SQLite: the event loop turns while the cut is found, before anything is removed (50,000 tokens)', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'mw-bound-'));
      const path = join(dir, 'bayes.sqlite');
      try {
        await newSqliteModel(path);
        const big = seededModel(50_000);
        seedSqlite(path, big);
        // The first token in key order that the bound removes: present until the first removal.
        const kept = new Set(expectedKept(big, 40_000));
        const first = big.map((t) => t.token).sort().find((t) => !kept.has(t))!;
        const watch = new Database(path, { readonly: true });
        const present = watch.prepare('SELECT 1 FROM bayes_tokens_v2 WHERE token = ?').pluck();
        const store = new SqliteBayesStore(path);
        try {
          const { result, turns, turnsBeforeRemoval } = await countTurns(() => store.capTokens(40_000), () => present.get(first) !== undefined);
          assert.equal(result, 10_000);
          // One count and one sorted OFFSET query over the whole table ran before the first page was removed: no turn at all.
          assert.ok(turnsBeforeRemoval >= 10, `${turnsBeforeRemoval} turns before the first removal (of ${turns})`);
        } finally {
          await store.close();
          watch.close();
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('SQLite: a token learnt while the cut runs is not kept as such: new (count 1, today), it goes when the cut reaches tokens seen twice', async () => {
      // docs/content.md said "a token learnt meanwhile is kept"; it is judged by its counts when its range is removed.
      const dir = mkdtempSync(join(tmpdir(), 'mw-bound-'));
      const path = join(dir, 'bayes.sqlite');
      try {
        await newSqliteModel(path);
        const big = seededModel(12_000);
        seedSqlite(path, big);
        const kept = new Set(expectedKept(big, 700));
        // Every token seen once goes at this bound: the cut lies among those seen twice or more.
        assert.ok(big.every((t) => t.spam + t.ham > 1 || !kept.has(t.token)));
        const first = big.map((t) => t.token).sort().find((t) => !kept.has(t))!;
        const watch = new Database(path, { readonly: true });
        const present = watch.prepare('SELECT 1 FROM bayes_tokens_v2 WHERE token = ?').pluck();
        const store = new SqliteBayesStore(path);
        const learner = new SqliteBayesStore(path);
        let learnt = false;
        try {
          // Learnt once the removal has begun (the cut placed), in a range ('zz...', last in key order) not yet removed.
          const { result } = await countTurns(() => store.capTokens(700), async () => {
            if (present.get(first) !== undefined) return true;
            if (!learnt) {
              learnt = true;
              await learner.save(new Map([['zz-learnt-meanwhile', [1, 0]]]));
            }
            return false;
          });
          assert.ok(learnt, 'learnt during the cut');
          assert.equal(result, big.length - 700 + 1, 'the planned tokens and the one learnt meanwhile');
          const after = await storedTokens(store);
          assert.equal(after.has('zz-learnt-meanwhile'), false);
          assert.deepEqual([...after.keys()].sort(), [...kept].sort());
        } finally {
          await store.close();
          await learner.close();
          watch.close();
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    describe('Redis', () => {
      let prefix: string;
      let client: ReturnType<typeof createClient>;
      beforeEach(async () => {
        prefix = uniqueRedisPrefix('bound');
        client = createClient({ url: REDIS_URL });
        await client.connect();
      });
      afterEach(async () => {
        await client.quit();
        await deleteRedisKeys(prefix);
      });

      it('each bound keeps exactly what a full (count, day, token) sort keeps; evicted tokens lose their date', async () => {
        for (const max of [3000, 2999, 2500, 1800, 700, 1]) {
          const store = new RedisBayesStore(REDIS_URL, `${prefix}${max}:`);
          await seedRedis(client, store.prefix, model);
          assert.equal(await store.capTokens(max), Math.max(0, model.length - max));
          const kept = expectedKept(model, max);
          assert.deepEqual([...(await storedTokens(store)).keys()].sort(), kept, `max_tokens ${max}`);
          assert.equal(await client.hLen(`${store.prefix}day`), kept.length);
          await store.close();
        }
      });

      it('the event loop turns while the model is read and cut (50,000 tokens)', async () => {
        const big = seededModel(50_000);
        const store = new RedisBayesStore(REDIS_URL, `${prefix}b:`);
        await seedRedis(client, store.prefix, big);
        try {
          const { result, turns } = await countTurns(() => store.capTokens(40_000), () => true);
          assert.equal(result, 10_000);
          assert.ok(turns >= 25, `${turns} turns`);
        } finally {
          await store.close();
        }
      });

      it('within the bound, a token in both classes counts once: the model is not read, only the smaller hash', async () => {
        const store = new RedisBayesStore(REDIS_URL, `${prefix}w:`);
        const p = store.prefix;
        // 40 tokens: 30 in spam only, 10 in both; hash sizes 40 + 10 = 50.
        const tokens = Array.from({ length: 40 }, (_, i) => `w${i}`);
        await client.hSet(`${p}spam`, Object.fromEntries(tokens.map((t) => [t, '1'])));
        await client.hSet(`${p}ham`, Object.fromEntries(tokens.slice(0, 10).map((t) => [t, '1'])));
        await client.hSet(`${p}day`, Object.fromEntries(tokens.map((t) => [t, String(dayNumber(Date.now()))])));
        const monitor = createClient({ url: REDIS_URL });
        await monitor.connect();
        const commands: string[] = [];
        let marked: (() => void) | undefined;
        await monitor.monitor((line: string) => {
          if (line.includes(`${p}marker`)) marked?.();
          else if (line.includes(p)) commands.push(line);
        });
        try {
          const reads = async (max: number) => {
            commands.length = 0;
            const removed = await store.capTokens(max);
            // Redis feeds MONITOR in execution order: once this marker is seen, so is every command of capTokens.
            const seen = new Promise<void>((resolve) => (marked = resolve));
            await client.get(`${p}marker`);
            await seen;
            return { removed, scanned: commands.filter((l) => l.includes('"HSCAN"')).map((l) => l.match(/"HSCAN" "([^"]+)"/)![1]) };
          };
          // The hash sizes alone are within: nothing read.
          assert.deepEqual(await reads(50), { removed: 0, scanned: [] });
          // 40 tokens <= 45 < 50 entries: only ham's 10 are read (to find the spam hash has them), not the model.
          assert.deepEqual(await reads(45), { removed: 0, scanned: [`${p}ham`] });
          assert.deepEqual(await reads(40), { removed: 0, scanned: [`${p}ham`] });
          // One over: cut.
          assert.equal((await reads(39)).removed, 1);
          assert.equal((await storedTokens(store)).size, 39);
        } finally {
          monitor.destroy();
          await store.close();
        }
      });

      it('a token HSCAN returns twice (its hash shrank during the count) is counted once: no token more goes', async () => {
        // Redis repeats fields in a scan during which the hash shrank: the tokens of
        // the slots visited just before the cursor that fold into the slot at the
        // cursor. Here another process forgets the ham counts of 3,600 tokens also in
        // spam while ham is counted (the set of tokens and the cut stay the same),
        // and ham shrinks from 4,096 slots to 512. Which of its 300 own tokens (ham 5:
        // above the cut) come again depends on Redis's hash seed: about one round in
        // four has one, so 40 rounds (none at all: about 1 in 20,000). Before: each
        // repeat was counted, and one more token went per repeat.
        const today = dayNumber(Date.now());
        let repeats = 0;
        for (let round = 0; round < 40; round++) {
          const store = new RedisBayesStore(REDIS_URL, `${prefix}r${round}:`);
          const p = store.prefix;
          const spam = Array.from({ length: 4000 }, (_, i) => `s${round}-${i}`);
          const shared = spam.slice(0, 3600);
          const hamOnly = Array.from({ length: 300 }, (_, i) => `h${round}-${i}`);
          await client.hSet(`${p}spam`, Object.fromEntries(spam.map((t) => [t, '1'])));
          await client.hSet(`${p}ham`, Object.fromEntries([...shared.map((t) => [t, '1']), ...hamOnly.map((t) => [t, '5'])]));
          await client.hSet(`${p}day`, Object.fromEntries([...spam, ...hamOnly].map((t) => [t, String(today - 3)])));
          // Between the first and the second HSCAN batch of ham's count, the forgetting lands.
          const c = await (store as unknown as { connect(): Promise<{ hScanIterator: (key: string, options: object) => AsyncIterable<{ field: string }[]> }> }).connect();
          const scan = c.hScanIterator.bind(c);
          // What ham's first scan (the count) returned, to see that repeats happen.
          const returned = new Map<string, number>();
          let hamScans = 0;
          c.hScanIterator = async function* (key: string, options: object) {
            const counting = key === `${p}ham` && ++hamScans === 1;
            let batches = 0;
            for await (const batch of scan(key, options)) {
              if (counting) for (const { field } of batch) returned.set(field, (returned.get(field) ?? 0) + 1);
              yield batch;
              if (counting && ++batches === 1) {
                for (let i = 0; i < shared.length; i += 500) await client.hDel(`${p}ham`, shared.slice(i, i + 500));
                // Redis moves the slots to the smaller table a step per command on the hash: its other work, here lookups.
                const lookups = client.multi();
                for (let i = 0; i < 4096; i++) lookups.hExists(`${p}ham`, hamOnly[0]!);
                await lookups.exec();
              }
            }
          };
          try {
            // 4,300 tokens; 500 go, all of them seen once (spam 1): the ham tokens stay.
            assert.equal(await store.capTokens(3800), 500, `round ${round}`);
            assert.equal((await client.hLen(`${p}spam`)) + (await client.hLen(`${p}ham`)), 3800, `round ${round}`);
            assert.equal(await client.hLen(`${p}ham`), 300);
          } finally {
            await store.close();
          }
          repeats += [...returned.values()].filter((n) => n > 1).length;
        }
        assert.ok(repeats > 0, 'Redis repeated no token: the case was not exercised');
      });
    });
  });
});
