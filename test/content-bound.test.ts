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
});
