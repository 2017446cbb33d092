import type { MailwardConfig } from '../../config/load';
import type { CliCommand, CliIO } from '../../cli/types';
import { UserError } from '../../cli/types';
import { openSharedState } from '../../cli/shared-state';
import { jsonText, oneLine } from '../../cli/safe-text';
import type { StateStore } from '../../state/types';
import { openListStore } from '.';
import type { SenderListStore } from './list-store';
import { describeScope, entryWarnings, parseEntry, scopeFor, type ListKind } from './lists';
import type { RulesSettings } from './settings';
import { longest } from '../../util/text';

export interface OpenedLists {
  config: MailwardConfig;
  settings: RulesSettings;
  store: SenderListStore;
  close(): Promise<void>;
}

/**
 * Fails every call once the shared state reported a problem: the Redis store
 * answers from an in-process fallback when Redis is unreachable or slow, and
 * an entry written there is lost with the command (it must not print
 * "block X for Y" and exit 0).
 */
function failOnProblem(store: SenderListStore, problem: () => string | undefined): SenderListStore {
  const check = <T>(result: T): T => {
    const p = problem();
    if (p) throw new UserError(`cannot reach the shared state: ${p}`, 1);
    return result;
  };
  return {
    kind: store.kind,
    entries: async (list, scopes, keys) => check(await store.entries(list, scopes, keys)),
    add: async (list, scope, entry) => check(await store.add(list, scope, entry)),
    remove: async (list, scope, entry) => check(await store.remove(list, scope, entry)),
    all: async (list, scope) => check(await store.all(list, scope)),
    close: () => store.close(),
  };
}

/** The configured run-time list store, for the CLI (the MTA reads the same one). */
export function openLists(config: MailwardConfig): OpenedLists {
  const settings = config.modules.find((m) => m.module.name === 'rules')!.settings as RulesSettings;
  let state: StateStore | undefined;
  let problem: (() => string | undefined) | undefined;
  const useState = settings.listStore === 'state' || (settings.listStore === 'auto' && settings.stateBackend === 'redis');
  if (useState) ({ store: state, problem } = openSharedState(config.shared, config.configDir, 'run-time allowed and blocked senders'));
  const opened = openListStore(settings, { state: state! });
  const store = problem ? failOnProblem(opened, problem) : opened;
  return {
    config,
    settings,
    store,
    async close() {
      await store.close();
      await state?.close();
    },
  };
}

/**
 * Adds an entry; returns the warnings it deserves. Entries are written in the
 * one syntax the ini and the MTA read (docs/rules.md).
 */
export async function addEntry(
  lists: OpenedLists,
  kind: ListKind,
  scope: string,
  sender: string,
  options: { via?: string; unauthenticated?: boolean } = {},
): Promise<{ added: boolean; entry: string; warnings: string[] }> {
  const text = `${options.unauthenticated ? 'unauthenticated:' : ''}${sender.trim()}${options.via ? `[${options.via.split(',').map((s) => s.trim()).join('|')}]` : ''}`;
  let entry;
  try {
    entry = parseEntry(kind, text);
  } catch (err) {
    throw new UserError(`${JSON.stringify(text)}: ${(err as Error).message}`);
  }
  const own = new Set(lists.settings.localDomains);
  if (!own.size && scope !== '*') own.add(scope.startsWith('user:') ? scope.slice(scope.lastIndexOf('@') + 1) : scope.slice('domain:'.length));
  const warnings = entryWarnings(kind, entry, describeScope(scope), own);
  const added = await lists.store.add(kind, scope, text);
  return { added, entry: text, warnings };
}

function listCommand(kind: ListKind): CliCommand {
  const what = kind === 'allow' ? 'allowed' : 'blocked';
  return {
    name: kind,
    summary: `add, remove or list ${what} senders (everyone, a recipient domain or one recipient)`,
    usage:
      `mailward ${kind} add|remove|list [--config DIR] [--rcpt USER | --domain DOMAIN]` +
      (kind === 'allow' ? ' [--via IP/CIDR] [--unauthenticated]' : '') +
      ' [SENDER]\n  SENDER: bob@partner.example, partner.example, .partner.example (and subdomains), *@partner.example',
    options: {
      config: { type: 'string' },
      rcpt: { type: 'string' },
      domain: { type: 'string' },
      via: { type: 'string' },
      unauthenticated: { type: 'boolean' },
      json: { type: 'boolean' },
    },
    async run(args, io: CliIO, cli) {
      const [action, sender, ...extra] = args.positionals;
      const v = args.values as { config?: string; rcpt?: string; domain?: string; via?: string; unauthenticated?: boolean; json?: boolean };
      if (!action || !['add', 'remove', 'list'].includes(action)) throw new UserError(`give add, remove or list (usage: ${this.usage.split('\n')[0]})`);
      if (extra.length) throw new UserError(`one sender at a time (got ${[sender, ...extra].join(' ')})`);
      if (kind === 'block' && (v.via || v.unauthenticated)) throw new UserError('--via and --unauthenticated apply to allow entries only');
      let scope: string | undefined;
      try {
        scope = v.rcpt || v.domain ? scopeFor({ rcpt: v.rcpt, domain: v.domain }) : action === 'list' ? undefined : '*';
      } catch (err) {
        throw new UserError((err as Error).message);
      }
      const lists = openLists(cli.loadConfig(v.config));
      try {
        if (action === 'list') {
          if (sender) throw new UserError('list takes no sender');
          const staticRows = lists.settings.staticLists[kind]
            .filter((e) => !scope || e.scope === scope)
            .map((e) => ({ scope: e.scope, entry: e.entry.text, source: 'ini' }));
          const runtime = (await lists.store.all(kind, scope)).map((e) => ({ scope: e.scope, entry: e.entry, source: 'run-time' }));
          const rows = [...staticRows, ...runtime];
          if (v.json) {
            io.out(jsonText(rows, 2));
            return 0;
          }
          if (!rows.length) {
            io.out(`no ${what} senders${scope ? ` for ${describeScope(scope)}` : ''}`);
            return 0;
          }
          // Escaped: quarantine release-approve adds the From: address of a message, and recipients name scopes.
          const scopeOf = (r: { scope: string }) => oneLine(describeScope(r.scope));
          const width = longest(rows.map(scopeOf), 'SCOPE'.length);
          io.out(`${'SCOPE'.padEnd(width)}  SOURCE    ENTRY`);
          for (const r of rows) io.out(`${scopeOf(r).padEnd(width)}  ${r.source.padEnd(8)}  ${oneLine(r.entry)}`);
          return 0;
        }
        if (!sender) throw new UserError(`${action} needs a SENDER`);
        if (action === 'add') {
          const result = await addEntry(lists, kind, scope!, sender, { via: v.via, unauthenticated: v.unauthenticated });
          for (const w of result.warnings) io.err(`warning: ${w}`);
          io.out(result.added ? `${kind} ${result.entry} for ${describeScope(scope!)}` : `${result.entry} was already ${what} for ${describeScope(scope!)}`);
          return 0;
        }
        // remove: the entry as it was added (the sender alone matches an entry with or without decorations).
        const candidates = (await lists.store.all(kind, scope)).map((e) => e.entry);
        const bare = (t: string) => t.replace(/^unauthenticated:/i, '').replace(/\[[^\]]*\]$/, '').toLowerCase();
        const matching = candidates.filter((c) => c === sender || bare(c) === bare(sender));
        if (!matching.length) {
          const inIni = lists.settings.staticLists[kind].some((e) => e.scope === scope && bare(e.entry.text) === bare(sender));
          throw new UserError(
            inIni
              ? `${sender} is ${what} for ${describeScope(scope!)} in mailward.rules.ini; remove it there`
              : `${sender} is not ${what} for ${describeScope(scope!)}`,
            1,
          );
        }
        for (const m of matching) await lists.store.remove(kind, scope!, m);
        io.out(`removed ${oneLine(matching.join(', '))} from the ${what} senders of ${describeScope(scope!)}`);
        return 0;
      } finally {
        await lists.close();
      }
    },
  };
}

export const allowCommand = listCommand('allow');
export const blockCommand = listCommand('block');
