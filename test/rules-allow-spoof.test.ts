// Allowed senders against a spammer who knows the list, through the library
// front door (createMailward().scan()) with real signatures and a real DNS
// server: an allow entry must hold only for mail that authenticates as the
// allowed sender, whatever the spammer writes into its own signature.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { dkimSign } from 'mailauth';
import { authResults } from '../lib/checks/auth';
import { orgDomain, relaxedAligned } from '../lib/checks/auth/align';
import { createMailward, type Mailward, type ScanResult } from '../lib/index';
import { configDir, IP, message, sharedIni, sign, startAuthWorld, type AuthWorld } from './fixtures/auth/world';

function symbol(result: ScanResult, name: string) {
  return result.verdict.symbols.find((s) => s.name === name);
}

function names(result: ScanResult): string {
  return result.verdict.symbols.map((s) => s.name).join(', ');
}

describe('rules: allow entries cannot be spoofed through the library front door', function () {
  this.timeout(20_000);
  let world: AuthWorld;
  let dir: string;
  let mw: Mailward;

  before(async () => {
    world = await startAuthWorld();
    dir = configDir({
      // 2 s per look-up: an answer late under load must not turn a DMARC fail into a temperror here.
      'mailward.ini': sharedIni(world.dns, 2000),
      // example.com (p=reject) is a partner the operator allows, for everyone and by address for bob.
      'mailward.rules.ini': '[allow]\nsenders = example.com\n[allow:bob@example.org]\nsenders = ceo@example.com\n',
    });
    mw = createMailward({ configDir: dir, modules: ['builtin', 'auth', 'antispoof', 'rules'] });
  });
  after(async () => {
    await mw?.close();
    await world?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const scan = (raw: string, ip: string, mailFrom: string) => mw.scan({ ip, helo: 'mail.attacker.test', mailFrom, rcptTo: ['bob@example.org'], raw, localHostname: 'mx.example.org' });

  it('a DKIM d= that is no host name (d=example.com/x.attacker.test, a key in the attacker\'s zone) aligns with nothing: no DMARC pass, no allow', async () => {
    // DNS reads the name from the right: the key is the attacker's to publish. The Public Suffix
    // List code reads it from the left, as a URL, and found example.com in it: DKIM_VALID_ALIGNED,
    // DMARC_PASS under example.com's p=reject, and the allow entry held.
    const forged = 'example.com/x.attacker.test';
    world.dns.set(`sel._domainkey.${forged}`, { TXT: [`v=DKIM1; k=rsa; p=${world.keys.attacker.publicKey}`] });
    const raw = await sign(message({ from: 'CEO <ceo@example.com>' }), forged, 'sel', world.keys.attacker);
    const result = await scan(raw, IP.attacker, 'x@attacker.test');
    assert.equal(symbol(result, 'ALLOWLIST'), undefined, names(result));
    assert.equal(symbol(result, 'DMARC_PASS'), undefined, names(result));
    assert.equal(symbol(result, 'DKIM_VALID_ALIGNED'), undefined, names(result));
    assert.ok(symbol(result, 'DMARC_POLICY_REJECT'), names(result));
    assert.match(symbol(result, 'ALLOWLIST_NOT_HELD')!.detail, /example\.com does not hold: From: example\.com is not authenticated/);
    assert.notEqual(result.verdict.action, 'accept');
    assert.match(result.context.headerChanges.add.find(([n]) => n === 'Authentication-Results')![1], /dmarc=fail/);
    assert.ok(!world.dns.queries.some((q) => q.includes(forged)), 'its key is not even looked up');
    // Nor can its key time out in the attacker's own zone to look like an aligned signature the
    // DNS kept from verifying: that held back example.com's p=reject (DMARC_TEMPERROR) and left
    // "not auth aligned" rules undecided.
    world.dns.silentNames.add(`slow._domainkey.${forged}`);
    try {
      const slow = await sign(message({ from: 'CEO <ceo@example.com>' }), forged, 'slow', world.keys.attacker);
      const held = await scan(slow, IP.attacker, 'x@attacker.test');
      assert.ok(symbol(held, 'DMARC_POLICY_REJECT'), names(held));
      assert.equal(symbol(held, 'DMARC_TEMPERROR'), undefined, names(held));
    } finally {
      world.dns.silentNames.delete(`slow._domainkey.${forged}`);
    }
    // Alignment itself refuses such a name (the path of an authentication that did not finish).
    assert.equal(relaxedAligned(forged, 'example.com'), false);
    assert.equal(relaxedAligned('mail.example.com', 'example.com'), true);
    // Nor is it example.com's organisation anywhere else (learned reputation keys its aggregates by it).
    assert.equal(orgDomain(forged), forged);
    assert.equal(orgDomain('Mail.Example.com.'), 'example.com');
  });

  it('a genuine signature with l= holds only while nothing follows the signed body: a replay with a part appended is not allowed', async () => {
    // example.com's own newsletter, signed with l= (its whole body at the time), which the spammer received.
    const original = message({ from: 'News <news@example.com>' });
    const body = original.slice(original.indexOf('\r\n\r\n') + 4);
    const signed = await dkimSign(original, { signTime: new Date(), signatureData: [{ signingDomain: 'example.com', selector: 's1', privateKey: world.keys.example.privateKey, maxBodyLength: body.length }] } as any);
    const raw = `${signed.signatures}${original}`;
    const genuine = await scan(raw, IP.attacker, 'x@attacker.test');
    assert.ok(symbol(genuine, 'ALLOWLIST'), names(genuine));
    // Replayed from the spammer's server with its own text after the signed part: the signature and
    // DMARC still pass (mailauth counts l= signatures), but the allow entry does not hold.
    const replayed = await scan(`${raw}\r\nYour account is locked: http://login.attacker.test/example\r\n`, IP.attacker, 'x@attacker.test');
    assert.equal(symbol(replayed, 'ALLOWLIST'), undefined, names(replayed));
    assert.equal(replayed.verdict.reason.includes('forced'), false, replayed.verdict.reason);
    const dkim = authResults(replayed.context)!.dkim[0]!;
    assert.equal(dkim.result, 'pass');
    assert.ok(dkim.unsignedBody! > 40, JSON.stringify(dkim));
    assert.ok(symbol(replayed, 'DMARC_PASS'), names(replayed));
    assert.match(symbol(replayed, 'ALLOWLIST_NOT_HELD')!.detail, /From: example\.com is not authenticated \(.*dkim=pass aligned \(example\.com, l= leaves \d+ bytes of the body unsigned\)/);
  });

  it('a signature that does not cover From: authenticates no From: (RFC 6376 6.1.1): a From: swapped into the partner\'s signed message is not allowed', async () => {
    // A message example.com signed without From: in h= (a signer set up wrong), which the spammer received.
    const original = message({ from: 'News <news@example.com>' });
    const signed = await dkimSign(original, { signTime: new Date(), headerList: 'Subject:Date:Message-ID:To', signatureData: [{ signingDomain: 'example.com', selector: 's1', privateKey: world.keys.example.privateKey }] } as any);
    assert.doesNotMatch(signed.signatures, /From/i);
    const swapped = `${signed.signatures}${original}`.replace('From: News <news@example.com>', 'From: CEO <ceo@example.com>');
    const result = await scan(swapped, IP.attacker, 'x@attacker.test');
    assert.equal(symbol(result, 'ALLOWLIST'), undefined, names(result));
    assert.equal(symbol(result, 'DMARC_PASS'), undefined, names(result));
    assert.ok(symbol(result, 'DMARC_POLICY_REJECT'), names(result));
    assert.match(symbol(result, 'DKIM_INVALID')!.detail, /d=example\.com s=s1: permerror \(the signature does not cover From:/);
    assert.notEqual(result.verdict.action, 'accept');
    const ar = result.context.headerChanges.add.find(([n]) => n === 'Authentication-Results')![1];
    assert.match(ar, /dmarc=fail/);
    assert.doesNotMatch(ar, /dkim=pass/);
    // Signed with From: as usual, the same message holds the entry.
    const proper = await sign(message({ from: 'CEO <ceo@example.com>' }), 'example.com', 's1', world.keys.example);
    assert.ok(symbol(await scan(proper, IP.attacker, 'x@attacker.test'), 'ALLOWLIST'));
  });

  it('a From: written as the first line after white space is a From: (as mailauth and mail readers take it), not a message without one allowed on its envelope', async () => {
    // The envelope's SPF passes for example.com (a shared sending service can give that), while the
    // reader is shown another sender. mailward read no From: header and allowed it on the envelope.
    for (const line of [' From:', '\tFrom:', '\fFrom:', 'From\f:', 'From\v:']) {
      const raw = `${line} CEO <ceo@monitor.test>\r\n${message({ from: 'x' }).replace(/^From: x\r\n/m, '')}`;
      const result = await scan(raw, IP.example, 'bounce@example.com');
      assert.equal(symbol(result, 'ALLOWLIST'), undefined, `${JSON.stringify(line)}: ${names(result)}`);
      assert.deepEqual(result.context.headers.filter((h) => h.key === 'from').map((h) => h.value), ['CEO <ceo@monitor.test>'], JSON.stringify(line));
      assert.equal(symbol(result, 'FROM_MISSING'), undefined, names(result));
      // mailauth read the same From: (monitor.test publishes p=none).
      assert.match(symbol(result, 'DMARC_POLICY_NONE')?.detail ?? '', /From: monitor\.test fails DMARC/, names(result));
    }
  });

  it('a header block longer than mailward reads (1 MB) with the From: past it is not allowed on its envelope', async () => {
    // mailauth reads the whole block and authenticates that From:; readers are shown it.
    const junk = Array.from({ length: 12_000 }, (_, i) => `X-Junk-${i}: ${'a'.repeat(90)}`).join('\r\n');
    const raw = `${junk}\r\nFrom: CEO <ceo@monitor.test>\r\n${message({ from: 'x' }).replace(/^From: x\r\n/m, '')}`;
    const result = await scan(raw, IP.example, 'bounce@example.com');
    assert.equal(symbol(result, 'ALLOWLIST'), undefined, names(result));
    assert.equal(authResults(result.context)!.fromDomain, 'monitor.test');
    // The same envelope with no From: anywhere is allowed on its SPF pass, as documented.
    const none = await scan(message({ from: 'x' }).replace(/^From: x\r\n/m, ''), IP.example, 'bounce@example.com');
    assert.match(symbol(none, 'ALLOWLIST')?.detail ?? '', /SPF pass for example\.com/, names(none));
  });

  it('From: tricks under the spammer\'s own valid signature and SPF hold no entry (display name, groups, encoded words, two From:, look-alike and sub-domains)', async () => {
    const encoded = `=?utf-8?B?${Buffer.from('ceo@example.com').toString('base64')}?=`;
    const forms = [
      '"ceo@example.com" <x@attacker.test>',
      `${encoded} <x@attacker.test>`,
      encoded,
      'CEO <ceo@example.com>',
      'ceo@example.com: x@attacker.test;',
      'x@attacker.test, ceo@example.com',
      'ceo(x@attacker.test)@example.com',
      'ceo@EXAMPLE.COM.',
      'ceo@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com',
      'ceo@example.com.attacker.test',
      'ceo@evil.example.com',
      '"ceo@example.com"@attacker.test',
    ];
    for (const from of forms) {
      const signed = await sign(message({ from }), 'attacker.test', 'sel', world.keys.attacker);
      for (const raw of [signed, `From: CEO <ceo@example.com>\r\n${signed}`]) {
        const result = await scan(raw, IP.attacker, 'x@attacker.test');
        assert.equal(symbol(result, 'ALLOWLIST'), undefined, `${from}: ${names(result)}`);
        assert.equal(result.verdict.reason.includes('forced by allow list'), false, `${from}: ${result.verdict.reason}`);
      }
    }
  });
});
