import { confirmedNames, pendingCouldMatch, type ConfirmedNames } from '../../dns/fcrdns';
import type { DnsResolver } from '../../dns/resolver';
import { addressesInText, domainOf, fieldsPastIndex, PAST_INDEX_BUDGET, withinPastBudget, fromMailboxes, headerMailboxes, headerValues, mailboxesOf, shownFromAddresses, shownFromAddressesWith, type MessageContext } from '../../message';
import { bodyTexts, hostOf, messageParts, urlsIn } from '../content/parts';
import type { Ledger } from '../../score/ledger';
import type { Hit, SymbolDef } from '../../score/types';
import { relaxedAligned, withinDomain } from '../auth/align';
import { alignedDkimTempError, alignedSpfTempError, authResults, hasAlignedDkim, hasAlignedSpf, sealerRecordedPass, type AuthResults } from '../auth/results';
import { asciiDomain } from '../../util/domain';
import type { Check, CheckModule, Services } from '../types';
import { LookalikeDomains } from './lookalike';
import { domainsWritten } from './written';
import { normaliseName, parseAntispoofSettings, visibleText, type AntispoofSettings, type SenderPolicy, type TrustedService } from './settings';

export { ANTISPOOF_DEFAULTS, IpSet, type AntispoofSettings, type SenderPolicy, type TrustedService } from './settings';

const g = 'antispoof';
export const antispoofSymbols: SymbolDef[] = [
  { name: 'SPOOF_LOCAL_DOMAIN', score: 12, group: g, description: 'From: or MAIL FROM claims a local domain, but the sending server is not authorised for it (no listed IP/PTR, no aligned DKIM/SPF, no trusted service)' },
  { name: 'DISPLAY_NAME_SPOOF', score: 4, group: g, description: "An external sender uses a local person's name, or a local address or a look-alike of one, as the From: display name" },
  { name: 'LOOKALIKE_LOCAL_LINK', score: 5, group: g, description: 'A link in the message goes to a domain that reads as a local one (https://examp1e.com/login): a copy of our own sign-in page' },
  {
    name: 'TYPO_LOCAL_DOMAIN',
    score: 7.5,
    group: g,
    description:
      'From:, Reply-To:, Sender: or MAIL FROM uses a domain one typing slip from a local one (exmaple.com, examplle.com) or a .com, .net or .org name of ours under a slip or extension of that suffix (example.co, example.com.mx): a look-alike of the kind fraud registers',
  },
  { name: 'LOOKALIKE_LOCAL_DOMAIN', score: 8, group: g, description: 'From:, Reply-To:, Sender: or MAIL FROM uses a domain that reads as a local one on screen (examp1e.com, exarnple.com, a Cyrillic е): a cousin domain authenticates for whoever registered it' },
  { name: 'LOCAL_DOMAIN_AUTHORISED', score: 0, group: g, description: 'Mail claiming a local domain comes from an authorised sender (the detail says which rule)' },
  { name: 'LOCAL_DOMAIN_TRUSTED_SERVICE', score: 0, group: g, description: 'Mail claiming a local domain matches every condition of a [service:NAME] section' },
  { name: 'ANTISPOOF_TEMPERROR', score: 0, group: g, description: 'Whether the sender is authorised could not be decided because of a DNS failure' },
];

interface Claim {
  source: 'From:' | 'Sender:' | 'MAIL FROM';
  address: string;
  /** How the address was found, when it is not a plain mailbox ("shown as text, From: has no address"). */
  how?: string;
  /** The local domain claimed (the entry from the settings). */
  domain: string;
  /** Other addresses of the same source, local domain and way of finding, judged by this claim. */
  others?: number;
}

/** Per-message evidence, looked up once and shared by every claim. */
class Evidence {
  constructor(
    readonly ctx: MessageContext,
    readonly dns: DnsResolver,
    readonly auth: AuthResults | undefined,
  ) {}

  /** Forward-confirmed reverse DNS names of the client (a PTR alone can be set by anyone owning the IP). */
  confirmedNames(): Promise<ConfirmedNames> {
    return confirmedNames(this.ctx, this.ctx.ip, this.dns);
  }

  received(): string[] {
    return headerValues(this.ctx, 'received').map((v) => v.toLowerCase());
  }
}

function policyFor(settings: AntispoofSettings, domain: string): SenderPolicy {
  return settings.perDomain.get(domain) ?? settings.authorised;
}

function localDomainOf(settings: AntispoofSettings, written: string): string | undefined {
  // bücher.test, xn--bcher-kva.test and a fullwidth ｅｘａｍｐｌｅ.com are the domains they map to.
  const domain = asciiDomain(written);
  if (!domain) return undefined;
  // The most specific entry wins (a [domain:shop.example.com] over example.com).
  return settings.domains.filter((d) => withinDomain(domain, d)).sort((a, b) => b.length - a.length)[0];
}

async function ptrMatch(evidence: Evidence, suffixes: string[]): Promise<{ name?: string; tempError: boolean }> {
  if (!suffixes.length) return { tempError: false };
  const confirmed = await evidence.confirmedNames();
  const wanted = (n: string) => suffixes.some((s) => withinDomain(n, s));
  const name = confirmed.names.find(wanted);
  return { name, tempError: !name && pendingCouldMatch(confirmed, wanted) };
}

/** Why the server may send for the claim, or undefined. */
async function authorisedBy(claim: Claim, policy: SenderPolicy, evidence: Evidence): Promise<{ reason?: string; byServer?: boolean; tempError: boolean }> {
  const ip = evidence.ctx.ip;
  if (policy.ips.has(ip)) return { reason: `${ip} is a listed sending server for ${claim.domain}`, byServer: true, tempError: false };
  const ptr = await ptrMatch(evidence, policy.ptrSuffixes);
  if (ptr.name) return { reason: `${ip} is ${ptr.name} (forward-confirmed), within a listed PTR suffix for ${claim.domain}`, byServer: true, tempError: false };
  const auth = evidence.auth;
  if (auth && policy.alignedDkim && hasAlignedDkim(auth, claim.domain)) return { reason: `aligned DKIM signature for ${claim.domain}`, tempError: ptr.tempError };
  if (auth && policy.alignedSpf && hasAlignedSpf(auth, claim.domain)) return { reason: `SPF pass for ${auth.spf.domain}, aligned with ${claim.domain}`, tempError: ptr.tempError };
  // Mailing lists break DKIM and SPF; a trusted ARC sealer that saw DMARC pass for this From: domain vouches for it.
  // auth sets arcOverride only for a seal that signs From: and the whole body, and whose pass names this
  // very From: domain (arcOverrideRefusal): a spoof replayed under another message's seal does not get it.
  // With auth's require_upstream_pass = false it is set without that pass: sealerRecordedPass asks for it here.
  if (auth && policy.trustedArc && claim.source === 'From:' && auth.dmarc.arcOverride && sealerRecordedPass(auth) && relaxedAligned(auth.dmarc.domain, claim.domain)) {
    return { reason: `forwarded by trusted ARC sealer ${auth.dmarc.arcOverride}, which saw DMARC pass for ${claim.domain}`, tempError: ptr.tempError };
  }
  return { tempError: ptr.tempError };
}

/** The conditions of a service that do not hold (empty: it matches). */
async function unmetConditions(service: TrustedService, evidence: Evidence): Promise<{ unmet: string[]; tempError: boolean }> {
  const unmet: string[] = [];
  let tempError = false;
  const received = evidence.received();
  for (const text of service.receivedContains) {
    if (!received.some((r) => r.includes(text))) unmet.push(`no Received: header contains "${text}"`);
  }
  if (service.ips.size && !service.ips.has(evidence.ctx.ip)) unmet.push(`${evidence.ctx.ip} is not one of its IPs`);
  if (service.ptrSuffixes.length) {
    const ptr = await ptrMatch(evidence, service.ptrSuffixes);
    tempError ||= ptr.tempError;
    if (!ptr.name) unmet.push(`${evidence.ctx.ip} has no forward-confirmed PTR within ${service.ptrSuffixes.join(', ')}`);
  }
  if (service.dkimDomains.length) {
    const byService = (d: { domain: string }) => service.dkimDomains.some((s) => withinDomain(d.domain, s));
    const signed = evidence.auth?.dkim.some((d) => d.result === 'pass' && byService(d));
    if (!signed) unmet.push(`no valid DKIM signature by ${service.dkimDomains.join(', ')}`);
    tempError ||= !signed && !!evidence.auth?.dkim.some((d) => d.result === 'temperror' && byService(d));
  }
  return { unmet, tempError };
}

/**
 * Whether a DNS failure during authentication could have authorised the claim.
 * Only those count: a spoofer who signs with a domain of its own whose key
 * never answers, or whose SPF chain answers slowly enough to pass the auth
 * deadline, must not turn SPOOF_LOCAL_DOMAIN into a temporary error.
 */
function authUndecided(claim: Claim, policy: SenderPolicy, auth: AuthResults | undefined): boolean {
  if (!auth) return false;
  if (policy.alignedDkim && alignedDkimTempError(auth.dkim, claim.domain)) return true;
  if (policy.alignedSpf && alignedSpfTempError(auth.spf, claim.domain)) return true;
  // A sealer whose verified seal records that DMARC failed on receipt vouches for nothing, whatever its chain below.
  // Nor does one when DMARC here neither failed nor could not be evaluated: its override (arcOverride)
  // only ever neutralises a DMARC fail, so a domain without DMARC gets none through a chain that
  // verifies, and a spoofer must not get more by adding a hop of its own whose key never answers.
  const overridable = auth.dmarc.result === 'fail' || auth.dmarc.result === 'temperror';
  // Once the newest seal verified, what it recorded is known: without a pass for this From: it would not authorise.
  const sealKnown = auth.arc.result === 'pass' || !!auth.arc.sealVerified;
  const arcCouldVouch =
    auth.arc.trusted && overridable && !auth.dmarc.arcDeclined && (!sealKnown || sealerRecordedPass(auth)) && (auth.arc.result === 'temperror' || (auth.arc.result === 'pass' && auth.dmarc.result === 'temperror'));
  return policy.trustedArc && claim.source === 'From:' && arcCouldVouch;
}

/** A claim's verdict; `byServer`: the operator named this server (IP, PTR, trusted service) for the domain. */
type ClaimHit = Hit & { byServer?: boolean };

async function checkClaim(claim: Claim, settings: AntispoofSettings, evidence: Evidence): Promise<ClaimHit> {
  const more = claim.others ? ` (and ${claim.others} more ${claim.source} address${claim.others === 1 ? '' : 'es'} at it)` : '';
  const who = `${claim.source} ${claim.address}${more}${claim.how ? ` (${claim.how})` : ''} claims local domain ${claim.domain}`;
  const authorised = await authorisedBy(claim, policyFor(settings, claim.domain), evidence);
  if (authorised.reason) return { name: 'LOCAL_DOMAIN_AUTHORISED', detail: `${who}: ${authorised.reason}`, byServer: authorised.byServer };

  let tempError = authorised.tempError;
  const nearMisses: string[] = [];
  for (const service of settings.services.filter((s) => s.domains.some((d) => withinDomain(claim.domain, d)))) {
    const { unmet, tempError: serviceTemp } = await unmetConditions(service, evidence);
    tempError ||= serviceTemp;
    if (!unmet.length) {
      // Received: lines are written by the sender: a service known by them alone vouches for
      // no DNS policy. One named by its addresses, PTR or DKIM domain does.
      const byServer = service.ips.size > 0 || service.ptrSuffixes.length > 0 || service.dkimDomains.length > 0;
      return { name: 'LOCAL_DOMAIN_TRUSTED_SERVICE', detail: `${who}: every condition of trusted service ${service.name} holds`, byServer };
    }
    nearMisses.push(`service ${service.name} does not match (${unmet.join('; ')})`);
  }

  const auth = evidence.auth;
  if (tempError || authUndecided(claim, policyFor(settings, claim.domain), auth)) {
    return { name: 'ANTISPOOF_TEMPERROR', detail: `${who}: DNS failure, could not check the sender (not counted)` };
  }
  const missing = [`${evidence.ctx.ip} is not a listed sending server`];
  missing.push(auth ? `no aligned DKIM or SPF pass for ${claim.domain}` : 'no auth results (list mailward/auth before mailward/antispoof)');
  return { name: 'SPOOF_LOCAL_DOMAIN', detail: `${who}, but ${[...missing, ...nearMisses].join('; ')}` };
}

/** The domain of an address as written (case kept: `exampIe.com` with an upper-case I reads as ours). */
function writtenDomain(address: string): string {
  return address.slice(address.lastIndexOf('@') + 1).replace(/>$/, '');
}

/** A display name that impersonates a local person or address while the address is external. */
function displayNameSpoof(name: string, written: string, settings: AntispoofSettings, lookalikes?: LookalikeDomains): Hit | undefined {
  const display = normaliseName(name);
  const address = written || '(no address)';
  if (!display) return undefined;
  if (settings.protectedNames.includes(display)) {
    return { name: 'DISPLAY_NAME_SPOOF', detail: `From: display name "${name}" is a local person's, but the address is ${address}` };
  }
  if (settings.displayNameAddresses) {
    // Any script: "ceo@bücher.example" shows our xn--bcher-kva.example.
    for (const shown of addressesInText(display)) {
      const local = localDomainOf(settings, domainOf(shown));
      if (local && shown !== address.toLowerCase()) {
        return { name: 'DISPLAY_NAME_SPOOF', detail: `From: display name "${name}" shows local address ${shown}, but the address is ${address}` };
      }
    }
    for (const shown of lookalikes ? addressesInText(visibleText(name), true) : []) {
      // A name that only repeats the address is no disguise: LOOKALIKE_LOCAL_DOMAIN judges the address.
      const imitated = shown.toLowerCase() !== address.toLowerCase() && lookalikes?.imitated(writtenDomain(shown));
      if (imitated) {
        return { name: 'DISPLAY_NAME_SPOOF', detail: `From: display name "${name}" shows ${shown}, which reads as local domain ${imitated}, but the address is ${address}` };
      }
    }
  }
  return undefined;
}

/**
 * A link's host as written (case kept: exampIe.com) and as a browser reads it
 * (percent escapes, backslashes and case undone): both are judged.
 */
function linkHosts(url: string): string[] {
  const trimmed = url.trim().slice(0, 2048);
  const written = hostOf(trimmed, true);
  const hosts = written ? [written] : [];
  try {
    hosts.push(new URL(/^www\./i.test(trimmed) ? `http://${trimmed}` : trimmed).hostname);
  } catch {
    // not a URL a browser would follow
  }
  return hosts;
}

/** Links to cousin domains of ours: a copy of our own sign-in page, the usual next step after the mail. */
async function lookalikeLinks(ctx: MessageContext, lookalikes: LookalikeDomains): Promise<Hit | undefined> {
  const parts = await messageParts(ctx);
  // The HTML's links as decoded (entities undone), and the URLs written in what a reader is
  // shown (the plain part and, beside it, the HTML's text), each with its own budget.
  const inText: string[] = [];
  const listed = new Set<string>();
  for (const text of bodyTexts(parts)) urlsIn(text, inText, listed);
  const hosts = new Set([...(parts.html?.links ?? []).map((l) => l.href), ...inText].flatMap(linkHosts));
  const found = new Set<string>();
  for (const host of hosts) {
    const imitated = lookalikes.imitated(host);
    if (imitated) found.add(`${host} reads as local domain ${imitated}`);
    if (found.size >= 3) break;
  }
  return found.size ? { name: 'LOOKALIKE_LOCAL_LINK', detail: [...found].join('; ') } : undefined;
}

/** Distinct domains of one header (From:, Reply-To:, Sender:) judged for cousin domains. */
const MAX_COUSIN_DOMAINS = 20;

/** Cousin domains of ours in the addresses a reader sees or replies to. */
function cousinHits(ctx: MessageContext, lookalikes: LookalikeDomains, checkEnvelope: boolean, pastIndex: [string, string][]): Hit[] {
  const written: [string, string][] = [
    ...fromMailboxes(ctx).map((m): [string, string] => ['From:', m.written]),
    ...shownFromAddresses(ctx, true).map((a): [string, string] => ['From:', a]),
    ...headerMailboxes(ctx, 'reply-to').map((m): [string, string] => ['Reply-To:', m.written]),
    ...headerMailboxes(ctx, 'sender').map((m): [string, string] => ['Sender:', m.written]),
    // Those past the first 1 MB of header (fieldsPastIndex): a reader sees them too.
    ...pastIndex,
  ];
  if (checkEnvelope && ctx.mailFrom) written.push(['MAIL FROM', ctx.mailFrom]);
  const looks = new Set<string>();
  const slips = new Set<string>();
  // The first domains of each header are what a reader sees; a forged header of 60,000 would
  // cost seconds of domain searches. Counted by distinct domain: repeating our own address
  // twenty times must not push a cousin out of sight.
  const perSource = new Map<string, Set<string>>();
  for (const [source, address] of written) {
    if (looks.size + slips.size >= 3) break;
    const domain = writtenDomain(address);
    const judged = perSource.get(source) ?? new Set<string>();
    perSource.set(source, judged);
    if (judged.has(domain) || judged.size >= MAX_COUSIN_DOMAINS) continue;
    judged.add(domain);
    const cousin = address.includes('@') ? lookalikes.cousin(domain) : undefined;
    if (!cousin) continue;
    const what = `${source} ${address}: ${domain}`;
    if (cousin.kind === 'looks') looks.add(`${what} reads as local domain ${cousin.local}`);
    else if (cousin.kind === 'typo') slips.add(`${what} is one typing slip from local domain ${cousin.local}`);
    else slips.add(`${what} is the name of local domain ${cousin.local} under a suffix that reads as its own`);
  }
  const hits: Hit[] = [];
  if (looks.size) hits.push({ name: 'LOOKALIKE_LOCAL_DOMAIN', detail: [...looks].join('; ') });
  // The name says what to do when it is a real partner's or our own other domain.
  if (slips.size) hits.push({ name: 'TYPO_LOCAL_DOMAIN', detail: `${[...slips].join('; ')} (if it is known good: [lookalike] ignore)` });
  return hits;
}

/**
 * The operator named this server for the domain: its own DMARC policy and SPF
 * record, which do not list it (a web form, a copier, an old relay), no longer
 * count against the mail. "List it and the same mail is clean" (the seed's web
 * form) must hold without also editing DNS. Says what it removed.
 */
function waived(claim: Claim, auth: AuthResults | undefined, ledger: Ledger): string {
  if (!auth) return '';
  if (claim.source === 'Sender:') return '';
  const names =
    claim.source === 'From:'
      ? relaxedAligned(asciiDomain(auth.dmarc.domain), claim.domain)
        ? ['DMARC_POLICY_REJECT', 'DMARC_POLICY_QUARANTINE', 'DMARC_POLICY_NONE']
        : []
      : withinDomain(asciiDomain(auth.spf.domain), claim.domain)
        ? ['SPF_FAIL', 'SPF_SOFTFAIL', 'SPF_NEUTRAL']
        : [];
  const removed: string[] = [];
  for (const name of names) {
    const symbol = ledger.get(name);
    if (!symbol) continue;
    removed.push(`${name} ${symbol.score}`);
    ledger.remove(name);
  }
  return removed.length ? `; not counted, this server being authorised for ${claim.domain}: ${removed.join(', ')}` : '';
}

function createAntispoofCheck(settings: AntispoofSettings, services: Services): Check {
  const lookalikes = settings.lookalike ? new LookalikeDomains(settings.domains, settings.lookalikeIgnore, settings.typoMinLength) : undefined;
  return {
    name: 'antispoof.local',
    phase: 'data',
    async run(ctx, ledger) {
      if (!ctx.raw) return [];
      if (settings.skipRelaying && ctx.relaying) return [];
      // Every From: mailbox is a claim: the local address may be the second one, in a group, or in a second header.
      const mailboxes = fromMailboxes(ctx);
      const hits: Hit[] = [];
      // One claim per source, local domain and way of finding: the verdict depends on nothing
      // else (the address only names it), and a From: of 20,000 local addresses judged one by
      // one held the event loop for minutes (each a look-up and a ledger detail grown by one).
      const claimsByKey = new Map<string, Claim>();
      const seen = new Set<string>();
      const claim = (source: Claim['source'], address: string, how?: string) => {
        const local = localDomainOf(settings, domainOf(address));
        if (!local || seen.has(`${source}\0${address}`)) return;
        seen.add(`${source}\0${address}`);
        const key = `${source}\0${local}\0${how ?? ''}`;
        const judged = claimsByKey.get(key);
        if (judged) judged.others = (judged.others ?? 0) + 1;
        else claimsByKey.set(key, { source, address, domain: local, ...(how ? { how } : {}) });
      };
      for (const { address } of mailboxes) claim('From:', address);
      // Past 1 MB of header our index stops, but mail readers and mailauth read on: a From: put
      // after padding fields is a claim like any other (read only when the block is that long).
      const budget = withinPastBudget(ctx.raw ? fieldsPastIndex(ctx.raw, ['from', 'sender', 'reply-to']) : []);
      // Beyond the budget only From: and Sender: are searched as text (a Reply-To: names no author).
      const past = { read: budget.read, unread: budget.unread.filter((f) => f.key !== 'reply-to') };
      const pastValues = (key: string) => past.read.filter((f) => f.key === key).map((f) => f.value);
      const pastFrom = mailboxesOf(pastValues('from'));
      const pastSender = mailboxesOf(pastValues('sender'));
      const pastHow = 'past the first 1 MB of header';
      for (const { address } of pastFrom) claim('From:', address, pastHow);
      // Beyond the budget, our domain written as text is enough to count as a claim.
      for (const { key, value } of past.unread) {
        for (const domain of domainsWritten(value, settings.domains)) {
          claim(key === 'sender' ? 'Sender:' : 'From:', `…@${domain}`, `${pastHow}, beyond the ${PAST_INDEX_BUDGET / 1024} KB of it parsed`);
        }
      }
      // A From: with no address at all: clients show its text, which may be our address.
      const shown = pastValues('from').length ? shownFromAddressesWith(ctx, pastValues('from')) : shownFromAddresses(ctx);
      for (const address of shown) claim('From:', address, 'shown as text, From: has no address');
      // Clients show Sender: too ("on behalf of").
      for (const { address } of headerMailboxes(ctx, 'sender')) claim('Sender:', address);
      for (const { address } of pastSender) claim('Sender:', address, pastHow);
      const envelope = (ctx.mailFrom ?? '').toLowerCase();
      const envelopeLocal = settings.checkEnvelope ? localDomainOf(settings, domainOf(envelope)) : undefined;
      const claims = [...claimsByKey.values()];
      if (envelopeLocal) claims.push({ source: 'MAIL FROM', address: envelope, domain: envelopeLocal });

      const evidence = new Evidence(ctx, services.dns, authResults(ctx));
      for (const claim of claims) {
        const hit = await checkClaim(claim, settings, evidence);
        const { byServer, ...plain } = hit;
        if (byServer) plain.detail += waived(claim, evidence.auth, ledger);
        hits.push(plain);
      }
      if (!claims.some((c) => c.source === 'From:')) {
        const spoof = mailboxes.map((m) => (m.name ? displayNameSpoof(m.name, m.address, settings, lookalikes) : undefined)).find(Boolean);
        if (spoof) hits.push(spoof);
      }
      if (lookalikes) {
        const pastWritten = (source: string, found: { written: string }[]) => found.map((m): [string, string] => [source, m.written]);
        const pastIndex = [...pastWritten('From:', pastFrom), ...pastWritten('Reply-To:', mailboxesOf(pastValues('reply-to'))), ...pastWritten('Sender:', pastSender)];
        hits.push(...cousinHits(ctx, lookalikes, settings.checkEnvelope, pastIndex));
      }
      const cousinLinks = lookalikes && (await lookalikeLinks(ctx, lookalikes));
      if (cousinLinks) hits.push(cousinLinks);
      return hits;
    },
  };
}

export const antispoofModule: CheckModule<AntispoofSettings> = {
  name: 'antispoof',
  file: 'mailward.antispoof.ini',
  symbols: antispoofSymbols,
  // The MTA's own list of local domains (Haraka's config/host_list), when there is one.
  extraFiles: ['host_list'],
  parseSettings(reader, _shared, files) {
    return { settings: parseAntispoofSettings(reader, files) };
  },
  createChecks(settings, services) {
    return settings.enabled && (settings.domains.length || settings.protectedNames.length) ? [createAntispoofCheck(settings, services)] : [];
  },
};
