import { createHash } from 'node:crypto';
import type { StateStore } from '../../state/types';
import { normaliseMessageId } from '../backscatter/signing';
import type { OutboundSettings } from './settings';

/** What is counted per sender. */
export const KINDS = ['sent', 'bulk', 'complaint', 'invalid', 'trap'] as const;
export type Kind = (typeof KINDS)[number];
export type Counts = Record<Kind, number>;

/** The window is kept in this many slices: it slides in steps of window/SLICES. */
const SLICES = 24;

export interface Suspension {
  sender: string;
  since: number;
  /** 0: until reinstated. */
  until: number;
  reason: string;
  counts: Counts;
  node: string;
}

export interface SenderReport {
  sender: string;
  counts: Counts;
  suspension: Suspension | null;
}

const STATS = 'ob:stats:';
const SUSPENDED = 'ob:susp:';
const MID = 'ob:mid:';
const SEEN = 'ob:seen:';
const RCPT = 'ob:rcpt:';
const REINSTATING = 'ob:reinstating:';

/** The seen key of one invalid recipient of one relayed message: shared by the bounce and DSN paths. */
function dsnKey(messageId: string, recipient: string): string {
  return `dsn|${messageId}|${recipient.toLowerCase()}`;
}

function hash(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex').slice(0, 32);
}

/** A recipient as kept with a relayed message's record: hashed, so the state holds no address book. */
export function recipientKey(address: string): string {
  return hash(address.trim().toLowerCase()).slice(0, 16);
}

/** Another reinstate of the same sender is running. */
export class ReinstateBusyError extends Error {}

/** A count that did not reach the shared store (see countOnce). */
export class NotSharedError extends Error {}

function zero(): Counts {
  return { sent: 0, bulk: 0, complaint: 0, invalid: 0, trap: 0 };
}

/** Start (ms) of the oldest slice in the window ending now, for slices of `sliceMs`. */
function windowStartMs(now: number, sliceMs: number): number {
  return (Math.floor(now / sliceMs) - SLICES + 1) * sliceMs;
}

/** A share in per cent, two decimals; more when needed to show it is above `limit` (0.30002% is not 0.3%). */
function percent(n: number, limit?: number): string {
  const shown = (x: number, digits: number) => `${Math.round(x * 100 * 10 ** digits) / 10 ** digits}%`;
  let digits = 2;
  while (limit !== undefined && n > limit && digits < 8 && shown(n, digits) === shown(limit, digits)) digits++;
  return shown(n, digits);
}

/**
 * Per-sender outbound reputation in the shared state: counters in time slices
 * of one hash per sender (atomic increments in Redis, so every node adds to
 * the same numbers), the suspension record, the Message-IDs we relayed and the
 * reports already counted. Windows are computed from timestamps: correct on any
 * node after any pause, no cron.
 */
export class OutboundLedger {
  private readonly sliceMs: number;

  constructor(
    private readonly store: StateStore,
    private readonly settings: Pick<OutboundSettings, 'window' | 'policy' | 'recordSeconds'>,
    private readonly clock: () => number,
    private readonly nodeName = '',
  ) {
    this.sliceMs = Math.max(60_000, Math.floor((settings.window.hours * 3600_000) / SLICES));
  }

  /** Length of one slice of the window: counts are kept (and `--since` rounds) to this. */
  get sliceMinutes(): number {
    return this.sliceMs / 60_000;
  }

  private slice(now = this.clock()): number {
    return Math.floor(now / this.sliceMs);
  }

  private ttl(): number {
    return Math.ceil((this.sliceMs * (SLICES + 1)) / 1000);
  }

  /**
   * The counter fields of the current slice that `counts` adds to
   * (kind.slice.sliceMs -> n). The field names its slice's length: nodes
   * whose window_hours differ share the hash, and a slice number means
   * nothing without its length (one node took another's numbers for slices
   * long past and deleted all its counts).
   */
  private sliceFields(counts: Partial<Counts>): Record<string, number> {
    const slice = this.slice();
    const fields: Record<string, number> = {};
    for (const [kind, n] of Object.entries(counts)) if (n) fields[`${kind}.${slice}.${this.sliceMs}`] = n;
    return fields;
  }

  async add(sender: string, counts: Partial<Counts>): Promise<void> {
    const fields = this.sliceFields(counts);
    if (Object.keys(fields).length) await this.store.hashIncrBy(STATS + sender, fields, this.ttl());
  }

  /**
   * Counts over the window (the current slice and the SLICES-1 before it), or
   * from the slice holding `since` on when that is later; drops older slices.
   */
  async counts(sender: string, since?: number): Promise<Counts> {
    const all = await this.store.hashGetAll(STATS + sender);
    const now = this.clock();
    const windowStart = windowStartMs(now, this.sliceMs);
    const first = since === undefined ? windowStart : Math.max(windowStart, this.slice(since) * this.sliceMs);
    const out = zero();
    const stale: string[] = [];
    for (const [field, value] of Object.entries(all)) {
      const [kind, sliceText, lengthText] = field.split('.') as [Kind, string?, string?];
      // A field without a length was written before fields named theirs: by a node configured as this one, presumably.
      const length = lengthText === undefined ? this.sliceMs : Number(lengthText);
      const start = Number(sliceText) * length;
      if (!(KINDS as readonly string[]).includes(kind) || !Number.isFinite(start) || !(length > 0)) continue;
      // A slice is dropped once it is past the window of the node that wrote it (its window is
      // SLICES of its slices), never by a node with a shorter window: that one just does not count it.
      if (start < windowStartMs(now, length)) stale.push(field);
      else if (start >= first) out[kind] += Number(value) || 0;
    }
    if (stale.length) await this.store.hashDel(STATS + sender, stale).catch(() => {});
    return out;
  }

  /**
   * The policy: a rate above its threshold, computed over at least
   * min_messages messages (so a handful of complaints about a small sender's
   * first mails does not suspend it, and a flood of them still does), or trap
   * hits above their limit. Sent volume alone can never trigger it.
   */
  breach(counts: Counts): string | null {
    const p = this.settings.policy;
    const base = Math.max(counts.sent, p.minMessages);
    const over = counts.sent < p.minMessages ? ` (rate over at least ${p.minMessages} messages)` : '';
    if (counts.complaint / base > p.complaintRate) {
      return `complaint rate ${percent(counts.complaint / base, p.complaintRate)} (${counts.complaint} complaints / ${counts.sent} messages${over}) is above ${percent(p.complaintRate)} in ${this.settings.window.hours} h`;
    }
    if (counts.invalid / base > p.invalidRate) {
      return `invalid-recipient rate ${percent(counts.invalid / base, p.invalidRate)} (${counts.invalid} hard bounces / ${counts.sent} messages${over}) is above ${percent(p.invalidRate)} in ${this.settings.window.hours} h`;
    }
    if (counts.trap >= p.maxTrapHits) return `${counts.trap} spamtrap hits in ${this.settings.window.hours} h (limit ${p.maxTrapHits})`;
    return null;
  }

  /** Suspends the sender if its counts breach the policy (and it is not already suspended). */
  async evaluate(sender: string): Promise<Suspension | null> {
    if (await this.suspension(sender)) return null;
    const counts = await this.counts(sender);
    const reason = this.breach(counts);
    if (!reason) return null;
    const now = this.clock();
    const hours = this.settings.policy.suspendHours;
    const suspension: Suspension = { sender, since: now, until: hours > 0 ? now + hours * 3600_000 : 0, reason, counts, node: this.nodeName };
    await this.store.set(SUSPENDED + sender, JSON.stringify(suspension), hours > 0 ? Math.ceil(hours * 3600) : 0);
    return suspension;
  }

  async suspension(sender: string): Promise<Suspension | null> {
    const value = await this.store.get(SUSPENDED + sender);
    if (!value) return null;
    try {
      const s = JSON.parse(value) as Suspension;
      return s.until && s.until <= this.clock() ? null : s;
    } catch {
      return null;
    }
  }

  /**
   * Lifts a suspension and forgives what caused it: the complaint, invalid and
   * trap counts in the window are cleared (sent and bulk stay), so the sender
   * starts again from a clean rate. Returns the lifted suspension, if any.
   */
  async reinstate(sender: string): Promise<Suspension | null> {
    // One at a time per sender: two would each subtract what they read, and the counts go negative.
    // A lock that expires by itself (a command that dies leaves it for a minute at most); a refused
    // attempt leaves it untouched, and only its owner releases it.
    const lock = REINSTATING + sender;
    const token = `${this.nodeName}:${process.pid}:${this.clock()}:${Math.random()}`;
    if (!(await this.store.setIfAbsent(lock, token, 60))) throw new ReinstateBusyError(`${sender} is being reinstated by another command; try again in a minute`);
    try {
      return await this.forgiveAndLift(sender);
    } finally {
      if ((await this.store.get(lock).catch(() => null)) === token) await this.store.del(lock).catch(() => undefined);
    }
  }

  private async forgiveAndLift(sender: string): Promise<Suspension | null> {
    // Forgive first, lift second: an evaluation on another node in between still
    // sees the suspension (and leaves it), one after sees the cleared counts. The
    // other order let an evaluation see no suspension but the old complaints, and
    // suspend the sender again right after "reinstated".
    // What was read is subtracted, not deleted: a complaint another node counts in
    // between lands on the same field, and deleting the field would lose it.
    const all = await this.store.hashGetAll(STATS + sender);
    const forgiven: Record<string, number> = {};
    for (const [field, value] of Object.entries(all)) {
      const n = Number(value) || 0;
      if (n && /^(complaint|invalid|trap)\./.test(field)) forgiven[field] = -n;
    }
    if (Object.keys(forgiven).length) await this.store.hashIncrBy(STATS + sender, forgiven, this.ttl());
    const lifted = await this.suspension(sender);
    await this.store.del(SUSPENDED + sender);
    return lifted;
  }

  /** Every sender with counters in the window or a suspension, with both. */
  async report(since?: number): Promise<SenderReport[]> {
    const senders = new Set<string>();
    for (const key of await this.store.keys(STATS)) senders.add(key.slice(STATS.length));
    for (const key of await this.store.keys(SUSPENDED)) senders.add(key.slice(SUSPENDED.length));
    const out: SenderReport[] = [];
    for (const sender of [...senders].sort()) out.push({ sender, counts: await this.counts(sender, since), suspension: await this.suspension(sender) });
    return out;
  }

  /** Remembers who sent a relayed message, and to whom (hashed), for the complaints about it. */
  async recordMessage(messageId: string, sender: string, recipients: string[] = []): Promise<void> {
    const id = normaliseMessageId(messageId);
    if (!id) return;
    await this.store.set(MID + hash(id), sender, this.settings.recordSeconds);
    if (recipients.length) {
      await this.store.hashSet(RCPT + hash(id), Object.fromEntries(recipients.map((r) => [recipientKey(r), '1'])), this.settings.recordSeconds);
    }
  }

  async senderOf(messageId: string): Promise<string | null> {
    const id = normaliseMessageId(messageId);
    return id ? this.store.get(MID + hash(id)) : null;
  }

  /** The hashed recipients recorded for a message, or null when none were (recorded before they were kept). */
  async recipientsOf(messageId: string): Promise<string[] | null> {
    const id = normaliseMessageId(messageId);
    if (!id) return null;
    const keys = Object.keys(await this.store.hashGetAll(RCPT + hash(id)));
    return keys.length ? keys : null;
  }

  /**
   * Counts a report against its sender once: the report's sightings and its
   * count are one atomic write (one script in Redis, across nodes), so a
   * report is never marked seen without being counted, whatever fails when.
   * Each key may have been counted `limit` times in all (1: once). Returns
   * null when it counted, else the index of the first key at its limit (and
   * nothing changed). Fails (NotSharedError) unless the shared store took it:
   * a command Redis refuses (READONLY, OOM, WRONGTYPE) or a Redis that is away
   * would otherwise be answered by the in-process stand-in, and a report
   * counted there is lost with the process. Then nothing was written, or (the
   * answer lost on its way back) all of it, and the report's next delivery is
   * a duplicate.
   */
  async countOnce(sender: string, counts: Partial<Counts>, reports: { key: string; limit: number }[]): Promise<number | null> {
    const marks = reports.map((r) => ({ key: SEEN + hash(r.key), limit: r.limit }));
    let result;
    try {
      result = await this.store.countOnceShared(marks, this.settings.recordSeconds, STATS + sender, this.sliceFields(counts), this.ttl());
    } catch (err) {
      throw new NotSharedError(`the shared state did not take the count: ${(err as Error).message}`);
    }
    return result.counted ? null : result.atLimit;
  }

  /**
   * Invalid recipients of one relayed message, each counted once against its
   * sender however we learn of it: our own delivery's bounce, or the DSN that
   * comes back to the sender through an MX of ours. Returns how many were new.
   */
  async countInvalid(sender: string, messageId: string, recipients: string[]): Promise<number> {
    const keys = [...new Set(recipients.map((r) => dsnKey(messageId, r)))];
    // One at a time: a write that fails leaves those before it counted and the rest for the next try.
    let counted = 0;
    for (const key of keys) if ((await this.countOnce(sender, { invalid: 1 }, [{ key, limit: 1 }])) === null) counted++;
    return counted;
  }

  /**
   * One invalid recipient named by a DSN that nobody vouches for (its MTA is
   * not authenticated for the recipient's domain): counted like those above,
   * but one such per message at most, whatever the recipient. Anyone who got
   * the message could otherwise count each of its recipients, one forged DSN
   * at a time. A recipient not counted here keeps its chance: a later bounce
   * or vouched-for DSN of it still counts. Returns 1 when it counted.
   */
  async countUnvouchedInvalid(sender: string, messageId: string, recipient: string): Promise<number> {
    // No '@' in the slot: no recipient's key can be this one.
    const slot = `dsn|${messageId}|unvouched`;
    const refused = await this.countOnce(sender, { invalid: 1 }, [
      { key: dsnKey(messageId, recipient), limit: 1 },
      { key: slot, limit: 1 },
    ]);
    return refused === null ? 1 : 0;
  }
}
