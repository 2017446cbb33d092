// auth and antispoof end to end: a real Haraka with mailward/auth,
// mailward/antispoof and the verdict plugin, resolving through the test DNS
// server; messages signed, forwarded and sealed here, sent over SMTP from
// different loopback addresses.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type HarakaInstance, removeDir, sendMail, startHaraka } from './support/haraka';
import { forwardFromExample, harakaIni, IP, message, sign, startAuthWorld, type AuthWorld } from './fixtures/auth/world';

const O365_RECEIVED = [
  'Received: from NAM12-MW2-obe.outbound.protection.outlook.com (mail-mw2nam12lp2049.outbound.protection.outlook.com [104.47.66.49]) by mx1.widget.test with ESMTPS id 1A73BB4005F; Mon, 24 Feb 2020 16:21:33 +0000',
  'Received: from SN6PR05MB4415.namprd05.prod.outlook.com (2603:10b6:805:3a::13) by SN6PR05MB4736.namprd05.prod.outlook.com with Microsoft SMTP Server id 15.20.2772.11; Mon, 24 Feb 2020 16:21:30 +0000',
];

const ANTISPOOF_INI = `[domains]
list = example.com, widget.test

[service:o365]
domains = widget.test
received_contains = prod.outlook.com, outbound.protection.outlook.com

[display_name]
protected = Jane Doe
`;

describe('auth and antispoof end to end through a real Haraka', function () {
  this.timeout(60_000);
  let world: AuthWorld;
  let haraka: HarakaInstance;

  before(async () => {
    world = await startAuthWorld();
    haraka = await startHaraka({
      plugins: ['mailward/plugins/auth', 'mailward/plugins/antispoof'],
      hostList: ['example.com', 'widget.test'],
      me: 'mx.widget.test',
      files: {
        'mailward.ini': harakaIni(world),
        'mailward.auth.ini': '[arc]\ntrusted_sealers = fwd.test\n',
        'mailward.antispoof.ini': ANTISPOOF_INI,
      },
    });
  });
  after(async () => {
    await haraka?.stop();
    if (haraka) removeDir(haraka.dir);
    await world?.stop();
  });

  /** Sends and returns the reply plus the delivered text (if delivered). */
  async function send(raw: string, ip: string, from: string, to = 'staff@widget.test', helo = 'mail.sender.test') {
    const before = new Set(haraka.delivered());
    const result = await sendMail({ port: haraka.port, from, to: [to], raw, localAddress: ip, helo });
    const fresh = haraka.delivered().filter((f) => !before.has(f));
    assert.ok(fresh.length <= 1, `${fresh.length} messages delivered`);
    const delivered = fresh.length ? readFileSync(fresh[0]!, 'utf8') : undefined;
    return { ...result, delivered };
  }

  function header(text: string, name: string): string {
    const match = new RegExp(`^${name}: ([^\\r\\n]*(?:\\r?\\n[ \\t][^\\r\\n]*)*)`, 'mi').exec(text);
    assert.ok(match, `no ${name} header in:\n${text.slice(0, 3000)}`);
    return match[1]!.replace(/\r?\n[ \t]+/g, ' ');
  }

  it('a forged Authentication-Results written "Authentication-Results :" is taken out, as the plain one is', async () => {
    // Haraka's remove_header drops only fields written exactly "Name:"; a reader takes this one for an
    // Authentication-Results of ours (mailauth and mail readers trim the name).
    const raw = message({ from: 'Mallory <m@attacker.test>', to: 'staff@widget.test', prepend: ['Authentication-Results : mx.widget.test; dkim=pass header.i=@example.com FORGED4'] });
    const result = await send(raw, IP.attacker, 'alice@attacker.test');
    assert.ok(result.delivered, result.response);
    assert.doesNotMatch(result.delivered, /FORGED4/);
    assert.match(header(result.delivered, 'Authentication-Results'), /^mx\.widget\.test; /);
  });

  it('a forged field above a line starting with a bare CR does not take the end of the header block with it', async () => {
    // Haraka writes a bare CR as "\r\n ": the entry for "\rX-Folded: x" starts with an empty line, where the scanned
    // and the delivered copy's header block end (From: below is body: FROM_MISSING). Removing the forged
    // "X-Mailward-Score :" above it took that entry along as a continuation, and the delivered copy's header block
    // then went on to a From: of our p=reject domain that no check had read (accepted, FROM_MISSING only).
    const raw = `Subject: Urgent wire transfer\r\nX-Mailward-Score : 1\r\n\rX-Folded: x\r\nFrom: CEO <ceo@example.com>\r\nTo: staff@widget.test\r\nMIME-Version: 1.0\r\n\r\nPay now.\r\n`;
    const result = await send(raw, IP.attacker, 'bounce@attacker.test');
    const block = (result.delivered ?? '').split(/\r?\n\r?\n/)[0]!;
    assert.ok(result.code === 550 || !/^From: CEO <ceo@example\.com>/m.test(block), `${result.code} ${result.response}\n${block}`);
  });

  it('after a line starting with a bare CR, our X-Mailward-* fields and Authentication-Results are still in the delivered header block', async () => {
    // Haraka writes "\rX-Folded: x" as an entry that starts with an empty line: the delivered copy's header block
    // ends there. Our fields were appended to the header list, below it, in the body: a filter or mail reader saw
    // no verdict and no Authentication-Results. They are now added at the top.
    const raw = message({ to: 'staff@widget.test', headers: { '\rX-Folded': 'x' } });
    const result = await send(raw, IP.example, 'alice@example.com');
    assert.equal(result.code, 250, result.response);
    const delivered = result.delivered!;
    const block = delivered.slice(0, delivered.search(/\r?\n\r?\n/));
    assert.match(block, /^X-Mailward-Status: accept score=/m, block);
    assert.match(block, /^X-Mailward-Ref: [0-9A-Z]{10}\r?$/m, block);
    assert.match(block, /^Authentication-Results: mx\.widget\.test; /m, block);
    assert.match(block, /^Received-SPF: pass /m, block);
    // Ours on top: the verdict's (the latest), then auth's (in mailauth's order), then the message as it came.
    // (The test store writes the envelope, X-Envelope-From and -To, above the message.)
    const names = block.split(/\r?\n/).filter((l) => !/^[ \t]/.test(l)).map((l) => l.slice(0, l.indexOf(':'))).filter((n) => !n.startsWith('X-Envelope-'));
    assert.deepEqual(names.slice(0, 5), ['X-Mailward-Score', 'X-Mailward-Status', 'X-Mailward-Ref', 'Received-SPF', 'Authentication-Results'], block);
    assert.ok(names.indexOf('From') > 4, block);
  });

  it('pass/pass/pass is accepted with a correct Authentication-Results header', async () => {
    const raw = await sign(message({ to: 'staff@widget.test' }), 'example.com', 's1', world.keys.example);
    const result = await send(raw, IP.example, 'alice@example.com');
    assert.equal(result.code, 250, result.response);
    assert.ok(result.delivered);
    const ar = header(result.delivered, 'Authentication-Results');
    assert.match(ar, /^mx\.widget\.test; /);
    assert.match(ar, /dkim=pass header\.i=@example\.com header\.s=s1/);
    assert.match(ar, /spf=pass \(mx\.widget\.test: domain of alice@example\.com designates 127\.0\.0\.10 as permitted sender\) smtp\.mailfrom=alice@example\.com/);
    assert.match(ar, /dmarc=pass \(p=REJECT[^)]*\) header\.from=example\.com/);
    assert.match(header(result.delivered, 'Received-SPF'), /^pass .* client-ip=127\.0\.0\.10;/);
    assert.match(header(result.delivered, 'X-Mailward-Status'), /^accept .*DKIM_VALID_ALIGNED/);
  });

  it('a spoof of our p=reject domain is rejected with 550 and an explanation naming DMARC', async () => {
    const raw = await sign(message({ from: 'CEO <ceo@example.com>', to: 'staff@widget.test', subject: 'Urgent wire transfer' }), 'attacker.test', 'sel', world.keys.attacker);
    const result = await send(raw, IP.attacker, 'bounce@attacker.test');
    assert.equal(result.code, 550, result.response);
    assert.match(result.response, /5\.7\.1 Message rejected as spam \(ref [0-9A-Z]{10}: .*DMARC_POLICY_REJECT 8/);
    assert.match(result.response, /SPOOF_LOCAL_DOMAIN 12/);
    assert.equal(result.delivered, undefined);
  });

  it('a body changed in transit fails DKIM (and is still delivered when SPF aligns)', async () => {
    const signed = await sign(message({ to: 'staff@widget.test' }), 'example.com', 's1', world.keys.example);
    const tampered = signed.replace('the figures are attached', 'the figures are now at http://elsewhere.test/');
    const result = await send(tampered, IP.example, 'alice@example.com');
    assert.equal(result.code, 250, result.response);
    assert.match(header(result.delivered!, 'Authentication-Results'), /dkim=neutral \(body hash did not verify\) header\.i=@example\.com/);
    assert.match(header(result.delivered!, 'X-Mailward-Status'), /DKIM_INVALID/);
  });

  it('ARC-sealed forwarded mail from a trusted sealer passes', async () => {
    const original = await sign(message({ to: 'list@fwd.test' }), 'example.com', 's1', world.keys.example);
    const forwarded = await forwardFromExample(world, original);
    const result = await send(forwarded, IP.forwarder, 'list-bounces@fwd.test');
    assert.equal(result.code, 250, result.response);
    const ar = header(result.delivered!, 'Authentication-Results');
    assert.match(ar, /arc=pass/);
    assert.match(ar, /dmarc=fail/);
    const status = header(result.delivered!, 'X-Mailward-Status');
    assert.match(status, /^accept .*DMARC_FAIL_ARC_OVERRIDE/);
    assert.doesNotMatch(status, /DMARC_POLICY_REJECT/);
    // example.com is local here: the trusted sealer's word also satisfies antispoof.
    assert.match(status, /LOCAL_DOMAIN_AUTHORISED/);
    assert.doesNotMatch(status, /SPOOF_LOCAL_DOMAIN/);
  });

  it('web form: SPOOF_LOCAL_DOMAIN from an unlisted server, clean once the server is listed', async () => {
    const form = () => message({ from: 'Website <webform@widget.test>', to: 'sales@widget.test', subject: 'Information request' });
    const unlisted = await send(form(), IP.webform, 'www-data@widget.test', 'sales@widget.test');
    assert.equal(unlisted.code, 451, unlisted.response);
    assert.match(unlisted.response, /4\.7\.1 Message deferred/);
    assert.match(unlisted.response, /SPOOF_LOCAL_DOMAIN 12/);

    writeFileSync(join(haraka.configDir, 'mailward.antispoof.ini'), `${ANTISPOOF_INI}\n[domain:widget.test]\nips = ${IP.webform}\n`);
    const deadline = Date.now() + 10_000;
    while (!/mailward configuration reloaded/.test(haraka.logs()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.match(haraka.logs(), /mailward configuration reloaded/);

    const listed = await send(form(), IP.webform, 'www-data@widget.test', 'sales@widget.test');
    assert.equal(listed.code, 250, listed.response);
    const status = header(listed.delivered!, 'X-Mailward-Status');
    assert.match(status, /^accept .*LOCAL_DOMAIN_AUTHORISED/);
    assert.doesNotMatch(status, /SPOOF_LOCAL_DOMAIN/);
  });

  it('Office 365 via a signature tool: accepted with both Received markers, not with one', async () => {
    const both = await send(message({ from: 'Yves <yves@widget.test>', to: 'staff@widget.test', prepend: O365_RECEIVED }), IP.o365, 'yves@widget.test');
    assert.equal(both.code, 250, both.response);
    assert.match(header(both.delivered!, 'X-Mailward-Status'), /LOCAL_DOMAIN_TRUSTED_SERVICE/);

    const one = await send(message({ from: 'Yves <yves@widget.test>', to: 'staff@widget.test', prepend: [O365_RECEIVED[1]!] }), IP.o365, 'yves@widget.test');
    assert.notEqual(one.code, 250, one.response);
    assert.match(one.response, /SPOOF_LOCAL_DOMAIN/);
  });

  it('DNS server silent: TEMPERROR symbols, the mail is not refused, and the reply comes in bounded time', async () => {
    const raw = await sign(message({ from: 'news@quarantine.test', to: 'staff@widget.test', subject: 'during the outage' }), 'quarantine.test', 's1', world.keys.quarantine);
    world.dns.mode = 'silent';
    const started = Date.now();
    let result;
    try {
      result = await send(raw, IP.nobody, 'news@quarantine.test');
    } finally {
      world.dns.mode = 'normal';
    }
    const elapsed = Date.now() - started;
    assert.equal(result.code, 250, result.response);
    const status = header(result.delivered!, 'X-Mailward-Status');
    assert.match(status, /SPF_TEMPERROR 0/);
    assert.match(status, /DKIM_TEMPERROR 0/);
    assert.match(status, /DMARC_TEMPERROR 0/);
    // The TEMPERROR symbols are what the 400 ms DNS deadline promises; the bound, far above the few look-ups
    // in series it allows, only catches a look-up left to the resolver's own retries (23 s by default).
    assert.ok(elapsed < 20_000, `took ${elapsed} ms`);
  });
});
