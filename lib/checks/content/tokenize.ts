import { getDomain, getPublicSuffix } from 'tldts';
// Subpath imports only: natural's package root loads mongoose, pg and redis and reads ./.env.
import { RegexpTokenizer } from 'natural/lib/natural/tokenizers';
import { PorterStemmer } from 'natural/lib/natural/stemmers';
import type { MessageParts } from './parts';
import { hostOf } from './parts';

/** Splits on anything that is not a letter, mark, digit or one of $ € £ ' -. */
const splitter = new RegexpTokenizer({ pattern: /[^\p{L}\p{M}\p{N}$€£'-]+/u });

const MIN_LENGTH = 3;
/** Longer "words" are base64 debris, hashes, tracking ids: summarised as skip:<first>:<length/10>. */
export const MAX_TOKEN_LENGTH = 20;
/** Tokens per message considered (hostile input cannot make tokenizing unbounded). */
const MAX_TOKENS = 20_000;

// Porter stemming is the costly step; words repeat a lot across messages.
const stems = new Map<string, string>();
function stem(word: string): string {
  let s = stems.get(word);
  if (s === undefined) {
    s = PorterStemmer.stem(word);
    if (stems.size > 200_000) stems.clear();
    stems.set(word, s);
  }
  return s;
}

/** Normalises one raw word to a token, or '' to skip it. */
export function normaliseWord(raw: string): string {
  let w = raw.toLowerCase().replace(/^['’-]+|['’-]+$/g, '');
  if (w.length < MIN_LENGTH) return w.includes('$') || w.includes('€') || w.includes('£') ? w : '';
  if (w.length > MAX_TOKEN_LENGTH) return `skip:${w[0]}:${Math.floor(w.length / 10) * 10}`;
  if (/^\d+$/.test(w)) return w.length > 4 ? `num:${w.length}` : w;
  if (/^[a-z]+$/.test(w)) w = stem(w);
  return w;
}

/** Adds the tokens of a text, each with an optional prefix (e.g. "s:" for the subject). */
function addWords(text: string, prefix: string, out: Set<string>): void {
  if (!text) return;
  for (const raw of splitter.tokenize(text)) {
    if (out.size >= MAX_TOKENS) return;
    const token = normaliseWord(raw);
    if (token) out.add(prefix + token);
  }
}

function bucket(n: number): string {
  return n === 0 ? '0' : n < 3 ? 'few' : n < 10 ? 'some' : 'many';
}

export function registrableDomain(host: string): string {
  if (!host) return '';
  if (/^\[?[0-9.:a-f]+\]?$/i.test(host) && /[.:]/.test(host) && !/[g-z]/i.test(host)) return 'ip';
  return getDomain(host, { allowPrivateDomains: false }) ?? host;
}

function header(parts: MessageParts, name: string): string {
  return parts.headers.find((h) => h.key === name)?.value ?? '';
}

/**
 * The features of a message for the classifier, each once: words of the decoded
 * text and image alt text (stemmed, lower case), subject words (s:), sender
 * name words and organisational domain (fn:, fd:), URL organisational domains
 * and public suffixes (url:, tld:), and a few structural markers. Headers that
 * describe one site's relays (Received, Message-ID, Delivered-To...) are left
 * out on purpose: they teach the model a mailbox's infrastructure, not spam.
 */
export function tokenize(parts: MessageParts): string[] {
  const out = new Set<string>();
  addWords(parts.subject, 's:', out);
  addWords(parts.fromName, 'fn:', out);
  const fromDomain = registrableDomain(parts.fromAddress.slice(parts.fromAddress.lastIndexOf('@') + 1));
  if (fromDomain) out.add(`fd:${fromDomain}`);

  const contentType = header(parts, 'content-type').toLowerCase();
  const mainType = /^\s*([a-z]+\/[a-z0-9.+-]+)/.exec(contentType)?.[1];
  if (mainType) out.add(`ct:${mainType}`);
  const charset = /charset\s*=\s*"?([a-z0-9_.:-]+)/.exec(contentType)?.[1];
  if (charset) out.add(`cs:${charset}`);
  const mailer = (header(parts, 'x-mailer') || header(parts, 'user-agent')).toLowerCase();
  const mailerWord = /[a-z][a-z-]{2,}/.exec(mailer)?.[0];
  out.add(`xm:${mailerWord ?? 'none'}`);
  const replyTo = header(parts, 'reply-to');
  if (replyTo) {
    const replyDomain = registrableDomain(/@([^>\s,;]+)/.exec(replyTo)?.[1]?.toLowerCase() ?? '');
    out.add(replyDomain && replyDomain === fromDomain ? 'rt:same' : 'rt:other');
  }

  addWords(parts.text, '', out);
  if (parts.html) {
    addWords(parts.html.altText, '', out);
    // With a plain part too, the HTML's visible text may differ from it (spam often does).
    if (parts.plainLength) addWords(parts.html.text, '', out);
    out.add(parts.plainLength ? 'html:alt' : 'html:only');
    out.add(`img:${bucket(parts.html.images)}`);
    out.add(`links:${bucket(parts.html.links.length)}`);
    if (parts.html.hiddenText) out.add('html:hidden');
  }
  for (const url of parts.urls) {
    const host = hostOf(url);
    if (!host) continue;
    const domain = registrableDomain(host);
    out.add(`url:${domain}`);
    if (domain !== 'ip') {
      const suffix = getPublicSuffix(host);
      if (suffix) out.add(`tld:${suffix}`);
    }
  }
  for (const a of parts.attachments) out.add(`att:${a.mimeType || 'unknown'}`);
  return [...out];
}
