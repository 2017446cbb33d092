import type { MessageContext } from '../../message';
import { asciiDomain } from '../../util/domain';
import { alignedDkimTempError, alignedSpfTempError, sealerRecordedPass } from '../auth/results';

/**
 * The part of the auth module's `ctx.notes.auth` the rules read
 * (lib/checks/auth/results.ts AuthResults). Read structurally: when the auth
 * module did not run, or left something else, the message counts as not
 * authenticated.
 */
export interface AuthView {
  fromDomain: string;
  spf: { result: string; domain: string; aligned: boolean };
  dkim: { result: string; domain: string; aligned: boolean; unsignedBody?: number }[];
  dmarc: {
    result: string;
    /** The From: domain DMARC was judged for. */
    domain?: string;
    /** A DMARC fail neutralised by a trusted ARC sealer (auth's [arc] trusted_sealers): the sealer. */
    arcOverride?: string;
    /** From: named several domains, each judged on its own. */
    authors?: string[];
  };
  /** What the newest ARC sealer recorded for DMARC on receipt ('' unknown), and for which From: domain (its header.from). */
  arc?: { upstreamDmarc?: string; upstreamFrom?: string };
}

export function authView(ctx: MessageContext): AuthView | undefined {
  const a = ctx.notes.auth as Partial<AuthView> | undefined;
  if (!a || typeof a !== 'object' || !a.spf || !Array.isArray(a.dkim) || !a.dmarc) return undefined;
  return a as AuthView;
}

export const AUTH_TOKENS = ['spf', 'dkim', 'dmarc', 'aligned', 'spf-aligned', 'dkim-aligned', 'none'] as const;
export type AuthToken = (typeof AUTH_TOKENS)[number];

/**
 * The From: domain the rules read is the one authentication was for. They can
 * differ: mailauth and mailward each parse the header block, and a forger can
 * write a From: line one reads and the other skips (a NBSP before the colon),
 * pairing a signature of its own domain with an allowed sender's address.
 */
export function sameFromDomain(auth: AuthView, fromDomain: string): boolean {
  return !!auth.fromDomain && asciiDomain(auth.fromDomain) === asciiDomain(fromDomain);
}

/**
 * A DKIM signature passing aligned with From:, over the whole body. One whose
 * l= leaves some of the body unsigned vouches for what the sender wrote, not
 * for what a replayer appended after it (a sender's signed newsletter, resent
 * with a phishing part added): it authenticates nothing for the rules.
 */
function alignedDkim(auth: AuthView): boolean {
  return auth.dkim.some((d) => d.result === 'pass' && d.aligned && !d.unsignedBody);
}

/** DMARC pass, unless it can only rest on signatures that leave part of the body unsigned (mailauth counts those). */
function dmarcPass(auth: AuthView): boolean {
  if (auth.dmarc.result !== 'pass') return false;
  const partial = auth.dkim.some((d) => d.result === 'pass' && d.aligned && d.unsignedBody);
  return !partial || (auth.spf.result === 'pass' && auth.spf.aligned) || alignedDkim(auth);
}

/** `fromDomain` (the From: domain as the rules read it) is authenticated: DMARC pass, or SPF or DKIM passing aligned with it. */
export function fromAuthenticated(auth: AuthView | undefined, fromDomain: string): boolean {
  if (!auth || !sameFromDomain(auth, fromDomain)) return false;
  return dmarcPass(auth) || (auth.spf.result === 'pass' && auth.spf.aligned) || alignedDkim(auth);
}

/**
 * Mail a trusted ARC sealer forwarded for this From: domain: DMARC failed here
 * (a mailing list's footer breaks the author's DKIM, its server the SPF), and
 * the auth module neutralised the fail (`dmarc.arcOverride`) because the chain
 * of a sealer listed in [arc] trusted_sealers verifies. How that sealer sees
 * the From: domain, in words, and whether it vouches for it: only when DMARC was
 * judged for this very From: domain (the one the rules read, not one of several
 * authors, nor one a header that reads two ways gave mailauth) and the sealer
 * recorded dmarc=pass on receipt for this very From: domain (its header.from:
 * a pass for another domain, or naming none, says nothing about this one).
 * That the sealer's ARC-Message-Signature signs From: and the whole body is
 * auth's condition for the override itself (arcOverrideRefusal): without it
 * there is no arcOverride here. [arc] require_upstream_pass = false lets a
 * sealer neutralise a fail it saw itself (or recorded nothing): that is a
 * forwarding the operator trusts, not an authentication of the author, so it
 * allows nothing; hence the recorded pass and header.from are checked here too.
 * Not part of `fromAuthenticated`: the `auth` conditions of filter rules keep
 * reporting what this server measured.
 */
export function arcVouch(auth: AuthView | undefined, fromDomain: string): { sealer: string; vouches: boolean; why: string } | undefined {
  const sealer = auth?.dmarc.arcOverride;
  if (!auth || !sealer || !sameFromDomain(auth, fromDomain)) return undefined;
  if (!auth.dmarc.domain || asciiDomain(auth.dmarc.domain) !== asciiDomain(fromDomain) || (auth.dmarc.authors?.length ?? 0) > 1) return undefined;
  // The decision antispoof makes too (sealerRecordedPass); here dmarc.domain is fromDomain. The rest says why not.
  if (sealerRecordedPass(auth)) return { sealer, vouches: true, why: `DMARC passed at trusted ARC sealer ${sealer}` };
  const recorded = auth.arc?.upstreamDmarc || 'nothing';
  if (recorded !== 'pass') return { sealer, vouches: false, why: `trusted ARC sealer ${sealer} forwarded it but recorded dmarc=${recorded} on receipt` };
  const recordedFor = auth.arc?.upstreamFrom ?? '';
  const what = recordedFor ? `for From: ${recordedFor}, not ${fromDomain}` : 'without naming the From: domain (no header.from)';
  return { sealer, vouches: false, why: `trusted ARC sealer ${sealer} forwarded it but recorded dmarc=pass ${what}` };
}

/** A result a DNS failure kept from being known: the rule that asks cannot be decided. */
export type Undecided = 'undecided';

/**
 * Does the message have this authentication result? 'undecided' when the
 * answer hangs on a look-up that failed temporarily: a rule must not block
 * (or allow) mail because a resolver was down.
 */
export function authHas(auth: AuthView | undefined, token: AuthToken, fromDomain: string): boolean | Undecided {
  if (!auth) return token === 'none';
  // Results about the From: domain count only for the From: the rules read.
  const sameFrom = sameFromDomain(auth, fromDomain);
  const spf = auth.spf.result === 'pass';
  const dkim = auth.dkim.some((d) => d.result === 'pass');
  const dmarc = sameFrom && dmarcPass(auth);
  const spfAlignedTemp = alignedSpfTempError(auth.spf, auth.fromDomain);
  const dkimAlignedTemp = !!alignedDkimTempError(auth.dkim, auth.fromDomain);
  const known = (value: boolean, unknown: boolean): boolean | Undecided => (value ? true : unknown ? 'undecided' : false);
  switch (token) {
    case 'spf':
      return known(spf, auth.spf.result === 'temperror');
    case 'dkim':
      return known(dkim, auth.dkim.some((d) => d.result === 'temperror'));
    case 'dmarc':
      return known(dmarc, sameFrom && (auth.dmarc.result === 'temperror' || spfAlignedTemp || dkimAlignedTemp));
    case 'aligned':
      return known(fromAuthenticated(auth, fromDomain), sameFrom && (spfAlignedTemp || dkimAlignedTemp));
    case 'spf-aligned':
      return known(sameFrom && spf && auth.spf.aligned, sameFrom && spfAlignedTemp);
    case 'dkim-aligned':
      return known(sameFrom && alignedDkim(auth), sameFrom && dkimAlignedTemp);
    case 'none': {
      if (spf || dkim || dmarc) return false;
      const anyTemp = auth.spf.result === 'temperror' || auth.dmarc.result === 'temperror' || auth.dkim.some((d) => d.result === 'temperror');
      return anyTemp ? 'undecided' : true;
    }
  }
}
