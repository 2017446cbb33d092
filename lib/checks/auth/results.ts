import type { AuthenticateResult } from 'mailauth';
import { mailboxesOf, type MessageContext } from '../../message';
import { asciiDomain } from '../../util/domain';
import { normaliseDomain, relaxedAligned, withinDomain } from './align';
import type { OlderSealTempError } from './arc';

export type SpfResult = 'pass' | 'fail' | 'softfail' | 'neutral' | 'none' | 'temperror' | 'permerror';
export type DmarcResult = 'pass' | 'fail' | 'none' | 'temperror';
export type DmarcPolicy = 'none' | 'quarantine' | 'reject' | '';

export interface DkimSignatureResult {
  /** mailauth's result: pass, fail, neutral (bad body hash, no key, ...), policy (weak key), temperror. */
  result: string;
  /** d= of the signature. */
  domain: string;
  selector: string;
  /** d= is aligned (relaxed) with the From: domain. */
  aligned: boolean;
  /** Why it did not pass, when it did not. */
  comment: string;
  /**
   * Addresses in the To: and Cc: header instances this signature covers (h=),
   * lower case; only for a passing signature. A signature binds neither the
   * envelope nor the recipients (anyone who received it can replay it to
   * anyone): these are the only recipients it vouches for.
   */
  signedRecipients?: string[];
  /**
   * A passing signature whose l= leaves part of the body unsigned: the bytes
   * (canonical body) past l=. Whoever relays or replays the message can add
   * there what it likes; the rules do not take such a signature for the sender.
   */
  unsignedBody?: number;
}

/**
 * What the auth check found, left in `ctx.notes.auth` for later checks
 * (antispoof, content, rules). Read it with `authResults(ctx)`.
 */
export interface AuthResults {
  /** The From: header's domain ('' when there is none or several). */
  fromDomain: string;
  spf: {
    result: SpfResult;
    /** Domain SPF was evaluated for: the envelope sender's, or the HELO name's for the null sender. */
    domain: string;
    /** Passed and relaxed-aligned with the From: domain. */
    aligned: boolean;
    /** mailauth's explanation, e.g. "domain of a@b.example designates 192.0.2.1 as permitted sender". */
    comment: string;
  };
  dkim: DkimSignatureResult[];
  dmarc: {
    result: DmarcResult;
    /** Policy that applies to the From: domain (sp= for subdomains), '' without a record. */
    policy: DmarcPolicy;
    /** The From: domain DMARC was evaluated for. */
    domain: string;
    /** pct= of the record: the share of failing mail the policy is meant for (100 when absent). */
    pct?: number;
    /**
     * A DMARC fail neutralised by a trusted ARC sealer: the sealer's domain.
     * Only under a newest ARC-Message-Signature that signs From: and the whole
     * body, whose recorded dmarc result is for this From: domain
     * (arcOverrideRefusal).
     */
    arcOverride?: string;
    /**
     * A DMARC fail (or one not evaluated) a trusted ARC sealer's verified seal
     * does not neutralise (arcOverrideRefusal: it recorded no dmarc=pass for
     * this From: domain, or its message signature leaves From: or body bytes
     * unsigned), whether or not the rest of its chain could be checked: the
     * sealer's domain. The policy symbol's detail says why.
     */
    arcDeclined?: string;
    /**
     * From: did not name exactly one address (several, or none but an
     * address shown as text, or one past the header index): the domains DMARC
     * was evaluated for, each on its own (RFC 7489 6.6.1). The result is then:
     * the strictest failure's (`domain` its author); else a DNS failure's;
     * else 'pass' when every author passed (`domain` '': no single From:
     * domain, which allow entries and rules ask for); else 'none' (an author
     * publishes no record: nothing vouches for it).
     */
    authors?: string[];
    /** With `authors`: each author domain's own outcome, in message order (the symbol detail names them). */
    authorResults?: AuthorDmarc[];
    /**
     * With `authors`: why some author of the From: was not judged ('' or absent: every one was):
     * more domains than are looked up, or From: text past the index beyond what is parsed
     * (authorAddresses). Such a From: never passes as a whole.
     */
    unjudged?: string;
  };
  arc: {
    /** temperror: a key of the chain could not be fetched (DNS failure), so it was not judged. */
    result: 'pass' | 'fail' | 'none' | 'temperror';
    /** d= of the newest ARC set ('' when there is no chain). */
    sealer: string;
    /** Instance number of the newest set (0 without a chain). */
    instance: number;
    /** The sealer is listed in `[arc] trusted_sealers`. */
    trusted: boolean;
    /**
     * What the newest sealer recorded for DMARC when it received the message: set
     * only when the newest seal verified ('' unknown, or a seal not verified).
     */
    upstreamDmarc: string;
    /**
     * The From: domain that dmarc result was for (its `header.from`, lower
     * case; absent when it names none or the seal did not verify). A sealer's pass
     * for another From: domain than this message's says nothing about this one.
     */
    upstreamFrom?: string;
    /**
     * The newest seal verified (result pass, or sealVerified): the newest
     * ARC-Message-Signature's l= leaves this many bytes of the (canonical) body
     * unsigned. Whoever relays the sealed message on can append there what it
     * likes, under the sealer's verified seal.
     */
    unsignedBody?: number;
    /**
     * The newest seal verified (result pass, or sealVerified): the newest
     * ARC-Message-Signature does not sign From: (its h= lacks it; DKIM requires
     * it, mailauth does not check). The From: can then be rewritten under the
     * sealer's verified seal.
     */
    fromUnsigned?: boolean;
    /**
     * With fromUnsigned, when h= does name From: but fewer times than the
     * message has From: fields: their number. h= signs the bottom-most
     * instances only (RFC 6376 5.4.2), so a From: added above the sealed one
     * is unsigned, and it is the one readers show.
     */
    fromFields?: number;
    /**
     * temperror only: the newest seal verified and an older hop's key did not
     * come, so `upstreamDmarc` is what the sealer really recorded ('' nothing).
     */
    sealVerified?: boolean;
    /** Why the chain failed, when it did. */
    comment: string;
  };
  /** DNS or another temporary error prevented a full answer somewhere. */
  temporaryError: boolean;
  /**
   * Authentication did not finish (deadline, internal error): every identifier
   * the message carries (envelope domain, signatures, ARC sealer) is a temperror.
   */
  incomplete?: boolean;
}

/** One author domain's DMARC outcome, for a From: naming several. */
export interface AuthorDmarc {
  domain: string;
  result: DmarcResult;
  policy: DmarcPolicy;
}

export const AUTH_NOTE = 'auth';

export function authResults(ctx: MessageContext): AuthResults | undefined {
  return ctx.notes[AUTH_NOTE] as AuthResults | undefined;
}

/** Domains whose DKIM signature verified and is aligned with `domain` (relaxed). */
export function hasAlignedDkim(auth: AuthResults, domain: string): boolean {
  return auth.dkim.some((d) => d.result === 'pass' && relaxedAligned(d.domain, domain));
}

/** The From: domain is authenticated: DMARC pass, or SPF or DKIM passing aligned with it. */
export function fromDomainAuthenticated(auth: AuthResults): boolean {
  return auth.dmarc.result === 'pass' || (!!auth.fromDomain && (hasAlignedSpf(auth, auth.fromDomain) || hasAlignedDkim(auth, auth.fromDomain)));
}

/** SPF passed for `domain` (relaxed). */
export function hasAlignedSpf(auth: AuthResults, domain: string): boolean {
  return auth.spf.result === 'pass' && relaxedAligned(auth.spf.domain, domain);
}

/**
 * Which look-up that could have authenticated `domain` (an aligned DKIM key,
 * SPF for an aligned envelope domain) failed temporarily, or '' when none
 * did. A failed authentication is only final without one: otherwise a dead
 * resolver would count against the mail.
 */
export function unresolvedAlignedAuth(auth: AuthResults, domain: string): string {
  const dkim = alignedDkimTempError(auth.dkim, domain);
  const pending = dkim ? `the aligned DKIM signature d=${dkim.domain} s=${dkim.selector}` : alignedSpfTempError(auth.spf, domain) ? `SPF for the aligned ${auth.spf.domain}` : '';
  return pending && auth.incomplete ? `${pending} (authentication did not finish)` : pending;
}

/** A DKIM signature aligned with `domain` whose key look-up failed temporarily (read structurally: the rules see a subset). */
export function alignedDkimTempError<T extends { result: string; domain: string }>(dkim: T[], domain: string): T | undefined {
  return domain ? dkim.find((d) => d.result === 'temperror' && relaxedAligned(d.domain, domain)) : undefined;
}

/** SPF for an envelope domain aligned with `domain` failed temporarily. */
export function alignedSpfTempError(spf: { result: string; domain: string }, domain: string): boolean {
  return !!domain && spf.result === 'temperror' && relaxedAligned(spf.domain, domain);
}

const SPF_RESULTS: SpfResult[] = ['pass', 'fail', 'softfail', 'neutral', 'none', 'temperror', 'permerror'];

/** The key names (`s._domainkey.d`) an ARC chain's seals and message signatures point at. */
function arcKeyNames(arcRaw: any): string[] {
  const names: string[] = [];
  for (const set of arcRaw?.chain ?? []) {
    for (const header of ['arc-seal', 'arc-message-signature']) {
      const parsed = set?.[header]?.parsed;
      const s = parsed?.s?.value;
      const d = parsed?.d?.value;
      if (s && d) names.push(normaliseDomain(`${s}._domainkey.${d}`));
    }
  }
  return names;
}

/**
 * Turns mailauth's answer into our small, stable shape. `tempErrorNames`: the
 * names whose look-up failed temporarily (mailauth reports every ARC failure
 * as permanent, a time-out on the sealer's key included); `olderSeal`: the
 * chain stopped at an older hop's key that did not come, below verified seals
 * (see olderSealKeyTempError).
 */
export function summarise(result: AuthenticateResult, trustedSealers: string[], tempErrorNames: string[] = [], olderSeal?: OlderSealTempError, fromFields = 1): AuthResults {
  const from = result.dkim?.headerFrom ?? [];
  const fromAddress = Array.isArray(from) && from.length === 1 ? String(from[0]) : '';
  const fromDomain = fromAddress.includes('@') ? normaliseDomain(fromAddress.slice(fromAddress.lastIndexOf('@') + 1)) : '';

  const spfRaw = result.spf ? String(result.spf.status?.result ?? 'temperror') : 'none';
  const spfResult = (SPF_RESULTS as string[]).includes(spfRaw) ? (spfRaw as SpfResult) : 'temperror';
  const spfDomain = result.spf ? normaliseDomain(String(result.spf.domain ?? '')) : '';

  // An unsigned message comes back as one pseudo-result "none": no signature at all.
  const signatures = (result.dkim?.results ?? []).filter((r: any) => r.status?.result !== 'none');
  const dkim: DkimSignatureResult[] = signatures.map((r: any) => ({
    result: String(r.status?.result ?? 'neutral'),
    domain: normaliseDomain(String(r.signingDomain ?? '')),
    selector: String(r.selector ?? ''),
    aligned: !!fromDomain && relaxedAligned(String(r.signingDomain ?? ''), fromDomain),
    comment: String(r.status?.comment ?? ''),
    ...(r.status?.result === 'pass' ? { signedRecipients: signedRecipients(r.signingHeaders?.headers) } : {}),
    ...(r.status?.result === 'pass' && Number(r.status?.underSized) > 0 ? { unsignedBody: Number(r.status.underSized) } : {}),
  }));

  const { result: dmarcResult, policy, pct } = dmarcOf(result.dmarc);

  const arcRaw: any = result.arc;
  const arcStatus = arcRaw ? String(arcRaw.status?.result ?? 'none') : 'none';
  const lastSeal = (result.dkim as any)?.arc?.lastEntry?.['arc-seal']?.parsed?.d?.value;
  const amsSigned = String((result.dkim as any)?.arc?.lastEntry?.['arc-message-signature']?.parsed?.h?.value ?? '')
    .split(':')
    .map((name) => name.trim().toLowerCase());
  const sealer = normaliseDomain(String(lastSeal ?? arcRaw?.signature?.signingDomain ?? ''));
  let upstreamDmarc = String(arcRaw?.authenticationResults?.dmarc?.result ?? '').toLowerCase();
  // header.from is a domain (RFC 7489 11.2); some write the address.
  let upstreamFrom = normaliseDomain(String(arcRaw?.authenticationResults?.dmarc?.header?.from ?? '').replace(/^.*@/, ''));
  const trusted = !!sealer && trustedSealers.some((t) => withinDomain(sealer, t));
  let arcResult: AuthResults['arc']['result'] = arcStatus === 'pass' ? 'pass' : arcStatus === 'fail' ? 'fail' : 'none';
  let arcComment = String(arcRaw?.status?.comment ?? '');
  let sealVerified = false;
  if (arcResult === 'fail' && sealer && olderSeal) {
    // The newest seal verified: its sealer and what it recorded on receipt are genuine.
    arcResult = 'temperror';
    arcComment = `the seals above i=${olderSeal.instance} verify; DNS failure fetching the key ${olderSeal.key} of i=${olderSeal.instance}`;
    upstreamDmarc = olderSeal.upstreamDmarc;
    upstreamFrom = olderSeal.upstreamFrom;
    sealVerified = true;
  } else if (arcResult === 'fail' && sealer) {
    // Only a key in the sealer's own zone: the names and the sealer are written by the sender,
    // and a key of its own that never answers must not buy a trusted sealer's temperror.
    const unreachable = arcKeyNames(arcRaw).find((name) => withinDomain(name, sealer) && tempErrorNames.includes(name));
    if (unreachable) {
      arcResult = 'temperror';
      arcComment = `DNS failure fetching the key ${unreachable}`;
    }
  }

  // What the newest message signature covers is known when the newest seal verified.
  const sealed = arcResult === 'pass' || sealVerified;
  // Each `from` in h= signs one From: field, from the bottom up: every one must be signed.
  const fromSigned = amsSigned.filter((name) => name === 'from').length;
  const underSized = Number(arcRaw?.signature?.status?.underSized ?? (result.dkim as any)?.arc?.lastEntry?.messageSignature?.status?.underSized);
  const auth: AuthResults = {
    fromDomain,
    spf: { result: spfResult, domain: spfDomain, aligned: false, comment: String(result.spf ? (result.spf.status?.comment ?? '') : '') },
    dkim,
    dmarc: { result: dmarcResult, policy, domain: fromDomain, ...(pct < 100 ? { pct } : {}) },
    arc: {
      result: arcResult,
      sealer,
      instance: typeof arcRaw?.i === 'number' ? arcRaw.i : 0,
      trusted,
      upstreamDmarc,
      ...(upstreamFrom && sealed ? { upstreamFrom } : {}),
      ...(sealed && underSized > 0 ? { unsignedBody: underSized } : {}),
      ...(sealed && fromSigned < Math.max(1, fromFields) ? { fromUnsigned: true, ...(fromSigned ? { fromFields } : {}) } : {}),
      ...(sealVerified ? { sealVerified } : {}),
      comment: arcComment,
    },
    temporaryError: spfResult === 'temperror' || dmarcResult === 'temperror' || arcResult === 'temperror' || dkim.some((d) => d.result === 'temperror'),
  };
  auth.spf.aligned = !!fromDomain && hasAlignedSpf(auth, fromDomain);
  return auth;
}

/**
 * The newest sealer's seal recorded dmarc=pass for the From: domain DMARC judged here, of a
 * single-author From: (its header.from, after IDNA/case folding). What antispoof and the rules'
 * allow entries ask of an override: auth's [arc] require_upstream_pass = false sets one without it.
 */
export function sealerRecordedPass(auth: { arc?: { upstreamDmarc?: string; upstreamFrom?: string }; dmarc: { domain?: string; authors?: string[] } }): boolean {
  const recordedFor = auth.arc?.upstreamFrom ?? '';
  return auth.arc?.upstreamDmarc === 'pass' && !!recordedFor && asciiDomain(recordedFor) === asciiDomain(auth.dmarc.domain ?? '') && (auth.dmarc.authors?.length ?? 0) <= 1;
}

/**
 * Why the newest trusted sealer's verified seal does not neutralise this
 * message's DMARC fail, or '' when it does. The seal vouches for the message
 * it sealed, so its ARC-Message-Signature must sign From: (else a replayer
 * writes any address of the domain under it) and the whole body (else it
 * appends a part past l=). With `requireUpstreamPass` the sealer must have
 * recorded dmarc=pass for this very From: domain (its header.from, exactly,
 * after IDNA/case folding: DMARC's domain is the From: domain, RFC 7489 3.1,
 * and a pass for a sibling or the organisational domain says nothing about
 * this one's policy) of a single-author From:. Without it, whatever the
 * sealer recorded (or nothing) is accepted, but not a result naming another
 * From: domain: that result is about another message.
 */
export function arcOverrideRefusal(auth: AuthResults, requireUpstreamPass: boolean): string {
  const { arc, dmarc } = auth;
  const by = `trusted ARC sealer ${arc.sealer}`;
  if (arc.fromUnsigned && arc.fromFields) return `${by}'s ARC-Message-Signature does not sign every From: field (${arc.fromFields}; h= names from fewer times), so no override`;
  if (arc.fromUnsigned) return `${by}'s ARC-Message-Signature does not sign From: (it could be rewritten under the seal), so no override`;
  if (arc.unsignedBody) return `${by}'s ARC-Message-Signature leaves ${arc.unsignedBody} bytes of the body unsigned (l=), so no override`;
  const recorded = arc.upstreamDmarc || 'nothing';
  const recordedFor = arc.upstreamFrom ?? '';
  // Whatever require_upstream_pass says: a seal's dmarc result names one From: domain at most
  // (header.from), so an override of a several-author From: would cover an author it never vouched for.
  const authors = dmarc.authors?.length ?? 0;
  if (authors > 1) return `${by}'s seal vouches for one From: domain at most (it recorded dmarc=${recorded}${recordedFor ? ` for ${recordedFor}` : ''}), and From: names ${authors} (${dmarc.authors!.join(', ')}), so no override`;
  if (requireUpstreamPass && recorded !== 'pass') return `${by} recorded dmarc=${recorded}, so no override`;
  if (requireUpstreamPass && !recordedFor) return `${by} recorded dmarc=pass without naming the From: domain (no header.from), so no override`;
  if (recordedFor && asciiDomain(recordedFor) !== asciiDomain(dmarc.domain)) return `${by} recorded dmarc=${recorded} for From: ${recordedFor}, not ${dmarc.domain || 'this message\'s'}, so no override`;
  return '';
}

/**
 * Why no trusted sealer's seal could neutralise this message's DMARC fail, known without the seal:
 * a seal records DMARC for one From: domain at most (header.from), and From: names several author
 * domains (as arcOverrideRefusal says of a verified seal). '' when an override could apply. So a
 * trusted sealer's key that could not be fetched leaves the outcome as it is: the policy applies.
 */
export function severalAuthorsRefusal(auth: AuthResults): string {
  const authors = auth.dmarc.authors ?? [];
  if (authors.length <= 1) return '';
  return `no seal could neutralise it: a seal vouches for one From: domain at most, and From: names ${authors.length} (${authors.join(', ')}), so trusted ARC sealer ${auth.arc.sealer}'s seal was not needed`;
}

/** At most this many addresses are kept per signature: a signed To: can be as long as the signer likes. */
const MAX_SIGNED_RECIPIENTS = 100;

/**
 * The addresses in the To:/Cc: lines a signature covers: mailauth hands back
 * the exact header instances it hashed (bottom-up per h= entry, RFC 6376
 * 5.4.2), so a To: a replayer adds above them is not among them.
 */
function signedRecipients(lines: unknown): string[] {
  if (!Array.isArray(lines)) return [];
  const values = lines
    .map((l) => String(l))
    .filter((l) => /^(to|cc)[ \t]*:/i.test(l))
    .map((l) => l.slice(l.indexOf(':') + 1).replace(/\r?\n[ \t]+/g, ' '));
  return [...new Set(mailboxesOf(values).map((m) => m.address).filter((a) => a.includes('@')))].slice(0, MAX_SIGNED_RECIPIENTS);
}

/** mailauth's DMARC answer (false or missing when it evaluated none) in our shape. */
export function dmarcOf(raw: any): { result: DmarcResult; policy: DmarcPolicy; pct: number } {
  const result: DmarcResult = raw ? normaliseDmarc(String(raw.status?.result ?? 'none')) : 'none';
  const policy = raw && ['none', 'quarantine', 'reject'].includes(raw.policy) ? (raw.policy as DmarcPolicy) : '';
  const n = Number(raw?.pct);
  const pct = Number.isFinite(n) && raw?.pct !== undefined && raw?.pct !== '' ? Math.min(100, Math.max(0, n)) : 100;
  return { result, policy, pct };
}

const POLICY_RANK: Record<string, number> = { reject: 3, quarantine: 2, none: 1, '': 1 };

/**
 * DMARC for a From: that names several author domains (or none but shows
 * addresses as text), from one mailauth answer per domain. RFC 7489 6.6.1:
 * each domain is an Author Domain checked on its own, and the strictest
 * policy among the checks that fail applies. So: a failure, the strictest;
 * else a DNS failure (an author might have failed); else pass when every
 * author passed; else none (an author without a record is vouched for by
 * no one, so the message as a whole does not pass). `undecided`: a failing
 * author whose fail a DNS failure may have caused (unresolvedAlignedAuth).
 * A certain failure goes before those, whatever their policies: an author
 * whose own key or SPF never answers (a spoofer's own domain beside the one
 * it spoofs) must not hold back another author's policy.
 */
export function authorsDmarc(answers: { domain: string; raw: any }[], unjudged = '', undecided: (domain: string) => boolean = () => false): AuthResults['dmarc'] {
  const authors = answers.map((a) => a.domain);
  const judged = answers.map((a) => ({ domain: a.domain, ...dmarcOf(a.raw) }));
  const authorResults: AuthorDmarc[] = judged.map(({ domain, result, policy }) => ({ domain, result, policy }));
  const unsure = new Set(judged.filter((j) => j.result === 'fail' && undecided(j.domain)).map((j) => j.domain));
  const failed = judged
    .filter((j) => j.result === 'fail')
    .sort((a, b) => Number(unsure.has(a.domain)) - Number(unsure.has(b.domain)) || POLICY_RANK[b.policy]! - POLICY_RANK[a.policy]!);
  const chosen = failed[0] ?? judged.find((j) => j.result === 'temperror');
  const more = unjudged ? { unjudged } : {};
  if (chosen) return { result: chosen.result, policy: chosen.policy, domain: chosen.domain, ...(chosen.pct < 100 ? { pct: chosen.pct } : {}), authors, authorResults, ...more };
  // "Every author passes" only of every author: one never looked up (the 11th domain, an address
  // past the text parsed) may be anyone's, and a pass would vouch for it (DMARC_PASS, -1).
  if (!unjudged && judged.length && judged.every((j) => j.result === 'pass')) {
    // No single From: domain: `domain` stays '' (allow entries and rules match one); the policy is the strictest published.
    const strictest = [...judged].sort((a, b) => POLICY_RANK[b.policy]! - POLICY_RANK[a.policy]!)[0]!;
    return { result: 'pass', policy: strictest.policy, domain: '', authors, authorResults };
  }
  return { result: 'none', policy: '', domain: '', authors, authorResults, ...more };
}

/** Each author's outcome, for a symbol detail: `a.example pass p=reject, b.example none`. */
export function authorOutcomes(dmarc: AuthResults['dmarc']): string {
  return (dmarc.authorResults ?? []).map((a) => `${a.domain} ${a.result}${a.policy && a.result !== 'none' ? ` p=${a.policy}` : ''}`).join(', ');
}

function normaliseDmarc(result: string): DmarcResult {
  if (result === 'pass' || result === 'fail' || result === 'temperror') return result;
  return 'none';
}

/**
 * mailauth's header block ("Received-SPF: ...\r\nAuthentication-Results: ...")
 * as [name, value] pairs, unfolded: the MTA adapter decides how to write them.
 */
export function headerPairs(block: string): [string, string][] {
  const pairs: [string, string][] = [];
  for (const field of block.split(/\r?\n(?=[^ \t\r\n])/)) {
    const colon = field.indexOf(':');
    if (colon <= 0) continue;
    const name = field.slice(0, colon).trim();
    const value = field
      .slice(colon + 1)
      .replace(/\r?\n[ \t]+/g, ' ')
      .trim();
    if (name && value) pairs.push([name, value]);
  }
  return pairs;
}

/**
 * The Authentication-Results field the auth check added, in `ctx.notes`
 * (read with `ownAuthResults(ctx)`): an MTA adapter whose MTA assembles a
 * field of its own from its plugins' results (Haraka) hands these entries on.
 */
export const AUTH_FIELD_NOTE = 'auth.field';

export interface OwnAuthResults {
  /** Our authserv-id: `[headers] authserv_id` or the MTA's host name. */
  authservId: string;
  /** The field's value as mailauth wrote it, unfolded, its non-ASCII text written in ASCII (asciiAuthResults). */
  value: string;
}

export function ownAuthResults(ctx: MessageContext): OwnAuthResults | undefined {
  return ctx.notes[AUTH_FIELD_NOTE] as OwnAuthResults | undefined;
}

/**
 * An Authentication-Results value split at its top-level semicolons (RFC
 * 8601 §2.2): the authserv-id (with its version, if any) and each resinfo,
 * trimmed. A ';' in a comment or a quoted string (an envelope sender's quoted
 * local part) does not split.
 */
export function resinfoEntries(value: string): { authservId: string; entries: string[] } {
  const parts: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c === '\\' && (quoted || depth > 0)) i++;
    else if (quoted) quoted = c !== '"';
    else if (c === '"' && depth === 0) quoted = true;
    else if (c === '(') depth++;
    else if (c === ')' && depth > 0) depth--;
    else if (c === ';' && depth === 0) {
      parts.push(value.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(value.slice(start));
  const [head = '', ...rest] = parts.map((p) => p.trim());
  // "none" says there are no results (RFC 8601 §2.2): nothing to hand on.
  return { authservId: head.split(/\s+/)[0] ?? '', entries: rest.filter((e) => e && e.toLowerCase() !== 'none') };
}
