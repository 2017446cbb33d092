import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createClient } from 'redis';
import { Classifier } from '../lib/checks/content/classifier';
import { RedisBayesStore, SqliteBayesStore, type BayesStore } from '../lib/checks/content/store';
import { silentLogger } from '../lib/runtime';

async function roundTrip(makeStore: () => BayesStore): Promise<void> {
  const a = new Classifier(makeStore(), silentLogger);
  await a.ready();
  assert.equal(a.loaded, true);
  for (let i = 0; i < 5; i++) a.learn(['cheap', 'pills', `n${i}`], 'spam');
  for (let i = 0; i < 3; i++) a.learn(['meeting', 'notes'], 'ham');
  a.unlearn(['cheap', 'pills', 'n0'], 'spam');
  assert.equal(a.classify(['cheap'], 0)!.probability > 0.5, true);
  await a.close();

  // A second process adds to the same store (deltas, not overwrites).
  const b = new Classifier(makeStore(), silentLogger);
  await b.ready();
  assert.equal(b.model.nspam, 4);
  assert.equal(b.model.nham, 3);
  assert.deepEqual(b.model.tokens.get('cheap'), { spam: 4, ham: 0 });
  assert.equal(b.model.tokens.has('n0'), false);
  b.learn(['meeting'], 'ham');
  await b.flush();

  const c = new Classifier(makeStore(), silentLogger);
  await c.ready();
  assert.equal(c.model.nham, 4);
  assert.deepEqual(c.model.tokens.get('meeting'), { spam: 0, ham: 4 });
  // b's model picks up what c learns on its next reload.
  c.learn(['pills'], 'spam');
  await c.close();
  await b.reload();
  assert.deepEqual(b.model.tokens.get('pills'), { spam: 5, ham: 0 });
  await b.close();
}

describe('content: Bayes persistence', () => {
  it('SQLite: learn, unlearn, save, load again, add from a second process', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mw-bayes-'));
    try {
      await roundTrip(() => new SqliteBayesStore(join(dir, 'sub', 'bayes.sqlite')));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('Redis: the same round trip on 127.0.0.1:6379 under a unique prefix', async () => {
    const prefix = `mwtest:content:${randomBytes(4).toString('hex')}:bayes:`;
    try {
      await roundTrip(() => new RedisBayesStore('redis://127.0.0.1:6379', prefix));
    } finally {
      const client = createClient({ url: 'redis://127.0.0.1:6379' });
      await client.connect();
      const keys = await client.keys(`${prefix}*`);
      if (keys.length) await client.del(keys);
      await client.quit();
    }
  });

  it('a store that cannot be reached leaves the classifier abstaining, keeping what it learnt pending', async () => {
    const c = new Classifier(new RedisBayesStore('redis://127.0.0.1:1', 'x:', 300), silentLogger);
    await c.ready();
    assert.equal(c.loaded, false);
    assert.match(c.lastError, /loading the Bayes model/);
    assert.equal(c.classify(['a'], 0), null);
    c.learn(['abc'], 'spam');
    await c.flush();
    assert.deepEqual(c.model.pending.get('abc'), [1, 0]);
    await c.store.close();
  });
});
