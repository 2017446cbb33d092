import { confirmedNames, type ConfirmedNames } from '../../dns/fcrdns';
import type { DnsResolver } from '../../dns/resolver';
import { addressDomain } from './match';
import { fromMailboxes, parsedMessage, rawBody, type MessageContext } from '../../message';

/**
 * What the rules read about a message, computed once per evaluation: the
 * phase decides which recipients count (the one being added at RCPT, all the
 * accepted ones at DATA) and whether headers and body exist yet.
 */
export class MessageView {
  private fromCache?: string[];
  private bodyCache?: Promise<string>;

  constructor(
    readonly ctx: MessageContext,
    readonly phase: 'mail' | 'rcpt' | 'data',
    private readonly dns: DnsResolver,
    readonly recipient?: string,
  ) {}

  /** The client's forward-confirmed host names: what a ptr condition may trust. */
  confirmedPtrNames(): Promise<ConfirmedNames> {
    return confirmedNames(this.ctx, this.ctx.ip, this.dns);
  }

  get recipients(): string[] {
    if (this.phase === 'rcpt') return this.recipient ? [this.recipient] : [];
    if (this.phase === 'mail') return [];
    return this.ctx.rcptTo;
  }

  /** Every address in every From: header (a forger may add a second one). */
  get fromAddresses(): string[] {
    this.fromCache ??= fromMailboxes(this.ctx)
      .map((m) => m.address)
      .filter(Boolean);
    return this.fromCache;
  }

  /** The domain of the single From: address ('' with none or several): what From:-domain authentication must be for. */
  get fromDomain(): string {
    const from = this.fromAddresses;
    return from.length === 1 ? addressDomain(from[0]!) : '';
  }

  /** Raw body plus the decoded text and HTML parts, lower-cased, for "body contains". */
  body(): Promise<string> {
    this.bodyCache ??= (async () => {
      const parsed = await parsedMessage(this.ctx);
      const decoded = parsed ? `${parsed.text ?? ''}\n${parsed.html ?? ''}` : '';
      return `${rawBody(this.ctx)}\n${decoded}`;
    })();
    return this.bodyCache;
  }
}
