import { confirmedNames, type ConfirmedNames } from '../../dns/fcrdns';
import type { DnsResolver } from '../../dns/resolver';
import { addressDomain } from './match';
import { fromMailboxes, headerValues, parsedMessage, rawBody, type MessageContext } from '../../message';

/** Texts a condition tests, with their lower-cased form made once per message (a file may hold thousands of "contains"). */
export class Texts {
  private lowered?: string[];
  constructor(readonly values: string[]) {}
  lower(): string[] {
    this.lowered ??= this.values.map((v) => v.toLowerCase());
    return this.lowered;
  }
}

/**
 * What the rules read about a message, computed once per evaluation: the
 * phase decides which recipients count (the one being added at RCPT, all the
 * accepted ones at DATA) and whether headers and body exist yet.
 */
export class MessageView {
  private fromCache?: string[];
  private bodyCache?: Promise<Texts>;
  private headerCache = new Map<string, Texts>();

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

  /** The values of one header, or with no name every header as "Name: value". */
  headerTexts(name?: string): Texts {
    const key = name === undefined ? '' : name.toLowerCase();
    let texts = this.headerCache.get(key);
    if (!texts) {
      texts = new Texts(name === undefined ? this.ctx.headers.map((h) => `${h.name}: ${h.value}`) : headerValues(this.ctx, key));
      this.headerCache.set(key, texts);
    }
    return texts;
  }

  /** Raw body plus the decoded text and HTML parts, for "body contains" and "body matches". */
  bodyTexts(): Promise<Texts> {
    this.bodyCache ??= (async () => {
      const parsed = await parsedMessage(this.ctx);
      const decoded = parsed ? `${parsed.text ?? ''}\n${parsed.html ?? ''}` : '';
      return new Texts([`${rawBody(this.ctx)}\n${decoded}`]);
    })();
    return this.bodyCache;
  }
}
