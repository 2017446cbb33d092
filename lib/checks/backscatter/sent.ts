import { createHash } from 'node:crypto';
import type { StateStore } from '../../state/types';
import { normaliseMessageId } from './signing';

const SENT = 'bs:mid:';

function key(messageId: string): string {
  // Hashed: bounded key length, and the store holds no addresses.
  return SENT + createHash('sha256').update(normaliseMessageId(messageId), 'utf8').digest('hex').slice(0, 32);
}

/** Message-IDs of mail we relayed, remembered for a while so bounces of it can be recognised. */
export class SentMessages {
  constructor(
    private readonly store: StateStore,
    private readonly ttlSeconds: number,
    private readonly clock: () => number,
  ) {}

  /** Stores when it was sent: the age is judged by the clock, the store's expiry only collects garbage. */
  async record(messageId: string): Promise<void> {
    if (!normaliseMessageId(messageId)) return;
    await this.store.set(key(messageId), String(this.clock()), this.ttlSeconds);
  }

  /** The first of these Message-IDs that we sent, or undefined. One round trip. */
  async firstKnown(messageIds: string[]): Promise<string | undefined> {
    const ids = [...new Set(messageIds.filter((m) => normaliseMessageId(m)))];
    if (!ids.length) return undefined;
    const found = await this.store.mget(ids.map(key));
    const oldest = this.clock() - this.ttlSeconds * 1000;
    const i = found.findIndex((v) => v !== null && Number(v) >= oldest);
    return i < 0 ? undefined : ids[i];
  }
}
