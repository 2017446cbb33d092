import { getDomain } from 'tldts';
import { asciiDomain, isHostName } from '../../util/domain';

/** Same options mailauth uses for its own DMARC alignment (private suffixes count as boundaries). */
const TLD_OPTIONS = { allowIcannDomains: true, allowPrivateDomains: true };

export function normaliseDomain(domain: string): string {
  return domain.trim().toLowerCase().replace(/\.$/, '');
}

/**
 * The organisational domain (public suffix + one label), or the name itself
 * when there is none, or when it is no host name: tldts reads
 * `bank.example/x.attacker.test` (a name in attacker.test's zone) as a URL of bank.example.
 */
export function orgDomain(domain: string): string {
  const clean = normaliseDomain(domain);
  if (!isHostName(clean)) return clean;
  return getDomain(clean, TLD_OPTIONS) ?? clean;
}

/**
 * DMARC relaxed alignment: both names share an organisational domain. A name
 * that is not a host name aligns with nothing: tldts reads `bank.example/x.attacker.test`
 * as a URL whose organisational domain is bank.example. Compared as A-labels, as
 * mailauth aligns them: a From: domain written as a U-label (bänk.example) aligns
 * with the d= and SPF names its DNS uses (xn--bnk-qla.example).
 */
export function relaxedAligned(a: string, b: string): boolean {
  if (!a || !b || !isHostName(normaliseDomain(a)) || !isHostName(normaliseDomain(b))) return false;
  return orgDomain(asciiDomain(normaliseDomain(a))) === orgDomain(asciiDomain(normaliseDomain(b)));
}

/** `name` is `domain` or one of its subdomains. */
export function withinDomain(name: string, domain: string): boolean {
  const n = normaliseDomain(name);
  const d = normaliseDomain(domain);
  return !!n && !!d && (n === d || n.endsWith(`.${d}`));
}
