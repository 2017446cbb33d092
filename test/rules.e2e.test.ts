// The rules plugin end to end: a real Haraka with mailward/auth, antispoof and
// rules (plus the verdict), resolving through the test DNS server; the seed's
// filter-rule cases, spoof-safe allow lists, quarantine -> release ->
// delivered once, release-and-approve, and a broken rules file on reload.
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { main } from '../lib/cli/main';
import type { CliIO } from '../lib/cli/types';
import { closeSharedIndexes, FileQuarantine, releaseMessage, ReleaseError } from '../lib/quarantine';
import { releaseHeaderLine, releaseKey, signRelease } from '../lib/quarantine/release-token';
import { GTUBE } from '../lib/checks/builtin';
import { type HarakaInstance, removeDir, sendMail, startHaraka } from './support/haraka';
import { forwardFromExample, IP, message, sign, startAuthWorld, type AuthWorld } from './fixtures/auth/world';
import { waitFor } from './support/wait';

const RELAY_CLIENT = '127.0.0.50';
// Everything from 8 up to 30 is held, so a held message answers 250 and can be released.
const SHARED_INI = (dns: string, port?: number) =>
  `[main]\ndata_dir = data\n\n[dns]\nservers = ${dns}\ntimeout_ms = 400\n\n[actions]\nquarantine = 8\nsoft_reject = 30\nreject = 40\n` +
  (port ? `\n[quarantine]\nrelease_port = ${port}\n` : '');

const RULES = `
# An envelope rule decides at MAIL FROM only when no rule above it could
# still decide: so it comes first.
rule blocked-sender
  sender *@blocked.test
  action block

# A role mailbox that must see every abuse report unfiltered. Above the rules
# that wait for DATA, so that RCPT could decide it.
rule abuse-unfiltered
  recipient abuse@widget.test
  action skip content, builtin

# A mark the tests put in the Subject to make a message look like spam.
rule spammy
  header Subject contains [spammy]
  action score +12

rule hold
  header Subject contains [hold]
  action quarantine

rule webform
  from webform@widget.test
  header Received contains webhoster.someformservice.com
  action skip antispoof
  action allow
  reason web form relayed by our form service

rule constant-contact
  header Received contains ccsend.constantcontact.com
  action allow

rule o365-loop
  direction inbound
  from *@widget.test
  header Received contains outbound.protection.outlook.com
  header Received contains prod.outlook.com
  action skip antispoof
  action allow

# Alice's mail must be authenticated: a rule an operator writes against CEO fraud.
rule alice-signed-only
  from alice@example.com
  header Subject contains [signed-only]
  not auth aligned
  action block

rule open-sesame
  direction outbound
  body contains "Cogito Ergo Sum"
  action skip content, builtin
`;

const O365_RECEIVED = [
  'Received: from NAM12-MW2-obe.outbound.protection.outlook.com (mail-mw2nam12lp2049.outbound.protection.outlook.com [104.47.66.49]) by mx1.widget.test with ESMTPS id 1A73BB4005F; Mon, 24 Feb 2020 16:21:33 +0000',
  'Received: from SN6PR05MB4415.namprd05.prod.outlook.com (2603:10b6:805:3a::13) by SN6PR05MB4736.namprd05.prod.outlook.com with Microsoft SMTP Server id 15.20.2772.11; Mon, 24 Feb 2020 16:21:30 +0000',
];

function capture(): CliIO & { text(): string } {
  const lines: string[] = [];
  return { out: (l) => lines.push(l), err: (l) => lines.push(l), text: () => lines.join('\n') };
}

describe('rules end to end through a real Haraka', function () {
  this.timeout(90_000);
  let world: AuthWorld;
  let haraka: HarakaInstance;

  before(async () => {
    world = await startAuthWorld();
    haraka = await startHaraka({
      // The order of the operator guide, rules above auth: the checks still run in pipeline order,
      // so the allow lists and auth conditions see the authentication results.
      plugins: ['relay', 'mailward/plugins/rules', 'mailward/plugins/auth', 'mailward/plugins/antispoof'],
      hostList: ['example.com', 'widget.test'],
      me: 'mx.widget.test',
      files: {
        'mailward.ini': SHARED_INI(world.dns.server),
        'mailward.antispoof.ini': '[domains]\nlist = widget.test\n',
        // A mailing list the operator trusts: its seal neutralises a DMARC fail (and lets allow entries hold).
        'mailward.auth.ini': '[arc]\ntrusted_sealers = fwd.test\n',
        'mailward.rules': RULES,
        'relay.ini': '[relay]\nacl = true\n',
        relay_acl_allow: `${RELAY_CLIENT}/32\n`,
      },
    });
    // The CLI reads the same config directory; releases go to this Haraka.
    writeFileSync(join(haraka.configDir, 'mailward.ini'), SHARED_INI(world.dns.server, haraka.port));
  });
  after(async () => {
    await closeSharedIndexes();
    await haraka?.stop();
    if (haraka) removeDir(haraka.dir);
    await world?.stop();
  });

  /** Files delivered since `before` (names are queue ids: not in time order). */
  function newFiles(before: string[]): string[] {
    return haraka.delivered().filter((f) => !before.includes(f));
  }

  async function send(raw: string, ip: string, from: string, to = 'staff@widget.test') {
    const before = haraka.delivered();
    const result = await sendMail({ port: haraka.port, from, to: [to], raw, localAddress: ip, helo: 'mail.sender.test' });
    const files = newFiles(before);
    const delivered = files.length ? readFileSync(files[0]!, 'utf8') : undefined;
    return { ...result, delivered, newDeliveries: files.length };
  }

  function status(text: string | undefined): string {
    assert.ok(text, 'the message was not delivered');
    return /^X-Mailward-Status: (.*)$/m.exec(text)![1]!;
  }

  async function cli(...argv: string[]) {
    const io = capture();
    const code = await main([...argv, '--config', haraka.configDir], io);
    return { code, text: io.text() };
  }

  /** A message from alice@example.com, DKIM-signed, from example.com's SPF-listed server. */
  async function fromAlice(subject: string, to = 'staff@widget.test') {
    const raw = await sign(message({ from: 'Alice <alice@example.com>', to, subject }), 'example.com', 's1', world.keys.example);
    return send(raw, IP.example, 'alice@example.com', to);
  }

  it('seed case 1: a web form from our own domain is allowed only when the Received header names the form host', async () => {
    const form = (prepend: string[]) => message({ from: 'Website <webform@widget.test>', to: 'sales@widget.test', subject: 'Information request', prepend });
    const via = await send(form(['Received: from webhoster.someformservice.com ([203.0.113.7] ident=nobody) by us5.ppe-hosted.com with esmtps']), IP.webform, 'www-data@widget.test', 'sales@widget.test');
    assert.equal(via.code, 250, via.response);
    assert.match(status(via.delivered), /^accept .*RULE_ALLOW/);
    assert.match(status(via.delivered), /RULE_SKIP/);
    const direct = await send(form([]), IP.webform, 'www-data@widget.test', 'sales@widget.test');
    assert.equal(direct.newDeliveries, 0, 'without the form host it is a spoof of our domain');
    assert.match(direct.response, /SPOOF_LOCAL_DOMAIN/);
  });

  it('seed case 2: a marketing service is recognised by its Received host', async () => {
    const raw = (prepend: string[]) => message({ from: 'News <news@shop.test>', to: 'staff@widget.test', subject: 'Big sale [spammy]', prepend });
    const known = await send(raw(['Received: from ccsend.constantcontact.com (ccsend.constantcontact.com [208.75.123.1]) by mx']), IP.nobody, 'bounce@shop.test');
    assert.equal(known.code, 250);
    assert.match(status(known.delivered), /^accept .*RULE_ALLOW/);
    const unknown = await send(raw([]), IP.nobody, 'bounce@shop.test');
    assert.equal(unknown.newDeliveries, 0, 'the score without the marker: held');
    assert.match(unknown.response, /held for review/);
  });

  it('seed case 3: our own domain relayed back by Office 365 only with both outlook.com markers', async () => {
    const both = await send(message({ from: 'Yves <yves@widget.test>', to: 'staff@widget.test', prepend: O365_RECEIVED }), IP.o365, 'yves@widget.test');
    assert.equal(both.code, 250, both.response);
    assert.match(status(both.delivered), /^accept .*RULE_ALLOW/);
    const one = await send(message({ from: 'Yves <yves@widget.test>', to: 'staff@widget.test', prepend: [O365_RECEIVED[1]!] }), IP.o365, 'yves@widget.test');
    assert.equal(one.newDeliveries, 0);
    assert.match(one.response, /SPOOF_LOCAL_DOMAIN/);
  });

  it('seed case 4: outbound mail with the signature catch phrase skips the content checks', async () => {
    const body = (phrase: string) => `Hello,\r\n\r\nthe test string ${GTUBE} stands for a content false positive.\r\n\r\nYves\r\n${phrase}\r\n`;
    const signed = await send(message({ from: 'yves@widget.test', to: 'client@elsewhere.test', body: body('Cogito Ergo Sum (I think, therefore I am)') }), RELAY_CLIENT, 'yves@widget.test', 'client@elsewhere.test');
    assert.equal(signed.code, 250, signed.response);
    assert.match(status(signed.delivered), /^accept .*RULE_SKIP/);
    const unsigned = await send(message({ from: 'yves@widget.test', to: 'client@elsewhere.test', body: body('') }), RELAY_CLIENT, 'yves@widget.test', 'client@elsewhere.test');
    assert.equal(unsigned.code, 550);
    const inbound = await send(message({ from: 'x@shop.test', to: 'staff@widget.test', body: body('Cogito Ergo Sum') }), IP.nobody, 'x@shop.test');
    assert.equal(inbound.code, 550, 'the phrase does not help inbound mail');
  });

  it('a skip rule for one recipient does not switch the checks off for a second recipient of the same message', async () => {
    const gtube = message({ from: 'x@shop.test', to: 'abuse@widget.test', body: `Spam sample:\r\n${GTUBE}\r\n` });
    const alone = await send(gtube, IP.nobody, 'x@shop.test', 'abuse@widget.test');
    assert.equal(alone.code, 250, alone.response);
    assert.match(status(alone.delivered), /RULE_SKIP/);
    const both = await sendMail({ port: haraka.port, from: 'x@shop.test', to: ['staff@widget.test', 'abuse@widget.test'], raw: gtube, localAddress: IP.nobody, helo: 'mail.sender.test' });
    assert.equal(both.code, 550, both.response);
    assert.match(both.response, /GTUBE/);
  });

  it('an envelope rule refuses at MAIL FROM', async () => {
    const r = await send(message({ from: 'x@blocked.test' }), IP.nobody, 'x@blocked.test');
    assert.equal(r.code, 550);
    assert.match(r.response, /refused by rule blocked-sender/);
  });

  it('a rule whose auth condition hangs on a DNS time-out is not applied, and says so; unauthenticated mail is still blocked', async () => {
    // A selector of its own, so that no earlier test has its key in the resolver's cache.
    world.dns.set('s9._domainkey.example.com', { TXT: [`v=DKIM1; k=rsa; p=${world.keys.example.publicKey}`] });
    world.dns.silentNames.add('s9._domainkey.example.com');
    try {
      const raw = await sign(message({ from: 'Alice <alice@example.com>', subject: '[signed-only] figures' }), 'example.com', 's9', world.keys.example);
      // Not from example.com's SPF-listed server: only the DKIM signature could authenticate it.
      const undecided = await send(raw, IP.nobody, 'alice@example.com');
      assert.equal(undecided.code, 250, undecided.response);
      assert.match(status(undecided.delivered), /RULE_UNDECIDED 0/);
      assert.match(status(undecided.delivered), /DMARC_TEMPERROR 0/);
      assert.match(undecided.delivered!, /dkim=temperror/);
    } finally {
      world.dns.silentNames.clear();
    }
    const unsigned = await send(message({ from: 'Alice <alice@example.com>', subject: '[signed-only] figures' }), IP.nobody, 'alice@example.com');
    assert.equal(unsigned.newDeliveries, 0);
    assert.match(unsigned.response, /^5\d\d/);
    assert.match(unsigned.response, /rule alice-signed-only/);
  });

  it('quarantine -> release -> delivered exactly once; a second release is refused', async () => {
    const held = await send(message({ from: 'Bob <bob@shop.test>', to: 'staff@widget.test', subject: 'Invoice [hold]' }), IP.nobody, 'bob@shop.test');
    assert.equal(held.code, 250);
    assert.equal(held.newDeliveries, 0);
    const ref = /ref ([0-9A-Z]{10})/.exec(held.response)![1]!;
    const list = await cli('quarantine', 'list', '--rcpt', 'staff@widget.test');
    assert.match(list.text, new RegExp(`${ref} +held .*bob@shop\\.test.*Invoice \\[hold\\]`));

    const before = haraka.delivered();
    const release = await cli('quarantine', 'release', ref);
    assert.equal(release.code, 0, release.text);
    assert.match(release.text, new RegExp(`released ${ref} to staff@widget\\.test via 127\\.0\\.0\\.1:${haraka.port}`));
    assert.match(release.text, /ham learning: learnt$/m);
    const files = newFiles(before);
    assert.equal(files.length, 1, 'delivered once');
    const delivered = readFileSync(files[0]!, 'utf8');
    assert.match(delivered, /^X-Envelope-From: <bob@shop\.test>/);
    assert.match(delivered, /Subject: Invoice \[hold\]/);
    assert.doesNotMatch(delivered, /X-Mailward-Release/i, 'the stamp is removed');
    assert.match(status(delivered), new RegExp(`^accept .*QUARANTINE_RELEASED`));

    const again = await cli('quarantine', 'release', ref);
    assert.equal(again.code, 1);
    assert.match(again.text, /already released/);
    assert.equal(newFiles(before).length, 1);
    assert.match((await cli('quarantine', 'list', '--all')).text, new RegExp(`${ref} +released`));
  });

  it('a release the MTA holds again (its stamp not honoured) is not reported as released, nor learnt as ham', async () => {
    const held = await send(message({ from: 'Bob <bob@shop.test>', to: 'staff@widget.test', subject: 'Order 7 [hold]' }), IP.nobody, 'bob@shop.test');
    const ref = /ref ([0-9A-Z]{10})/.exec(held.response)![1]!;
    const store = new FileQuarantine(join(haraka.dir, 'data', 'quarantine'));
    const learnt: string[] = [];
    // One instant for both releases: the second stamp is the first one again, which the MTA has seen.
    const at = Date.now();
    const options = { host: '127.0.0.1', port: haraka.port, now: () => at, learnHam: async (raw: Buffer) => (learnt.push(raw.toString()), 'learnt') };
    const before = haraka.delivered();
    assert.equal((await releaseMessage(store, ref, options)).record.status, 'released');
    assert.equal(newFiles(before).length, 1);

    const logLength = haraka.logs().length;
    await assert.rejects(releaseMessage(store, ref, { ...options, force: true }), (err: unknown) => {
      assert.ok(err instanceof ReleaseError, String(err));
      assert.match(err.message, new RegExp(`^${ref} was not delivered: 127\\.0\\.0\\.1:${haraka.port} held it again as ([0-9A-Z]{10}) \\(250 .*held for review.*\\): its release stamp was not honoured`));
      return true;
    });
    assert.match(haraka.logs().slice(logLength), /release stamp for .* was already used/);
    assert.equal(newFiles(before).length, 1, 'delivered once');
    assert.equal(learnt.length, 1, 'learnt once, for the release that was delivered');
    const record = await store.record(ref);
    assert.equal(record!.status, 'released', 'as the first release left it');
    assert.match(record!.error!, /held it again as [0-9A-Z]{10}/);
  });

  it('a forged release stamp is not honoured', async () => {
    const forged = message({ from: 'Bob <bob@shop.test>', to: 'staff@widget.test', subject: 'Invoice [hold]', prepend: ['X-Mailward-Release: ABCDEFG 9999999999 0123456789abcdef0123456789abcdef'] });
    const r = await send(forged, IP.nobody, 'bob@shop.test');
    assert.equal(r.newDeliveries, 0);
    assert.match(r.response, /held for review/);
  });

  it('a release stamp holds once, for the released recipients or fewer, not for one added', async () => {
    // A valid stamp made as `quarantine release` makes it, with the key the MTA reads.
    const key = releaseKey(join(haraka.dir, 'data', 'quarantine'), true)!;
    const held = () => message({ from: 'Bob <bob@shop.test>', to: 'staff@widget.test', subject: 'Invoice [hold]' });
    const stamped = (raw: string, rcptTo: string[]) => `${releaseHeaderLine(signRelease(key, 'ABCDEFG', { mailFrom: 'bob@shop.test', rcptTo }, Buffer.from(raw)), '\r\n')}${raw}`;

    const raw = held();
    const once = stamped(raw, ['staff@widget.test', 'other@widget.test']);
    const fewer = await send(once, IP.nobody, 'bob@shop.test', 'Staff@Widget.test');
    assert.equal(fewer.code, 250, fewer.response);
    assert.match(status(fewer.delivered), /^accept .*QUARANTINE_RELEASED/, 'a subset of the released recipients, in another case');

    // The same stamped copy again (a replay): not honoured a second time.
    const replayLog = haraka.logs().length;
    const replay = await send(once, IP.nobody, 'bob@shop.test', 'staff@widget.test');
    assert.equal(replay.newDeliveries, 0);
    assert.match(replay.response, /held for review/);
    assert.match(haraka.logs().slice(replayLog), /not honoured: release stamp for ABCDEFG was already used/);
    // Spelt otherwise (a zero before the expiry, other folding): still the stamp that was used.
    const respelt = once.replace(/^(X-Mailward-Release: ABCDEFG )(\d+)/m, '$1 0$2');
    assert.notEqual(respelt, once);
    const again = await send(respelt, IP.nobody, 'bob@shop.test', 'staff@widget.test');
    assert.equal(again.newDeliveries, 0, 'a respelt stamp is not a new one');

    const logLength = haraka.logs().length;
    const before = haraka.delivered();
    const raw2 = held();
    const added = await sendMail({ port: haraka.port, from: 'bob@shop.test', to: ['staff@widget.test', 'other@widget.test'], raw: stamped(raw2, ['staff@widget.test']), localAddress: IP.nobody, helo: 'mail.sender.test' });
    assert.match(added.response, /held for review/);
    assert.equal(newFiles(before).length, 0);
    assert.match(haraka.logs().slice(logLength), /not honoured: release stamp for ABCDEFG does not cover recipient other@widget\.test/);
  });

  it('release-approve: the next message from that sender is accepted for that recipient only, and a forgery is not', async () => {
    const first = await fromAlice('Quarterly figures [spammy]');
    assert.equal(first.newDeliveries, 0);
    const ref = /ref ([0-9A-Z]{10})/.exec(first.response)![1]!;
    const approve = await cli('quarantine', 'release-approve', ref);
    assert.equal(approve.code, 0, approve.text);
    assert.match(approve.text, /approved alice@example\.com for staff@widget\.test/);
    assert.doesNotMatch(approve.text, /was not authenticated/, 'alice signs her mail: no warning');
    assert.match((await cli('allow', 'list', '--rcpt', 'staff@widget.test')).text, /staff@widget\.test +run-time +alice@example\.com/);

    const next = await fromAlice('More figures [spammy]');
    assert.equal(next.code, 250);
    assert.equal(next.newDeliveries, 1);
    assert.match(status(next.delivered), /^accept .*ALLOWLIST/);

    const other = await fromAlice('More figures [spammy]', 'other@widget.test');
    assert.equal(other.newDeliveries, 0, 'another recipient is not affected');

    // alice@example.com forged from a server example.com does not authorise.
    const forged = await send(message({ from: 'Alice <alice@example.com>', to: 'staff@widget.test', subject: 'Pay this [spammy]' }), IP.attacker, 'alice@example.com');
    assert.equal(forged.newDeliveries, 0, 'a forged From: of an allowed sender is not allowed');
  });

  it('an allow entry holds for mail a trusted ARC sealer forwarded after DMARC passed, and the explanation names the sealer', async () => {
    const add = await cli('allow', 'add', '--rcpt', 'news@widget.test', 'alice@example.com');
    assert.equal(add.code, 0, add.text);
    try {
      // alice@example.com posts to the list at fwd.test; its footer breaks her DKIM, its server is not in her SPF.
      const post = async (subject: string) => sign(message({ from: 'Alice <alice@example.com>', to: 'list@fwd.test', subject }), 'example.com', 's1', world.keys.example);
      const listed = await send(await forwardFromExample(world, await post('Digest [spammy]')), IP.forwarder, 'list-bounces@fwd.test', 'news@widget.test');
      assert.equal(listed.code, 250, listed.response);
      assert.equal(listed.newDeliveries, 1, listed.response);
      assert.match(listed.delivered!, /dmarc=fail/);
      assert.match(status(listed.delivered), /^accept .*ALLOWLIST 0/);
      assert.match(status(listed.delivered), /DMARC_FAIL_ARC_OVERRIDE 0/);
      const ref = /\bref=([0-9A-Z]{10})/.exec(status(listed.delivered))![1]!;
      const explained = await waitFor(`ref ${ref} in the tracking`, async () => {
        const io = capture();
        return (await main(['explain', ref, '--json', '--config', haraka.configDir], io)) === 0 ? io.text() : undefined;
      }, 10_000, 100);
      const allow = (JSON.parse(explained) as { symbols: { name: string; detail?: string }[] }).symbols.find((x) => x.name === 'ALLOWLIST');
      assert.match(allow?.detail ?? '', /^alice@example\.com: allow list \(news@widget\.test: alice@example\.com, DMARC passed at trusted ARC sealer fwd\.test \(here: .*dmarc=fail\)\)$/, explained);

      // The same post through a list the operator does not trust: the entry does not hold, the DMARC policy applies.
      const untrusted = await send(await forwardFromExample(world, await post('Digest [spammy]'), 'untrusted'), IP.untrustedForwarder, 'list@untrusted.test', 'news@widget.test');
      assert.equal(untrusted.newDeliveries, 0, untrusted.response);
      assert.doesNotMatch(untrusted.response, /ALLOWLIST /);
    } finally {
      await cli('allow', 'remove', '--rcpt', 'news@widget.test', 'alice@example.com');
    }
  });

  it('release-approve of a cousin domain (examp1e.com) warns, and the approval does not let its next message through', async () => {
    const fromCousin = async (subject: string) => {
      const raw = await sign(message({ from: 'CEO <ceo@examp1e.com>', to: 'staff@widget.test', subject }), 'examp1e.com', 'sel', world.keys.attacker);
      return send(raw, IP.attacker, 'ceo@examp1e.com');
    };
    const first = await fromCousin('Wire today [spammy]');
    assert.equal(first.newDeliveries, 0);
    const ref = /ref ([0-9A-Z]{10})/.exec(first.response)![1]!;
    const approve = await cli('quarantine', 'release-approve', ref);
    assert.equal(approve.code, 0, approve.text);
    assert.match(approve.text, /warning: the held message carries LOOKALIKE_LOCAL_DOMAIN \(.*examp1e\.com reads as local domain example\.com.*\), which no approval overrides/);
    assert.match(approve.text, /approved ceo@examp1e\.com for staff@widget\.test/);

    const next = await fromCousin('Wire again [spammy]');
    assert.equal(next.newDeliveries, 0, 'the approval does not outweigh the look-alike');
    assert.match(next.response, /held for review/);
    await cli('allow', 'remove', '--rcpt', 'staff@widget.test', 'ceo@examp1e.com');
  });

  it('the held copy carries only our verdict and Authentication-Results, not the copies a sender forged', async () => {
    const forged = [
      'X-Mailward-Status: accept score=-5 ref=FORGED3',
      'X-Mailward-Score: -5',
      'Authentication-Results: mx.widget.test;',
      '\tdmarc=pass header.from=shop.test FORGED4',
    ];
    const held = await send(message({ from: 'News <news@shop.test>', to: 'staff@widget.test', subject: 'Big sale [spammy]', prepend: forged }), IP.nobody, 'news@shop.test');
    assert.equal(held.newDeliveries, 0);
    const ref = /ref ([0-9A-Z]{10})/.exec(held.response)![1]!;
    const raw = (await cli('quarantine', 'show', ref, '--raw')).text;
    assert.match(raw, new RegExp(`^X-Mailward-Ref: ${ref}$`, 'm'));
    assert.match(raw, /^X-Mailward-Status: quarantine /m);
    assert.match(raw, /^Authentication-Results: mx\.widget\.test;/m);
    assert.doesNotMatch(raw, /FORGED3/);
    // Haraka itself renames the sender's Authentication-Results at DATA; none in our name is left.
    assert.doesNotMatch(raw, /^Authentication-Results: mx\.widget\.test;\r?\n\tdmarc=pass header\.from=shop\.test FORGED4/m);
    assert.match(raw, /^Subject: Big sale \[spammy\]/m, 'the rest of the message is kept');
  });

  it('release-approve takes the From: as one literal address: a From: written as an entry is not approved', async () => {
    // An unauthenticated sender: approved, with a warning that says how to make it hold.
    const unsigned = await send(message({ from: 'News <news@shop.test>', to: 'staff@widget.test', subject: 'Big sale [spammy]' }), IP.nobody, 'news@shop.test');
    const unsignedRef = /ref ([0-9A-Z]{10})/.exec(unsigned.response)![1]!;
    const warned = await cli('quarantine', 'release-approve', unsignedRef);
    assert.match(warned.text, /approved news@shop\.test for staff@widget\.test/);
    assert.match(warned.text, /warning: the held message was not authenticated for shop\.test .*mailward allow add --rcpt staff@widget\.test --via 127\.0\.0\.\d+ news@shop\.test/);
    await cli('allow', 'remove', '--rcpt', 'staff@widget.test', 'news@shop.test');

    for (const from of ['"Shop" <unauthenticated:*@*.*>', 'news@shop.test, Alice <alice@nowhere.test>', 'Shop <news\u001b(0\u202e@shop.test>']) {
      const held = await send(message({ from, to: 'staff@widget.test', subject: 'Big sale [spammy]' }), IP.nobody, 'news@shop.test');
      assert.equal(held.newDeliveries, 0, from);
      const ref = /ref ([0-9A-Z]{10})/.exec(held.response)![1]!;
      const approve = await cli('quarantine', 'release-approve', ref);
      assert.equal(approve.code, 0, approve.text);
      assert.match(approve.text, /released /);
      assert.match(approve.text, /warning: nothing approved: /, from);
      assert.doesNotMatch(approve.text, /^approved /m);
    }
    const list = (await cli('allow', 'list', '--rcpt', 'staff@widget.test')).text;
    assert.doesNotMatch(list, /\*|news@shop\.test/, list);
    // GTUBE from anyone to staff is still refused: no wildcard entry was written.
    const gtube = await send(message({ from: 'x@anywhere.test', to: 'staff@widget.test', body: 'XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n' }), IP.nobody, 'x@anywhere.test');
    assert.equal(gtube.newDeliveries, 0);
  });

  it('a broken rules file is refused on reload, naming rule and line, and the last good rules stay in force', async () => {
    const logLength = haraka.logs().length;
    writeFileSync(join(haraka.configDir, 'mailward.rules'), `${RULES}\nrule broken\n  body matches /free(?=money)/\n  action block\n`);
    const deadline = Date.now() + 15_000;
    while (!/NOT reloaded/.test(haraka.logs().slice(logLength)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.match(haraka.logs().slice(logLength), /NOT reloaded.*mailward\.rules \[rule broken\]: line \d+: bad regular expression .*RE2 syntax/);
    const stillHeld = await send(message({ from: 'Bob <bob@shop.test>', subject: 'Invoice [hold]' }), IP.nobody, 'bob@shop.test');
    assert.match(stillHeld.response, /held for review/, 'the old rules still apply');
    const cliView = await cli('quarantine', 'list');
    assert.equal(cliView.code, 3);
    assert.match(cliView.text, /configuration error: .*\[rule broken\]: line \d+/);

    // A good edit is picked up (Haraka waits 5 s for a file to settle).
    const goodLength = haraka.logs().length;
    writeFileSync(join(haraka.configDir, 'mailward.rules'), RULES.replace('action quarantine', 'action block'));
    const until = Date.now() + 15_000;
    while (!/mailward configuration reloaded/.test(haraka.logs().slice(goodLength)) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    const blocked = await send(message({ from: 'Bob <bob@shop.test>', subject: 'Invoice [hold]' }), IP.nobody, 'bob@shop.test');
    assert.equal(blocked.code, 550, haraka.logs().slice(goodLength).slice(-3000));
    assert.match(blocked.response, /rule hold/);

    // Deleting the file takes its rules away too (haraka-config would keep serving its last text).
    const goneLength = haraka.logs().length;
    rmSync(join(haraka.configDir, 'mailward.rules'));
    const gone = Date.now() + 15_000;
    while (!/mailward configuration reloaded/.test(haraka.logs().slice(goneLength)) && Date.now() < gone) await new Promise((r) => setTimeout(r, 100));
    const free = await send(message({ from: 'Bob <bob@shop.test>', subject: 'Invoice [hold]' }), IP.nobody, 'bob@shop.test');
    assert.equal(free.code, 250, free.response);
    assert.doesNotMatch(free.response, /held for review/);
  });
});
