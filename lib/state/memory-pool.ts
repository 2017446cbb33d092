/**
 * What the in-process store's pools (lib/state/memory.ts, memory-overflow.ts) share: the entry they hold, the
 * options of a write, the part of LRUCache's interface the store uses, and LruPool, the base of the pools that keep
 * bookkeeping of their own beside one LRUCache.
 */
import { LRUCache } from 'lru-cache';
import type { Share } from './memory-overflow';

export type Value = string | Map<string, string> | Set<string>;
/** `born`: when a probation entry was first written; `group`, `block`: whose share of the overflow it counts toward. */
export type Entry = { value: Value; born?: number; group?: Share; block?: Share };
/**
 * `keep`: the write is evidence worth keeping (a trap hit, a complaint):
 * SegmentedPool keeps its key at once, GroupBoundedLru pushes it out last.
 * `group`, `block`: whom the key is about (GroupBoundedLru). Plain pools ignore all three.
 */
export type SetOptions = { ttl?: number; keep?: boolean; group?: string; block?: string };

/** What the store needs of a pool: the part of LRUCache's interface it uses. */
export interface Pool {
  get(key: string): Entry | undefined;
  set(key: string, entry: Entry, options?: SetOptions): unknown;
  delete(key: string): boolean;
  has(key: string): boolean;
  getRemainingTTL(key: string): number;
  keys(): Iterable<string>;
  readonly size: number;
  clear(): void;
}

export const lru = (max: number): Pool => new LRUCache<string, Entry>({ max });

/**
 * A pool of at most `max` entries in one LRUCache, with bookkeeping of its own per key (GroupBoundedLru's groups,
 * Overflow's shares): reads and deletes go to the cache, each subclass writes by its own rules, and whatever
 * removes an entry (evicted, expired, deleted, cleared) is passed to `leave`; an overwrite is not.
 */
export abstract class LruPool {
  protected readonly cache: LRUCache<string, Entry>;

  constructor(max: number) {
    this.cache = new LRUCache<string, Entry>({ max, dispose: (entry, key, reason) => reason !== 'set' && this.leave(key, entry) });
  }

  /** Takes a key the cache no longer holds out of the bookkeeping. */
  protected abstract leave(key: string, entry: Entry): void;

  get(key: string): Entry | undefined {
    return this.cache.get(key);
  }

  delete(key: string): boolean {
    return this.cache.delete(key);
  }

  has(key: string): boolean {
    return this.cache.has(key);
  }

  getRemainingTTL(key: string): number {
    return this.cache.getRemainingTTL(key);
  }

  keys(): Iterable<string> {
    return this.cache.keys();
  }

  get size(): number {
    return this.cache.size;
  }

  /** Empties the cache (its dispose takes each entry out of the bookkeeping); subclasses then clear the rest. */
  clear(): void {
    this.cache.clear();
  }
}
