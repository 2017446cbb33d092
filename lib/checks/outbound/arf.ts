import PostalMime from 'postal-mime';
import { asciiDomain } from '../../util/domain';
import { domainOf, mailboxesOf, mimePrefix, parseHeaderBlock, type HeaderField } from '../../message';
import { addressOf, normaliseMessageId } from '../backscatter/signing';

/** A report that is not a usable RFC 5965 feedback report; the message says what is wrong. */
export class ArfError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ArfError';
  }
}

/** One parsed feedback report (RFC 5965). */
export interface FeedbackReport {
  /** abuse, fraud, virus, other, not-spam, auth-failure, ... (lower case). */
  feedbackType: string;
  userAgent: string;
  /** Fields of the message/feedback-report part, lower-case names, first value of each. */
  fields: Record<string, string>;
  /** The report's own From address (who reported), lower case. */
  reporter: string;
  reporterDomain: string;
  originalRcptTo: string;
  /** Headers of the reported message (from message/rfc822 or text/rfc822-headers). */
  original: HeaderField[];
  /** Its Message-ID, normalised (lower case, no angle brackets), or ''. */
  originalMessageId: string;
}

const ORIGINAL_TYPES = new Set(['message/rfc822', 'message/global', 'text/rfc822-headers', 'message/rfc822-headers', 'message/global-headers']);

function contentTypeParam(value: string, param: string): string | undefined {
  const m = new RegExp(`;\\s*${param}\\s*=\\s*("([^"]*)"|[^;\\s]+)`, 'i').exec(value);
  return m ? (m[2] ?? m[1])!.toLowerCase() : undefined;
}

function text(content: ArrayBuffer | Uint8Array | string): string {
  if (typeof content === 'string') return content;
  return Buffer.from(content instanceof Uint8Array ? content : new Uint8Array(content)).toString('utf8');
}

/**
 * Parses an ARF report. Strict where attribution depends on it (report type,
 * Feedback-Type, Version 1, an original with headers), tolerant elsewhere
 * (User-Agent may be missing, line endings, folding). Throws ArfError.
 */
export async function parseArf(raw: Buffer | string): Promise<FeedbackReport> {
  const buffer = Buffer.isBuffer(raw) ? raw : Buffer.from(raw, 'utf8');
  const { headers, complete } = parseHeaderBlock(buffer);
  if (!complete) throw new ArfError('the header block is not terminated by an empty line');
  const get = (name: string) => headers.find((h) => h.key === name)?.value;
  const contentType = get('content-type') ?? '';
  if (!/^\s*multipart\/report\b/i.test(contentType)) {
    throw new ArfError(`not a feedback report: Content-Type is ${JSON.stringify(contentType.split(';')[0]!.trim() || '(none)')}, expected multipart/report`);
  }
  const reportType = contentTypeParam(contentType, 'report-type');
  if (reportType !== 'feedback-report') throw new ArfError(`multipart/report with report-type=${reportType ?? '(none)'}, expected feedback-report`);

  let parsed;
  try {
    // Only the first 2 MB are decoded (mimePrefix): the report and the copy's headers come first.
    parsed = await PostalMime.parse(mimePrefix(buffer), { forceRfc822Attachments: true, maxNestingDepth: 20 });
  } catch (err) {
    throw new ArfError(`the MIME structure cannot be parsed: ${(err as Error).message}`);
  }
  const parts = parsed.attachments ?? [];
  const feedback = parts.find((p) => (p.mimeType ?? '').toLowerCase() === 'message/feedback-report');
  if (!feedback) throw new ArfError('no message/feedback-report part');
  const fields: Record<string, string> = {};
  // The part is a header-style block; an empty line ends it only if something follows.
  for (const h of parseHeaderBlock(Buffer.from(`${text(feedback.content).trim()}\r\n\r\n`, 'utf8')).headers) fields[h.key] ??= h.value;
  const feedbackType = (fields['feedback-type'] ?? '').trim().toLowerCase();
  if (!feedbackType) throw new ArfError('the message/feedback-report part has no Feedback-Type field');
  if (!/^[a-z0-9-]+$/.test(feedbackType)) throw new ArfError(`Feedback-Type ${JSON.stringify(feedbackType)} is not a token`);
  const version = (fields.version ?? '').trim();
  if (version !== '1') throw new ArfError(version ? `Version ${JSON.stringify(version)} is not 1` : 'the message/feedback-report part has no Version field');

  const originalPart = parts.find((p) => ORIGINAL_TYPES.has((p.mimeType ?? '').toLowerCase()));
  if (!originalPart) throw new ArfError('no copy of the reported message (message/rfc822 or text/rfc822-headers part)');
  const original = parseHeaderBlock(Buffer.from(`${text(originalPart.content).replace(/^\s+/, '')}\r\n\r\n`, 'utf8')).headers;
  if (!original.length) throw new ArfError('the reported message part has no header fields');

  // The one From: mailbox, read as auth reads it: the first <...> anywhere would also
  // take one written inside a quoted display name ("<fbl@trusted>" <x@attacker>).
  const from = mailboxesOf(headers.filter((h) => h.key === 'from').map((h) => h.value));
  const reporter = from.length === 1 ? from[0]!.address : '';
  return {
    feedbackType,
    userAgent: fields['user-agent'] ?? '',
    fields,
    reporter,
    reporterDomain: asciiDomain(domainOf(reporter)),
    originalRcptTo: addressOf(fields['original-rcpt-to']),
    original,
    originalMessageId: normaliseMessageId(original.find((h) => h.key === 'message-id')?.value),
  };
}

/** Is this message (by its Content-Type) an ARF report? Cheap; for routing before parsing. */
export function looksLikeArf(contentType: string | undefined): boolean {
  return !!contentType && /^\s*multipart\/report\b/i.test(contentType) && contentTypeParam(contentType, 'report-type') === 'feedback-report';
}


/**
 * Final-Recipient addresses with Action: failed and a 5.1.x status (bad
 * mailbox, bad domain) from a message/delivery-status part: hard bounces to
 * invalid recipients. Other failures (full mailbox, policy) are not counted.
 */
/**
 * The recipients a delivery-status report says failed for good (5.1.x: no
 * such mailbox or domain), each as the addresses the report gives for it:
 * Final-Recipient, then Original-Recipient when the remote rewrote it.
 */
export async function invalidRecipientsOfDsn(raw: Buffer): Promise<string[][]> {
  let parsed;
  try {
    // Only the first 2 MB are decoded (mimePrefix), as every MIME parse of a message.
    parsed = await PostalMime.parse(mimePrefix(raw), { forceRfc822Attachments: true, maxNestingDepth: 20 });
  } catch {
    return [];
  }
  const part = (parsed.attachments ?? []).find((p) => /^message\/(global-)?delivery-status$/i.test(p.mimeType ?? ''));
  if (!part) return [];
  const out: string[][] = [];
  // Per-recipient field groups are separated by blank lines; the first group is per-message.
  for (const group of text(part.content).split(/\r?\n\s*\r?\n/).slice(1)) {
    const fields: Record<string, string> = {};
    for (const h of parseHeaderBlock(Buffer.from(`${group.trim()}\r\n\r\n`, 'utf8')).headers) fields[h.key] ??= h.value;
    if (!/^failed$/i.test(fields.action ?? '') || !/^5\.1\.\d+/.test((fields.status ?? '').trim())) continue;
    const names = [fields['final-recipient'], fields['original-recipient']].map((v) => (v ? addressOf(v.replace(/^[^;]*;/, '').trim()) : '')).filter(Boolean);
    if (names.length) out.push([...new Set(names)]);
  }
  return out;
}
