import { createHash } from 'node:crypto';
import type { StateStore } from '../../state/types';
import { normaliseAddress } from '../rules/match';
import { normaliseMessageId } from './signing';

/**
 * Keys (all hashed: bounded length, and the store holds no addresses):
 * - `bs:sent:<id>`: we relayed this Message-ID (for the detail of a bounce to someone else);
 * - `bs:sender:<id>:<sender>`: we relayed it from this sender. One key per pair, never
 *   rewritten by another sender's copy: a list relays one Message-ID once per
 *   recipient, each copy with its own VERP envelope sender;
 * - `bs:reply:<id>:<address>`: it named this address in Reply-To: or as a further
 *   From: address (at most MAX_REPLY_ADDRESSES a message). Read for automatic replies
 *   only: some responders answer Reply-To:, a DSN goes to the envelope sender. A key
 *   of its own, not a `bs:sender:` one, because a node of the release before it reads
 *   every `bs:sender:` pair as "a bounce to this address verifies", DSNs included;
 * - `bs:mid:<id>`: written by releases before senders were kept (value: the time),
 *   read only: verifies a bounce to any one recipient, as then, until it expires.
 * Each value is the time it was sent: the age is judged by the clock, the
 * store's expiry only collects garbage.
 */
const SENT = 'bs:sent:';
const SENDER = 'bs:sender:';
const REPLY = 'bs:reply:';
const LEGACY = 'bs:mid:';

/**
 * Reply addresses recorded for one message, beyond its senders: the sender
 * writes Reply-To: and From:, so without a cap one message could make us
 * store as many keys as its headers hold addresses.
 */
export const MAX_REPLY_ADDRESSES = 4;

function hash(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

function idHash(messageId: string): string {
  return hash(normaliseMessageId(messageId)).slice(0, 32);
}

function senderHash(address: string): string {
  return hash(normaliseAddress(address)).slice(0, 16);
}

/** What the lookup found for a bounce's Message-IDs. */
export interface SentLookup {
  /** The Message-ID we sent. */
  messageId: string;
  /**
   * 'sender': sent by the bounce's recipient, so the bounce goes back to the original's sender;
   * 'reply': the recipient is one of the original's reply addresses (Reply-To:, a further
   *   From: address), asked for automatic replies only;
   * 'legacy': recorded by a release that kept no senders, so any one recipient verifies;
   * 'other': sent by us, but not by the recipient.
   */
  match: 'sender' | 'reply' | 'legacy' | 'other';
}

export interface LookupOptions {
  /** Also match the original's reply addresses (for an automatic reply, never a DSN). */
  replyAddresses?: boolean;
}

/** Message-IDs of mail we relayed, with who sent them, remembered for a while so bounces of it can be recognised. */
export class SentMessages {
  constructor(
    private readonly store: StateStore,
    private readonly ttlSeconds: number,
    private readonly clock: () => number,
  ) {}

  /**
   * Stores that we sent it, and from which senders (envelope sender, From:
   * address): a bounce or reply is ours only when it goes back to one of them.
   * `replyAddresses` (Reply-To:, further From: addresses) are kept apart, the
   * first MAX_REPLY_ADDRESSES not among the senders: an automatic reply to one
   * of them is ours too. Returns how many of those were kept.
   * Plain writes, no read-modify-write, so concurrent copies from other
   * senders (on any node) add to what is known and never replace it.
   */
  async record(messageId: string, senders: string[], replyAddresses: string[] = []): Promise<number> {
    if (!normaliseMessageId(messageId)) return 0;
    const id = idHash(messageId);
    const now = String(this.clock());
    const hashes = new Set(senders.filter((s) => s.includes('@')).map(senderHash));
    const replies = [...new Set(replyAddresses.filter((a) => a.includes('@')).map(senderHash))].filter((h) => !hashes.has(h)).slice(0, MAX_REPLY_ADDRESSES);
    const keys = [SENT + id, ...[...hashes].map((h) => `${SENDER}${id}:${h}`), ...replies.map((h) => `${REPLY}${id}:${h}`)];
    await Promise.all(keys.map((k) => this.store.set(k, now, this.ttlSeconds)));
    return replies.length;
  }

  /**
   * The first of these Message-IDs that `recipient` sent through us, else
   * (with `replyAddresses`) the first that named it as a reply address, else
   * the first recorded by a release before senders were kept (when there is
   * one recipient), else the first that another sender did, else undefined.
   * One round trip. `recipient` '' (not exactly one recipient) matches no sender.
   */
  async lookup(messageIds: string[], recipient: string, options: LookupOptions = {}): Promise<SentLookup | undefined> {
    const ids = [...new Set(messageIds.filter((m) => normaliseMessageId(m)))];
    if (!ids.length) return undefined;
    const wanted = recipient ? senderHash(recipient) : '';
    const replies = Boolean(wanted && options.replyAddresses);
    const keysOf = (h: string) => [SENT + h, LEGACY + h, ...(wanted ? [`${SENDER}${h}:${wanted}`] : []), ...(replies ? [`${REPLY}${h}:${wanted}`] : [])];
    const per = keysOf('').length;
    const found = await this.store.mget(ids.map(idHash).flatMap(keysOf));
    const oldest = this.clock() - this.ttlSeconds * 1000;
    // Legacy values too are read as the previous release reads them: a plain time, else no record.
    const fresh = (v: string | null | undefined) => v != null && Number(v) >= oldest;
    const rank = { sender: 0, reply: 1, legacy: 2, other: 3 } as const;
    let best: SentLookup | undefined;
    for (const [i, messageId] of ids.entries()) {
      const [sent, legacy, pair, reply] = found.slice(per * i, per * i + per);
      const match = fresh(pair) ? 'sender' : fresh(reply) ? 'reply' : fresh(legacy) ? (wanted ? 'legacy' : 'other') : fresh(sent) ? 'other' : undefined;
      if (match && (!best || rank[match] < rank[best.match])) best = { messageId, match };
    }
    return best;
  }
}
