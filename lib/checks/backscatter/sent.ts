import { createHash } from 'node:crypto';
import type { StateStore } from '../../state/types';
import { normaliseAddress } from '../rules/match';
import { normaliseMessageId } from './signing';

const SENT = 'bs:mid:';

function hash(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

function key(messageId: string): string {
  // Hashed: bounded key length, and the store holds no addresses.
  return SENT + hash(normaliseMessageId(messageId)).slice(0, 32);
}

/** A sender as kept with a Message-ID: hashed, so the store holds no addresses. */
function senderKey(address: string): string {
  return hash(normaliseAddress(address)).slice(0, 16);
}

/** What the lookup found for a bounce's Message-IDs. */
export interface SentLookup {
  /** The Message-ID we sent. */
  messageId: string;
  /** Sent by the bounce's recipient: the bounce is addressed to the original's sender. */
  toSender: boolean;
}

/** Message-IDs of mail we relayed, with who sent them, remembered for a while so bounces of it can be recognised. */
export class SentMessages {
  constructor(
    private readonly store: StateStore,
    private readonly ttlSeconds: number,
    private readonly clock: () => number,
  ) {}

  /**
   * Stores when it was sent and its senders (envelope sender, From: address):
   * a bounce or reply is ours only when it goes back to one of them. The age
   * is judged by the clock, the store's expiry only collects garbage.
   * Value: `<ms>` (records before senders were kept) or `<ms> <hash>,<hash>`.
   */
  async record(messageId: string, senders: string[]): Promise<void> {
    if (!normaliseMessageId(messageId)) return;
    const hashes = [...new Set(senders.filter((s) => s.includes('@')).map(senderKey))];
    await this.store.set(key(messageId), `${this.clock()}${hashes.length ? ` ${hashes.join(',')}` : ''}`, this.ttlSeconds);
  }

  /**
   * The first of these Message-IDs that `recipient` sent through us, else the
   * first that another sender did (toSender false), else undefined. One round
   * trip. `recipient` '' and a record without senders match no sender.
   */
  async lookup(messageIds: string[], recipient: string): Promise<SentLookup | undefined> {
    const ids = [...new Set(messageIds.filter((m) => normaliseMessageId(m)))];
    if (!ids.length) return undefined;
    const found = await this.store.mget(ids.map(key));
    const oldest = this.clock() - this.ttlSeconds * 1000;
    const wanted = recipient ? senderKey(recipient) : '';
    let other: SentLookup | undefined;
    for (const [i, value] of found.entries()) {
      if (value === null) continue;
      const [at, senders = ''] = value.split(' ');
      if (!(Number(at) >= oldest)) continue;
      if (wanted && senders.split(',').includes(wanted)) return { messageId: ids[i]!, toSender: true };
      other ??= { messageId: ids[i]!, toSender: false };
    }
    return other;
  }
}
