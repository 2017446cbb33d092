/**
 * The overflow of the reputation pool (SegmentedPool, lib/state/memory.ts): first events past their group's or
 * block's budget, each group and block sure of a share of it.
 */
import { LruPool, type Entry, type Pool, type SetOptions } from './memory-pool';

/**
 * One group's or block's part of the overflow: the keys of its entries there, oldest first (a Set keeps
 * insertion order; a key that leaves is deleted from it, one that comes back goes last: review of 208cfef,
 * whose list kept a place for a key that had left, at which the key, back, was taken for the oldest).
 */
export class Share {
  readonly keys = new Set<string>();
  constructor(
    readonly name: string,
    readonly limit: number,
    readonly level: Map<string, Share>,
  ) {}
}

/**
 * SegmentedPool's overflow: first events past their group's or block's
 * budget, an LRU of overflowSize entries, each counted toward its group's and
 * block's Share (as it enters, and in lru-cache's dispose hook as it leaves,
 * whatever removes it). Each group is sure of overflowPerGroup entries and
 * each block of overflowPerBlock while others want room, and may hold more
 * while no one does:
 * - a group or block at its bound takes a new first event only in place of
 *   its own oldest, once that one was held OVERFLOW_HOLD_INTERVALS (its sender
 *   had the time to come back): so its senders coming back as first events do
 *   not push out the next ones to come back (review of 5e95922);
 * - one within its bounds takes room there is, else the oldest entry of a
 *   group or block holding more than its bound, else (all within theirs) the
 *   least recently used entry once it was held that long; otherwise the new
 *   first event is not held (as if pushed out at once).
 * Before, the overflow was one pool for all: one network's flood filled it in
 * seconds, and every other network over its budget kept none of its further
 * first events (so promoted none of those senders) while the flood lasted.
 */
export class Overflow extends LruPool implements Pool {
  private readonly groups = new Map<string, Share>();
  private readonly blocks = new Map<string, Share>();
  /** Shares holding more than their bound (taken while there was room): the first to give it back. */
  private readonly over = new Set<Share>();
  /** When makeRoom last purged expired entries, and at most how often it does. */
  private purgedAt = -Infinity;

  constructor(
    max: number,
    private readonly perGroup: number,
    private readonly perBlock: number,
    private readonly holdMs: number,
    private readonly purgeEveryMs: number,
  ) {
    super(max);
  }

  /** Whatever removes an entry (evicted, expired, deleted, cleared) takes it from its shares; an overwrite does not. */
  protected override leave(key: string, entry: Entry): void {
    for (const share of [entry.group, entry.block]) {
      if (!share) continue;
      share.keys.delete(key);
      if (share.keys.size <= share.limit) this.over.delete(share);
      if (share.keys.size === 0) share.level.delete(share.name);
    }
  }

  private enter(share: Share, key: string): void {
    share.keys.add(key);
    if (share.keys.size > share.limit) this.over.add(share);
  }

  /** The share's oldest held entry; expired ones met on the way are pushed out (they are room). */
  private oldest(share: Share): { key: string; born: number } | undefined {
    for (const key of share.keys) {
      if (this.cache.has(key)) return { key, born: this.cache.peek(key)!.born ?? -Infinity };
      this.cache.delete(key); // expired: its dispose takes it from the share (deleting while iterating a Set is safe)
    }
    return undefined;
  }

  private held(born: number, now: number): boolean {
    return now - born >= this.holdMs;
  }

  /** Makes room for a new first event of `group` and `block`, or returns false (see the class). */
  private makeRoom(group: string | undefined, block: string | undefined, now: number): boolean {
    // Expired entries count in size until read or pushed out: when full, they are room (review of 3a963d0). A pass
    // over the overflow, at most once a window (a flood past it is refused write after write).
    if (this.cache.size >= this.cache.max && now - this.purgedAt >= this.purgeEveryMs) {
      this.purgedAt = now;
      this.cache.purgeStale();
    }
    if (this.cache.size < this.cache.max) return true;
    const g = group === undefined ? undefined : this.groups.get(group);
    const b = block === undefined ? undefined : this.blocks.get(block);
    // At its bound: its own oldest, if held long enough. Both checked before either is pushed out.
    const victims: string[] = [];
    for (const share of [g, b]) {
      if (!share || share.keys.size < share.limit) continue;
      if (victims.length && share.keys.has(victims[0]!)) continue; // the group's oldest is its block's too
      const oldest = this.oldest(share);
      if (!oldest || share.keys.size < share.limit) continue; // expired ones made room
      if (!this.held(oldest.born, now)) return false;
      victims.push(oldest.key);
    }
    if (victims.length) {
      for (const key of victims) this.cache.delete(key);
      return true;
    }
    for (const share of this.over) {
      const oldest = this.oldest(share);
      if (oldest) return this.cache.delete(oldest.key);
    }
    // rkeys skips expired entries: the first it yields is the least recently used still held (a set pushes it out).
    for (const k of this.cache.rkeys()) return this.held(this.cache.peek(k)?.born ?? -Infinity, now);
    return true;
  }

  private share(level: Map<string, Share>, name: string | undefined, limit: number): Share | undefined {
    if (name === undefined) return undefined;
    let share = level.get(name);
    if (!share) level.set(name, (share = new Share(name, limit, level)));
    return share;
  }

  /** Holds a new first event of `group` and `block`; false if it is not held. */
  admit(key: string, entry: Entry, group: string | undefined, block: string | undefined, now: number, options: SetOptions = {}): boolean {
    this.cache.delete(key);
    if (!this.makeRoom(group, block, now)) return false;
    // A literal, not a spread and then more fields: V8 keeps this one's fields in the object (measured:
    // a spread of { value } with a field added takes some 200 bytes, this some 60; bench/state-bytes.ts).
    const stored: Entry = { value: entry.value, born: entry.born, group: undefined, block: undefined };
    this.cache.set(key, stored, options);
    // The shares after the set: the entry it pushes out may be the last of this group or block, and its
    // dispose drop the share from the map (review of 208cfef: the new entry then counted toward a share no
    // longer in the map, the group's next opened another, and the first, emptied, dropped that one).
    stored.group = this.share(this.groups, group, this.perGroup);
    stored.block = this.share(this.blocks, block, this.perBlock);
    if (stored.group) this.enter(stored.group, key);
    if (stored.block) this.enter(stored.block, key);
    return true;
  }

  /** A later write of a key held here: it keeps its shares. */
  set(key: string, entry: Entry, options: SetOptions = {}): void {
    const held = this.cache.peek(key, { allowStale: true });
    this.cache.set(key, { value: entry.value, born: entry.born, group: held?.group, block: held?.block }, options);
  }

  override clear(): void {
    super.clear();
    this.groups.clear();
    this.blocks.clear();
    this.over.clear();
    this.purgedAt = -Infinity;
  }
}

