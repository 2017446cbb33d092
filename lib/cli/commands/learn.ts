import { loadConfig } from '../../config/load';
import { Classifier, createBayesStore } from '../../checks/content/classifier';
import { messageTokens } from '../../checks/content/learn';
import type { ContentSettings } from '../../checks/content/settings';
import type { Label } from '../../checks/content/bayes';
import { silentLogger } from '../../runtime';
import { readMessages } from '../sources';
import { type CliCommand, UserError } from '../types';

function progress(label: string, done: number, failed: number, started: number): string {
  const rate = done / Math.max(0.001, (Date.now() - started) / 1000);
  return `\rlearning ${label}: ${done} messages${failed ? `, ${failed} unreadable` : ''} (${rate.toFixed(0)}/s)`;
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
    const counts: Record<Label, { done: number; failed: number }> = { spam: { done: 0, failed: 0 }, ham: { done: 0, failed: 0 } };
    try {
      for (const label of ['spam', 'ham'] as const) {
        const paths = v[label] ?? [];
        if (!paths.length) continue;
        const started = Date.now();
        const c = counts[label];
        for (const message of readMessages(paths)) {
          try {
            const tokens = await messageTokens(message.raw, settings.limits);
            if (v.unlearn) classifier.unlearn(tokens, label);
            else classifier.learn(tokens, label);
            c.done++;
          } catch (err) {
            c.failed++;
            io.err(`${tty ? '\n' : ''}${message.name}: skipped (${(err as Error).message})`);
          }
          if (tty && (c.done + c.failed) % 50 === 0) process.stderr.write(progress(label, c.done, c.failed, started));
          // Save in batches so a long run keeps its work if interrupted.
          if (c.done % 2000 === 0) await classifier.flush();
        }
        if (tty) process.stderr.write(`${progress(label, c.done, c.failed, started)}\n`);
        else io.err(progress(label, c.done, c.failed, started).slice(1));
      }
      await classifier.flush();
    } finally {
      await classifier.close();
    }
    const verb = v.unlearn ? 'unlearnt' : 'learnt';
    io.out(`${verb} ${counts.spam.done} spam and ${counts.ham.done} ham into ${classifier.store.description}`);
    io.out(`model: ${classifier.model.nspam} spam and ${classifier.model.nham} ham (was ${before.spam} and ${before.ham}), ${classifier.model.tokens.size} tokens`);
    if (classifier.model.nspam < settings.bayes.minLearns || classifier.model.nham < settings.bayes.minLearns) {
      io.out(`note: the classifier scores only once it has ${settings.bayes.minLearns} of each ([bayes] min_learns)`);
    }
    return counts.spam.failed + counts.ham.failed ? 1 : 0;
  },
};
