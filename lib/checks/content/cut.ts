/**
 * Where the Bayes size bound cuts (BayesStore.capTokens), found without
 * sorting the model: the tokens go least seen first, then the longest not
 * learnt, then in token order. Sorting every token for that held the event
 * loop (and the mail) for seconds on a model of a million tokens; instead the
 * stores stream the tokens in batches, yielding between them, into a count
 * per (count, day) bucket, a few hundred entries whatever the model's size.
 * Every bucket below the cut bucket goes whole; of the cut bucket itself only
 * the first `take` tokens in token order.
 */

export interface Cut {
  /** The cut bucket: every token with a lower (count, day) goes. */
  count: number;
  day: number;
  /** ...and this many of the bucket's own tokens, the first in token order. */
  take: number;
  /** `take` is the whole bucket: no token order needed. */
  whole: boolean;
}

interface Bucket {
  count: number;
  day: number;
  tokens: number;
}

/** Tokens per (spam + ham count, day of last learn). */
export class BucketCounts {
  private readonly buckets = new Map<string, Bucket>();
  /** Tokens added, all buckets. */
  total = 0;

  add(count: number, day: number, tokens: number): void {
    const key = `${count}:${day}`;
    const bucket = this.buckets.get(key);
    if (bucket) bucket.tokens += tokens;
    else this.buckets.set(key, { count, day, tokens });
    this.total += tokens;
  }

  /** The cut that leaves `maxTokens`; undefined within the bound. */
  cut(maxTokens: number): Cut | undefined {
    let excess = this.total - maxTokens;
    if (excess <= 0) return undefined;
    const ordered = [...this.buckets.values()].sort((a, b) => a.count - b.count || a.day - b.day);
    for (const { count, day, tokens } of ordered) {
      if (tokens >= excess) return { count, day, take: excess, whole: tokens === excess };
      excess -= tokens;
    }
    return undefined;
  }
}

/**
 * The first `limit` tokens (in string order) of those offered, each once: a
 * max-heap, so memory holds `limit` tokens however many are offered and each
 * offer costs O(log limit). For a cut bucket that arrives in no order (Redis
 * HSCAN), instead of sorting the whole bucket at once.
 */
export class FirstTokens {
  /** heap[0] is the last (greatest) of those kept. */
  private readonly heap: string[] = [];
  private readonly kept = new Set<string>();

  constructor(private readonly limit: number) {}

  offer(token: string): void {
    // HSCAN may return a token twice: it is kept once.
    if (this.limit <= 0 || this.kept.has(token)) return;
    const heap = this.heap;
    if (heap.length < this.limit) {
      heap.push(token);
      this.kept.add(token);
      this.up(heap.length - 1);
    } else if (token < heap[0]!) {
      this.kept.delete(heap[0]!);
      heap[0] = token;
      this.kept.add(token);
      this.down(0);
    }
  }

  /** The tokens kept, in no particular order. */
  get tokens(): readonly string[] {
    return this.heap;
  }

  private up(i: number): void {
    const heap = this.heap;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]! >= heap[i]!) return;
      [heap[parent], heap[i]] = [heap[i]!, heap[parent]!];
      i = parent;
    }
  }

  private down(i: number): void {
    const heap = this.heap;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let largest = i;
      if (left < heap.length && heap[left]! > heap[largest]!) largest = left;
      if (right < heap.length && heap[right]! > heap[largest]!) largest = right;
      if (largest === i) return;
      [heap[largest], heap[i]] = [heap[i]!, heap[largest]!];
      i = largest;
    }
  }
}

/**
 * Drops the tokens an HSCAN batch repeats from the batches just before it.
 * Redis returns a field twice only when its hash shrank during the scan
 * (another node deleting most of it meanwhile), and then only fields of the
 * slots visited just before the cursor that fold into the slot at the cursor:
 * at most (old slots / new slots) slots, ending where the last batch ended.
 * A batch of COUNT fields spans about COUNT slots (COUNT / 5 at least: Redis
 * lets a table hold 5 fields a slot on average while a fork forbids
 * resizing). Counted twice, such a token made the size bound remove one
 * token more. A record of every token counted would be the model's size; the
 * last `window` tokens (whole batches) suffice unless the hash shrank to under
 * about a thousandth of its table (window 8,000: 1,600 slots at least).
 */
export class RecentTokens {
  private readonly batches: Set<string>[] = [];
  private held = 0;

  constructor(private readonly window: number) {}

  /** The tokens of `batch` not in the recent batches (each once), remembered in turn. */
  fresh(batch: readonly string[]): string[] {
    const kept = new Set<string>();
    for (const token of batch) if (!this.batches.some((b) => b.has(token))) kept.add(token);
    this.batches.push(kept);
    this.held += kept.size;
    while (this.held - this.batches[0]!.size >= this.window) this.held -= this.batches.shift()!.size;
    return [...kept];
  }
}
