import { plainIp } from '../../util/ip';
import { BlockList, isIP, isIPv4 } from 'node:net';
import { networkInterfaces } from 'node:os';
import { expandIPv6 } from '../../dns/resolver';

/** Loopback, private, link-local and unique-local ranges: internal clients, never looked up. */
const INTERNAL = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.168.0.0', 16],
] as const) {
  INTERNAL.addSubnet(net, bits, 'ipv4');
}
for (const [net, bits] of [
  ['::1', 128],
  ['::', 128],
  ['fc00::', 7],
  ['fe80::', 10],
] as const) {
  INTERNAL.addSubnet(net, bits, 'ipv6');
}

/** An IPv4 address written as IPv6 (::ffff:1.2.3.4) becomes plain IPv4; IPv6 is written out in full. */
export function normaliseIp(ip: string): string {
  const plain = plainIp(ip);
  return isIP(plain) === 6 ? expandIPv6(plain) : plain;
}

export function isInternalIp(ip: string): boolean {
  const v = isIP(ip);
  if (!v) return false;
  return INTERNAL.check(ip, v === 4 ? 'ipv4' : 'ipv6');
}

export function sameIp(a: string, b: string): boolean {
  if (!isIP(a) || !isIP(b)) return false;
  return normaliseIp(a) === normaliseIp(b);
}

/** The /24 (IPv4) or /64 (IPv6) an address belongs to, written as a CIDR. */
export function networkOf(ip: string): string {
  const n = normaliseIp(ip);
  if (isIPv4(n)) return `${n.split('.').slice(0, 3).join('.')}.0/24`;
  const groups = n.split(':').slice(0, 4).map((g) => g.replace(/^0+(?=.)/, ''));
  return `${groups.join(':')}::/64`;
}

/**
 * The block one holder is typically given, written as a CIDR: an IPv6 /48
 * (a site; a /64 is one LAN of it), an IPv4 /24. Bounds what one network's
 * flood may hold in the memory store (see WriteHints).
 */
export function siteNetworkOf(ip: string): string {
  const n = normaliseIp(ip);
  if (isIPv4(n)) return networkOf(n);
  const groups = n.split(':').slice(0, 3).map((g) => g.replace(/^0+(?=.)/, ''));
  return `${groups.join(':')}::/48`;
}

/**
 * The block a holder of many networks typically has, written as a CIDR: an
 * IPv6 /32 (a LIR's usual allocation, with 65,536 /48s in it), an IPv4 /16.
 * The memory store's second, looser bound (see WriteHints.block).
 */
export function holderBlockOf(ip: string): string {
  const n = normaliseIp(ip);
  if (isIPv4(n)) return `${n.split('.').slice(0, 2).join('.')}.0.0/16`;
  const groups = n.split(':').slice(0, 2).map((g) => g.replace(/^0+(?=.)/, ''));
  return `${groups.join(':')}::/32`;
}

/** The DNS list query name of an address: reversed octets (IPv4) or nibbles (IPv6). */
export function reversedLabels(ip: string): string {
  const n = normaliseIp(ip);
  if (isIPv4(n)) return n.split('.').reverse().join('.');
  return n.replace(/:/g, '').split('').reverse().join('.');
}

/**
 * A return code pattern: an IPv4 address whose octets may be `*`
 * (`127.0.0.2`, `127.0.*.3`, `127.255.255.*`).
 */
export function codePattern(text: string): RegExp | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  if (!parts.every((p) => p === '*' || (/^\d{1,3}$/.test(p) && Number(p) <= 255))) return null;
  return new RegExp(`^${parts.map((p) => (p === '*' ? '\\d{1,3}' : String(Number(p)))).join('\\.')}$`);
}

/** The machine's own addresses (for "HELO claims to be us"). */
export function localAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const info of list ?? []) out.push(normaliseIp(info.address.replace(/%.*$/, '')));
  }
  return out;
}

/** A shell-style pattern (`*`, `?`) as an anchored, case-insensitive regex. */
export function globToRegex(pattern: string): RegExp {
  const body = pattern
    .split('')
    .map((ch) => (ch === '*' ? '.*' : ch === '?' ? '.' : ch.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&')))
    .join('');
  return new RegExp(`^${body}$`, 'i');
}
