/**
 * `npm run cv [-- options]`: k-fold cross-validation of the content classifier
 * on the TRAINING split only (bench/corpus.ts; the test split is never read).
 * Every tokenizer and model parameter is chosen with this, never on the test
 * set. Folds: round robin within each folder in sha1 order (stratified).
 *
 *   --folds N               folds (5)
 *   --drift                 instead of folds, one round across time within the
 *                           training split: learn the earlier collections
 *                           (easy-ham-1, hard-ham-1, spam-1), score the later
 *                           ones (easy-ham-2, spam-2)
 *   --try 'k=v,k=v'         a variant to compare with the defaults (repeatable);
 *                           keys are TokenizerOptions and BayesOptions fields,
 *                           `threshold`, and the training regime: `train=tone`
 *                           (train on or near error: classify each message and
 *                           learn it only when its score is within `margin`
 *                           (0.02) of the wrong end; `passes` (3) passes, each
 *                           message learnt at most once, in the order of
 *                           sha1(`order` + key), `first=spam|ham` to learn
 *                           one class before the other, everything learnt
 *                           until `warm` (200) of each) instead of `train=all`;
 *                           `spamShare`/`hamShare` (1) learn only that share
 *                           of a class (a fixed draw), to measure imbalance
 *   --json                  one JSON object per variant
 *
 * Prints per variant, on the out-of-fold scores: recall and ham FP at the
 * default threshold, AUC, recall at ham FP <= 0.25% and at zero ham FP, and
 * the largest out-of-fold ham score (the zero-FP threshold `npm run eval` uses).
 */
import { createContext } from '../lib/message';
import { BayesModel, DEFAULT_BAYES_OPTIONS, type BayesOptions, type Label } from '../lib/checks/content/bayes';
import { messageParts, type MessageParts } from '../lib/checks/content/parts';
import { tokenize, DEFAULT_TOKENIZER_OPTIONS, type TokenizerOptions } from '../lib/checks/content/tokenize';
import { DEFAULT_CONTENT_SETTINGS } from '../lib/checks/content/settings';
import { auc, folds as assignFolds, isEarlierCollection, isLaterCollection, loadCorpus, recallAt, sha1, split, thresholdForFpr, type Doc } from './corpus';

/** How a fold's model is trained: every message once, or on or near error (TONE). */
interface Training {
  train: 'all' | 'tone';
  margin: number;
  passes: number;
  order: string;
  /** Which class is learnt first ('mixed': one sequence), as `mailward learn --spam A --ham B` does spam first. */
  first: 'mixed' | Label;
  /** Messages of each class learnt unconditionally first ([bayes] min_learns). */
  warm: number;
  /** Share of each class's training messages learnt (a fixed subset by sha1), to see how a class imbalance moves the figures. */
  spamShare: number;
  hamShare: number;
}

interface Variant {
  name: string;
  tokenizer: TokenizerOptions;
  bayes: BayesOptions;
  threshold: number;
  training: Training;
}

function parseVariant(spec: string): Variant {
  const tokenizer: Record<string, unknown> = { ...DEFAULT_TOKENIZER_OPTIONS };
  const bayes: Record<string, unknown> = { ...DEFAULT_BAYES_OPTIONS };
  let threshold = DEFAULT_CONTENT_SETTINGS.bayes.spamThreshold;
  const training: Record<string, unknown> = {
    train: 'all',
    margin: 0.02,
    passes: 3,
    order: '',
    first: 'mixed',
    warm: DEFAULT_CONTENT_SETTINGS.bayes.minLearns,
    spamShare: 1,
    hamShare: 1,
  };
  for (const pair of spec.split(',').filter(Boolean)) {
    const [key, raw] = pair.split('=') as [string, string | undefined];
    const value: unknown = raw === 'true' ? true : raw === 'false' ? false : raw !== undefined && /^-?[\d.]+$/.test(raw) ? Number(raw) : raw;
    if (key === 'threshold') threshold = Number(raw);
    else if (key in tokenizer) tokenizer[key] = value;
    else if (key in bayes) bayes[key] = value;
    else if (key in training) training[key] = key === 'order' ? String(raw ?? '') : value;
    else
      throw new Error(
        `unknown option ${key} (tokenizer: ${Object.keys(tokenizer).join(' ')}; bayes: ${Object.keys(bayes).join(' ')}; training: ${Object.keys(training).join(' ')})`,
      );
  }
  if (training.train !== 'all' && training.train !== 'tone') throw new Error(`train must be all or tone, not ${String(training.train)}`);
  if (!['mixed', 'spam', 'ham'].includes(String(training.first))) throw new Error(`first must be mixed, spam or ham, not ${String(training.first)}`);
  return {
    name: spec || 'defaults',
    tokenizer: tokenizer as unknown as TokenizerOptions,
    bayes: bayes as unknown as BayesOptions,
    threshold,
    training: training as unknown as Training,
  };
}

/**
 * A fold's model. TONE (train on or near error, as dspam and CRM114 offer)
 * learns a message only while the model gets it wrong or nearly wrong; until
 * the model has `warm` of each class it learns everything. Kept here as an
 * experiment (docs/performance.md): its gain depends on the order messages
 * come in, so the classifier learns every message it is given.
 */
function trainFold(samples: { tokens: string[]; label: Label; key: string }[], bayes: BayesOptions, training: Training): BayesModel {
  const model = new BayesModel(bayes);
  const share = (s: { label: Label; key: string }) => (s.label === 'spam' ? training.spamShare : training.hamShare);
  // A hash of its own: the keys themselves are not uniform here (the split took the lowest 20% for the test set).
  const draw = (key: string) => parseInt(sha1(`share/${key}`).slice(0, 8), 16) / 2 ** 32;
  samples = samples.filter((s) => share(s) >= 1 || draw(s.key) < share(s));
  if (training.train === 'all') {
    for (const s of samples) model.learn(s.tokens, s.label);
  } else {
    const orderKey = (key: string) => sha1(training.order + key);
    let pending = samples.map((s) => ({ s, k: orderKey(s.key) })).sort((a, b) => (a.k < b.k ? -1 : 1)).map((x) => x.s);
    if (training.first !== 'mixed') pending = [...pending.filter((s) => s.label === training.first), ...pending.filter((s) => s.label !== training.first)];
    for (let pass = 0; pass < training.passes && pending.length; pass++) {
      const skipped: typeof pending = [];
      for (const s of pending) {
        const warm = model.nspam >= training.warm && model.nham >= training.warm;
        const p = warm ? model.classify(s.tokens).probability : 0.5;
        const nearError = s.label === 'spam' ? p < 1 - training.margin : p > training.margin;
        if (!warm || nearError) model.learn(s.tokens, s.label);
        else skipped.push(s);
      }
      pending = skipped;
    }
  }
  model.takePending();
  return model;
}

export interface CvResult {
  variant: string;
  threshold: number;
  spamRecall: number;
  hamFpr: number;
  hamFp: number;
  auc: number;
  recallAtFpr0025: number;
  recallAtZeroFp: number;
  maxHamScore: number;
  ham: number;
  spam: number;
  errors: { fp: string[]; fn: string[] };
}

/** One training and scoring round: the model learns the docs `fit` accepts and scores the ones `score` accepts. */
export interface Round {
  fit: (doc: Doc) => boolean;
  score: (doc: Doc) => boolean;
}

/** k folds: each fold is scored by a model trained on the other k-1. */
export function foldRounds(fold: Map<Doc, number>, k: number): Round[] {
  return Array.from({ length: k }, (_, f) => ({ fit: (d: Doc) => fold.get(d) !== f, score: (d: Doc) => fold.get(d) === f }));
}

/** Drift within the training split: learn its messages of the earlier collections, score those of the later ones. */
export const DRIFT_ROUND: Round = { fit: isEarlierCollection, score: isLaterCollection };

/** Scores of one variant over the rounds (out-of-fold scores for foldRounds). */
export function crossValidate(docs: { doc: Doc; parts: MessageParts }[], rounds: Round[], v: Variant): CvResult {
  const tokens = docs.map((d) => tokenize(d.parts, v.tokenizer));
  const spam: number[] = [];
  const ham: number[] = [];
  const fp: string[] = [];
  const fn: string[] = [];
  for (const round of rounds) {
    const fitOn = docs.flatMap((d, i) => (round.fit(d.doc) ? [{ tokens: tokens[i]!, label: d.doc.label, key: d.doc.key }] : []));
    const model = trainFold(fitOn, v.bayes, v.training);
    docs.forEach((d, i) => {
      if (!round.score(d.doc)) return;
      const p = model.classify(tokens[i]!).probability;
      if (d.doc.label === 'spam') {
        spam.push(p);
        if (p < v.threshold) fn.push(`${d.doc.group}/${d.doc.id} ${p.toFixed(3)}`);
      } else {
        ham.push(p);
        if (p >= v.threshold) fp.push(`${d.doc.group}/${d.doc.id} ${p.toFixed(3)}`);
      }
    });
  }
  const hamFp = ham.filter((p) => p >= v.threshold).length;
  return {
    variant: v.name,
    threshold: v.threshold,
    spamRecall: recallAt(v.threshold, spam),
    hamFpr: hamFp / ham.length,
    hamFp,
    auc: auc(spam, ham),
    recallAtFpr0025: recallAt(thresholdForFpr(ham, 0.0025), spam),
    recallAtZeroFp: recallAt(thresholdForFpr(ham, 0), spam),
    maxHamScore: Math.max(...ham),
    ham: ham.length,
    spam: spam.length,
    errors: { fp, fn },
  };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const json = args.includes('--json');
  const showErrors = args.includes('--errors');
  const k = Number(args[args.indexOf('--folds') + 1] ?? 5) || 5;
  const specs = [''];
  args.forEach((a, i) => {
    if (a === '--try') specs.push(args[i + 1] ?? '');
  });
  const variants = specs.map(parseVariant);

  const withDrift = args.includes('--drift');
  const { train } = split(loadCorpus());
  const rounds = withDrift ? [DRIFT_ROUND] : foldRounds(assignFolds(train, k), k);
  const docs: { doc: Doc; parts: MessageParts }[] = [];
  for (const doc of train) docs.push({ doc, parts: await messageParts(createContext({ ip: '192.0.2.1', raw: doc.raw })) });

  const pct = (x: number) => `${(x * 100).toFixed(2)}%`.padStart(7);
  const what = withDrift
    ? `drift within the training split: learn its ${train.filter(DRIFT_ROUND.fit).length} messages of easy-ham-1, hard-ham-1 and spam-1, score its ${train.filter(DRIFT_ROUND.score).length} of easy-ham-2 and spam-2`
    : `${k}-fold CV on the training split (${train.length} messages)`;
  if (!json) process.stdout.write(`${what}\n recall@thr  hamFP@thr      AUC  rec@FP.25%  rec@FP0  maxHam  variant\n`);
  for (const v of variants) {
    const r = crossValidate(docs, rounds, v);
    if (json) process.stdout.write(`${JSON.stringify({ ...r, errors: showErrors ? r.errors : undefined })}\n`);
    else {
      process.stdout.write(`${pct(r.spamRecall)}  ${pct(r.hamFpr)} (${r.hamFp})  ${r.auc.toFixed(5)}  ${pct(r.recallAtFpr0025)}  ${pct(r.recallAtZeroFp)}  ${r.maxHamScore.toFixed(4)}  ${r.variant}\n`);
      if (showErrors) process.stdout.write(`  FP: ${r.errors.fp.join(', ')}\n  FN: ${r.errors.fn.slice(0, 60).join(', ')}\n`);
    }
  }
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  });
}
