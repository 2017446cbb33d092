import { domainOf, firstHeader, type MessageContext } from '../../message';
import type { Hit, SymbolDef, Verdict } from '../../score/types';
import type { StateStore } from '../../state/types';
import { authResults, fromDomainAuthenticated, hasAlignedDkim, hasAlignedSpf, type AuthResults } from '../auth/results';
import { extractOriginal } from '../backscatter/recognise';
import { normaliseMessageId } from '../backscatter/signing';
import { templateFingerprint } from '../content/fingerprint';
import { messageParts } from '../content/parts';
import { asciiDomain } from '../../util/domain';
import type { Check, CheckModule, Services } from '../types';
import { ArfError, invalidRecipientsOfDsn, parseArf } from './arf';
import { countReport, senderKey, type ComplaintOutcome } from './complaints';
import { NotSharedError, OutboundLedger, recipientKey, type Suspension } from './ledger';
import { parseOutboundSettings, type OutboundSettings } from './settings';

export type { OutboundSettings } from './settings';
export { parseArf, looksLikeArf, invalidRecipientsOfDsn, ArfError, type FeedbackReport } from './arf';
export { countReport, senderKey, type ComplaintOutcome } from './complaints';
export { OutboundLedger, ReinstateBusyError, KINDS, type Counts, type Suspension, type SenderReport } from './ledger';

const GROUP = 'outbound';
export const POLICY_SOURCE = 'outbound policy';

export const outboundSymbols: SymbolDef[] = [
  { name: 'OUTBOUND_SUSPENDED', score: 0, group: GROUP, description: 'Relayed mail from a sender suspended by the outbound policy (complaint or invalid-recipient rate); deferred' },
  { name: 'OUTBOUND_BULK', score: 0, group: GROUP, description: 'Relayed message counted as bulk ([bulk] threshold similar messages in the window): tagged and routed' },
  { name: 'OUTBOUND_BULK_NO_UNSUBSCRIBE', score: 1, group: GROUP, description: 'Relayed bulk message without a List-Unsubscribe header (a warning to the sender)' },
  { name: 'OUTBOUND_BULK_BAD_UNSUBSCRIBE', score: 1, group: GROUP, description: 'Relayed bulk message whose List-Unsubscribe has no <mailto:> or <https:> URI' },
  { name: 'FEEDBACK_REPORT', score: 0, group: GROUP, description: 'An ARF feedback report to a feedback address: consumed, and counted against the sender it is about' },
  { name: 'FEEDBACK_REPORT_INVALID', score: 0, group: GROUP, description: 'A message to a feedback address that is not a valid ARF report (detail says why); consumed, nothing counted' },
  { name: 'OUTBOUND_SENDER_SUSPENDED', score: 0, group: GROUP, description: 'This report or bounce took a sender over the outbound policy: the sender is now suspended' },
  { name: 'OUTBOUND_INVALID_RCPT', score: 0, group: GROUP, description: 'A bounce of mail we relayed reports invalid recipients (5.1.x): counted against its sender' },
  { name: 'OUTBOUND_ERROR', score: 0, group: GROUP, description: 'The shared state could not be read or written; outbound accounting skipped for this message' },
];

/** What the data check leaves for the Haraka plugin and afterVerdict. */
export interface OutboundNote {
  /** Relayed mail: whom it counts against, whether it is bulk, where bulk goes. */
  sender?: string;
  bulk?: boolean;
  messageId?: string;
  route?: { bindIp: string; bindHelo: string; relay: string };
  /** Inbound: feedback addresses among the recipients (to be consumed, not delivered). */
  consume?: string[];
  /** deferred: the shared state was down, so the report is to be sent again (a 450), not consumed. */
  complaint?: ComplaintOutcome | { status: 'invalid' | 'deferred'; detail: string };
}

const STATE_DOWN = 'the shared state (Redis) is unavailable or refused a command';

export function outboundNote(ctx: MessageContext): OutboundNote | undefined {
  return ctx.notes.outbound as OutboundNote | undefined;
}

const HOUR = 3600_000;

/** Similar relayed messages (by template fingerprint bands) in the window, this one included; shared across nodes. */
async function countSimilar(store: StateStore, bands: string[], recipients: number, now: number, windowHours: number): Promise<number> {
  const hour = Math.floor(now / HOUR);
  await Promise.all(bands.map((band) => store.incrBy(`ob:bulk:${band}:${hour}`, Math.max(1, recipients), (windowHours + 1) * 3600)));
  let best = 0;
  for (const band of bands) {
    const values = await store.mget(Array.from({ length: windowHours }, (_, i) => `ob:bulk:${band}:${hour - i}`));
    best = Math.max(best, values.reduce((sum, v) => sum + (Number(v) || 0), 0));
  }
  return best;
}

/** A List-Unsubscribe that can work: at least one <mailto:...> or <https://...> URI (RFC 2369 / 8058). */
export function unsubscribeProblem(value: string | undefined): 'missing' | 'unusable' | null {
  if (value === undefined || !value.trim()) return 'missing';
  return /<\s*(mailto:[^>\s@]+@[^>\s]+|https:\/\/[^>\s]+)\s*>/i.test(value) ? null : 'unusable';
}

function iso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function suspensionText(s: Suspension): string {
  return `sender ${s.sender} suspended since ${iso(s.since)}${s.until ? ` until ${iso(s.until)}` : ''}: ${s.reason}`;
}

function errorHit(err: unknown, what: string): Hit {
  return { name: 'OUTBOUND_ERROR', detail: `${what}: ${err instanceof Error ? err.message : String(err)}` };
}

/** The report's From domain authenticated (DMARC pass or aligned SPF/DKIM); undefined when the auth plugin did not run. */
function reporterAuthenticated(ctx: MessageContext): boolean | undefined {
  const auth = authResults(ctx);
  return auth ? fromDomainAuthenticated(auth) : undefined;
}

/**
 * The From: domain authentication was for, when authentication finished: '' when it read no single
 * one (several addresses, or none), which countReport trusts as no reporter's. undefined: not known.
 * mailauth reads no address in a From: group (RFC 6854: `From: Feedback Loop: fbl@isp.example;`),
 * so its fromDomain is ''; auth judged DMARC for the From:'s one author domain then (dmarc.authors),
 * every author it names (no unjudged ones), and that domain is the one authentication was for.
 */
function reporterFromDomain(ctx: MessageContext): string | undefined {
  const auth = authResults(ctx);
  if (!auth || auth.incomplete) return undefined;
  const { authors, unjudged } = auth.dmarc;
  return auth.fromDomain || (authors?.length === 1 && !unjudged ? authors[0]! : '');
}

/**
 * The MTA that sent a DSN is authenticated for the recipient's domain: it came
 * with the null sender, as a mail server's own reports do, and SPF passed for
 * its HELO name or a DKIM signature verified, in the same organisational
 * domain. Only such a DSN is believed about several recipients of one message:
 * a co-recipient with a mailbox at the same provider authenticates too, but
 * its provider does not send its mail with the null sender.
 */
function reporterVouchesFor(auth: AuthResults, nullSender: boolean, recipient: string): boolean {
  const domain = asciiDomain(domainOf(recipient));
  return nullSender && !auth.incomplete && !!domain && (hasAlignedSpf(auth, domain) || hasAlignedDkim(auth, domain));
}

function suspendedHit(s: Suspension | null | undefined): Hit[] {
  return s ? [{ name: 'OUTBOUND_SENDER_SUSPENDED', detail: suspensionText(s) }] : [];
}

function createChecks(settings: OutboundSettings, services: Services): Check[] {
  if (!settings.enabled) return [];
  const ledger = new OutboundLedger(services.state, settings, services.clock, services.shared.nodeName);
  if (settings.complaints.addresses.size && !settings.complaints.reporters.length) {
    services.log.warn(
      'mailward outbound: [complaints] reporters is empty, so a report from any domain that authenticates counts (anyone who received a few of a sender\'s messages can get it suspended); list the feedback loops you are enrolled in',
    );
  }

  /** Suspended senders are refused at MAIL FROM, before they upload anything. */
  const mail: Check = {
    name: 'outbound.mail',
    phase: 'mail',
    async run(ctx, book) {
      if (!ctx.relaying) return [];
      const sender = senderKey(settings.identity, ctx.authUser, ctx.mailFrom);
      if (!sender) return [];
      let suspension: Suspension | null;
      try {
        suspension = await ledger.suspension(sender);
      } catch (err) {
        // Never refuse because the state is unreachable.
        return [errorHit(err, 'reading the suspension list')];
      }
      if (!suspension) {
        // Redis down: the in-process fallback knows no suspension; mail flows, and the row says why.
        return services.state.degraded ? [errorHit(new Error(`the shared state (${services.state.backend}) is unreachable`), 'reading the suspension list')] : [];
      }
      const reason = `${suspensionText(suspension)}; contact the postmaster to be reinstated`;
      book.force({ action: 'soft_reject', source: POLICY_SOURCE, reason });
      return [{ name: 'OUTBOUND_SUSPENDED', detail: suspensionText(suspension) }];
    },
  };

  async function relayed(ctx: MessageContext): Promise<Hit[]> {
    const sender = senderKey(settings.identity, ctx.authUser, ctx.mailFrom);
    const note: OutboundNote = { sender };
    ctx.notes.outbound = note;
    const hits: Hit[] = [];
    // The bulk header is ours alone: a client's own copy never reaches the recipient.
    if (!ctx.headerChanges.remove.includes(settings.bulk.header)) ctx.headerChanges.remove.push(settings.bulk.header);
    // The Message-ID the recipient will see: the client's, or one an earlier plugin (backscatter) adds.
    let messageId = firstHeader(ctx, 'message-id') ?? ctx.headerChanges.add.find(([n]) => n.toLowerCase() === 'message-id')?.[1];
    if (!normaliseMessageId(messageId)) {
      messageId = `<${ctx.ref}.${services.clock().toString(36)}@${ctx.localHostname}>`;
      ctx.headerChanges.add.push(['Message-ID', messageId]);
    }
    note.messageId = messageId;
    if (!settings.bulk.enabled || !ctx.raw) return hits;
    // The text the content checks read (plain part, else the HTML's visible text, cut to their limit): a
    // regex strip of <script> was quadratic (560 KB of "<script" held the event loop 12 s), and unbounded.
    const fp = templateFingerprint((await messageParts(ctx)).text, settings.bulk.minWords);
    if (!fp) return hits;
    let count: number;
    try {
      count = await countSimilar(services.state, fp.bands, ctx.rcptTo.length, services.clock(), settings.bulk.windowHours);
    } catch (err) {
      return [...hits, errorHit(err, 'counting bulk fingerprints')];
    }
    if (count < settings.bulk.threshold) return hits;
    note.bulk = true;
    const b = settings.bulk;
    if (b.bindIp || b.relay) note.route = { bindIp: b.bindIp, bindHelo: b.bindHelo, relay: b.relay };
    const route = b.relay ? `, routed via ${b.relay}` : b.bindIp ? `, routed from ${b.bindIp}` : '';
    ctx.headerChanges.add.push([b.header, `count=${count}; template=${fp.key.slice(0, 12)}; window=${b.windowHours}h`]);
    hits.push({ name: 'OUTBOUND_BULK', detail: `${count} similar messages in ${b.windowHours} h (template ${fp.key.slice(0, 12)})${route}` });
    const problem = unsubscribeProblem(firstHeader(ctx, 'list-unsubscribe'));
    if (problem === 'missing') hits.push({ name: 'OUTBOUND_BULK_NO_UNSUBSCRIBE', detail: `bulk from ${sender} without List-Unsubscribe` });
    if (problem === 'unusable') hits.push({ name: 'OUTBOUND_BULK_BAD_UNSUBSCRIBE', detail: `List-Unsubscribe: ${firstHeader(ctx, 'list-unsubscribe')!.slice(0, 120)}` });
    return hits;
  }

  async function feedback(ctx: MessageContext, consume: string[], book: Parameters<Check['run']>[1]): Promise<Hit[]> {
    const note: OutboundNote = { consume };
    ctx.notes.outbound = note;
    // Reports are consumed whatever their content (the spam they quote must not make us refuse them).
    if (consume.length === ctx.rcptTo.length) book.force({ action: 'accept', source: 'outbound feedback', reason: `feedback report to ${consume.join(', ')}` });
    let report;
    try {
      report = await parseArf(ctx.raw ?? Buffer.alloc(0));
    } catch (err) {
      if (!(err instanceof ArfError)) throw err;
      note.complaint = { status: 'invalid', detail: err.message };
      return [{ name: 'FEEDBACK_REPORT_INVALID', detail: err.message }];
    }
    // Only the shared store knows the Message-IDs we relayed: the in-process stand-in would
    // consume the report as unattributed. The reporter is asked to send it again instead.
    const deferred = () => {
      note.complaint = { status: 'deferred', detail: `${report.feedbackType} report by ${report.reporter} not counted: ${STATE_DOWN}` };
      return [{ name: 'FEEDBACK_REPORT', detail: `deferred: ${note.complaint.detail}` }, { name: 'OUTBOUND_ERROR', detail: note.complaint.detail }];
    };
    if (services.state.degraded) return deferred();
    try {
      const outcome = await countReport(report, settings, ledger, services.clock, { authenticated: reporterAuthenticated(ctx), fromDomain: reporterFromDomain(ctx) });
      // Went away meanwhile: what it read (no record of the Message-ID) may be the stand-in's.
      if (services.state.degraded && outcome.status !== 'counted') return deferred();
      note.complaint = outcome;
      return [{ name: 'FEEDBACK_REPORT', detail: `${outcome.status}: ${outcome.detail}` }, ...suspendedHit(outcome.suspension)];
    } catch (err) {
      // The count did not reach Redis (refused, or gone): countReport took the report's seen mark back.
      if (services.state.degraded || err instanceof NotSharedError) return deferred();
      return [{ name: 'FEEDBACK_REPORT', detail: `not counted: ${report.feedbackType} report by ${report.reporter}` }, errorHit(err, 'counting the report')];
    }
  }

  /** A DSN about mail we relayed: hard bounces to invalid recipients count against its sender. */
  async function bounce(ctx: MessageContext): Promise<Hit[]> {
    const invalid = await invalidRecipientsOfDsn(ctx.raw!);
    if (!invalid.length) return [];
    const original = await extractOriginal(ctx, (settings.signing?.header ?? 'x-mailward-sig').toLowerCase());
    const mid = normaliseMessageId(original?.headers.find((h) => h.key === 'message-id')?.value);
    if (!mid) return [];
    const notCounted = [{ name: 'OUTBOUND_ERROR', detail: `invalid recipients of <${mid}> not counted: ${STATE_DOWN}` }];
    if (services.state.degraded) return notCounted;
    try {
      const sender = await ledger.senderOf(mid);
      if (!sender) return services.state.degraded ? notCounted : [];
      // Anyone who got the message knows its Message-ID and can send a "bounce" of it: only its
      // real recipients count (once each), and only those in domains the reporting MTA is
      // authenticated for count together; of the others, one per message.
      const recorded = await ledger.recipientsOf(mid);
      const real = recorded
        ? invalid.map((names) => names.find((r) => recorded.includes(recipientKey(r)))).filter((r): r is string => !!r)
        : invalid.slice(0, 1).map((names) => names[0]!);
      const auth = authResults(ctx);
      const vouched = recorded && auth ? real.filter((r) => reporterVouchesFor(auth, !ctx.mailFrom, r)) : [];
      const unvouched = real.find((r) => !vouched.includes(r));
      const notes: string[] = [];
      const notRecipients = invalid.length - real.length;
      if (notRecipients) notes.push(`${notRecipients} other${notRecipients === 1 ? '' : 's'} not ${recorded ? 'recipients of that message' : 'counted: its recipients were not recorded'}`);
      const held = real.length - vouched.length - (unvouched ? 1 : 0);
      if (held) notes.push(`${held} other${held === 1 ? '' : 's'} not counted: the reporting MTA is not authenticated by SPF or DKIM for ${held === 1 ? 'its' : 'their'} domain, and one such recipient counts per message`);
      const counted = (await ledger.countInvalid(sender, mid, vouched)) + (unvouched ? await ledger.countUnvouchedInvalid(sender, mid, unvouched) : 0);
      if (!counted) return [];
      const shown = unvouched ? [...vouched, unvouched] : vouched;
      const note = notes.length ? ` (${notes.join('; ')})` : '';
      const suspension = await ledger.evaluate(sender);
      return [{ name: 'OUTBOUND_INVALID_RCPT', detail: `${counted} invalid recipient(s) of <${mid}> counted against ${sender}: ${shown.join(', ')}${note}` }, ...suspendedHit(suspension)];
    } catch (err) {
      return err instanceof NotSharedError ? notCounted : [errorHit(err, 'counting invalid recipients')];
    }
  }

  const data: Check = {
    name: 'outbound.data',
    phase: 'data',
    async run(ctx, book) {
      if (ctx.relaying) {
        if (book.forced?.source === POLICY_SOURCE) return [];
        return relayed(ctx);
      }
      const consume = ctx.rcptTo.filter((r) => settings.complaints.addresses.has(r.toLowerCase()));
      if (consume.length) return feedback(ctx, consume, book);
      const contentType = firstHeader(ctx, 'content-type');
      if (settings.bounces.enabled && ctx.raw && contentType && /^\s*multipart\/report\b/i.test(contentType) && /report-type\s*=\s*"?delivery-status/i.test(contentType)) {
        return bounce(ctx);
      }
      return [];
    },
  };
  return [mail, data];
}

/** Relayed mail that was sent: counted for its sender, its Message-ID remembered for complaints. */
async function afterVerdict(settings: OutboundSettings, services: Services, ctx: MessageContext, verdict: Verdict): Promise<void> {
  const note = outboundNote(ctx);
  if (!settings.enabled || !ctx.relaying || !note?.sender) return;
  if (verdict.action !== 'accept' && verdict.action !== 'add_header') return;
  const ledger = new OutboundLedger(services.state, settings, services.clock, services.shared.nodeName);
  const n = Math.max(1, ctx.rcptTo.length);
  await Promise.all([ledger.add(note.sender, { sent: n, bulk: note.bulk ? n : 0 }), note.messageId ? ledger.recordMessage(note.messageId, note.sender, ctx.rcptTo) : undefined]);
}

export const outboundModule: CheckModule<OutboundSettings> = {
  name: 'outbound',
  file: 'mailward.outbound.ini',
  symbols: outboundSymbols,
  parseSettings(reader, _shared, files) {
    return { settings: parseOutboundSettings(reader, files) };
  },
  createChecks,
  afterVerdict,
};
