import { MemoryStore } from './memory';
import type { CountMark, StateStore, WriteHints } from './types';

/**
 * A state store that reads a shared one and writes only in process: for tools
 * that explain a message against the live configuration (`mailward scan`)
 * and must see its run-time lists and learned reputation, yet change nothing
 * in it. A key is copied from the shared store the first time it is written
 * here; from then on this process sees its own copy.
 */
export class OverlayStore implements StateStore {
  private readonly local = new MemoryStore(100_000);
  /** Keys written (or deleted) here: read from `local` from then on. */
  private readonly touched = new Set<string>();

  constructor(private readonly base: StateStore) {}

  get backend(): StateStore['backend'] {
    return this.base.backend;
  }

  get degraded(): boolean {
    return this.base.degraded;
  }

  get(key: string) {
    return this.touched.has(key) ? this.local.get(key) : this.base.get(key);
  }

  async set(key: string, value: string, ttlSeconds?: number) {
    this.touched.add(key);
    await this.local.set(key, value, ttlSeconds);
  }

  async del(key: string) {
    this.touched.add(key);
    await this.local.del(key);
  }

  async setIfAbsent(key: string, value: string, ttlSeconds: number) {
    if (!this.touched.has(key) && (await this.base.get(key)) !== null) return false;
    this.touched.add(key);
    return this.local.setIfAbsent(key, value, ttlSeconds);
  }

  async incrBy(key: string, by: number, ttlSeconds: number) {
    await this.copyCounter(key, ttlSeconds);
    return this.local.incrBy(key, by, ttlSeconds);
  }

  private async copyCounter(key: string, ttlSeconds: number): Promise<void> {
    if (this.touched.has(key)) return;
    const current = Number(await this.base.get(key)) || 0;
    this.touched.add(key);
    if (current) await this.local.set(key, String(current), ttlSeconds);
  }

  private async copyHash(key: string, ttlSeconds?: number): Promise<void> {
    if (this.touched.has(key)) return;
    const current = await this.base.hashGetAll(key);
    this.touched.add(key);
    if (Object.keys(current).length) await this.local.hashSet(key, current, ttlSeconds);
  }

  async hashIncrBy(key: string, fields: Record<string, number>, ttlSeconds: number, hints?: WriteHints) {
    await this.copyHash(key, ttlSeconds);
    await this.local.hashIncrBy(key, fields, ttlSeconds, hints);
  }

  /** Written here only, like every write of an overlay: the marks and the hash are copied first. */
  async countOnceShared(marks: CountMark[], marksTtlSeconds: number, key: string, fields: Record<string, number>, ttlSeconds: number) {
    await this.copyHash(key, ttlSeconds);
    for (const m of marks) await this.copyCounter(m.key, marksTtlSeconds);
    return this.local.countOnceShared(marks, marksTtlSeconds, key, fields, ttlSeconds);
  }

  hashGetAll(key: string) {
    return this.touched.has(key) ? this.local.hashGetAll(key) : this.base.hashGetAll(key);
  }

  async hashSet(key: string, fields: Record<string, string>, ttlSeconds?: number) {
    await this.copyHash(key, ttlSeconds);
    await this.local.hashSet(key, fields, ttlSeconds);
  }

  async hashDel(key: string, fields: string[]) {
    await this.copyHash(key);
    await this.local.hashDel(key, fields);
  }

  async mget(keys: string[]) {
    return Promise.all(keys.map((k) => this.get(k)));
  }

  private async copySet(key: string): Promise<void> {
    if (this.touched.has(key)) return;
    const current = await this.base.setMembers(key);
    this.touched.add(key);
    if (current.length) await this.local.setAdd(key, current);
  }

  async setAdd(key: string, members: string[]) {
    await this.copySet(key);
    await this.local.setAdd(key, members);
  }

  async setRemove(key: string, members: string[]) {
    await this.copySet(key);
    await this.local.setRemove(key, members);
  }

  setMembers(key: string) {
    return this.touched.has(key) ? this.local.setMembers(key) : this.base.setMembers(key);
  }

  setMembersShared(key: string) {
    return this.touched.has(key) ? this.local.setMembersShared(key) : this.base.setMembersShared(key);
  }

  getShared(key: string) {
    return this.touched.has(key) ? this.local.getShared(key) : this.base.getShared(key);
  }

  async keys(prefix: string) {
    const [shared, own] = await Promise.all([this.base.keys(prefix), this.local.keys(prefix)]);
    return [...new Set([...shared.filter((k) => !this.touched.has(k)), ...own])];
  }

  async close() {
    await this.local.close();
    await this.base.close();
  }
}
