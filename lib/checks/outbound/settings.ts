import { parseIni } from '../../config/ini';
import { IniReader } from '../../config/reader';
import type { ConfigTexts } from '../types';
import { parseBackscatterSettings } from '../backscatter/settings';
import type { SigningKey } from '../backscatter/signing';

/** Who a relayed message is counted against. */
export type Identity = 'user' | 'domain';

export interface OutboundSettings {
  enabled: boolean;
  /** user: the authenticated user, else the envelope sender; domain: its domain. */
  identity: Identity;
  /** How long a relayed message's Message-ID is remembered for attributing complaints. */
  recordSeconds: number;
  window: {
    /** Length of the sliding window rates are computed over. */
    hours: number;
  };
  policy: {
    /** Complaints / messages above this (a fraction) suspends the sender. */
    complaintRate: number;
    invalidRate: number;
    /** The rate is computed over at least this many messages (a floor on the denominator). */
    minMessages: number;
    /** Spamtrap hits in the window that suspend on their own; Infinity: never. */
    maxTrapHits: number;
    /** 0: a suspension lasts until `mailward outbound reinstate`. */
    suspendHours: number;
  };
  complaints: {
    /** Feedback addresses (lower case): reports sent to them are consumed, not delivered. */
    addresses: Set<string>;
    /** Reporter domains accepted (empty: any). */
    reporters: string[];
    /** Reporter domains whose reports count as spamtrap hits rather than complaints. */
    trapReporters: string[];
    /** Feedback-Type values that count (abuse, fraud, virus, ...). */
    countTypes: Set<string>;
    /** Only count reports whose From domain passes DMARC or aligned SPF/DKIM (needs the auth plugin first). */
    requireAuthenticated: boolean;
  };
  bounces: {
    /** Count hard bounces to invalid recipients (Haraka's own delivery, and DSNs of our mail). */
    enabled: boolean;
  };
  bulk: {
    enabled: boolean;
    /** Similar relayed messages in the window from which on a message is bulk. */
    threshold: number;
    windowHours: number;
    minWords: number;
    header: string;
    /** Source address for bulk deliveries (Haraka's get_mx bind), or ''. */
    bindIp: string;
    bindHelo: string;
    /** host[:port] every bulk message is handed to instead of the recipients' MX, or ''. */
    relay: string;
  };
  /** Backscatter's signing keys, to attribute reports by our signature header. */
  signing: { header: string; keys: SigningKey[]; maxAgeSeconds: number; maxFutureSeconds: number } | null;
}

/** Code defaults; config/mailward.outbound.ini ships the same values. */
export const DEFAULTS = {
  identity: 'user' as Identity,
  recordDays: 30,
  windowHours: 168,
  complaintRatePercent: 0.3,
  invalidRatePercent: 5,
  minMessages: 1000,
  suspendHours: 0,
  countTypes: ['abuse', 'fraud', 'virus'],
  bulkThreshold: 100,
  bulkWindowHours: 24,
  bulkMinWords: 12,
  bulkHeader: 'X-Mailward-Bulk',
};

const HOST_PORT = /^[A-Za-z0-9.-]+(?::\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::\d{1,5})?$/;
const BACKSCATTER_FILE = 'mailward.backscatter.ini';

function signingOf(files: ConfigTexts | undefined): OutboundSettings['signing'] {
  const found = files?.text(BACKSCATTER_FILE);
  if (!found) return null;
  // The backscatter module validates (and reports) its own file; here it only lends its keys.
  try {
    const s = parseBackscatterSettings(new IniReader(found.source, parseIni(found.text, found.source))).signing;
    return s.keys.length ? s : null;
  } catch {
    return null;
  }
}

export function parseOutboundSettings(ini: IniReader, files?: ConfigTexts): OutboundSettings {
  const main = ini.section('main');
  const policy = ini.section('policy');
  const complaints = ini.section('complaints');
  const bounces = ini.section('bounces');
  const bulk = ini.section('bulk');

  const header = bulk.string('header', DEFAULTS.bulkHeader);
  if (!/^[\x21-\x39\x3b-\x7e]+$/.test(header)) throw bulk.error('header', `${JSON.stringify(header)} is not a header name`);
  const relay = bulk.string('relay', '');
  if (relay && !HOST_PORT.test(relay)) throw bulk.error('relay', `expected host or host:port, got ${JSON.stringify(relay)}`);
  const bindIp = bulk.ipList('bind_ip', [])[0] ?? '';
  const addresses = complaints.list('addresses', []).map((a) => a.toLowerCase());
  for (const a of addresses) if (!/^[^@\s]+@[^@\s]+$/.test(a)) throw complaints.error('addresses', `${JSON.stringify(a)} is not an address`);

  return {
    enabled: main.boolean('enabled', true),
    identity: main.oneOf('identity', ['user', 'domain'] as const, DEFAULTS.identity),
    recordSeconds: main.number('record_days', DEFAULTS.recordDays, { min: 0.01, max: 365 }) * 86400,
    window: { hours: policy.number('window_hours', DEFAULTS.windowHours, { min: 1, max: 24 * 90 }) },
    policy: {
      complaintRate: policy.number('complaint_rate_percent', DEFAULTS.complaintRatePercent, { min: 0, max: 100 }) / 100,
      invalidRate: policy.number('invalid_rate_percent', DEFAULTS.invalidRatePercent, { min: 0, max: 100 }) / 100,
      minMessages: policy.number('min_messages', DEFAULTS.minMessages, { min: 1, integer: true }),
      maxTrapHits: policy.number('max_trap_hits', Infinity, { min: 1, integer: true, off: true }),
      suspendHours: policy.number('suspend_hours', DEFAULTS.suspendHours, { min: 0 }),
    },
    complaints: {
      addresses: new Set(addresses),
      reporters: complaints.list('reporters', []).map((d) => d.toLowerCase()),
      trapReporters: complaints.list('trap_reporters', []).map((d) => d.toLowerCase()),
      countTypes: new Set(complaints.list('count_types', DEFAULTS.countTypes).map((t) => t.toLowerCase())),
      requireAuthenticated: complaints.boolean('require_authenticated', true),
    },
    bounces: { enabled: bounces.boolean('enabled', true) },
    bulk: {
      enabled: bulk.boolean('enabled', true),
      threshold: bulk.number('threshold', DEFAULTS.bulkThreshold, { min: 1, integer: true }),
      windowHours: bulk.number('window_hours', DEFAULTS.bulkWindowHours, { min: 1, max: 168, integer: true }),
      minWords: bulk.number('min_words', DEFAULTS.bulkMinWords, { min: 1, integer: true }),
      header,
      bindIp,
      bindHelo: bulk.string('bind_helo', ''),
      relay,
    },
    signing: signingOf(files),
  };
}
