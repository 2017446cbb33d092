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
