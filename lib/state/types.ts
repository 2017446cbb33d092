/**
 * Shared state: what must agree across MTA nodes (reputation, counters,
 * throttles, run-time allow lists). In-process by default, Redis for a fleet.
 * Every method may fail when the backend is remote: callers treat a failure
 * as "no information" and never refuse mail because of it.
 */
export interface StateStore {
  readonly backend: 'memory' | 'redis';
  /**
   * True while a shared backend is unreachable and answers come from the
   * in-process fallback: callers whose data only the shared store holds
   * (run-time lists) can say so instead of reading an empty fallback as "none".
   */
  readonly degraded: boolean;
  get(key: string): Promise<string | null>;
  /** ttlSeconds 0 or absent: no expiry. */
  set(key: string, value: string, ttlSeconds?: number): Promise<void>;
  del(key: string): Promise<void>;
  /** Sets the key only if it does not exist (atomically in Redis); true when it was set. For short locks: ttlSeconds > 0. */
  setIfAbsent(key: string, value: string, ttlSeconds: number): Promise<boolean>;
  /**
   * Adds to a counter; returns the new value. Its expiry becomes ttlSeconds
   * from now unless it already had longer: nodes whose configs ask for
   * different lifetimes never cut short what another counted.
   */
  incrBy(key: string, by: number, ttlSeconds: number): Promise<number>;
  /** Adds to several fields of a hash at once (atomically in Redis); extends the hash's expiry as incrBy does. */
  hashIncrBy(key: string, fields: Record<string, number>, ttlSeconds: number, hints?: WriteHints): Promise<void>;
  hashGetAll(key: string): Promise<Record<string, string>>;
  hashSet(key: string, fields: Record<string, string>, ttlSeconds?: number): Promise<void>;
  /** Removes fields of a hash (e.g. time buckets past their horizon); keeps the hash's expiry. */
  hashDel(key: string, fields: string[]): Promise<void>;
  /** Values of several keys, null where absent. */
  mget(keys: string[]): Promise<(string | null)[]>;
  setAdd(key: string, members: string[]): Promise<void>;
  setRemove(key: string, members: string[]): Promise<void>;
  setMembers(key: string): Promise<string[]>;
  /**
   * setMembers that never answers from a fallback: it rejects when the shared
   * backend could not answer (down, too slow, an error reply), for data only
   * the shared store holds (run-time lists), where an empty set would read as "none".
   */
  setMembersShared(key: string): Promise<string[]>;
  /** get that never answers from a fallback, likewise (the run-time lists' change mark). */
  getShared(key: string): Promise<string | null>;
  /**
   * Counts an event once, as one atomic step (one script in Redis): when every
   * mark has been counted fewer than its `limit` times, adds 1 to each mark (a
   * counter, expiry extended to marksTtlSeconds as incrBy does) and `fields`
   * to the hash at `key` (as hashIncrBy); otherwise changes nothing. A mark
   * without its count (a "seen" report whose complaint was never counted)
   * cannot be left behind. Never writes to a fallback: it rejects when the
   * shared backend did not take it (down, too slow, or a refused command such
   * as READONLY, OOM, WRONGTYPE), for counts only the shared store may hold (a
   * complaint counted in one process's memory is lost with it). When it
   * rejects, nothing was written, or (a reply lost on the way back) all of it.
   */
  countOnceShared(marks: CountMark[], marksTtlSeconds: number, key: string, fields: Record<string, number>, ttlSeconds: number): Promise<CountOnceResult>;
  /** Keys (without the store's prefix) that start with `prefix`; for listings, not hot paths. */
  keys(prefix: string): Promise<string[]>;
  close(): Promise<void>;
}

/** A counter that countOnceShared checks and increments: at most `limit` counts in all. */
export interface CountMark {
  key: string;
  limit: number;
}

/** Counted, or not because the mark at index `atLimit` had reached its limit. */
export type CountOnceResult = { counted: true } | { counted: false; atLimit: number };

/** What a writer knows of a key that an in-process store uses to bound it; Redis ignores it. */
export interface WriteHints {
  /**
   * Whom a learnt-reputation key is about, for eviction: the IPv6 /48 or IPv4
   * /24 of an IP or network, the organisational domain of a domain. The memory
   * store keeps a bounded number of one group's entries among those it keeps
   * longest, so a flood from one network pushes out only that network's own,
   * and takes a bounded number of one group's new keys a minute among those
   * seen once, so a flood pushes out no other sender's first event.
   */
  group?: string;
  /**
   * The looser group `group` lies in (the IPv6 /32 or IPv4 /16 of an IP or
   * network): one holder of many networks is bounded too. None for domains.
   */
  block?: string;
}

export interface StateSettings {
  backend: 'memory' | 'redis';
  redisUrl: string;
  /** Prepended to every key, so several deployments (or tests) can share one Redis. */
  prefix: string;
  /** Deadline for one Redis operation before falling back. */
  timeoutMs: number;
  /** Entries kept by the in-process store (and the fallback while Redis is down). */
  memoryMaxEntries: number;
}
