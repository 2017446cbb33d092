/**
 * Reputation look-ups per second, against the in-process state and against
 * Redis (127.0.0.1:6379, a key prefix of its own, removed afterwards).
 * - lookup: what the connect check reads for one client: the IP's and its
 *   /24's bucket hashes, decayed (two hashGetAll, run in parallel);
 * - record: one event counted for an IP and its /24 (two atomic hash updates),
 *   what a trap hit or a learnt verdict costs.
 * 10,000 client IPs, each with a few days of history, `concurrency` at a time
 * as concurrent SMTP sessions would.
 */
import { randomBytes } from 'node:crypto';
import { createClient } from 'redis';
import { ipEntity, LearnedStore, netEntity, scoreOf } from '../lib/checks/reputation/learned';
import type { LearnedSettings } from '../lib/checks/reputation/settings';
import { MemoryStore, RedisStore } from '../lib/state';
import type { StateStore } from '../lib/state/types';
import { opsPerSecond } from './rate';

const silentLogger = { debug() {}, info() {}, warn() {}, error() {} };

export interface ReputationFigures {
  backend: 'memory' | 'redis';
  lookupsPerSecond: number;
  recordsPerSecond: number;
  operations: number;
  concurrency: number;
  error?: string;
}

export interface ReputationBenchResult {
  memory: ReputationFigures;
  redis: ReputationFigures;
}

const SETTINGS: LearnedSettings = {
  enabled: true,
  halfLifeSeconds: 72 * 3600,
  horizonSeconds: 30 * 86400,
  bucketSeconds: 3600,
  weights: { trap: 10, complaint: 5, invalid: 0.5, spam: 1, ham: 1 },
  verdictCap: 5,
  saturation: 20,
  learnFromVerdicts: true,
  learnSpamScore: 10,
  learnHamScore: 1,
  domainRequiresAuth: true,
};

const IPS = 10_000;
const ip = (i: number) => `198.${18 + ((i >> 16) & 1)}.${(i >> 8) & 255}.${i & 255}`;


async function measure(backend: 'memory' | 'redis', store: StateStore, operations: number, concurrency: number): Promise<ReputationFigures> {
  // History: each IP saw events in 4 of the last hours.
  let now = Date.now() - 4 * 3600_000;
  const history = new LearnedStore(store, SETTINGS, () => now);
  for (let h = 0; h < 4; h++) {
    await opsPerSecond(IPS, concurrency, (i) => history.record([ipEntity(ip(i)), netEntity(ip(i))], i % 7 ? 'ham' : 'spam'));
    now += 3600_000;
  }
  const learned = new LearnedStore(store, SETTINGS, Date.now);
  const lookupsPerSecond = await opsPerSecond(operations, concurrency, async (i) => {
    const [a, b] = await Promise.all([learned.read(ipEntity(ip(i % IPS))), learned.read(netEntity(ip(i % IPS)))]);
    return scoreOf(a.counts, SETTINGS).total + scoreOf(b.counts, SETTINGS).total;
  });
  const recordsPerSecond = await opsPerSecond(operations, concurrency, (i) => learned.record([ipEntity(ip(i % IPS)), netEntity(ip(i % IPS))], 'invalid'));
  return { backend, lookupsPerSecond, recordsPerSecond, operations, concurrency };
}

/** Look-ups and records per second on both backends. */
export async function benchReputation(options: { operations?: number; concurrency?: number; redisUrl?: string } = {}): Promise<ReputationBenchResult> {
  const operations = options.operations ?? 20_000;
  const concurrency = options.concurrency ?? 50;
  const memoryStore = new MemoryStore(100_000);
  const memory = await measure('memory', memoryStore, operations, concurrency);
  await memoryStore.close();

  const redisUrl = options.redisUrl ?? 'redis://127.0.0.1:6379';
  const prefix = `mwbench:reputation:${randomBytes(4).toString('hex')}:`;
  let redis: ReputationFigures;
  const problems: string[] = [];
  const store = new RedisStore(
    { backend: 'redis', redisUrl, prefix, timeoutMs: 1000, memoryMaxEntries: 100_000 },
    { ...silentLogger, warn: (m: string) => problems.push(m) },
  );
  try {
    redis = await measure('redis', store, operations, concurrency);
    // Figures from the in-process fallback would be a lie.
    if (problems.length) redis = { backend: 'redis', lookupsPerSecond: 0, recordsPerSecond: 0, operations, concurrency, error: problems[0] };
  } finally {
    await store.close();
    await cleanup(redisUrl, prefix).catch(() => {});
  }
  return { memory, redis };
}

async function cleanup(url: string, prefix: string): Promise<void> {
  const client = createClient({ url });
  client.on('error', () => {});
  await client.connect();
  try {
    for await (const batch of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 })) {
      const keys = batch as unknown as string[];
      if (keys.length) await client.del(keys);
    }
  } finally {
    await client.quit();
  }
}

export function formatReputationBench(r: ReputationBenchResult): string[] {
  return [r.memory, r.redis].map((f) =>
    f.error
      ? `reputation (${f.backend}): not measured: ${f.error}`
      : `reputation (${f.backend}): ${f.lookupsPerSecond.toLocaleString('en')} look-ups/s, ${f.recordsPerSecond.toLocaleString('en')} records/s (${f.operations} each, ${f.concurrency} concurrent)`,
  );
}

if (require.main === module) {
  benchReputation().then(
    (r) => console.log(JSON.stringify(r, null, 2)),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
