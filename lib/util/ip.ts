import { BlockList, isIP } from 'node:net';

/**
 * An IPv4 client written as IPv6 (`::ffff:192.0.2.1`, or `::ffff:c000:201` as
 * some stacks print it) becomes plain IPv4; anything else is returned as it
 * is. A dual-stack listener reports IPv4 clients that way, and reverse DNS,
 * DNSBLs, reputation keys and rules all want the IPv4 address.
 */
export function plainIp(ip: string): string {
  const dotted = /^(?:0{0,4}:){0,5}:?ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (dotted) return dotted[1]!;
  const hex = /^(?:0{0,4}:){0,5}:?ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(ip);
  if (hex) {
    const high = parseInt(hex[1]!, 16);
    const low = parseInt(hex[2]!, 16);
    return [high >> 8, high & 255, low >> 8, low & 255].join('.');
  }
  return ip;
}

/**
 * A set of addresses and CIDR networks (`192.0.2.10`, `198.51.100.0/24`,
 * `2001:db8::/32`), as operators write them in rules and settings. An entry
 * that is not exactly an address with at most one prefix length is refused.
 */
export class IpSet {
  // One list per family: Node's BlockList also matches IPv4 addresses against
  // IPv6 networks (as ::ffff:a.b.c.d), so `::/0` would take in every IPv4 client.
  private readonly v4 = new BlockList();
  private readonly v6 = new BlockList();

  constructor(readonly entries: string[] = []) {
    for (const entry of entries) addEntry(this.v4, this.v6, entry);
  }

  has(ip: string): boolean {
    const address = plainIp(ip);
    const family = isIP(address);
    if (family === 4) return this.v4.check(address, 'ipv4');
    return family === 6 && this.v6.check(address, 'ipv6');
  }

  get size(): number {
    return this.entries.length;
  }
}

function addEntry(v4: BlockList, v6: BlockList, entry: string): void {
  const parts = entry.split('/');
  const [written] = parts;
  let prefix = parts[1];
  // IPv4 written as IPv6 (::ffff:192.0.2.0, /96 and longer) is that IPv4 address or network, as a client's is.
  const address = plainIp(written ?? '');
  if (address !== written && prefix !== undefined) {
    const bits = Number(prefix);
    if (!/^\d+$/.test(prefix) || bits < 96 || bits > 128) throw new Error(`${JSON.stringify(entry)}: an IPv4-mapped network needs a prefix of 96 to 128`);
    prefix = String(bits - 96);
  }
  const family = isIP(address ?? '');
  if (!family || parts.length > 2) throw new Error(`${JSON.stringify(entry)} is not an IP address or CIDR network`);
  const type = family === 6 ? 'ipv6' : 'ipv4';
  const list = family === 6 ? v6 : v4;
  if (prefix === undefined) return list.addAddress(address!, type);
  const bits = Number(prefix);
  if (!/^\d+$/.test(prefix) || bits > (family === 6 ? 128 : 32)) throw new Error(`${JSON.stringify(entry)} has a bad prefix length`);
  list.addSubnet(address!, bits, type);
}

/** Is `text` one IP address or CIDR network? */
export function looksLikeIpOrCidr(text: string): boolean {
  const parts = text.split('/');
  return parts.length <= 2 && !!isIP(parts[0] ?? '') && (parts[1] === undefined || /^\d+$/.test(parts[1]));
}
