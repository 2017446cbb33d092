import { firstHeader, type MessageContext } from '../../message';
import type { Ledger } from '../../score/ledger';
import type { Hit } from '../../score/types';
import type { StateStore } from '../../state/types';
import { authResults, fromDomainAuthenticated, unresolvedAlignedAuth } from '../auth/results';
import { templateFingerprint, type TemplateFingerprint } from './fingerprint';
import { bodyTexts, type MessageParts } from './parts';
import type { BulkSettings } from './settings';

const HOUR = 3600_000;
const MARKETING = /\bunsubscribe\b|\bopt[- ]?out\b|no longer wish to receive|manage (?:your )?(?:email )?(?:preferences|subscription)|\bnewsletter\b|special offer|limited time/i;

/**
 * Counts a fingerprint across recipients and nodes (shared state) in hourly
 * buckets, so the window is computed from timestamps on any node. Returns the
 * number of similar messages in the window, this one included.
 */
export async function countSimilar(state: StateStore, fp: TemplateFingerprint, recipients: number, now: number, windowHours: number): Promise<number> {
  const hour = Math.floor(now / HOUR);
  const ttl = (windowHours + 1) * 3600;
  await Promise.all(fp.bands.map((band) => state.incrBy(`content:bulk:${band}:${hour}`, Math.max(1, recipients), ttl)));
  let best = 0;
  for (const band of fp.bands) {
    const keys = Array.from({ length: windowHours }, (_, i) => `content:bulk:${band}:${hour - i}`);
    const values = await state.mget(keys);
    best = Math.max(best, values.reduce((sum, v) => sum + (Number(v) || 0), 0));
  }
  return best;
}

/**
 * Authenticated: DMARC pass, or SPF or DKIM aligned with the From: domain.
 * Undefined when auth did not run or a DNS failure left it undecided (a
 * resolver outage must not count against a sender's bulk mail).
 */
function authenticated(ctx: MessageContext): { ok: boolean; detail: string } | undefined {
  const auth = authResults(ctx);
  if (!auth) return undefined;
  const ok = fromDomainAuthenticated(auth);
  if (!ok && unresolvedAlignedAuth(auth, auth.fromDomain)) return undefined;
  const dkim = auth.dkim.length ? auth.dkim.map((d) => d.result).join('/') : 'none';
  return { ok, detail: `spf=${auth.spf.result} dkim=${dkim} dmarc=${auth.dmarc.result}` };
}

/**
 * BULK (about zero on its own) and, only together with it, the bad signals
 * that make bulk unwanted: no authentication, a poor reputation, marketing
 * without List-Unsubscribe.
 */
export async function bulkHits(ctx: MessageContext, ledger: Ledger, parts: MessageParts, state: StateStore, now: number, s: BulkSettings): Promise<Hit[]> {
  const fp = templateFingerprint(parts.text, s.minWords);
  if (!fp) return [];
  ctx.notes.contentFingerprint = fp.key;
  let count: number;
  try {
    count = await countSimilar(state, fp, ctx.rcptTo.length, now, s.windowHours);
  } catch (err) {
    return [{ name: 'BULK_ERROR', detail: `counting fingerprints failed: ${(err as Error).message}` }];
  }
  if (count < s.threshold) return [];
  const hits: Hit[] = [{ name: 'BULK', detail: `${count} similar messages in ${s.windowHours} h (template ${fp.key.slice(0, 12)})` }];
  const auth = authenticated(ctx);
  if (auth && !auth.ok) hits.push({ name: 'BULK_UNAUTHENTICATED', detail: auth.detail });
  const reputation = ledger.groups.reputation ?? 0;
  if (reputation >= s.badReputationScore) {
    const bad = ledger.symbols.filter((x) => x.group === 'reputation' && x.score > 0).map((x) => x.name);
    hits.push({ name: 'BULK_BAD_REPUTATION', detail: `reputation ${reputation}: ${bad.join(', ')}` });
  }
  if (!firstHeader(ctx, 'list-unsubscribe') && (bodyTexts(parts).some((text) => MARKETING.test(text.slice(0, 64 * 1024))) || /^(bulk|list)$/i.test(firstHeader(ctx, 'precedence') ?? ''))) {
    hits.push({ name: 'BULK_NO_UNSUBSCRIBE', detail: 'marketing mail without a List-Unsubscribe header' });
  }
  return hits;
}
