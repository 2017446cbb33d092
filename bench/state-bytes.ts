// `node dist/bench/state-bytes.js [memory.js]`: heap bytes per entry of the reputation pool
// (SegmentedPool) at the default memory_max_entries (200,000), in `once` and in the overflow.
// Standalone, not part of `npm run bench`. Method: the heap after two full GCs, grown from one fill
// level to the next, over the entries added (lru-cache's arrays, allocated at construction or the
// first write, fall outside the difference). Values are one-field hashes as learnt reputation writes
// them. Pass another build's dist/lib/state/memory.js to compare two versions on the same machine.
import { resolve } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { SegmentedPool as Pool } from '../lib/state/memory';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const { SegmentedPool } = require(process.argv[2] ? resolve(process.argv[2]) : '../lib/state/memory') as { SegmentedPool: typeof Pool };

function heap(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** Writes `first` keys, then `then` more: bytes per entry the second lot added. */
function perEntry(first: number, then: number, hints: (i: number) => { group: string; block: string }): number {
  const pool = new SegmentedPool(200_000, { clock: () => 0 });
  const keys = Array.from({ length: first + then }, (_, i) => `rep:ip:2001:db8:${(i >> 12).toString(16)}:${(i & 4095).toString(16)}::1`);
  const write = (i: number): void => {
    pool.set(keys[i]!, { value: new Map([['20466.4:ham', '1']]) }, { ...hints(i), ttl: 86_400_000 });
  };
  for (let i = 0; i < first; i++) write(i);
  const [size, before] = [pool.size, heap()];
  for (let i = first; i < first + then; i++) write(i);
  return (heap() - before) / (pool.size - size);
}

const cases: [string, () => number][] = [
  // Each key a network of its own, under its budget: all in `once`.
  ['once', () => perEntry(2_000, 10_000, (i) => ({ group: `net:g${i}`, block: `net:b${i}` }))],
  // One network: its budget's 2,000 in `once`, then the overflow from 1,000 entries to 10,000.
  ['overflow, one network', () => perEntry(3_000, 9_000, () => ({ group: 'net:g', block: 'net:b' }))],
  // One block's budget (10,000) in `once`, then 500 networks of it, 20 entries each, in the overflow.
  ['overflow, 500 networks', () => perEntry(11_000, 9_000, (i) => ({ group: `net:g${i < 10_000 ? i % 5 : Math.floor(i / 20)}`, block: 'net:b' }))],
  // One block's budget in `once`, then each key a network of its own in the overflow (a /32 flooding from a
  // /48 per address): a share for each entry's network, the worst case of the shares' bookkeeping.
  ['overflow, a network each', () => perEntry(11_000, 9_000, (i) => ({ group: `net:g${i}`, block: 'net:b' }))],
];
for (const [label, run] of cases) console.log(`${label}: ${run().toFixed(0)} bytes an entry`);
