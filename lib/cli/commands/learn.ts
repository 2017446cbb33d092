import { loadConfig } from '../../config/load';
import { Classifier, createBayesStore } from '../../checks/content/classifier';
import { learnMessage, unlearnMessage } from '../../checks/content/learn';
import type { LearnOutcome, UnlearnOutcome } from '../../checks/content/seen';
import type { ContentSettings } from '../../checks/content/settings';
import type { Label } from '../../checks/content/bayes';
import { silentLogger } from '../../runtime';
import { readMessages } from '../sources';
import { type CliCommand, UserError } from '../types';

type Outcome = LearnOutcome | UnlearnOutcome;

interface Tally {
  done: number;
  failed: number;
  outcomes: Record<Outcome, number>;
}

function tally(): Tally {
  return { done: 0, failed: 0, outcomes: { learnt: 0, 'already learnt': 0, relearnt: 0, unlearnt: 0, 'not learnt': 0 } };
}

/** "spam: 3 learnt, 1 already learnt, 1 relearnt (moved from ham)" or "spam: 2 unlearnt, 1 not learnt". */
function summaryLine(label: Label, t: Tally, unlearn: boolean): string {
  const o = t.outcomes;
  const other = label === 'spam' ? 'ham' : 'spam';
  const parts = unlearn
    ? [`${o.unlearnt} unlearnt`, `${o['not learnt']} not learnt (nothing to take back)`]
    : [`${o.learnt} learnt`, `${o['already learnt']} already learnt`, `${o.relearnt} relearnt (moved from ${other})`];
  if (t.failed) parts.push(`${t.failed} skipped`);
  return `${label}: ${parts.join(', ')}`;
}

function progress(label: string, done: number, failed: number, started: number): string {
  const rate = done / Math.max(0.001, (Date.now() - started) / 1000);
  return `\rlearning ${label}: ${done} messages${failed ? `, ${failed} skipped` : ''} (${rate.toFixed(0)}/s)`;
}

export const command: CliCommand = {
  name: 'learn',
  summary: 'teach the content classifier spam and ham from .eml files, directories, maildirs or mbox files',
  usage: 'mailward learn [--spam PATH]... [--ham PATH]... [--unlearn] [--config DIR]',
  options: {
    spam: { type: 'string', multiple: true },
    ham: { type: 'string', multiple: true },
    unlearn: { type: 'boolean' },
    config: { type: 'string' },
  },
  async run(args, io) {
    const v = args.values as { spam?: string[]; ham?: string[]; unlearn?: boolean; config?: string };
    if (!v.spam?.length && !v.ham?.length) throw new UserError(`give --spam PATH and/or --ham PATH\nusage: ${command.usage}`);
    if (args.positionals.length) throw new UserError(`unexpected ${JSON.stringify(args.positionals[0])}: paths go after --spam or --ham`);
    const config = loadConfig({ configDir: v.config });
    const settings = config.modules.find((m) => m.module.name === 'content')!.settings as ContentSettings;
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
        for (const message of readMessages(paths)) {
          try {
            // Idempotent: the store keeps a seen record per message (docs/content.md).
            const outcome = v.unlearn ? await unlearnMessage(classifier, message.raw, settings.limits) : await learnMessage(classifier, message.raw, label, settings.limits);
            c.outcomes[outcome]++;
            c.done++;
          } catch (err) {
            c.failed++;
            io.err(`${tty ? '\n' : ''}${message.name}: skipped (${(err as Error).message})`);
          }
          if (tty && (c.done + c.failed) % 50 === 0) process.stderr.write(progress(label, c.done, c.failed, started));
        }
        if (tty) process.stderr.write(`${progress(label, c.done, c.failed, started)}\n`);
        else io.err(progress(label, c.done, c.failed, started).slice(1));
      }
    } finally {
      await classifier.close();
    }
    for (const label of ['spam', 'ham'] as const) if (v[label]?.length) io.out(summaryLine(label, counts[label], !!v.unlearn));
    io.out(`model (${classifier.store.description}): ${classifier.model.nspam} spam and ${classifier.model.nham} ham (was ${before.spam} and ${before.ham}), ${classifier.model.tokens.size} tokens`);
    if (classifier.model.nspam < settings.bayes.minLearns || classifier.model.nham < settings.bayes.minLearns) {
      io.out(`note: the classifier scores only once it has ${settings.bayes.minLearns} of each ([bayes] min_learns)`);
    }
    return counts.spam.failed + counts.ham.failed ? 1 : 0;
  },
};
