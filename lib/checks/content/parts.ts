import type { Email } from 'postal-mime';
import { firstHeader, parsedMessage, type HeaderField, type MessageContext } from '../../message';
import { analyseHtml, type HtmlInfo } from '../../util/html';
import { detached } from '../../util/text';

export interface AttachmentInfo {
  mimeType: string;
  filename: string;
  size: number;
}

/** The decoded pieces of a message that the content checks read; computed once per message. */
export interface MessageParts {
  subject: string;
  fromName: string;
  fromAddress: string;
  headers: HeaderField[];
  /** Decoded text/plain, or the visible text of the HTML part when there is no plain part (see bodyTexts). */
  text: string;
  /** Length of the text/plain part ('' when the message is HTML only). */
  plainLength: number;
  html?: HtmlInfo;
  /**
   * Link targets from the HTML plus URLs written in the text and, beside a plain part, in the HTML's text (those once):
   * up to MAX_URLS (300) from each of the three, so one cannot crowd out another.
   */
  urls: string[];
  attachments: AttachmentInfo[];
  /**
   * MIME structure of every part, from the raw message: `type:text/html`,
   * `charset:koi8-r`, `cte:base64`, `disp:attachment`, `ext:exe`.
   */
  structure: string[];
  /** False when MIME decoding failed and the parts come from the raw body. */
  decoded: boolean;
}

export interface PartLimits {
  /** Characters of decoded text kept for the checks. */
  maxTextChars: number;
  /** Characters of an HTML part read. */
  maxHtmlChars: number;
}

export const DEFAULT_LIMITS: PartLimits = { maxTextChars: 256 * 1024, maxHtmlChars: 1024 * 1024 };

const URL_IN_TEXT = /\b(?:https?:\/\/|www\.)[^\s<>"'()[\]{}]{1,300}/gi;
const MAX_URLS = 300;

/** A Content-Type / -Transfer-Encoding / -Disposition field anywhere (top level or a part), folded lines included. */
const MIME_FIELD = /^content-(type|transfer-encoding|disposition)[ \t]*:[ \t]*([^\r\n]{0,500}(?:\r?\n[ \t]+[^\r\n]{0,500}){0,5})/gim;
/** Structure is read from this much of the raw message (a 20 MB attachment's base64 need not be scanned). */
const MAX_STRUCTURE_BYTES = 512 * 1024;
const MAX_STRUCTURE_TOKENS = 200;

/** MIME structure tokens of a raw message (see MessageParts.structure). */
export function mimeStructure(raw: Buffer | undefined): string[] {
  if (!raw) return [];
  const text = raw.subarray(0, MAX_STRUCTURE_BYTES).toString('latin1');
  const out: string[] = [];
  MIME_FIELD.lastIndex = 0;
  let match: RegExpExecArray | null;
  while (out.length < MAX_STRUCTURE_TOKENS && (match = MIME_FIELD.exec(text))) {
    const field = match[1]!.toLowerCase();
    const value = match[2]!.toLowerCase();
    const main = /^\s*"?([a-z0-9][a-z0-9!#$&^_.+\/-]{0,60})/.exec(value)?.[1];
    if (field === 'type') {
      if (main) out.push(`type:${main}`);
      const charset = /charset\s*=\s*["']?([a-z0-9_.:-]{1,40})/.exec(value)?.[1];
      if (charset) out.push(`charset:${charset}`);
    } else if (field === 'transfer-encoding') {
      if (main) out.push(`cte:${main}`);
    } else if (main) out.push(`disp:${main}`);
    const ext = /(?:file)?name\*?\s*=\s*["']?[^"';\r\n]*\.([a-z0-9]{1,8})["';\s]*$/.exec(value)?.[1];
    if (ext) out.push(`ext:${ext}`);
  }
  return out;
}

/**
 * The texts a reader may be shown, for the checks that read text: the text
 * (the plain part, or the HTML's visible text when there is none) and, when
 * there are both, the HTML's visible text as well. Mail programs show the
 * HTML, so a decoy plain part ("view this in an HTML mail program") must not
 * hide it. Kept apart, not joined: each is read up to the checks' own limit.
 */
export function bodyTexts(parts: MessageParts): string[] {
  return parts.plainLength && parts.html?.text ? [parts.text, parts.html.text] : [parts.text];
}

/** Per message, the parts read with the limits they were read with (another check may ask with its own). */
const cache = new WeakMap<MessageContext, { limits: PartLimits; parts: Promise<MessageParts> }>();

function size(content: Email['attachments'][number]['content']): number {
  if (typeof content === 'string') return content.length;
  return content.byteLength;
}

/** Text of a raw body when MIME decoding failed: strip obvious base64 blocks, keep the rest. */
function fallbackText(ctx: MessageContext, limit: number): string {
  if (!ctx.raw) return '';
  const raw = ctx.raw.subarray(0, limit * 2).toString('latin1');
  const start = raw.search(/\r?\n\r?\n/);
  const body = start < 0 ? '' : raw.slice(start);
  return body.replace(/^[A-Za-z0-9+/=]{60,}$/gm, ' ').slice(0, limit);
}

/**
 * URLs written in `text`, added to `into`, at most MAX_URLS of this text: its
 * own budget, so that URLs in one text (the plain part, 300 links) do not
 * crowd out another's (the HTML's text). Those in `skip` are not added, and
 * each added joins it.
 */
export function urlsIn(text: string, into: string[], skip?: Set<string>): void {
  URL_IN_TEXT.lastIndex = 0;
  let match: RegExpExecArray | null;
  let added = 0;
  while (added < MAX_URLS && (match = URL_IN_TEXT.exec(text))) {
    if (skip?.has(match[0])) continue;
    skip?.add(match[0]);
    into.push(match[0]);
    added++;
  }
}

/** Scheme and authority of a link (`scheme://` or `//`), or the start of a bare www. one. */
const AUTHORITY = /^(?:[a-z][a-z0-9+.-]*:)?\/\/([^/?#\s\\]+)|^(www\.[^/?#\s\\]+)/i;

/** The host of an authority as written: user information, port and a trailing dot dropped; '' when it is no host name. */
function writtenHost(authority: string): string {
  let host = authority;
  const at = host.lastIndexOf('@');
  if (at >= 0) host = host.slice(at + 1);
  host = host.replace(/:\d*$/, '').replace(/\.$/, '');
  return /^[a-z0-9.-]+$|^\[?[0-9a-f:.]+\]?$|[^\x00-\x7f]/i.test(host) ? host : '';
}

// Authorities repeat across messages (one host, many links).
const resolvedHosts = new Map<string, string>();
/** User information, a host name of 253 and a port fit with room to spare. */
const MAX_CACHED_AUTHORITY = 512;

/**
 * The host of an authority as a browser resolves it (WHATWG URL): lower case,
 * user information and port dropped, percent-encoding decoded, an IDN in its
 * ASCII (punycode) form after UTS 46 mapping (fullwidth letters, soft
 * hyphens), IPv4 written as one number, in hex or in octal as dotted decimal,
 * no trailing dot. "http://WWW.%70aypal.com./" is www.paypal.com and
 * "http://3232235777/" is 192.168.1.1. Hosts the parser accepts that are no
 * host name ("_", "{": template debris) give ''; an authority it refuses is
 * read as written, in lower case.
 */
function resolvedHost(written: string): string {
  let host = resolvedHosts.get(written);
  if (host === undefined) {
    // Cached past this message: a key of its own, not a view into the message's text (see detached).
    const authority = detached(written);
    try {
      host = new URL(`http://${authority}/`).hostname.replace(/\.$/, '');
      if (!/^[a-z0-9.-]+$|^\[[0-9a-f:.]+\]$/.test(host)) host = '';
    } catch {
      host = writtenHost(authority).toLowerCase();
    }
    if (resolvedHosts.size > 50_000) resolvedHosts.clear();
    // An authority longer than any host name is computed each time, not kept (50,000 of them could be 50 GB).
    if (authority.length <= MAX_CACHED_AUTHORITY) resolvedHosts.set(authority, host);
  }
  return host;
}

/** A link's host as a browser resolves it (see hostOf) and what follows its authority as written; undefined without a host. */
export function linkHostAndPath(url: string): { host: string; path: string } | undefined {
  const trimmed = url.trim();
  const match = AUTHORITY.exec(trimmed);
  if (!match) return undefined;
  const host = resolvedHost((match[1] ?? match[2])!);
  return host ? { host, path: trimmed.slice(match[0].length) } : undefined;
}

/**
 * Host name of a URL-ish string (href or text), or '' when it has none: as a
 * browser resolves it (lower case, percent-encoding decoded, IDN as punycode,
 * numeric IPv4 forms as dotted decimal: see resolvedHost), or, asWritten, as
 * written (case kept, only user information, port and a trailing dot dropped).
 */
export function hostOf(url: string, asWritten = false): string {
  if (!asWritten) return linkHostAndPath(url)?.host ?? '';
  const match = AUTHORITY.exec(url.trim());
  return match ? writtenHost((match[1] ?? match[2])!) : '';
}

async function extract(ctx: MessageContext, limits: PartLimits): Promise<MessageParts> {
  const parsed = await parsedMessage(ctx);
  const fromHeader = parsed?.from;
  const fromName = fromHeader?.name ?? '';
  const fromAddress = (fromHeader && 'address' in fromHeader ? fromHeader.address : '') ?? '';
  const subject = parsed?.subject ?? firstHeader(ctx, 'subject') ?? '';
  const html = parsed?.html ? analyseHtml(parsed.html, limits.maxHtmlChars) : undefined;
  const plain = parsed ? (parsed.text ?? '') : fallbackText(ctx, limits.maxTextChars);
  const text = (plain.trim() ? plain : (html?.text ?? '')).slice(0, limits.maxTextChars);
  const urls: string[] = [];
  for (const link of html?.links ?? []) if (urls.length < MAX_URLS) urls.push(link.href);
  // Each source its own budget: 300 links or 300 plain-part URLs must not hide a URL written only in the HTML's text.
  urlsIn(text, urls);
  // Beside a plain part, the HTML's text as well: mail programs show the HTML, and a spammer writes another
  // URL there than in the plain part. Mostly it repeats the plain part's and its own links: those are not added again.
  if (plain.trim() && html?.text) urlsIn(html.text.slice(0, limits.maxTextChars), urls, new Set(urls));
  const attachments = (parsed?.attachments ?? []).map((a) => ({ mimeType: (a.mimeType || '').toLowerCase(), filename: a.filename ?? '', size: size(a.content) }));
  return {
    subject,
    fromName,
    fromAddress: fromAddress.toLowerCase(),
    headers: ctx.headers,
    text,
    plainLength: plain.trim().length,
    html,
    urls,
    attachments,
    structure: mimeStructure(ctx.raw),
    decoded: !!parsed,
  };
}

/** The message's decoded parts, shared by the Bayes, heuristic and bulk checks. Never rejects. */
export function messageParts(ctx: MessageContext, limits: PartLimits = DEFAULT_LIMITS): Promise<MessageParts> {
  const cached = cache.get(ctx);
  const same = cached && cached.limits.maxTextChars === limits.maxTextChars && cached.limits.maxHtmlChars === limits.maxHtmlChars;
  if (same) return cached.parts;
  const parts = extract(ctx, limits);
  cache.set(ctx, { limits, parts });
  return parts;
}
