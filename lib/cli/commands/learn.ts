import { Classifier, createBayesStore, pruneSummary } from '../../checks/content/classifier';
import { learnMessage, unlearnMessage } from '../../checks/content/learn';
import type { LearnOutcome, UnlearnOutcome } from '../../checks/content/seen';
import type { ContentSettings } from '../../checks/content/settings';
import type { Label } from '../../checks/content/bayes';
import type { PrunePolicy } from '../../checks/content/store';
import { silentLogger } from '../../runtime';
import { oneLine } from '../safe-text';
import { readMessages } from '../sources';
import { type CliCommand, UserError } from '../types';

type Outcome = LearnOutcome | UnlearnOutcome;

interface Tally {
  done: number;
  /** Unreadable entries and messages the store failed on: exit 1. */
  failed: number;
  /** Files without a header block (images, READMEs): left out, not an error. */
  notMessages: number;
  outcomes: Record<Outcome, number>;
}

function tally(): Tally {
  return { done: 0, failed: 0, notMessages: 0, outcomes: { learnt: 0, 'already learnt': 0, relearnt: 0, unlearnt: 0, 'not learnt': 0 } };
}

/** "spam: 3 learnt, 1 already learnt, 1 relearnt (moved from ham)" or "spam: 2 unlearnt, 1 not learnt". */
function summaryLine(label: Label, t: Tally, unlearn: boolean): string {
  const o = t.outcomes;
  const other = label === 'spam' ? 'ham' : 'spam';
  const parts = unlearn
    ? [`${o.unlearnt} unlearnt`, `${o['not learnt']} not learnt (nothing to take back)`]
    : [`${o.learnt} learnt`, `${o['already learnt']} already learnt`, `${o.relearnt} relearnt (moved from ${other})`];
  if (t.failed) parts.push(`${t.failed} skipped`);
  if (t.notMessages) parts.push(`${t.notMessages} not ${t.notMessages === 1 ? 'a message' : 'messages'} (no header block)`);
  return `${label}: ${parts.join(', ')}`;
}

/**
 * Measured on the SpamAssassin corpus (docs/performance.md, "Class
 * balance"): with less ham than spam learnt, good mail is flagged more
 * often; with under a tenth as much spam as ham, less spam is caught.
 */
export function balanceNote(nspam: number, nham: number): string | undefined {
  if (!nspam || !nham) return undefined;
  if (nham < nspam) return `note: fewer ham than spam learnt (${nham} and ${nspam}): with ham scarce, more good mail is taken for spam; learn at least as much ham as spam`;
  if (nspam * 10 < nham) return `note: under a tenth as much spam as ham learnt (${nspam} and ${nham}): with spam scarce, less of it is caught; learn more spam`;
  return undefined;
}

function progress(label: string, done: number, failed: number, started: number): string {
  const rate = done / Math.max(0.001, (Date.now() - started) / 1000);
  return `\rlearning ${label}: ${done} messages${failed ? `, ${failed} skipped` : ''} (${rate.toFixed(0)}/s)`;
}

function wholeNumber(value: string, option: string, min: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n < min) throw new UserError(`${option} takes a whole number${min ? ` of at least ${min}` : ''}, not ${JSON.stringify(value)}`);
  return n;
}

interface PruneOptions {
  'older-than'?: string;
  'max-count'?: string;
  'seen-days'?: string;
}

/**
 * --older-than/--max-count/--seen-days, else [bayes] prune_after_days,
 * prune_max_count and seen_days (prune_after_days may say "never": then
 * --older-than is needed); the size bound is always [bayes] max_tokens.
 */
function prunePolicyOf(v: PruneOptions, settings: ContentSettings): PrunePolicy {
  const olderThanDays = v['older-than'] !== undefined ? wholeNumber(v['older-than'], '--older-than', 0) : settings.bayes.pruneAfterDays;
  if (v['older-than'] === undefined && olderThanDays === 0) {
    throw new UserError('[bayes] prune_after_days = 0 (expiry off): say how old with --older-than DAYS');
  }
  const maxCount = v['max-count'] !== undefined ? wholeNumber(v['max-count'], '--max-count', 1) : settings.bayes.pruneMaxCount;
  const seenDays = v['seen-days'] !== undefined ? wholeNumber(v['seen-days'], '--seen-days', 0) : settings.bayes.seenDays;
  return { olderThanDays, maxCount, seenDays, maxTokens: settings.bayes.maxTokens };
}

export const command: CliCommand = {
  name: 'learn',
  summary: 'teach the content classifier spam and ham from .eml files, directories, maildirs or mbox files; expire rare old tokens',
  usage: 'mailward learn [--spam PATH]... [--ham PATH]... [--unlearn] [--prune [--older-than DAYS] [--max-count N] [--seen-days DAYS]] [--config DIR]',
  options: {
    spam: { type: 'string', multiple: true },
    ham: { type: 'string', multiple: true },
    unlearn: { type: 'boolean' },
    prune: { type: 'boolean' },
    'older-than': { type: 'string' },
    'max-count': { type: 'string' },
    'seen-days': { type: 'string' },
    config: { type: 'string' },
  },
  async run(args, io, cli) {
    const v = args.values as PruneOptions & { spam?: string[]; ham?: string[]; unlearn?: boolean; prune?: boolean; config?: string };
    if (!v.prune && (v['older-than'] ?? v['max-count'] ?? v['seen-days']) !== undefined) throw new UserError('--older-than, --max-count and --seen-days go with --prune');
    if (!v.spam?.length && !v.ham?.length && !v.prune) throw new UserError(`give --spam PATH and/or --ham PATH, or --prune\nusage: ${command.usage}`);
    if (args.positionals.length) throw new UserError(`unexpected ${JSON.stringify(args.positionals[0])}: paths go after --spam or --ham`);
    const config = cli.loadConfig(v.config);
    const settings = config.modules.find((m) => m.module.name === 'content')!.settings as ContentSettings;
    const policy = v.prune ? prunePolicyOf(v, settings) : undefined;
    const classifier = new Classifier(createBayesStore(settings.bayes), silentLogger);
    await classifier.ready();
    if (!classifier.loaded) throw new UserError(classifier.lastError || 'the Bayes model could not be loaded', 1);
    const before = { spam: classifier.model.nspam, ham: classifier.model.nham };
    const tty = process.stderr.isTTY;
    const counts: Record<Label, Tally> = { spam: tally(), ham: tally() };
    try {
      for (const label of ['spam', 'ham'] as const) {
        const paths = v[label] ?? [];
        if (!paths.length) continue;
        const started = Date.now();
        const c = counts[label];
        // A file is named by whoever saved it (an attachment's name, a mail client): escaped, like the
        // reasons that may quote it, so a name cannot write to the terminal or break the line.
        const skipped = (name: string, why: string) => io.err(`${tty ? '\n' : ''}${oneLine(name)}: skipped (${oneLine(why)})`);
        for (const message of readMessages(paths)) {
          if (message.kind === 'unreadable') {
            c.failed++;
            skipped(message.name, message.reason);
            continue;
          }
          if (message.kind === 'not a message') {
            c.notMessages++;
            skipped(message.name, 'not a message: no header block');
            continue;
          }
          try {
            // Idempotent: the store keeps a seen record per message (docs/content.md).
            const outcome = v.unlearn
              ? await unlearnMessage(classifier, message.raw, settings.limits, settings.subjectTag)
              : await learnMessage(classifier, message.raw, label, settings.limits, settings.subjectTag);
            c.outcomes[outcome]++;
            c.done++;
          } catch (err) {
            c.failed++;
            skipped(message.name, (err as Error).message);
          }
          if (tty && (c.done + c.failed) % 50 === 0) process.stderr.write(progress(label, c.done, c.failed, started));
        }
        if (tty) process.stderr.write(`${progress(label, c.done, c.failed, started)}\n`);
        else io.err(progress(label, c.done, c.failed, started).slice(1));
      }
      if (policy) {
        const removed = await classifier.store.prune(policy);
        await classifier.reload();
        io.out(pruneSummary(removed, policy));
      }
    } finally {
      await classifier.close();
    }
    for (const label of ['spam', 'ham'] as const) if (v[label]?.length) io.out(summaryLine(label, counts[label], !!v.unlearn));
    io.out(`model (${oneLine(classifier.store.description)}): ${classifier.model.nspam} spam and ${classifier.model.nham} ham (was ${before.spam} and ${before.ham}), ${classifier.model.tokens.size} tokens`);
    if (classifier.model.nspam < settings.bayes.minLearns || classifier.model.nham < settings.bayes.minLearns) {
      io.out(`note: the classifier scores only once it has ${settings.bayes.minLearns} of each ([bayes] min_learns)`);
    }
    const balance = balanceNote(classifier.model.nspam, classifier.model.nham);
    if (balance) io.out(balance);
    return counts.spam.failed + counts.ham.failed ? 1 : 0;
  },
};
