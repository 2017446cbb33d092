/**
 * A token-count spam classifier: counts per token and class, Robinson's
 * per-token probability with a prior, Fisher's chi-square combining (the
 * SpamBayes method). Counting is all training is, so it learns and unlearns
 * one message at a time and trains thousands of messages per second.
 */

export type Label = 'spam' | 'ham';

export interface TokenCounts {
  spam: number;
  ham: number;
}

export interface BayesOptions {
  /** Weight of the prior on a token seen a few times (Robinson's s). */
  unknownWordStrength: number;
  /** The prior itself (Robinson's x). */
  unknownWordProb: number;
  /** Tokens whose probability is closer than this to 0.5 carry no evidence. */
  minimumProbStrength: number;
  /** At most this many of the strongest tokens are combined. */
  maxDiscriminators: number;
  /** Tokens seen fewer times than this (spam + ham) are not used. */
  minTokenCount: number;
  /**
   * Robinson's confidence weight n counts a token's messages of each class
   * scaled to the smaller class (a ham count times nspam/nham when ham is the
   * larger class), so how sure the model is of a token does not depend on
   * which class an operator happened to feed more of.
   */
  balanceClasses: boolean;
}

export const DEFAULT_BAYES_OPTIONS: BayesOptions = {
  unknownWordStrength: 0.3,
  unknownWordProb: 0.5,
  minimumProbStrength: 0.1,
  maxDiscriminators: 150,
  minTokenCount: 1,
  balanceClasses: true,
};

export interface Evidence {
  token: string;
  prob: number;
}

export interface Classification {
  /** 0 (ham) .. 1 (spam). */
  probability: number;
  /** The strongest tokens each way, for explanations. */
  spamTokens: Evidence[];
  hamTokens: Evidence[];
  used: number;
}

/** Survival function of the chi-square distribution with an even number of degrees of freedom. */
export function chi2Q(x2: number, v: number): number {
  const m = x2 / 2;
  let term = Math.exp(-m);
  let sum = term;
  for (let i = 1; i < v / 2; i++) {
    term *= m / i;
    sum += term;
  }
  return Math.min(sum, 1);
}

/**
 * Counts held in memory. Every change is also recorded as a pending delta so a
 * store can persist just what changed (several processes and nodes can then
 * add to one shared model without overwriting each other).
 */
export class BayesModel {
  readonly tokens = new Map<string, TokenCounts>();
  nspam = 0;
  nham = 0;
  /** Changes not yet saved: token -> [spam delta, ham delta]; '' holds the message totals. */
  pending = new Map<string, [number, number]>();

  constructor(readonly options: BayesOptions = DEFAULT_BAYES_OPTIONS) {}

  private bump(token: string, ds: number, dh: number, track: boolean): void {
    let c = this.tokens.get(token);
    if (!c) {
      if (ds <= 0 && dh <= 0) return;
      c = { spam: 0, ham: 0 };
      this.tokens.set(token, c);
    }
    // Unlearning never drives a count below zero (the message may predate the model's file).
    const s = Math.max(0, c.spam + ds) - c.spam;
    const h = Math.max(0, c.ham + dh) - c.ham;
    c.spam += s;
    c.ham += h;
    if (c.spam === 0 && c.ham === 0) this.tokens.delete(token);
    if (track) this.record(token, s, h);
  }

  private record(key: string, ds: number, dh: number): void {
    if (!ds && !dh) return;
    const p = this.pending.get(key);
    if (p) {
      p[0] += ds;
      p[1] += dh;
    } else this.pending.set(key, [ds, dh]);
  }

  /** Adds one message's (unique) tokens to a class. */
  learn(tokens: Iterable<string>, label: Label): void {
    this.change(tokens, label, 1);
  }

  /** Takes one previously learnt message back out of a class. */
  unlearn(tokens: Iterable<string>, label: Label): void {
    this.change(tokens, label, -1);
  }

  /**
   * Mirrors a change the store has already made (Classifier.learnOnce writes
   * the counts and the message's seen record in one transaction): the counts
   * move, nothing becomes pending.
   */
  applyStored(tokens: Iterable<string>, label: Label, by: 1 | -1): void {
    this.change(tokens, label, by, false);
  }

  private change(tokens: Iterable<string>, label: Label, by: 1 | -1, track = true): void {
    const ds = label === 'spam' ? by : 0;
    const dh = label === 'ham' ? by : 0;
    for (const token of new Set(tokens)) this.bump(token, ds, dh, track);
    const s = Math.max(0, this.nspam + ds) - this.nspam;
    const h = Math.max(0, this.nham + dh) - this.nham;
    this.nspam += s;
    this.nham += h;
    if (track) this.record('', s, h);
  }

  /** Applies counts read from storage (absolute values), without marking them pending. */
  setCounts(token: string, spam: number, ham: number): void {
    if (spam <= 0 && ham <= 0) this.tokens.delete(token);
    else this.tokens.set(token, { spam: Math.max(0, spam), ham: Math.max(0, ham) });
  }

  /** Takes the pending deltas (the caller persists them). */
  takePending(): Map<string, [number, number]> {
    const out = this.pending;
    this.pending = new Map();
    return out;
  }

  /** Puts deltas back after a failed save, merged with anything learnt meanwhile. */
  restorePending(deltas: Map<string, [number, number]>): void {
    for (const [key, [s, h]] of deltas) this.record(key, s, h);
  }

  tokenProb(counts: TokenCounts): number {
    const { unknownWordStrength: s, unknownWordProb: x } = this.options;
    const spamRatio = counts.spam / Math.max(1, this.nspam);
    const hamRatio = counts.ham / Math.max(1, this.nham);
    const p = spamRatio + hamRatio === 0 ? x : spamRatio / (spamRatio + hamRatio);
    let n = counts.spam + counts.ham;
    if (this.options.balanceClasses && this.nspam > 0 && this.nham > 0) {
      const smaller = Math.min(this.nspam, this.nham);
      n = smaller * (spamRatio + hamRatio);
    }
    return (s * x + n * p) / (s + n);
  }

  classify(tokens: Iterable<string>): Classification {
    const { minimumProbStrength, maxDiscriminators, minTokenCount } = this.options;
    const clues: (Evidence & { strength: number })[] = [];
    const unique = Array.isArray(tokens) ? new Set(tokens as string[]) : new Set(tokens);
    for (const token of unique) {
      const counts = this.tokens.get(token);
      if (!counts || counts.spam + counts.ham < minTokenCount) continue;
      const prob = this.tokenProb(counts);
      const strength = Math.abs(prob - 0.5);
      if (strength >= minimumProbStrength) clues.push({ token, prob, strength });
    }
    clues.sort((a, b) => b.strength - a.strength || (a.token < b.token ? -1 : 1));
    const used = clues.length > maxDiscriminators ? clues.slice(0, maxDiscriminators) : clues;
    if (!used.length) return { probability: 0.5, spamTokens: [], hamTokens: [], used: 0 };
    let lnSpam = 0;
    let lnHam = 0;
    for (const { prob } of used) {
      // Clamp so one token seen only in one class cannot make a logarithm infinite.
      const p = Math.min(Math.max(prob, 1e-6), 1 - 1e-6);
      lnSpam += Math.log(1 - p);
      lnHam += Math.log(p);
    }
    const n = used.length;
    const s = 1 - chi2Q(-2 * lnSpam, 2 * n);
    const h = 1 - chi2Q(-2 * lnHam, 2 * n);
    return {
      probability: (s - h + 1) / 2,
      spamTokens: used.filter((e) => e.prob > 0.5).slice(0, 5).map(({ token, prob }) => ({ token, prob })),
      hamTokens: used.filter((e) => e.prob < 0.5).slice(0, 5).map(({ token, prob }) => ({ token, prob })),
      used: n,
    };
  }
}
