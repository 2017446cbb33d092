import { asciiDomain, domainAndParents } from '../../util/domain';

export { asciiDomain };
export { IpSet, looksLikeIpOrCidr } from '../../util/ip';

/**
 * The last addresses normalised: one message's sender and From: addresses are
 * matched against every pattern of a rules file, and IDNA mapping is the
 * costly part of each match.
 */
const normalised = new Map<string, string>();
const NORMALISED_KEPT = 64;

/** Lower-case, without angle brackets or a trailing dot, the domain in ASCII. */
export function normaliseAddress(address: string): string {
  let out = normalised.get(address);
  if (out === undefined) {
    const a = address.trim().replace(/^<|>$/g, '').toLowerCase();
    const at = a.lastIndexOf('@');
    out = at < 0 ? a : `${a.slice(0, at + 1)}${asciiDomain(a.slice(at + 1))}`;
    if (normalised.size >= NORMALISED_KEPT) normalised.clear();
    normalised.set(address, out);
  }
  return out;
}

export function addressDomain(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1).replace(/\.$/, '');
}

function escapeRegex(text: string): string {
  return text.replace(/[.+^${}()|[\]\\]/g, '\\$&');
}

/** A `*`/`?` glob as an anchored, case-insensitive RegExp (linear: no nested repetition). */
export function globToRegex(glob: string): RegExp {
  const body = escapeRegex(glob.toLowerCase()).replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 'i');
}

/**
 * One sender or recipient pattern, as operators write them in rules and lists:
 * `bob@example.com` (that address), `example.com` (that domain),
 * `.example.com` or `*.example.com` (the domain and its subdomains),
 * `*@example.com`, `bob@*` or any other glob, and `<>` (the null sender).
 */
export class AddressPattern {
  private readonly test: (address: string) => boolean;
  /**
   * Where the allow/block list indexes file this pattern: `a:ADDRESS`,
   * `d:DOMAIN` or `s:DOMAIN` (and subdomains), found again through
   * addressKeys(); '' for globs and `<>`, which are tried one by one. Only
   * ASCII patterns get a key: keys are stored (SQLite), so they must not
   * depend on the IDNA tables of the Node.js that computed them, and only in
   * ASCII is the glob's case-insensitive match the same as equal lower case.
   * A change of meaning must bump KEY_FORMAT in list-store.ts.
   */
  readonly key: string;

  constructor(readonly text: string) {
    const raw = text.trim().toLowerCase();
    if (!raw) throw new Error('empty address pattern');
    const at = raw.lastIndexOf('@');
    if (raw !== '<>' && at >= 0 && (at === 0 || at === raw.length - 1)) throw new Error(`${JSON.stringify(text)} has nothing ${at === 0 ? 'before' : 'after'} the @`);
    const p = raw === '<>' ? raw : at >= 0 ? `${raw.slice(0, at + 1)}${asciiDomain(raw.slice(at + 1))}` : asciiDomain(raw);
    const exact = (value: string) => /^[\x00-\x7f]*$/.test(raw) && !/[*?]/.test(value);
    this.key = '';
    if (p === '<>') {
      this.test = (a) => a === '';
    } else if (p.includes('@')) {
      const re = globToRegex(p);
      this.test = (a) => a !== '' && re.test(a);
      if (exact(p)) this.key = `a:${p}`;
    } else if (p.startsWith('.') || p.startsWith('*.')) {
      const domain = p.replace(/^\*?\./, '');
      this.test = (a) => {
        const d = addressDomain(a);
        return d === domain || d.endsWith(`.${domain}`);
      };
      if (exact(domain)) this.key = `s:${domain}`;
    } else if (/[*?]/.test(p)) {
      const re = globToRegex(p);
      this.test = (a) => re.test(addressDomain(a));
    } else {
      this.test = (a) => addressDomain(a) === p;
      if (exact(p)) this.key = `d:${p}`;
    }
  }

  matches(address: string | undefined): boolean {
    if (address === undefined) return false;
    return this.test(normaliseAddress(address));
  }

  /** The domain the pattern names, when it names exactly one ('' for globs). */
  get domain(): string {
    const p = this.text.trim().toLowerCase();
    if (p === '<>' || /[*?]/.test(p.replace(/^\*@/, '').replace(/^\*\./, ''))) return '';
    return asciiDomain(p.includes('@') ? addressDomain(p) : p.replace(/^\*?\./, ''));
  }
}

/**
 * Every key under which a pattern matching `address` is filed (see
 * AddressPattern.key): the address, its domain, and the domain and each
 * parent domain for `.domain` patterns.
 */
export function addressKeys(address: string): string[] {
  const a = normaliseAddress(address);
  const d = addressDomain(a);
  return [`a:${a}`, `d:${d}`, ...domainAndParents(d).map((parent) => `s:${parent}`)];
}

/** `name` equals `suffix` or ends with `.suffix` (a leading dot in suffix is optional). */
export function hostHasSuffix(name: string | null | undefined, suffix: string): boolean {
  if (!name) return false;
  const n = name.toLowerCase().replace(/\.$/, '');
  const s = suffix.toLowerCase().replace(/^\.|\.$/g, '');
  return !!s && (n === s || n.endsWith(`.${s}`));
}

