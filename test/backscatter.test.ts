import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createContext } from '../lib/message';
import { IniReader } from '../lib/config/reader';
import { parseIni } from '../lib/config/ini';
import { ConfigError } from '../lib/config/errors';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backscatterModule } from '../lib/checks/backscatter';
import { referencedMessageIds } from '../lib/checks/backscatter/recognise';
import { repoPath } from './support/paths';
import { extractOriginal, recognise } from '../lib/checks/backscatter/recognise';
import { MAX_PARSE_BYTES, MAX_PARSE_LINES } from '../lib/message';
import { parseBackscatterSettings, DEFAULTS } from '../lib/checks/backscatter/settings';
import { normaliseMessageId, parseSignature, sign, verify, type SigningKey } from '../lib/checks/backscatter/signing';
import { normaliseSubject, subjectId } from '../lib/checks/backscatter/subject';
import { SentMessages } from '../lib/checks/backscatter/sent';
import { MemoryStore } from '../lib/state/memory';
import { RedisStore } from '../lib/state';
import type { StateStore } from '../lib/state/types';
import { createMailward, type ScanResult } from '../lib';
import { SqliteBayesStore } from '../lib/checks/content/store';
import { Classifier } from '../lib/checks/content/classifier';
import { silentLogger } from '../lib/runtime';
import { backscatterRuntime, bounce, deleteRedisKeys, fixtureBytes, KEY_A, KEY_B, outbound, testMailward, uniquePrefix, type TestMailward } from './backscatter/support';
import { lineCount, PADDING_24MB, postalInputs, postalInputSizes } from './support/postal-spy';

const DAEMONS = new Set(DEFAULTS.daemonSenders);
const keyA: SigningKey = { id: 'ka', secret: 'secret-number-one-0123456789' };
const keyB: SigningKey = { id: 'kb', secret: 'secret-number-two-9876543210' };
const T0 = Date.UTC(2025, 2, 10, 9, 14);
const VERIFY = { maxAgeSeconds: 14 * 86400, maxFutureSeconds: 900 };
const FIELDS = { messageId: '<original.1@example.com>', date: 'Mon, 10 Mar 2025 09:14:00 +0000', from: 'Alice <alice@example.com>' };

function symbols(result: ScanResult): Record<string, string> {
  return Object.fromEntries(result.verdict.symbols.map((s) => [s.name, s.detail]));
}


describe('backscatter: subject normalisation', () => {
  it('folds case, whitespace, numbers, addresses and Re:/Fwd:/AW: prefixes', () => {
    const a = normaliseSubject('Undeliverable: Order 1234 for bob@remote.example');
    assert.equal(a, 'undeliverable: order # for @');
    assert.equal(normaliseSubject('RE: Fwd:  undeliverable:   ORDER 98 for eve@x.example'), a);
    assert.equal(normaliseSubject('AW: [list] Re[2]: Undeliverable: order 5 for a@b.c'), a);
    assert.equal(normaliseSubject('Undeliverable Mail'), 'undeliverable mail');
    assert.equal(normaliseSubject('  UNDELIVERABLE\tmail  '), 'undeliverable mail');
    assert.notEqual(normaliseSubject('Undeliverable Mail'), normaliseSubject('Deliverable Mail'));
  });

  it('folds ids with digits (queue ids, dates) and punctuation runs', () => {
    assert.equal(normaliseSubject('Delivery failure [#A1B2C3] 2025-03-10!!!'), normaliseSubject('delivery failure [#ff00ee9] 2024-12-01!'));
  });

  it('copes with empty, 8-bit and full-width subjects', () => {
    assert.equal(normaliseSubject(''), '');
    assert.equal(normaliseSubject(undefined), '');
    assert.equal(normaliseSubject('   '), '');
    assert.equal(normaliseSubject('Re:'), '');
    assert.equal(normaliseSubject('ＵＮＤＥＬＩＶＥＲＡＢＬＥ'), 'undeliverable');
    assert.equal(normaliseSubject('Unzustellbar: Bestellbestätigung'), 'unzustellbar: bestellbestätigung');
    assert.equal(normaliseSubject('bad \ufffd byte'), 'bad byte');
    // Invisible characters are dropped, not spaced: one inside a word or between a letter and its accent changes nothing.
    assert.equal(normaliseSubject('\ufeffRe\u200b: Un\u2060deliver\u00adable mail\u200f'), 'undeliverable mail');
    assert.equal(normaliseSubject('Bestellbesta\u200b\u0308tigung'), 'bestellbestätigung');
    assert.ok(normaliseSubject('x'.repeat(5000)).length <= 200);
    // A subject of many encoded words decodes to one long run without spaces: its patterns
    // cost the square of the run's length (minutes for 128 KB) unless only the start is read.
    const run = 'a1b2c3@'.repeat(150_000);
    assert.equal(normaliseSubject(run), normaliseSubject(run.slice(0, 800)));
  });

  it('gives a stable id per normalised subject', () => {
    assert.equal(subjectId('undeliverable mail'), subjectId(normaliseSubject('UNDELIVERABLE  Mail')));
    assert.match(subjectId('a'), /^[0-9a-f]{20}$/);
  });
});

describe('backscatter: signing', () => {
  it('round trip: what one key signs verifies', () => {
    const header = sign(keyA, FIELDS, T0);
    assert.match(header, /^v=1; k=ka; t=\d+; s=[A-Za-z0-9_-]{43}$/);
    const result = verify(header, FIELDS, [keyA], T0 + 3600_000, VERIFY);
    assert.deepEqual(result, { ok: true, keyId: 'ka', signedAt: Math.floor(T0 / 1000) });
  });

  it('survives the refolding and case changes a bounce applies to quoted headers', () => {
    const header = sign(keyA, FIELDS, T0);
    const quoted = { messageId: '<ORIGINAL.1@EXAMPLE.COM>', date: 'Mon, 10 Mar 2025\r\n 09:14:00 +0000', from: 'alice@Example.com' };
    assert.equal(verify(header.replace('; s=', ';\r\n\ts='), quoted, [keyA], T0, VERIFY).ok, true);
  });

  it('rejects a forged signature, a changed field, an unknown key and garbage', () => {
    const header = sign(keyA, FIELDS, T0);
    const forged = header.replace(/s=(.)/, (_, c: string) => `s=${c === 'A' ? 'B' : 'A'}`);
    assert.deepEqual(verify(forged, FIELDS, [keyA], T0, VERIFY), { ok: false, reason: 'bad_signature', keyId: 'ka', signedAt: Math.floor(T0 / 1000) });
    assert.equal(verify(header, { ...FIELDS, from: 'mallory@example.com' }, [keyA], T0, VERIFY).ok, false);
    assert.equal(verify(header, { ...FIELDS, messageId: '<other@example.com>' }, [keyA], T0, VERIFY).ok, false);
    // Same key id, different secret: a forger who guessed the id.
    assert.equal(verify(header, FIELDS, [{ id: 'ka', secret: 'guessed-secret-xxxxxxxxxx' }], T0, VERIFY).ok, false);
    assert.equal((verify(header, FIELDS, [keyB], T0, VERIFY) as { reason: string }).reason, 'unknown_key');
    assert.equal((verify('v=1; k=ka; t=abc; s=zz', FIELDS, [keyA], T0, VERIFY) as { reason: string }).reason, 'malformed');
    assert.equal((verify('', FIELDS, [keyA], T0, VERIFY) as { reason: string }).reason, 'malformed');
    assert.equal(parseSignature('v=2; k=ka; t=1; s=x'), null);
  });

  it('expires signatures older than the maximum age and refuses ones from the future', () => {
    const header = sign(keyA, FIELDS, T0);
    assert.equal(verify(header, FIELDS, [keyA], T0 + 14 * 86400_000 - 1000, VERIFY).ok, true);
    assert.equal((verify(header, FIELDS, [keyA], T0 + 14 * 86400_000 + 2000, VERIFY) as { reason: string }).reason, 'expired');
    assert.equal((verify(header, FIELDS, [keyA], T0 - 3600_000, VERIFY) as { reason: string }).reason, 'future');
  });

  it('rotation: the old key still verifies after a new key signs; a removed key does not', () => {
    const old = sign(keyA, FIELDS, T0);
    const fresh = sign(keyB, FIELDS, T0);
    const rotated = [keyB, keyA];
    assert.equal(verify(old, FIELDS, rotated, T0, VERIFY).ok, true);
    assert.equal(verify(fresh, FIELDS, rotated, T0, VERIFY).ok, true);
    assert.equal(verify(old, FIELDS, [keyB], T0, VERIFY).ok, false);
  });

  it('normalises Message-IDs', () => {
    assert.equal(normaliseMessageId(' <AbC@Example.com> '), 'abc@example.com');
    assert.equal(normaliseMessageId('abc@example.com'), 'abc@example.com');
    assert.equal(normaliseMessageId(undefined), '');
  });
});

describe('backscatter: recognising bounces and auto-replies', () => {
  const ctx = (raw: string | Buffer, mailFrom: string, rcptTo = ['alice@example.com']) => createContext({ ip: '192.0.2.25', mailFrom, rcptTo, raw });

  it('recognises null-sender DSNs, MAILER-DAEMON and postmaster senders', () => {
    const dsn = recognise(ctx(bounce('postfix-dsn.eml'), ''), DAEMONS);
    assert.equal(dsn.kind, 'bounce');
    assert.ok(dsn.reasons.includes('null sender'));
    assert.ok(dsn.reasons.includes('delivery-status report'));
    assert.equal(recognise(ctx(bounce('qmail-text.eml'), 'MAILER-DAEMON@qmail.remote.example'), DAEMONS).kind, 'bounce');
    assert.equal(recognise(ctx(bounce('exchange-ndr.eml'), 'postmaster@exchange.remote.example'), DAEMONS).kind, 'bounce');
    // From header alone is enough (envelope sender rewritten by a forwarder)
    assert.equal(recognise(ctx(bounce('qmail-text.eml'), 'srs0=abc@forwarder.example'), DAEMONS).kind, 'bounce');
  });

  it('recognises auto-replies, and a null-sender auto-reply stays an auto-reply', () => {
    const v = recognise(ctx(bounce('vacation.eml'), ''), DAEMONS);
    assert.equal(v.kind, 'auto_reply');
    assert.ok(v.reasons.some((r) => r.startsWith('Auto-Submitted')));
    const prec = 'From: bob@remote.example\r\nPrecedence: auto_reply\r\nSubject: away\r\n\r\nbody\r\n';
    assert.equal(recognise(ctx(prec, 'bob@remote.example'), DAEMONS).kind, 'auto_reply');
    assert.equal(recognise(ctx('From: bob@remote.example\r\nAuto-Submitted: no\r\n\r\nx\r\n', 'bob@remote.example'), DAEMONS).kind, null);
  });

  it('Auto-Submitted: auto-generated is no reply (RFC 3834): ordinary mail with a sender, a bounce with the null sender or a DSN', () => {
    const notification = (value: string) => `From: ACME Billing <invoices@billing.shop.example>\r\nSubject: Your invoice 1001\r\nAuto-Submitted: ${value}\r\n\r\nDear customer\r\n`;
    assert.deepEqual(recognise(ctx(notification('auto-generated'), 'invoices@billing.shop.example'), DAEMONS), { kind: null, reasons: [] });
    assert.equal(recognise(ctx(notification('Auto-Generated; owner-email="ops@shop.example"'), 'invoices@billing.shop.example'), DAEMONS).kind, null);
    assert.equal(recognise(ctx(notification('auto-notified'), 'invoices@billing.shop.example'), DAEMONS).kind, null);
    assert.equal(recognise(ctx(notification('auto-repliedx'), 'invoices@billing.shop.example'), DAEMONS).kind, null);
    // auto-replied is a reply, whatever the case, with parameters or a sender of its own.
    const replied = recognise(ctx(notification('Auto-Replied; owner-email="bob@remote.example"'), 'bob@remote.example'), DAEMONS);
    assert.equal(replied.kind, 'auto_reply');
    assert.deepEqual(replied.reasons, ['Auto-Submitted: Auto-Replied']);
    // The other reply markers still make a reply beside auto-generated.
    assert.equal(recognise(ctx(`X-Autoreply: yes\r\n${notification('auto-generated')}`, 'bob@remote.example'), DAEMONS).kind, 'auto_reply');
    // Bounces stay bounces: the null sender, a daemon sender, a DSN.
    const nullSender = recognise(ctx(notification('auto-generated'), ''), DAEMONS);
    assert.equal(nullSender.kind, 'bounce');
    assert.deepEqual(nullSender.reasons, ['null sender']);
    assert.equal(recognise(ctx(notification('auto-generated'), 'MAILER-DAEMON@mx.remote.example'), DAEMONS).kind, 'bounce');
    const dsn = bounce('postfix-dsn.eml').replace(/^Auto-Submitted: .*$/m, 'Auto-Submitted: auto-generated');
    assert.match(dsn, /^Auto-Submitted: auto-generated/m);
    assert.equal(recognise(ctx(dsn, ''), DAEMONS).kind, 'bounce');
    assert.equal(recognise(ctx(dsn, 'bounces@remote.example'), DAEMONS).kind, 'bounce');
  });

  it('leaves ordinary mail alone', () => {
    assert.equal(recognise(ctx(outbound(), 'alice@example.com'), DAEMONS).kind, null);
  });

  it('extracts the original from message/rfc822, header parts, inline NDR parts and quoted text', async () => {
    const fields = { mid: '<orig.42@example.com>', sigLine: 'X-Mailward-Sig: v=1; k=ka; t=1; s=abc' };
    for (const [file, source] of [
      ['postfix-dsn.eml', 'message/rfc822'],
      ['headers-only-dsn.eml', 'rfc822-headers'],
      ['exchange-ndr.eml', 'message/rfc822'],
      ['qmail-text.eml', 'quoted text'],
    ] as const) {
      const original = await extractOriginal(ctx(bounce(file, fields), ''), 'x-mailward-sig');
      assert.ok(original, file);
      assert.equal(original.source, source, file);
      assert.equal(original.headers.find((h) => h.key === 'message-id')?.value, '<orig.42@example.com>', file);
      assert.equal(original.headers.find((h) => h.key === 'x-mailward-sig')?.value, 'v=1; k=ka; t=1; s=abc', file);
    }
  });

  it('a 24 MB bounce: only its first 2 MB are MIME-decoded; the original near its start is still found', async () => {
    const fields = { mid: '<orig.big@example.com>', sigLine: 'X-Mailward-Sig: v=1; k=ka; t=1; s=abc' };
    const big = Buffer.concat([Buffer.from(bounce('postfix-dsn.eml', fields)), Buffer.from(PADDING_24MB)]);
    const { result, sizes } = await postalInputSizes(() => extractOriginal(ctx(big, ''), 'x-mailward-sig'));
    assert.equal(result?.source, 'message/rfc822');
    assert.equal(result?.headers.find((h) => h.key === 'message-id')?.value, '<orig.big@example.com>');
    assert.ok(sizes.length > 0 && sizes.every((n) => n <= MAX_PARSE_BYTES), `PostalMime.parse given ${sizes.join(', ')} bytes`);
  });

  it('a bounce padded with 2 MB of short lines: only its first MAX_PARSE_LINES lines are MIME-decoded; the original is still found', async () => {
    const fields = { mid: '<orig.short@example.com>', sigLine: 'X-Mailward-Sig: v=1; k=ka; t=1; s=abc' };
    const padded = Buffer.concat([Buffer.from(bounce('postfix-dsn.eml', fields)), Buffer.from('--\r\n'.repeat(500_000))]);
    const { result, inputs } = await postalInputs(() => extractOriginal(ctx(padded, ''), 'x-mailward-sig'));
    assert.equal(result?.headers.find((h) => h.key === 'message-id')?.value, '<orig.short@example.com>');
    assert.ok(inputs.length > 0 && inputs.every((b) => lineCount(b) <= MAX_PARSE_LINES), `postal-mime given ${inputs.map(lineCount).join(', ')} lines`);
  });

  it('bad input: a truncated original keeps what survived; a missing one gives null', async () => {
    const truncated = await extractOriginal(ctx(bounce('truncated-dsn.eml', { mid: '<cut@example.com>' }), ''), 'x-mailward-sig');
    assert.ok(truncated);
    assert.equal(truncated.headers.find((h) => h.key === 'message-id')?.value, '<cut@example.com>');
    assert.equal(await extractOriginal(ctx(bounce('missing-original.eml'), ''), 'x-mailward-sig'), null);
    assert.equal(await extractOriginal(ctx('garbage without headers', ''), 'x-mailward-sig'), null);
    assert.equal(await extractOriginal(ctx(Buffer.alloc(0), ''), 'x-mailward-sig'), null);
    assert.equal(await extractOriginal(ctx(fixtureBytes('8bit-subject.eml'), ''), 'x-mailward-sig'), null);
  });
});

const idHash = (mid: string) => createHash('sha256').update(mid).digest('hex').slice(0, 32);

function redisStore(prefix: string): RedisStore {
  return new RedisStore({ backend: 'redis', redisUrl: 'redis://127.0.0.1:6379', prefix, timeoutMs: 1000, memoryMaxEntries: 1000 }, silentLogger);
}

for (const backend of ['memory', 'redis'] as const) {
  describe(`backscatter: Message-ID records (${backend} state)`, () => {
    const NOW = Date.UTC(2025, 2, 10, 9, 15);
    const clock = { now: NOW };
    let store: StateStore;
    let sent: SentMessages;
    let prefix: string;
    beforeEach(() => {
      prefix = uniquePrefix('sent');
      store = backend === 'memory' ? new MemoryStore(1000) : redisStore(prefix);
      clock.now = NOW;
      sent = new SentMessages(store, 86400, () => clock.now);
    });
    afterEach(async () => {
      await store.close();
      if (backend === 'redis') await deleteRedisKeys(prefix);
    });

    it('keeps the senders hashed and matches them as addresses (case, IDN domain); writes no record the previous release would read', async () => {
      await sent.record('<m.1@example.com>', ['Alice@Bücher.example', 'alice@example.com', '']);
      const keys = (await store.keys('bs:')).sort();
      // A plain-time bs:mid: record would verify a bounce to anyone on a node of the previous release.
      assert.deepEqual(keys.map((k) => k.replace(/[0-9a-f]{16,}/g, 'H')), ['bs:sender:H:H', 'bs:sender:H:H', 'bs:sent:H']);
      assert.ok(keys.every((k) => !/alice|bücher/i.test(k)));
      assert.deepEqual(await store.mget(keys), [String(NOW), String(NOW), String(NOW)]);
      assert.deepEqual(await sent.lookup(['<other@x>', '<M.1@example.com>'], 'alice@xn--bcher-kva.example'), { messageId: '<M.1@example.com>', match: 'sender' });
      assert.deepEqual(await sent.lookup(['<m.1@example.com>'], 'ALICE@EXAMPLE.COM'), { messageId: '<m.1@example.com>', match: 'sender' });
      assert.deepEqual(await sent.lookup(['<m.1@example.com>'], 'carol@example.com'), { messageId: '<m.1@example.com>', match: 'other' });
      assert.deepEqual(await sent.lookup(['<m.1@example.com>'], ''), { messageId: '<m.1@example.com>', match: 'other' });
      assert.equal(await sent.lookup(['<never@example.com>'], 'alice@example.com'), undefined);
    });

    it('VERP: one Message-ID relayed once per recipient, each with its own envelope sender, verifies the bounces to every one of them', async () => {
      const verp = ['bob', 'carol', 'dave'].map((u) => `list-bounces+${u}=remote.example@example.com`);
      for (const sender of verp) await sent.record('<digest.1@example.com>', [sender, 'list@example.com']);
      for (const sender of [...verp, 'list@example.com']) assert.deepEqual(await sent.lookup(['<digest.1@example.com>'], sender), { messageId: '<digest.1@example.com>', match: 'sender' }, sender);
      assert.deepEqual(await sent.lookup(['<digest.1@example.com>'], 'list-bounces+erin=remote.example@example.com'), { messageId: '<digest.1@example.com>', match: 'other' });
      // Every sender is judged by the time of its own copy.
      clock.now = NOW + 86400_000 - 1;
      await sent.record('<digest.1@example.com>', ['list-bounces+erin=remote.example@example.com']);
      clock.now = NOW + 86400_000 + 1;
      assert.deepEqual(await sent.lookup(['<digest.1@example.com>'], verp[0]!), { messageId: '<digest.1@example.com>', match: 'other' });
      assert.deepEqual(await sent.lookup(['<digest.1@example.com>'], 'list-bounces+erin=remote.example@example.com'), { messageId: '<digest.1@example.com>', match: 'sender' });
    });

    it('reply addresses (Reply-To:, further From:) are kept apart from the senders, at most 4, and match only when asked (automatic replies)', async () => {
      const kept = await sent.record('<r.1@example.com>', ['alice@example.com'], ['Desk@Example.com', 'ALICE@example.com', 'desk@example.com', 'a1@x.example', 'a2@x.example', 'a3@x.example', 'a4@x.example', '', 'no-address']);
      // alice is a sender already, desk appears twice, a4 is the fifth: desk, a1, a2, a3 are kept.
      assert.equal(kept, 4);
      const keys = (await store.keys('bs:')).map((k) => k.replace(/[0-9a-f]{16,}/g, 'H')).sort();
      // Only the senders are bs:sender: pairs, which a node of the previous release reads as "a bounce (DSN too) to this address verifies".
      assert.deepEqual(keys, ['bs:reply:H:H', 'bs:reply:H:H', 'bs:reply:H:H', 'bs:reply:H:H', 'bs:sender:H:H', 'bs:sent:H']);
      const reply = { replyAddresses: true };
      for (const rcpt of ['desk@example.com', 'A1@X.example', 'a3@x.example']) {
        assert.deepEqual(await sent.lookup(['<r.1@example.com>'], rcpt, reply), { messageId: '<r.1@example.com>', match: 'reply' }, rcpt);
        // A DSN goes to the envelope sender: a reply address never verifies one.
        assert.deepEqual(await sent.lookup(['<r.1@example.com>'], rcpt), { messageId: '<r.1@example.com>', match: 'other' }, rcpt);
      }
      assert.deepEqual(await sent.lookup(['<r.1@example.com>'], 'a4@x.example', reply), { messageId: '<r.1@example.com>', match: 'other' });
      assert.deepEqual(await sent.lookup(['<r.1@example.com>'], '', reply), { messageId: '<r.1@example.com>', match: 'other' });
      assert.deepEqual(await sent.lookup(['<r.1@example.com>'], 'alice@example.com', reply), { messageId: '<r.1@example.com>', match: 'sender' });
      // A record naming the recipient as sender wins over one naming it as a reply address.
      await sent.record('<r.2@example.com>', ['desk@example.com']);
      assert.deepEqual(await sent.lookup(['<r.1@example.com>', '<r.2@example.com>'], 'desk@example.com', reply), { messageId: '<r.2@example.com>', match: 'sender' });
      clock.now = NOW + 86400_000 + 1;
      assert.equal(await sent.lookup(['<r.1@example.com>'], 'desk@example.com', reply), undefined);
    });

    it('a record written before reply addresses were kept (bs:sent: and bs:sender: only) verifies as it did, automatic replies included', async () => {
      const senderHash = (a: string) => createHash('sha256').update(a).digest('hex').slice(0, 16);
      const id = idHash('pre.1@example.com');
      await store.set(`bs:sent:${id}`, String(NOW - 1000), 86400);
      await store.set(`bs:sender:${id}:${senderHash('alice@example.com')}`, String(NOW - 1000), 86400);
      for (const options of [{}, { replyAddresses: true }]) {
        assert.deepEqual(await sent.lookup(['<pre.1@example.com>'], 'alice@example.com', options), { messageId: '<pre.1@example.com>', match: 'sender' });
        assert.deepEqual(await sent.lookup(['<pre.1@example.com>'], 'desk@example.com', options), { messageId: '<pre.1@example.com>', match: 'other' });
      }
    });

    it("a record of the previous release (bs:mid:, a plain time) verifies a bounce to any one recipient until it expires", async () => {
      await store.set(`bs:mid:${idHash('old.1@example.com')}`, String(NOW - 1000), 86400);
      // Its unreleased successor's "time hashes" value: no plain time, so no record, as for the previous release.
      await store.set(`bs:mid:${idHash('odd.1@example.com')}`, `${NOW} 0123456789abcdef`, 86400);
      for (const rcpt of ['alice@example.com', 'bob@example.com']) assert.deepEqual(await sent.lookup(['<old.1@example.com>'], rcpt), { messageId: '<old.1@example.com>', match: 'legacy' }, rcpt);
      // Not to the sender alone when there is more than one recipient.
      assert.deepEqual(await sent.lookup(['<old.1@example.com>'], ''), { messageId: '<old.1@example.com>', match: 'other' });
      assert.equal(await sent.lookup(['<odd.1@example.com>'], 'alice@example.com'), undefined);
      // A record naming the recipient wins over a legacy one, whatever the order.
      await sent.record('<new.1@example.com>', ['bob@example.com']);
      assert.deepEqual(await sent.lookup(['<old.1@example.com>', '<new.1@example.com>'], 'bob@example.com'), { messageId: '<new.1@example.com>', match: 'sender' });
      clock.now = NOW + 86400_000;
      assert.equal(await sent.lookup(['<old.1@example.com>'], 'bob@example.com'), undefined);
    });
  });
}

describe('backscatter: settings', () => {
  const parse = (text: string) => {
    const reader = new IniReader('mailward.backscatter.ini', parseIni(text, 'mailward.backscatter.ini'));
    const settings = parseBackscatterSettings(reader);
    reader.finish();
    return settings;
  };

  it('the shipped file equals the code defaults', () => {
    const shipped = readFileSync(repoPath('config', 'mailward.backscatter.ini'), 'utf8');
    assert.deepEqual(parse(shipped), parse(''));
    const reader = new IniReader('mailward.backscatter.ini', parseIni(shipped, 'mailward.backscatter.ini'));
    const blocked = backscatterModule.parseSettings(reader, undefined as never).symbols!.find((s) => s.name === 'BACKSCATTER_SUBJECT_BLOCKED')!;
    assert.equal(blocked.score, DEFAULTS.actionScore);
    assert.equal(backscatterModule.symbols.find((s) => s.name === 'BACKSCATTER_SUBJECT_BLOCKED')!.score, DEFAULTS.actionScore);
  });

  it('[scores] in mailward.ini still overrides the block weight', async () => {
    const mw = backscatterRuntime('[scores]\nBACKSCATTER_SUBJECT_BLOCKED = 30\n', '[throttle]\naction_score = 20\n', tmpdir(), Date.now);
    try {
      assert.equal(mw.runtime.config.symbols.get('BACKSCATTER_SUBJECT_BLOCKED').score, 30);
    } finally {
      await mw.close();
    }
  });

  it('reads keys in order and [throttle] action_score sets the block weight', () => {
    const s = parse(`[signing]\nkeys = ${KEY_B}, ${KEY_A}\n[throttle]\naction_score = 20\nmatch = BOUNCE_UNVERIFIED, AUTO_REPLY\n`);
    assert.deepEqual(s.signing.keys.map((k) => k.id), ['kb', 'ka']);
    assert.equal(s.throttle.actionScore, 20);
    assert.deepEqual(s.throttle.match, ['BOUNCE_UNVERIFIED', 'AUTO_REPLY']);
  });

  it('names file, section and key for bad values', () => {
    assert.throws(() => parse('[signing]\nkeys = k1:short\n'), (e: unknown) => e instanceof ConfigError && /signing/.test(e.message) && /keys/.test(e.message) && /shorter/.test(e.message));
    assert.throws(() => parse('[signing]\nkeys = nosecret\n'), ConfigError);
    assert.throws(() => parse(`[signing]\nkeys = ${KEY_A}, ${KEY_A}\n`), /twice/);
    assert.throws(() => parse('[throttle]\nmatch = bounce_unverified\n'), /neither a symbol name/);
    assert.throws(() => parse('[throttle]\nthreshold = 0\n'), /at least 1/);
    assert.throws(() => parse('[throttle]\nthreshhold = 5\n'), /unknown key/);
  });
});

describe('backscatter module through the library front door (memory state, injected clock)', () => {
  let t: TestMailward;
  const ini = `[signing]\nkeys = ${KEY_A}\n[throttle]\nthreshold = 5\nwindow_minutes = 2\nblock_minutes = 10\n`;
  beforeEach(() => {
    t = testMailward(ini);
  });
  afterEach(() => t.close());

  async function sendOut(fields: Parameters<typeof outbound>[0] = {}) {
    const result = await t.mw.scan({ ip: '10.0.0.5', relaying: true, authUser: 'alice', mailFrom: 'alice@example.com', rcptTo: ['nobody@remote.example'], raw: outbound(fields), localHostname: 'mx.example.com' });
    return result;
  }
  const inbound = (raw: string | Buffer, rcptTo = ['alice@example.com'], mailFrom = '') => t.mw.scan({ ip: '192.0.2.25', mailFrom, rcptTo, raw });

  it('signs relayed mail, records its Message-ID, and verifies its bounce (round trip)', async () => {
    const out = await sendOut();
    assert.ok(symbols(out).OUTBOUND_SIGNED?.includes('signed with key ka'));
    const [name, value] = out.context.headerChanges.add.find(([n]) => n === 'X-Mailward-Sig')!;
    assert.equal(name, 'X-Mailward-Sig');
    assert.deepEqual(out.context.headerChanges.remove, ['X-Mailward-Sig']);
    const result = await inbound(bounce('postfix-dsn.eml', { sigLine: `X-Mailward-Sig: ${value}` }));
    const s = symbols(result);
    assert.match(s.BOUNCE_VERIFIED!, /signature by key ka/);
    assert.equal(s.BOUNCE_UNVERIFIED, undefined);
    assert.equal(result.verdict.action, 'accept');
  });

  it('verifies by recorded Message-ID when the bounce carries only the headers without a signature', async () => {
    await sendOut({ mid: '<only-id.7@example.com>' });
    const result = await inbound(bounce('headers-only-dsn.eml', { mid: '<only-id.7@example.com>' }));
    assert.match(symbols(result).BOUNCE_VERIFIED!, /Message-ID <only-id.7@example.com> was sent by us/);
  });

  it('verifies an auto-reply by its In-Reply-To', async () => {
    await sendOut({ mid: '<asked.1@example.com>' });
    const s = symbols(await inbound(bounce('vacation.eml', { mid: '<asked.1@example.com>' }), ['alice@example.com'], 'bob@remote.example'));
    assert.ok('AUTO_REPLY' in s);
    assert.ok('BOUNCE_VERIFIED' in s);
  });

  it('looks up a few referenced Message-IDs: In-Reply-To and the newest of References, not thousands', () => {
    const many = Array.from({ length: 5000 }, (_, i) => `<r${i}@x.example>`).join(' ');
    const ctx = createContext({ ip: '192.0.2.1', rcptTo: ['alice@example.com'], raw: `From: a@x.example\r\nIn-Reply-To: <parent@example.com>\r\nReferences: ${many}\r\n\r\nhi\r\n` });
    const ids = referencedMessageIds(ctx);
    assert.equal(ids.length, 10);
    assert.deepEqual(ids.slice(0, 3), ['<parent@example.com>', '<r4999@x.example>', '<r4998@x.example>']);
  });

  it("a copied signature verifies only a bounce to the original's sender, not bounces to anyone else", async () => {
    // alice wrote to an outsider, who now quotes her signed headers in "bounces" to other users.
    const sig = (await sendOut()).context.headerChanges.add.find(([n]) => n === 'X-Mailward-Sig')![1];
    const replay = bounce('headers-only-dsn.eml', { sigLine: `X-Mailward-Sig: ${sig}` });
    for (const rcpt of ['bob@example.com', 'carol@example.com', 'alice@other.example']) {
      const s = symbols(await inbound(replay, [rcpt]));
      assert.ok(!('BOUNCE_VERIFIED' in s), rcpt);
      assert.match(s.BOUNCE_UNVERIFIED!, /valid signature by key ka .* but not addressed to the original's sender/, rcpt);
    }
    // To alice and someone else at once: not to the sender alone.
    const both = symbols(await inbound(replay, ['alice@example.com', 'carol@example.com']));
    assert.match(both.BOUNCE_UNVERIFIED!, /addressed to 2 recipients, not to the original's sender alone/);
    // To alice herself (the domain's case does not matter): her real bounce.
    assert.match(symbols(await inbound(replay, ['alice@EXAMPLE.com'])).BOUNCE_VERIFIED!, /signature by key ka/);
    // Replayed bounces are unverified, so they count toward the subject throttle: the 4 above
    // and one more reach the threshold of 5.
    assert.match(symbols(await inbound(replay, ['dave@example.com'])).BACKSCATTER_SUBJECT_BLOCKED!, /this message started the block/);
  });

  it("a recorded Message-ID verifies only bounces and auto-replies to the message's sender (envelope or From:)", async () => {
    await sendOut({ mid: '<asked.2@example.com>' });
    const autoReply = bounce('vacation.eml', { mid: '<asked.2@example.com>' });
    let s = symbols(await inbound(autoReply, ['erin@example.com'], 'deals@spam.example'));
    assert.ok(!('BOUNCE_VERIFIED' in s));
    assert.match(s.BOUNCE_UNVERIFIED!, /auto-reply: .*Message-ID <asked.2@example.com> was sent by us, but not addressed to the original's sender/);
    s = symbols(await inbound(bounce('headers-only-dsn.eml', { mid: '<asked.2@example.com>' }), ['erin@example.com']));
    assert.match(s.BOUNCE_UNVERIFIED!, /was sent by us, but not addressed/);
    assert.match(symbols(await inbound(autoReply, ['alice@example.com'], 'bob@remote.example')).BOUNCE_VERIFIED!, /was sent by us from the recipient's address/);

    // Envelope sender and From: differ (a list's bounce address): the bounce goes to the
    // envelope sender, which the signature does not cover but the record does.
    const out = await t.mw.scan({ ip: '10.0.0.5', relaying: true, authUser: 'alice', mailFrom: 'list-bounces@example.com', rcptTo: ['nobody@remote.example'], raw: outbound({ mid: '<list.1@example.com>' }), localHostname: 'mx.example.com' });
    const sig = out.context.headerChanges.add.find(([n]) => n === 'X-Mailward-Sig')![1];
    const listBounce = bounce('postfix-dsn.eml', { mid: '<list.1@example.com>', sigLine: `X-Mailward-Sig: ${sig}` });
    assert.match(symbols(await inbound(listBounce, ['list-bounces@example.com'])).BOUNCE_VERIFIED!, /Message-ID <list.1@example.com> was sent by us/);
    assert.ok('BOUNCE_UNVERIFIED' in symbols(await inbound(listBounce, ['carol@example.com'])));
  });

  it('adds a Message-ID to relayed mail without one, and signs over it', async () => {
    const out = await sendOut({ mid: '' });
    const added = out.context.headerChanges.add.find(([n]) => n === 'Message-ID');
    assert.ok(added);
    assert.match(added[1], /^<.+@mx\.example\.com>$/);
    assert.match(symbols(out).OUTBOUND_SIGNED!, /Message-ID added/);
  });

  it('forged, expired and unknown-key signatures leave the bounce unverified', async () => {
    const out = await sendOut();
    const value = out.context.headerChanges.add.find(([n]) => n === 'X-Mailward-Sig')![1];
    // Forged: right format, wrong MAC, and a Message-ID we never sent.
    const forged = value.replace(/s=.*/, 's=' + 'A'.repeat(43));
    let s = symbols(await inbound(bounce('postfix-dsn.eml', { mid: '<never-sent@example.com>', sigLine: `X-Mailward-Sig: ${forged}` })));
    assert.match(s.BOUNCE_SIG_INVALID!, /bad signature/);
    assert.ok('BOUNCE_UNVERIFIED' in s);
    // A real signature copied onto a message we never sent.
    s = symbols(await inbound(bounce('postfix-dsn.eml', { mid: '<never-sent@example.com>', sigLine: `X-Mailward-Sig: ${value}` })));
    assert.match(s.BOUNCE_SIG_INVALID!, /bad signature/);
    assert.ok('BOUNCE_UNVERIFIED' in s);
    t.clock.now += 15 * 86400_000;
    // The real one, 15 days on: its signature and its Message-ID record (14 days) have both expired.
    const expired = symbols(await inbound(bounce('postfix-dsn.eml', { sigLine: `X-Mailward-Sig: ${value}` })));
    assert.match(expired.BOUNCE_SIG_EXPIRED!, /older than 14 days/);
    assert.ok('BOUNCE_UNVERIFIED' in expired);
    assert.ok(!('BOUNCE_VERIFIED' in expired));
    // Unknown key: signed by a key this node does not have.
    const other = sign({ id: 'zz', secret: 'another-secret-entirely-123' }, FIELDS, t.clock.now);
    s = symbols(await inbound(bounce('postfix-dsn.eml', { mid: '<never-sent@example.com>', sigLine: `X-Mailward-Sig: ${other}` })));
    assert.match(s.BOUNCE_SIG_INVALID!, /unknown key \(key zz\)/);
    assert.ok('BOUNCE_UNVERIFIED' in s);
  });

  it('bad input: truncated original, missing original, 8-bit subject, empty subject never throw', async () => {
    let s = symbols(await inbound(bounce('truncated-dsn.eml', { mid: '<cut.1@example.com>' })));
    assert.match(s.BOUNCE_UNVERIFIED!, /<cut.1@example.com>/);
    s = symbols(await inbound(bounce('missing-original.eml')));
    assert.ok('BOUNCE_NO_ORIGINAL' in s);
    assert.match(s.BOUNCE_UNVERIFIED!, /no original/);
    const eight = await inbound(fixtureBytes('8bit-subject.eml'));
    assert.ok('BOUNCE_UNVERIFIED' in symbols(eight));
    assert.equal(eight.verdict.symbols.find((x) => x.name === 'CHECK_ERROR'), undefined);
    const empty = await inbound(fixtureBytes('empty-subject.eml'));
    assert.ok('BOUNCE_UNVERIFIED' in symbols(empty));
    assert.equal((empty.context.notes.backscatter as { subject: string }).subject, '');
  });

  it('a bounce to several recipients is a symbol of its own', async () => {
    const s = symbols(await inbound(bounce('postfix-dsn.eml'), ['alice@example.com', 'carol@example.com']));
    assert.equal(s.BOUNCE_MULTI_RCPT, '2 recipients');
  });

  it('throttle: the 5th unverified bounce with one subject starts a block for every IP and any message; verified bounces pass', async () => {
    const unverified = (n: number) => bounce('postfix-dsn.eml', { mid: `<spam.${n}@example.com>` });
    for (let i = 1; i <= 4; i++) assert.ok(!('BACKSCATTER_SUBJECT_BLOCKED' in symbols(await inbound(unverified(i)))), `message ${i}`);
    const fifth = await inbound(unverified(5));
    assert.match(symbols(fifth).BACKSCATTER_SUBJECT_BLOCKED!, /this message started the block: subject "undelivered mail returned to sender" blocked after 5 matching messages within 2 min \(since 2025-03-10T09:15:00Z on test-node, until 2025-03-10T09:25:00Z\)/);
    // 12 + 4: rejected outright with the default thresholds
    assert.equal(fifth.verdict.action, 'reject');

    // Ordinary mail with the same subject (case and spacing differ) from another IP is deferred.
    const plain = await t.mw.scan({ ip: '198.51.100.9', mailFrom: 'carol@other.example', rcptTo: ['alice@example.com'], raw: 'From: carol@other.example\r\nSubject: UNDELIVERED  mail returned to sender\r\n\r\nhi\r\n' });
    assert.ok('BACKSCATTER_SUBJECT_BLOCKED' in symbols(plain));
    assert.equal(plain.verdict.action, 'soft_reject');

    // The same subject on mail whose From: domain is authenticated is not held up by forged bounces.
    const authenticated = createContext({ ip: '198.51.100.10', mailFrom: 'news@other.example', rcptTo: ['alice@example.com'], raw: 'From: news@other.example\r\nSubject: Undelivered mail returned to sender\r\n\r\nhi\r\n' });
    authenticated.notes.auth = { fromDomain: 'other.example', spf: { result: 'pass', domain: 'other.example', aligned: true, comment: '' }, dkim: [], dmarc: { result: 'pass', policy: 'none', domain: 'other.example' } };
    const vouched = await t.mw.scan(authenticated);
    assert.ok(!('BACKSCATTER_SUBJECT_BLOCKED' in symbols(vouched)));
    assert.match(symbols(vouched).BACKSCATTER_BLOCK_EXEMPT!, /is blocked until 2025-03-10T09:25:00Z, but this is no bounce and From: domain other\.example is authenticated \(dmarc=pass, spf=pass aligned\)/);
    assert.equal(vouched.verdict.action, 'accept');
    // ... unless the operator turns the exemption off.
    const strict = testMailward(`${ini}exempt_authenticated = false\n`);
    try {
      for (let i = 1; i <= 5; i++) await strict.mw.scan({ ip: '192.0.2.25', mailFrom: '', rcptTo: ['alice@example.com'], raw: unverified(i) });
      authenticated.notes = { auth: authenticated.notes.auth };
      assert.ok('BACKSCATTER_SUBJECT_BLOCKED' in symbols(await strict.mw.scan(authenticated)));
    } finally {
      await strict.close();
    }

    // A bounce of our own mail with the same subject is accepted.
    const out = await sendOut({ mid: '<real.1@example.com>' });
    const sig = out.context.headerChanges.add.find(([n]) => n === 'X-Mailward-Sig')![1];
    const verified = await inbound(bounce('postfix-dsn.eml', { mid: '<real.1@example.com>', sigLine: `X-Mailward-Sig: ${sig}` }));
    assert.ok(!('BACKSCATTER_SUBJECT_BLOCKED' in symbols(verified)));
    assert.equal(verified.verdict.action, 'accept');

    // After the block period mail flows again.
    t.clock.now += 10 * 60_000 + 1;
    const later = await inbound(unverified(99));
    assert.ok(!('BACKSCATTER_SUBJECT_BLOCKED' in symbols(later)));
    assert.equal(later.verdict.action, 'accept');
  });

  it('relayed mail is neither counted nor blocked', async () => {
    for (let i = 0; i < 5; i++) await inbound(bounce('postfix-dsn.eml', { mid: `<s.${i}@example.com>` }));
    const out = await sendOut({ subject: 'Undelivered Mail Returned to Sender' });
    assert.ok(!('BACKSCATTER_SUBJECT_BLOCKED' in symbols(out)));
  });

  it('messages that do not match the rule do not count, and an empty subject is not throttled by default', async () => {
    const plain = (i: number) => `From: carol@other.example\r\nSubject: Hello there\r\nMessage-ID: <p${i}@other.example>\r\n\r\nhi\r\n`;
    for (let i = 0; i < 8; i++) assert.ok(!('BACKSCATTER_SUBJECT_BLOCKED' in symbols(await t.mw.scan({ ip: '198.51.100.9', mailFrom: 'carol@other.example', rcptTo: ['alice@example.com'], raw: plain(i) }))));
    for (let i = 0; i < 8; i++) assert.ok(!('BACKSCATTER_SUBJECT_BLOCKED' in symbols(await inbound(fixtureBytes('empty-subject.eml')))));
  });
});

for (const backend of ['memory', 'redis'] as const) {
  describe(`backscatter: Message-ID records through the library front door (${backend} state, no signing keys)`, () => {
    let t: TestMailward;
    beforeEach(() => {
      // Signing keys are empty by default: the Message-ID record is all that verifies.
      t = testMailward('[throttle]\nthreshold = 3\n', { backend });
    });
    afterEach(() => t.close());
    const relay = (mailFrom: string, mid: string, from = 'List <list@example.com>') =>
      t.mw.scan({ ip: '10.0.0.5', relaying: true, authUser: 'list', mailFrom, rcptTo: ['someone@remote.example'], raw: outbound({ mid, from }), localHostname: 'mx.example.com' });
    const inbound = (raw: string, rcpt: string, mailFrom = '') => t.mw.scan({ ip: '192.0.2.25', mailFrom, rcptTo: [rcpt], raw });

    it("VERP: the bounce of each copy goes to that copy's envelope sender and verifies; bounces to anyone else do not; nothing the previous release would read is written", async () => {
      const mid = '<digest.7@example.com>';
      const verp = ['bob', 'carol', 'dave'].map((u) => `list-bounces+${u}=remote.example@example.com`);
      for (const sender of verp) assert.match(symbols(await relay(sender, mid)).OUTBOUND_SIGNED!, /Message-ID recorded/);
      const dsn = bounce('postfix-dsn.eml', { mid, from: 'List <list@example.com>' });
      // Three verified bounces: with threshold 3 they would have started a block had they counted.
      for (const sender of verp) {
        const s = symbols(await inbound(dsn, sender));
        assert.match(s.BOUNCE_VERIFIED!, /Message-ID <digest.7@example.com> was sent by us from the recipient's address/, sender);
        assert.ok(!('BOUNCE_UNVERIFIED' in s) && !('BACKSCATTER_SUBJECT_BLOCKED' in s), sender);
      }
      assert.ok('BOUNCE_VERIFIED' in symbols(await inbound(bounce('vacation.eml', { mid }), 'list@example.com', 'bob@remote.example')));
      // The replay fix holds: a bounce quoting that Message-ID to someone who did not send it.
      const s = symbols(await inbound(dsn, 'erin@example.com'));
      assert.ok(!('BOUNCE_VERIFIED' in s));
      assert.match(s.BOUNCE_UNVERIFIED!, /Message-ID <digest.7@example.com> was sent by us, but not addressed to the original's sender/);
      // A node of the previous release reads a bs:mid: time as "verifies a bounce to anyone".
      assert.deepEqual(await t.mw.runtime.services.state.keys('bs:mid:'), []);
    });

    it("an auto-reply to an address in the original's Reply-To: or a second From: address verifies; a DSN to it does not; DSNs to the envelope sender and first From: address still do", async () => {
      const mid = '<asked-desk.1@example.com>';
      const out = await t.mw.scan({
        ip: '10.0.0.5',
        relaying: true,
        authUser: 'alice',
        mailFrom: 'alice-bounces@example.com',
        rcptTo: ['bob@remote.example'],
        raw: outbound({ mid, from: 'Alice <alice@example.com>, Team <team@example.com>', replyTo: 'Help Desk <desk@example.com>, "Doe, Jo" <jo@example.com>' }),
        localHostname: 'mx.example.com',
      });
      assert.match(symbols(out).OUTBOUND_SIGNED!, /Message-ID recorded \(and 3 Reply-To:\/From: addresses for auto-replies\)/);
      const vacation = bounce('vacation.eml', { mid });
      // Threshold 3: had these counted as unverified, the third would have started a block.
      for (const rcpt of ['desk@example.com', 'jo@example.com', 'team@example.com']) {
        const s = symbols(await inbound(vacation, rcpt, 'bob@remote.example'));
        assert.match(s.BOUNCE_VERIFIED!, /Message-ID <asked-desk.1@example.com> was sent by us naming the recipient in its Reply-To: or From:/, rcpt);
        assert.ok(!('BOUNCE_UNVERIFIED' in s) && !('BACKSCATTER_SUBJECT_BLOCKED' in s), rcpt);
      }
      // A DSN goes to the envelope sender, not to Reply-To:.
      const dsn = bounce('headers-only-dsn.eml', { mid });
      const toDesk = symbols(await inbound(dsn, 'desk@example.com'));
      assert.ok(!('BOUNCE_VERIFIED' in toDesk));
      assert.match(toDesk.BOUNCE_UNVERIFIED!, /Message-ID <asked-desk.1@example.com> was sent by us, but not addressed to the original's sender/);
      // As before: a DSN to the envelope sender or the first From: address verifies.
      for (const rcpt of ['alice-bounces@example.com', 'alice@example.com']) assert.match(symbols(await inbound(dsn, rcpt)).BOUNCE_VERIFIED!, /was sent by us from the recipient's address/, rcpt);
      // An auto-reply to anyone else is still unverified.
      assert.match(symbols(await inbound(vacation, 'erin@example.com', 'bob@remote.example')).BOUNCE_UNVERIFIED!, /but not addressed to the original's sender/);
      // Only envelope sender and first From: are bs:sender: pairs: a node of the previous release verifies no DSN to desk@.
      assert.equal((await t.mw.runtime.services.state.keys('bs:sender:')).length, 2);
    });

    it('mail relayed by IP, without SMTP AUTH, records no reply addresses: a list server or web form passes on what outsiders wrote', async () => {
      const mid = '<outsider-post.1@example.com>';
      // An outsider's post re-sent by a host allowed to relay, naming a local mailbox in Reply-To:.
      const out = await t.mw.scan({ ip: '10.0.0.9', relaying: true, mailFrom: 'list-bounces@example.com', rcptTo: ['bob@remote.example'], raw: outbound({ mid, from: 'Mallory <mallory@evil.example>', replyTo: 'ceo@example.com' }), localHostname: 'mx.example.com' });
      assert.doesNotMatch(symbols(out).OUTBOUND_SIGNED!, /Reply-To/);
      assert.equal((await t.mw.runtime.services.state.keys('bs:reply:')).length, 0);
      // Her "auto-replies" to the CEO quoting it are unverified (and counted toward the throttle).
      assert.match(symbols(await inbound(bounce('vacation.eml', { mid }), 'ceo@example.com', 'mallory@evil.example')).BOUNCE_UNVERIFIED!, /but not addressed to the original's sender/);
    });

    it('one message keeps at most 4 reply addresses: an auto-reply to a fifth is unverified', async () => {
      const mid = '<many-replyto.1@example.com>';
      const replyTo = ['r1', 'r2', 'r3', 'r4', 'r5', 'r6'].map((u) => `${u}@example.com`).join(', ');
      await t.mw.scan({ ip: '10.0.0.5', relaying: true, authUser: 'alice', mailFrom: 'alice@example.com', rcptTo: ['bob@remote.example'], raw: outbound({ mid, replyTo }), localHostname: 'mx.example.com' });
      assert.equal((await t.mw.runtime.services.state.keys('bs:reply:')).length, 4);
      const vacation = bounce('vacation.eml', { mid });
      assert.ok('BOUNCE_VERIFIED' in symbols(await inbound(vacation, 'r4@example.com', 'bob@remote.example')));
      assert.ok('BOUNCE_UNVERIFIED' in symbols(await inbound(vacation, 'r5@example.com', 'bob@remote.example')));
    });

    it('a record of the previous release verifies bounces and auto-replies to any one recipient, unthrottled, until it expires', async () => {
      const mid = '<before-upgrade.1@example.com>';
      await t.mw.runtime.services.state.set(`bs:mid:${idHash('before-upgrade.1@example.com')}`, String(t.clock.now - 3600_000), 14 * 86400);
      const dsn = bounce('postfix-dsn.eml', { mid });
      // Four bounces to four users, threshold 3: none unverified, none counted, none blocked.
      for (const rcpt of ['alice@example.com', 'bob@example.com', 'carol@example.com', 'dave@example.com']) {
        const s = symbols(await inbound(dsn, rcpt));
        assert.match(s.BOUNCE_VERIFIED!, /Message-ID <before-upgrade.1@example.com> was sent by us \(recorded before senders were kept\)/, rcpt);
        assert.ok(!('BOUNCE_UNVERIFIED' in s) && !('BACKSCATTER_SUBJECT_BLOCKED' in s), rcpt);
      }
      assert.ok('BOUNCE_VERIFIED' in symbols(await inbound(bounce('vacation.eml', { mid }), 'erin@example.com', 'bob@remote.example')));
      // Not to one recipient: not verified.
      const many = symbols(await t.mw.scan({ ip: '192.0.2.25', mailFrom: '', rcptTo: ['alice@example.com', 'bob@example.com'], raw: dsn }));
      assert.match(many.BOUNCE_UNVERIFIED!, /was sent by us, but addressed to 2 recipients/);
      // message_id_ttl_days (14) after it was sent, the record no longer verifies.
      t.clock.now += 14 * 86400_000 - 3600_000 + 1;
      assert.match(symbols(await inbound(dsn, 'alice@example.com')).BOUNCE_UNVERIFIED!, /no valid signature or known Message-ID/);
    });
  });
}

describe('backscatter module: match = * and empty_subject = true', () => {
  let t: TestMailward;
  before(() => {
    t = testMailward('[throttle]\nmatch = *\nthreshold = 3\nempty_subject = true\n');
  });
  after(() => t.close());

  it('counts every message and throttles empty subjects when asked', async () => {
    const msg = 'From: carol@other.example\r\nSubject: \r\n\r\nhi\r\n';
    const results = [];
    for (let i = 0; i < 3; i++) results.push(await t.mw.scan({ ip: '198.51.100.9', mailFrom: 'carol@other.example', rcptTo: ['alice@example.com'], raw: msg }));
    assert.deepEqual(results.map((r) => 'BACKSCATTER_SUBJECT_BLOCKED' in symbols(r)), [false, false, true]);
    assert.match(symbols(results[2]!).BACKSCATTER_SUBJECT_BLOCKED!, /subject "" blocked after 3/);
  });
});

describe('backscatter and content autolearn', () => {
  const SPAM = 'viagra cialis casino jackpot crypto doubler cheap pills replica watches';
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'mw-bs-learn-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** Scans the messages with backscatter and content (autolearn on), then reads the model back. */
  async function learnt(contentIni: string, scoresIni: string, backscatterIni: string, scans: (mw: ReturnType<typeof createMailward>) => Promise<void>) {
    writeFileSync(join(dir, 'mailward.ini'), `[main]\ndata_dir = ${join(dir, 'data')}\n[tracking]\nenabled = false\n[scores]\n${scoresIni}`);
    writeFileSync(join(dir, 'mailward.backscatter.ini'), `[signing]\nkeys = ${KEY_A}\n${backscatterIni}`);
    writeFileSync(join(dir, 'mailward.content.ini'), `[autolearn]\nenabled = true\n${contentIni}`);
    const mw = createMailward({ configDir: dir, modules: ['builtin', 'backscatter', 'content'] });
    try {
      await scans(mw);
    } finally {
      await mw.close();
    }
    const c = new Classifier(new SqliteBayesStore(join(dir, 'data', 'bayes.sqlite')), silentLogger);
    await c.ready();
    const result = { nham: c.model.nham, nspam: c.model.nspam, casino: c.model.tokens.get('casino') };
    await c.close();
    return result;
  }

  it('a verified bounce or auto-reply is never learnt as ham, whatever it says', async () => {
    // ham_score 0: ordinary mail with no other symbol (score 0) is learnt as ham; a verified bounce (-2) was too.
    const model = await learnt('ham_score = 0\n', '', '', async (mw) => {
      const out = await mw.scan({ ip: '10.0.0.5', relaying: true, authUser: 'alice', mailFrom: 'alice@example.com', rcptTo: ['nobody@remote.example'], raw: outbound(), localHostname: 'mx.example.com' });
      const sig = out.context.headerChanges.add.find(([n]) => n === 'X-Mailward-Sig')![1];
      const dsn = bounce('headers-only-dsn.eml', { sigLine: `X-Mailward-Sig: ${sig}` }).replace('Address not found.', `${SPAM}. Address not found.`);
      const verified = await mw.scan({ ip: '192.0.2.25', mailFrom: '', rcptTo: ['alice@example.com'], raw: dsn });
      assert.ok('BOUNCE_VERIFIED' in symbols(verified));
      assert.ok(dsn.includes('casino'));
      const reply = bounce('vacation.eml').replace('I am away until Monday.', `${SPAM}.`);
      assert.ok('BOUNCE_VERIFIED' in symbols(await mw.scan({ ip: '192.0.2.26', mailFrom: 'bob@remote.example', rcptTo: ['alice@example.com'], raw: reply })));
      await mw.scan({ ip: '192.0.2.27', mailFrom: 'carol@other.example', rcptTo: ['alice@example.com'], raw: 'From: carol@other.example\r\nSubject: Lunch\r\nMessage-ID: <lunch@other.example>\r\n\r\nlunch at noon on friday\r\n' });
    });
    assert.equal(model.nham, 1, 'only the ordinary message');
    assert.equal(model.casino, undefined);
  });

  it("backscatter's negative weights do not count toward learning ham", async () => {
    // An operator's negative weight for the block exemption, on mail that is no bounce:
    // the default ham_score -2 is reached only with it.
    const model = await learnt('', 'BACKSCATTER_BLOCK_EXEMPT = -3\n', '[throttle]\nthreshold = 1\n', async (mw) => {
      await mw.scan({ ip: '192.0.2.25', mailFrom: '', rcptTo: ['alice@example.com'], raw: bounce('postfix-dsn.eml', { mid: '<never@example.com>' }) });
      const news = createContext({ ip: '198.51.100.10', mailFrom: 'news@other.example', rcptTo: ['alice@example.com'], raw: `From: news@other.example\r\nSubject: Undelivered Mail Returned to Sender\r\n\r\n${SPAM}\r\n` });
      news.notes.auth = { fromDomain: 'other.example', spf: { result: 'pass', domain: 'other.example', aligned: true, comment: '' }, dkim: [], dmarc: { result: 'pass', policy: 'none', domain: 'other.example' } };
      const result = await mw.scan(news);
      assert.equal(result.verdict.symbols.find((x) => x.name === 'BACKSCATTER_BLOCK_EXEMPT')?.score, -3);
    });
    assert.equal(model.nham, 0);
  });
});
