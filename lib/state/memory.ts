import { LRUCache } from 'lru-cache';
import type { StateStore } from './types';

type Value = string | Map<string, string> | Set<string>;

/** In-process state for a single node: bounded, with per-key expiry. */
export class MemoryStore implements StateStore {
  readonly backend = 'memory' as const;
  readonly degraded = false;
  private readonly cache: LRUCache<string, { value: Value }>;

  constructor(maxEntries = 100_000) {
    this.cache = new LRUCache({ max: maxEntries });
  }

  private put(key: string, value: Value, ttlSeconds?: number, keepTtl = false): void {
    if (keepTtl && !ttlSeconds) {
      const remaining = this.cache.getRemainingTTL(key);
      const ttl = Number.isFinite(remaining) && remaining > 0 ? remaining : undefined;
      this.cache.set(key, { value }, ttl ? { ttl } : {});
      return;
    }
    this.cache.set(key, { value }, ttlSeconds ? { ttl: ttlSeconds * 1000 } : {});
  }

  private read(key: string): Value | undefined {
    return this.cache.get(key)?.value;
  }

  async get(key: string): Promise<string | null> {
    const v = this.read(key);
    return typeof v === 'string' ? v : null;
  }

  async set(key: string, value: string, ttlSeconds?: number): Promise<void> {
    this.put(key, value, ttlSeconds);
  }

  async del(key: string): Promise<void> {
    this.cache.delete(key);
  }

  async setIfAbsent(key: string, value: string, ttlSeconds: number): Promise<boolean> {
    if (!(ttlSeconds > 0)) throw new Error('setIfAbsent needs an expiry');
    if (this.read(key) !== undefined) return false;
    this.put(key, value, ttlSeconds);
    return true;
  }

  async incrBy(key: string, by: number, ttlSeconds: number): Promise<number> {
    const current = Number(this.read(key) ?? 0);
    const next = (Number.isFinite(current) ? current : 0) + by;
    this.put(key, String(next), ttlSeconds);
    return next;
  }

  /** In process, there is nothing to fall back from. */
  hashIncrByShared(key: string, fields: Record<string, number>, ttlSeconds: number): Promise<void> {
    return this.hashIncrBy(key, fields, ttlSeconds);
  }

  async hashIncrBy(key: string, fields: Record<string, number>, ttlSeconds: number): Promise<void> {
    const existing = this.read(key);
    const hash = existing instanceof Map ? existing : new Map<string, string>();
    for (const [field, by] of Object.entries(fields)) hash.set(field, String(Number(hash.get(field) ?? 0) + by));
    this.put(key, hash, ttlSeconds);
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
    if (!existing.size) this.cache.delete(key);
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
    return [...this.cache.keys()].filter((k) => k.startsWith(prefix) && this.cache.has(k));
  }

  async close(): Promise<void> {
    this.cache.clear();
  }
}
