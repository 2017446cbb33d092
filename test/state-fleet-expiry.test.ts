import assert from 'node:assert/strict';
import { createClient } from 'redis';
import { countSimilar } from '../lib/checks/content/bulk';
import type { TemplateFingerprint } from '../lib/checks/content/fingerprint';
import { countRecipient, isHarvest, recipientRate } from '../lib/checks/reputation/harvest';
import { ipEntity, LearnedStore } from '../lib/checks/reputation/learned';
import { parseReputationSettings } from '../lib/checks/reputation/settings';
import { parseIni } from '../lib/config/ini';
import { IniReader } from '../lib/config/reader';
import { silentLogger } from '../lib/runtime';
import { RedisStore } from '../lib/state';
import { deleteRedisKeys, REDIS_URL, uniqueRedisPrefix } from './support/redis';

const HOUR = 3600_000;

function node(prefix: string): RedisStore {
  return new RedisStore({ backend: 'redis', redisUrl: REDIS_URL, prefix, timeoutMs: 1000, memoryMaxEntries: 1000 }, silentLogger);
}

// Two nodes sharing one Redis whose configs differ: what one counted for its
// longer window must not expire because the other asked for less.
describe('fleet state: nodes with different windows share counters without cutting them short', () => {
  const prefix = uniqueRedisPrefix('fleet-expiry');
  let a: RedisStore;
  let b: RedisStore;
  let raw: ReturnType<typeof createClient>;
  before(async () => {
    a = node(prefix);
    b = node(prefix);
    raw = createClient({ url: REDIS_URL });
    await raw.connect();
  });
  after(async () => {
    await a.close();
    await b.close();
    await raw.quit();
    await deleteRedisKeys(prefix);
  });

  it('bulk fingerprints: a node with window_hours = 1 does not make the hour a 24-hour node counted expire in 2 hours', async () => {
    const fp: TemplateFingerprint = { key: 'k'.repeat(40), bands: ['band-one'], words: 50 };
    const now = Date.UTC(2026, 11, 2, 1, 30);
    assert.equal(await countSimilar(a, fp, 40, now, 24), 40);
    // The second node, configured with a one-hour window, counts one more copy in the same hour.
    assert.equal(await countSimilar(b, fp, 1, now, 1), 41);
    const ttl = await raw.ttl(`${prefix}content:bulk:band-one:${Math.floor(now / HOUR)}`);
    assert.ok(ttl > 24 * 3600, `the hour's count expires in ${ttl} s, before the 24-hour window has passed over it`);
  });

  it('directory harvest: a node with window_minutes = 10 does not delete the recipients a 60-minute node still counts', async () => {
    const hour = { enabled: true, windowSeconds: 3600, minRecipients: 10, maxUnknownShare: 0.5 };
    const tenMinutes = { ...hour, windowSeconds: 600 };
    const t0 = Date.UTC(2026, 11, 2, 1, 0);
    for (let i = 0; i < 12; i++) await countRecipient(a, hour, '192.0.2.77', false, t0);
    // A quarter of an hour later: outside the 10-minute node's window, inside the hour.
    assert.deepEqual(await recipientRate(b, tenMinutes, '192.0.2.77', t0 + 15 * 60_000), { known: 0, unknown: 0 });
    await new Promise((r) => setTimeout(r, 50)); // its pruning is not awaited
    const rate = await recipientRate(a, hour, '192.0.2.77', t0 + 15 * 60_000);
    assert.deepEqual(rate, { known: 0, unknown: 12 });
    assert.ok(isHarvest(rate, hour));
    // Past the hour the buckets are dropped, by either node.
    await recipientRate(b, tenMinutes, '192.0.2.77', t0 + 61 * 60_000);
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(await raw.hKeys(`${prefix}harvest:192.0.2.77`), []);
  });

  it('learnt reputation: a node with horizon_days = 1 does not delete the trap hits a 30-day node still counts', async () => {
    const DAY = 24 * HOUR;
    // The shipped defaults (30 days), and a node configured with horizon_days = 1.
    const learned = (ini: string) => parseReputationSettings(new IniReader('mailward.reputation.ini', parseIni(ini, 'x'))).settings.learned;
    const month = learned('');
    assert.equal(month.horizonSeconds, 30 * 86400);
    const oneDay = learned('[learned]\nhorizon_days = 1\n');
    const t0 = Date.UTC(2026, 11, 2, 1, 0);
    let now = t0;
    const longNode = new LearnedStore(a, month, () => now);
    const shortNode = new LearnedStore(b, oneDay, () => now);
    const ip = ipEntity('192.0.2.88');
    await longNode.record([ip], 'trap', 3);
    now = t0 + 4 * DAY;
    // Past the short node's horizon: it does not count them...
    assert.equal((await shortNode.read(ip)).raw.trap, 0);
    await new Promise((r) => setTimeout(r, 50)); // its pruning is not awaited
    // ...and leaves them to the node whose horizon they are within.
    assert.equal((await longNode.read(ip)).raw.trap, 3);
    // A field written before fields named their horizon is read with the reader's own.
    await a.hashIncrBy('rep:ip:192.0.2.88', { [`${t0 / 1000}:complaint`]: 2 }, 86400 * 31);
    assert.equal((await longNode.read(ip)).raw.complaint, 2);
    // The previous release reads `start.horizon` as one number, within a second of the bucket's start.
    for (const field of await raw.hKeys(`${prefix}rep:ip:192.0.2.88`)) assert.ok(Math.abs(Number(field.slice(0, field.indexOf(':'))) * 1000 - t0) < 1000, field);
    // Past the writer's horizon, either node drops them.
    now = t0 + 31 * DAY;
    await shortNode.read(ip);
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(await raw.hKeys(`${prefix}rep:ip:192.0.2.88`), []);
  });
});
