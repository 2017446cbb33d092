import { BayesModel } from './bayes';
import type { Deltas, RedisBayesStore, SqliteBayesStore } from './store';

/** Tokens per write when a model is copied: one MULTI of a whole large model would hold Redis up. */
const COPY_BATCH = 10_000;

export type ModelCopy =
  | { copied: true; spam: number; ham: number; tokens: number; seen: number }
  /** occupied: the target already holds learns (not copied, so as not to count twice). */
  | { copied: false; occupied: boolean; reason: string };

/**
 * Copies a node's SQLite model into Redis (a single node joining a fleet):
 * the counts, and the seen records that make learning a message again count
 * once. Into an empty model the counts are set, not added, under a mark that
 * says a copy is under way: a copy cut short (Redis gone, the command
 * killed) is run again and gives the same counts. A model that already holds
 * learns is left alone unless `force`, which adds to it.
 */
export async function copyModel(from: SqliteBayesStore, to: RedisBayesStore, force = false): Promise<ModelCopy> {
  const source = new BayesModel();
  await from.load(source);
  if (!source.nspam && !source.nham) return { copied: false, occupied: false, reason: `${from.description} holds no learnt message` };
  const target = new BayesModel();
  await to.load(target);
  const resuming = (await to.copyInProgress()) === from.description;
  const occupied = !!(target.nspam || target.nham || target.tokens.size) && !resuming;
  if (occupied && !force) {
    return { copied: false, occupied: true, reason: `${to.description} already holds ${target.nspam} spam and ${target.nham} ham learnt (${target.tokens.size} tokens); copying would add to them (--force to add anyway)` };
  }
  const write = occupied ? (batch: Deltas) => to.save(batch) : (batch: Deltas) => to.putCounts(batch);
  if (!occupied) await to.markCopy(from.description);
  let batch: Deltas = new Map();
  for (const [token, counts] of source.tokens) {
    batch.set(token, [counts.spam, counts.ham]);
    if (batch.size >= COPY_BATCH) {
      await write(batch);
      batch = new Map();
    }
  }
  // The totals last: a node reading the model meanwhile sees counts without their messages and
  // abstains (min_learns), never the reverse.
  batch.set('', [source.nspam, source.nham]);
  await write(batch);
  let seen = 0;
  for (const records of from.seenRecords()) {
    await to.importSeen(records);
    seen += records.length;
  }
  if (!occupied) await to.markCopy(null);
  return { copied: true, spam: source.nspam, ham: source.nham, tokens: source.tokens.size, seen };
}
