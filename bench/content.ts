/**
 * The Bayes model's store at a size a busy site reaches: how long a load
 * (done every reload_interval inside the MTA) and the daily expiry take, and
 * the longest the event loop was held up meanwhile (mail waits that long),
 * for SQLite (a temporary file) and Redis (127.0.0.1:6379, a key prefix of its
 * own, removed afterwards). The model: TOKENS tokens, 55% of them seen in one
 * message only (the share after training the SpamAssassin corpus), half of
 * those last learnt long ago, so expiry removes about a quarter of the model.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createClient } from 'redis';
import { BayesModel } from '../lib/checks/content/bayes';
import { dayNumber, RedisBayesStore, SqliteBayesStore, type BayesStore, type Deltas } from '../lib/checks/content/store';

const TOKENS = Number(process.env.MAILWARD_BENCH_BAYES_TOKENS ?? 300_000);
const REDIS_URL = 'redis://127.0.0.1:6379';
const DAY = 86_400_000;

export interface StoreFigures {
  backend: 'sqlite' | 'redis';
  tokens: number;
  loadMs: number;
  loadMaxStallMs: number;
  pruneMs: number;
  pruneMaxStallMs: number;
  pruned: number;
  error?: string;
}

export interface ContentBenchResult {
  sqlite: StoreFigures;
  redis: StoreFigures;
}

/** Runs `work` while measuring the longest event-loop delay (ms). */
export async function timed<T>(work: () => Promise<T>): Promise<{ ms: number; maxStallMs: number; result: T }> {
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  histogram.enable();
  // The histogram samples from its first timer turn on: a stall before it would go unseen.
  await new Promise((resolve) => setTimeout(resolve, 5));
  const started = process.hrtime.bigint();
  const result = await work();
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  // One more timer turn, so that a stall at the very end (or work that never yielded) is sampled too.
  await new Promise((resolve) => setTimeout(resolve, 5));
  histogram.disable();
  return { ms, maxStallMs: histogram.max / 1e6, result };
}

function modelDeltas(tokens: number): { recent: Deltas; old: Deltas } {
  const recent: Deltas = new Map([['', [5000, 5000]]]);
  const old: Deltas = new Map();
  for (let i = 0; i < tokens; i++) {
    const token = `t${i.toString(36)}`;
    const once = i % 100 < 55;
    const counts: [number, number] = once ? (i % 2 ? [1, 0] : [0, 1]) : [1 + (i % 7), i % 5];
    // Half of the once-seen tokens were learnt long ago: those are what expiry removes.
    (once && i % 2 === 0 ? old : recent).set(token, counts);
  }
  return { recent, old };
}

async function measure(backend: 'sqlite' | 'redis', open: () => BayesStore, backdate: (store: BayesStore, old: Deltas) => Promise<void>): Promise<StoreFigures> {
  const figures: StoreFigures = { backend, tokens: TOKENS, loadMs: 0, loadMaxStallMs: 0, pruneMs: 0, pruneMaxStallMs: 0, pruned: 0 };
  const store = open();
  try {
    const { recent, old } = modelDeltas(TOKENS);
    await store.save(recent);
    await backdate(store, old);
    const load = await timed(() => store.load(new BayesModel()));
    figures.loadMs = load.ms;
    figures.loadMaxStallMs = load.maxStallMs;
    const prune = await timed(() => store.prune({ olderThanDays: 180, maxCount: 1, seenDays: 365 }));
    figures.pruneMs = prune.ms;
    figures.pruneMaxStallMs = prune.maxStallMs;
    figures.pruned = prune.result.tokens;
  } catch (err) {
    figures.error = (err as Error).message;
  } finally {
    await store.close();
  }
  return figures;
}

export async function benchContent(): Promise<ContentBenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'mw-bench-bayes-'));
  const path = join(dir, 'bayes.sqlite');
  const prefix = `mwbench:bayes:${randomBytes(4).toString('hex')}:`;
  const client = createClient({ url: REDIS_URL });
  try {
    const sqlite = await measure(
      'sqlite',
      () => new SqliteBayesStore(path),
      async (store, old) => {
        await store.save(old);
        // Learnt 200 days ago: rewrite their day (the store dates every learn "today").
        const Database = (await import('better-sqlite3')).default;
        const db = new Database(path);
        const update = db.prepare('UPDATE bayes_tokens_v2 SET last_day = ? WHERE token = ?');
        db.transaction(() => {
          for (const token of old.keys()) update.run(dayNumber(Date.now() - 200 * DAY), token);
        })();
        db.close();
      },
    );
    await client.connect();
    const redis = await measure(
      'redis',
      () => new RedisBayesStore(REDIS_URL, prefix),
      async (store, old) => {
        await store.save(old);
        const day = String(dayNumber(Date.now() - 200 * DAY));
        const tokens = [...old.keys()];
        for (let i = 0; i < tokens.length; i += 5000) {
          await client.hSet(`${(store as RedisBayesStore).prefix}day`, Object.fromEntries(tokens.slice(i, i + 5000).map((t) => [t, day])));
        }
      },
    );
    return { sqlite, redis };
  } finally {
    rmSync(dir, { recursive: true, force: true });
    if (client.isOpen) {
      for await (const keys of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 })) if (keys.length) await client.del(keys as unknown as string[]);
      await client.quit();
    }
  }
}

export function formatContentBench(result: ContentBenchResult): string[] {
  return [result.sqlite, result.redis].map((f) =>
    f.error
      ? `bayes store (${f.backend}): not measured: ${f.error}`
      : `bayes store (${f.backend}, ${f.tokens.toLocaleString('en')} tokens): load ${f.loadMs.toFixed(0)} ms (longest event-loop stall ${f.loadMaxStallMs.toFixed(0)} ms); daily expiry ${f.pruneMs.toFixed(0)} ms, ${f.pruned.toLocaleString('en')} tokens removed (longest stall ${f.pruneMaxStallMs.toFixed(0)} ms)`,
  );
}

if (require.main === module) {
  benchContent().then(
    (r) => {
      for (const line of formatContentBench(r)) console.log(line);
    },
    (err) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
