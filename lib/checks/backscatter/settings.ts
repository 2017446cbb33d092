import type { IniReader } from '../../config/reader';
import type { SigningKey } from './signing';
import type { ThrottleSettings } from './throttle';

export interface BackscatterSettings {
  enabled: boolean;
  /** Local parts of senders that mark a bounce (lower case). */
  daemonSenders: Set<string>;
  outbound: {
    recordMessageIds: boolean;
    messageIdTtlSeconds: number;
    /** Give relayed mail without a Message-ID one, so it can be signed and recognised. */
    addMessageId: boolean;
  };
  signing: {
    /** First signs, all verify. Empty: no signing, Message-IDs only. */
    keys: SigningKey[];
    header: string;
    maxAgeSeconds: number;
    maxFutureSeconds: number;
  };
  throttle: ThrottleSettings & {
    actionScore: number;
    /**
     * Leave out mail that is no bounce or auto-reply and whose From: domain is
     * authenticated: anyone can start a block with forged bounces, and must
     * not stop a domain's own newsletter with it.
     */
    exemptAuthenticated: boolean;
  };
}

/** Code defaults; config/mailward.backscatter.ini ships the same values. */
export const DEFAULTS = {
  daemonSenders: ['mailer-daemon', 'mailer_daemon', 'mailerdaemon', 'postmaster'],
  messageIdTtlDays: 14,
  header: 'X-Mailward-Sig',
  maxAgeDays: 14,
  maxFutureMinutes: 15,
  match: ['BOUNCE_UNVERIFIED'],
  threshold: 50,
  windowMinutes: 5,
  blockMinutes: 60,
  actionScore: 12,
};

const KEY_ID = /^[A-Za-z0-9_.-]{1,32}$/;
const MIN_SECRET = 16;

export function parseBackscatterSettings(ini: IniReader): BackscatterSettings {
  const main = ini.section('main');
  const outbound = ini.section('outbound');
  const signing = ini.section('signing');
  const throttle = ini.section('throttle');

  const keys: SigningKey[] = [];
  for (const item of signing.list('keys', [])) {
    const colon = item.indexOf(':');
    const id = colon > 0 ? item.slice(0, colon) : '';
    const secret = colon > 0 ? item.slice(colon + 1) : '';
    if (!KEY_ID.test(id)) throw signing.error('keys', `each key is id:secret with an id of letters, digits, "._-" (got ${JSON.stringify(item.slice(0, 40))})`);
    if (secret.length < MIN_SECRET) throw signing.error('keys', `the secret of key ${id} is shorter than ${MIN_SECRET} characters`);
    if (keys.some((k) => k.id === id)) throw signing.error('keys', `key id ${id} appears twice`);
    keys.push({ id, secret });
  }
  const header = signing.string('header', DEFAULTS.header);
  if (!/^[\x21-\x39\x3b-\x7e]+$/.test(header)) throw signing.error('header', `${JSON.stringify(header)} is not a header name`);

  const match = throttle.list('match', DEFAULTS.match);
  for (const name of match) {
    if (name !== '*' && !/^[A-Z][A-Z0-9_]*$/.test(name)) throw throttle.error('match', `${JSON.stringify(name)} is neither a symbol name nor *`);
  }

  return {
    enabled: main.boolean('enabled', true),
    daemonSenders: new Set(main.list('daemon_senders', DEFAULTS.daemonSenders).map((s) => s.toLowerCase())),
    outbound: {
      recordMessageIds: outbound.boolean('record_message_ids', true),
      messageIdTtlSeconds: outbound.number('message_id_ttl_days', DEFAULTS.messageIdTtlDays, { min: 0.01, max: 365 }) * 86400,
      addMessageId: outbound.boolean('add_message_id', true),
    },
    signing: {
      keys,
      header,
      maxAgeSeconds: signing.number('max_age_days', DEFAULTS.maxAgeDays, { min: 0.01, max: 3650 }) * 86400,
      maxFutureSeconds: signing.number('max_future_minutes', DEFAULTS.maxFutureMinutes, { min: 0, max: 1440 }) * 60,
    },
    throttle: {
      enabled: throttle.boolean('enabled', true),
      match,
      threshold: throttle.number('threshold', DEFAULTS.threshold, { min: 1, integer: true }),
      windowMinutes: throttle.number('window_minutes', DEFAULTS.windowMinutes, { min: 0.1, max: 1440 }),
      blockMinutes: throttle.number('block_minutes', DEFAULTS.blockMinutes, { min: 0.1, max: 10080 }),
      emptySubject: throttle.boolean('empty_subject', false),
      exemptAuthenticated: throttle.boolean('exempt_authenticated', true),
      actionScore: throttle.number('action_score', DEFAULTS.actionScore, { min: 0, max: 1000 }),
    },
  };
}
