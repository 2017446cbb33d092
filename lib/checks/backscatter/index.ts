import { firstHeader, fromMailboxes, headerMailboxes, parsedMessage, type MessageContext } from '../../message';
import type { Ledger } from '../../score/ledger';
import type { Hit, SymbolDef } from '../../score/types';
import { authResults, fromDomainAuthenticated } from '../auth/results';
import type { Check, CheckModule, Services } from '../types';
import { extractOriginal, recognise, referencedMessageIds, type EmbeddedOriginal } from './recognise';
import { SentMessages } from './sent';
import { DEFAULTS, parseBackscatterSettings, type BackscatterSettings } from './settings';
import { normaliseAddress } from '../rules/match';
import { addressOf, normaliseMessageId, sign, verify } from './signing';
import { normaliseSubject } from './subject';
import { SubjectThrottle } from './throttle';

export type { BackscatterSettings } from './settings';
export { normaliseSubject, subjectId } from './subject';
export { SubjectThrottle, type SubjectBlock, type ThrottleSettings, type ThrottleDecision } from './throttle';
export { sign, verify, parseSignature, type SigningKey } from './signing';
export { recognise, extractOriginal } from './recognise';
export { SentMessages } from './sent';

const GROUP = 'backscatter';
const BLOCKED = 'BACKSCATTER_SUBJECT_BLOCKED';
const EXEMPT = 'BACKSCATTER_BLOCK_EXEMPT';

export const backscatterSymbols: SymbolDef[] = [
  { name: 'BOUNCE', score: 0, group: GROUP, description: 'A delivery status notification (null or MAILER-DAEMON sender, delivery-status report)' },
  { name: 'AUTO_REPLY', score: 0, group: GROUP, description: 'An automatic reply (Auto-Submitted: auto-replied, X-Autoreply, Precedence: auto_reply, read receipt)' },
  { name: 'BOUNCE_MULTI_RCPT', score: 3, group: GROUP, description: 'A bounce or auto-reply to more than one recipient (a real one goes to the one sender)' },
  { name: 'BOUNCE_VERIFIED', score: -2, group: GROUP, description: "The bounced original carries our valid signature or a Message-ID we sent, and the bounce goes to its sender alone (an auto-reply also to an address in the original's Reply-To: or From:; to anyone, for a Message-ID recorded before senders were kept); never throttled" },
  { name: 'BOUNCE_UNVERIFIED', score: 4, group: GROUP, description: 'A bounce or auto-reply about mail we have no record of sending, or not addressed to its sender: likely backscatter' },
  { name: 'BOUNCE_NO_ORIGINAL', score: 1, group: GROUP, description: 'A bounce without a readable copy of the original (missing or cut off before its Message-ID)' },
  { name: 'BOUNCE_SIG_INVALID', score: 2, group: GROUP, description: 'The bounced original carries a signature header that does not verify (forged, unknown key, malformed)' },
  { name: 'BOUNCE_SIG_EXPIRED', score: 1, group: GROUP, description: 'The bounced original carries a valid signature older than [signing] max_age_days' },
  { name: BLOCKED, score: DEFAULTS.actionScore, group: GROUP, description: 'Subject blocked by the flood throttle: too many matching messages with it in the window ([throttle] action_score)' },
  { name: EXEMPT, score: 0, group: GROUP, description: 'The subject is blocked, but the message is no bounce and its From: domain is authenticated ([throttle] exempt_authenticated)' },
  { name: 'BACKSCATTER_ERROR', score: 0, group: GROUP, description: 'The shared state could not be read or written; validation or throttling was skipped' },
  { name: 'OUTBOUND_SIGNED', score: 0, group: GROUP, description: 'Relayed mail: signature header added and/or Message-ID recorded, so its bounces verify' },
];

/** What the check found, for later checks and the tracking row. */
export interface BackscatterNote {
  kind: 'bounce' | 'auto_reply' | null;
  verified: boolean;
  subject?: string;
  blocked?: boolean;
}

function iso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function minutes(n: number): string {
  return Number.isInteger(n) ? `${n} min` : `${Math.round(n * 10) / 10} min`;
}

/** Why the sender is vouched for ('' when not): DMARC pass, or SPF or DKIM aligned with the From: domain. */
function authenticatedSender(ctx: MessageContext): string {
  const auth = authResults(ctx);
  return auth && fromDomainAuthenticated(auth) ? `From: domain ${auth.fromDomain || auth.dmarc.domain || auth.dmarc.authors?.join(', ') || '(none)'} is authenticated (dmarc=${auth.dmarc.result}, spf=${auth.spf.result}${auth.spf.aligned ? ' aligned' : ''})` : '';
}

/**
 * Where an automatic reply to this message may go besides its sender: the
 * Reply-To: addresses (some responders answer them), then any From: address
 * after the first (the first is recorded as a sender). SentMessages keeps
 * only the first few. Only for a client that authenticated (SMTP AUTH):
 * nothing checks these headers, and a host relaying by IP (a list server,
 * a web form) passes on what outsiders wrote, so an outsider could name any
 * local mailbox and then send it "auto-replies" that verify (-2, never
 * throttled) quoting the Message-ID.
 */
function replyAddresses(ctx: MessageContext): string[] {
  if (!ctx.authUser) return [];
  return [...headerMailboxes(ctx, 'reply-to'), ...fromMailboxes(ctx)].map((m) => m.address);
}

function errorHit(err: unknown, what: string): Hit {
  return { name: 'BACKSCATTER_ERROR', detail: `${what}: ${err instanceof Error ? err.message : String(err)}` };
}

function createDataCheck(settings: BackscatterSettings, services: Services): Check {
  const sent = new SentMessages(services.state, settings.outbound.messageIdTtlSeconds, services.clock);
  const throttle = new SubjectThrottle(services.state, settings.throttle, services.clock, services.shared.nodeName);
  const sigKey = settings.signing.header.toLowerCase();

  async function outbound(ctx: MessageContext): Promise<Hit[]> {
    const done: string[] = [];
    let messageId = firstHeader(ctx, 'message-id');
    if (!normaliseMessageId(messageId) && settings.outbound.addMessageId) {
      messageId = `<${ctx.ref}.${services.clock().toString(36)}@${ctx.localHostname}>`;
      ctx.headerChanges.add.push(['Message-ID', messageId]);
      done.push('Message-ID added');
    }
    if (!normaliseMessageId(messageId)) return [];
    const [key] = settings.signing.keys;
    if (key) {
      const value = sign(key, { messageId: messageId!, date: firstHeader(ctx, 'date') ?? '', from: firstHeader(ctx, 'from') ?? '' }, services.clock());
      // A signature already on the message (a client's, or another hop's) is replaced, never trusted.
      if (!ctx.headerChanges.remove.includes(settings.signing.header)) ctx.headerChanges.remove.push(settings.signing.header);
      ctx.headerChanges.add.push([settings.signing.header, value]);
      done.push(`signed with key ${key.id}`);
    }
    if (settings.outbound.recordMessageIds) {
      try {
        const replies = await sent.record(messageId!, [ctx.mailFrom ?? '', addressOf(firstHeader(ctx, 'from'))], replyAddresses(ctx));
        done.push(replies ? `Message-ID recorded (and ${replies} Reply-To:/From: address${replies > 1 ? 'es' : ''} for auto-replies)` : 'Message-ID recorded');
      } catch (err) {
        return [errorHit(err, 'recording the Message-ID')];
      }
    }
    return done.length ? [{ name: 'OUTBOUND_SIGNED', detail: done.join(', ') }] : [];
  }

  /**
   * BOUNCE_VERIFIED / _UNVERIFIED and signature symbols for one bounce or auto-reply.
   * Verified only when it goes back to the original's sender (its one
   * recipient), or, for an automatic reply, to one of the reply addresses
   * recorded with it: a signed message or a Message-ID we sent reaches
   * outsiders, who could otherwise quote it in "bounces" to anyone. A DSN
   * goes to the envelope sender, so a reply address never verifies one.
   */
  async function validate(ctx: MessageContext, kind: 'bounce' | 'auto_reply'): Promise<{ hits: Hit[]; verified: boolean }> {
    const hits: Hit[] = [];
    const original: EmbeddedOriginal | null = await extractOriginal(ctx, sigKey);
    const get = (name: string) => original?.headers.find((h) => h.key === name)?.value;
    const signature = original?.headers.find((h) => h.key === sigKey)?.value;
    const originalId = get('message-id');
    const recipient = ctx.rcptTo.length === 1 ? normaliseAddress(ctx.rcptTo[0]!) : '';
    // Why a valid signature or known Message-ID did not verify it ('' when none was found).
    let misdirected = '';
    const notToSender = ctx.rcptTo.length === 1 ? "but not addressed to the original's sender" : `but addressed to ${ctx.rcptTo.length} recipients, not to the original's sender alone`;

    if (signature !== undefined && settings.signing.keys.length) {
      const fields = { messageId: originalId ?? '', date: get('date') ?? '', from: get('from') ?? '' };
      const result = verify(signature, fields, settings.signing.keys, services.clock(), settings.signing);
      if (result.ok) {
        const signed = `signature by key ${result.keyId} from ${iso(result.signedAt * 1000)} in the ${original!.source}`;
        if (recipient && recipient === normaliseAddress(addressOf(fields.from))) {
          hits.push({ name: 'BOUNCE_VERIFIED', detail: signed });
          return { hits, verified: true };
        }
        // The Message-ID record below may still name the recipient as the envelope sender.
        misdirected = `valid ${signed}, ${notToSender}`;
      } else if (result.reason === 'expired') hits.push({ name: 'BOUNCE_SIG_EXPIRED', detail: `signed ${iso(result.signedAt! * 1000)}, older than ${settings.signing.maxAgeSeconds / 86400} days` });
      else hits.push({ name: 'BOUNCE_SIG_INVALID', detail: result.reason.replace('_', ' ') + (result.keyId ? ` (key ${result.keyId})` : '') });
    }

    const candidates = [...(originalId ? [originalId] : []), ...referencedMessageIds(ctx)];
    if (settings.outbound.recordMessageIds && candidates.length) {
      try {
        const known = await sent.lookup(candidates, recipient, { replyAddresses: kind === 'auto_reply' });
        if (known?.match === 'sender') {
          hits.push({ name: 'BOUNCE_VERIFIED', detail: `Message-ID ${known.messageId} was sent by us from the recipient's address` });
          return { hits, verified: true };
        }
        if (known?.match === 'reply') {
          hits.push({ name: 'BOUNCE_VERIFIED', detail: `Message-ID ${known.messageId} was sent by us naming the recipient in its Reply-To: or From:` });
          return { hits, verified: true };
        }
        // Recorded by the previous release, which kept no senders: verified as it was then,
        // so an upgrade does not turn the bounces of mail already sent unverified (and throttled).
        if (known?.match === 'legacy') {
          hits.push({ name: 'BOUNCE_VERIFIED', detail: `Message-ID ${known.messageId} was sent by us (recorded before senders were kept)` });
          return { hits, verified: true };
        }
        if (known && !misdirected) misdirected = `Message-ID ${known.messageId} was sent by us, ${notToSender}`;
      } catch (err) {
        hits.push(errorHit(err, 'looking up Message-IDs'));
        return { hits, verified: false };
      }
    }
    if (!original && kind === 'bounce') hits.push({ name: 'BOUNCE_NO_ORIGINAL', detail: 'no message/rfc822 part, header part or quoted Message-ID' });
    const about = originalId ? `original ${originalId}` : original ? `original from the ${original.source} without Message-ID` : 'no original';
    const why = misdirected || 'no valid signature or known Message-ID';
    hits.push({ name: 'BOUNCE_UNVERIFIED', detail: `${kind === 'bounce' ? 'bounce' : 'auto-reply'}: ${about}${original?.truncated ? ' (truncated)' : ''}, ${why}` });
    return { hits, verified: false };
  }

  function counts(ledger: Ledger, hits: Hit[]): boolean {
    const match = settings.throttle.match;
    return match.includes('*') || match.some((name) => ledger.has(name) || hits.some((h) => h.name === name));
  }

  return {
    name: 'backscatter.data',
    phase: 'data',
    async run(ctx, ledger) {
      if (!settings.enabled) return [];
      if (ctx.relaying) return outbound(ctx);

      const hits: Hit[] = [];
      const note: BackscatterNote = { kind: null, verified: false };
      ctx.notes.backscatter = note;
      const { kind, reasons } = recognise(ctx, settings.daemonSenders);
      note.kind = kind;
      if (kind) {
        hits.push({ name: kind === 'bounce' ? 'BOUNCE' : 'AUTO_REPLY', detail: reasons.join(', ') });
        if (ctx.rcptTo.length > 1) hits.push({ name: 'BOUNCE_MULTI_RCPT', detail: `${ctx.rcptTo.length} recipients` });
        const validation = await validate(ctx, kind);
        hits.push(...validation.hits);
        note.verified = validation.verified;
      }
      // A bounce of our own mail is never throttled, whatever its subject.
      if (!settings.throttle.enabled || note.verified) return hits;

      const parsed = await parsedMessage(ctx);
      const subject = parsed?.subject ?? firstHeader(ctx, 'subject') ?? '';
      const normalised = normaliseSubject(subject);
      note.subject = normalised;
      if (!normalised && !settings.throttle.emptySubject) return hits;
      try {
        const vouched = !kind && settings.throttle.exemptAuthenticated ? authenticatedSender(ctx) : '';
        if (vouched) {
          // Neither counted nor blocked; said so when a block is in force.
          const block = await throttle.activeBlock(normalised);
          if (block) hits.push({ name: EXEMPT, detail: `subject "${block.subject}" is blocked until ${iso(block.until)}, but this is no bounce and ${vouched}` });
          return hits;
        }
        const decision = await throttle.decide(normalised, subject, counts(ledger, hits));
        const block = decision.block;
        if (block) {
          note.blocked = true;
          const started = decision.started ? 'this message started the block: ' : '';
          hits.push({
            name: BLOCKED,
            detail:
              `${started}subject "${block.subject}" blocked after ${block.count} matching messages within ${minutes(settings.throttle.windowMinutes)}` +
              ` (since ${iso(block.since)}${block.node ? ` on ${block.node}` : ''}, until ${iso(block.until)})`,
          });
        }
      } catch (err) {
        hits.push(errorHit(err, 'subject throttle'));
      }
      return hits;
    },
  };
}

export const backscatterModule: CheckModule<BackscatterSettings> = {
  name: 'backscatter',
  file: 'mailward.backscatter.ini',
  symbols: backscatterSymbols,
  parseSettings(reader) {
    const settings = parseBackscatterSettings(reader);
    // The block's weight comes from [throttle] action_score ([scores] may still override it).
    const blocked = backscatterSymbols.find((s) => s.name === BLOCKED)!;
    return { settings, symbols: [{ ...blocked, score: settings.throttle.actionScore }] };
  },
  createChecks(settings, services) {
    return settings.enabled ? [createDataCheck(settings, services)] : [];
  },
};
