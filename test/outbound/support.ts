import { randomBytes } from 'node:crypto';
import { deleteRedisKeys, REDIS_URL, uniqueRedisPrefix } from '../support/redis';
import { parseIni } from '../../lib/config/ini';
import { IniReader } from '../../lib/config/reader';
import { parseOutboundSettings, type OutboundSettings } from '../../lib/checks/outbound/settings';
import { simpleMessage } from '../support/haraka';
import assert from 'node:assert/strict';
import { OutboundLedger } from '../../lib/checks/outbound';
import { RedisStore } from '../../lib/state';


export function uniquePrefix(what: string): string {
  return uniqueRedisPrefix('outbound', what);
}


/** Settings from an ini text (and optionally the backscatter ini, for its signing keys). */
export function outboundSettings(ini = '', backscatterIni?: string): OutboundSettings {
  const reader = new IniReader('mailward.outbound.ini', parseIni(ini, 'mailward.outbound.ini'));
  const settings = parseOutboundSettings(reader, {
    text: (file) => (file === 'mailward.backscatter.ini' && backscatterIni !== undefined ? { text: backscatterIni, source: file } : null),
  });
  reader.finish();
  return settings;
}

export interface ReportFields {
  reporter?: string;
  feedbackType?: string;
  rcpt?: string;
  /** Message-ID of the reported message, with angle brackets. */
  mid?: string;
  from?: string;
  date?: string;
  extraOriginal?: string[];
  version?: string;
}

/** An RFC 5965 report shaped like the ones large mailbox providers send. */
export function arfReport(f: ReportFields = {}): string {
  const boundary = `----=_arf_${randomBytes(4).toString('hex')}`;
  const original = [
    'Received: from mx.example.com (mx.example.com [192.0.2.25]) by mta.reports.example.org; Tue, 11 Mar 2025 09:58:01 +0000',
    `From: ${f.from ?? 'Alice <alice@example.com>'}`,
    `To: ${f.rcpt ?? 'someone@reports.example.org'}`,
    'Subject: Spring offers',
    `Date: ${f.date ?? 'Tue, 11 Mar 2025 09:57:58 +0000'}`,
    ...(f.mid ? [`Message-ID: ${f.mid}`] : []),
    ...(f.extraOriginal ?? []),
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'Dear customer, our spring offers are here.',
  ];
  return [
    `From: Feedback Loop <${f.reporter ?? 'fbl@reports.example.org'}>`,
    'To: fbl@example.com',
    'Subject: Abuse report',
    'Date: Wed, 12 Mar 2025 08:00:00 +0000',
    `Message-ID: <report.${randomBytes(6).toString('hex')}@reports.example.org>`,
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=feedback-report; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=us-ascii',
    '',
    'This is an email abuse report for a message received from IP 192.0.2.25.',
    '',
    `--${boundary}`,
    'Content-Type: message/feedback-report',
    '',
    `Feedback-Type: ${f.feedbackType ?? 'abuse'}`,
    'User-Agent: ExampleFBL/1.3',
    `Version: ${f.version ?? '1'}`,
    // rcpt '' leaves the field out, as providers that redact recipients do.
    ...(f.rcpt === '' ? [] : [`Original-Rcpt-To: <${f.rcpt ?? 'someone@reports.example.org'}>`]),
    'Source-IP: 192.0.2.25',
    '',
    `--${boundary}`,
    'Content-Type: message/rfc822',
    'Content-Disposition: inline',
    '',
    ...original,
    '',
    `--${boundary}--`,
    '',
  ].join('\r\n');
}

export { deleteRedisKeys, REDIS_URL };

/**
 * One user's newsletter: the same template with a name, an amount and a
 * tracking link per copy (what the bulk fingerprint must see through).
 */
export function newsletter(n: number, options: { domain?: string; unsubscribe?: boolean } = {}): string {
  const { domain = 'remote.example', unsubscribe = true } = options;
  return simpleMessage({
    from: 'Alice Shop <alice@example.com>',
    to: `customer${n}@${domain}`,
    subject: 'Our spring offers',
    messageId: `<spring.${n}.${Date.now()}@example.com>`,
    headers: unsubscribe ? { 'List-Unsubscribe': `<https://shop.example.com/unsubscribe/${n}>, <mailto:unsub@example.com>` } : {},
    body: [
      `Dear Customer${n},`,
      '',
      `our spring collection is here and your loyalty balance is ${n * 3} points. Every order this week`,
      'ships for free and comes with a small gift from our workshop. Browse the new colours and the',
      'garden furniture we make by hand, and tell us what you think of them.',
      `https://shop.example.com/spring?c=${n}`,
      '',
    ].join('\r\n'),
  });
}

/** A delivery-status report (null sender's bounce) about `mid`, listing `failed` as 5.1.1 (Final-Recipient, in order). */
export function deliveryStatus(mid: string, failed: string[], reportingMta = 'mx.remote.example'): string {
  const perRecipient = failed.map((r) => `Final-Recipient: rfc822; ${r}\r\nAction: failed\r\nStatus: 5.1.1\r\n`);
  return [
    `From: MAILER-DAEMON@${reportingMta}`,
    'To: alice@example.com',
    'Subject: Undelivered Mail Returned to Sender',
    'MIME-Version: 1.0',
    'Content-Type: multipart/report; report-type=delivery-status; boundary="dsn1"',
    '',
    '--dsn1',
    'Content-Type: text/plain',
    '',
    'Your message could not be delivered to some recipients.',
    '',
    '--dsn1',
    'Content-Type: message/delivery-status',
    '',
    `Reporting-MTA: dns; ${reportingMta}`,
    '',
    perRecipient.join('\r\n'),
    '--dsn1',
    'Content-Type: text/rfc822-headers',
    '',
    'From: alice@example.com',
    `Message-ID: ${mid}`,
    '',
    '--dsn1--',
    '',
  ].join('\r\n');
}

/** A relayed message's record is written after its verdict: waits (up to 5 s) until Redis under `prefix` has it as `sender`'s. */
export async function recordedBy(prefix: string, mid: string, sender: string): Promise<void> {
  const log = { debug() {}, info() {}, warn() {}, error() {} };
  const store = new RedisStore({ backend: 'redis', redisUrl: REDIS_URL, prefix, timeoutMs: 2000, memoryMaxEntries: 100 }, log);
  try {
    const ledger = new OutboundLedger(store, outboundSettings(), Date.now);
    for (let i = 0; i < 100 && (await ledger.senderOf(mid)) !== sender; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(await ledger.senderOf(mid), sender, 'the relayed message was recorded');
  } finally {
    await store.close();
  }
}
