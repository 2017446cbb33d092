import { existsSync } from 'node:fs';
import { copyModel } from '../../checks/content/copy';
import type { ContentSettings } from '../../checks/content/settings';
import { RedisBayesStore, SqliteBayesStore } from '../../checks/content/store';
import { openListStore } from '../../checks/rules';
import { SqliteListStore } from '../../checks/rules/list-store';
import type { RulesSettings } from '../../checks/rules/settings';
import { copiedMark } from '../../util/sqlite';
import { openSharedState } from '../shared-state';
import { type CliCommand, UserError } from '../types';
import { redactUrl } from '../../config/reader';
import { replaceFile } from '../../util/owner';

const USAGE = 'mailward migrate [--config DIR] [--force | --mark-copied]';

/** Says beside a SQLite file that its contents are in Redis now: an MTA stops warning that it was left behind. */
function markCopied(path: string, what: string, to: string): void {
  // Replaced, never written through: made by root, the MTA user's like its directory (util/owner).
  replaceFile(copiedMark(path), `${JSON.stringify({ copied: what, to, at: new Date().toISOString() })}\n`);
}

/**
 * A single node that joins a fleet ([state] backend = redis) keeps its
 * classifier model and run-time allow/block lists in Redis from then on; what
 * it learnt and listed in its SQLite files would be left behind. This copies
 * it over, once.
 */
export const command: CliCommand = {
  name: 'migrate',
  summary: "copy a single node's SQLite classifier model and run-time allow/block lists into the Redis of [state] (joining a fleet)",
  usage: USAGE,
  options: { config: { type: 'string' }, force: { type: 'boolean' }, 'mark-copied': { type: 'boolean' } },
  async run(args, io, cli) {
    const v = args.values as { config?: string; force?: boolean; 'mark-copied'?: boolean };
    if (args.positionals.length) throw new UserError(`no arguments expected\nusage: ${USAGE}`);
    const config = cli.loadConfig(v.config);
    if (v['mark-copied']) {
      // Copied before (by hand, by an older mailward): only say so, so MTAs stop warning.
      const rules = config.modules.find((m) => m.module.name === 'rules')?.settings as RulesSettings | undefined;
      const bayes = (config.modules.find((m) => m.module.name === 'content')?.settings as ContentSettings | undefined)?.bayes;
      for (const path of [rules?.listSqlitePath, bayes?.path]) {
        if (!path || !existsSync(path)) continue;
        markCopied(path, 'marked by hand (--mark-copied)', 'redis');
        io.out(`marked ${path} as copied`);
      }
      return 0;
    }
    const { store: state, problem } = openSharedState(config.shared, v.config, 'the classifier model and run-time lists of a fleet');
    let failed = false;
    try {
      const rules = config.modules.find((m) => m.module.name === 'rules')?.settings as RulesSettings | undefined;
      if (rules) {
        const useState = rules.listStore === 'state' || (rules.listStore === 'auto' && rules.stateBackend === 'redis');
        if (!useState) io.out(`lists: not moved, [lists] store = sqlite keeps them in ${rules.listSqlitePath}`);
        else if (!existsSync(rules.listSqlitePath)) io.out(`lists: nothing to copy (no ${rules.listSqlitePath})`);
        else {
          const from = new SqliteListStore(rules.listSqlitePath);
          const to = openListStore(rules, { state });
          try {
            let added = 0;
            const entries = await from.all();
            for (const e of entries) if (await to.add(e.list, e.scope, e.entry)) added++;
            const p = problem();
            if (p) throw new UserError(`cannot reach the shared state: ${p}`, 1);
            io.out(`lists: ${added} entr${added === 1 ? 'y' : 'ies'} copied from ${rules.listSqlitePath}${entries.length > added ? `, ${entries.length - added} already there` : ''}`);
            markCopied(rules.listSqlitePath, `${entries.length} entries`, `redis ${redactUrl(config.shared.state.redisUrl)} (prefix ${config.shared.state.prefix})`);
          } finally {
            await from.close();
          }
        }
      }
      const content = config.modules.find((m) => m.module.name === 'content')?.settings as ContentSettings | undefined;
      const bayes = content?.bayes;
      if (bayes) {
        if (bayes.storage !== 'redis') io.out(`model: not moved, [bayes] storage = sqlite keeps it in ${bayes.path}`);
        else if (!existsSync(bayes.path)) io.out(`model: nothing to copy (no ${bayes.path})`);
        else {
          const from = new SqliteBayesStore(bayes.path);
          const to = new RedisBayesStore(bayes.redisUrl, bayes.redisPrefix);
          try {
            const result = await copyModel(from, to, !!v.force);
            if (result.copied) {
              io.out(`model: ${result.spam} spam and ${result.ham} ham learnt (${result.tokens} tokens, ${result.seen} seen records) copied from ${bayes.path} to ${to.description}`);
              markCopied(bayes.path, `${result.spam} spam and ${result.ham} ham learnt`, to.description);
            } else {
              io.out(`model: not copied: ${result.reason}`);
              failed ||= result.occupied;
            }
          } catch (err) {
            throw new UserError(`model: cannot copy to ${to.description}: ${(err as Error).message}`, 1);
          } finally {
            await Promise.all([from.close(), to.close()]);
          }
        }
      }
    } finally {
      await state.close();
    }
    io.out('The SQLite files are left as they were.');
    return failed ? 1 : 0;
  },
};
