/**
 * Throttle decisions per second of the backscatter subject-flood throttle,
 * against the in-process state and against Redis (127.0.0.1:6379, a key
 * prefix of its own, removed afterwards). Two kinds of decision:
 * - counting: a matching message with a subject that is not blocked (one
 *   block read, one counter increment, one read of the window's buckets);
 * - blocked: a message whose subject is blocked (one block read and the
 *   refusal counter): the path a flood takes once the block holds.
 * Decisions run `concurrency` at a time, as concurrent SMTP sessions would.
 */
import { randomBytes } from 'node:crypto';
import { createClient } from 'redis';
import { SubjectThrottle, type ThrottleSettings } from '../lib/checks/backscatter/throttle';
import { MemoryStore, RedisStore } from '../lib/state';
import type { StateStore } from '../lib/state/types';
import { opsPerSecond } from './rate';

const silentLogger = { debug() {}, info() {}, warn() {}, error() {} };

export interface ThrottleFigures {
  backend: 'memory' | 'redis';
  /** Counting decisions per second (subject not blocked). */
  countingPerSecond: number;
  /** Decisions per second for a blocked subject (refusals). */
  blockedPerSecond: number;
  decisions: number;
  concurrency: number;
  /** Set when the backend could not be measured (e.g. Redis not running). */
  error?: string;
}

export interface BackscatterBenchResult {
  memory: ThrottleFigures;
  redis: ThrottleFigures;
}

const SETTINGS: ThrottleSettings = { enabled: true, match: ['*'], threshold: 1_000_000_000, windowMinutes: 5, blockMinutes: 60, emptySubject: false };


async function measure(backend: 'memory' | 'redis', store: StateStore, decisions: number, concurrency: number): Promise<ThrottleFigures> {
  const counting = new SubjectThrottle(store, SETTINGS, Date.now, 'bench');
  // 1,000 subjects: realistic spread of counters, none reaching the threshold.
  await opsPerSecond(Math.min(1000, decisions), concurrency, (i) => counting.decide(`warm-up subject ${i % 1000}`, 's', true));
  const countingPerSecond = await opsPerSecond(decisions, concurrency, (i) => counting.decide(`subject number ${i % 1000}`, 's', true));

  const blocking = new SubjectThrottle(store, { ...SETTINGS, threshold: 1 }, Date.now, 'bench');
  await blocking.decide('undeliverable mail', 'Undeliverable Mail', true);
  const blockedPerSecond = await opsPerSecond(decisions, concurrency, () => blocking.decide('undeliverable mail', 'Undeliverable Mail', true));
  return { backend, countingPerSecond, blockedPerSecond, decisions, concurrency };
}

async function redisReachable(url: string): Promise<string | undefined> {
  const client = createClient({ url, socket: { connectTimeout: 1000, reconnectStrategy: false } });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.ping();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  } finally {
    if (client.isOpen) await client.quit();
  }
}

export async function benchBackscatter({ decisions = 20000, concurrency = 50 }: { decisions?: number; concurrency?: number } = {}): Promise<BackscatterBenchResult> {
  const memoryStore = new MemoryStore(200_000);
  const memory = await measure('memory', memoryStore, decisions, concurrency);
  await memoryStore.close();

  const url = 'redis://127.0.0.1:6379';
  const prefix = `mwbench:backscatter:${randomBytes(4).toString('hex')}:`;
  const down = await redisReachable(url);
  let redis: ThrottleFigures;
  if (down) {
    redis = { backend: 'redis', countingPerSecond: 0, blockedPerSecond: 0, decisions: 0, concurrency, error: `Redis at ${url} not reachable: ${down}` };
  } else {
    const store = new RedisStore({ backend: 'redis', redisUrl: url, prefix, timeoutMs: 2000, memoryMaxEntries: 10_000 }, silentLogger);
    try {
      redis = await measure('redis', store, decisions, concurrency);
    } finally {
      await store.close();
      const client = createClient({ url });
      await client.connect();
      for await (const batch of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 })) {
        const keys = batch as unknown as string[];
        if (keys.length) await client.del(keys);
      }
      await client.quit();
    }
  }
  return { memory, redis };
}

export function formatBackscatterBench(result: BackscatterBenchResult): string[] {
  return [result.memory, result.redis].map((f) =>
    f.error
      ? `backscatter throttle (${f.backend}): not measured: ${f.error}`
      : `backscatter throttle (${f.backend}): ${f.countingPerSecond.toLocaleString('en')} counting decisions/s, ${f.blockedPerSecond.toLocaleString('en')} blocked-subject decisions/s (${f.decisions} each, ${f.concurrency} concurrent)`,
  );
}

if (require.main === module) {
  benchBackscatter().then(
    (r) => {
      for (const line of formatBackscatterBench(r)) console.log(line);
    },
    (err) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
