import type { MessageContext } from '../../message';

/**
 * The part of the auth module's `ctx.notes.auth` the rules read
 * (lib/checks/auth/results.ts AuthResults). Read structurally: when the auth
 * module did not run, or left something else, the message counts as not
 * authenticated.
 */
export interface AuthView {
  fromDomain: string;
  spf: { result: string; domain: string; aligned: boolean };
  dkim: { result: string; domain: string; aligned: boolean }[];
  dmarc: { result: string };
}

export function authView(ctx: MessageContext): AuthView | undefined {
  const a = ctx.notes.auth as Partial<AuthView> | undefined;
  if (!a || typeof a !== 'object' || !a.spf || !Array.isArray(a.dkim) || !a.dmarc) return undefined;
  return a as AuthView;
}

export const AUTH_TOKENS = ['spf', 'dkim', 'dmarc', 'aligned', 'spf-aligned', 'dkim-aligned', 'none'] as const;
export type AuthToken = (typeof AUTH_TOKENS)[number];

/** The From: domain is authenticated: DMARC pass, or SPF or DKIM passing aligned with it. */
export function fromAuthenticated(auth: AuthView | undefined): boolean {
  if (!auth) return false;
  return auth.dmarc.result === 'pass' || (auth.spf.result === 'pass' && auth.spf.aligned) || auth.dkim.some((d) => d.result === 'pass' && d.aligned);
}

export function authHas(auth: AuthView | undefined, token: AuthToken): boolean {
  const spf = auth?.spf.result === 'pass';
  const dkim = !!auth?.dkim.some((d) => d.result === 'pass');
  const dmarc = auth?.dmarc.result === 'pass';
  switch (token) {
    case 'spf':
      return spf;
    case 'dkim':
      return dkim;
    case 'dmarc':
      return dmarc;
    case 'aligned':
      return fromAuthenticated(auth);
    case 'spf-aligned':
      return spf && !!auth?.spf.aligned;
    case 'dkim-aligned':
      return !!auth?.dkim.some((d) => d.result === 'pass' && d.aligned);
    case 'none':
      return !spf && !dkim && !dmarc;
  }
}
