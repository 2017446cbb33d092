import { verifyASChain } from 'mailauth';
import { normaliseDomain } from './align';

type Lookup = (name: string, type: string) => Promise<any[]>;

/** An older hop's seal key could not be fetched, after every newer seal verified. */
export interface OlderSealTempError {
  /** Instance (i=) of the seal whose key failed. */
  instance: number;
  /** Its key name, `s._domainkey.d`. */
  key: string;
  /** dmarc= in the newest ARC-Authentication-Results, which the verified newest seal covers ('' when absent). */
  upstreamDmarc: string;
  /** header.from of that dmarc= result ('' when it names none). */
  upstreamFrom: string;
}

/**
 * mailauth reports an ARC chain whose older seal's key could not be fetched
 * (time-out, SERVFAIL) as a plain fail without a reason, the same as one
 * whose key does not exist. Only when that key was one of `tempErrorNames`
 * may this be a temporary error, and only when every newer seal verified:
 * mailauth checks the seals newest first and stops at the first that fails,
 * so a name in `tempErrorNames` alone proves nothing (a DKIM-Signature may
 * name the same key, and a forged newest seal is never verified at all).
 *
 * So mailauth's own verifyASChain is asked again, with a resolver that
 * records each seal key it asks for and fails at once for a name that
 * already failed (the answers that came are cached: no new waits). Seal keys
 * are asked for newest first, one per seal, the next only after a seal
 * verified: when the last one asked for is a temporary failure and is not
 * the newest seal's, the seals above it verified.
 */
export async function olderSealKeyTempError(arcData: any, lookup: Lookup, tempErrorNames: string[], minBitLength: number): Promise<OlderSealTempError | undefined> {
  const chain: any[] | undefined = arcData?.chain;
  if (!Array.isArray(chain) || chain.length < 2 || arcData.error) return undefined;
  // A failing newest message signature fails the chain whatever the older seals say.
  if (arcData.lastEntry?.messageSignature?.status?.result !== 'pass') return undefined;
  const asked: { key: string; temporary: boolean }[] = [];
  const probe: Lookup = async (name, type) => {
    const entry = { key: normaliseDomain(name), temporary: false };
    asked.push(entry);
    if (tempErrorNames.includes(entry.key)) {
      entry.temporary = true;
      throw Object.assign(new Error(`${type} ${name}: failed before`), { code: 'ETIMEOUT' });
    }
    try {
      return await lookup(name, type);
    } catch (err) {
      entry.temporary = (err as { code?: string }).code !== 'ENOTFOUND';
      throw err;
    }
  };
  try {
    await verifyASChain(arcData, { resolver: probe as any, minBitLength });
    return undefined; // every seal verifies: the chain failed for another reason
  } catch {
    // Expected: the seal whose key did not come cannot verify.
  }
  const last = asked[asked.length - 1];
  if (asked.length < 2 || !last?.temporary) return undefined;
  const aar = arcData.lastEntry?.['arc-authentication-results']?.parsed;
  return {
    instance: chain.length - (asked.length - 1),
    key: last.key,
    upstreamDmarc: String(aar?.dmarc?.value ?? '').toLowerCase(),
    // header.from is a domain (RFC 7489 11.2); some write the address.
    upstreamFrom: normaliseDomain(String(aar?.dmarc?.header?.from ?? '').replace(/^.*@/, '')),
  };
}
