import { createClient } from 'redis';
import type { Logger } from '../checks/types';
import { MemoryStore } from './memory';
import type { StateSettings, StateStore } from './types';

type Client = ReturnType<typeof createClient>;

/**
 * Shared state in Redis for a fleet of MTAs. Every operation has a deadline;
 * while Redis is unreachable the store answers from an in-process fallback
 * (logged once per outage) and reconnects by itself, so mail never waits on
 * or fails because of Redis.
 */
export class RedisStore implements StateStore {
  readonly backend = 'redis' as const;
  private readonly client: Client;
  private readonly fallback: MemoryStore;
  private down = false;
  private readonly ready: Promise<void>;

  constructor(
    private readonly settings: StateSettings,
    private readonly log: Logger,
  ) {
    this.fallback = new MemoryStore(settings.memoryMaxEntries);
    this.client = createClient({
      url: settings.redisUrl,
      disableOfflineQueue: true,
      socket: {
        connectTimeout: Math.max(200, settings.timeoutMs * 4),
        reconnectStrategy: (retries: number) => Math.min(100 * 2 ** Math.min(retries, 5), 2000),
      },
    });
    this.client.on('error', (err: Error) => this.markDown(err));
    this.client.on('ready', () => {
      if (this.down) this.log.info(`mailward state: Redis at ${settings.redisUrl} is back`);
      this.down = false;
    });
    this.ready = this.client.connect().then(
      () => undefined,
      (err: Error) => this.markDown(err),
    );
  }

  private markDown(err: Error): void {
    if (!this.down) {
      this.log.warn(`mailward state: Redis at ${this.settings.redisUrl} unavailable (${err.message}); using in-process state until it returns`);
    }
    this.down = true;
  }

  get degraded(): boolean {
    return this.down || !this.client.isReady;
  }

  private k(key: string): string {
    return this.settings.prefix + key;
  }

  /** Runs an operation against Redis, or the fallback when Redis fails or is too slow. */
  private async op<T>(remote: (c: Client) => Promise<T>, local: (m: MemoryStore) => Promise<T>): Promise<T> {
    if (!this.client.isReady) {
      await Promise.race([this.ready, delay(this.settings.timeoutMs)]);
      if (!this.client.isReady) return local(this.fallback);
    }
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        remote(this.client),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`Redis operation exceeded ${this.settings.timeoutMs} ms`)), this.settings.timeoutMs);
        }),
      ]);
    } catch (err) {
      this.markDown(err as Error);
      return local(this.fallback);
    } finally {
      clearTimeout(timer);
    }
  }

  get(key: string) {
    return this.op((c) => c.get(this.k(key)) as Promise<string | null>, (m) => m.get(key));
  }

  set(key: string, value: string, ttlSeconds?: number) {
    return this.op(
      async (c) => {
        await (ttlSeconds ? c.set(this.k(key), value, { EX: Math.ceil(ttlSeconds) }) : c.set(this.k(key), value));
      },
      (m) => m.set(key, value, ttlSeconds),
    );
  }

  del(key: string) {
    return this.op(
      async (c) => {
        await c.del(this.k(key));
      },
      (m) => m.del(key),
    );
  }

  incrBy(key: string, by: number, ttlSeconds: number) {
    return this.op(
      async (c) => {
        const [value] = await c.multi().incrByFloat(this.k(key), by).expire(this.k(key), Math.ceil(ttlSeconds)).exec();
        return Number(value);
      },
      (m) => m.incrBy(key, by, ttlSeconds),
    );
  }

  hashIncrBy(key: string, fields: Record<string, number>, ttlSeconds: number) {
    return this.op(
      async (c) => {
        const multi = c.multi();
        for (const [field, by] of Object.entries(fields)) multi.hIncrByFloat(this.k(key), field, by);
        multi.expire(this.k(key), Math.ceil(ttlSeconds));
        await multi.exec();
      },
      (m) => m.hashIncrBy(key, fields, ttlSeconds),
    );
  }

  hashGetAll(key: string) {
    return this.op(async (c) => ({ ...(await c.hGetAll(this.k(key))) }) as Record<string, string>, (m) => m.hashGetAll(key));
  }

  hashSet(key: string, fields: Record<string, string>, ttlSeconds?: number) {
    return this.op(
      async (c) => {
        const multi = c.multi().hSet(this.k(key), fields);
        if (ttlSeconds) multi.expire(this.k(key), Math.ceil(ttlSeconds));
        await multi.exec();
      },
      (m) => m.hashSet(key, fields, ttlSeconds),
    );
  }

  hashDel(key: string, fields: string[]) {
    return this.op(
      async (c) => {
        if (fields.length) await c.hDel(this.k(key), fields);
      },
      (m) => m.hashDel(key, fields),
    );
  }

  mget(keys: string[]) {
    if (!keys.length) return Promise.resolve([]);
    return this.op((c) => c.mGet(keys.map((k) => this.k(k))) as Promise<(string | null)[]>, (m) => m.mget(keys));
  }

  setAdd(key: string, members: string[]) {
    return this.op(
      async (c) => {
        if (members.length) await c.sAdd(this.k(key), members);
      },
      (m) => m.setAdd(key, members),
    );
  }

  setRemove(key: string, members: string[]) {
    return this.op(
      async (c) => {
        if (members.length) await c.sRem(this.k(key), members);
      },
      (m) => m.setRemove(key, members),
    );
  }

  setMembers(key: string) {
    return this.op((c) => c.sMembers(this.k(key)) as Promise<string[]>, (m) => m.setMembers(key));
  }

  keys(prefix: string) {
    return this.op(
      async (c) => {
        const found: string[] = [];
        for await (const batch of c.scanIterator({ MATCH: `${this.k(prefix)}*`, COUNT: 500 })) {
          for (const key of batch as unknown as string[]) found.push(key.slice(this.settings.prefix.length));
        }
        return found;
      },
      (m) => m.keys(prefix),
    );
  }

  async close(): Promise<void> {
    try {
      // quit() on a client still trying to reconnect never settles: drop it instead.
      if (this.client.isReady) await this.client.quit();
      else if (this.client.isOpen) this.client.destroy();
    } catch {
      this.client.destroy();
    }
    await this.fallback.close();
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
