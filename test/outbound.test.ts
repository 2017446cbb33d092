import assert from 'node:assert/strict';
import { createClient } from 'redis';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, copyFileSync, readdirSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sign } from '../lib/checks/backscatter/signing';
import { ArfError, countReport, invalidRecipientsOfDsn, OutboundLedger, parseArf, ReinstateBusyError, senderKey, unsubscribeProblem } from '../lib/checks/outbound';
import { DEFAULTS } from '../lib/checks/outbound/settings';
import { MAX_PARSE_BYTES, MAX_PARSE_LINES } from '../lib/message';
import { main } from '../lib/cli/main';
import { collect } from '../lib/cli/commands/complaints';
import { loadConfig } from '../lib/config/load';
import { ConfigError } from '../lib/config/errors';
import { MemoryStore, RedisStore, type StateStore } from '../lib/state';
import { arfReport, deleteRedisKeys, outboundSettings, REDIS_URL, uniquePrefix } from './outbound/support';
import { repoPath } from './support/paths';
import { holdAt } from './support/hold';
import { assertPrintable, HOSTILE, HOSTILE_SHOWN } from './support/terminal';
import { lineCount, PADDING_24MB, postalInputs, postalInputSizes } from './support/postal-spy';

const fixture = (...p: string[]) => readFileSync(repoPath('test', 'fixtures', 'outbound', ...p));
const HOUR = 3600_000;

async function rejects(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof ArfError, `expected ArfError, got ${String(err)}`);
    assert.match(err.message, pattern);
    return true;
  });
}


describe('outbound: ARF feedback reports (RFC 5965)', () => {
  it('parses a full report with a message/rfc822 original', async () => {
    const r = await parseArf(fixture('abuse-yahoo.eml'));
    assert.equal(r.feedbackType, 'abuse');
    assert.equal(r.userAgent, 'Yahoo!-Mail-Feedback/2.0');
    assert.equal(r.reporter, 'feedback@arf.mail.yahoo.com');
    assert.equal(r.reporterDomain, 'arf.mail.yahoo.com');
    assert.equal(r.originalRcptTo, 'someone@yahoo.example');
    assert.equal(r.originalMessageId, 'spring.0001@example.com');
    assert.equal(r.fields['reported-domain'], 'example.com');
    assert.equal(r.original.find((h) => h.key === 'from')?.value, 'Alice <alice@example.com>');
  });

  it('parses a report whose original is text/rfc822-headers, quoted report-type', async () => {
    const r = await parseArf(fixture('abuse-headers-only.eml'));
    assert.equal(r.originalMessageId, 'spring.0002@example.com');
    assert.equal(r.originalRcptTo, 'carol@reports.example.org');
  });

  it('refuses malformed reports with an error that says what is wrong', async () => {
    await rejects(parseArf(fixture('malformed', 'not-a-report.eml')), /not a feedback report: Content-Type is "text\/plain", expected multipart\/report/);
    await rejects(parseArf(fixture('malformed', 'missing-feedback-type.eml')), /no Feedback-Type field/);
    await rejects(parseArf(fixture('malformed', 'no-original.eml')), /no copy of the reported message/);
    await rejects(parseArf(fixture('malformed', 'delivery-status.eml')), /report-type=delivery-status, expected feedback-report/);
    await rejects(parseArf(arfReport({ mid: '<x@example.com>', version: '2' })), /Version "2" is not 1/);
    await rejects(parseArf('From: a@b.example\r\nContent-Type: multipart/report; report-type=feedback-report; boundary=x'), /not terminated/);
    await rejects(parseArf(Buffer.from([0xff, 0xfe, 0x00, 0x01])), /not terminated|expected multipart/);
    await rejects(parseArf('Content-Type: multipart/report; report-type=feedback-report; boundary="q"\r\n\r\nno parts at all\r\n'), /no message\/feedback-report part/);
  });

  it('reads invalid recipients (5.1.x, failed) from a delivery-status report and nothing else', async () => {
    assert.deepEqual(await invalidRecipientsOfDsn(fixture('malformed', 'delivery-status.eml')), [['nobody@other.example']]);
    // A recipient the remote rewrote is given as both addresses: either may be the one we sent to.
    const rewritten = fixture('malformed', 'delivery-status.eml').toString().replace('Final-Recipient: rfc822; nobody@other.example', 'Final-Recipient: rfc822; n.body@mailhost.other.example\r\nOriginal-Recipient: rfc822; Nobody@other.example');
    assert.deepEqual(await invalidRecipientsOfDsn(Buffer.from(rewritten)), [['n.body@mailhost.other.example', 'nobody@other.example']]);
    const full = fixture('malformed', 'delivery-status.eml').toString().replace('Status: 5.1.1', 'Status: 5.2.2');
    assert.deepEqual(await invalidRecipientsOfDsn(Buffer.from(full)), []);
  });
  it('a 24 MB report or DSN: only its first 2 MB are MIME-decoded; what comes first is still read', async () => {
    const arf = Buffer.concat([Buffer.from(fixture('abuse-yahoo.eml')), Buffer.from(PADDING_24MB)]);
    const read = await postalInputSizes(() => parseArf(arf));
    assert.equal(read.result.originalMessageId, 'spring.0001@example.com');
    const dsn = Buffer.concat([fixture('malformed', 'delivery-status.eml'), Buffer.from(PADDING_24MB)]);
    const failed = await postalInputSizes(() => invalidRecipientsOfDsn(dsn));
    assert.deepEqual(failed.result, [['nobody@other.example']]);
    for (const sizes of [read.sizes, failed.sizes]) assert.ok(sizes.length > 0 && sizes.every((n) => n <= MAX_PARSE_BYTES), `PostalMime.parse given ${sizes.join(', ')} bytes`);
  });
  it('a report or DSN padded with 2 MB of short lines: only its first MAX_PARSE_LINES lines are MIME-decoded (postal-mime costs per line)', async () => {
    // 500k lines of `--`: 13 s of decoding in one stretch before the line limit.
    const padding = Buffer.from('--\r\n'.repeat(500_000));
    const read = await postalInputs(() => parseArf(Buffer.concat([Buffer.from(fixture('abuse-yahoo.eml')), padding])));
    assert.equal(read.result.originalMessageId, 'spring.0001@example.com');
    const failed = await postalInputs(() => invalidRecipientsOfDsn(Buffer.concat([fixture('malformed', 'delivery-status.eml'), padding])));
    assert.deepEqual(failed.result, [['nobody@other.example']]);
    for (const { inputs } of [read, failed]) assert.ok(inputs.length > 0 && inputs.every((b) => lineCount(b) <= MAX_PARSE_LINES), `postal-mime given ${inputs.map(lineCount).join(', ')} lines`);
  });
});

describe('outbound: settings', () => {
  it('the shipped mailward.outbound.ini equals the code defaults', () => {
    const shipped = outboundSettings(readFileSync(repoPath('config', 'mailward.outbound.ini'), 'utf8'));
    assert.deepEqual(shipped, outboundSettings(''));
    assert.equal(shipped.policy.complaintRate, DEFAULTS.complaintRatePercent / 100);
    assert.equal(shipped.policy.minMessages, 1000);
    assert.equal(shipped.policy.maxTrapHits, Infinity);
  });

  it('names file, section and key of a bad value or an unknown key', () => {
    assert.throws(() => outboundSettings('[bulk]\nrelay = not a host\n'), (e: unknown) => e instanceof ConfigError && /mailward\.outbound\.ini.*\[bulk\].*relay/.test(e.message));
    assert.throws(() => outboundSettings('[policy]\ncomplaint_rate = 1\n'), (e: unknown) => e instanceof ConfigError && /complaint_rate/.test(e.message));
    assert.throws(() => outboundSettings('[complaints]\naddresses = not-an-address\n'), /not an address/);
  });

  it('borrows the backscatter signing keys', () => {
    const s = outboundSettings('', '[signing]\nkeys = ka:secret-number-one-0123456789\n');
    assert.equal(s.signing?.keys[0]?.id, 'ka');
    assert.equal(outboundSettings('').signing, null);
  });

  it('is part of the whole configuration (loadConfig)', () => {
    const config = loadConfig();
    assert.ok(config.modules.some((m) => m.module.name === 'outbound'));
    assert.equal(config.symbols.get('OUTBOUND_BULK_NO_UNSUBSCRIBE').group, 'outbound');
  });
});

describe('outbound: helpers', () => {
  it('sender keys: the authenticated user first, else the envelope sender; or the domain', () => {
    assert.equal(senderKey('user', 'Alice', 'x@example.com'), 'alice');
    assert.equal(senderKey('user', undefined, 'Bob@Example.com'), 'bob@example.com');
    assert.equal(senderKey('domain', 'alice@Example.com', undefined), 'example.com');
    assert.equal(senderKey('domain', undefined, 'bob@shop.example'), 'shop.example');
    assert.equal(senderKey('domain', 'alice', undefined), 'alice');
  });

  it('a working List-Unsubscribe has a mailto: or https: URI', () => {
    assert.equal(unsubscribeProblem(undefined), 'missing');
    assert.equal(unsubscribeProblem('<mailto:unsub@example.com?subject=x>'), null);
    assert.equal(unsubscribeProblem('<https://example.com/u/1>, <mailto:u@example.com>'), null);
    assert.equal(unsubscribeProblem('http://example.com/unsubscribe'), 'unusable');
    assert.equal(unsubscribeProblem('<http://example.com/u>'), 'unusable');
  });
});

const backends: { name: string; make: (prefix: string) => StateStore; cleanup?: (prefix: string) => Promise<unknown> }[] = [
  { name: 'memory', make: () => new MemoryStore(10000) },
  {
    name: 'Redis',
    make: (prefix) => new RedisStore({ backend: 'redis', redisUrl: REDIS_URL, prefix, timeoutMs: 2000, memoryMaxEntries: 1000 }, { debug() {}, info() {}, warn() {}, error() {} }),
    cleanup: deleteRedisKeys,
  },
];

for (const backend of backends) {
  describe(`outbound: ledger and policy (${backend.name})`, () => {
    let now = Date.UTC(2025, 2, 11, 12);
    const clock = () => now;
    let prefix: string;
    let store: StateStore;
    const settings = outboundSettings('[complaints]\nrequire_authenticated = false\ntrap_reporters = traps.example.net\n', '[signing]\nkeys = ka:secret-number-one-0123456789\n');
    let ledger: OutboundLedger;

    beforeEach(() => {
      prefix = uniquePrefix(backend.name);
      store = backend.make(prefix);
      now = Date.UTC(2025, 2, 11, 12);
      ledger = new OutboundLedger(store, settings, clock, 'node-a');
    });
    afterEach(async () => {
      await store.close();
      await backend.cleanup?.(prefix);
    });

    it('volume alone never suspends: a million messages without complaints', async () => {
      await ledger.add('alice', { sent: 1_000_000, bulk: 1_000_000 });
      assert.equal(await ledger.evaluate('alice'), null);
      assert.equal(await ledger.suspension('alice'), null);
    });

    it('0.3% of complaints over 2,000 messages is not above the threshold; one more is', async () => {
      await ledger.add('alice', { sent: 2000 });
      for (let i = 0; i < 6; i++) {
        const out = await countReport(await parseArf(arfReport({ mid: `<m${i}@example.com>` })), settings, ledger, clock);
        assert.equal(out.status, 'unattributed');
      }
      for (let i = 0; i < 7; i++) await ledger.recordMessage(`<m${i}@example.com>`, 'alice');
      for (let i = 0; i < 6; i++) {
        const out = await countReport(await parseArf(arfReport({ mid: `<m${i}@example.com>` })), settings, ledger, clock);
        assert.equal(out.status, 'counted', out.detail);
        assert.equal(out.via, 'Message-ID');
        assert.equal(out.suspension, null);
      }
      const seventh = await countReport(await parseArf(arfReport({ mid: '<m6@example.com>' })), settings, ledger, clock);
      assert.equal(seventh.status, 'counted');
      assert.ok(seventh.suspension);
      assert.match(seventh.suspension.reason, /^complaint rate 0\.35% \(7 complaints \/ 2000 messages\) is above 0\.3% in 168 h$/);
      assert.equal((await ledger.suspension('alice'))?.node, 'node-a');
      assert.deepEqual((await ledger.counts('alice')), { sent: 2000, bulk: 0, complaint: 7, invalid: 0, trap: 0 });
    });

    it('nothing is counted twice: the same report again, or the same original from the same reporter', async () => {
      await ledger.recordMessage('<dup@example.com>', 'alice', ['someone@reports.example.org', 'other@reports.example.org']);
      const report = arfReport({ mid: '<dup@example.com>' });
      assert.equal((await countReport(await parseArf(report), settings, ledger, clock)).status, 'counted');
      assert.equal((await countReport(await parseArf(report), settings, ledger, clock)).status, 'duplicate');
      const again = arfReport({ mid: '<DUP@example.com>' });
      assert.equal((await countReport(await parseArf(again), settings, ledger, clock)).status, 'duplicate');
      // Another recipient's complaint about the same message is another complaint.
      assert.equal((await countReport(await parseArf(arfReport({ mid: '<dup@example.com>', rcpt: 'other@reports.example.org' })), settings, ledger, clock)).status, 'counted');
      assert.equal((await ledger.counts('alice')).complaint, 2);
    });

    it('a report whose count could not be written is not taken for a duplicate when it comes again', async () => {
      await ledger.recordMessage('<lost@example.com>', 'alice');
      const report = arfReport({ mid: '<lost@example.com>' });
      // The store fails the one write that sees and counts (Redis gone).
      const failing = Object.create(store) as StateStore;
      failing.countOnceShared = () => Promise.reject(new Error('connection lost'));
      await assert.rejects(countReport(await parseArf(report), settings, new OutboundLedger(failing, settings, clock, 'node-a'), clock), /connection lost/);
      const retry = await countReport(await parseArf(report), settings, ledger, clock);
      assert.equal(retry.status, 'counted', retry.detail);
      assert.equal((await ledger.counts('alice')).complaint, 1);
    });

    it('invalid recipients of one message count once, whether our bounce or the DSN reports them; a failed write counts on the next try', async () => {
      assert.equal(await ledger.countInvalid('alice', 'rel.7@example.com', ['Gone@Remote.example', 'gone@remote.example', 'left@remote.example']), 2);
      assert.equal(await ledger.countInvalid('alice', 'rel.7@example.com', ['gone@remote.example']), 0);
      const failing = Object.create(store) as StateStore;
      failing.countOnceShared = () => Promise.reject(new Error('connection lost'));
      await assert.rejects(new OutboundLedger(failing, settings, clock, 'node-a').countInvalid('alice', 'rel.8@example.com', ['x@remote.example']), /connection lost/);
      assert.equal(await ledger.countInvalid('alice', 'rel.8@example.com', ['x@remote.example']), 1);
      assert.equal((await ledger.counts('alice')).invalid, 3);
    });

    it('recipients of a DSN nobody vouches for: one per message, whichever it names; one counted already does not spend it; a failed write counts on the next try', async () => {
      assert.equal(await ledger.countInvalid('alice', 'rel.9@example.com', ['gone@remote.example']), 1);
      assert.equal(await ledger.countUnvouchedInvalid('alice', 'rel.9@example.com', 'Gone@remote.example'), 0);
      const failing = Object.create(store) as StateStore;
      failing.countOnceShared = () => Promise.reject(new Error('connection lost'));
      await assert.rejects(new OutboundLedger(failing, settings, clock, 'node-a').countUnvouchedInvalid('alice', 'rel.9@example.com', 'a@remote.example'), /connection lost/);
      assert.equal(await ledger.countUnvouchedInvalid('alice', 'rel.9@example.com', 'a@remote.example'), 1);
      assert.equal(await ledger.countUnvouchedInvalid('alice', 'rel.9@example.com', 'b@remote.example'), 0);
      // b was not counted: our own bounce (or a DSN vouched for) of it still counts.
      assert.equal(await ledger.countInvalid('alice', 'rel.9@example.com', ['b@remote.example']), 1);
      assert.equal(await ledger.countUnvouchedInvalid('alice', 'rel.10@example.com', 'b@remote.example'), 1);
      assert.equal((await ledger.counts('alice')).invalid, 4);
    });

    it('a rate just above the limit does not read as equal to it', async () => {
      await ledger.add('alice', { sent: 5_000_000, complaint: 15_001 });
      const suspension = await ledger.evaluate('alice');
      assert.match(suspension!.reason, /^complaint rate 0\.30002% \(15001 complaints \/ 5000000 messages\) is above 0\.3% in 168 h$/);
    });

    it('a report counts only for a real recipient of the message, and at most once per recipient when the recipient is redacted', async () => {
      await ledger.recordMessage('<few@example.com>', 'alice', ['Carol@Remote.example', 'dave@remote.example']);
      const forged = await countReport(await parseArf(arfReport({ mid: '<few@example.com>', rcpt: 'made-up@remote.example' })), settings, ledger, clock);
      assert.equal(forged.status, 'untrusted');
      assert.match(forged.detail, /Original-Rcpt-To made-up@remote\.example was not a recipient of that message/);
      assert.equal((await countReport(await parseArf(arfReport({ mid: '<few@example.com>', rcpt: 'carol@remote.example' })), settings, ledger, clock)).status, 'counted');
      // A provider that redacts Original-Rcpt-To: the report may be anyone's, so it takes one of the
      // two recipients' places; carol's report took the other, so a second one is a duplicate.
      const redacted = async () => countReport(await parseArf(arfReport({ mid: '<few@example.com>', rcpt: '' })), settings, ledger, clock);
      assert.equal((await redacted()).status, 'counted');
      const third = await redacted();
      assert.equal(third.status, 'duplicate');
      assert.match(third.detail, /already counted without Original-Rcpt-To/);
      // dave's own report comes too late: two recipients, two complaints at most.
      const dave = await countReport(await parseArf(arfReport({ mid: '<few@example.com>', rcpt: 'dave@remote.example' })), settings, ledger, clock);
      assert.equal(dave.status, 'duplicate');
      assert.match(dave.detail, /already counted 2 times \(once per recipient\)/);
      assert.equal((await ledger.counts('alice')).complaint, 2);
    });

    it('a report without Original-Rcpt-To counts once per (message, reporter domain), and once per message when any domain may report', async () => {
      // Review 2: one recipient of a 5-recipient message sent the same redacted report 5 times and
      // each took another recipient's place.
      const rcpts = ['mallory@attacker.example', 'a@x.example', 'b@x.example', 'c@x.example', 'd@x.example'];
      const redacted = async (s: typeof settings, mid: string, domain: string) =>
        countReport(await parseArf(arfReport({ mid, reporter: `fbl@${domain}`, rcpt: '' })), s, ledger, clock, { authenticated: true, fromDomain: domain });
      // reporters empty (any authenticating domain): once per message in all, whatever the domain.
      await ledger.recordMessage('<team.1@example.com>', 'alice', rcpts);
      const open = [];
      for (let i = 0; i < 5; i++) open.push(await redacted(settings, '<team.1@example.com>', i < 3 ? 'attacker.example' : `r${i}.attacker.example`));
      assert.deepEqual(open.map((o) => o.status), ['counted', 'duplicate', 'duplicate', 'duplicate', 'duplicate'], open.map((o) => o.detail).join('\n'));
      assert.match(open[1]!.detail, /already counted without Original-Rcpt-To \(any reporter may report: once per message\)/);
      // Named, checked recipients still count once each, whoever reports them.
      const named = await countReport(await parseArf(arfReport({ mid: '<team.1@example.com>', rcpt: 'a@x.example' })), settings, ledger, clock);
      assert.equal(named.status, 'counted', named.detail);
      assert.equal((await ledger.counts('alice')).complaint, 2);

      // A reporter list: once per (message, listed reporter domain).
      const listed = outboundSettings('[complaints]\nrequire_authenticated = false\nreporters = fbl.one.example, fbl.two.example\n');
      await ledger.recordMessage('<team.2@example.com>', 'alice', rcpts);
      const statuses = [];
      for (const domain of ['fbl.one.example', 'fbl.one.example', 'fbl.two.example', 'fbl.one.example', 'fbl.two.example']) statuses.push((await redacted(listed, '<team.2@example.com>', domain)).status);
      assert.deepEqual(statuses, ['counted', 'duplicate', 'counted', 'duplicate', 'duplicate']);
      assert.equal((await ledger.counts('alice')).complaint, 4);
      // Subdomains of one listed reporter are that reporter (review 3: r0..r4.fbl.outlook.example each counted).
      const outlook = outboundSettings('[complaints]\nrequire_authenticated = false\nreporters = fbl.outlook.example\n');
      await ledger.recordMessage('<team.4@example.com>', 'alice', rcpts);
      const subdomains = [];
      for (let i = 0; i < 3; i++) subdomains.push((await redacted(outlook, '<team.4@example.com>', `r${i}.fbl.outlook.example`)).status);
      assert.deepEqual(subdomains, ['counted', 'duplicate', 'duplicate']);
      assert.equal((await ledger.counts('alice')).complaint, 5);

      // A write that fails leaves no sighting: the report's next delivery counts.
      await ledger.recordMessage('<team.3@example.com>', 'alice', rcpts);
      const failing = Object.create(store) as StateStore;
      failing.countOnceShared = () => Promise.reject(new Error('connection lost'));
      const failingLedger = new OutboundLedger(failing, settings, clock, 'node-a');
      await assert.rejects(countReport(await parseArf(arfReport({ mid: '<team.3@example.com>', rcpt: '' })), settings, failingLedger, clock), /connection lost/);
      assert.equal((await countReport(await parseArf(arfReport({ mid: '<team.3@example.com>', rcpt: '' })), settings, ledger, clock)).status, 'counted');
      assert.equal((await countReport(await parseArf(arfReport({ mid: '<team.3@example.com>', rcpt: '' })), settings, ledger, clock)).status, 'duplicate');
      assert.equal((await ledger.counts('alice')).complaint, 6);
    });

    it('the reporter does not make a report new: one complaint per recipient of the message, whichever domains report it', async () => {
      // Alice wrote to mallory alone; mallory reports it from domains of its own (each authenticated).
      await ledger.recordMessage('<lunch@example.com>', 'alice', ['mallory@attacker.example']);
      const from = async (i: number, rcpt = 'mallory@attacker.example') =>
        countReport(await parseArf(arfReport({ mid: '<lunch@example.com>', reporter: `fbl@r${i}.attacker.example`, rcpt })), settings, ledger, clock, { authenticated: true, fromDomain: `r${i}.attacker.example` });
      const outcomes = [];
      for (let i = 1; i <= 4; i++) outcomes.push(await from(i));
      assert.deepEqual(outcomes.map((o) => o.status), ['counted', 'duplicate', 'duplicate', 'duplicate'], outcomes.map((o) => o.detail).join('\n'));
      // Redacted, it is still one of the message's one recipient.
      for (let i = 5; i <= 7; i++) assert.equal((await from(i, '')).status, 'duplicate');
      assert.equal((await ledger.counts('alice')).complaint, 1);

      // Recorded without its recipients (an older record): one complaint per message.
      await ledger.recordMessage('<old@example.com>', 'alice');
      const old = async (i: number) => countReport(await parseArf(arfReport({ mid: '<old@example.com>', reporter: `fbl@r${i}.attacker.example`, rcpt: `x${i}@attacker.example` })), settings, ledger, clock);
      assert.equal((await old(1)).status, 'counted');
      assert.equal((await old(2)).status, 'duplicate');
      assert.equal((await old(3)).status, 'duplicate');
      assert.equal((await ledger.counts('alice')).complaint, 2);
    });

    it('attributed by signature: one complaint per message, whichever domains report it', async () => {
      const key = settings.signing!.keys[0]!;
      const date = 'Tue, 11 Mar 2025 09:57:58 +0000';
      const sig = sign(key, { messageId: '<sig-many@shop.example>', date, from: 'News <news@shop.example>' }, now - HOUR);
      const report = (i: number) => arfReport({ mid: '<sig-many@shop.example>', from: 'News <news@shop.example>', date, reporter: `fbl@r${i}.attacker.example`, rcpt: `m${i}@attacker.example`, extraOriginal: [`X-Mailward-Sig: ${sig}`] });
      const statuses = [];
      for (let i = 1; i <= 4; i++) statuses.push((await countReport(await parseArf(report(i)), settings, ledger, clock)).status);
      assert.deepEqual(statuses, ['counted', 'duplicate', 'duplicate', 'duplicate']);
      assert.equal((await ledger.counts('news@shop.example')).complaint, 1);
    });

    it('the reporter is the one From: mailbox, and must be the domain that authenticated', async () => {
      const strict = outboundSettings('[complaints]\nreporters = reports.example.org\n');
      await ledger.recordMessage('<r1@example.com>', 'alice');
      // A trusted reporter's address written inside the quoted display name is not the reporter.
      const quoted = await parseArf(arfReport({ mid: '<r1@example.com>' }).replace(/^From: .*$/m, 'From: "Feedback <fbl@reports.example.org>" <fbl@attacker.example>'));
      assert.equal(quoted.reporter, 'fbl@attacker.example');
      assert.equal((await countReport(quoted, strict, ledger, clock, { authenticated: true, fromDomain: 'attacker.example' })).status, 'untrusted');
      // The right reporter, but authentication was for another From: domain.
      const other = await countReport(await parseArf(arfReport({ mid: '<r1@example.com>' })), strict, ledger, clock, { authenticated: true, fromDomain: 'attacker.example' });
      assert.equal(other.status, 'untrusted');
      assert.match(other.detail, /the authenticated From: domain attacker\.example is not the reporter's/);
      assert.equal((await countReport(await parseArf(arfReport({ mid: '<r1@example.com>' })), strict, ledger, clock, { authenticated: true, fromDomain: 'Reports.Example.org' })).status, 'counted');
    });

    it('a small sender: the rate is taken over at least min_messages', async () => {
      await ledger.add('bob', { sent: 20 });
      for (let i = 0; i < 3; i++) await ledger.recordMessage(`<b${i}@example.com>`, 'bob');
      for (let i = 0; i < 3; i++) await countReport(await parseArf(arfReport({ mid: `<b${i}@example.com>` })), settings, ledger, clock);
      assert.equal(await ledger.suspension('bob'), null, '3/max(20,1000) = 0.3% is not above 0.3%');
      await ledger.recordMessage('<b3@example.com>', 'bob');
      const out = await countReport(await parseArf(arfReport({ mid: '<b3@example.com>' })), settings, ledger, clock);
      assert.match(out.suspension!.reason, /0\.4% \(4 complaints \/ 20 messages \(rate over at least 1000 messages\)\)/);
    });

    it('attributes by our signature when the Message-ID is not recorded; a forged one is not attributed', async () => {
      const key = settings.signing!.keys[0]!;
      const date = 'Tue, 11 Mar 2025 09:57:58 +0000';
      const sig = sign(key, { messageId: '<signed@shop.example>', date, from: 'News <news@shop.example>' }, now - HOUR);
      const out = await countReport(await parseArf(arfReport({ mid: '<signed@shop.example>', from: 'News <news@shop.example>', date, extraOriginal: [`X-Mailward-Sig: ${sig}`] })), settings, ledger, clock);
      assert.equal(out.status, 'counted', out.detail);
      assert.equal(out.sender, 'news@shop.example');
      assert.equal(out.via, 'signature (key ka)');
      const forged = await countReport(await parseArf(arfReport({ mid: '<forged@shop.example>', from: 'News <news@shop.example>', date, extraOriginal: [`X-Mailward-Sig: ${sig}`] })), settings, ledger, clock);
      assert.equal(forged.status, 'unattributed');
    });

    it('attributed by signature, the recipients are not known: a report counts once, whatever Original-Rcpt-To it names', async () => {
      const key = settings.signing!.keys[0]!;
      const date = 'Tue, 11 Mar 2025 09:57:58 +0000';
      const sig = sign(key, { messageId: '<once@shop.example>', date, from: 'News <news@shop.example>' }, now - HOUR);
      const report = (rcpt: string) => arfReport({ mid: '<once@shop.example>', from: 'News <news@shop.example>', date, rcpt, extraOriginal: [`X-Mailward-Sig: ${sig}`] });
      assert.equal((await countReport(await parseArf(report('a@remote.example')), settings, ledger, clock)).status, 'counted');
      const madeUp = await countReport(await parseArf(report('b@remote.example')), settings, ledger, clock);
      assert.equal(madeUp.status, 'duplicate', madeUp.detail);
      assert.equal((await ledger.counts('news@shop.example')).complaint, 1);
    });

    it('not-spam reports are ignored, trap reporters count trap hits, untrusted reporters nothing', async () => {
      await ledger.recordMessage('<t1@example.com>', 'alice');
      assert.equal((await countReport(await parseArf(arfReport({ mid: '<t1@example.com>', feedbackType: 'not-spam' })), settings, ledger, clock)).status, 'ignored');
      const trap = await countReport(await parseArf(arfReport({ mid: '<t1@example.com>', reporter: 'arf@traps.example.net' })), settings, ledger, clock);
      assert.equal(trap.kind, 'trap');
      assert.equal((await ledger.counts('alice')).trap, 1);
      const strict = outboundSettings('[complaints]\nreporters = reports.example.org\n');
      assert.equal((await countReport(await parseArf(arfReport({ mid: '<t1@example.com>', reporter: 'x@evil.example' })), strict, ledger, clock)).status, 'untrusted');
      const unauth = await countReport(await parseArf(arfReport({ mid: '<t1@example.com>', rcpt: 'z@reports.example.org' })), strict, ledger, clock);
      assert.equal(unauth.status, 'untrusted');
      assert.match(unauth.detail, /could not be authenticated/);
      assert.equal((await countReport(await parseArf(arfReport({ mid: '<t1@example.com>', rcpt: 'z@reports.example.org' })), strict, ledger, clock, { authenticated: true })).status, 'counted');
    });

    it('invalid-recipient rate suspends; complaints older than the window no longer count', async () => {
      await ledger.add('carol', { sent: 1000, complaint: 3 });
      now += 169 * HOUR;
      assert.deepEqual(await ledger.counts('carol'), { sent: 0, bulk: 0, complaint: 0, invalid: 0, trap: 0 });
      await ledger.add('carol', { sent: 1000, invalid: 50 });
      assert.equal(await ledger.evaluate('carol'), null, '5% is not above 5%');
      await ledger.add('carol', { invalid: 1 });
      const s = await ledger.evaluate('carol');
      assert.match(s!.reason, /^invalid-recipient rate 5\.1% \(51 hard bounces \/ 1000 messages\) is above 5% in 168 h$/);
    });

    it('reinstate lifts the suspension and forgives its causes, keeping the sent count', async () => {
      await ledger.add('dave', { sent: 1000, complaint: 10 });
      assert.ok(await ledger.evaluate('dave'));
      const lifted = await ledger.reinstate('dave');
      assert.match(lifted!.reason, /complaint rate 1%/);
      assert.equal(await ledger.suspension('dave'), null);
      assert.deepEqual(await ledger.counts('dave'), { sent: 1000, bulk: 0, complaint: 0, invalid: 0, trap: 0 });
      assert.equal(await ledger.reinstate('dave'), null);
    });

    it('an evaluation on another node while reinstate runs does not suspend the sender again on the forgiven complaints', async () => {
      await ledger.add('dave', { sent: 1000, complaint: 10 });
      assert.ok(await ledger.evaluate('dave'));
      // The operator's reinstate stalls after its first read; a node evaluates the sender meanwhile.
      const held = holdAt(store, 'hashGetAll', 'after');
      const reinstating = new OutboundLedger(held.store, settings, clock, 'cli').reinstate('dave');
      await held.reached;
      await ledger.add('dave', { sent: 1 });
      assert.equal(await ledger.evaluate('dave'), null);
      held.release();
      assert.ok(await reinstating);
      assert.equal(await ledger.suspension('dave'), null);
      assert.equal(await ledger.evaluate('dave'), null);
    });

    it('a complaint counted on another node while reinstate runs is kept (only what was forgiven is taken off)', async () => {
      await ledger.add('dave', { sent: 1000, complaint: 10 });
      assert.ok(await ledger.evaluate('dave'));
      const held = holdAt(store, 'hashGetAll', 'after');
      const reinstating = new OutboundLedger(held.store, settings, clock, 'cli').reinstate('dave');
      await held.reached;
      // Same slice, same field as the ten forgiven ones.
      await ledger.add('dave', { complaint: 1 });
      held.release();
      assert.ok(await reinstating);
      assert.equal((await ledger.counts('dave')).complaint, 1);
    });

    it('two reinstates of one sender at once: the second is refused, the counts never go below zero', async () => {
      await ledger.add('dave', { sent: 1000, complaint: 10 });
      assert.ok(await ledger.evaluate('dave'));
      const held = holdAt(store, 'hashGetAll', 'after');
      const first = new OutboundLedger(held.store, settings, clock, 'cli-1').reinstate('dave');
      await held.reached;
      await assert.rejects(new OutboundLedger(store, settings, clock, 'cli-2').reinstate('dave'), ReinstateBusyError);
      held.release();
      assert.ok(await first);
      assert.equal((await ledger.counts('dave')).complaint, 0);
      // Done: the next reinstate may run.
      assert.equal(await ledger.reinstate('dave'), null);
    });

    it('a lock left by a reinstate that died expires, however often it is refused meanwhile', async () => {
      await store.set('ob:reinstating:erin', '1', 1); // left by a command that died
      await assert.rejects(ledger.reinstate('erin'), ReinstateBusyError);
      await new Promise((r) => setTimeout(r, 600));
      await assert.rejects(ledger.reinstate('erin'), ReinstateBusyError);
      await new Promise((r) => setTimeout(r, 600));
      assert.equal(await ledger.reinstate('erin'), null, 'the refusals did not extend the lock');
    });

    it('a timed suspension (suspend_hours) ends by itself', async () => {
      const timed = new OutboundLedger(store, outboundSettings('[policy]\nsuspend_hours = 2\n'), clock);
      await timed.add('erin', { sent: 10, complaint: 5 });
      assert.ok(await timed.evaluate('erin'));
      now += HOUR;
      assert.ok(await timed.suspension('erin'));
      now += 2 * HOUR;
      assert.equal(await timed.suspension('erin'), null);
    });
  });
}

describe('outbound: two nodes share one ledger through Redis', () => {
  const prefix = uniquePrefix('nodes');
  const settings = outboundSettings('[complaints]\nrequire_authenticated = false\n');
  const log = { debug() {}, info() {}, warn() {}, error() {} };
  const a = new RedisStore({ backend: 'redis', redisUrl: REDIS_URL, prefix, timeoutMs: 2000, memoryMaxEntries: 1000 }, log);
  const b = new RedisStore({ backend: 'redis', redisUrl: REDIS_URL, prefix, timeoutMs: 2000, memoryMaxEntries: 1000 }, log);
  after(async () => {
    await a.close();
    await b.close();
    await deleteRedisKeys(prefix);
  });

  it('sent counted on both, a report seen on both counts once, the suspension holds on both', async () => {
    const la = new OutboundLedger(a, settings, Date.now, 'a');
    const lb = new OutboundLedger(b, settings, Date.now, 'b');
    await Promise.all([la.add('alice', { sent: 600 }), lb.add('alice', { sent: 400 })]);
    for (let i = 0; i < 4; i++) await la.recordMessage(`<n${i}@example.com>`, 'alice');
    const reports = await Promise.all([0, 1, 2, 3].map((i) => parseArf(arfReport({ mid: `<n${i}@example.com>` }))));
    // Every report arrives at both nodes at the same time.
    const outcomes = await Promise.all(reports.flatMap((r) => [countReport(r, settings, la, Date.now), countReport(r, settings, lb, Date.now)]));
    assert.equal(outcomes.filter((o) => o.status === 'counted').length, 4);
    assert.equal(outcomes.filter((o) => o.status === 'duplicate').length, 4);
    assert.deepEqual(await lb.counts('alice'), { sent: 1000, bulk: 0, complaint: 4, invalid: 0, trap: 0 });
    assert.ok(await la.suspension('alice'));
    assert.ok(await lb.suspension('alice'));
  });

  it('a node (or an outbound status run) with another window_hours neither erases nor miscounts the others\' counts', async () => {
    // Rolling out a new window, or a CLI whose config differs: the nodes share each sender's hash.
    const week = new OutboundLedger(a, settings, Date.now, 'a');
    const day = new OutboundLedger(b, outboundSettings('[complaints]\nrequire_authenticated = false\n[policy]\nwindow_hours = 24\n'), Date.now, 'b');
    await week.add('wendy', { sent: 1000, complaint: 4 });
    await day.add('wendy', { sent: 1000, complaint: 6 });
    assert.deepEqual(await day.counts('wendy'), { sent: 2000, bulk: 0, complaint: 10, invalid: 0, trap: 0 });
    // The 24-hour node's read left the week node's slices alone: ten complaints in 2,000 is a breach there.
    assert.deepEqual(await week.counts('wendy'), { sent: 2000, bulk: 0, complaint: 10, invalid: 0, trap: 0 });
    assert.match((await week.evaluate('wendy'))!.reason, /^complaint rate 0\.5% \(10 complaints \/ 2000 messages\)/);
  });

  it('counts an older version wrote (fields without a slice length) still count, and expire with the window', async () => {
    const clock = { now: Date.UTC(2025, 2, 11, 12) };
    const ledger = new OutboundLedger(a, settings, () => clock.now, 'a');
    const sliceMs = ledger.sliceMinutes * 60_000;
    const raw = createClient({ url: REDIS_URL });
    await raw.connect();
    try {
      await raw.hSet(`${prefix}ob:stats:olga`, { [`sent.${Math.floor(clock.now / sliceMs)}`]: '700', [`complaint.${Math.floor(clock.now / sliceMs) - 3}`]: '2' });
      await ledger.add('olga', { sent: 300 });
      assert.deepEqual(await ledger.counts('olga'), { sent: 1000, bulk: 0, complaint: 2, invalid: 0, trap: 0 });
      clock.now += 169 * HOUR;
      assert.deepEqual(await ledger.counts('olga'), { sent: 0, bulk: 0, complaint: 0, invalid: 0, trap: 0 });
      assert.deepEqual(await raw.hKeys(`${prefix}ob:stats:olga`), [], 'slices past the window are dropped');
    } finally {
      await raw.quit();
    }
  });
});

describe('outbound: mailward complaints import and mailward outbound', function () {
  this.timeout(30_000);
  const prefix = uniquePrefix('cli');
  let dir: string;
  let configDir: string;

  async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
    return { code, out: out.join('\n'), err: err.join('\n') };
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mw-outbound-cli-'));
    configDir = join(dir, 'config');
    mkdirSync(configDir);
    writeFileSync(join(configDir, 'mailward.ini'), `[main]\ndata_dir = data\n[state]\nbackend = redis\nprefix = ${prefix}\n`);
    const store = new RedisStore({ backend: 'redis', redisUrl: REDIS_URL, prefix, timeoutMs: 2000, memoryMaxEntries: 1000 }, { debug() {}, info() {}, warn() {}, error() {} });
    const ledger = new OutboundLedger(store, outboundSettings(''), Date.now);
    await ledger.add('alice', { sent: 1000, bulk: 400 });
    await ledger.add('bob', { sent: 50 });
    await ledger.recordMessage('<spring.0001@example.com>', 'alice');
    await ledger.recordMessage('<spring.0002@example.com>', 'alice');
    await store.close();
  });
  after(async () => {
    rmSync(dir, { recursive: true, force: true });
    await deleteRedisKeys(prefix);
  });

  it('imports a directory: counts the reports, names what is wrong with the malformed ones, exit 1', async () => {
    const reports = join(dir, 'reports');
    mkdirSync(join(reports, 'malformed'), { recursive: true });
    for (const name of readdirSync(repoPath('test', 'fixtures', 'outbound'))) {
      if (name.endsWith('.eml')) copyFileSync(repoPath('test', 'fixtures', 'outbound', name), join(reports, name));
    }
    for (const name of readdirSync(repoPath('test', 'fixtures', 'outbound', 'malformed'))) copyFileSync(repoPath('test', 'fixtures', 'outbound', 'malformed', name), join(reports, 'malformed', name));
    const first = await cli('complaints', 'import', reports, '--config', configDir);
    assert.equal(first.code, 1, first.err);
    assert.match(first.out, /abuse-yahoo\.eml: counted: abuse report by feedback@arf\.mail\.yahoo\.com about <spring\.0001@example\.com>: complaint counted against alice \(found by Message-ID\)/);
    assert.match(first.out, /abuse-headers-only\.eml: counted: .*against alice/);
    assert.match(first.out, /not-spam\.eml: ignored: .*Feedback-Type not-spam is not counted/);
    assert.match(first.out, /malformed\/missing-feedback-type\.eml: not a valid feedback report: the message\/feedback-report part has no Feedback-Type field/);
    assert.match(first.out, /7 files: 2 counted, 0 already counted, 1 ignored, 0 unattributed, 0 untrusted, 4 invalid/);
    const second = await cli('complaints', 'import', join(reports, 'abuse-yahoo.eml'), join(reports, 'abuse-headers-only.eml'), '--config', configDir);
    assert.equal(second.code, 0, second.err);
    assert.match(second.out, /2 files: 0 counted, 2 already counted/);
  });

  it('import: a missing file is "not found" (exit 1); a directory linked back into itself is read once', async () => {
    const missing = await cli('complaints', 'import', join(dir, 'no-such.eml'), '--config', configDir);
    assert.equal(missing.code, 1);
    assert.match(missing.err, /no-such\.eml: no such file or directory$/);
    const loop = join(dir, 'loop');
    mkdirSync(loop);
    copyFileSync(repoPath('test', 'fixtures', 'outbound', 'not-spam.eml'), join(loop, 'not-spam.eml'));
    symlinkSync(loop, join(loop, 'again'));
    const once = await cli('complaints', 'import', loop, '--config', configDir);
    assert.equal(once.code, 0, once.err);
    assert.match(once.out, /^1 file: 0 counted, 0 already counted, 1 ignored/m);
  });

  it('outbound report shows sent, bulk share, complaints, invalid recipients and status per sender', async () => {
    const r = await cli('outbound', 'report', '--config', configDir);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^alice\s+1000\s+40\.00%\s+2 \(0\.20%\)\s+0 \(0\.00%\)\s+0\s+ok$/m);
    assert.match(r.out, /^bob\s+50\s+0\.00%\s+0 \(0\.00%\)\s+0 \(0\.00%\)\s+0\s+ok$/m);
    const json = JSON.parse((await cli('outbound', 'report', '--since', '1h', '--json', '--config', configDir)).out);
    assert.equal(json.find((x: any) => x.sender === 'alice').counts.complaint, 2);
  });

  it('outbound report prints a sender with control and bidi characters escaped', async () => {
    const store = new RedisStore({ backend: 'redis', redisUrl: REDIS_URL, prefix, timeoutMs: 2000, memoryMaxEntries: 1000 }, { debug() {}, info() {}, warn() {}, error() {} });
    // An envelope sender is whatever the client wrote in MAIL FROM.
    await new OutboundLedger(store, outboundSettings(''), Date.now).add(`${HOSTILE}@x.test`, { sent: 3 });
    await store.close();
    for (const json of [false, true]) {
      const r = await cli('outbound', 'report', '--config', configDir, ...(json ? ['--json'] : []));
      assert.equal(r.code, 0, r.err);
      assertPrintable(r.out, `outbound report${json ? ' --json' : ''}`);
      if (json) assert.ok(JSON.parse(r.out).some((x: { sender: string }) => x.sender === `${HOSTILE}@x.test`));
      else assert.ok(r.out.includes(`\n${HOSTILE_SHOWN}@x.test  `), 'the sender, escaped, in its column');
    }
  });

  it('status and reinstate; user mistakes are one line', async () => {
    const store = new RedisStore({ backend: 'redis', redisUrl: REDIS_URL, prefix, timeoutMs: 2000, memoryMaxEntries: 1000 }, { debug() {}, info() {}, warn() {}, error() {} });
    const ledger = new OutboundLedger(store, outboundSettings(''), Date.now);
    await ledger.add('alice', { complaint: 5 });
    assert.ok(await ledger.evaluate('alice'));
    await store.close();
    const status = await cli('outbound', 'status', '--config', configDir);
    assert.match(status.out, /^sender alice suspended since \S+Z: complaint rate 0\.7% \(7 complaints \/ 1000 messages\) is above 0\.3% in 168 h$/);
    const one = await cli('outbound', 'status', 'alice', '--config', configDir);
    assert.equal(one.code, 4);
    assert.match(one.out, /SUSPENDED/);
    const lifted = await cli('outbound', 'reinstate', 'Alice', '--config', configDir);
    assert.equal(lifted.code, 0, lifted.err);
    assert.match(lifted.out, /^reinstated alice: complaint rate 0\.7%/);
    assert.match((await cli('outbound', 'status', '--config', configDir)).out, /no sender is suspended/);
    assert.equal((await cli('outbound', 'reinstate', 'alice', '--config', configDir)).code, 1);
    const bad = await cli('outbound', 'report', '--since', 'yesterday', '--config', configDir);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /^mailward outbound: --since "yesterday": give an ISO time \(2026-01-31 or 2026-01-31T08:00Z\) or a span such as 30m, 1h, 2d, 1w$/);
    const memory = await cli('outbound', 'status');
    assert.equal(memory.code, 1);
    assert.match(memory.err, /backend = memory .* use backend = redis/);
  });
});

describe('mailward complaints import: the files of a large directory', () => {
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'mw-complaints-many-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('130,000 files are listed, in order (each directory\'s files were pushed as a spread: RangeError past ~120,000)', function () {
    this.timeout(120_000);
    const reports = join(dir, 'reports');
    mkdirSync(reports);
    const N = 130_000;
    for (let i = 0; i < N; i++) writeFileSync(join(reports, `r${String(i).padStart(6, '0')}.eml`), '');
    const files = collect([dir]);
    assert.equal(files.length, N);
    assert.equal(files[0], join(reports, 'r000000.eml'));
    assert.equal(files[N - 1], join(reports, `r${N - 1}.eml`));
  });
});
