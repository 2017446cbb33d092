import { Resolver } from 'node:dns/promises';
import { LRUCache } from 'lru-cache';
import { withDeadline } from '../util/deadline';

export interface DnsSettings {
  /** Resolver addresses (ip or ip:port); empty means the system's. */
  servers: string[];
  /** Hard deadline per look-up, whatever the resolver's own retries do. */
  timeoutMs: number;
  cacheSize: number;
  /** Bytes the cached answers may take in all (about: their JSON length); default DEFAULT_CACHE_MAX_BYTES. */
  cacheMaxBytes?: number;
  /** Upper bound on how long an answer is cached, in seconds. */
  maxTtl: number;
  /** How long "no such name" and "no data" answers are cached, in seconds. */
  negativeTtl: number;
}

export type RecordType = 'A' | 'AAAA' | 'TXT' | 'MX' | 'PTR' | 'CNAME' | 'NS';

/** A DNS failure that is not an answer: the caller turns it into a *_TEMPERROR symbol. */
export class DnsTempError extends Error {
  constructor(
    readonly query: string,
    readonly code: string,
  ) {
    super(`DNS ${code} for ${query}`);
    this.name = 'DnsTempError';
  }
}

const NO_ANSWER = new Set(['ENOTFOUND', 'ENODATA', 'NXDOMAIN']);

type Answer = unknown[];

/**
 * 16 MB. An answer is ~100 bytes (10,000 of them ~1 MB), but a TXT answer
 * over TCP can be 64 KB, and whoever sends mail names the domains looked up
 * (SPF of the sender, DKIM selectors): 10,000 answers of 64 KB from one zone
 * were 650 MB of cache.
 */
export const DEFAULT_CACHE_MAX_BYTES = 16 * 1024 * 1024;

/** What one cached answer costs, about: its key and its JSON (an answer that cannot be measured counts as too big to keep). */
function answerBytes(answer: Answer, key: string): number {
  try {
    return key.length + JSON.stringify(answer).length + 64;
  } catch {
    return Number.MAX_SAFE_INTEGER;
  }
}

/**
 * A resolver for checks: configured servers (never the process-wide ones, so
 * Haraka's own look-ups are untouched), a hard deadline enforced with a timer
 * and `cancel()` (Node's per-try timeout alone runs to many seconds), and an
 * LRU cache that honours TTLs. "No such name" / "no data" resolve to [];
 * timeouts and server failures throw DnsTempError.
 */
export class DnsResolver {
  private readonly cache: LRUCache<string, { answer: Answer }>;

  constructor(readonly settings: DnsSettings) {
    this.cache = new LRUCache({
      max: Math.max(1, settings.cacheSize),
      // Bounded in bytes too: answers far larger than usual are what a hostile zone serves.
      maxSize: Math.max(1, settings.cacheMaxBytes ?? DEFAULT_CACHE_MAX_BYTES),
      sizeCalculation: (value, key) => answerBytes(value.answer, key),
      ttlAutopurge: false,
    });
  }

  private newResolver(): Resolver {
    // One resolver per look-up: cancel() aborts every query of a resolver.
    const resolver = new Resolver({ timeout: Math.max(50, Math.floor(this.settings.timeoutMs / 2)), tries: 2 });
    if (this.settings.servers.length) resolver.setServers(this.settings.servers);
    return resolver;
  }

  /** Same shape as `dns.promises.resolve(name, type)`, so mailauth can use it. */
  resolve = async (name: string, type: RecordType | string = 'A'): Promise<any[]> => {
    const rrtype = type.toUpperCase() as RecordType;
    const key = `${rrtype} ${name.toLowerCase()}`;
    const hit = this.cache.get(key);
    if (hit) return hit.answer as any[];
    const { answer, ttl } = await this.query(name, rrtype);
    this.cache.set(key, { answer }, { ttl: Math.max(1, Math.min(ttl, this.settings.maxTtl)) * 1000 });
    return answer as any[];
  };

  async reverse(ip: string): Promise<string[]> {
    return this.resolve(reverseName(ip), 'PTR');
  }

  private async query(name: string, type: RecordType): Promise<{ answer: Answer; ttl: number }> {
    const resolver = this.newResolver();
    // Past the deadline the look-up is cancelled, not only abandoned.
    const late = () => {
      resolver.cancel();
      return new DnsTempError(`${type} ${name}`, 'TIMEOUT');
    };
    try {
      const lookup = (async (): Promise<{ answer: Answer; ttl: number }> => {
        if (type === 'A' || type === 'AAAA') {
          const records = type === 'A' ? await resolver.resolve4(name, { ttl: true }) : await resolver.resolve6(name, { ttl: true });
          return { answer: records.map((r) => r.address), ttl: Math.min(...records.map((r) => r.ttl), this.settings.maxTtl) };
        }
        const answer = (await resolver.resolve(name, type)) as Answer;
        return { answer, ttl: this.settings.maxTtl };
      })();
      return await withDeadline(lookup, this.settings.timeoutMs, late);
    } catch (err) {
      if (err instanceof DnsTempError) throw err;
      const code = (err as NodeJS.ErrnoException).code ?? 'ERROR';
      if (NO_ANSWER.has(code)) return { answer: [], ttl: this.settings.negativeTtl };
      throw new DnsTempError(`${type} ${name}`, code);
    }
  }

  clear(): void {
    this.cache.clear();
  }
}

/** in-addr.arpa / ip6.arpa name of an address. */
export function reverseName(ip: string): string {
  if (ip.includes(':')) return `${expandIPv6(ip).replace(/:/g, '').split('').reverse().join('.')}.ip6.arpa`;
  return `${ip.split('.').reverse().join('.')}.in-addr.arpa`;
}

/** Full 8-group, zero-padded form of an IPv6 address. */
export function expandIPv6(ip: string): string {
  let address = ip.toLowerCase();
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(address);
  if (v4) {
    const parts = v4[1]!.split('.').map(Number);
    address = address.replace(v4[1]!, `${((parts[0]! << 8) | parts[1]!).toString(16)}:${((parts[2]! << 8) | parts[3]!).toString(16)}`);
  }
  const [head, tail] = address.split('::');
  const headParts = head ? head.split(':') : [];
  const tailParts = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const missing = 8 - headParts.length - tailParts.length;
  const groups = tail === undefined ? headParts : [...headParts, ...Array(missing).fill('0'), ...tailParts];
  return groups.map((g) => g.padStart(4, '0')).join(':');
}
