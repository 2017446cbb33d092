import { isIP, isIPv4 } from 'node:net';
import { DnsTempError, type DnsResolver } from '../../dns/resolver';
import type { Hit } from '../../score/types';
import type { Logger } from '../types';
import { reversedLabels } from './net';
import type { ZoneSettings } from './settings';

/** Symbols every DNS list shares; the listing symbols come from each zone's return codes. */
export const DNSBL_TEMPERROR = 'DNSBL_TEMPERROR';
export const DNSBL_BLOCKED = 'DNSBL_BLOCKED';

const WARN_EVERY_MS = 10 * 60 * 1000;

/**
 * Queries DNS block and allow lists through the shared resolver (configured
 * servers, hard deadline, TTL cache), all zones in parallel. An answer that
 * means "refused" (127.255.255.x, 127.0.0.1, anything outside 127/8) is an
 * error symbol with score 0, never a listing: a resolver the list operator
 * blocks must not turn into false positives.
 */
export class DnsLists {
  private readonly lastWarned = new Map<string, number>();

  constructor(
    private readonly dns: DnsResolver,
    private readonly zones: ZoneSettings[],
    private readonly log: Logger,
    private readonly clock: () => number,
  ) {}

  get hasIpZones(): boolean {
    return this.zones.some((z) => z.enabled && z.type === 'ip');
  }

  async checkIp(ip: string): Promise<Hit[]> {
    const v6 = isIP(ip) === 6 && !/^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(ip);
    if (!isIP(ip)) return [];
    const zones = this.zones.filter((z) => z.enabled && z.type === 'ip' && (!v6 || z.ipv6));
    const labels = reversedLabels(ip);
    const results = await Promise.all(zones.map((z) => this.query(z, `${labels}.${z.zone}`, ip)));
    return results.flat();
  }

  async checkDomain(domain: string, source: 'mail_from' | 'header_from'): Promise<Hit[]> {
    const d = domain.toLowerCase().replace(/\.$/, '');
    if (!/^[a-z0-9_-]+(\.[a-z0-9_-]+)+$/.test(d) || isIPv4(d)) return [];
    const zones = this.zones.filter((z) => z.enabled && z.type === 'domain' && z.sources.includes(source));
    const results = await Promise.all(zones.map((z) => this.query(z, `${d}.${z.zone}`, d)));
    return results.flat();
  }

  private async query(zone: ZoneSettings, name: string, subject: string): Promise<Hit[]> {
    let answers: string[];
    try {
      answers = (await this.dns.resolve(name, 'A')) as string[];
    } catch (err) {
      const code = err instanceof DnsTempError ? err.code : (err as Error).message;
      return [{ name: DNSBL_TEMPERROR, detail: `${zone.zone}: ${code}` }];
    }
    if (!answers.length) return [];
    const refused = answers.filter((a) => !a.startsWith('127.') || zone.errorCodes.some((e) => e.pattern.test(a)));
    if (refused.length) {
      this.warn(zone.zone, `mailward reputation: ${zone.zone} answered ${refused.join(', ')} for ${name}: the list refuses queries from this resolver (public or rate-limited resolver?); the answer is ignored`);
      return [{ name: DNSBL_BLOCKED, detail: `${zone.zone} answered ${refused.join(', ')} (query refused)` }];
    }
    const hits: Hit[] = [];
    for (const answer of answers) {
      const code = zone.codes.find((c) => c.pattern.test(answer));
      if (code) hits.push({ name: code.symbol, detail: `${subject} in ${zone.zone} (${answer})` });
      else this.log.debug(`mailward reputation: ${zone.zone} answered ${answer} for ${subject}, which no return code maps`);
    }
    return hits;
  }

  private warn(zone: string, message: string): void {
    const now = this.clock();
    const last = this.lastWarned.get(zone) ?? -Infinity;
    if (now - last < WARN_EVERY_MS) return;
    this.lastWarned.set(zone, now);
    this.log.warn(message);
  }
}
