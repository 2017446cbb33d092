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
 * once. Counts are added, so a Redis model that already holds learns is left
 * alone unless `force` (copying twice would count everything twice).
 */
export async function copyModel(from: SqliteBayesStore, to: RedisBayesStore, force = false): Promise<ModelCopy> {
  const source = new BayesModel();
  await from.load(source);
  if (!source.nspam && !source.nham) return { copied: false, occupied: false, reason: `${from.description} holds no learnt message` };
  const target = new BayesModel();
  await to.load(target);
  if ((target.nspam || target.nham) && !force) {
    return { copied: false, occupied: true, reason: `${to.description} already holds ${target.nspam} spam and ${target.nham} ham learnt; copying would add to them (--force to add anyway)` };
  }
  let batch: Deltas = new Map();
  for (const [token, counts] of source.tokens) {
    batch.set(token, [counts.spam, counts.ham]);
    if (batch.size >= COPY_BATCH) {
      await to.save(batch);
      batch = new Map();
    }
  }
  // The totals last: a node reading the model meanwhile sees counts without their messages, never the reverse.
  batch.set('', [source.nspam, source.nham]);
  await to.save(batch);
  let seen = 0;
  for (const records of from.seenRecords()) {
    await to.importSeen(records);
    seen += records.length;
  }
  return { copied: true, spam: source.nspam, ham: source.nham, tokens: source.tokens.size, seen };
}
