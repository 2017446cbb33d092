import type { Logger } from '../types';
import { warnIfLeftBehind } from '../../util/sqlite';
import { BayesModel, type Classification, type Label } from './bayes';
import type { BayesSettings } from './settings';
import { messageId, type LearnOutcome, type UnlearnOutcome } from './seen';
import { MODEL_VERSION, RedisBayesStore, SqliteBayesStore, type BayesStore, type PrunePolicy, type PruneResult } from './store';

const DAY_MS = 86_400_000;

/**
 * The model in memory plus its store: loaded in the background at start (the
 * classifier abstains until then), changes saved every save_interval and
 * re-read every reload_interval (to pick up `mailward learn` and other
 * nodes), and expired once a day when a prune policy is given. Nothing here
 * runs on the mail path except `classify`.
 */
export class Classifier {
  readonly model = new BayesModel();
  loaded = false;
  lastError = '';
  private timers: NodeJS.Timeout[] = [];
  private loading?: Promise<void>;
  /** [bayes] max_tokens applied before the first load (set by start); 0: none. */
  private capAtLoad = 0;
  private saving: Promise<void> = Promise.resolve();
  /** The largest totals read from the store so far: a later read below min_learns means the model was lost. */
  private peak = { spam: 0, ham: 0 };

  constructor(
    readonly store: BayesStore,
    private readonly log: Logger,
    /** [bayes] min_learns: below it (of either class) the classifier abstains. */
    public minLearns = 0,
  ) {}

  /**
   * Loads now (in the background) and starts the periodic save, reload and
   * (with a policy) daily prune. A policy's size bound is also applied to the
   * store before that first load, so a model grown past it is never read whole.
   */
  start(saveIntervalS: number, reloadIntervalS: number, prune?: PrunePolicy): void {
    this.capAtLoad = prune?.maxTokens ?? 0;
    void this.ready();
    this.timers.push(setInterval(() => void this.flush(), saveIntervalS * 1000).unref());
    this.timers.push(setInterval(() => void this.reload(), reloadIntervalS * 1000).unref());
    if (prune) {
      // The first run at a random point of the first hour: processes and nodes started together do not prune together.
      const first = setTimeout(() => {
        void this.prune(prune);
        this.timers.push(setInterval(() => void this.prune(prune), DAY_MS).unref());
      }, Math.random() * 3_600_000).unref();
      this.timers.push(first);
    }
  }

  /** Expires rare old tokens (the next reload drops them from memory) and old seen records; never throws. */
  async prune(policy: PrunePolicy): Promise<PruneResult> {
    await this.flush();
    try {
      const removed = await this.store.prune(policy);
      if (removed.tokens || removed.seen || removed.evicted) this.log.info(`mailward content: ${pruneSummary(removed, policy)}`);
      return removed;
    } catch (err) {
      this.log.warn(`mailward content: expiring the Bayes model in ${this.store.description} failed: ${(err as Error).message}`);
      return { tokens: 0, seen: 0 };
    }
  }

  ready(): Promise<void> {
    this.loading ??= this.cap(this.capAtLoad)
      .then(() => this.reload())
      .then(() => this.warnLegacy());
    return this.loading;
  }

  /** The store's size bound on its own (before the first load); never throws. */
  private async cap(maxTokens: number): Promise<void> {
    if (!maxTokens) return;
    try {
      const evicted = await this.store.capTokens(maxTokens);
      if (evicted) this.log.info(`mailward content: removed the ${evicted} least-seen tokens of the Bayes model (max_tokens ${maxTokens})`);
    } catch (err) {
      this.log.warn(`mailward content: bounding the Bayes model in ${this.store.description} failed: ${(err as Error).message}`);
    }
  }

  /** After an upgrade of the tokenizer the old counts are not used: say so once, with the remedy. */
  private async warnLegacy(): Promise<void> {
    try {
      const old = await this.store.legacyLearns();
      if (old > 0) {
        this.log.warn(
          `mailward content: ${this.store.description} holds ${old} messages learnt with the previous tokenizer (model v1); ` +
            `they are not used by model v${MODEL_VERSION}, which abstains until it has learnt min_learns of each class: retrain with mailward learn`,
        );
      }
    } catch {
      // Only a notice: the load itself reports store errors.
    }
  }

  /** Saves what was learnt, then reads the store's sum (keeping anything learnt meanwhile). */
  async reload(): Promise<void> {
    await this.flush();
    try {
      const fresh = new BayesModel(this.model.options);
      await this.store.load(fresh);
      this.watchTotals(fresh.nspam, fresh.nham);
      // Learnt while loading and not saved yet: still to be added on top.
      for (const [token, [s, h]] of this.model.pending) {
        if (token === '') {
          fresh.nspam += s;
          fresh.nham += h;
        } else {
          const c = fresh.tokens.get(token) ?? { spam: 0, ham: 0 };
          fresh.setCounts(token, c.spam + s, c.ham + h);
        }
      }
      this.model.tokens.clear();
      for (const [token, c] of fresh.tokens) this.model.tokens.set(token, c);
      this.model.nspam = fresh.nspam;
      this.model.nham = fresh.nham;
      this.loaded = true;
      this.lastError = '';
    } catch (err) {
      this.lastError = `loading the Bayes model from ${this.store.description} failed: ${(err as Error).message}`;
      this.log.warn(`mailward content: ${this.lastError}`);
    }
  }

  /**
   * A shared model that falls from scoring to abstaining between two reads
   * was lost (a Redis flushed, or restarted without persistence): every node
   * would go on without its classifier, silently. Said once per fall, not
   * per message; the largest totals are remembered again from there.
   */
  private watchTotals(spam: number, ham: number): void {
    const gate = this.minLearns;
    const scores = (s: number, h: number) => s >= gate && h >= gate && s + h > 0;
    if (scores(this.peak.spam, this.peak.ham) && !scores(spam, ham)) {
      const cause = this.store instanceof RedisBayesStore ? 'Redis flushed, or restarted without persistence?' : 'its file replaced or emptied?';
      // Lost: at most half of what it held. A few messages unlearnt (or relearnt) at the gate are not a lost model.
      const lost = 2 * (spam + ham) <= this.peak.spam + this.peak.ham;
      this.log.warn(
        `mailward content: the Bayes model in ${this.store.description} fell from ${this.peak.spam} spam / ${this.peak.ham} ham learnt ` +
          `to ${spam} / ${ham}${gate ? `, below min_learns (${gate})` : ''}: ` +
          (lost
            ? `it was ${spam + ham ? 'mostly ' : ''}emptied (${cause}); the classifier abstains until it is retrained (mailward learn)`
            : 'the classifier abstains until it has min_learns of each class again (mailward learn)'),
      );
      this.peak = { spam, ham };
      return;
    }
    this.peak = { spam: Math.max(this.peak.spam, spam), ham: Math.max(this.peak.ham, ham) };
  }

  /** Writes pending changes; on failure they stay pending for the next try. */
  flush(): Promise<void> {
    this.saving = this.saving.then(async () => {
      const deltas = this.model.takePending();
      if (!deltas.size) return;
      try {
        await this.store.save(deltas);
      } catch (err) {
        this.model.restorePending(deltas);
        this.lastError = `saving the Bayes model to ${this.store.description} failed: ${(err as Error).message}`;
        this.log.warn(`mailward content: ${this.lastError}`);
      }
    });
    return this.saving;
  }

  /**
   * Feedback learning, idempotent: every caller (mailward learn, autolearn,
   * spamtrap symbols, quarantine release through learnMessage) comes here.
   * The store checks and updates the message's seen record and its counts in
   * one transaction, at once (not with the periodic save): learning a message
   * again changes nothing, learning it as the other class moves it. Throws
   * when the store cannot be reached (nothing is learnt then).
   */
  async learnOnce(tokens: readonly string[], label: Label): Promise<LearnOutcome> {
    const unique = [...new Set(tokens)];
    const was = await this.store.relabel(messageId(unique), unique, label);
    if (was === label) return 'already learnt';
    // Mirror the stored change in memory (a reload running meanwhile may hide it until the next one).
    if (was) this.model.applyStored(unique, was, -1);
    this.model.applyStored(unique, label, 1);
    return was ? 'relearnt' : 'learnt';
  }

  /** Takes a message back out of whichever class it was learnt as; only a message with a seen record. */
  async unlearnOnce(tokens: readonly string[]): Promise<UnlearnOutcome> {
    const unique = [...new Set(tokens)];
    const was = await this.store.relabel(messageId(unique), unique, null);
    if (!was) return 'not learnt';
    this.model.applyStored(unique, was, -1);
    return 'unlearnt';
  }

  /**
   * Raw counting, not idempotent and with no seen record: for training from a
   * corpus in memory (evaluation, benchmarks). Feedback goes through learnOnce.
   */
  learn(tokens: string[], label: Label): void {
    this.model.learn(tokens, label);
  }

  unlearn(tokens: string[], label: Label): void {
    this.model.unlearn(tokens, label);
  }

  /** Null until the model is loaded and has seen `minLearns` messages of each class. */
  classify(tokens: string[], minLearns: number): Classification | null {
    if (!this.loaded || this.model.nspam < minLearns || this.model.nham < minLearns) return null;
    return this.model.classify(tokens);
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await this.flush();
    await this.store.close();
  }
}

/** The expiry settings as a policy, or undefined when expiry is off (prune_after_days, seen_days and max_tokens 0). */
export function prunePolicy(settings: BayesSettings): PrunePolicy | undefined {
  if (!settings.pruneAfterDays && !settings.seenDays && !settings.maxTokens) return undefined;
  // prune_after_days = 0 keeps every token: a cutoff before any learn.
  const olderThanDays = settings.pruneAfterDays || Number.MAX_SAFE_INTEGER;
  return { olderThanDays, maxCount: settings.pruneMaxCount, seenDays: settings.seenDays, maxTokens: settings.maxTokens };
}

/** "expired 12 tokens (seen in at most 1 learnt message, not learnt for 180 days) and 3 seen records (older than 365 days)". */
export function pruneSummary(removed: PruneResult, policy: PrunePolicy): string {
  const tokens =
    policy.olderThanDays >= Number.MAX_SAFE_INTEGER
      ? `expired ${removed.tokens} tokens (token expiry off)`
      : `expired ${removed.tokens} tokens (seen in at most ${policy.maxCount} learnt message${policy.maxCount === 1 ? '' : 's'}, not learnt for ${policy.olderThanDays} days)`;
  const capped = removed.evicted ? `; removed the ${removed.evicted} least-seen tokens over max_tokens (${policy.maxTokens})` : '';
  return (policy.seenDays ? `${tokens} and ${removed.seen} seen records (older than ${policy.seenDays} days)` : tokens) + capped;
}

/**
 * The configured store. `busyTimeoutMs`: how long an SQLite write waits for
 * another process's lock; the MTA passes a short one (it waits on the event
 * loop, and a save that fails keeps its changes pending for the next one),
 * the CLI keeps the long default.
 */
export function createBayesStore(settings: BayesSettings, busyTimeoutMs?: number): BayesStore {
  return settings.storage === 'redis' ? new RedisBayesStore(settings.redisUrl, settings.redisPrefix) : new SqliteBayesStore(settings.path, busyTimeoutMs);
}

/** The MTA's wait for a lock on the model's SQLite file (a `mailward learn` or a shell holding it). */
const MTA_BUSY_TIMEOUT_MS = 250;

function storeKey(settings: BayesSettings): string {
  return settings.storage === 'redis' ? `redis ${settings.redisUrl} ${settings.redisPrefix}` : `sqlite ${settings.path}`;
}

/**
 * One classifier per store per process, shared across configuration reloads
 * (a reload must not make the classifier abstain while the model loads again).
 */
const open = new Map<string, { classifier: Classifier; users: number }>();

export function acquireClassifier(settings: BayesSettings, log: Logger): Classifier {
  const key = storeKey(settings);
  let entry = open.get(key);
  if (!entry) {
    if (settings.storage === 'redis') warnIfLeftBehind(settings.path, "mailward content: the classifier's counts", '[bayes] storage', (m) => log.warn(m));
    const classifier = new Classifier(createBayesStore(settings, MTA_BUSY_TIMEOUT_MS), log, settings.minLearns);
    classifier.start(settings.saveIntervalS, settings.reloadIntervalS, prunePolicy(settings));
    entry = { classifier, users: 0 };
    open.set(key, entry);
  }
  entry.users++;
  // A reload may change min_learns; the classifier (and what it remembers of the model) stays.
  entry.classifier.minLearns = settings.minLearns;
  return entry.classifier;
}

export async function releaseClassifier(settings: BayesSettings, classifier: Classifier): Promise<void> {
  const key = storeKey(settings);
  const entry = open.get(key);
  if (!entry || entry.classifier !== classifier) {
    await classifier.close();
    return;
  }
  if (--entry.users > 0) {
    await classifier.flush();
    return;
  }
  open.delete(key);
  await classifier.close();
}
