/**
 * The Bayes size bound ([bayes] max_tokens, BayesStore.capTokens) on a model
 * past it: the longest the event loop was held up (mail waits that long) and
 * the time taken, for SQLite (a temporary file) and Redis (127.0.0.1:6379, a
 * key prefix of its own, removed afterwards). Baseline, in the same run on the
 * same model: the old way of finding the cut, which held the loop for one
 * piece (SQLite: a count(*) and one sorted OFFSET query over the table;
 * Redis: every count and day read into memory and sorted). The figure to
 * watch is the ratio of the longest stalls.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import Database from 'better-sqlite3';
import { createClient } from 'redis';
import { BayesModel } from '../lib/checks/content/bayes';
import { dayNumber, RedisBayesStore, SqliteBayesStore } from '../lib/checks/content/store';
import { timed } from './content';

const TOKENS = Number(process.env.MAILWARD_BENCH_BOUND_TOKENS ?? 1_200_000);
const OVER = Number(process.env.MAILWARD_BENCH_BOUND_OVER ?? 200_000);
const REDIS_URL = 'redis://127.0.0.1:6379';

export interface BoundFigures {
  backend: 'sqlite' | 'redis';
  tokens: number;
  maxTokens: number;
  /** The old cut: longest event-loop stall and time, ms. */
  baselineStallMs: number;
  baselineMs: number;
  /** capTokens: longest stall, time (ms) and tokens removed. */
  capStallMs: number;
  capMs: number;
  removed: number;
  error?: string;
}

export interface BoundBenchResult {
  sqlite: BoundFigures;
  redis: BoundFigures;
}

interface Token {
  token: string;
  spam: number;
  ham: number;
  day: number;
}

/** The model of bench/content.ts: 55% seen once (half of those 200 days ago), the rest seen 1-11 times over the last 30 days. */
function* modelTokens(n: number): Generator<Token> {
  const today = dayNumber(Date.now());
  for (let i = 0; i < n; i++) {
    const once = i % 100 < 55;
    const [spam, ham] = once ? (i % 2 ? [1, 0] : [0, 1]) : [1 + (i % 7), i % 5];
    yield { token: `t${i.toString(36)}`, spam, ham, day: once && i % 2 === 0 ? today - 200 : today - (i % 30) };
  }
}

/**
 * A full garbage collection: the baseline leaves a million-entry map behind,
 * whose collection would otherwise land in (and be counted as a stall of)
 * the capTokens that runs next.
 */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

function figures(backend: 'sqlite' | 'redis'): BoundFigures {
  return { backend, tokens: TOKENS, maxTokens: TOKENS - OVER, baselineStallMs: 0, baselineMs: 0, capStallMs: 0, capMs: 0, removed: 0 };
}

/** Records the baseline's figures, then runs capTokens on the same model and records its own. */
async function measureCap(f: BoundFigures, baseline: { maxStallMs: number; ms: number }, store: SqliteBayesStore | RedisBayesStore): Promise<void> {
  f.baselineStallMs = baseline.maxStallMs;
  f.baselineMs = baseline.ms;
  collectGarbage();
  const cap = await timed(() => store.capTokens(f.maxTokens));
  f.capStallMs = cap.maxStallMs;
  f.capMs = cap.ms;
  f.removed = cap.result;
}

async function benchSqlite(): Promise<BoundFigures> {
  const f = figures('sqlite');
  const dir = mkdtempSync(join(tmpdir(), 'mw-bench-bound-'));
  const path = join(dir, 'bayes.sqlite');
  const store = new SqliteBayesStore(path);
  try {
    await store.load(new BayesModel()); // creates the tables
    const db = new Database(path);
    const insert = db.prepare('INSERT INTO bayes_tokens_v2 (token, spam, ham, last_day) VALUES (?, ?, ?, ?)');
    db.transaction(() => {
      for (const t of modelTokens(TOKENS)) insert.run(t.token, t.spam, t.ham, t.day);
    })();
    // The old cut, as capTokens ran it before 2026-12-02.
    const baseline = await timed(async () => {
      const excess = (db.prepare('SELECT count(*) FROM bayes_tokens_v2').pluck().get() as number) - f.maxTokens;
      return db.prepare('SELECT spam + ham AS n, last_day AS day, token FROM bayes_tokens_v2 ORDER BY n, day, token LIMIT 1 OFFSET ?').get(excess - 1);
    });
    db.close();
    await measureCap(f, baseline, store);
  } catch (err) {
    f.error = (err as Error).message;
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return f;
}

async function benchRedis(): Promise<BoundFigures> {
  const f = figures('redis');
  const store = new RedisBayesStore(REDIS_URL, `mwbench:bound:${randomBytes(4).toString('hex')}:`);
  const p = store.prefix;
  const client = createClient({ url: REDIS_URL });
  try {
    await client.connect();
    let part: Token[] = [];
    const flush = async () => {
      const spam = part.filter((t) => t.spam);
      const ham = part.filter((t) => t.ham);
      if (spam.length) await client.hSet(`${p}spam`, Object.fromEntries(spam.map((t) => [t.token, String(t.spam)])));
      if (ham.length) await client.hSet(`${p}ham`, Object.fromEntries(ham.map((t) => [t.token, String(t.ham)])));
      await client.hSet(`${p}day`, Object.fromEntries(part.map((t) => [t.token, String(t.day)])));
      part = [];
    };
    for (const t of modelTokens(TOKENS)) {
      part.push(t);
      if (part.length === 5000) await flush();
    }
    if (part.length) await flush();
    // The old cut, as capTokens ran it before 2026-12-02: every count and day read, then sorted.
    const baseline = await timed(async () => {
      const counts = new Map<string, [number, number]>();
      for (const [index, key] of [`${p}spam`, `${p}ham`].entries()) {
        for await (const batch of client.hScanIterator(key, { COUNT: 5000 })) {
          for (const { field, value } of batch) {
            const entry = counts.get(field) ?? [0, 0];
            entry[index] = Number(value) || 0;
            counts.set(field, entry);
          }
        }
      }
      const days = new Map<string, number>();
      for await (const batch of client.hScanIterator(`${p}day`, { COUNT: 5000 })) {
        for (const { field, value } of batch) if (counts.has(field)) days.set(field, Number(value) || 0);
      }
      const today = dayNumber(Date.now());
      return [...counts]
        .map(([token, [s, h]]) => ({ token, n: Math.max(0, s) + Math.max(0, h), day: days.get(token) ?? today }))
        .sort((a, b) => a.n - b.n || a.day - b.day || (a.token < b.token ? -1 : a.token > b.token ? 1 : 0))
        .slice(0, counts.size - f.maxTokens).length;
    });
    await measureCap(f, baseline, store);
  } catch (err) {
    f.error = (err as Error).message;
  } finally {
    await store.close();
    if (client.isOpen) {
      for await (const keys of client.scanIterator({ MATCH: `${p}*`, COUNT: 500 })) if (keys.length) await client.del(keys as unknown as string[]);
      await client.quit();
    }
  }
  return f;
}

export async function benchBound(): Promise<BoundBenchResult> {
  return { sqlite: await benchSqlite(), redis: await benchRedis() };
}

export function formatBoundBench(result: BoundBenchResult): string[] {
  const ms = (n: number) => `${n.toFixed(0)} ms`;
  return [result.sqlite, result.redis].map((f) =>
    f.error
      ? `bayes size bound (${f.backend}): not measured: ${f.error}`
      : `bayes size bound (${f.backend}, ${f.tokens.toLocaleString('en')} tokens, max_tokens ${f.maxTokens.toLocaleString('en')}): ` +
        `capTokens ${ms(f.capMs)}, ${f.removed.toLocaleString('en')} removed, longest event-loop stall ${ms(f.capStallMs)}; ` +
        `old cut (baseline, same model) longest stall ${ms(f.baselineStallMs)} in ${ms(f.baselineMs)}; ` +
        `stall ratio new/old ${(f.capStallMs / f.baselineStallMs).toFixed(3)}`,
  );
}

if (require.main === module) {
  benchBound().then(
    (r) => {
      for (const line of formatBoundBench(r)) console.log(line);
    },
    (err) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
