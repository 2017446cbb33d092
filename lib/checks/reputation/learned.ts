import { isIP } from 'node:net';
import type { StateStore, WriteHints } from '../../state/types';
import { orgDomain } from '../auth/align';
import { holderBlockOf, networkOf, normaliseIp, siteNetworkOf } from './net';
import { EVENT_KINDS, type EventKind, type LearnedSettings } from './settings';

/**
 * Locally learned reputation. Each entity (an IP, its /24 or /64, a sender
 * domain, an organisational domain's aggregate) is one hash in the state store whose fields are `<bucket start>:<kind>`
 * counters. Reading weighs every bucket by 0.5^(age / half-life) and ignores
 * buckets past the horizon, so a reputation drifts back to neutral by itself,
 * on any node, after any pause: no cron, nothing to sweep.
 */

/**
 * `domain`: the events of exactly that sender domain. `org`: the aggregate of
 * an organisational domain, the events of it and of all its subdomains; read
 * only for a subdomain without enough history of its own (see domainJudged).
 */
export type EntityType = 'ip' | 'net' | 'domain' | 'org';

export interface Entity {
  type: EntityType;
  /** Normalised: IP, CIDR (/24, /64), or lower-case domain (for `org`, an organisational domain). */
  id: string;
}

const KEY_PREFIX: Record<EntityType, string> = { ip: 'rep:ip:', net: 'rep:net:', domain: 'rep:dom:', org: 'rep:org:' };

export function entityKey(entity: Entity): string {
  return KEY_PREFIX[entity.type] + entity.id;
}

/**
 * Whom an entity's key belongs to, for the memory store's eviction
 * (WriteHints.group): an IP and its /64 or /24 to their /48 or /24, a domain
 * and its aggregate to the organisational domain. A flood of fresh addresses
 * of one network, or of fresh subdomains of one domain, so pushes out only
 * its own kind's oldest.
 */
export function evictionGroup(entity: Entity): string {
  switch (entity.type) {
    case 'ip':
      return `net:${siteNetworkOf(entity.id)}`;
    case 'net':
      // A net's id is a CIDR networkOf wrote: its address part is the network's first address.
      return `net:${siteNetworkOf(entity.id.slice(0, entity.id.indexOf('/')))}`;
    case 'domain':
      return `org:${orgEntity(entity.id).id}`;
    case 'org':
      return `org:${entity.id}`;
  }
}

/**
 * The looser group an IP's or network's key also belongs to (WriteHints.block):
 * its IPv6 /32 or IPv4 /16, so one holder of many /48s (or /24s) cannot fill
 * the memory store's kept reputation either. None for domains: registering
 * organisational domains costs each its own.
 */
export function evictionBlock(entity: Entity): string | undefined {
  switch (entity.type) {
    case 'ip':
      return `net:${holderBlockOf(entity.id)}`;
    case 'net':
      return `net:${holderBlockOf(entity.id.slice(0, entity.id.indexOf('/')))}`;
    default:
      return undefined;
  }
}

export function ipEntity(ip: string): Entity {
  return { type: 'ip', id: normaliseIp(ip) };
}

export function netEntity(ip: string): Entity {
  return { type: 'net', id: networkOf(ip) };
}

export function domainEntity(domain: string): Entity {
  return { type: 'domain', id: domain.toLowerCase().replace(/\.$/, '') };
}

/** The aggregate of the organisational domain of `domain` (public suffix + one label). */
export function orgEntity(domain: string): Entity {
  const exact = domainEntity(domain).id;
  return { type: 'org', id: orgDomain(exact) || exact };
}

/**
 * What an event of a sender domain is recorded on: the domain itself, and the
 * aggregate of its organisational domain (public suffix + one label, private
 * suffixes such as herokuapp.com counting as suffixes), which every subdomain
 * and the organisational domain itself add to. The aggregate is a key of its
 * own (rep:org:), never the organisational domain's own rep:dom: key: one
 * customer's u7.esp.example must not make esp.example's own mail bad.
 */
export function domainEntities(domain: string): Entity[] {
  return [domainEntity(domain), orgEntity(domain)];
}

/**
 * Decayed events (of any kind) a subdomain needs before it is judged by its
 * own reputation alone; with fewer, a bad organisational aggregate judges it.
 * One ham event must not shed an organisation's bad name for a fresh
 * subdomain (x9.spammer.example).
 */
export const MIN_OWN_HISTORY = 3; // docs/reputation.md says "fewer than 3 decayed events"

/** Has an entity enough (decayed) events to be judged by them alone? */
export function hasOwnHistory(counts: Counts): boolean {
  return Object.values(counts).reduce((sum, n) => sum + n, 0) >= MIN_OWN_HISTORY;
}

/**
 * IP, CIDR (as networkOf writes it) or domain, as typed by an operator;
 * `org:DOMAIN` names the aggregate of DOMAIN's organisational domain.
 */
export function parseEntity(text: string): Entity {
  const t = text.trim().toLowerCase();
  if (t.startsWith('org:')) {
    const d = parseEntity(t.slice(4));
    if (d.type !== 'domain') throw new Error(`${JSON.stringify(text)}: org: takes a domain, e.g. org:esp.example`);
    return orgEntity(d.id);
  }
  if (isIP(t)) return ipEntity(t);
  const cidr = /^(.+)\/(\d+)$/.exec(t);
  if (cidr && isIP(cidr[1]!)) {
    const expected = isIP(cidr[1]!) === 4 ? '24' : '64';
    if (cidr[2] !== expected) throw new Error(`only /24 (IPv4) and /64 (IPv6) networks are tracked, e.g. ${networkOf(cidr[1]!)}`);
    return { type: 'net', id: networkOf(cidr[1]!) };
  }
  if (/^[a-z0-9_-]+(\.[a-z0-9_-]+)+\.?$/.test(t)) return domainEntity(t);
  throw new Error(`${JSON.stringify(text)} is neither an IP address, a network (a.b.c.0/24) nor a domain`);
}

export type Counts = Record<EventKind, number>;

export function zeroCounts(): Counts {
  return { spam: 0, ham: 0, trap: 0, complaint: 0, invalid: 0 };
}

export interface Decayed {
  /** Decayed event counts per kind. */
  counts: Counts;
  /** Raw (undecayed) counts within the horizon. */
  raw: Counts;
  /** Fields past the horizon, to prune. */
  stale: string[];
  /** Start of the newest bucket with an event (ms), or 0. */
  newest: number;
}

/** Weighs each bucket by its age. Pure: `now` comes from the injected clock. */
export function decay(fields: Record<string, string>, now: number, s: LearnedSettings): Decayed {
  const out: Decayed = { counts: zeroCounts(), raw: zeroCounts(), stale: [], newest: 0 };
  for (const [field, value] of Object.entries(fields)) {
    const sep = field.indexOf(':');
    const [startText, writerHorizon] = field.slice(0, sep).split('.');
    const start = Number(startText) * 1000;
    // Fields written before they named their writer's horizon: by a node configured as this one, presumably.
    const horizonMs = (writerHorizon === undefined ? s.horizonSeconds : Number(writerHorizon)) * 1000;
    const kind = field.slice(sep + 1) as EventKind;
    const n = Number(value);
    if (!Number.isFinite(start) || !(horizonMs > 0) || !EVENT_KINDS.includes(kind) || !Number.isFinite(n)) {
      out.stale.push(field);
      continue;
    }
    // Dropped once past the horizon of the node that wrote it, never by a node with a shorter
    // one: that one just does not count it (a 1-day node erased a 30-day node's trap hits).
    if (now - start >= horizonMs) {
      out.stale.push(field);
      continue;
    }
    if (now - start >= s.horizonSeconds * 1000) continue;
    // Events are spread over their bucket: age them from its middle.
    const age = Math.max(0, now - start - (s.bucketSeconds * 1000) / 2);
    out.counts[kind] += n * 0.5 ** (age / (s.halfLifeSeconds * 1000));
    out.raw[kind] += n;
    out.newest = Math.max(out.newest, start);
  }
  return out;
}

export interface ReputationScore {
  /** Learned from our verdicts (spam minus ham), capped at ±verdictCap. */
  verdict: number;
  /** From evidence that is not our own opinion: trap hits, complaints, unknown recipients. */
  evidence: number;
  /** verdict + evidence: positive is bad, negative good, 0 neutral. */
  total: number;
}

/**
 * Only the part learned from our own verdicts is capped: that is the part that
 * could feed on itself (rspamd's removed ip_score). Trap hits and complaints
 * are outside evidence and may push a reputation all the way.
 */
export function scoreOf(counts: Counts, s: LearnedSettings): ReputationScore {
  const w = s.weights;
  const rawVerdict = counts.spam * w.spam - counts.ham * w.ham;
  const verdict = Math.max(-s.verdictCap, Math.min(s.verdictCap, rawVerdict));
  const evidence = counts.trap * w.trap + counts.complaint * w.complaint + counts.invalid * w.invalid;
  return { verdict, evidence, total: verdict + evidence };
}

/** counts(a) - counts(b), never below 0 (an IP's neighbours = its net minus itself). */
export function subtractCounts(a: Counts, b: Counts): Counts {
  const out = zeroCounts();
  for (const k of EVENT_KINDS) out[k] = Math.max(0, a[k] - b[k]);
  return out;
}

/**
 * How strongly a REP_* symbol fires: bad reputations scale up to `saturation`,
 * good ones (which only our verdicts can earn) up to `verdictCap`.
 * Returns 0 when the reputation is close enough to neutral.
 */
export function symbolFactor(total: number, s: LearnedSettings): number {
  const f = total > 0 ? total / s.saturation : s.verdictCap > 0 ? -total / s.verdictCap : 0;
  const clamped = Math.min(1, f);
  return clamped >= NEUTRAL_FACTOR ? Math.round(clamped * 1000) / 1000 : 0;
}

/** Below this fraction of a symbol's weight the reputation counts as neutral. */
export const NEUTRAL_FACTOR = 0.05;

function evictionHints(entity: Entity): WriteHints {
  const block = evictionBlock(entity);
  return block === undefined ? { group: evictionGroup(entity) } : { group: evictionGroup(entity), block };
}

export class LearnedStore {
  constructor(
    private readonly state: StateStore,
    private readonly s: LearnedSettings,
    private readonly clock: () => number,
  ) {}

  /**
   * `start.horizon:kind` (seconds): the field names this node's horizon, so a
   * node with a shorter one leaves it for this one to drop. Written after a
   * dot, where the previous release reads `start.horizon` as a number a
   * fraction of a second past `start`, and so counts and drops it as before
   * (a third `:` part it would delete as malformed).
   */
  private bucketField(now: number, kind: EventKind): string {
    const start = Math.floor(now / 1000 / this.s.bucketSeconds) * this.s.bucketSeconds;
    return `${start}.${Math.round(this.s.horizonSeconds)}:${kind}`;
  }

  /** Counts events for entities (one atomic hash update each; keys expire after the horizon). */
  async record(entities: Entity[], kind: EventKind, n = 1): Promise<void> {
    const now = this.clock();
    const field = this.bucketField(now, kind);
    const ttl = this.s.horizonSeconds + this.s.bucketSeconds;
    await Promise.all(entities.map((e) => this.state.hashIncrBy(entityKey(e), { [field]: n }, ttl, evictionHints(e))));
  }

  async read(entity: Entity, at = this.clock()): Promise<Decayed> {
    const key = entityKey(entity);
    const fields = await this.state.hashGetAll(key);
    const decayed = decay(fields, at, this.s);
    // Pruning is housekeeping: never make the caller wait for it or fail on it.
    if (decayed.stale.length && at >= this.clock()) void this.state.hashDel(key, decayed.stale).catch(() => {});
    return decayed;
  }

  async forget(entity: Entity): Promise<void> {
    await this.state.del(entityKey(entity));
  }
}

/**
 * When a reputation will count as neutral again (ms since the epoch), if no
 * new events arrive: the first moment its REP_* symbol would no longer fire.
 */
export function neutralAt(fields: Record<string, string>, now: number, s: LearnedSettings): number {
  const step = Math.max(s.bucketSeconds, s.halfLifeSeconds / 16) * 1000;
  const end = now + s.horizonSeconds * 1000 + s.bucketSeconds * 1000;
  for (let t = now; t <= end; t += step) {
    if (symbolFactor(scoreOf(decay(fields, t, s).counts, s).total, s) === 0) return t;
  }
  return end;
}
