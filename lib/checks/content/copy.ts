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
 * the counts, added in batches, and the seen records that make learning a
 * message again count once. Each batch is recorded as done in the same
 * transaction that adds it, so a copy cut short (Redis gone, the command
 * killed) is run again and goes on where it stopped, while MTAs of the fleet
 * keep learning into the same counts. A model that already holds learns is
 * left alone unless `force`, which adds to it from the start.
 */
export async function copyModel(from: SqliteBayesStore, to: RedisBayesStore, force = false, batchSize = COPY_BATCH): Promise<ModelCopy> {
  const source = new BayesModel();
  await from.load(source);
  if (!source.nspam && !source.nham) return { copied: false, occupied: false, reason: `${from.description} holds no learnt message` };
  // Named by its content too: nodes of a fleet often have their files at the same path.
  const id = `${from.description} (${source.nspam} spam, ${source.nham} ham, ${source.tokens.size} tokens)`;
  const progress = await to.copyProgress();
  const resuming = progress?.source === id && !force;
  const target = new BayesModel();
  await to.load(target);
  if (!resuming && !force && (progress || target.nspam || target.nham || target.tokens.size)) {
    const why = progress
      ? `a copy from ${progress.source} into ${to.description} was cut short; run mailward migrate where that model is to finish it`
      : `${to.description} already holds ${target.nspam} spam and ${target.nham} ham learnt (${target.tokens.size} tokens); copying would add to them`;
    return { copied: false, occupied: true, reason: `${why} (--force to add anyway)` };
  }
  // Batches in token order, the totals last: a node reading the model meanwhile sees counts
  // without their messages and abstains (min_learns), never the reverse.
  const batches: Deltas[] = [];
  let batch: Deltas = new Map();
  for (const token of [...source.tokens.keys()].sort()) {
    const counts = source.tokens.get(token)!;
    batch.set(token, [counts.spam, counts.ham]);
    if (batch.size >= batchSize) {
      batches.push(batch);
      batch = new Map();
    }
  }
  batch.set('', [source.nspam, source.nham]);
  batches.push(batch);
  // A forced copy is not tracked: it must not take over the record of another copy cut short.
  for (let i = resuming ? progress!.done : 0; i < batches.length; i++) await to.save(batches[i]!, force ? undefined : { source: id, done: i + 1 });
  let seen = 0;
  for (const records of from.seenRecords()) {
    await to.importSeen(records);
    seen += records.length;
  }
  if (!force) await to.endCopy();
  return { copied: true, spam: source.nspam, ham: source.nham, tokens: source.tokens.size, seen };
}
