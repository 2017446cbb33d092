import { domainToUnicode } from 'node:url';
import unhomoglyph from 'unhomoglyph';
import { asciiDomain, domainAndParents } from '../../util/domain';

/** A domain is at most 253 characters; a forged header's longer text is cut, not read whole. */
const MAX_DOMAIN = 255;

/** Vertical strokes the confusables table folds to i (the Cyrillic palochka) or leaves alone: on screen they are an l. */
const VERTICAL_STROKES = /[\u01c0\u04c0\u04cf\u05c0\u2223\u23fd\uffe8|]/g;

/**
 * What a domain looks like on screen: accents dropped (é, ä, ł read as e, a,
 * l at a glance), characters that look alike folded to one (Unicode's
 * confusables table: Cyrillic е and Latin e, 1 and l, rn and m), in lower
 * case. Folded again after lower-casing, since an upper-case letter may be
 * confusable only once lowered (M is not, m is: rn).
 */
export function domainSkeleton(written: string): string {
  const text = written
    .slice(0, MAX_DOMAIN)
    .normalize('NFKC')
    .trim()
    .replace(/\.$/, '')
    .replace(VERTICAL_STROKES, 'l')
    .normalize('NFD')
    .replace(/\p{M}/gu, '')
    .replace(/\u0142/g, 'l')
    .replace(/\u0141/g, 'L');
  return unhomoglyph(unhomoglyph(text).toLowerCase());
}

/**
 * Finds cousin domains of our own: a domain that is not local but reads as
 * one on screen (`examp1e.com`, `exarnple.com`, `еxample.com` with a
 * Cyrillic е). Such a domain passes SPF, DKIM and DMARC for whoever registered
 * it, so authentication alone never catches it.
 */
export class LookalikeDomains {
  /** Local domains by skeleton, and the local and ignored domains themselves: looked up, not walked (a hosting MX has thousands). */
  private readonly bySkeleton = new Map<string, string>();
  private readonly known: Set<string>;

  /**
   * @param localDomains our domains, in their ASCII form (a look-alike of a subdomain counts too)
   * @param ignored domains (and their subdomains) that resemble ours and are known good
   */
  constructor(localDomains: string[], ignored: string[]) {
    this.known = new Set([...localDomains, ...ignored]);
    for (const domain of localDomains) {
      if (!domain || /[*?]/.test(domain)) continue;
      const skeleton = domainSkeleton(domainToUnicode(domain) || domain);
      if (!this.bySkeleton.has(skeleton)) this.bySkeleton.set(skeleton, domain);
    }
  }

  /** The local domain `written` imitates, or undefined (it is local, ignored, or looks like none). */
  imitated(written: string): string | undefined {
    if (!this.bySkeleton.size) return undefined;
    const ascii = asciiDomain(written.slice(0, MAX_DOMAIN));
    if (!ascii || !ascii.includes('.')) return undefined;
    if (domainAndParents(ascii).some((d) => this.known.has(d))) return undefined;
    // As a client shows punycode (xn--xample-2of.com), and as written when its case is mixed
    // (exampIe.com: an upper-case I among lower case reads as l; AI.COM is read as ai.com).
    const forms = new Set([domainSkeleton(domainToUnicode(ascii) || ascii)]);
    if (/\p{Lu}/u.test(written) && /\p{Ll}/u.test(written)) forms.add(domainSkeleton(written));
    for (const form of forms) {
      for (const candidate of domainAndParents(form)) {
        const local = this.bySkeleton.get(candidate);
        if (local) return local;
      }
    }
    return undefined;
  }
}
