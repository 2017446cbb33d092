import { createClient, ErrorReply } from 'redis';
import type { Logger } from '../checks/types';
import { MemoryStore } from './memory';
import type { CountMark, CountOnceResult, StateSettings, StateStore, WriteHints } from './types';
import { withDeadline } from '../util/deadline';
import { redactUrl } from '../config/reader';
import { lua, runScript } from '../util/lua';

function makeClient(settings: StateSettings) {
  return createClient({
    url: settings.redisUrl,
    disableOfflineQueue: true,
    socket: {
      connectTimeout: Math.max(200, settings.timeoutMs * 4),
      reconnectStrategy: (retries: number) => Math.min(100 * 2 ** Math.min(retries, 5), 2000),
    },
  });
}

type Client = ReturnType<typeof makeClient>;

type Attempt<T> = { ok: true; value: T } | { ok: false; error: Error };

/**
 * How long a client may stay unready for any other reason (its own reconnect
 * loop, which backs off by itself) before it is replaced all the same.
 */
const REPLACE_UNREADY_MS = 30_000;
/** Error replies (OOM, READONLY, WRONGTYPE...) are logged at most this often. */
const REPLY_LOG_INTERVAL_MS = 60_000;

/**
 * Shared state in Redis for a fleet of MTAs. Every operation has a deadline.
 * While Redis is unreachable or hangs, the store is "down": operations answer
 * from an in-process fallback at once, without sending anything (logged once
 * per outage), and one PING at a time probes whether Redis is back. A
 * connection that is open but no longer answers is replaced, which drops the
 * commands queued on it. An error reply (OOM, READONLY, WRONGTYPE) is not an
 * outage: that one operation answers from the fallback, and the next one goes
 * to Redis again. So mail never waits on, nor fails because of, Redis.
 */
export class RedisStore implements StateStore {
  readonly backend = 'redis' as const;
  private client!: Client;
  private ready!: Promise<void>;
  private readonly fallback: MemoryStore;
  private down = false;
  private probing = false;
  private lastProbe = 0;
  private unreadySince = Date.now();
  /** When the current client's socket connected and its handshake began; null while not in a handshake. */
  private handshakeSince: number | null = null;
  private lastReplyLog = 0;
  private closed = false;
  private readonly probeIntervalMs: number;

  constructor(
    private readonly settings: StateSettings,
    private readonly log: Logger,
  ) {
    this.fallback = new MemoryStore(settings.memoryMaxEntries);
    this.probeIntervalMs = Math.max(1000, settings.timeoutMs * 4);
    this.connect();
  }

  private connect(): void {
    const client = makeClient(this.settings);
    // A replaced client may still report: only the current one counts (the listener stays, so nothing is unhandled).
    client.on('error', (err: Error) => {
      if (client === this.client) this.markDown(err);
    });
    client.on('end', () => {
      if (client === this.client) {
        this.unreadySince = Date.now();
        this.handshakeSince = null;
      }
    });
    // The socket is open and the handshake (CLIENT SETINFO, AUTH, SELECT) begins. node-redis puts no
    // deadline on it: against a black hole (connections accepted, nothing answered) it waits forever.
    client.on('connect', () => {
      if (client === this.client) this.handshakeSince = Date.now();
    });
    client.on('reconnecting', () => {
      if (client === this.client) this.handshakeSince = null;
    });
    client.on('ready', () => {
      if (client === this.client) {
        this.handshakeSince = null;
        this.markUp();
      }
    });
    this.client = client;
    this.unreadySince = Date.now();
    this.handshakeSince = null;
    this.ready = client.connect().then(
      () => undefined,
      (err: Error) => {
        if (client === this.client) this.markDown(err);
      },
    );
  }

  private markDown(err: Error): void {
    if (!this.down) {
      this.log.warn(`mailward state: Redis at ${redactUrl(this.settings.redisUrl)} unavailable (${err.message}); using in-process state until it returns`);
    }
    this.down = true;
  }

  private markUp(): void {
    if (this.down) this.log.info(`mailward state: Redis at ${redactUrl(this.settings.redisUrl)} is back`);
    this.down = false;
  }

  get degraded(): boolean {
    return this.down || !this.client.isReady;
  }

  private k(key: string): string {
    return this.settings.prefix + key;
  }

  /**
   * While down: at most one PING in flight, one per probe interval. A ready
   * connection that does not answer is hung (a stopped server, a black hole):
   * it is replaced, and the commands waiting on it go with it. So is a
   * connection whose handshake has not finished within a probe interval (at
   * least the connect timeout): it was accepted by something that does not
   * answer. Refused or timed-out connects are left to the client's own
   * reconnect back-off. Probes being one per interval, so are replacements.
   */
  private probe(): void {
    const now = Date.now();
    if (this.closed || this.probing || now - this.lastProbe < this.probeIntervalMs) return;
    this.lastProbe = now;
    this.probing = true;
    void (async () => {
      try {
        if (this.client.isReady) {
          await this.inTime(this.client.ping());
          this.markUp();
        } else if (this.handshakeSince !== null && now - this.handshakeSince >= this.probeIntervalMs) {
          this.replaceClient();
        } else if (now - this.unreadySince > REPLACE_UNREADY_MS) {
          this.replaceClient();
        }
      } catch {
        this.replaceClient();
      } finally {
        this.probing = false;
      }
    })();
  }

  private replaceClient(): void {
    if (this.closed) return;
    const old = this.client;
    this.connect();
    try {
      old.destroy();
    } catch {
      // already closed
    }
  }

  /** Runs an operation against Redis within the deadline, or says why it could not. */
  private async attempt<T>(remote: (c: Client) => Promise<T>): Promise<Attempt<T>> {
    if (this.down) {
      this.probe();
      return { ok: false, error: new Error(`Redis at ${redactUrl(this.settings.redisUrl)} is unreachable`) };
    }
    if (!this.client.isReady) {
      // Starting up, or reconnecting: wait once, within the deadline.
      await Promise.race([this.ready, delay(this.settings.timeoutMs)]);
      if (!this.client.isReady) {
        const error = new Error(`Redis not ready within ${this.settings.timeoutMs} ms`);
        this.markDown(error);
        return { ok: false, error };
      }
    }
    try {
      return { ok: true, value: await this.inTime(remote(this.client)) };
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      if (isErrorReply(error)) {
        // Redis answered: it is up. Only this operation failed.
        if (Date.now() - this.lastReplyLog > REPLY_LOG_INTERVAL_MS) {
          this.lastReplyLog = Date.now();
          this.log.warn(`mailward state: Redis at ${redactUrl(this.settings.redisUrl)} refused a command (${error.message}); that operation used in-process state`);
        }
      } else {
        this.markDown(error);
      }
      return { ok: false, error };
    }
  }

  /** An operation's answer within the store's deadline, or a rejection. */
  private inTime<T>(work: Promise<T>): Promise<T> {
    const ms = this.settings.timeoutMs;
    return withDeadline(work, ms, () => new Error(`Redis operation exceeded ${ms} ms`));
  }

  /** Runs an operation against Redis, or the fallback when Redis fails or is too slow. */
  private async op<T>(remote: (c: Client) => Promise<T>, local: (m: MemoryStore) => Promise<T>): Promise<T> {
    const result = await this.attempt(remote);
    return result.ok ? result.value : local(this.fallback);
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

  setIfAbsent(key: string, value: string, ttlSeconds: number) {
    // A lock without an expiry would outlive a command that dies; Redis refuses EX 0 anyway.
    if (!(ttlSeconds > 0)) return Promise.reject(new Error('setIfAbsent needs an expiry'));
    return this.op(
      async (c) => (await c.set(this.k(key), value, { NX: true, EX: Math.ceil(ttlSeconds) })) === 'OK',
      (m) => m.setIfAbsent(key, value, ttlSeconds),
    );
  }

  incrBy(key: string, by: number, ttlSeconds: number) {
    return this.op(
      async (c) => Number(await runScript(c, INCR_SCRIPT, { keys: [this.k(key)], arguments: [String(ttlMs(ttlSeconds)), String(by)] })),
      (m) => m.incrBy(key, by, ttlSeconds),
    );
  }

  /** The hints only matter to the in-process fallback. */
  hashIncrBy(key: string, fields: Record<string, number>, ttlSeconds: number, hints?: WriteHints) {
    const pairs = Object.entries(fields).flatMap(([field, by]) => [field, String(by)]);
    return this.op(
      async (c) => {
        await runScript(c, HASH_INCR_SCRIPT, { keys: [this.k(key)], arguments: [String(ttlMs(ttlSeconds)), ...pairs] });
      },
      (m) => m.hashIncrBy(key, fields, ttlSeconds, hints),
    );
  }

  async countOnceShared(marks: CountMark[], marksTtlSeconds: number, key: string, fields: Record<string, number>, ttlSeconds: number): Promise<CountOnceResult> {
    const pairs = Object.entries(fields).flatMap(([field, by]) => [field, String(by)]);
    const result = await this.attempt(async (c) =>
      Number(
        await runScript(c, COUNT_ONCE_SCRIPT, {
          keys: [this.k(key), ...marks.map((m) => this.k(m.key))],
          arguments: [String(ttlMs(ttlSeconds)), String(ttlMs(marksTtlSeconds)), String(marks.length), ...marks.map((m) => String(m.limit)), ...pairs],
        }),
      ),
    );
    if (!result.ok) throw result.error;
    return result.value < 0 ? { counted: true } : { counted: false, atLimit: result.value };
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

  async setMembersShared(key: string): Promise<string[]> {
    const result = await this.attempt((c) => c.sMembers(this.k(key)) as Promise<string[]>);
    if (!result.ok) throw result.error;
    return result.value;
  }

  async getShared(key: string): Promise<string | null> {
    const result = await this.attempt((c) => c.get(this.k(key)) as Promise<string | null>);
    if (!result.ok) throw result.error;
    return result.value;
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
    this.closed = true;
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

/**
 * Counters are written by every node, and nodes may ask for different
 * lifetimes (a shorter window or block in one node's config): an increment
 * extends a key's expiry, never shortens it, or one node's short setting would
 * expire counts and blocks the others still rely on. (EXPIRE GT would do it
 * on Redis 7 only.) A key without an expiry gets one, as EXPIRE gave it.
 */
const EXTEND_EXPIRY = `
local ms = tonumber(ARGV[1])
local left = redis.call('PTTL', KEYS[1])
if ms > 0 and left < ms then redis.call('PEXPIRE', KEYS[1], ms) end`;

/** KEYS: counter. ARGV: ttl ms, amount. Returns the new value. */
const INCR_SCRIPT = lua(`
local value = redis.call('INCRBYFLOAT', KEYS[1], ARGV[2])
${EXTEND_EXPIRY}
return value`);

/** KEYS: hash. ARGV: ttl ms, then field, amount pairs. */
const HASH_INCR_SCRIPT = lua(`
for i = 2, #ARGV, 2 do redis.call('HINCRBYFLOAT', KEYS[1], ARGV[i], ARGV[i + 1]) end
${EXTEND_EXPIRY}
return 1`);

/**
 * KEYS: the hash, then the marks. ARGV: the hash's ttl ms, the marks' ttl ms,
 * the number of marks, each mark's limit, then field, amount pairs. Returns
 * -1 when it counted, else the (0-based) index of the first mark at its limit.
 * Everything is checked before anything is written: Redis does not undo the
 * writes of a script that fails half way, so a command that could fail
 * (WRONGTYPE, a mark that is not a number) fails before the first write, and
 * the count is written before the marks (a refused first write, OOM or
 * READONLY, leaves no mark without its count).
 */
const COUNT_ONCE_SCRIPT = lua(`
local function extend(key, ms)
  local left = redis.call('PTTL', key)
  if ms > 0 and left < ms then redis.call('PEXPIRE', key, ms) end
end
local n = tonumber(ARGV[3])
local kind = redis.call('TYPE', KEYS[1]).ok
if kind ~= 'hash' and kind ~= 'none' then return redis.error_reply('WRONGTYPE the count is not a hash') end
for i = 1, n do
  kind = redis.call('TYPE', KEYS[i + 1]).ok
  if kind ~= 'string' and kind ~= 'none' then return redis.error_reply('WRONGTYPE a mark is not a counter') end
  local seen = tonumber(redis.call('GET', KEYS[i + 1]) or '0')
  if seen == nil then return redis.error_reply('ERR a mark is not a number') end
  if seen >= tonumber(ARGV[3 + i]) then return i - 1 end
end
for j = 4 + n, #ARGV, 2 do redis.call('HINCRBYFLOAT', KEYS[1], ARGV[j], ARGV[j + 1]) end
extend(KEYS[1], tonumber(ARGV[1]))
for i = 1, n do
  redis.call('INCRBYFLOAT', KEYS[i + 1], 1)
  extend(KEYS[i + 1], tonumber(ARGV[2]))
end
return -1`);

function ttlMs(ttlSeconds: number): number {
  return Math.ceil(ttlSeconds) * 1000;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}


/** An error Redis itself answered with (also inside a MULTI), as opposed to a connection failure or a deadline. */
function isErrorReply(err: Error): boolean {
  return err instanceof ErrorReply || (err as { replies?: unknown }).replies !== undefined;
}
