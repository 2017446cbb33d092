import type Database from 'better-sqlite3';
import { createClient } from 'redis';
import { lua, runScript } from '../../util/lua';
import { openSharedSqlite } from '../../util/sqlite';
import type { BayesModel, Label } from './bayes';
import { redactUrl } from '../../config/reader';
import { BucketCounts, FirstTokens, RecentTokens, type Cut } from './cut';

/**
 * Version of the token vocabulary (lib/checks/content/tokenize.ts). Counts
 * learnt with another tokenizer do not describe these tokens, so each version
 * is stored apart (SQLite tables bayes_tokens_v2/bayes_totals_v2, Redis
 * hashes <prefix>v2:spam/ham/totals): after an upgrade the classifier starts
 * empty and abstains until it has min_learns of each class again; the old
 * counts are left untouched (a downgrade finds them).
 * v1 (unversioned names): stemmed words. v2: white-space words, header names, MIME structure, URL detail.
 */
export const MODEL_VERSION = 2;

/** Changes to persist: token -> [spam delta, ham delta]; the key '' holds the message totals. */
export type Deltas = Map<string, [number, number]>;

/**
 * Where the classifier's counts live. Stores only ever ADD deltas, so several
 * processes (a Haraka cluster, `mailward learn`, other nodes on Redis) can
 * learn into one model without overwriting each other; `load` reads the sum.
 */
export interface BayesStore {
  readonly description: string;
  /** Replaces the model's counts with the stored ones (pending deltas are the caller's). */
  load(model: BayesModel): Promise<void>;
  save(deltas: Deltas): Promise<void>;
  /**
   * Atomically: reads the seen record of message `id`, and unless it already
   * says `label`, takes the message's (unique) tokens out of the class it was
   * learnt as, adds them to `label` (null: forget it) and records the new
   * class. Returns the class it had (null: not seen). Written at once, not
   * with `save`: the record and the counts must never disagree.
   */
  relabel(id: string, tokens: readonly string[], label: Label | null): Promise<Label | null>;
  /**
   * Expiry: removes the tokens seen in at most `maxCount` learnt messages
   * whose last learn is more than `olderThanDays` ago, and with `seenDays`
   * the seen records older than that. Works in batches and yields between
   * them, so a process that also carries mail is not blocked.
   */
  prune(policy: PrunePolicy): Promise<PruneResult>;
  /**
   * The size bound: when more than `maxTokens` tokens are stored, removes the
   * least useful ones (lowest spam + ham count, then the longest not learnt)
   * until `maxTokens` are left. Returns how many went. Tokens seen in several
   * messages never expire by age, so without it a steady feed of new spam
   * would grow the model (held whole in memory) without limit. Like prune,
   * works in batches and yields between them (it runs at start and daily
   * inside the MTA). The cut is placed on the counts read first; a token
   * learnt meanwhile is not kept as such: it goes or stays by its counts when
   * its batch is removed (a new token, count 1 and today, goes whenever the
   * cut reaches the tokens seen twice), or stays when its batch was already
   * passed or the scan missed it. See docs/content.md, "Size bound".
   */
  capTokens(maxTokens: number): Promise<number>;
  /** Messages learnt into the previous (v1) model, when the current one is empty: a reason to retrain. */
  legacyLearns(): Promise<number>;
  close(): Promise<void>;
}

export interface PrunePolicy {
  olderThanDays: number;
  maxCount: number;
  /** Seen records (idempotent learning) older than this many days go too; 0 or absent: kept. */
  seenDays?: number;
  /** After the expiry, at most this many tokens are kept (capTokens); 0 or absent: no bound. */
  maxTokens?: number;
  /** Clock (ms), for tests. */
  now?: number;
}

export interface PruneResult {
  tokens: number;
  seen: number;
  /** Tokens removed by the size bound (policy.maxTokens), when it removed any. */
  evicted?: number;
}

/** Runs the size bound after the expiry, when the policy sets one. */
async function withCap(store: BayesStore, policy: PrunePolicy, result: PruneResult): Promise<PruneResult> {
  if (!policy.maxTokens) return result;
  const evicted = await store.capTokens(policy.maxTokens);
  return evicted ? { ...result, evicted } : result;
}

/** That message `id` was learnt as `label` on `day`: what makes learning it again count once. */
export interface SeenRecord {
  id: string;
  label: Label;
  day: number;
}

/** Days since the epoch: a token's age is kept to the day (one small integer per token). */
export function dayNumber(ms: number): number {
  return Math.floor(ms / 86_400_000);
}

/** Tokens read per page by the SQLite load (a few ms each). */
const LOAD_PAGE = 10_000;
/** Tokens looked at per batch by prune. */
const PRUNE_BATCH = 2000;
/** Tokens per range the SQLite size bound counts in one statement (a few ms each). */
const CAP_PAGE = 5000;
/** Tokens of the last HSCAN batches the Redis size bound checks a batch against for repeats (RecentTokens). */
const CAP_RECENT = 4 * PRUNE_BATCH;
const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

const TOKENS = `bayes_tokens_v${MODEL_VERSION}`;
const TOTALS = `bayes_totals_v${MODEL_VERSION}`;
const SEEN = `bayes_seen_v${MODEL_VERSION}`;

/** The deltas that move one message from class `was` to `label` (either may be null). */
function relabelDeltas(tokens: readonly string[], was: Label | null, label: Label | null): Deltas {
  const ds = (label === 'spam' ? 1 : 0) - (was === 'spam' ? 1 : 0);
  const dh = (label === 'ham' ? 1 : 0) - (was === 'ham' ? 1 : 0);
  const deltas: Deltas = new Map([['', [ds, dh]]]);
  for (const token of tokens) deltas.set(token, [ds, dh]);
  return deltas;
}

/** Pragmas and schema of a model file; an older file gains the columns added since. */
function setUpModelFile(db: Database.Database): void {
  // Each learnt message is its own transaction (relabel): in WAL, NORMAL
  // does not fsync every commit and still never corrupts the file; a power
  // cut may lose the last few learnt messages.
  db.pragma('synchronous = NORMAL');
  // last_day: day of the last learn that added to the token (its age for prune).
  db.exec(`CREATE TABLE IF NOT EXISTS ${TOKENS} (token TEXT PRIMARY KEY, spam INTEGER NOT NULL, ham INTEGER NOT NULL, last_day INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
           CREATE TABLE IF NOT EXISTS ${TOTALS} (id INTEGER PRIMARY KEY CHECK (id = 1), spam INTEGER NOT NULL, ham INTEGER NOT NULL);
           CREATE TABLE IF NOT EXISTS ${SEEN} (id TEXT PRIMARY KEY, class TEXT NOT NULL CHECK (class IN ('spam', 'ham')), learnt_at INTEGER NOT NULL) WITHOUT ROWID;
           CREATE INDEX IF NOT EXISTS ${SEEN}_learnt_at ON ${SEEN} (learnt_at);
           INSERT OR IGNORE INTO ${TOTALS} VALUES (1, 0, 0);`);
  const columns = db.prepare(`PRAGMA table_info(${TOKENS})`).all() as { name: string }[];
  if (!columns.some((c) => c.name === 'last_day')) {
    // A file from before expiry existed: its tokens' age starts counting today.
    db.exec(`ALTER TABLE ${TOKENS} ADD COLUMN last_day INTEGER NOT NULL DEFAULT ${dayNumber(Date.now())}`);
  }
}

/** One SQLite file per node (default): WAL, so readers and the writer do not block each other. */
export class SqliteBayesStore implements BayesStore {
  private db?: Database.Database;

  constructor(
    readonly path: string,
    private readonly busyTimeoutMs = 5000,
  ) {}

  get description(): string {
    return `sqlite ${this.path}`;
  }

  private open(): Database.Database {
    this.db ??= openSharedSqlite(this.path, this.busyTimeoutMs, setUpModelFile);
    return this.db;
  }

  /**
   * Reads the model in pages of LOAD_PAGE tokens, yielding between them: a
   * large model is re-read every reload_interval inside the MTA, and one
   * synchronous read of it would hold up mail. Pages are not one snapshot; a
   * learn landing between two pages is seen whole by the next reload.
   */
  async load(model: BayesModel): Promise<void> {
    const db = this.open();
    const totals = db.prepare(`SELECT spam, ham FROM ${TOTALS} WHERE id = 1`).get() as { spam: number; ham: number };
    const page = db.prepare(`SELECT token, spam, ham FROM ${TOKENS} WHERE token > ? ORDER BY token LIMIT ${LOAD_PAGE}`).raw();
    model.tokens.clear();
    let after = '';
    for (;;) {
      const rows = page.all(after) as [string, number, number][];
      for (const row of rows) model.setCounts(row[0], row[1], row[2]);
      if (rows.length < LOAD_PAGE) break;
      after = rows[rows.length - 1]![0];
      await yieldToEventLoop();
    }
    model.nspam = Math.max(0, totals.spam);
    model.nham = Math.max(0, totals.ham);
  }

  async save(deltas: Deltas): Promise<void> {
    if (!deltas.size) return;
    const db = this.open();
    db.transaction(() => this.apply(db, deltas, dayNumber(Date.now())))();
  }

  /** Every seen record, in pages (for `mailward migrate`: the records go with the counts). */
  *seenRecords(): Generator<SeenRecord[]> {
    const page = this.open().prepare(`SELECT id, class, learnt_at FROM ${SEEN} WHERE id > ? ORDER BY id LIMIT ${LOAD_PAGE}`).raw();
    let after = '';
    for (;;) {
      const rows = page.all(after) as [string, Label, number][];
      if (rows.length) yield rows.map(([id, label, learntAt]) => ({ id, label, day: dayNumber(learntAt) }));
      if (rows.length < LOAD_PAGE) return;
      after = rows[rows.length - 1]![0];
    }
  }

  async relabel(id: string, tokens: readonly string[], label: Label | null): Promise<Label | null> {
    const db = this.open();
    const read = db.prepare(`SELECT class FROM ${SEEN} WHERE id = ?`).pluck();
    const record = db.prepare(`INSERT INTO ${SEEN} (id, class, learnt_at) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET class = excluded.class, learnt_at = excluded.learnt_at`);
    const forget = db.prepare(`DELETE FROM ${SEEN} WHERE id = ?`);
    // IMMEDIATE takes the write lock before the read: another process cannot
    // read the same record between our read and our write.
    return db
      .transaction((): Label | null => {
        const was = (read.get(id) as Label | undefined) ?? null;
        if (was === label) return was;
        const now = Date.now();
        this.apply(db, relabelDeltas(tokens, was, label), dayNumber(now));
        if (label) record.run(id, label, now);
        else forget.run(id);
        return was;
      })
      .immediate();
  }

  /** Adds deltas (inside the caller's transaction); counts never go below zero; a learn (a positive delta) dates the token. */
  private apply(db: Database.Database, deltas: Deltas, day: number): void {
    const upsert = db.prepare(
      // The update adds the delta itself, not excluded.* (already clamped to 0 for a negative delta).
      `INSERT INTO ${TOKENS} (token, spam, ham, last_day) VALUES (@token, max(0, @s), max(0, @h), @day)
       ON CONFLICT(token) DO UPDATE SET spam = max(0, spam + @s), ham = max(0, ham + @h),
         last_day = CASE WHEN @s > 0 OR @h > 0 THEN @day ELSE last_day END`,
    );
    const prune = db.prepare(`DELETE FROM ${TOKENS} WHERE token = ? AND spam = 0 AND ham = 0`);
    const totals = db.prepare(`UPDATE ${TOTALS} SET spam = max(0, spam + ?), ham = max(0, ham + ?) WHERE id = 1`);
    for (const [token, [s, h]] of deltas) {
      if (token === '') {
        totals.run(s, h);
        continue;
      }
      upsert.run({ token, s, h, day });
      if (s < 0 || h < 0) prune.run(token);
    }
  }

  async prune(policy: PrunePolicy): Promise<PruneResult> {
    const tokens = await this.pruneTokens(policy);
    let seen = 0;
    if (policy.seenDays) {
      const db = this.open();
      const before = (policy.now ?? Date.now()) - policy.seenDays * 86_400_000;
      const remove = db.prepare(`DELETE FROM ${SEEN} WHERE id IN (SELECT id FROM ${SEEN} WHERE learnt_at < ? LIMIT ${PRUNE_BATCH})`);
      for (;;) {
        const n = remove.run(before).changes;
        seen += n;
        if (n < PRUNE_BATCH) break;
        await yieldToEventLoop();
      }
    }
    return withCap(this, policy, { tokens, seen });
  }

  /**
   * Counts, buckets (lib/checks/content/cut.ts) and finds the cut token in
   * ranges of CAP_PAGE tokens, yielding between them, then deletes in pages:
   * no statement reads more than one range. One count(*) and one sorted
   * OFFSET query over the table held the event loop for ~0.7 s on 1.2M tokens.
   */
  async capTokens(maxTokens: number): Promise<number> {
    const db = this.open();
    let stored = 0;
    await this.eachTokenRange(CAP_PAGE, (_after, _last, tokens) => void (stored += tokens));
    if (stored <= maxTokens) return 0;
    const buckets = new BucketCounts();
    const count = db.prepare(`SELECT spam + ham, last_day, count(*) FROM ${TOKENS} WHERE token > ? AND token <= ? GROUP BY 1, 2`).raw();
    await this.eachTokenRange(CAP_PAGE, (after, last) => {
      for (const [n, day, tokens] of count.all(after, last) as [number, number, number][]) buckets.add(n, day, tokens);
    });
    const cut = buckets.cut(maxTokens);
    if (!cut) return 0;
    // The last token to go, in (count, last_day, token) order; none found (the bucket has shrunk since it was counted): the whole bucket.
    const token = cut.whole ? undefined : await this.tokenInBucket(cut);
    if (token === undefined) return this.deleteTokensInPages('(spam + ham, last_day) <= (?, ?)', [cut.count, cut.day]);
    return this.deleteTokensInPages('(spam + ham, last_day, token) <= (?, ?, ?)', [cut.count, cut.day, token]);
  }

  /** The `cut.take`-th token (in token order) of the cut bucket, found range by range. */
  private async tokenInBucket(cut: Cut): Promise<string | undefined> {
    const db = this.open();
    const inBucket = `FROM ${TOKENS} WHERE token > ? AND token <= ? AND spam + ham = ? AND last_day = ?`;
    const count = db.prepare(`SELECT count(*) ${inBucket}`).pluck();
    const nth = db.prepare(`SELECT token ${inBucket} ORDER BY token LIMIT 1 OFFSET ?`).pluck();
    // Both statements on one snapshot: another process's learn between them cannot move the n-th token out of this range.
    const inRange = db.transaction((after: string, last: string, before: number): [number, string | undefined] => {
      const here = count.get(after, last, cut.count, cut.day) as number;
      if (before + here < cut.take) return [here, undefined];
      return [here, nth.get(after, last, cut.count, cut.day, cut.take - before - 1) as string | undefined];
    });
    let before = 0;
    let found: string | undefined;
    await this.eachTokenRange(CAP_PAGE, (after, last) => {
      const [here, token] = inRange(after, last, before);
      if (token !== undefined) {
        found = token;
        return true;
      }
      before += here;
    });
    return found;
  }

  /**
   * Deletes the tokens that meet `condition` in keyset pages of PRUNE_BATCH in
   * primary-key order: each page a short transaction, then the event loop runs.
   */
  private async deleteTokensInPages(condition: string, params: unknown[]): Promise<number> {
    const remove = this.open().prepare(`DELETE FROM ${TOKENS} WHERE token > ? AND token <= ? AND ${condition}`);
    let removed = 0;
    await this.eachTokenRange(PRUNE_BATCH, (after, last) => void (removed += remove.run(after, last, ...params).changes));
    return removed;
  }

  /**
   * Walks the tokens in primary-key order in ranges (after, last] of up to
   * `size` tokens, calling `visit` on each (true: stop) and yielding between
   * them, so that a statement on one range is short however large the model.
   * A range is read before `visit` changes it: deleting in it is safe.
   */
  private async eachTokenRange(size: number, visit: (after: string, last: string, tokens: number) => boolean | void): Promise<void> {
    const range = this.open().prepare(`SELECT count(*), max(token) FROM (SELECT token FROM ${TOKENS} WHERE token > ? ORDER BY token LIMIT ${size})`).raw();
    let after = '';
    for (;;) {
      const [tokens, last] = range.get(after) as [number, string | null];
      if (!tokens || last === null) return;
      if (visit(after, last, tokens) === true || tokens < size) return;
      after = last;
      await yieldToEventLoop();
    }
  }

  private async pruneTokens(policy: PrunePolicy): Promise<number> {
    const cutoff = dayNumber(policy.now ?? Date.now()) - policy.olderThanDays;
    return this.deleteTokensInPages('spam + ham <= ? AND last_day < ?', [policy.maxCount, cutoff]);
  }

  async legacyLearns(): Promise<number> {
    const db = this.open();
    const current = db.prepare(`SELECT spam + ham AS n FROM ${TOTALS} WHERE id = 1`).get() as { n: number };
    if (current.n > 0) return 0;
    const old = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'bayes_totals'").get();
    if (!old) return 0;
    const row = db.prepare('SELECT spam + ham AS n FROM bayes_totals WHERE id = 1').get() as { n: number } | undefined;
    return row?.n ?? 0;
  }

  async close(): Promise<void> {
    this.db?.close();
    this.db = undefined;
  }
}

function newClient(url: string, timeoutMs: number) {
  return createClient({ url, disableOfflineQueue: true, socket: { connectTimeout: timeoutMs, reconnectStrategy: false } });
}
type RedisClient = ReturnType<typeof newClient>;

/**
 * RedisBayesStore.relabel as one script, so the seen check and the count
 * changes are atomic across a fleet. KEYS: seen, spam, ham, totals, day.
 * ARGV: id, new class ('' = forget), today's day number, tokens... Returns
 * the old class ('' = none). A seen record is "class:day" ("class" alone
 * before records were dated). A learn dates its tokens (day hash); a token
 * left with no count loses its date too.
 */
const RELABEL_SCRIPT = lua(`
local record = redis.call('HGET', KEYS[1], ARGV[1]) or ''
local was = string.match(record, '^(%a*)')
local label = ARGV[2]
if was == label then return was end
local function add(class, by)
  local key = class == 'spam' and KEYS[2] or KEYS[3]
  local other = class == 'spam' and KEYS[3] or KEYS[2]
  for i = 4, #ARGV do
    if redis.call('HINCRBY', key, ARGV[i], by) <= 0 then
      redis.call('HDEL', key, ARGV[i])
      if redis.call('HEXISTS', other, ARGV[i]) == 0 then redis.call('HDEL', KEYS[5], ARGV[i]) end
    elseif by > 0 then
      redis.call('HSET', KEYS[5], ARGV[i], ARGV[3])
    end
  end
  if redis.call('HINCRBY', KEYS[4], class, by) < 0 then redis.call('HSET', KEYS[4], class, 0) end
end
if was ~= '' then add(was, -1) end
if label ~= '' then
  add(label, 1)
  redis.call('HSET', KEYS[1], ARGV[1], label .. ':' .. ARGV[3])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return was
`);

/**
 * Lua shared by the expiry and the size bound. KEYS: spam, ham, day.
 * countOf: a token's spam + ham count; forget: removes the token from all
 * three, 1 if it was counted (0 for a date without counts).
 */
const TOKEN_LUA = `
local function countOf(token)
  return (tonumber(redis.call('HGET', KEYS[1], token)) or 0) + (tonumber(redis.call('HGET', KEYS[2], token)) or 0)
end
local function forget(token, count)
  redis.call('HDEL', KEYS[1], token)
  redis.call('HDEL', KEYS[2], token)
  redis.call('HDEL', KEYS[3], token)
  if count > 0 then return 1 end
  return 0
end`;

/**
 * RedisBayesStore.prune for one batch, atomic per batch. KEYS: spam, ham, day.
 * ARGV: cutoff day, max count, today, tokens... A token with no date (learnt
 * before tokens were dated) is dated today: its age starts now.
 */
const PRUNE_SCRIPT = lua(`
${TOKEN_LUA}
local removed = 0
for i = 4, #ARGV do
  local token = ARGV[i]
  local day = redis.call('HGET', KEYS[3], token)
  local count = countOf(token)
  if not day then
    if count > 0 then redis.call('HSET', KEYS[3], token, ARGV[3]) end
  elseif tonumber(day) < tonumber(ARGV[1]) and count <= tonumber(ARGV[2]) then
    removed = removed + forget(token, count)
  end
end
return removed
`);

/**
 * Lua shared by the size bound's scripts. KEYS: spam, ham, day, the hash read
 * first. ARGV[1]: today; ARGV[2]: '1' when the tokens come from the hash read
 * second, whose tokens also in the first were taken there: every token once.
 * dayOf: a token's last learn; undated (counted before dating) is today, as
 * the expiry dates it.
 */
const CAP_LUA = `
${TOKEN_LUA}
local function takenBefore(token)
  return ARGV[2] == '1' and redis.call('HEXISTS', KEYS[4], token) == 1
end
local function dayOf(token)
  local day = redis.call('HGET', KEYS[3], token)
  if not day then return tonumber(ARGV[1]) end
  return tonumber(day) or 0
end`;

/**
 * RedisBayesStore.capTokens, counting one batch (CAP_LUA's KEYS and ARGV,
 * tokens from ARGV[3]): returns "count:day", tokens, ... per bucket.
 */
const CAP_COUNT_SCRIPT = lua(`
${CAP_LUA}
local tokens, keys = {}, {}
for i = 3, #ARGV do
  local token = ARGV[i]
  if not takenBefore(token) then
    local key = countOf(token) .. ':' .. dayOf(token)
    if not tokens[key] then
      tokens[key] = 0
      keys[#keys + 1] = key
    end
    tokens[key] = tokens[key] + 1
  end
end
local out = {}
for _, key in ipairs(keys) do
  out[#out + 1] = key
  out[#out + 1] = tokens[key]
end
return out
`);

/**
 * RedisBayesStore.capTokens, removing one batch (CAP_LUA's KEYS and ARGV).
 * ARGV[3], ARGV[4]: the cut's count and day; ARGV[5]: '1' when the cut
 * bucket's tokens go too; tokens from ARGV[6]. Removes the tokens below the
 * cut (by their counts now: one learnt since ranks by its new count, and goes
 * if that is still below the cut); returns how many, then
 * the cut bucket's tokens when they do not all go (for the caller to choose).
 */
const CAP_SCRIPT = lua(`
${CAP_LUA}
local cutCount, cutDay, removed, bucket = tonumber(ARGV[3]), tonumber(ARGV[4]), 0, {}
for i = 6, #ARGV do
  local token = ARGV[i]
  if not takenBefore(token) then
    local count, day = countOf(token), dayOf(token)
    if count < cutCount or (count == cutCount and (day < cutDay or (day == cutDay and ARGV[5] == '1'))) then
      removed = removed + forget(token, count)
    elseif count == cutCount and day == cutDay then
      bucket[#bucket + 1] = token
    end
  end
end
table.insert(bucket, 1, removed)
return bucket
`);

/**
 * Seen-record expiry for one batch. KEYS: seen. ARGV: cutoff day, today,
 * ids... A record without a day (written before records were dated) is
 * dated today.
 */
const PRUNE_SEEN_SCRIPT = lua(`
local removed = 0
for i = 3, #ARGV do
  local record = redis.call('HGET', KEYS[1], ARGV[i])
  if record then
    local class, day = string.match(record, '^(%a+):?(%d*)$')
    if day == nil or day == '' then
      redis.call('HSET', KEYS[1], ARGV[i], (class or record) .. ':' .. ARGV[2])
    elseif tonumber(day) < tonumber(ARGV[1]) then
      redis.call('HDEL', KEYS[1], ARGV[i])
      removed = removed + 1
    end
  end
end
return removed
`);

/**
 * Redis for a fleet: hashes <prefix>v2:spam and <prefix>v2:ham (token -> count),
 * <prefix>v2:day (token -> day of its last learn), <prefix>v2:totals and
 * <prefix>v2:seen (message id -> "class:day"). Deltas are HINCRBY in one MULTI, so
 * nodes add up.
 */
export class RedisBayesStore implements BayesStore {
  private client?: RedisClient;
  private connecting?: Promise<RedisClient>;
  /** The configured prefix plus the model version: <prefix>v2:spam, ... */
  readonly prefix: string;

  constructor(
    readonly url: string,
    readonly basePrefix: string,
    private readonly timeoutMs = 5000,
  ) {
    this.prefix = `${basePrefix}v${MODEL_VERSION}:`;
  }

  get description(): string {
    return `redis ${redactUrl(this.url)} ${this.prefix}*`;
  }

  private async connect(): Promise<RedisClient> {
    if (this.client?.isReady) return this.client;
    this.connecting ??= (async () => {
      const client = newClient(this.url, this.timeoutMs);
      client.on('error', () => {});
      await client.connect();
      this.client = client;
      return client;
    })().finally(() => (this.connecting = undefined));
    return this.connecting!;
  }

  /** Every token's spam and ham counts, read with HSCAN in batches: a big model never blocks Redis with one huge reply. */
  private async tokenCounts(c: Awaited<ReturnType<RedisBayesStore['connect']>>): Promise<Map<string, [number, number]>> {
    const counts = new Map<string, [number, number]>();
    for (const [index, key] of [`${this.prefix}spam`, `${this.prefix}ham`].entries()) {
      for await (const batch of c.hScanIterator(key, { COUNT: 5000 })) {
        for (const { field, value } of batch) {
          const entry = counts.get(field) ?? [0, 0];
          entry[index] = Number(value) || 0;
          counts.set(field, entry);
        }
      }
    }
    return counts;
  }

  async load(model: BayesModel): Promise<void> {
    const c = await this.connect();
    const counts = await this.tokenCounts(c);
    const totals = await c.hGetAll(`${this.prefix}totals`);
    model.tokens.clear();
    for (const [token, [s, h]] of counts) model.setCounts(token, s, h);
    model.nspam = Math.max(0, Number(totals.spam) || 0);
    model.nham = Math.max(0, Number(totals.ham) || 0);
  }

  /**
   * Adds the deltas. With `copy`, records in the same transaction that this
   * batch of a copy is done (`mailward migrate`): a copy cut short goes on
   * from the next batch, and no batch is ever added twice.
   */
  async save(deltas: Deltas, copy?: { source: string; done: number }): Promise<void> {
    if (!deltas.size) return;
    const c = await this.connect();
    const multi = c.multi();
    if (copy) multi.hSet(`${this.prefix}copying`, { source: copy.source, done: String(copy.done) });
    const day = String(dayNumber(Date.now()));
    for (const [token, [s, h]] of deltas) {
      if (token !== '' && (s > 0 || h > 0)) multi.hSet(`${this.prefix}day`, token, day);
      const spamKey = token === '' ? `${this.prefix}totals` : `${this.prefix}spam`;
      const hamKey = token === '' ? `${this.prefix}totals` : `${this.prefix}ham`;
      const spamField = token === '' ? 'spam' : token;
      const hamField = token === '' ? 'ham' : token;
      if (s) multi.hIncrBy(spamKey, spamField, s);
      if (h) multi.hIncrBy(hamKey, hamField, h);
    }
    await multi.exec();
  }

  /** Where a copy into this model (`mailward migrate`) stands: its source and the batches done; null when none is under way. */
  async copyProgress(): Promise<{ source: string; done: number } | null> {
    const fields = await (await this.connect()).hGetAll(`${this.prefix}copying`);
    return fields.source ? { source: fields.source, done: Number(fields.done) || 0 } : null;
  }

  async endCopy(): Promise<void> {
    await (await this.connect()).del(`${this.prefix}copying`);
  }

  /** Adds seen records as they are (`mailward migrate`); a record already here is kept. */
  async importSeen(records: SeenRecord[]): Promise<void> {
    if (!records.length) return;
    const c = await this.connect();
    const multi = c.multi();
    for (const r of records) multi.hSetNX(`${this.prefix}seen`, r.id, `${r.label}:${r.day}`);
    await multi.exec();
  }

  async relabel(id: string, tokens: readonly string[], label: Label | null): Promise<Label | null> {
    const c = await this.connect();
    const p = this.prefix;
    const options = { keys: [`${p}seen`, `${p}spam`, `${p}ham`, `${p}totals`, `${p}day`], arguments: [id, label ?? '', String(dayNumber(Date.now())), ...tokens] };
    const was = await runScript(c, RELABEL_SCRIPT, options);
    return was === 'spam' || was === 'ham' ? was : null;
  }

  async prune(policy: PrunePolicy): Promise<PruneResult> {
    const tokens = await this.pruneTokens(policy);
    let seen = 0;
    if (policy.seenDays) {
      const c = await this.connect();
      const today = dayNumber(policy.now ?? Date.now());
      const head = [String(today - policy.seenDays), String(today)];
      for await (const batch of c.hScanIterator(`${this.prefix}seen`, { COUNT: PRUNE_BATCH })) {
        if (!batch.length) continue;
        const options = { keys: [`${this.prefix}seen`], arguments: [...head, ...batch.map((e) => e.field)] };
        seen += Number(await runScript(c, PRUNE_SEEN_SCRIPT, options)) || 0;
      }
    }
    return withCap(this, policy, { tokens, seen });
  }

  /**
   * Streams the tokens (HSCAN batches, a script per batch) into counts per
   * (count, day) bucket (lib/checks/content/cut.ts), then removes in batches
   * those below the cut; of the cut bucket, the first tokens in token order
   * are kept aside in a bounded heap and removed last. Reading every count
   * and day into memory and sorting them held the event loop 5-7 s on 1.2M
   * tokens, on every node. A token in both hashes is counted once: the larger
   * hash is read first, then the tokens of the smaller one it lacks.
   */
  async capTokens(maxTokens: number): Promise<number> {
    const c = await this.connect();
    const p = this.prefix;
    const [spamSize, hamSize] = [await c.hLen(`${p}spam`), await c.hLen(`${p}ham`)];
    // Each token is in spam, ham or both: within the bound by these sizes alone, nothing to read (the usual case, at every start).
    if (spamSize + hamSize <= maxTokens) return 0;
    const [first, second] = spamSize >= hamSize ? [`${p}spam`, `${p}ham`] : [`${p}ham`, `${p}spam`];
    const buckets = new BucketCounts();
    const count = async (key: string) => {
      await this.eachCapBatch(c, first, key, [], async (options) => {
        const reply = (await runScript(c, CAP_COUNT_SCRIPT, options)) as (string | number)[];
        for (let i = 0; i + 1 < reply.length; i += 2) {
          const [n, day] = String(reply[i]).split(':');
          buckets.add(Number(n) || 0, Number(day) || 0, Number(reply[i + 1]) || 0);
        }
      });
    };
    // The smaller hash's own tokens first: with the larger one's size, the exact number of tokens.
    await count(second);
    if (Math.max(spamSize, hamSize) + buckets.total <= maxTokens) return 0;
    await count(first);
    const cut = buckets.cut(maxTokens);
    if (!cut) return 0;
    const head = [String(cut.count), String(cut.day), cut.whole ? '1' : '0'];
    const chosen = new FirstTokens(cut.whole ? 0 : cut.take);
    let removed = 0;
    const remove = async (options: { keys: string[]; arguments: string[] }) => {
      const [n, ...bucket] = (await runScript(c, CAP_SCRIPT, options)) as [number, ...string[]];
      removed += Number(n) || 0;
      for (const token of bucket) chosen.offer(token);
    };
    await this.eachCapBatch(c, first, first, head, remove);
    await this.eachCapBatch(c, first, second, head, remove);
    // The chosen tokens of the cut bucket: removed if still in it.
    const tie = [String(cut.count), String(cut.day), '1'];
    for (let i = 0; i < chosen.tokens.length; i += PRUNE_BATCH) {
      const options = this.capOptions(first, false, [...tie, ...chosen.tokens.slice(i, i + PRUNE_BATCH)]);
      removed += Number(((await runScript(c, CAP_SCRIPT, options)) as number[])[0]) || 0;
    }
    return removed;
  }

  /** KEYS and ARGV of the size bound's scripts (CAP_LUA). */
  private capOptions(first: string, fromSecond: boolean, args: string[]): { keys: string[]; arguments: string[] } {
    const p = this.prefix;
    return { keys: [`${p}spam`, `${p}ham`, `${p}day`, first], arguments: [String(dayNumber(Date.now())), fromSecond ? '1' : '0', ...args] };
  }

  /**
   * Runs `run` on HSCAN batches of `key`'s tokens (after `head`), `first` being
   * the hash read first; the event loop turns between them. A token the scan
   * repeats (RecentTokens) is left out: counted twice, it made one token more go.
   */
  private async eachCapBatch(
    c: RedisClient,
    first: string,
    key: string,
    head: string[],
    run: (options: { keys: string[]; arguments: string[] }) => Promise<void>,
  ): Promise<void> {
    const recent = new RecentTokens(CAP_RECENT);
    for await (const batch of c.hScanIterator(key, { COUNT: PRUNE_BATCH })) {
      const tokens = recent.fresh(batch.map((e) => e.field));
      if (tokens.length) await run(this.capOptions(first, key !== first, [...head, ...tokens]));
    }
  }

  private async pruneTokens(policy: PrunePolicy): Promise<number> {
    const c = await this.connect();
    const p = this.prefix;
    const today = dayNumber(policy.now ?? Date.now());
    const head = [String(today - policy.olderThanDays), String(policy.maxCount), String(today)];
    let removed = 0;
    // Every counted token is in spam or ham; dates left without counts are in day.
    for (const key of [`${p}spam`, `${p}ham`, `${p}day`]) {
      for await (const batch of c.hScanIterator(key, { COUNT: PRUNE_BATCH })) {
        if (!batch.length) continue;
        const options = { keys: [`${p}spam`, `${p}ham`, `${p}day`], arguments: [...head, ...batch.map((e) => e.field)] };
        removed += Number(await runScript(c, PRUNE_SCRIPT, options)) || 0;
      }
    }
    return removed;
  }

  async legacyLearns(): Promise<number> {
    const c = await this.connect();
    const current = await c.hGetAll(`${this.prefix}totals`);
    if ((Number(current.spam) || 0) + (Number(current.ham) || 0) > 0) return 0;
    const old = await c.hGetAll(`${this.basePrefix}totals`);
    return (Number(old.spam) || 0) + (Number(old.ham) || 0);
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    if (c?.isOpen) await c.quit().catch(() => c.destroy());
  }
}
