import PostalMime from 'postal-mime';
import { firstHeader, headerValues, mimePrefix, parseHeaderBlock, rawBody, type HeaderField, type MessageContext } from '../../message';

export type NotificationKind = 'bounce' | 'auto_reply';

export interface Recognition {
  kind: NotificationKind | null;
  /** Why, in words, for the symbol detail ("null sender", "delivery-status report", ...). */
  reasons: string[];
}

function localPart(address: string | undefined): string {
  if (!address) return '';
  const bare = (/<([^<>]*)>/.exec(address)?.[1] ?? address).trim();
  const at = bare.lastIndexOf('@');
  return (at < 0 ? bare : bare.slice(0, at)).toLowerCase();
}

function contentTypeParam(value: string, param: string): string | undefined {
  const m = new RegExp(`;\\s*${param}\\s*=\\s*("([^"]*)"|[^;\\s]+)`, 'i').exec(value);
  return m ? (m[2] ?? m[1])!.toLowerCase() : undefined;
}

/**
 * Is this message a delivery status notification or an automatic reply?
 * DSN markers win over auto-reply markers (a DSN is also "auto-generated").
 */
export function recognise(ctx: MessageContext, daemonSenders: Set<string>): Recognition {
  const bounce: string[] = [];
  const auto: string[] = [];
  if (ctx.mailFrom === '') bounce.push('null sender');
  else if (daemonSenders.has(localPart(ctx.mailFrom))) bounce.push(`sender ${ctx.mailFrom}`);
  const from = firstHeader(ctx, 'from');
  if (from && daemonSenders.has(localPart(from)) && !bounce.some((r) => r.startsWith('sender'))) bounce.push(`From ${localPart(from)}`);

  const contentType = firstHeader(ctx, 'content-type') ?? '';
  if (/^\s*multipart\/report\b/i.test(contentType)) {
    const reportType = contentTypeParam(contentType, 'report-type');
    if (reportType === 'delivery-status') bounce.push('delivery-status report');
    else if (reportType === 'disposition-notification') auto.push('read receipt');
  }

  // RFC 3834: only auto-replied marks a reply. auto-generated is "not a reply" (notifications,
  // invoices, tickets, reports) and, with a sender of its own, is ordinary mail: taken for a
  // reply it would be unverified backscatter and count toward the subject throttle. A bounce
  // stays one by its own markers (null sender, daemon sender, delivery-status report).
  const autoSubmitted = firstHeader(ctx, 'auto-submitted');
  if (autoSubmitted && /^\s*auto-replied(?![\w-])/i.test(autoSubmitted)) auto.push(`Auto-Submitted: ${autoSubmitted.split(';')[0]!.trim()}`);
  for (const name of ['x-autoreply', 'x-autorespond', 'x-auto-reply']) {
    if (firstHeader(ctx, name) !== undefined) auto.push(name.replace(/^x-a/, 'X-A'));
  }
  if (headerValues(ctx, 'precedence').some((v) => /^\s*auto[_-]reply\b/i.test(v))) auto.push('Precedence: auto_reply');

  // A DSN marker (report type, daemon sender) makes it a bounce; an auto-reply
  // marker otherwise wins over a bare null sender (RFC 3834 replies use one).
  const strongBounce = bounce.some((r) => r !== 'null sender');
  if (strongBounce || (bounce.length && !auto.length)) return { kind: 'bounce', reasons: [...bounce, ...auto] };
  if (auto.length) return { kind: 'auto_reply', reasons: [...auto, ...bounce] };
  return { kind: null, reasons: [] };
}

/** The copy of the original message a bounce carries, as far as it could be read. */
export interface EmbeddedOriginal {
  source: 'message/rfc822' | 'rfc822-headers' | 'quoted text';
  headers: HeaderField[];
  /** The header block ended without its blank line (cut off by the bouncing MTA). */
  truncated: boolean;
}

const HEADER_PART_TYPES = new Set(['message/rfc822', 'message/global', 'text/rfc822-headers', 'message/rfc822-headers', 'message/global-headers']);
/** Header names worth picking out of quoted text. */
const QUOTED_HEADERS = /^[>\s]*(message-id|date|from|subject|to|x-[a-z0-9-]+)\s*:\s?(.*)$/i;

function contentText(content: ArrayBuffer | Uint8Array | string): string {
  if (typeof content === 'string') return content;
  return Buffer.from(content instanceof Uint8Array ? content : new Uint8Array(content)).toString('utf8');
}

/**
 * Header lines quoted in a plain-text bounce ("--- Below this line is a copy
 * of the message." / "> Message-ID: <...>"). Tolerant: takes what it finds.
 */
export function quotedHeaders(text: string): HeaderField[] {
  const out: HeaderField[] = [];
  let last: HeaderField | undefined;
  for (const line of text.split(/\r?\n/)) {
    const m = QUOTED_HEADERS.exec(line);
    if (m) {
      last = { key: m[1]!.toLowerCase(), name: m[1]!, value: m[2]!.trim() };
      out.push(last);
      continue;
    }
    const cont = /^>?[ \t]+(\S.*)$/.exec(line);
    if (last && cont && !/^\s*$/.test(line)) {
      last.value = `${last.value} ${cont[1]!.trim()}`.trim();
      continue;
    }
    last = undefined;
  }
  return out;
}

/**
 * Finds the original inside a bounce: a message/rfc822 or *-headers part, else
 * header lines quoted in the text. Returns null when nothing identifying
 * (Message-ID, signature) survives; never throws on malformed input.
 */
export async function extractOriginal(ctx: MessageContext, signatureHeader: string): Promise<EmbeddedOriginal | null> {
  if (!ctx.raw) return null;
  const useful = (headers: HeaderField[]) => headers.some((h) => h.key === 'message-id' || h.key === signatureHeader);
  const texts: string[] = [];
  try {
    // Our own parse: report parts as attachments even when the bounce is not a
    // proper multipart/report (Exchange-style NDRs attach message/rfc822 inline). Only its
    // first 2 MB, as parsedMessage: a 24 MB bounce decoded whole held the event loop for seconds.
    const parsed = await PostalMime.parse(mimePrefix(ctx.raw), { forceRfc822Attachments: true, maxNestingDepth: 50 });
    for (const part of parsed.attachments ?? []) {
      const type = (part.mimeType ?? '').toLowerCase();
      const text = contentText(part.content);
      if (HEADER_PART_TYPES.has(type)) {
        const { headers, complete } = parseHeaderBlock(Buffer.from(text, 'utf8'));
        if (useful(headers)) return { source: type.endsWith('headers') ? 'rfc822-headers' : 'message/rfc822', headers, truncated: !complete && type.startsWith('message/') && !type.endsWith('headers') };
      } else if (type.startsWith('text/')) texts.push(text);
    }
    if (parsed.text) texts.unshift(parsed.text);
  } catch {
    // Unparseable MIME: fall back to the raw body below.
  }
  texts.push(rawBody(ctx));
  for (const text of texts) {
    const headers = quotedHeaders(text);
    if (useful(headers)) return { source: 'quoted text', headers, truncated: false };
  }
  return null;
}

/** Message-IDs of In-Reply-To, and of the end of References (the newest), looked up for one message. */
const MAX_REFERENCED_IDS = 10;

/**
 * Message-IDs an auto-reply or bounce names as the message it answers:
 * In-Reply-To's, then the newest of References. A few: each costs state
 * look-ups, and a forged References may list thousands.
 */
export function referencedMessageIds(ctx: MessageContext): string[] {
  const idsOf = (name: string) => headerValues(ctx, name).flatMap((value) => [...value.matchAll(/<[^<>\s]+>/g)].map((m) => m[0]));
  const ids = new Set([...idsOf('in-reply-to').slice(0, MAX_REFERENCED_IDS), ...idsOf('references').slice(-MAX_REFERENCED_IDS).reverse()]);
  return [...ids].slice(0, MAX_REFERENCED_IDS);
}
