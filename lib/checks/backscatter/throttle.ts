import type { StateStore } from '../../state/types';
import { subjectId } from './subject';

export interface ThrottleSettings {
  enabled: boolean;
  /** Symbols that make a message count toward a flood ("*": every message). */
  match: string[];
  /** Messages with one subject within the window that start a block. */
  threshold: number;
  windowMinutes: number;
  blockMinutes: number;
  /** Throttle messages whose subject normalises to nothing. */
  emptySubject: boolean;
}

/** An active block, as stored (shared by every node) and listed by `mailward throttle list`. */
export interface SubjectBlock {
  id: string;
  /** Normalised subject. */
  subject: string;
  /** One subject as it arrived, for the operator. */
  example: string;
  /** Matching messages counted in the window when the block started. */
  count: number;
  since: number;
  until: number;
  /** Node that started the block. */
  node: string;
  /** Messages refused (or deferred) by the block so far, on every node. */
  refused: number;
}

export interface ThrottleDecision {
  block: SubjectBlock | null;
  /** Messages counted in the window (0 when this one did not count or was blocked). */
  count: number;
  /** This message started the block. */
  started: boolean;
}

/** Counting windows are split into this many buckets: a sliding window to within a tenth. */
const BUCKETS = 10;
const COUNTER = 'bs:cnt:';
const BLOCK = 'bs:blk:';

/**
 * The subject-flood throttle of seed 003: "if X messages that match a content
 * rule arrive with the same subject within W minutes, block every message with
 * that subject from any IP for B minutes". Counters are time buckets keyed by
 * the clock (no cron: correct after any pause, on any node); counters and
 * blocks live in the StateStore, so with Redis a block any node starts holds on
 * every node.
 */
export class SubjectThrottle {
  private readonly bucketMs: number;

  constructor(
    private readonly store: StateStore,
    readonly settings: ThrottleSettings,
    private readonly clock: () => number,
    private readonly node = '',
  ) {
    this.bucketMs = Math.max(1000, Math.floor((settings.windowMinutes * 60_000) / BUCKETS));
  }

  /** The block in force for a normalised subject, if any. */
  async activeBlock(subject: string): Promise<SubjectBlock | null> {
    return this.readBlock(subjectId(subject), this.clock());
  }

  /**
   * Decides one message: blocked if its subject is; otherwise, when it counts
   * (it matched the rule), adds it to the window and starts a block once the
   * threshold is reached, this message included.
   */
  async decide(subject: string, example: string, counts: boolean): Promise<ThrottleDecision> {
    const now = this.clock();
    const id = subjectId(subject);
    const bucket = Math.floor(now / this.bucketMs);
    const earlier = Array.from({ length: BUCKETS - 1 }, (_, i) => `${COUNTER}${id}:${bucket - 1 - i}`);
    const fields = await this.store.hashGetAll(BLOCK + id);
    // Buckets up to this one hold a flood that has already had its block.
    let spentUpTo = -Infinity;
    if (fields.until) {
      const existing = fromFields(id, fields);
      if (existing.until > now) {
        // The longest expiry a block can need: another node may have started a newer block
        // on this key since it was read. The store never shortens an expiry, so a node
        // configured with a shorter block_minutes cannot cut short a longer block either.
        await this.store.hashIncrBy(BLOCK + id, { refused: 1 }, this.blockTtl(now + this.settings.blockMinutes * 60_000, now));
        existing.refused += 1;
        return { block: existing, count: 0, started: false };
      }
      // The block is over and the flood that started it is spent: it takes a fresh
      // `threshold` messages to start another, even when the window is longer than
      // the block. The ended block (kept a window past its end) marks where counting
      // starts again; nothing is deleted, so a block another node starts meanwhile
      // on the same key cannot be wiped by a message that read the old one.
      spentUpTo = Math.floor(existing.since / this.bucketMs);
    }
    if (!counts) return { block: null, count: 0, started: false };

    // Buckets outlive the window a little; the window itself is computed from bucket numbers.
    const keep = ttlSeconds((BUCKETS + 1) * this.bucketMs);
    const fresh = earlier.filter((_, i) => bucket - 1 - i > spentUpTo);
    const [current, previous] = await Promise.all([this.store.incrBy(`${COUNTER}${id}:${bucket}`, 1, keep), fresh.length ? this.store.mget(fresh) : Promise.resolve([])]);
    // A block shorter than a bucket ends in the bucket of its flood: this message is all that counts there.
    const count = previous.reduce((sum, v) => sum + (Number(v) || 0), bucket > spentUpTo ? current : 1);
    if (count < this.settings.threshold) return { block: null, count, started: false };

    const block: SubjectBlock = {
      id,
      subject,
      example: example.slice(0, 200),
      count,
      since: now,
      until: now + this.settings.blockMinutes * 60_000,
      node: this.node,
      refused: 1,
    };
    await this.store.hashSet(BLOCK + id, toFields(block), this.blockTtl(block.until, now));
    return { block, count, started: true };
  }

  /** Active blocks, soonest to end first. */
  async list(): Promise<SubjectBlock[]> {
    const now = this.clock();
    const keys = await this.store.keys(BLOCK);
    const blocks = await Promise.all(keys.map((k) => this.readBlock(k.slice(BLOCK.length), now)));
    return blocks.filter((b): b is SubjectBlock => !!b).sort((a, b) => a.until - b.until);
  }

  /**
   * Lifts the block on a subject (given as an id from `list`, or as a subject,
   * normalised here) and forgets its counters, so it does not restart at once.
   * Returns the lifted block, or null when none was active.
   */
  async clear(subjectOrId: string, normalise: (s: string) => string): Promise<SubjectBlock | null> {
    const id = /^[0-9a-f]{20}$/.test(subjectOrId) ? subjectOrId : subjectId(normalise(subjectOrId));
    const block = await this.readBlock(id, this.clock());
    await this.store.del(BLOCK + id);
    for (const key of await this.store.keys(`${COUNTER}${id}:`)) await this.store.del(key);
    return block;
  }

  /** Kept past its end for as long as the counters that started it, so its end can reset them. */
  private blockTtl(until: number, now: number): number {
    return ttlSeconds(until - now + (BUCKETS + 1) * this.bucketMs);
  }

  private async readBlock(id: string, now: number): Promise<SubjectBlock | null> {
    const fields = await this.store.hashGetAll(BLOCK + id);
    if (!fields.until) return null;
    const block = fromFields(id, fields);
    return block.until > now ? block : null;
  }
}

function ttlSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

function toFields(b: SubjectBlock): Record<string, string> {
  return { subject: b.subject, example: b.example, count: String(b.count), since: String(b.since), until: String(b.until), node: b.node, refused: String(b.refused) };
}

function fromFields(id: string, f: Record<string, string>): SubjectBlock {
  return {
    id,
    subject: f.subject ?? '',
    example: f.example ?? '',
    count: Number(f.count) || 0,
    since: Number(f.since) || 0,
    until: Number(f.until) || 0,
    node: f.node ?? '',
    refused: Number(f.refused) || 0,
  };
}
