import { isIP } from 'node:net';
import { plainIp } from '../util/ip';
import { DnsTempError, type DnsResolver } from './resolver';

export interface ConfirmedNames {
  /** PTR names of the address whose A/AAAA records include it again. */
  names: string[];
  /** A look-up failed temporarily: a name may be missing from `names`. */
  tempError: boolean;
  /**
   * With tempError: the PTR names whose own A/AAAA look-up failed. Absent
   * when the PTR look-up itself failed (then any name may be missing).
   */
  pending?: string[];
}

/** PTR names checked per address (a PTR set can be long and is the client's to choose). */
const MAX_NAMES = 5;

const memo = new WeakMap<object, Promise<ConfirmedNames>>();

async function lookUp(ip: string, dns: DnsResolver): Promise<ConfirmedNames> {
  if (!isIP(ip)) return { names: [], tempError: false };
  let ptrs: string[];
  try {
    ptrs = ((await dns.reverse(ip)) as string[]).map((n) => n.toLowerCase().replace(/\.$/, ''));
  } catch (err) {
    if (err instanceof DnsTempError) return { names: [], tempError: true };
    throw err;
  }
  // Each name on its own (side by side): one that does not answer says nothing about the others.
  const answers = await Promise.allSettled(ptrs.slice(0, MAX_NAMES).map((name) => dns.resolve(name, isIP(ip) === 6 ? 'AAAA' : 'A')));
  const confirmed: string[] = [];
  const pending: string[] = [];
  answers.forEach((answer, i) => {
    const name = ptrs[i]!;
    if (answer.status === 'fulfilled') {
      if ((answer.value as string[]).includes(ip)) confirmed.push(name);
    } else if (answer.reason instanceof DnsTempError) pending.push(name);
    else throw answer.reason;
  });
  return pending.length ? { names: confirmed, tempError: true, pending } : { names: confirmed, tempError: false };
}

/**
 * Could a look-up that failed have confirmed a name `wanted` accepts? The PTR
 * names are the client's to write: one in a zone of its own that never answers
 * could never be the partner's, and must not leave a check undecided.
 */
export function pendingCouldMatch(result: ConfirmedNames, wanted: (name: string) => boolean): boolean {
  return result.tempError && (result.pending === undefined || result.pending.some(wanted));
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
