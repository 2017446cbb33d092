import type { IniReader, SectionReader } from '../../config/reader';
import type { SymbolDef } from '../../score/types';
import { codePattern, globToRegex, localAddresses, normaliseIp } from './net';

export const GROUP = 'reputation';

export type ZoneType = 'ip' | 'domain';
export type DomainSource = 'mail_from' | 'header_from';

export interface ZoneCode {
  /** As written in the ini (`127.0.0.2`, `127.0.*.3`). */
  code: string;
  pattern: RegExp;
  symbol: string;
  /** Exact codes win over wildcard ones. */
  wildcards: number;
}

export interface ZoneSettings {
  zone: string;
  enabled: boolean;
  type: ZoneType;
  /** ip zones: also query IPv6 clients (nibble-reversed). */
  ipv6: boolean;
  /** domain zones: which domains are looked up. */
  sources: DomainSource[];
  /** Answers that mean "query refused / blocked / rate-limited", never a listing. */
  errorCodes: { code: string; pattern: RegExp }[];
  codes: ZoneCode[];
}

export type EventKind = 'spam' | 'ham' | 'trap' | 'complaint' | 'invalid';
export const EVENT_KINDS: EventKind[] = ['spam', 'ham', 'trap', 'complaint', 'invalid'];

export interface LearnedSettings {
  enabled: boolean;
  halfLifeSeconds: number;
  horizonSeconds: number;
  bucketSeconds: number;
  /** What one event adds to the reputation (positive: worse; ham is subtracted). */
  weights: Record<EventKind, number>;
  /** Learning from our own verdicts moves a reputation at most this far either way. */
  verdictCap: number;
  /** Reputation at which REP_*_BAD reaches its full weight. */
  saturation: number;
  learnFromVerdicts: boolean;
  /** A verdict teaches "spam" at or above this score, not counting REP_* symbols. */
  learnSpamScore: number;
  /** ... and "ham" at or below this one. */
  learnHamScore: number;
  /** Learn a sender domain from verdicts and trap hits only when bound to the delivery (SPF pass, or DKIM naming the recipients). */
  domainRequiresAuth: boolean;
}

export interface ReputationSettings {
  enabled: boolean;
  skipInternal: boolean;
  dnsbl: { enabled: boolean; zones: ZoneSettings[] };
  practices: { enabled: boolean; localNames: string[]; localIps: string[] };
  learned: LearnedSettings;
  spamtrap: { patterns: string[]; matchers: RegExp[] };
  harvest: { enabled: boolean; windowSeconds: number; minRecipients: number; maxUnknownShare: number };
}

const ZONE_KEYS = new Set(['enabled', 'type', 'ipv6', 'sources', 'error_codes']);
export const DEFAULT_ERROR_CODES = ['127.255.255.*', '127.0.0.1'];

/** Where a config-defined symbol comes from: zone, return code, what was looked up. */
interface SymbolUse {
  score: number;
  uses: { zone: string; code: string; type: ZoneType }[];
}

function zoneSymbol(name: string, use: SymbolUse): SymbolDef {
  const zones = [...new Set(use.uses.map((u) => u.zone))];
  const subjects = [...new Set(use.uses.map((u) => (u.type === 'ip' ? 'the client IP' : 'the sender domain')))];
  const codes = use.uses.map((u) => (zones.length > 1 ? `${u.zone} ${u.code}` : u.code));
  const verb = use.score < 0 ? 'allow-lists' : 'lists';
  return { name, score: use.score, group: GROUP, description: `${zones.join(', ')} ${verb} ${subjects.join(' or ')} (answer ${codes.join(', ')})` };
}

function parseZone(section: SectionReader, symbols: Map<string, SymbolUse>): ZoneSettings {
  const zone = section.name.slice('zone:'.length).trim().toLowerCase().replace(/\.$/, '');
  if (!/^[a-z0-9_-]+(\.[a-z0-9_-]+)+$/.test(zone)) throw section.error(null, `${JSON.stringify(zone)} is not a DNS zone name`);
  const type = section.oneOf('type', ['ip', 'domain'] as const, 'ip');
  const settings: ZoneSettings = {
    zone,
    enabled: section.boolean('enabled', true),
    type,
    ipv6: section.boolean('ipv6', true),
    sources: section.list('sources', ['mail_from', 'header_from']).map((s) => {
      if (s !== 'mail_from' && s !== 'header_from') throw section.error('sources', `expected mail_from and/or header_from, got ${JSON.stringify(s)}`);
      return s;
    }),
    errorCodes: section.list('error_codes', DEFAULT_ERROR_CODES).map((code) => {
      const pattern = codePattern(code);
      if (!pattern) throw section.error('error_codes', `${JSON.stringify(code)} is not an IPv4 address (octets may be *)`);
      return { code, pattern };
    }),
    codes: [],
  };
  for (const [key, value] of Object.entries(section.values)) {
    if (ZONE_KEYS.has(key)) continue;
    const pattern = codePattern(key);
    if (!pattern) throw section.error(key, 'unknown key (zone keys: enabled, type, ipv6, sources, error_codes, or a return code like 127.0.0.2 = SYMBOL:weight)');
    section.used.add(key);
    const m = /^([A-Z][A-Z0-9_]*)\s*:\s*(-?\d+(?:\.\d+)?)$/.exec(value.trim());
    if (!m) throw section.error(key, `expected SYMBOL:weight (e.g. DNSBL_EXAMPLE:3), got ${JSON.stringify(value)}`);
    const [, symbol, weightText] = m;
    const score = Number(weightText);
    // A domain is looked up as the sender writes it, before anything is authenticated: a
    // forger would earn the bonus of the bank whose domain it writes.
    if (type === 'domain' && score < 0) {
      throw section.error(key, `a domain list cannot lower the score (${symbol}:${weightText}): the sender domain it looks up is not authenticated, anyone can write it; reward authenticated senders with an allow entry instead`);
    }
    const existing = symbols.get(symbol!);
    if (existing && existing.score !== score) {
      throw section.error(key, `symbol ${symbol} already has weight ${existing.score} from another return code; give both the same weight`);
    }
    const use = symbols.get(symbol!) ?? { score, uses: [] };
    use.uses.push({ zone, code: key, type });
    symbols.set(symbol!, use);
    settings.codes.push({ code: key, pattern, symbol: symbol!, wildcards: key.split('*').length - 1 });
  }
  settings.codes.sort((a, b) => a.wildcards - b.wildcards);
  return settings;
}

function seconds(section: SectionReader, key: string, fallback: number, unit: number, min: number): number {
  return section.number(key, fallback, { min }) * unit;
}

export function parseReputationSettings(reader: IniReader): { settings: ReputationSettings; symbols: SymbolDef[] } {
  const main = reader.section('main');
  const dnsbl = reader.section('dnsbl');
  const practices = reader.section('practices');
  const learned = reader.section('learned');
  const spamtrap = reader.section('spamtrap');
  const harvest = reader.section('harvest');

  const zoneSymbols = new Map<string, SymbolUse>();
  const zones = reader.sectionsMatching(/^zone:/).map((s) => parseZone(s, zoneSymbols));
  const symbols = [...zoneSymbols].map(([name, use]) => zoneSymbol(name, use));

  const localIps = practices.ipList('local_ips', []);
  const patterns = spamtrap.list('addresses', []).map((p) => p.toLowerCase());
  for (const p of patterns) {
    if (!p.includes('@')) throw spamtrap.error('addresses', `${JSON.stringify(p)} is not an address pattern (local@domain, * and ? allowed)`);
  }

  const settings: ReputationSettings = {
    enabled: main.boolean('enabled', true),
    skipInternal: main.boolean('skip_internal', true),
    dnsbl: { enabled: dnsbl.boolean('enabled', true), zones },
    practices: {
      enabled: practices.boolean('enabled', true),
      localNames: practices.list('local_names', []).map((n) => n.toLowerCase().replace(/\.$/, '')),
      localIps: (localIps.length ? localIps : localAddresses()).map(normaliseIp),
    },
    learned: {
      enabled: learned.boolean('enabled', true),
      halfLifeSeconds: seconds(learned, 'half_life_hours', 72, 3600, 0.01),
      horizonSeconds: seconds(learned, 'horizon_days', 30, 86400, 0.001),
      bucketSeconds: seconds(learned, 'bucket_minutes', 60, 60, 1),
      weights: {
        trap: learned.number('weight_trap', 10, { min: 0 }),
        complaint: learned.number('weight_complaint', 5, { min: 0 }),
        invalid: learned.number('weight_invalid', 0.5, { min: 0 }),
        spam: learned.number('weight_spam', 1, { min: 0 }),
        ham: learned.number('weight_ham', 1, { min: 0 }),
      },
      verdictCap: learned.number('verdict_cap', 5, { min: 0 }),
      saturation: learned.number('saturation', 20, { min: 0.1 }),
      learnFromVerdicts: learned.boolean('learn_from_verdicts', true),
      learnSpamScore: learned.number('learn_spam_score', 10),
      learnHamScore: learned.number('learn_ham_score', 1),
      domainRequiresAuth: learned.boolean('domain_requires_auth', true),
    },
    spamtrap: { patterns, matchers: patterns.map(globToRegex) },
    harvest: {
      enabled: harvest.boolean('enabled', true),
      windowSeconds: seconds(harvest, 'window_minutes', 60, 60, 1),
      minRecipients: harvest.number('min_recipients', 10, { min: 1, integer: true }),
      maxUnknownShare: harvest.number('max_unknown_share', 0.5, { min: 0, max: 1 }),
    },
  };
  if (settings.learned.bucketSeconds > settings.learned.horizonSeconds) {
    throw learned.error('bucket_minutes', 'a time bucket cannot be longer than the horizon');
  }
  return { settings, symbols };
}
