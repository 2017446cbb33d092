// Allow entries and mail a trusted ARC sealer forwarded: the auth module's
// dmarc.arcOverride lets an entry hold only for the From: domain DMARC was
// judged for, with the sealer's recorded dmarc=pass, and says which sealer.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { authenticate, sealMessage } from 'mailauth';
import { summarise } from '../lib/checks/auth/results';
import { AUTH_DEFAULTS, authHits } from '../lib/checks/auth';
import { arcVouch, authHas, authView, fromAuthenticated, type AuthView } from '../lib/checks/rules/auth-view';
import { createMailward, type Mailward } from '../lib/index';
import { configDir, directResolver, forwardFromExample, forwardWithArc, IP, message, sharedIni, sign, startAuthWorld, type AuthWorld } from './fixtures/auth/world';
import { allowHolds, identityOf, parseEntry } from '../lib/checks/rules/lists';

/** What the auth module leaves for a list-forwarded message: footer broke DKIM, list server not in SPF. */
function forwarded(over: { fromDomain?: string; dmarcDomain?: string; arcOverride?: string | null; upstreamDmarc?: string; upstreamFrom?: string; unsignedBody?: number; authors?: string[] } = {}): AuthView {
  const fromDomain = over.fromDomain ?? 'lists-member.example';
  return {
    fromDomain,
    spf: { result: 'pass', domain: 'lists.example.org', aligned: false },
    dkim: [
      { result: 'neutral', domain: 'lists-member.example', aligned: true },
      { result: 'pass', domain: 'lists.example.org', aligned: false },
    ],
    dmarc: {
      result: 'fail',
      domain: over.dmarcDomain ?? fromDomain,
      ...(over.arcOverride === null ? {} : { arcOverride: over.arcOverride ?? 'lists.example.org' }),
      ...(over.authors ? { authors: over.authors } : {}),
    },
    arc: { upstreamDmarc: over.upstreamDmarc ?? 'pass', upstreamFrom: over.upstreamFrom ?? over.dmarcDomain ?? fromDomain, ...(over.unsignedBody ? { unsignedBody: over.unsignedBody } : {}) },
  };
}

const NEWSLETTER = 'newsletter@lists-member.example';
const entry = parseEntry('allow', NEWSLETTER);
const fromOne = (address: string) => identityOf([address], 'list-bounces@lists.example.org')!;
const holds = (auth: AuthView | undefined, identity = fromOne(NEWSLETTER), trustedArc = true) => allowHolds(entry, identity, '192.0.2.25', auth, false, trustedArc);

describe('rules: allow entries for mail a trusted ARC sealer forwarded', () => {
  it('hold when the sealer saw DMARC pass for this From: domain, and the explanation names the sealer', () => {
    const result = holds(forwarded());
    assert.equal(result.holds, true, result.why);
    assert.match(result.why, /^DMARC passed at trusted ARC sealer lists\.example\.org \(here: spf=pass .*dmarc=fail\)$/);
  });

  it('hold for the From: domain in either form (the override names it as mailauth wrote it)', () => {
    const e = parseEntry('allow', 'news@bücher.example');
    const auth = forwarded({ fromDomain: 'xn--bcher-kva.example' });
    assert.equal(allowHolds(e, fromOne('news@bücher.example'), '192.0.2.25', auth, false, true).holds, true);
  });

  it('do not hold without the override (DMARC failed, nothing neutralised it)', () => {
    const result = holds(forwarded({ arcOverride: null }));
    assert.equal(result.holds, false);
    assert.match(result.why, /^From: lists-member\.example is not authenticated \(spf=pass dkim=pass \(lists\.example\.org\) dmarc=fail\)$/);
  });

  it('do not hold for another From: domain than the one the override is about', () => {
    // mailauth read From: as attacker.example (the header reads two ways): the override is about that domain.
    const twoWays = holds(forwarded({ fromDomain: 'attacker.example' }));
    assert.equal(twoWays.holds, false);
    assert.match(twoWays.why, /reads two ways/);
    // DMARC judged for another domain than the From: (as for several authors, where the strictest one is kept).
    const other = holds(forwarded({ dmarcDomain: 'attacker.example' }));
    assert.equal(other.holds, false, other.why);
    assert.equal(arcVouch(forwarded({ dmarcDomain: 'attacker.example' }), 'lists-member.example'), undefined);
    // A subdomain is not the domain: relaxed alignment is for DKIM/SPF d=, not for the From: itself.
    assert.equal(arcVouch(forwarded({ dmarcDomain: 'sub.lists-member.example' }), 'lists-member.example'), undefined);
  });

  it('do not hold when From: names two addresses, even if the override is about one of them', () => {
    const identity = identityOf([NEWSLETTER, 'ceo@attacker.example'], 'list-bounces@lists.example.org')!;
    const auth = forwarded({ fromDomain: '', dmarcDomain: 'lists-member.example', authors: ['lists-member.example', 'attacker.example'] });
    assert.equal(holds(auth, identity).holds, false);
    // Even asked about the domain directly, several authors vouch for none.
    assert.equal(arcVouch({ ...auth, fromDomain: 'lists-member.example' }, 'lists-member.example'), undefined);
  });

  it('do not hold when the sealer recorded anything but dmarc=pass (require_upstream_pass = false)', () => {
    for (const upstreamDmarc of ['fail', '']) {
      const result = holds(forwarded({ upstreamDmarc }));
      assert.equal(result.holds, false, upstreamDmarc);
      assert.match(result.why, new RegExp(`trusted ARC sealer lists\\.example\\.org forwarded it but recorded dmarc=${upstreamDmarc || 'nothing'} on receipt$`));
    }
  });

  it('do not hold when the sealer recorded dmarc=pass for another From: domain, or named none', () => {
    // The sealer judged another From: than the one left (the first of two From: headers, the second signed and kept).
    const other = holds(forwarded({ upstreamFrom: 'attacker.example' }));
    assert.equal(other.holds, false, other.why);
    assert.match(other.why, /trusted ARC sealer lists\.example\.org forwarded it but recorded dmarc=pass for From: attacker\.example, not lists-member\.example$/);
    // Its organisational domain, or a subdomain, is not the From: domain either.
    assert.equal(holds(forwarded({ upstreamFrom: 'sub.lists-member.example' })).holds, false);
    assert.equal(arcVouch(forwarded({ fromDomain: 'news.lists-member.example', upstreamFrom: 'lists-member.example' }), 'news.lists-member.example')?.vouches, false);
    const unnamed = holds(forwarded({ upstreamFrom: '' }));
    assert.equal(unnamed.holds, false, unnamed.why);
    assert.match(unnamed.why, /recorded dmarc=pass without naming the From: domain \(no header\.from\)$/);
    // The same domain in another case or form is the same domain.
    assert.equal(holds(forwarded({ upstreamFrom: 'Lists-Member.EXAMPLE.' })).holds, true);
    const e = parseEntry('allow', 'news@bücher.example');
    assert.equal(allowHolds(e, fromOne('news@bücher.example'), '192.0.2.25', forwarded({ fromDomain: 'xn--bcher-kva.example', upstreamFrom: 'bücher.example' }), false, true).holds, true);
  });

  it('do not hold with [lists] trusted_arc = false, and say the sealer would have vouched', () => {
    const result = holds(forwarded(), fromOne(NEWSLETTER), false);
    assert.equal(result.holds, false);
    assert.match(result.why, /DMARC passed at trusted ARC sealer lists\.example\.org, but \[lists\] trusted_arc = false$/);
  });

  it('do not hold for one of our own domains, nor count as authentication for filter-rule conditions', () => {
    assert.equal(allowHolds(entry, fromOne(NEWSLETTER), '192.0.2.25', forwarded(), true, true).holds, false);
    const auth = forwarded();
    assert.equal(fromAuthenticated(auth, 'lists-member.example'), false);
    assert.equal(authHas(auth, 'aligned', 'lists-member.example'), false);
    assert.equal(authHas(auth, 'dmarc', 'lists-member.example'), false);
  });
});

describe('rules: allow entries and a trusted sealer\'s ARC seal, through mailauth against a real DNS server', function () {
  this.timeout(20_000);
  let world: AuthWorld;
  let dir: string;
  let mw: Mailward;

  before(async () => {
    world = await startAuthWorld();
    dir = configDir({ 'mailward.ini': sharedIni(world.dns), 'mailward.auth.ini': '[arc]\ntrusted_sealers = fwd.test\n' });
    mw = createMailward({ configDir: dir, modules: ['builtin', 'auth'] });
  });
  after(async () => {
    await mw?.close();
    await world?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const exampleCom = parseEntry('allow', 'example.com');
  const holdsFor = async (raw: string, from = 'ceo@example.com') => {
    const result = await mw.scan({ ip: IP.forwarder, helo: 'mail.fwd.test', mailFrom: 'list-bounces@fwd.test', rcptTo: ['bob@example.org'], raw, localHostname: 'mx.example.org' });
    const auth = authView(result.context);
    return { auth, ...allowHolds(exampleCom, identityOf([from], 'list-bounces@fwd.test')!, IP.forwarder, auth, false, true) };
  };

  it('an entry holds for a post the sealer saw pass DMARC for that From: domain', async () => {
    const post = await forwardFromExample(world, await sign(message(), 'example.com', 's1', world.keys.example));
    const result = await holdsFor(post, 'alice@example.com');
    assert.equal(result.auth?.dmarc.arcOverride, 'fwd.test');
    assert.equal(result.auth?.arc?.upstreamFrom, 'example.com');
    assert.equal(result.holds, true, result.why);
  });

  it('the newest ARC-Message-Signature\'s unsigned body (l=) reaches the rules', async () => {
    const post = await forwardFromExample(world, await sign(message(), 'example.com', 's1', world.keys.example));
    const verified = await authenticate(post, { ip: IP.forwarder, helo: 'mail.fwd.test', sender: 'list-bounces@fwd.test', mta: 'mx.example.org', resolver: directResolver(world.dns.server) as any, disableBimi: true });
    assert.equal((verified.arc as any)?.status?.result, 'pass');
    assert.equal(summarise(verified, ['fwd.test']).arc.unsignedBody, undefined);
    // mailauth cannot seal with l=; its verifier reports one as it does for DKIM (status.underSized: bytes past l=).
    (verified.arc as any).signature.status.underSized = 312;
    const auth = summarise(verified, ['fwd.test']);
    assert.equal(auth.arc.unsignedBody, 312);
    // auth gives no override for it (arcOverrideRefusal), so an entry does not hold.
    authHits(auth, { ...AUTH_DEFAULTS, trustedSealers: ['fwd.test'] });
    assert.equal(auth.dmarc.arcOverride, undefined);
    const result = allowHolds(exampleCom, identityOf(['alice@example.com'], 'list-bounces@fwd.test')!, IP.forwarder, authView({ notes: { auth } } as any), false, true);
    assert.equal(result.holds, false, result.why);
  });

  it('not when the sealer\'s ARC-Message-Signature does not sign From: (the address could be rewritten under the seal)', async () => {
    // A genuine post of alice@example.com through fwd.test, whose message signature leaves From: out of h=:
    // the seal verifies whatever From: says, so a replayer makes it ceo@example.com (the same domain the sealer's pass names).
    const post = await sign(message(), 'example.com', 's1', world.keys.example);
    const arrival = await authenticate(post, { ip: IP.example, helo: 'mail.example.com', sender: 'alice@example.com', mta: 'mx.fwd.test', resolver: directResolver(world.dns.server) as any, disableBimi: true });
    const found = /Authentication-Results: [^;]+;\s*([\s\S]*)$/.exec(arrival.headers)![1]!.trim();
    const changed = `${post}-- \r\nSent through the fwd.test list\r\n`;
    const seal = await sealMessage(changed, { signingDomain: 'fwd.test', selector: 'arc', privateKey: world.keys.fwd.privateKey, authResults: found, cv: 'none', signTime: new Date(), headerList: 'to:subject:date:message-id' } as any);
    const sealed = `${seal.toString()}${changed}`;
    // auth itself gives no override for such a seal (arcOverrideRefusal): nothing for an entry to hold on.
    const genuine = await holdsFor(sealed, 'alice@example.com');
    assert.equal(genuine.auth?.dmarc.arcOverride, undefined, JSON.stringify(genuine.auth));
    assert.equal(genuine.holds, false, genuine.why);
    const rewritten = await holdsFor(sealed.replace('From: Alice <alice@example.com>', 'From: CEO <ceo@example.com>'));
    assert.equal(rewritten.auth?.dmarc.arcOverride, undefined, JSON.stringify(rewritten.auth));
    assert.equal(rewritten.auth?.arc?.upstreamFrom, 'example.com');
    assert.equal(rewritten.holds, false, rewritten.why);
    assert.match(rewritten.why, /^From: example\.com is not authenticated \(/);
  });

  it('not when the pass the sealer recorded was for another From: domain', async () => {
    // The sealer's ARC-Authentication-Results speak of another From: than the one its seal covers (one it
    // judged before a change, or the last of several dmarc= results, the one mailauth keeps): its seal and
    // message signature verify, and auth does not neutralise the DMARC fail for it.
    const spoof = message({ from: 'CEO <ceo@example.com>', subject: 'Wire transfer' });
    const aboutAnother = (found: string) => `${found.replace(/;\s*dmarc=[^;]*/gi, '')};\r\n dmarc=pass (p=NONE) header.from=attacker.test`;
    const fwd = { sealer: 'fwd.test', key: world.keys.fwd, resolver: directResolver(world.dns.server) };
    const sealed = await forwardWithArc(spoof, { ...fwd, receivedFrom: { ip: IP.attacker, helo: 'mail.attacker.test', sender: 'x@attacker.test' }, recorded: aboutAnother });
    const result = await holdsFor(sealed);
    assert.equal(result.auth?.dmarc.arcOverride, undefined, JSON.stringify(result.auth));
    assert.equal(result.auth?.dmarc.domain, 'example.com');
    assert.equal(result.holds, false, result.why);
    assert.match(result.why, /^From: example\.com is not authenticated \(/);
    // Were an override there anyway (require_upstream_pass = false accepts a sealer's result that names none),
    // the rules' own check still refuses a pass recorded for another From: domain.
    const withOverride = { ...result.auth!, dmarc: { ...result.auth!.dmarc, arcOverride: 'fwd.test' } };
    assert.match(arcVouch(withOverride, 'example.com')!.why, /recorded dmarc=pass for From: attacker\.test, not example\.com$/);
  });
});
