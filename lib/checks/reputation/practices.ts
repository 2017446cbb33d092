import { isIP } from 'node:net';
import { getDomain } from 'tldts';
import { DnsTempError, type DnsResolver } from '../../dns/resolver';
import type { MessageContext } from '../../message';
import type { Hit } from '../../score/types';
import { sameIp } from './net';
import type { ReputationSettings } from './settings';

/** What the connect check learnt about the client's name, for the HELO check. */
export interface RdnsNote {
  /** PTR names found ([] when none). */
  names: string[];
  /** The PTR name that resolves back to the client IP, if any. */
  confirmed?: string;
  temperror?: boolean;
}

export const RDNS_NOTE = 'reputation.rdns';

const MAX_PTR_NAMES = 3;
const HOSTNAME = /^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?)*$/i;

function tempDetail(err: unknown): string {
  return err instanceof DnsTempError ? `${err.query}: ${err.code}` : (err as Error).message;
}

/**
 * Connect phase: the client's PTR and whether it is forward-confirmed
 * (FCrDNS). Sets ctx.ptr (the tracking row records it).
 */
export async function checkReverseDns(ctx: MessageContext, dns: DnsResolver): Promise<Hit[]> {
  let names: string[];
  if (typeof ctx.ptr === 'string' && ctx.ptr) {
    names = [ctx.ptr];
  } else if (ctx.ptr === null) {
    names = [];
  } else {
    try {
      names = ((await dns.reverse(ctx.ip)) as string[]).map((n) => n.toLowerCase().replace(/\.$/, ''));
    } catch (err) {
      ctx.notes[RDNS_NOTE] = { names: [], temperror: true } satisfies RdnsNote;
      return [{ name: 'RDNS_TEMPERROR', detail: tempDetail(err) }];
    }
  }
  if (!names.length) {
    ctx.ptr = null;
    ctx.notes[RDNS_NOTE] = { names: [] } satisfies RdnsNote;
    return [{ name: 'RDNS_NONE', detail: `no PTR record for ${ctx.ip}` }];
  }
  const note: RdnsNote = { names };
  const type = isIP(ctx.ip) === 6 && !ctx.ip.toLowerCase().startsWith('::ffff:') ? 'AAAA' : 'A';
  const clientIp = ctx.ip.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, '$1');
  let temp: string | undefined;
  for (const name of names.slice(0, MAX_PTR_NAMES)) {
    if (!HOSTNAME.test(name)) continue;
    try {
      const addresses = (await dns.resolve(name, type)) as string[];
      if (addresses.some((a) => sameIp(a, clientIp))) {
        note.confirmed = name;
        break;
      }
    } catch (err) {
      temp = tempDetail(err);
    }
  }
  ctx.ptr = note.confirmed ?? names[0]!;
  ctx.notes[RDNS_NOTE] = note;
  if (note.confirmed) return [];
  if (temp) {
    note.temperror = true;
    return [{ name: 'RDNS_TEMPERROR', detail: temp }];
  }
  return [{ name: 'RDNS_NOT_FCRDNS', detail: `PTR ${names.slice(0, MAX_PTR_NAMES).join(', ')} does not resolve back to ${ctx.ip}` }];
}

/** The address in a HELO that is an address literal ([1.2.3.4], [IPv6:...]) or a bare IP. */
function heloAddress(helo: string): { ip: string; bracketed: boolean } | null {
  const literal = /^\[(?:ipv6:)?([^\]]+)\]$/i.exec(helo);
  if (literal && isIP(literal[1]!)) return { ip: literal[1]!, bracketed: true };
  if (isIP(helo)) return { ip: helo, bracketed: false };
  return null;
}

function registrable(name: string): string {
  return getDomain(name, { allowPrivateDomains: false }) ?? name;
}

/** HELO phase: the HELO name against RFC 5321's form, the client IP, its PTR and our own identity. */
export function checkHelo(ctx: MessageContext, settings: ReputationSettings['practices']): Hit[] {
  const helo = ctx.helo.trim().toLowerCase().replace(/\.$/, '');
  if (!helo) return [];
  const hits: Hit[] = [];
  const ourNames = new Set([ctx.localHostname.toLowerCase(), ...settings.localNames].filter((n) => n && n !== 'localhost'));

  const address = heloAddress(helo);
  if (address) {
    if (!address.bracketed) hits.push({ name: 'HELO_BARE_IP', detail: `HELO ${helo} is an IP address without [brackets]` });
    if (!sameIp(address.ip, ctx.ip)) {
      if (settings.localIps.some((ip) => sameIp(ip, address.ip))) {
        hits.push({ name: 'HELO_FORGED_LOCAL', detail: `HELO ${helo} is our own address, the client is ${ctx.ip}` });
      } else {
        hits.push({ name: 'HELO_IP_MISMATCH', detail: `HELO ${helo} is not the client's address ${ctx.ip}` });
      }
    }
    return hits;
  }

  if (ourNames.has(helo)) return [{ name: 'HELO_FORGED_LOCAL', detail: `HELO ${helo} is our own name` }];
  if (!HOSTNAME.test(helo) || !helo.includes('.')) {
    return [{ name: 'HELO_NOT_FQDN', detail: `HELO ${JSON.stringify(ctx.helo.slice(0, 100))} is not a fully qualified domain name` }];
  }
  const rdns = ctx.notes[RDNS_NOTE] as RdnsNote | undefined;
  const ptr = rdns?.confirmed ?? (typeof ctx.ptr === 'string' ? ctx.ptr : undefined);
  if (ptr && registrable(ptr) !== registrable(helo)) {
    hits.push({ name: 'HELO_PTR_MISMATCH', detail: `HELO ${helo} is not in the domain of the PTR ${ptr}` });
  }
  return hits;
}
