import { addressOf, verify } from '../backscatter/signing';
import type { FeedbackReport } from './arf';
import { asciiDomain } from '../../util/domain';
import { orgDomain } from '../auth/align';
import { recipientKey, type Kind, type OutboundLedger, type Suspension } from './ledger';
import type { Identity, OutboundSettings } from './settings';

/** The key a sender is counted under: the authenticated user, else the envelope sender; or their domain. */
export function senderKey(identity: Identity, authUser: string | undefined, mailFrom: string | undefined): string {
  const who = (authUser || mailFrom || '').trim().toLowerCase();
  if (identity === 'user' || !who) return who;
  const at = who.lastIndexOf('@');
  // A bare user name (no domain) stays itself: there is no domain to group it under.
  return at < 0 ? who : who.slice(at + 1);
}

export type ComplaintStatus = 'counted' | 'duplicate' | 'ignored' | 'unattributed' | 'untrusted';

export interface ComplaintOutcome {
  status: ComplaintStatus;
  /** complaint or trap, when counted. */
  kind?: Kind;
  sender?: string;
  /** How the sender was found: "Message-ID" or "signature (key k)". */
  via?: string;
  /** A suspension this report started. */
  suspension?: Suspension | null;
  detail: string;
}

function matches(domain: string, list: string[]): boolean {
  return list.some((d) => domain === d || domain.endsWith(`.${d}`));
}

export interface ReportSource {
  /** The report's From domain passed DMARC / aligned SPF or DKIM; undefined: not known (no auth results). */
  authenticated?: boolean;
  /**
   * The From domain authentication was for (the auth module's reading of the header), when known;
   * '' when authentication found no single From domain (several addresses or none): no domain the
   * reporter's, so the report is not trusted. undefined: not known (no finished auth results).
   */
  fromDomain?: string;
}

/**
 * Counts one feedback report against the sender of the reported message:
 * found by the Message-ID recorded when we relayed it, else by our signature
 * header on the original (the From address then names the sender). A report
 * is counted once, whichever node or import sees it again.
 */
export async function countReport(
  report: FeedbackReport,
  settings: OutboundSettings,
  ledger: OutboundLedger,
  clock: () => number,
  source: ReportSource = {},
): Promise<ComplaintOutcome> {
  const c = settings.complaints;
  const about = `${report.feedbackType} report by ${report.reporter || '(no From)'} about ${report.originalMessageId ? `<${report.originalMessageId}>` : 'a message without Message-ID'}`;
  if (c.reporters.length && !matches(report.reporterDomain, c.reporters) && !matches(report.reporterDomain, c.trapReporters)) {
    return { status: 'untrusted', detail: `${about}: reporter domain ${report.reporterDomain || '(none)'} is not in [complaints] reporters` };
  }
  if (c.requireAuthenticated && source.authenticated !== true) {
    const why = source.authenticated === false ? 'fails DMARC/SPF/DKIM alignment' : 'could not be authenticated (no auth results: run mailward/auth before mailward/outbound)';
    return { status: 'untrusted', detail: `${about}: the reporter ${report.reporterDomain || '(none)'} ${why}` };
  }
  // The domain that authenticated must be the reporter's: otherwise a report signed by any
  // domain could name a trusted reporter in a second From: reading. No single domain (a From: of
  // several addresses, which may all pass DMARC) is no reporter's either: it fails closed.
  if (source.fromDomain === '') {
    return { status: 'untrusted', detail: `${about}: authentication found no single From: domain (several addresses or none), so none is the reporter's` };
  }
  if (source.fromDomain !== undefined && asciiDomain(source.fromDomain) !== report.reporterDomain) {
    return { status: 'untrusted', detail: `${about}: the authenticated From: domain ${source.fromDomain} is not the reporter's` };
  }
  const isTrap = matches(report.reporterDomain, c.trapReporters);
  if (!isTrap && !c.countTypes.has(report.feedbackType)) {
    return { status: 'ignored', detail: `${about}: Feedback-Type ${report.feedbackType} is not counted ([complaints] count_types)` };
  }

  let sender: string | null = null;
  let via = '';
  if (report.originalMessageId) {
    sender = await ledger.senderOf(report.originalMessageId);
    if (sender) via = 'Message-ID';
  }
  const signing = settings.signing;
  const header = (name: string) => report.original.find((h) => h.key === name)?.value;
  const signature = signing ? header(signing.header.toLowerCase()) : undefined;
  if (!sender && signing && signature) {
    const fields = { messageId: header('message-id') ?? '', date: header('date') ?? '', from: header('from') ?? '' };
    const result = verify(signature, fields, signing.keys, clock(), signing);
    const from = addressOf(header('from'));
    if (result.ok && from) {
      sender = senderKey(settings.identity, undefined, from);
      via = `signature (key ${result.keyId})`;
    }
  }
  if (!sender) return { status: 'unattributed', detail: `${about}: no recorded Message-ID or valid signature of ours` };

  // The message a report is about: its Message-ID, else (attributed by signature) our signature,
  // which only we can make; not the copy's other headers, which a reporter may vary at will.
  const original = report.originalMessageId || `sig:${signature ?? ''}`;
  // A report counts once per recipient the message really had: a forger who knows one
  // Message-ID must not file one complaint per made-up Original-Rcpt-To.
  const recipients = via === 'Message-ID' ? await ledger.recipientsOf(report.originalMessageId) : null;
  if (recipients && report.originalRcptTo && !recipients.includes(recipientKey(report.originalRcptTo))) {
    return { status: 'untrusted', sender, via, detail: `${about}: Original-Rcpt-To ${report.originalRcptTo} was not a recipient of that message` };
  }
  // Who reports does not make a report that names a recipient new: anyone who received one
  // message can authenticate domains of their own and would file one complaint per domain. So a
  // message draws at most one complaint per recipient it really had, whatever the reporters, and
  // one in all when its recipients are not known (attributed by signature, or recorded without
  // them). Spamtrap hits
  // (trap_reporters, a list the operator wrote) are bounded the same way, apart.
  const kind: Kind = isTrap ? 'trap' : 'complaint';
  // An Original-Rcpt-To makes a report new only when it could be checked above. Attributed
  // by signature (no recipients recorded), a made-up one per report would count each time.
  const perRecipient = recipients !== null && report.originalRcptTo !== '';
  // Without a checkable Original-Rcpt-To, nothing tells one recipient's report from another's:
  // the same report sent again by the same reporter must not take every recipient's place.
  // So it counts once per (message, reporter domain); and once per message in all when any
  // authenticating domain may report (reporters empty), as anyone can set up domains of their
  // own. Trap hits come only from trap_reporters, a list the operator wrote.
  // The reporter counts by its organisational domain: fbl1. and fbl2. of one listed provider
  // are one reporter, not two.
  const open = c.reporters.length === 0 && !isTrap;
  const reporter = orgDomain(report.reporterDomain) || report.reporterDomain;
  const reportKey = perRecipient
    ? `${original}|${kind}|rcpt|${recipientKey(report.originalRcptTo)}`
    : open
      ? `${original}|${kind}|redacted`
      : `${original}|${kind}|redacted|${reporter}`;
  // Without Original-Rcpt-To (providers redact it) a report may be any recipient's: all the
  // reports about the message, named or not, count at most once per recipient in all.
  const allowed = recipients?.length ?? 1;
  const messageKey = `${original}|${kind}|message`;
  // Seen and counted in one atomic step: a store that fails in between can no longer leave the
  // report marked seen but not counted, which made its redelivery read as a duplicate.
  const refused = await ledger.countOnce(sender, { [kind]: 1 }, [
    { key: reportKey, limit: 1 },
    { key: messageKey, limit: allowed },
  ]);
  if (refused !== null) {
    const already =
      refused === 1
        ? `already counted${allowed > 1 ? ` ${allowed} times (once per recipient)` : ''}`
        : perRecipient
          ? `already counted for ${report.originalRcptTo}`
          : `already counted ${open ? 'without Original-Rcpt-To (any reporter may report: once per message)' : `without Original-Rcpt-To from ${reporter || '(no domain)'}`}`;
    return { status: 'duplicate', sender, via, detail: `${about}: ${already}` };
  }
  const suspension = await ledger.evaluate(sender);
  return { status: 'counted', kind, sender, via, suspension, detail: `${about}: ${kind} counted against ${sender} (found by ${via})` };
}
