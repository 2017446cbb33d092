import { LRUCache } from 'lru-cache';
import { Overflow } from './memory-overflow';
import { lru, LruPool, type Entry, type Pool, type SetOptions, type Value } from './memory-pool';
import type { CountMark, CountOnceResult, StateStore, WriteHints } from './types';

/** A key written again this long after its first write has a history: see SegmentedPool. */
export const PROMOTE_AFTER_MS = 60_000;

/**
 * Kept entries one group (one IPv6 /48, IPv4 /24 or organisation) may hold in
 * a segment of `maxEachSegment`: a hundredth of it, at least 32 (2,000 with
 * the default memory_max_entries: a large provider's /48, Microsoft 365's
 * 2a01:111:f403::/48, sends from thousands of addresses). Filling the kept
 * segment so takes a hundred groups, and (for addresses) twenty blocks.
 */
export function keptPerGroup(maxEachSegment: number): number {
  return Math.max(32, Math.ceil(maxEachSegment / 100));
}

/**
 * Kept entries one block (an IPv6 /32, an IPv4 /16: what one holder of many
 * networks has) may hold: five groups' shares, a twentieth of the segment
 * (10,000 by default). A /40 has 256 /48s, each with a share of its own.
 */
export function keptPerBlock(maxEachSegment: number): number {
  return 5 * keptPerGroup(maxEachSegment);
}

/**
 * SegmentedPool's `overflow`: first events past their group's or block's
 * budget, a twentieth of the segment (one block's share; 10,000 by default).
 * Each group and block is sure of a part of it: overflowPerGroup, overflowPerBlock.
 */
export function overflowSize(maxEachSegment: number): number {
  return keptPerBlock(maxEachSegment);
}

/** Overflow entries one group is sure of while others want room: an eighth of it (1,250 by default). */
export function overflowPerGroup(maxEachSegment: number): number {
  return Math.ceil(overflowSize(maxEachSegment) / 8);
}

/** Overflow entries one block is sure of while others want room: a quarter of it (2,500 by default). */
export function overflowPerBlock(maxEachSegment: number): number {
  return Math.ceil(overflowSize(maxEachSegment) / 4);
}

/**
 * One level of grouping: each group's keys, least recently written first, in
 * two lists, those without evidence and those with (a Set keeps insertion
 * order, so the oldest of either is its first: O(1)).
 */
class GroupLevel {
  private readonly groupOf = new Map<string, string>();
  private readonly members = new Map<string, { plain: Set<string>; evidence: Set<string> }>();

  constructor(private readonly limit: number) {}

  groupOfKey(key: string): string | undefined {
    return this.groupOf.get(key);
  }

  size(group: string): number {
    const m = this.members.get(group);
    return m ? m.plain.size + m.evidence.size : 0;
  }

  /** A full group takes a key without evidence only in place of another without: evidence goes last. */
  admits(group: string, evidence: boolean): boolean {
    return evidence || this.size(group) < this.limit || (this.members.get(group)?.plain.size ?? 0) > 0;
  }

  /** The key a new one of `group` pushes out: none while the group has room, else its oldest without evidence, else its oldest. */
  victim(group: string): string | undefined {
    if (this.size(group) < this.limit) return undefined;
    const m = this.members.get(group)!;
    return (m.plain.size ? m.plain : m.evidence).values().next().value;
  }

  add(key: string, group: string, evidence: boolean): void {
    let m = this.members.get(group);
    if (!m) this.members.set(group, (m = { plain: new Set(), evidence: new Set() }));
    (evidence ? m.evidence : m.plain).add(key);
    this.groupOf.set(key, group);
  }

  remove(key: string): void {
    const group = this.groupOf.get(key);
    if (group === undefined) return;
    this.groupOf.delete(key);
    const m = this.members.get(group)!;
    m.plain.delete(key);
    m.evidence.delete(key);
    if (!m.plain.size && !m.evidence.size) this.members.delete(group);
  }

  clear(): void {
    this.groupOf.clear();
    this.members.clear();
  }
}

/**
 * An LRU in which the keys of one group hold at most `maxPerGroup` entries,
 * and those of one block (a looser group: the writer nests groups in blocks)
 * at most `maxPerBlock`. A key of a full group or block pushes out one of its
 * own: the least recently written key without evidence (never written with
 * `keep`), and only if there is none the least recently written with; a key
 * without evidence is not held at all where there is none to push out (set
 * returns false). So evidence is pushed out only by newer evidence of its own
 * group or block, or by the LRU when the whole pool is full. Keys written
 * without a group are bounded by the LRU alone. A key keeps the group and
 * block it was first written with, and its evidence, while it is held (a later
 * write without them, e.g. hashSet, does not change them).
 */
export class GroupBoundedLru extends LruPool implements Pool {
  private readonly groups: GroupLevel;
  private readonly blocks: GroupLevel;
  /** Held keys written with `keep`. */
  private readonly evidence = new Set<string>();

  constructor(max: number, maxPerGroup: number, maxPerBlock = Infinity) {
    super(max);
    this.groups = new GroupLevel(maxPerGroup);
    this.blocks = new GroupLevel(maxPerBlock);
  }

  /** Whatever removes a key (evicted, expired, deleted, cleared) takes it out of its group; an overwrite does not (join calls it too). */
  protected override leave(key: string): void {
    this.groups.remove(key);
    this.blocks.remove(key);
    this.evidence.delete(key);
  }

  /**
   * Makes `key` the most recently written of its group and block, pushing out
   * others of them while they are full; false (and the key not held) where
   * the key, without evidence, would have to push out evidence.
   */
  private join(key: string, group: string | undefined, block: string | undefined, evidence: boolean): boolean {
    this.leave(key);
    const levels = [
      [this.groups, group],
      [this.blocks, block],
    ] as const;
    // Checked for both levels before pushing anyone out: a refused key costs no one their entry.
    if (!levels.every(([level, g]) => g === undefined || level.admits(g, evidence))) return false;
    for (const [level, g] of levels) {
      if (g === undefined) continue;
      for (let victim = level.victim(g); victim !== undefined; victim = level.victim(g)) {
        if (!this.cache.delete(victim)) this.leave(victim);
      }
    }
    if (group !== undefined) this.groups.add(key, group, evidence);
    if (block !== undefined) this.blocks.add(key, block, evidence);
    if (evidence) this.evidence.add(key);
    return true;
  }

  /** Keys of `group` held (for tests and diagnostics). */
  groupSize(group: string): number {
    return this.groups.size(group);
  }

  /** Keys of `block` held (for tests and diagnostics). */
  blockSize(block: string): number {
    return this.blocks.size(block);
  }

  /** Holds the entry, or returns false: its key, without evidence, found its group or block full of evidence. */
  set(key: string, entry: Entry, options: SetOptions = {}): boolean {
    const { group = this.groups.groupOfKey(key), block = this.blocks.groupOfKey(key), keep, ...lruOptions } = options;
    if (!this.join(key, group, block, keep === true || this.evidence.has(key))) {
      this.cache.delete(key);
      return false;
    }
    this.cache.set(key, entry, lruOptions);
    return true;
  }

  override clear(): void {
    super.clear();
    this.groups.clear();
    this.blocks.clear();
    this.evidence.clear();
  }
}

export interface SegmentedPoolOptions {
  promoteAfterMs?: number;
  clock?: () => number;
}

/**
 * How long (in promotion intervals) the overflow holds a first event before a
 * newer one may push it out: long enough for its sender to come back.
 */
const OVERFLOW_HOLD_INTERVALS = 2;

/** Groups and blocks whose first events FirstEventBudget counts (the most recently active; a few hundred kB). */
const BUDGETED_GROUPS = 4096;

/**
 * How many new keys (first events) each group and each block may put into
 * SegmentedPool's `once` per window: as many as it may keep (keptPerGroup,
 * keptPerBlock). Counted per group, not per key: a bounded map of the most
 * recently active groups and blocks, each a window start and a count. A group
 * the map forgot starts a new window (only a group idle longer than the
 * busiest 4,096 are active is forgotten, and a flooding one never is).
 */
class FirstEventBudget {
  private readonly windows = new LRUCache<string, { start: number; count: number }>({ max: BUDGETED_GROUPS });

  constructor(
    private readonly perGroup: number,
    private readonly perBlock: number,
    private readonly windowMs: number,
  ) {}

  private left(name: string, limit: number, now: number): boolean {
    const w = this.windows.get(name);
    return !w || now - w.start >= this.windowMs || w.count < limit;
  }

  private count(name: string, now: number): void {
    const w = this.windows.get(name);
    if (!w || now - w.start >= this.windowMs) this.windows.set(name, { start: now, count: 1 });
    else w.count++;
  }

  /** True (and counted) while neither the key's group nor its block has used its budget this window; keys without either always. */
  admit(group: string | undefined, block: string | undefined, now: number): boolean {
    // Both checked before either is counted: a refused key costs its group nothing.
    if (group !== undefined && !this.left(`g:${group}`, this.perGroup, now)) return false;
    if (block !== undefined && !this.left(`b:${block}`, this.perBlock, now)) return false;
    if (group !== undefined) this.count(`g:${group}`, now);
    if (block !== undefined) this.count(`b:${block}`, now);
    return true;
  }

  clear(): void {
    this.windows.clear();
  }
}

/**
 * A pool for keys of which most are written once and a few again and again
 * (learnt reputation: one verdict from each of a botnet's fresh IPv6
 * addresses, and repeated events for the senders worth remembering). A key
 * starts in `once`; a write `promoteAfterMs` or more after its first, or one
 * marked `keep` (a trap hit, a complaint), moves it to `again`. A flood of
 * fresh keys then pushes out only other keys without a history, never an
 * entity seen over time (the segmented LRU, or "2Q", of database buffer
 * caches). Not on a second write alone: a flooding client makes two in one
 * session (two unknown recipients, a verdict and an unknown recipient).
 *
 * Promotion can be earned in bulk too: thousands of fresh addresses of one
 * IPv6 /48, each hitting a trap once or coming back after a minute, filled
 * `again` and pushed out a regular sender's history and other trap hitters.
 * So in `again` each group (the writer names it: an IPv6 /48, an IPv4 /24, an
 * organisational domain) holds at most keptPerGroup entries and each block
 * (an IPv6 /32, an IPv4 /16) keptPerBlock, and a flood pushes out its own
 * group's or block's oldest, which keeps its newest (still penalised). There
 * entries without evidence go first: a large provider's many ordinary senders
 * (one /48) do not push out one of its tenants' trap hits. A key without
 * evidence that its full group (all evidence) does not take stays in `once`.
 *
 * And `once` itself was one LRU: a flood of fresh addresses of one /48 pushed
 * out every other sender's first event, so a new regular sender coming back
 * after a minute found none and was never promoted while the flood lasted. A
 * share of `once` per group does not do (review): on a busy node `once` is
 * full for good, so the share binds for good, and a provider's /48 with more
 * new senders a minute than its share cycled through them and promoted none.
 * So a group (block) may put at most keptPerGroup (keptPerBlock) first events
 * into `once` per promotion interval (FirstEventBudget); what it puts there
 * nothing of its own pushes out, so those that come back are promoted. Its
 * further first events go to `overflow` (Overflow), where each group and
 * block is sure of a share while others want room and holds each first event
 * OVERFLOW_HOLD_INTERVALS before one of its own may push it out: a flood
 * pushes out only older first events of its own that had the time to come
 * back (or, while others want room, those it holds past its share), and those
 * it holds are promoted and penalised as before. Keys without a group or
 * block are not counted (as before). No bookkeeping per key in the segments;
 * in the overflow, its shares and its key in theirs.
 *
 * A key is held in one segment: written, any expired copy of it in the others
 * goes (lru-cache counts one in size until it is read or pushed out).
 */
export class SegmentedPool implements Pool {
  private readonly once: Pool;
  private readonly overflow: Overflow;
  private readonly again: GroupBoundedLru;
  private readonly budget: FirstEventBudget;

  private readonly promoteAfterMs: number;
  /** Time of writes, for promotion (injected by tests; lru-cache keeps its own clock for TTLs). */
  private readonly clock: () => number;

  constructor(maxEachSegment: number, options: SegmentedPoolOptions = {}) {
    this.promoteAfterMs = options.promoteAfterMs ?? PROMOTE_AFTER_MS;
    this.clock = options.clock ?? Date.now;
    this.once = lru(maxEachSegment);
    // A window of at least a second: with promoteAfterMs = 0 (tests) every write is a window of its own otherwise.
    const windowMs = Math.max(this.promoteAfterMs, 1000);
    this.overflow = new Overflow(overflowSize(maxEachSegment), overflowPerGroup(maxEachSegment), overflowPerBlock(maxEachSegment), OVERFLOW_HOLD_INTERVALS * this.promoteAfterMs, windowMs);
    this.again = new GroupBoundedLru(maxEachSegment, keptPerGroup(maxEachSegment), keptPerBlock(maxEachSegment));
    this.budget = new FirstEventBudget(keptPerGroup(maxEachSegment), keptPerBlock(maxEachSegment), windowMs);
  }

  private holder(key: string): Pool | undefined {
    return this.again.has(key) ? this.again : this.once.has(key) ? this.once : this.overflow.has(key) ? this.overflow : undefined;
  }

  get(key: string): Entry | undefined {
    return this.holder(key)?.get(key);
  }

  set(key: string, entry: Entry, options: SetOptions = {}): this {
    const { keep, group, block, ...lruOptions } = options;
    const now = this.clock();
    const probation = this.once.has(key) ? this.once : this.overflow.has(key) ? this.overflow : undefined;
    const born = probation?.get(key)?.born;
    const kept = this.again.has(key) || keep || (born !== undefined && now - born >= this.promoteAfterMs);
    // Wherever a key goes, an expired copy of it in another segment goes too: lru-cache counts one in its size
    // until it is read or pushed out, so a key whose `once` entry expired, written again into the overflow,
    // was counted twice.
    if (kept && this.again.set(key, entry, { ...lruOptions, keep, group, block })) {
      this.once.delete(key);
      this.overflow.delete(key);
      return this;
    }
    // Not kept (or not taken): an entry expired in `again` is still held there until it is read or pushed out.
    this.again.delete(key);
    // A later event stays where its first went; a first event goes to `once` within its group's and block's budget, past it to `overflow`.
    if (probation) {
      probation.set(key, { value: entry.value, born }, lruOptions);
      return this;
    }
    this.once.delete(key);
    this.overflow.delete(key);
    // Literals, not a spread and then a field: V8 keeps a literal's fields in the object (216 bytes
    // against 56 measured for the spread form; bench/state-bytes.ts), and `once` holds 200,000 of them.
    if (this.budget.admit(group, block, now)) this.once.set(key, { value: entry.value, born: now }, lruOptions);
    else this.overflow.admit(key, { value: entry.value, born: now }, group, block, now, lruOptions);
    return this;
  }

  delete(key: string): boolean {
    const a = this.again.delete(key);
    const o = this.once.delete(key);
    const f = this.overflow.delete(key);
    return a || o || f;
  }

  has(key: string): boolean {
    return this.holder(key) !== undefined;
  }

  getRemainingTTL(key: string): number {
    return this.holder(key)?.getRemainingTTL(key) ?? 0;
  }

  *keys(): Iterable<string> {
    yield* this.again.keys();
    yield* this.once.keys();
    yield* this.overflow.keys();
  }

  get size(): number {
    return this.again.size + this.once.size + this.overflow.size;
  }

  clear(): void {
    this.again.clear();
    this.once.clear();
    this.overflow.clear();
    this.budget.clear();
  }
}

/**
 * Keys of short-lived counters whose number the senders decide: one per
 * distinct subject (the backscatter throttle), per client IP (directory
 * harvest), per content fingerprint band and hour (bulk). They live minutes
 * to hours and are worth little one by one.
 */
export const COUNTER_PREFIXES = ['bs:cnt:', 'harvest:', 'content:bulk:', 'ob:bulk:'] as const;

export function isCounterKey(key: string): boolean {
  return COUNTER_PREFIXES.some((p) => key.startsWith(p));
}

/**
 * Keys of learnt reputation (rep:ip:, rep:net:, rep:dom:, rep:org:): one per
 * client IP, network and sender domain with an event, so their number too is
 * the senders' to decide (a sender with many IPv6 addresses makes as many).
 */
export const REPUTATION_PREFIX = 'rep:';

export function isReputationKey(key: string): boolean {
  return key.startsWith(REPUTATION_PREFIX);
}

/**
 * A learnt-reputation field of a spamtrap hit or a complaint (learned.ts
 * names fields `<start>.<horizon>:<kind>`): rare, and the evidence most worth
 * keeping, so its entity is kept from its first such event (SegmentedPool).
 */
const EVIDENCE_FIELD = /:(?:trap|complaint)$/;

/**
 * In-process state for a single node: bounded, with per-key expiry.
 *
 * Three least-recently-used pools, each of `maxEntries`: one for the counters
 * above, one for learnt reputation, one for everything else (the Message-IDs
 * of our relayed mail, suspensions and outbound statistics, subject blocks,
 * used release stamps, run-time lists). In one pool, a flood of fresh subjects
 * from outside (one counter key each) pushed out those long-lived records: our
 * users' genuine bounces turned unverified and a spammer's bad reputation was
 * forgotten. With reputation among the records, a flood of fresh client IPs
 * (one rep:ip: key each) pushed out a suspension, which so lifted itself, and
 * the Message-IDs complaints are attributed by. Now each kind of key can only
 * push out its own kind. Within learnt reputation, fresh addresses (IPv6 gives
 * a sender as many as it likes) push out only entities seen once, and those
 * that earn their keep push out only their own network's, and evidence last:
 * see SegmentedPool. Worst case: 4.05 x maxEntries entries (the reputation
 * pool has two segments and an overflow of a twentieth), for each kept one a
 * few slots of bookkeeping (its group, block and evidence: GroupBoundedLru),
 * for each overflow entry its shares and its key in theirs (Overflow),
 * and a window for each of the 4,096 most active groups (FirstEventBudget).
 */
export class MemoryStore implements StateStore {
  readonly backend = 'memory' as const;
  readonly degraded = false;
  private readonly records: Pool;
  private readonly reputation: Pool;
  private readonly counters: Pool;

  constructor(maxEntries = 100_000, options: SegmentedPoolOptions = {}) {
    this.records = lru(maxEntries);
    this.reputation = new SegmentedPool(maxEntries, options);
    this.counters = lru(maxEntries);
  }

  private pool(key: string): Pool {
    return isCounterKey(key) ? this.counters : isReputationKey(key) ? this.reputation : this.records;
  }

  /** Entries held, per pool (for tests and diagnostics). */
  get size(): { records: number; reputation: number; counters: number } {
    return { records: this.records.size, reputation: this.reputation.size, counters: this.counters.size };
  }

  private put(key: string, value: Value, ttlSeconds?: number, keepTtl = false): void {
    const cache = this.pool(key);
    if (keepTtl && !ttlSeconds) {
      const remaining = cache.getRemainingTTL(key);
      const ttl = Number.isFinite(remaining) && remaining > 0 ? remaining : undefined;
      cache.set(key, { value }, ttl ? { ttl } : {});
      return;
    }
    cache.set(key, { value }, ttlSeconds ? { ttl: ttlSeconds * 1000 } : {});
  }

  /** put for counters: extends the key's expiry to ttlSeconds, never shortens it (as RedisStore does for a fleet). */
  private putExtending(key: string, value: Value, ttlSeconds: number, keep = false, hints: WriteHints = {}): void {
    const remaining = this.pool(key).getRemainingTTL(key);
    const wanted = ttlSeconds * 1000;
    const ttl = Number.isFinite(remaining) && remaining > wanted ? remaining : wanted;
    const { group, block } = hints;
    this.pool(key).set(key, { value }, { ...(ttl > 0 ? { ttl } : {}), ...(keep ? { keep } : {}), ...(group !== undefined ? { group } : {}), ...(block !== undefined ? { block } : {}) });
  }

  private read(key: string): Value | undefined {
    return this.pool(key).get(key)?.value;
  }

  async get(key: string): Promise<string | null> {
    const v = this.read(key);
    return typeof v === 'string' ? v : null;
  }

  async set(key: string, value: string, ttlSeconds?: number): Promise<void> {
    this.put(key, value, ttlSeconds);
  }

  async del(key: string): Promise<void> {
    this.pool(key).delete(key);
  }

  async setIfAbsent(key: string, value: string, ttlSeconds: number): Promise<boolean> {
    if (!(ttlSeconds > 0)) throw new Error('setIfAbsent needs an expiry');
    if (this.read(key) !== undefined) return false;
    this.put(key, value, ttlSeconds);
    return true;
  }

  async incrBy(key: string, by: number, ttlSeconds: number): Promise<number> {
    return this.addToCounter(key, by, ttlSeconds);
  }

  /** In process, nothing to fall back from; checked and written without an await, so no other operation comes between. */
  async countOnceShared(marks: CountMark[], marksTtlSeconds: number, key: string, fields: Record<string, number>, ttlSeconds: number): Promise<CountOnceResult> {
    const atLimit = marks.findIndex((m) => this.counterValue(m.key) >= m.limit);
    if (atLimit >= 0) return { counted: false, atLimit };
    this.addToHash(key, fields, ttlSeconds);
    for (const m of marks) this.addToCounter(m.key, 1, marksTtlSeconds);
    return { counted: true };
  }

  private counterValue(key: string): number {
    const current = Number(this.read(key) ?? 0);
    return Number.isFinite(current) ? current : 0;
  }

  private addToCounter(key: string, by: number, ttlSeconds: number): number {
    const next = this.counterValue(key) + by;
    this.putExtending(key, String(next), ttlSeconds);
    return next;
  }

  async hashIncrBy(key: string, fields: Record<string, number>, ttlSeconds: number, hints: WriteHints = {}): Promise<void> {
    this.addToHash(key, fields, ttlSeconds, hints);
  }

  private addToHash(key: string, fields: Record<string, number>, ttlSeconds: number, hints: WriteHints = {}): void {
    const existing = this.read(key);
    const hash = existing instanceof Map ? existing : new Map<string, string>();
    for (const [field, by] of Object.entries(fields)) hash.set(field, String(Number(hash.get(field) ?? 0) + by));
    const reputation = isReputationKey(key);
    const evidence = reputation && Object.keys(fields).some((f) => EVIDENCE_FIELD.test(f));
    this.putExtending(key, hash, ttlSeconds, evidence, reputation ? hints : {});
  }

  async hashGetAll(key: string): Promise<Record<string, string>> {
    const v = this.read(key);
    return v instanceof Map ? Object.fromEntries(v) : {};
  }

  async hashSet(key: string, fields: Record<string, string>, ttlSeconds?: number): Promise<void> {
    const existing = this.read(key);
    const hash = existing instanceof Map ? existing : new Map<string, string>();
    for (const [field, value] of Object.entries(fields)) hash.set(field, value);
    this.put(key, hash, ttlSeconds, true);
  }

  async hashDel(key: string, fields: string[]): Promise<void> {
    const existing = this.read(key);
    if (!(existing instanceof Map)) return;
    for (const field of fields) existing.delete(field);
    if (!existing.size) this.pool(key).delete(key);
  }

  async mget(keys: string[]): Promise<(string | null)[]> {
    return keys.map((k) => {
      const v = this.read(k);
      return typeof v === 'string' ? v : null;
    });
  }

  async setAdd(key: string, members: string[]): Promise<void> {
    const existing = this.read(key);
    const set = existing instanceof Set ? existing : new Set<string>();
    for (const m of members) set.add(m);
    this.put(key, set, undefined, true);
  }

  async setRemove(key: string, members: string[]): Promise<void> {
    const existing = this.read(key);
    if (!(existing instanceof Set)) return;
    for (const m of members) existing.delete(m);
  }

  async setMembers(key: string): Promise<string[]> {
    const v = this.read(key);
    return v instanceof Set ? [...v] : [];
  }
  setMembersShared(key: string): Promise<string[]> {
    return this.setMembers(key);
  }

  getShared(key: string): Promise<string | null> {
    return this.get(key);
  }

  async keys(prefix: string): Promise<string[]> {
    const found: string[] = [];
    for (const cache of [this.records, this.reputation, this.counters]) {
      for (const k of cache.keys()) if (k.startsWith(prefix) && cache.has(k)) found.push(k);
    }
    return found;
  }

  async close(): Promise<void> {
    this.records.clear();
    this.reputation.clear();
    this.counters.clear();
  }
}
