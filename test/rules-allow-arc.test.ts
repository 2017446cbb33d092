// Allow entries and mail a trusted ARC sealer forwarded: the auth module's
// dmarc.arcOverride lets an entry hold only for the From: domain DMARC was
// judged for, with the sealer's recorded dmarc=pass, and says which sealer.
import assert from 'node:assert/strict';
import { arcVouch, authHas, fromAuthenticated, type AuthView } from '../lib/checks/rules/auth-view';
import { allowHolds, identityOf, parseEntry } from '../lib/checks/rules/lists';

/** What the auth module leaves for a list-forwarded message: footer broke DKIM, list server not in SPF. */
function forwarded(over: { fromDomain?: string; dmarcDomain?: string; arcOverride?: string | null; upstreamDmarc?: string; authors?: string[] } = {}): AuthView {
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
    arc: { upstreamDmarc: over.upstreamDmarc ?? 'pass' },
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
