import { arcVouch, fromAuthenticated, sameFromDomain, type AuthView } from './auth-view';
import { AddressPattern, addressDomain, asciiDomain, IpSet, looksLikeIpOrCidr } from './match';

/**
 * Allowed and blocked senders. An entry is written the same way in the ini
 * file, on the command line and in the run-time store:
 *
 *   partner.example               the domain, when the From: domain is authenticated
 *   bob@partner.example           that address, likewise
 *   .partner.example              the domain and its subdomains
 *   news@partner.example[192.0.2.0/24]   also when sent from that server (IP or CIDR)
 *   unauthenticated:bob@partner.example  without authentication: spoofable, warned about
 *
 * Block entries are plain patterns: blocking a forged name harms nobody.
 */
export type ListKind = 'allow' | 'block';

export interface ListEntry {
  text: string;
  pattern: AddressPattern;
  unauthenticated: boolean;
  /** Named sending servers: the entry holds for mail from these, authenticated or not. */
  servers?: IpSet;
}

/** Where an entry applies: every recipient, one recipient domain, or one recipient. */
export type Scope = '*' | `domain:${string}` | `user:${string}`;

export function scopeFor(options: { rcpt?: string; domain?: string }): Scope {
  if (options.rcpt && options.domain) throw new Error('give a recipient or a domain, not both');
  if (options.rcpt) {
    if (!/^[^@\s]+@[^@\s]+$/.test(options.rcpt)) throw new Error(`${JSON.stringify(options.rcpt)} is not an address`);
    return `user:${options.rcpt.toLowerCase()}`;
  }
  if (options.domain) {
    if (!/^[a-z0-9.-]+$/i.test(options.domain)) throw new Error(`${JSON.stringify(options.domain)} is not a domain`);
    return `domain:${options.domain.toLowerCase()}`;
  }
  return '*';
}

export function describeScope(scope: string): string {
  if (scope === '*') return 'everyone';
  if (scope.startsWith('domain:')) return `domain ${scope.slice(7)}`;
  return scope.slice(5);
}

/** The scopes whose entries apply to mail for `recipient`, broadest first. */
export function scopesOf(recipient: string): Scope[] {
  const r = recipient.toLowerCase();
  return ['*', `domain:${addressDomain(r)}`, `user:${r}`];
}

export function parseEntry(kind: ListKind, text: string): ListEntry {
  let rest = text.trim();
  if (!rest) throw new Error('empty entry');
  let unauthenticated = false;
  if (/^unauthenticated:/i.test(rest)) {
    if (kind === 'block') throw new Error('"unauthenticated:" only applies to allow entries');
    unauthenticated = true;
    rest = rest.slice('unauthenticated:'.length);
  }
  let servers: IpSet | undefined;
  const m = /^([^[\]]+)\[([^\]]+)\]$/.exec(rest);
  if (m) {
    if (kind === 'block') throw new Error('a sending server ([...]) only applies to allow entries');
    const items = m[2]!.split('|').map((s) => s.trim()).filter(Boolean);
    for (const item of items) {
      if (!looksLikeIpOrCidr(item)) throw new Error(`sending server ${JSON.stringify(item)} must be an IP or CIDR range (host names can be forged in PTR and HELO; use a filter rule for those)`);
    }
    servers = new IpSet(items);
    rest = m[1]!;
  }
  if (/[[\]\s]/.test(rest)) throw new Error(`${JSON.stringify(text)} is not an address, domain or glob`);
  if (matchesEverySender(rest)) throw new Error(`${JSON.stringify(text)} would match every sender`);
  return { text: text.trim(), pattern: new AddressPattern(rest), unauthenticated, servers };
}

/** Nothing but wildcards and dots on both sides of the @ ("*", "*@*", "*@*.*", "*.*"). */
function matchesEverySender(pattern: string): boolean {
  const at = pattern.lastIndexOf('@');
  const local = at < 0 ? '*' : pattern.slice(0, at);
  const domain = pattern.slice(at + 1);
  return /^[*?.]*$/.test(local) && /^[*?.]*$/.test(domain);
}

export interface ScopedEntry {
  scope: string;
  entry: ListEntry;
}

/** What the message offers to be matched against the lists. */
export interface Identity {
  /** The address an allow entry is checked against: the single From: address, else the envelope sender. */
  address: string;
  /** 'from' or 'envelope': which authentication applies. */
  source: 'from' | 'envelope';
  /** Every sender address in the message (all From: addresses and the envelope sender), for block entries. */
  all: string[];
}

export function identityOf(fromAddresses: string[], mailFrom: string | undefined, fromHeaders = fromAddresses.length, headersCut = false): Identity | undefined {
  const all = [...new Set([...fromAddresses, ...(mailFrom ? [mailFrom.toLowerCase()] : [])])];
  // Two From: addresses are a forger's trick: nothing to allow.
  if (fromAddresses.length > 1) return { address: '', source: 'from', all };
  if (fromAddresses.length === 1) return { address: fromAddresses[0]!, source: 'from', all };
  // A From: with no address still shows the reader something (an encoded name, a group's name):
  // allowing it on the envelope's SPF would let anyone on the sender's shared ESP show anything.
  if (fromHeaders > 0) return { address: '', source: 'from', all };
  // Nor when the header block is longer than we read: a From: past it is shown to the reader,
  // and authenticated by mailauth, which reads it whole.
  if (headersCut) return { address: '', source: 'from', all };
  if (mailFrom) return { address: mailFrom.toLowerCase(), source: 'envelope', all };
  return all.length ? { address: '', source: 'from', all } : undefined;
}

export interface HoldResult {
  holds: boolean;
  /** Why it holds or not, in words for the explanation. */
  why: string;
}

/**
 * Does a matching allow entry actually hold for this message? Only when the
 * identity is authenticated (here, or at a trusted ARC sealer that forwarded
 * it, when `trustedArc`), or the mail comes from a named sending server, or
 * the entry says so explicitly; a From: in one of our own domains needs a
 * named sending server whatever the entry says.
 */
export function allowHolds(entry: ListEntry, identity: Identity, ip: string, auth: AuthView | undefined, ownDomain: boolean, trustedArc: boolean): HoldResult {
  if (entry.servers?.has(ip)) return { holds: true, why: `sent from named server ${ip}` };
  if (ownDomain) return { holds: false, why: `${addressDomain(identity.address)} is one of our own domains: a list entry allows it only from a named sending server` };
  if (entry.unauthenticated) return { holds: true, why: 'unauthenticated entry' };
  if (identity.source === 'from') {
    const domain = addressDomain(identity.address);
    if (fromAuthenticated(auth, domain)) return { holds: true, why: authWords(auth!) };
    // A mailing list the operator trusts broke DKIM and SPF; its sealer saw DMARC pass for this From:.
    const arc = arcVouch(auth, domain);
    if (arc?.vouches && trustedArc) return { holds: true, why: `${arc.why} (here: ${authWords(auth!)})` };
    if (arc) {
      const off = arc.vouches ? `${arc.why}, but [lists] trusted_arc = false` : arc.why;
      return { holds: false, why: `From: ${domain} is not authenticated (${authWords(auth!)}); ${off}` };
    }
    if (auth && auth.fromDomain && !sameFromDomain(auth, domain)) {
      return { holds: false, why: `authentication was for From: domain ${auth.fromDomain}, not ${domain}: the From: header reads two ways` };
    }
    return { holds: false, why: auth ? `From: ${domain} is not authenticated (${authWords(auth)})` : 'no authentication results' };
  }
  const domain = addressDomain(identity.address);
  if (auth?.spf.result === 'pass' && auth.spf.domain === domain) return { holds: true, why: `SPF pass for ${domain}` };
  return { holds: false, why: `envelope sender ${domain} is not authenticated by SPF` };
}

function authWords(auth: AuthView): string {
  const parts = [`spf=${auth.spf.result}${auth.spf.aligned ? ' aligned' : ''}`];
  const dkim = auth.dkim.find((d) => d.result === 'pass' && d.aligned) ?? auth.dkim.find((d) => d.result === 'pass') ?? auth.dkim[0];
  const unsigned = dkim?.unsignedBody ? `, l= leaves ${dkim.unsignedBody} bytes of the body unsigned` : '';
  parts.push(dkim ? `dkim=${dkim.result}${dkim.aligned ? ' aligned' : ''} (${dkim.domain}${unsigned})` : 'dkim=none');
  parts.push(`dmarc=${auth.dmarc.result}`);
  return parts.join(' ');
}

/** Warnings for entries that are legal but weaker than they look (logged at load and by the CLI). */
export function entryWarnings(kind: ListKind, entry: ListEntry, where: string, ownDomains: Set<string>): string[] {
  if (kind !== 'allow') return [];
  const out: string[] = [];
  const domain = entry.pattern.domain;
  // A network of prefix 0 is every client of its family: the entry holds for anyone, our own domains too.
  const everyone = entry.servers?.entries.find((e) => /\/0+$/.test(e.trim()) || /^[0:]*:ffff:[^/]*\/0*96$/i.test(e.trim()));
  if (everyone) {
    out.push(`${where}: allow entry ${entry.text} names every address (${everyone}) as its sending server: anyone can forge that sender and be allowed`);
  } else if (domain && isOwnDomain(domain, ownDomains) && !entry.servers) {
    out.push(`${where}: allow entry ${entry.text} names our own domain ${domain}: it never holds without a named sending server ([IP or CIDR])`);
  } else if (entry.unauthenticated) {
    out.push(`${where}: allow entry ${entry.text} is unauthenticated: anyone can forge that sender and be allowed`);
  }
  return out;
}

export function isOwnDomain(domain: string, ownDomains: Set<string>): boolean {
  // Both in ASCII form: a From: written in Unicode must not slip past a punycode entry, or the reverse.
  const d = asciiDomain(domain);
  for (const entry of ownDomains) {
    const own = asciiDomain(entry);
    if (d === own || d.endsWith(`.${own}`)) return true;
  }
  return false;
}
