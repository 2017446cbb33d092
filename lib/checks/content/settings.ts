import { asciiDomain } from '../../util/domain';
import type { IniReader } from '../../config/reader';
import { resolvePath, type SharedSettings } from '../../config/shared';
import { capBelow, type Thresholds } from '../../score/verdict';
import type { ConfigTexts } from '../types';
import type { PartLimits } from './parts';
import { parseRules, type ContentRule } from './rules-file';

export interface BayesSettings {
  enabled: boolean;
  /** sqlite: a file per node (default); redis: shared by a fleet. `auto` follows [state] backend. */
  storage: 'sqlite' | 'redis';
  /** SQLite model file (absolute, resolved under data_dir). */
  path: string;
  redisUrl: string;
  /** Redis key prefix ([state] prefix + "bayes:"). */
  redisPrefix: string;
  /** The classifier abstains until it has learnt this many messages of EACH class. */
  minLearns: number;
  /** Probability at or above which BAYES_SPAM fires. */
  spamThreshold: number;
  /** Probability at or below which BAYES_HAM fires. */
  hamThreshold: number;
  /** Learnt counts are written this often (seconds), off the mail path. */
  saveIntervalS: number;
  /** Counts learnt elsewhere (CLI, other processes, other nodes) are re-read this often. */
  reloadIntervalS: number;
  /** Expiry: tokens not learnt again for this many days... (0: never expire). */
  pruneAfterDays: number;
  /** ...and seen in at most this many learnt messages are removed, once a day. */
  pruneMaxCount: number;
  /** Seen records (idempotent learning) older than this many days are removed with them (0: kept). */
  seenDays: number;
  /** Size bound, at start and once a day: beyond it the least useful tokens go (0: no bound). */
  maxTokens: number;
  autolearn: boolean;
  /** Autolearn spam when every other module together scored at least this. */
  autolearnSpamScore: number;
  /** Autolearn ham when every other module together scored at most this. */
  autolearnHamScore: number;
  /** Symbols that make a message learnt as spam whatever the score (e.g. a spamtrap hit). */
  learnSpamSymbols: string[];
}

export interface HeuristicSettings {
  enabled: boolean;
  rulesFile: string;
  rules: ContentRule[];
  /** Subject: minimum letters before the capitals ratio counts. */
  subjectMinLetters: number;
  subjectCapsRatio: number;
  subjectPunctRatio: number;
  /** HTML-only message with fewer visible characters than this. */
  htmlMinText: number;
  /** Organisational domains of click trackers: a link into one that shows the sender's own authenticated domain is not HTML_LINK_MISMATCH. */
  linkTrackers: string[];
}

export interface BulkSettings {
  enabled: boolean;
  /** Similar messages (counted per recipient) within the window that make a message bulk. */
  threshold: number;
  windowHours: number;
  /** Bodies with fewer words (after normalisation) are not fingerprinted. */
  minWords: number;
  /** Reputation group score at or above which the sender counts as poorly reputed. */
  badReputationScore: number;
}

export interface ContentSettings {
  enabled: boolean;
  /** Content symbols together never score more than this (and the verdict keeps them below each recipient domain's refusing thresholds). */
  maxScore: number;
  /** Config problems worth a word at start (logged by the plugin). */
  warnings: string[];
  skipRelaying: boolean;
  /** mailward.ini [headers] subject_tag: left out of the subject's classifier tokens. */
  subjectTag: string;
  limits: PartLimits;
  bayes: BayesSettings;
  heuristics: HeuristicSettings;
  bulk: BulkSettings;
}

/** Code defaults; config/mailward.content.ini ships the same values. */
export const DEFAULT_CONTENT_SETTINGS: ContentSettings = {
  enabled: true,
  maxScore: 9,
  warnings: [],
  skipRelaying: true,
  subjectTag: '',
  limits: { maxTextChars: 256 * 1024, maxHtmlChars: 1024 * 1024 },
  bayes: {
    enabled: true,
    storage: 'sqlite',
    path: 'bayes.sqlite',
    redisUrl: 'redis://127.0.0.1:6379',
    redisPrefix: 'mailward:bayes:',
    minLearns: 200,
    spamThreshold: 0.9,
    hamThreshold: 0.1,
    saveIntervalS: 30,
    reloadIntervalS: 300,
    pruneAfterDays: 180,
    pruneMaxCount: 1,
    seenDays: 365,
    maxTokens: 1_000_000,
    autolearn: false,
    autolearnSpamScore: 12,
    autolearnHamScore: -2,
    learnSpamSymbols: [],
  },
  heuristics: {
    enabled: true,
    rulesFile: 'mailward.content.rules',
    rules: [],
    subjectMinLetters: 10,
    subjectCapsRatio: 0.7,
    subjectPunctRatio: 0.25,
    htmlMinText: 100,
    // The large email services' click-tracking domains: every newsletter sent through them shows
    // the sender's site and links here.
    linkTrackers: ['list-manage.com', 'mailchimp.com', 'mcsv.net', 'sendgrid.net', 'mandrillapp.com', 'rs6.net', 'hubspotlinks.com', 'exct.net', 'createsend1.com', 'klaviyomail.com', 'mjt.lu', 'sparkpostmail.com', 'mlsend.com', 'sendibt3.com'],
  },
  bulk: { enabled: true, threshold: 100, windowHours: 24, minWords: 12, badReputationScore: 3 },
};

export const RULES_FILE = DEFAULT_CONTENT_SETTINGS.heuristics.rulesFile;

/**
 * Why `name` cannot be an operator's rules file, or undefined. Haraka's loader
 * (haraka-config) refuses a name that leaves its config directory and reads an
 * absolute one as it is, where the CLI reads every name under --config DIR:
 * only a plain file name reads the same file under both. A standard file
 * (mailward.ini, another module's rules) would be parsed as content rules.
 */
function rulesFileProblem(name: string, standardFiles: readonly string[]): string | undefined {
  if (!name || name === '.' || name.includes('..') || /[/\\]/.test(name)) {
    return `${JSON.stringify(name)}: a plain file name in the config directory is expected (no "/", "\\" or ".."), e.g. site.rules`;
  }
  if (name !== RULES_FILE && standardFiles.includes(name)) {
    return `${name} is one of mailward's own configuration files, not a content rules file: name a file of your own (e.g. site.rules), or ${RULES_FILE}`;
  }
  return undefined;
}

export function parseContentSettings(reader: IniReader, shared: SharedSettings, files?: ConfigTexts): ContentSettings {
  const d = DEFAULT_CONTENT_SETTINGS;
  const main = reader.section('main');
  const bayes = reader.section('bayes');
  const autolearn = reader.section('autolearn');
  const heuristics = reader.section('heuristics');
  const bulk = reader.section('bulk');

  const maxScore = main.number('max_score', d.maxScore, { min: 0 });
  const reject = shared.policy.thresholds.reject;
  if (Number.isFinite(reject) && maxScore >= reject) {
    throw main.error('max_score', `must stay below the reject threshold (${reject}): content alone must never reject mail`);
  }
  const warnings = capWarnings(maxScore, shared);
  const storage = bayes.oneOf('storage', ['auto', 'sqlite', 'redis'] as const, 'auto');
  const spamThreshold = bayes.number('spam_threshold', d.bayes.spamThreshold, { min: 0.5, max: 1 });
  const hamThreshold = bayes.number('ham_threshold', d.bayes.hamThreshold, { min: 0, max: 0.5 });

  const heuristicsEnabled = heuristics.boolean('enabled', d.heuristics.enabled);
  const rulesFile = heuristics.string('rules_file', d.heuristics.rulesFile);
  const misnamed = rulesFile === 'none' ? undefined : rulesFileProblem(rulesFile, files?.standardFiles ?? []);
  if (misnamed) throw heuristics.error('rules_file', misnamed);
  let rules: ContentRule[] = [];
  if (heuristicsEnabled && rulesFile !== 'none') {
    const found = files?.text(rulesFile);
    if (found) rules = parseRules(found.text, found.source);
    else if (rulesFile !== d.heuristics.rulesFile) throw heuristics.error('rules_file', `${rulesFile} not found in the config directory`);
  }

  return {
    enabled: main.boolean('enabled', d.enabled),
    maxScore,
    warnings,
    skipRelaying: main.boolean('skip_relaying', d.skipRelaying),
    subjectTag: shared.headers.subjectTag,
    limits: {
      maxTextChars: main.number('max_text_kb', d.limits.maxTextChars / 1024, { min: 1, integer: true }) * 1024,
      maxHtmlChars: main.number('max_html_kb', d.limits.maxHtmlChars / 1024, { min: 1, integer: true }) * 1024,
    },
    bayes: {
      enabled: bayes.boolean('enabled', d.bayes.enabled),
      storage: storage === 'auto' ? (shared.state.backend === 'redis' ? 'redis' : 'sqlite') : storage,
      path: resolvePath(shared.dataDir, bayes.string('path', d.bayes.path)),
      redisUrl: shared.state.redisUrl,
      redisPrefix: `${shared.state.prefix}bayes:`,
      minLearns: bayes.number('min_learns', d.bayes.minLearns, { min: 0, integer: true }),
      spamThreshold,
      hamThreshold,
      saveIntervalS: bayes.number('save_interval', d.bayes.saveIntervalS, { min: 1 }),
      reloadIntervalS: bayes.number('reload_interval', d.bayes.reloadIntervalS, { min: 5 }),
      pruneAfterDays: bayes.number('prune_after_days', d.bayes.pruneAfterDays, { min: 0, integer: true }),
      pruneMaxCount: bayes.number('prune_max_count', d.bayes.pruneMaxCount, { min: 1, integer: true }),
      seenDays: bayes.number('seen_days', d.bayes.seenDays, { min: 0, integer: true }),
      maxTokens: bayes.number('max_tokens', d.bayes.maxTokens, { min: 0, integer: true }),
      autolearn: autolearn.boolean('enabled', d.bayes.autolearn),
      autolearnSpamScore: autolearn.number('spam_score', d.bayes.autolearnSpamScore),
      autolearnHamScore: autolearn.number('ham_score', d.bayes.autolearnHamScore),
      learnSpamSymbols: autolearn.list('spam_symbols', d.bayes.learnSpamSymbols).map((s) => s.toUpperCase()),
    },
    heuristics: {
      enabled: heuristicsEnabled,
      rulesFile,
      rules,
      subjectMinLetters: heuristics.number('subject_min_letters', d.heuristics.subjectMinLetters, { min: 1, integer: true }),
      subjectCapsRatio: heuristics.number('subject_caps_ratio', d.heuristics.subjectCapsRatio, { min: 0, max: 1 }),
      subjectPunctRatio: heuristics.number('subject_punct_ratio', d.heuristics.subjectPunctRatio, { min: 0, max: 1 }),
      htmlMinText: heuristics.number('html_min_text', d.heuristics.htmlMinText, { min: 0, integer: true }),
      linkTrackers: heuristics.list('link_trackers', d.heuristics.linkTrackers).map((t) => asciiDomain(t)),
    },
    bulk: {
      enabled: bulk.boolean('enabled', d.bulk.enabled),
      threshold: bulk.number('threshold', d.bulk.threshold, { min: 1, integer: true }),
      windowHours: bulk.number('window_hours', d.bulk.windowHours, { min: 1, max: 24 * 30, integer: true }),
      minWords: bulk.number('min_words', d.bulk.minWords, { min: 1, integer: true }),
      badReputationScore: bulk.number('bad_reputation_score', d.bulk.badReputationScore),
    },
  };
}

/**
 * A refusing threshold at or below max_score (soft_reject in [actions], or
 * either in a [domain:NAME] section) is not an error: the verdict counts
 * content for less for that domain's recipients (capBelow, per domain). The
 * operator is told, since content then counts for less there than max_score says.
 */
function capWarnings(maxScore: number, shared: SharedSettings): string[] {
  const sections: [string, Thresholds][] = [['actions', shared.policy.thresholds], ...[...shared.policy.domains].map(([d, t]): [string, Thresholds] => [`domain:${d}`, t])];
  const warnings: string[] = [];
  for (const [section, t] of sections) {
    const cap = capBelow(maxScore, t);
    if (cap < maxScore) {
      const which = t.soft_reject <= t.reject ? 'soft_reject' : 'reject';
      const whose = section === 'actions' ? 'recipients of domains without a [domain:NAME] section' : `recipients in ${section.slice('domain:'.length)}`;
      warnings.push(`max_score ${maxScore} is not below mailward.ini [${section}] ${which} ${t[which]}: content is capped at ${cap} for ${whose}, so that it never refuses mail alone`);
    }
  }
  return warnings;
}
