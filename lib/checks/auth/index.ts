import { authenticate, dmarc as verifyDmarc, spf as verifySpf } from 'mailauth';
import { DnsTempError, type DnsResolver } from '../../dns/resolver';
import { asciiAuthResults } from '../../util/auth-results-value';
import { withDeadline } from '../../util/deadline';
import { asciiDomain, isHostName } from '../../util/domain';
import { domainOf, headerValues, withoutFields, withoutHeaders, type MessageContext } from '../../message';
import type { Hit, SymbolDef } from '../../score/types';
import type { Check, CheckModule, Services } from '../types';
import { normaliseDomain, orgDomain, relaxedAligned } from './align';
import { olderSealKeyTempError } from './arc';
import { authorFields, shownAuthorAddresses } from './from';
import { arcOverrideRefusal, severalAuthorsRefusal, AUTH_FIELD_NOTE, AUTH_NOTE, authorOutcomes, authorsDmarc, headerPairs, summarise, unresolvedAlignedAuth, type AuthResults } from './results';

export { authResults, hasAlignedDkim, hasAlignedSpf, unresolvedAlignedAuth, AUTH_NOTE, ownAuthResults, resinfoEntries, type AuthResults, type OwnAuthResults, type DkimSignatureResult, type SpfResult, type DmarcResult, type DmarcPolicy } from './results';
export { orgDomain, relaxedAligned, withinDomain } from './align';

export interface AuthSettings {
  enabled: boolean;
  /** Deadline for the whole authenticate() call (every look-up also has the [dns] deadline). */
  timeoutMs: number;
  /** Skip authenticated submission / relay clients. */
  skipRelaying: boolean;
  /** DKIM and ARC keys shorter than this fail. */
  minKeyBits: number;
  /** ARC sealers (domains, subdomains included) whose chain may neutralise a DMARC fail. */
  trustedSealers: string[];
  /** The trusted sealer must have recorded dmarc=pass when it received the message. */
  requireUpstreamPass: boolean;
  addAuthenticationResults: boolean;
  addReceivedSpf: boolean;
  /** authserv-id of Authentication-Results; empty: the MTA's host name. */
  authservId: string;
}

export const AUTH_DEFAULTS: AuthSettings = {
  enabled: true,
  timeoutMs: 6000,
  skipRelaying: true,
  minKeyBits: 1024,
  trustedSealers: [],
  requireUpstreamPass: true,
  addAuthenticationResults: true,
  addReceivedSpf: true,
  authservId: '',
};

const g = 'auth';
export const authSymbols: SymbolDef[] = [
  { name: 'SPF_PASS', score: -0.5, group: g, description: 'SPF pass: the envelope domain authorises the connecting IP' },
  { name: 'SPF_FAIL', score: 2, group: g, description: 'SPF fail (-all): the envelope domain says this IP must not send its mail' },
  { name: 'SPF_SOFTFAIL', score: 1, group: g, description: 'SPF softfail (~all): the envelope domain does not authorise this IP' },
  { name: 'SPF_NEUTRAL', score: 0.2, group: g, description: 'SPF neutral (?all): the envelope domain makes no assertion about this IP' },
  { name: 'SPF_NONE', score: 0.5, group: g, description: 'The envelope domain (or HELO name for bounces) publishes no SPF record' },
  { name: 'SPF_TEMPERROR', score: 0, group: g, description: 'SPF could not be evaluated because of a DNS failure (never counts against the mail)' },
  { name: 'SPF_PERMERROR', score: 0.5, group: g, description: 'The SPF record is broken (syntax, too many look-ups)' },
  { name: 'DKIM_VALID_ALIGNED', score: -1, group: g, description: 'A DKIM signature verifies and its d= is aligned with the From: domain' },
  { name: 'DKIM_VALID', score: -0.2, group: g, description: 'A DKIM signature verifies, but for a domain other than the From: domain' },
  { name: 'DKIM_INVALID', score: 1, group: g, description: 'A DKIM signature does not verify (body or headers changed, missing or bad key)' },
  { name: 'DKIM_NONE', score: 0, group: g, description: 'The message carries no DKIM signature' },
  { name: 'DKIM_TEMPERROR', score: 0, group: g, description: 'A DKIM key could not be fetched because of a DNS failure' },
  { name: 'DMARC_PASS', score: -1, group: g, description: 'DMARC pass: aligned SPF or DKIM for the From: domain (for each author domain of a From: that names several)' },
  { name: 'DMARC_POLICY_REJECT', score: 8, group: g, description: 'DMARC fail and the From: domain asks receivers to reject (p=reject)' },
  { name: 'DMARC_POLICY_QUARANTINE', score: 5, group: g, description: 'DMARC fail and the From: domain asks receivers to quarantine (p=quarantine)' },
  { name: 'DMARC_POLICY_NONE', score: 1, group: g, description: 'DMARC fail; the From: domain only monitors (p=none)' },
  { name: 'DMARC_NONE', score: 0, group: g, description: 'The From: domain publishes no DMARC record' },
  { name: 'DMARC_TEMPERROR', score: 0, group: g, description: 'DMARC could not be decided because of a DNS failure (its record, or an aligned DKIM key, aligned SPF or a trusted ARC key): no policy applied' },
  { name: 'DMARC_FAIL_ARC_OVERRIDE', score: 0, group: g, description: 'DMARC failed but a trusted ARC sealer ([arc] trusted_sealers) vouches it passed for this From: domain before forwarding, under a seal signing From: and the whole body: no policy symbol' },
  { name: 'ARC_PASS', score: 0, group: g, description: 'The ARC chain validates (credit only through a trusted sealer)' },
  { name: 'ARC_FAIL', score: 0.5, group: g, description: 'The message carries an ARC chain that does not validate' },
  { name: 'ARC_TEMPERROR', score: 0, group: g, description: 'The ARC chain could not be checked because a key look-up failed (DNS)' },
  { name: 'AUTH_RESULTS_FORGED', score: 1, group: g, description: 'The message arrived with an Authentication-Results header in our own name (authserv-id); it was removed' },
  { name: 'AUTH_NONE', score: 1, group: g, description: 'No authentication at all: no SPF record, no DKIM signature, no DMARC record' },
  { name: 'AUTH_TEMPERROR', score: 0, group: g, description: 'Authentication did not finish (deadline or internal error); nothing counted against the mail' },
  { name: 'FROM_MULTIPLE', score: 2, group: g, description: 'The message has several From: headers or addresses (past the 1 MB header index too): no single author domain to authenticate (DMARC is checked for each: the strictest failing policy applies, DMARC_PASS only when all pass)' },
  { name: 'FROM_MISSING', score: 2, group: g, description: 'The message has no From: address (no header anywhere in the header block, an empty group, or only a name, which may show an address as text)' },
];

function parseSettings(reader: import('../../config/reader').IniReader): AuthSettings {
  const main = reader.section('main');
  const skip = reader.section('skip');
  const dkim = reader.section('dkim');
  const arc = reader.section('arc');
  const headers = reader.section('headers');
  const d = AUTH_DEFAULTS;
  return {
    enabled: main.boolean('enabled', d.enabled),
    timeoutMs: main.number('timeout_ms', d.timeoutMs, { min: 100, integer: true }),
    skipRelaying: skip.boolean('relaying', d.skipRelaying),
    minKeyBits: dkim.number('min_key_bits', d.minKeyBits, { min: 512, integer: true }),
    trustedSealers: arc.list('trusted_sealers', d.trustedSealers).map((s) => s.toLowerCase().replace(/\.$/, '')),
    requireUpstreamPass: arc.boolean('require_upstream_pass', d.requireUpstreamPass),
    addAuthenticationResults: headers.boolean('authentication_results', d.addAuthenticationResults),
    addReceivedSpf: headers.boolean('received_spf', d.addReceivedSpf),
    authservId: headers.string('authserv_id', d.authservId),
  };
}

/**
 * Our resolver in the shape mailauth expects from `dns.promises.resolve`:
 * "no records" is an ENOTFOUND error (mailauth counts void look-ups and tells
 * "no key" from a failure by it) and a temporary failure keeps a DNS-like code.
 */
function mailauthResolver(dns: DnsResolver, onTempError: (name: string) => void, cutoff = Infinity, dmarcNames = new Set<string>(), failedBefore?: Set<string>, bindAll = false) {
  return async (name: string, type: string): Promise<any[]> => {
    const key = name.toLowerCase().replace(/\.$/, '');
    // A DKIM or ARC key lives at s._domainkey.<d=>, and d= is the sender's to write. One that is no
    // host name (d=bank.example/x.attacker.test: a name in the attacker's zone) has no key: mailauth's
    // DMARC alignment reads it with tldts as a URL, as bank.example, and would pass DMARC for it.
    if (/(^|\.)_domainkey\./.test(key) && !isHostName(key)) throw Object.assign(new Error(`${type} ${name}: not a host name`), { code: 'ENOTFOUND' });
    // A look-up that failed already for this message (the prefetch's) fails at once: waited for a second
    // time, a spoofer's never-answering key took the time of the look-ups after it (SPF) as well.
    // The author domains' DMARC records have their own half of the deadline (not the cut-off), except in
    // the prefetch (bindAll): it asks for them only as SPF names (include:_dmarc.<an author of the spoofer's>).
    const remembered = `${type.toUpperCase()} ${key}`;
    const dmarcName = dmarcNames.has(key);
    const cutOff = bindAll || !dmarcName;
    if (failedBefore?.has(remembered)) {
      onTempError(key);
      throw Object.assign(new Error(`${type} ${name}: DNS failure (earlier look-up for this message)`), { code: 'ETIMEOUT' });
    }
    let answer: any[];
    try {
      answer = await (cutOff ? beforeCutoff(dns.resolve(name, type), name, cutoff) : dns.resolve(name, type));
    } catch (err) {
      if (err instanceof DnsTempError) {
        // A DMARC record the cut-off ended is not remembered: the DNS did not fail, and DMARC asks for it afresh.
        if (!(dmarcName && err instanceof CutOff)) failedBefore?.add(remembered);
        onTempError(key);
        // Every temporary failure reaches mailauth as ETIMEOUT, one it knows as temporary: its SPF skips an
        // include or redirect whose look-up failed with another code (ESERVFAIL) and goes on to the -all after it.
        throw Object.assign(new Error(err.message), { code: 'ETIMEOUT' });
      }
      throw err;
    }
    if (!answer.length) throw Object.assign(new Error(`${type} ${name}: no records`), { code: 'ENOTFOUND' });
    return answer;
  };
}

class Deadline extends Error {}

/**
 * A look-up for SPF, a DKIM key or an ARC key that ends by `cutoff` (epoch ms)
 * or fails as a time-out. mailauth runs DKIM, SPF and ARC before DMARC: a
 * sender whose own SPF chain answers slowly, each look-up within its time-out,
 * would otherwise use up the whole deadline and leave DMARC unevaluated.
 */
function beforeCutoff<T>(lookup: Promise<T>, name: string, cutoff: number): Promise<T> {
  return cutoff === Infinity ? lookup : withDeadline(lookup, Math.max(0, cutoff - Date.now()), () => new CutOff(name, 'TIMEOUT'));
}

/** A look-up ended by the cut-off rather than failed by the DNS. */
class CutOff extends DnsTempError {}

export interface AuthRun {
  auth: AuthResults;
  /** mailauth's header lines as [name, value] pairs. */
  headers: [string, string][];
}

/** From: addresses beyond which mailauth reads a shortened From: (see forMailauth); at 1,000 its parser still takes milliseconds. */
const MAX_FROM_FOR_MAILAUTH = 1000;
/** DKIM signatures mailauth verifies; the ones below them are left out (see forMailauth). */
const MAX_DKIM_SIGNATURES = 20;

/**
 * The message as mailauth reads it. The address parser mailauth uses copies
 * its list for every address (quadratic): a forged From: of 40,000 addresses
 * held the event loop for 5 s. Such a header gets a From: of its first
 * addresses instead: no real message names a thousand authors, and a
 * signature over the real header then fails to verify, as it should.
 * Exported so that the tests check both bounds without timing mailauth.
 */
export function forMailauth(ctx: MessageContext): Buffer {
  let raw = ctx.raw!;
  // Each signature makes mailauth walk every header (and look up a key): 8,000 took 3 s.
  // Mail carries a few; the newest (topmost) are the ones that matter.
  if (headerValues(ctx, 'dkim-signature').length > MAX_DKIM_SIGNATURES) raw = withoutHeaders(raw, ['dkim-signature'], MAX_DKIM_SIGNATURES);
  // Every From: field, those past the header index too (their first 256 KB): mailauth parses them all.
  // Past that text (unparsed) any number of addresses may follow: they are not counted, so the From:
  // is shortened all the same (to the addresses parsed; the rest is judged by no one, authorsDmarc).
  const fields = authorFields(ctx);
  const addresses = fields.mailboxes.map((m) => m.written);
  if (addresses.length <= MAX_FROM_FOR_MAILAUTH && !fields.unparsed) return raw;
  // Mailboxes with an address only: a name-only one is written '', and mailauth counts no address in it.
  const handed = fields.mailboxes.filter((m) => m.address).slice(0, MAX_AUTHOR_DOMAINS).map((m) => m.written);
  // A From: of more addresses than are handed must not read as a single author to mailauth: it would
  // evaluate DMARC for that one alone, pass it, and write dmarc=pass into Authentication-Results.
  if (handed.length === 1) handed.push(handed[0]!);
  return Buffer.concat([Buffer.from(`From: ${handed.join(', ')}\r\n`, 'utf8'), withoutHeaders(raw, ['from'])]);
}

/** One mailauth authenticate() call for a message; exported for the benchmark. */
export async function runAuthenticate(ctx: MessageContext, settings: AuthSettings, dns: DnsResolver): Promise<AuthRun> {
  const tempErrorNames: string[] = [];
  /** `TYPE name` of the look-ups bound by the cut-off that failed temporarily (mailauthResolver). */
  const failedBefore = new Set<string>();
  const mta = settings.authservId || ctx.localHostname || 'localhost';
  // SPF, DKIM and ARC get the first half of the deadline; what is left is DMARC's, for the
  // author domains' own records only (an SPF record may include names that start with _dmarc.).
  const cutoff = Date.now() + settings.timeoutMs / 2;
  const { addresses: authors, unjudged } = authorAddresses(ctx);
  const dmarcNames = new Set(
    authors.flatMap((address) => {
      const domain = asciiDomain(domainOf(address));
      return domain ? [`_dmarc.${domain}`, `_dmarc.${orgDomain(domain)}`] : [];
    }),
  );
  const options = {
    ip: ctx.ip,
    helo: ctx.helo || undefined,
    // The null sender has no domain: mailauth then checks SPF for postmaster@<HELO name> (RFC 7208 2.4).
    sender: ctx.mailFrom || undefined,
    mta,
    resolver: mailauthResolver(dns, (name) => tempErrorNames.push(name), cutoff, dmarcNames, failedBefore) as any,
    minBitLength: settings.minKeyBits,
    disableBimi: true,
  };
  let raw = forMailauth(ctx);
  // Its failures are remembered (failedBefore), not reported: mailauth's own look-up of the name reports it.
  const prefetchResolver = mailauthResolver(dns, () => {}, cutoff, dmarcNames, failedBefore, true);
  await prefetch(ctx, prefetchResolver, () => verifySpf({ ...options, resolver: prefetchResolver } as any));
  let result = await authenticate(raw, options);
  // mailauth 4.13 passes a signature whose h= leaves From: out, and DMARC on it: anyone holding a
  // message so signed can write any From: of that domain into it. RFC 6376 6.1.1: such a signature
  // fails. It is taken out and the message authenticated again, so that DMARC and
  // Authentication-Results do not count it either (the key look-ups come from the cache).
  // Every From: field: h= signs one instance per `from`, bottom up (RFC 6376 5.4.2), so a From: added
  // above the signed one of a genuine message is unsigned, and it is the one readers show.
  const dkimFields = headerValues(ctx, 'dkim-signature').map((v) => v.replace(/\s+/g, ''));
  // Past the header index too (authorFields): mailauth signs and reads those.
  const fromFields = Math.max(1, authorFields(ctx).fields);
  const fromUnsigned = ((result.dkim?.results ?? []) as any[]).filter(
    (r) => r.status?.result === 'pass' && r.signature && signedFromFields(r.signingHeaders?.headers) < fromFields && dkimFields.some((f) => f.includes(`b=${r.signature}`)),
  );
  if (fromUnsigned.length) {
    raw = withoutSignatures(raw, fromUnsigned.map((r) => String(r.signature ?? '')));
    result = await authenticate(raw, options);
  }
  const olderSeal =
    result.arc && result.arc.status?.result === 'fail' && tempErrorNames.length
      ? await olderSealKeyTempError((result.dkim as any)?.arc, mailauthResolver(dns, (name) => tempErrorNames.push(name), cutoff), tempErrorNames, settings.minKeyBits)
      : undefined;
  const auth = summarise(result, settings.trustedSealers, tempErrorNames, olderSeal, authorFields(ctx).fields);
  for (const r of fromUnsigned) {
    const comment = signedFromFields(r.signingHeaders?.headers) ? `the signature does not cover every From: field (${fromFields}; h=), RFC 6376 5.4.2` : 'the signature does not cover From: (h=), RFC 6376 6.1.1';
    auth.dkim.push({ result: 'permerror', domain: normaliseDomain(String(r.signingDomain ?? '')), selector: String(r.selector ?? ''), aligned: false, comment });
  }
  // mailauth evaluates DMARC only for exactly one From: address; a forger adds a second one to turn it off.
  const headerFrom = result.dkim?.headerFrom;
  if (!(Array.isArray(headerFrom) && headerFrom.length === 1)) {
    if (authors.length) {
      const spfDomains = result.spf && result.spf.status?.result === 'pass' && result.spf.domain ? [result.spf.domain] : [];
      const dkimDomains = (result.dkim?.results ?? [])
        .filter((r: any) => r.status?.result === 'pass')
        .map((r: any) => ({ id: r.id, domain: r.signingDomain, aligned: r.status?.aligned, underSized: r.status?.underSized }));
      const resolver = mailauthResolver(dns, (name) => tempErrorNames.push(name));
      const answers = await Promise.all(
        authors.map(async (address) => ({
          domain: domainOf(address),
          raw: await verifyDmarc({ headerFrom: address, spfDomains, dkimDomains, arcResult: result.arc, resolver } as any),
        })),
      );
      auth.dmarc = authorsDmarc(answers, unjudged, (domain) => !!unresolvedAlignedAuth(auth, domain));
      if (auth.dmarc.result === 'temperror') auth.temporaryError = true;
    }
  }
  if (tempErrorNames.length) auth.temporaryError = true;
  return { auth, headers: headerPairs(result.headers ?? '') };
}

/** ARC key names fetched ahead (prefetch): each ARC set names two; mail carries a few sets. */
const MAX_ARC_KEYS = 20;

/**
 * The DKIM and ARC keys the message names, and SPF, fetched all at once (each by the cut-off) into
 * the resolver's cache before mailauth asks for them. mailauth fetches them one after the other
 * within the cut-off, so a spoofer's own signature on top, whose key never answers, used it up:
 * the key of a signature in the From: domain's name, or of a trusted sealer, asked for after it,
 * or SPF for the envelope domain (mailauth checks it after the keys), failed as a time-out, and a
 * certain DMARC fail read as one that might have passed (DMARC_TEMPERROR). Answers, "no such key"
 * included, are cached; a failed look-up is remembered by `lookup` (mailauthResolver's
 * failedBefore), so that mailauth's own fails at once instead of waiting a second time.
 */
async function prefetch(ctx: MessageContext, lookup: (name: string, type: string) => Promise<any[]>, spf: () => Promise<unknown>): Promise<void> {
  const dkim = headerValues(ctx, 'dkim-signature').slice(0, MAX_DKIM_SIGNATURES);
  const arc = [...headerValues(ctx, 'arc-message-signature'), ...headerValues(ctx, 'arc-seal')];
  const names = new Set<string>();
  for (const [index, header] of [...dkim, ...arc].entries()) {
    if (index >= dkim.length + MAX_ARC_KEYS) break;
    const name = `${tagValue(header, 's')}._domainkey.${tagValue(header, 'd')}`.toLowerCase();
    if (isHostName(name)) names.add(name);
  }
  await Promise.allSettled([spf(), ...[...names].map((name) => lookup(name, 'TXT'))]);
}

/** How many From: fields the header lines a signature hashed (mailauth's signingHeaders.headers) include, names read as mailauth reads them. */
function signedFromFields(lines: unknown): number {
  return Array.isArray(lines) ? lines.filter((line) => /^[^:]+/.exec(String(line))?.[0].trim().toLowerCase() === 'from').length : 0;
}

/** The message without the DKIM-Signature fields whose b= is one of `signatures`, split into fields as mailauth splits them. */
function withoutSignatures(raw: Buffer, signatures: string[]): Buffer {
  const wanted = signatures.filter(Boolean);
  if (!wanted.length) return raw;
  return withoutFields(raw, (field, text) => {
    if (field.name.toLowerCase() !== 'dkim-signature') return false;
    const flat = text.replace(/\s+/g, '');
    return wanted.some((b) => flat.includes(`b=${b}`));
  });
}

/** At most this many author domains get a DMARC look-up: a forged From: may name thousands. */
const MAX_AUTHOR_DOMAINS = 10;

/**
 * One address per author domain, the first ones in message order: From:'s addresses (past the
 * header index too: mailauth reads those), or with none the addresses its text shows.
 */
function authorAddresses(ctx: MessageContext): { addresses: string[]; unjudged: string } {
  const fields = authorFields(ctx);
  const written = fields.mailboxes.map((m) => m.address).filter((a) => a.includes('@'));
  const byDomain = new Map<string, string>();
  const skipped = new Set<string>();
  for (const address of written.length ? written : shownAuthorAddresses(ctx, fields)) {
    const domain = domainOf(address);
    if (byDomain.has(domain)) continue;
    // Counted (not judged) past the limit, to say how many: a few more than the limit are enough to say "not all".
    if (byDomain.size >= MAX_AUTHOR_DOMAINS) {
      skipped.add(domain);
      if (skipped.size > MAX_AUTHOR_DOMAINS) break;
      continue;
    }
    byDomain.set(domain, address);
  }
  // Which authors no DMARC look-up judged: their message never passes DMARC as a whole (authorsDmarc).
  const unjudged = [
    ...(skipped.size ? [`${skipped.size > MAX_AUTHOR_DOMAINS ? `over ${MAX_AUTHOR_DOMAINS}` : skipped.size} more author domain${skipped.size === 1 ? '' : 's'} not judged (the first ${MAX_AUTHOR_DOMAINS} are)`] : []),
    ...(fields.unparsed ? ['From: text past the first 1 MB of header beyond what is parsed not judged'] : []),
  ].join('; ');
  return { addresses: [...byDomain.values()], unjudged };
}

/**
 * RFC 5322 wants exactly one From: header with one address (several only with a Sender:). Counted
 * over the whole header: a From: past the 1 MB header index is one (authorFields).
 */
function fromHeaderHits(ctx: MessageContext): Hit[] {
  const fields = authorFields(ctx);
  const headers = fields.fields;
  const past = headers - headerValues(ctx, 'from').length;
  const where = past > 0 ? `, ${past === headers ? (headers === 1 ? 'it is' : 'all are') : `${past} of them`} past the first 1 MB of header` : '';
  const addresses = [...new Set(fields.mailboxes.map((m) => m.address).filter(Boolean))];
  if (headers > 1 || addresses.length > 1) {
    const what = headers > 1 ? `${headers} From: headers` : `From: has ${addresses.length}${fields.unparsed ? ' or more' : ''} addresses`;
    const shown = addresses.length > 10 ? `${addresses.slice(0, 10).join(', ')} and ${addresses.length - 10} more` : addresses.join(', ');
    return [{ name: 'FROM_MULTIPLE', detail: `${what}${addresses.length ? ` (${shown})` : ''}${where}` }];
  }
  if (addresses.length) return [];
  if (!headers) return [{ name: 'FROM_MISSING', detail: 'no From: header' }];
  const shown = shownAuthorAddresses(ctx, fields);
  return [{ name: 'FROM_MISSING', detail: `From: has no address${where}${shown.length ? `, but its text shows ${shown.join(', ')}` : ''}` }];
}

function spfHits(auth: AuthResults): Hit[] {
  const { result, domain, comment } = auth.spf;
  return [{ name: `SPF_${result.toUpperCase()}`, detail: `${domain || '(no domain)'}${comment ? `: ${comment}` : ''}` }];
}

function dkimHits(auth: AuthResults): Hit[] {
  if (!auth.dkim.length) return [{ name: 'DKIM_NONE', detail: 'no DKIM-Signature header' }];
  return auth.dkim.map((sig) => {
    const id = `d=${sig.domain} s=${sig.selector}`;
    if (sig.result === 'pass') return sig.aligned ? { name: 'DKIM_VALID_ALIGNED', detail: id } : { name: 'DKIM_VALID', detail: `${id} (From: is ${auth.fromDomain || 'not a single address'})` };
    if (sig.result === 'temperror') return { name: 'DKIM_TEMPERROR', detail: `${id}: ${sig.comment}` };
    return { name: 'DKIM_INVALID', detail: `${id}: ${sig.result}${sig.comment ? ` (${sig.comment})` : ''}` };
  });
}

function dmarcHits(auth: AuthResults, settings: AuthSettings): Hit[] {
  const { dmarc, arc } = auth;
  const domain = dmarc.domain || '(no single From: domain)';
  // Several author domains: say so, and what each one's own check gave (RFC 7489 6.6.1).
  const several = !!dmarc.authors && dmarc.authors.length > 1;
  const outcomes = several ? `From: names ${dmarc.authors!.length} domains (${dmarc.authorResults?.length ? authorOutcomes(dmarc) : dmarc.authors!.join(', ')})` : '';
  const of = several ? `${outcomes}, each judged; ` : '';
  switch (dmarc.result) {
    case 'pass':
      if (several) return [{ name: 'DMARC_PASS', detail: `${outcomes}: every author domain passes DMARC` }];
      // Several addresses of one domain: that domain passes, though there is no single author (fromDomain '').
      if (!dmarc.domain && dmarc.authors?.length === 1) return [{ name: 'DMARC_PASS', detail: `From: ${dmarc.authors[0]} for each of its several addresses (p=${dmarc.policy || 'none'})` }];
      return [{ name: 'DMARC_PASS', detail: `From: ${domain} (p=${dmarc.policy || 'none'})` }];
    case 'temperror': {
      // A trusted chain that verifies but would not override a fail is no reason for later checks to wait on DMARC.
      const refused = arc.result === 'pass' && arc.trusted ? arcOverrideRefusal(auth, settings.requireUpstreamPass) : '';
      if (refused) dmarc.arcDeclined = arc.sealer;
      return [{ name: 'DMARC_TEMPERROR', detail: `${of}From: ${domain}: DNS failure${refused ? `; ${refused}` : ''}` }];
    }
    case 'none': {
      if (dmarc.unjudged) {
        const unrecorded = (dmarc.authorResults ?? []).filter((a) => a.result === 'none').map((a) => a.domain);
        const also = unrecorded.length ? `; ${unrecorded.join(', ')} publish${unrecorded.length === 1 ? 'es' : ''} no DMARC record` : '';
        return [{ name: 'DMARC_NONE', detail: `${of}${dmarc.unjudged}${also}, so the message does not pass as a whole` }];
      }
      if (several) {
        const unrecorded = (dmarc.authorResults ?? []).filter((a) => a.result === 'none').map((a) => a.domain);
        return [{ name: 'DMARC_NONE', detail: `${of}${unrecorded.join(', ') || 'an author domain'} publish${unrecorded.length === 1 ? 'es' : ''} no DMARC record, so the message does not pass as a whole` }];
      }
      const only = dmarc.domain || (dmarc.authors?.length === 1 ? dmarc.authors[0] : '');
      return only ? [{ name: 'DMARC_NONE', detail: `${only} publishes no DMARC record` }] : [];
    }
    case 'fail': {
      const policy = dmarc.policy || 'none';
      const failed = `${of}From: ${domain} fails DMARC (no aligned SPF pass or DKIM signature), policy p=${policy}`;
      const unchecked = unresolvedAlignedAuth(auth, dmarc.domain);
      if (unchecked) return [{ name: 'DMARC_TEMPERROR', detail: `${failed}; ${unchecked} could not be checked (DNS failure) and might have passed, so the policy is not applied` }];
      // A certain fail applies; other authors' fails that a DNS failure may have caused are named (authorsDmarc put them after it).
      const why = `${failed}${several ? undecidedAuthors(auth) : ''}`;
      // A dependency failure must not turn into a rejection: the sealer we
      // trust may have vouched for this message, we could not tell.
      if (arc.result === 'temperror' && arc.trusted) {
        // What the sealer recorded is known only when its own seal verified (an older hop's key
        // failed): an override it would not give either way is no reason to hold the policy back.
        // Recording nothing is no pass either (as for a chain that verifies, below): a spoofer
        // adding a hop of its own whose key never answers must not get more than without it.
        // Nor is a From: of several author domains, which no seal overrides, verified or not.
        const refused = arc.sealVerified ? arcOverrideRefusal(auth, settings.requireUpstreamPass) : severalAuthorsRefusal(auth);
        if (refused) {
          dmarc.arcDeclined = arc.sealer;
          return policyHits(policy, dmarc.pct, `${why}; ${refused} (its chain could not be checked: ${arc.comment})`);
        }
        return [{ name: 'DMARC_TEMPERROR', detail: `${why}; the chain of trusted ARC sealer ${arc.sealer} could not be checked (DNS failure), so the policy is not applied` }];
      }
      if (arc.result === 'pass' && arc.trusted) {
        const refused = arcOverrideRefusal(auth, settings.requireUpstreamPass);
        if (!refused) {
          dmarc.arcOverride = arc.sealer;
          return [
            {
              name: 'DMARC_FAIL_ARC_OVERRIDE',
              // The From: domain the sealer's result names, for the operator (release-approve decides from heldAuth's data;
              // it reads this wording only for records held before that was kept).
              detail: `${why}, neutralised: forwarded through trusted ARC sealer ${arc.sealer} (i=${arc.instance}) which recorded dmarc=${arc.upstreamDmarc || 'unknown'}${arc.upstreamFrom ? ` (header.from=${arc.upstreamFrom})` : ''} on receipt`,
            },
          ];
        }
        // The policy applies as without the sealer (pct= included); the detail says why its seal was not honoured.
        dmarc.arcDeclined = arc.sealer;
        return policyHits(policy, dmarc.pct, `${why}; ${refused}`);
      }
      return policyHits(policy, dmarc.pct, why);
    }
    default:
      return [];
  }
}

/** The other failing authors of a several-author From: whose fail a DNS failure may have caused, for the policy symbol's detail. */
function undecidedAuthors(auth: AuthResults): string {
  return (auth.dmarc.authorResults ?? [])
    .filter((a) => a.result === 'fail' && a.domain !== auth.dmarc.domain)
    .map((a) => ({ domain: a.domain, unchecked: unresolvedAlignedAuth(auth, a.domain) }))
    .filter((a) => a.unchecked)
    .map((a) => `; ${a.domain}'s fail is not final: ${a.unchecked} could not be checked (DNS failure)`)
    .join('');
}

function arcHits(auth: AuthResults): Hit[] {
  const { arc } = auth;
  const comment = arc.comment;
  if (arc.result === 'pass') return [{ name: 'ARC_PASS', detail: `sealed by ${arc.sealer} (i=${arc.instance})${arc.trusted ? ', a trusted sealer' : ''}` }];
  if (arc.result === 'temperror') return [{ name: 'ARC_TEMPERROR', detail: `sealer ${arc.sealer || '(unknown)'}: ${comment}` }];
  if (arc.result === 'fail') {
    return [{ name: 'ARC_FAIL', detail: `${arc.sealer ? `sealer ${arc.sealer}: ` : ''}${comment || 'chain does not validate'}` }];
  }
  return [];
}

/** Symbols for one authentication result. */
export function authHits(auth: AuthResults, settings: AuthSettings): Hit[] {
  const hits = [...spfHits(auth), ...dkimHits(auth), ...dmarcHits(auth, settings), ...arcHits(auth)];
  if (auth.spf.result === 'none' && !auth.dkim.length && auth.dmarc.result === 'none') {
    hits.push({ name: 'AUTH_NONE', detail: `${auth.fromDomain || auth.spf.domain || 'sender'}: no SPF, DKIM or DMARC` });
  }
  return hits;
}

/** A tag's value in a DKIM-Signature or ARC-Seal header (`d`, `s`, `i`), white space of folding removed. */
function tagValue(header: string, tag: string): string {
  const match = new RegExp(`(?:^|;)\\s*${tag}\\s*=([^;]*)`, 'i').exec(header);
  return match ? match[1]!.replace(/\s+/g, '') : '';
}

/**
 * What later checks see when authentication could not finish: a temporary
 * error for each identifier the message carries (its envelope domain, each
 * signature's d=; an ARC chain, unverified, is not trusted), and for nothing else. A spoofer
 * whose own DNS answers slowly enough to pass the deadline then has no aligned
 * look-up pending: antispoof and DMARC-dependent rules still judge the claim.
 */
function unknownResults(ctx: MessageContext): AuthResults {
  const authors = authorFields(ctx).mailboxes.filter((m) => m.address.includes('@'));
  const fromDomain = authors.length === 1 ? normaliseDomain(domainOf(authors[0]!.address)) : '';
  // The null sender's SPF identity is the HELO name (RFC 7208 2.4), unless it is an address literal.
  const heloName = ctx.helo && !/^\[|^[\d.]+$|:/.test(ctx.helo) ? ctx.helo : '';
  const spfDomain = normaliseDomain(ctx.mailFrom ? domainOf(ctx.mailFrom) : heloName);
  const dkim = headerValues(ctx, 'dkim-signature')
    .slice(0, MAX_DKIM_SIGNATURES)
    .map((h) => ({ domain: normaliseDomain(tagValue(h, 'd')), selector: tagValue(h, 's') }))
    .filter((d) => d.domain)
    .map((d) => ({ ...d, result: 'temperror', aligned: !!fromDomain && relaxedAligned(d.domain, fromDomain), comment: 'authentication did not finish' }));
  const seals = headerValues(ctx, 'arc-seal').map((h) => ({ instance: Number(tagValue(h, 'i')) || 0, sealer: normaliseDomain(tagValue(h, 'd')) }));
  const newest = seals.sort((a, b) => b.instance - a.instance)[0];
  return {
    fromDomain,
    spf: { result: 'temperror', domain: spfDomain, aligned: false, comment: 'authentication did not finish' },
    dkim,
    dmarc: { result: 'temperror', policy: '', domain: fromDomain },
    arc: newest
      ? {
          result: 'temperror',
          sealer: newest.sealer,
          instance: newest.instance,
          // Not verified, so not trusted: the seal's d= is the sender's to write.
          trusted: false,
          upstreamDmarc: '',
          comment: 'authentication did not finish',
        }
      : { result: 'none', sealer: '', instance: 0, trusted: false, upstreamDmarc: '', comment: '' },
    temporaryError: true,
    incomplete: true,
  };
}

/**
 * RFC 8601 section 5: an Authentication-Results header in our own name that
 * came with the message was written by someone else, and downstream filters
 * and mail clients would trust it. Remove those (keeping other hosts' results).
 */
function dropForgedResults(ctx: MessageContext, authservId: string): Hit[] {
  const all = headerValues(ctx, 'authentication-results');
  // Our name as configured and as our field carries it (a U-label host name as its A-label, asciiAuthResults):
  // downstream reads either as ours.
  const names = new Set([authservId, asciiAuthResults(authservId)].map((name) => name.toLowerCase()));
  const ours = (value: string) => names.has((value.split(';')[0] ?? '').trim().split(/\s+/)[0]?.toLowerCase() ?? '');
  const forged = all.filter(ours);
  if (!forged.length) return [];
  ctx.headerChanges.remove.push('Authentication-Results');
  for (const value of all.filter((v) => !ours(v))) {
    ctx.headerChanges.add.push(['Authentication-Results', value]);
    ctx.headerChanges.putBack.push(['Authentication-Results', value]);
  }
  return [{ name: 'AUTH_RESULTS_FORGED', detail: `${forged.length} header${forged.length > 1 ? 's' : ''} claiming ${authservId} removed` }];
}

const LOWER_POLICY: Record<string, string> = { reject: 'quarantine', quarantine: 'none' };

/**
 * RFC 7489 pct=: the policy is meant for pct% of failing mail and the next
 * lower one for the rest. A score has no sampling, so both symbols carry
 * their share of the weight: the expected policy, explained.
 */
function policyHits(policy: string, pct: number | undefined, why: string): Hit[] {
  const name = `DMARC_POLICY_${policy.toUpperCase()}`;
  const lower = LOWER_POLICY[policy];
  if (pct === undefined || pct >= 100 || !lower) return [{ name, detail: why }];
  const share = pct / 100;
  const hits: Hit[] = [];
  if (share > 0) hits.push({ name, factor: share, detail: `${why}, applied to pct=${pct}% of failing mail` });
  hits.push({ name: `DMARC_POLICY_${lower.toUpperCase()}`, factor: 1 - share, detail: `${why}, pct=${pct}: p=${lower} for the other ${100 - pct}%` });
  return hits;
}

function createAuthCheck(settings: AuthSettings, services: Services): Check {
  return {
    name: 'auth.authenticate',
    phase: 'data',
    async run(ctx) {
      if (!ctx.raw) return [];
      if (settings.skipRelaying && ctx.relaying) return [];
      // Forged results in our name go whether or not authentication finishes.
      const forged = dropForgedResults(ctx, settings.authservId || ctx.localHostname || 'localhost');
      let run: AuthRun;
      try {
        run = await withDeadline(runAuthenticate(ctx, settings, services.dns), settings.timeoutMs, () => new Deadline(`authentication took longer than ${settings.timeoutMs} ms`));
      } catch (err) {
        ctx.notes[AUTH_NOTE] = unknownResults(ctx);
        const message = err instanceof Error ? err.message : String(err);
        if (!(err instanceof Deadline)) services.log.warn(`mailward auth: authenticate() failed: ${message}`);
        return [...forged, ...fromHeaderHits(ctx), { name: 'AUTH_TEMPERROR', detail: message }];
      }
      ctx.notes[AUTH_NOTE] = run.auth;
      for (const [name, raw] of run.headers) {
        const key = name.toLowerCase();
        // mailauth writes an SMTPUTF8 sender's address, a U-label domain, as UTF-8; the field is written
        // in ASCII, never RFC 2047-encoded, so that its readers can parse it (asciiAuthResults).
        const value = key === 'authentication-results' ? asciiAuthResults(raw) : raw;
        if (key === 'authentication-results' && settings.addAuthenticationResults) {
          ctx.headerChanges.add.push([name, value]);
          ctx.notes[AUTH_FIELD_NOTE] = { authservId: settings.authservId || ctx.localHostname || 'localhost', value };
        }
        if (key === 'received-spf' && settings.addReceivedSpf) ctx.headerChanges.add.push([name, value]);
      }
      return [...forged, ...fromHeaderHits(ctx), ...authHits(run.auth, settings)];
    },
  };
}

export const authModule: CheckModule<AuthSettings> = {
  name: 'auth',
  file: 'mailward.auth.ini',
  symbols: authSymbols,
  parseSettings(reader) {
    return { settings: parseSettings(reader) };
  },
  createChecks(settings, services) {
    return settings.enabled ? [createAuthCheck(settings, services)] : [];
  },
};
