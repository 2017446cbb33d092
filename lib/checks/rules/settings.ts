import type { IniReader } from '../../config/reader';
import { resolvePath, type SharedSettings } from '../../config/shared';
import type { ConfigTexts } from '../types';
import { entryWarnings, parseEntry, type ListKind, type ScopedEntry } from './lists';
import { parseRules, ruleWarnings, type Rule } from './ruleset';

export const RULES_FILE = 'mailward.rules';

export interface RulesSettings {
  enabled: boolean;
  rules: Rule[];
  /** Where the rules came from (a path, or the name Haraka supplied). */
  rulesSource: string;
  /** Our own domains; empty means "the domains of the message's recipients". */
  localDomains: Set<string>;
  listStore: 'auto' | 'state' | 'sqlite';
  listSqlitePath: string;
  /** An allow entry holds for mail a trusted ARC sealer forwarded after seeing DMARC pass for its From:. */
  trustedArc: boolean;
  /** Entries from the ini file, by list. */
  staticLists: Record<ListKind, ScopedEntry[]>;
  /** Legal but weak entries, logged once the logger is there (createChecks) and shown by the CLI. */
  warnings: string[];
  quarantineDir: string;
  retentionDays: number;
  /** How often the MTA process deletes held messages past retention (0: never; `mailward quarantine purge`). */
  purgeIntervalMinutes: number;
  stateBackend: 'memory' | 'redis';
}

const LIST_SECTION = /^(allow|block)(:.+)?$/;

/** Reads mailward.rules.ini and the rules file; every mistake names file, section or rule, and line. */
export function parseRulesSettings(reader: IniReader, shared: SharedSettings, files?: ConfigTexts): RulesSettings {
  const main = reader.section('main');
  const lists = reader.section('lists');
  const quarantine = reader.section('quarantine');

  const localDomains = new Set(lists.list('local_domains', []).map((d) => d.toLowerCase().replace(/^\.|\.$/g, '')));
  const settings: RulesSettings = {
    enabled: main.boolean('enabled', true),
    rules: [],
    rulesSource: RULES_FILE,
    localDomains,
    listStore: lists.oneOf('store', ['auto', 'state', 'sqlite'] as const, 'auto'),
    listSqlitePath: resolvePath(shared.dataDir, lists.string('sqlite_path', 'senders.sqlite')),
    trustedArc: lists.boolean('trusted_arc', true),
    staticLists: { allow: [], block: [] },
    warnings: [],
    quarantineDir: shared.quarantine.dir,
    retentionDays: shared.quarantine.retentionDays,
    purgeIntervalMinutes: quarantine.number('purge_interval_minutes', 60, { min: 0 }),
    stateBackend: shared.state.backend,
  };

  for (const section of reader.sectionsMatching(LIST_SECTION)) {
    const [, kind, target] = LIST_SECTION.exec(section.name)! as unknown as [string, ListKind, string | undefined];
    const scope = scopeOfSection(target?.slice(1).trim().toLowerCase());
    if (!scope) throw section.error(null, 'expected [allow], [allow:DOMAIN] or [allow:USER@DOMAIN] (likewise block)');
    for (const text of section.list('senders', [])) {
      try {
        const entry = parseEntry(kind, text);
        settings.staticLists[kind].push({ scope, entry });
        settings.warnings.push(...entryWarnings(kind, entry, `${reader.file} [${section.name}]`, localDomains));
      } catch (err) {
        throw section.error('senders', `${JSON.stringify(text)}: ${(err as Error).message}`);
      }
    }
  }

  const file = files?.text(RULES_FILE);
  if (file) {
    settings.rules = parseRules(file.text, file.source);
    settings.warnings.push(...ruleWarnings(settings.rules, file.source));
    settings.rulesSource = file.source;
  }
  return settings;
}

function scopeOfSection(target: string | undefined): string | undefined {
  if (target === undefined) return '*';
  if (/^[^@\s]+@[a-z0-9.-]+$/.test(target)) return `user:${target}`;
  if (/^[a-z0-9.-]+$/.test(target)) return `domain:${target}`;
  return undefined;
}
