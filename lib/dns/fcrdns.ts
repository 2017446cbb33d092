import { isIP } from 'node:net';
import { plainIp } from '../util/ip';
import { DnsTempError, type DnsResolver } from './resolver';

export interface ConfirmedNames {
  /** PTR names of the address whose A/AAAA records include it again. */
  names: string[];
  /** A look-up failed temporarily: a name may be missing from `names`. */
  tempError: boolean;
}

/** PTR names checked per address (a PTR set can be long and is the client's to choose). */
const MAX_NAMES = 5;

const memo = new WeakMap<object, Promise<ConfirmedNames>>();

async function lookUp(ip: string, dns: DnsResolver): Promise<ConfirmedNames> {
  if (!isIP(ip)) return { names: [], tempError: false };
  const confirmed: string[] = [];
  try {
    const ptrs = ((await dns.reverse(ip)) as string[]).map((n) => n.toLowerCase().replace(/\.$/, ''));
    for (const name of ptrs.slice(0, MAX_NAMES)) {
      const addresses = (await dns.resolve(name, isIP(ip) === 6 ? 'AAAA' : 'A')) as string[];
      if (addresses.includes(ip)) confirmed.push(name);
    }
    return { names: confirmed, tempError: false };
  } catch (err) {
    if (err instanceof DnsTempError) return { names: confirmed, tempError: true };
    throw err;
  }
}

/**
 * Forward-confirmed reverse DNS (FCrDNS) of a client: the names its PTR
 * records give whose own addresses include it again. A PTR alone proves
 * nothing: whoever holds an address writes its PTR, "mail.yourbank.com"
 * included. Looked up once per `owner` (a message context).
 */
export function confirmedNames(owner: object, ip: string, dns: DnsResolver): Promise<ConfirmedNames> {
  let answer = memo.get(owner);
  if (!answer) {
    answer = lookUp(plainIp(ip), dns);
    memo.set(owner, answer);
  }
  return answer;
}
