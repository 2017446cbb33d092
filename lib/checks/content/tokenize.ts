import { getDomain, getPublicSuffix } from 'tldts';
// Subpath imports only: natural's package root loads mongoose, pg and redis and reads ./.env.
import { PorterStemmer } from 'natural/lib/natural/stemmers';
import { detached, trimChars } from '../../util/text';
import { foldLookalikes, foldWord } from './fold';
import { NON_ASCII, visibleNfkc, withoutInvisibles } from '../../util/invisible';
import type { MessageParts } from './parts';
import { linkHostAndPath } from './parts';

/**
 * What the tokenizer emits. The defaults are the ones chosen by 5-fold
 * cross-validation on the training split (`npm run cv`); the others stay so
 * the choice can be re-checked on another corpus.
 */
export interface TokenizerOptions {
  /**
   * Body words: 'space' splits on white space and keeps punctuation inside a
   * word ("free!!", "$99.95") as SpamBayes does; 'plain' splits on
   * punctuation too; 'stem' also Porter-stems plain words.
   */
  words: 'space' | 'plain' | 'stem';
  /** Longer words become skip:<first>:<length/10> (base64 debris, ids, hashes). */
  maxWord: number;
  /** Body words keep their case as an extra token when not all lower case ("FREE" vs "free"). */
  caseTokens: boolean;
  /** Subject words keep their case. */
  subjectCase: boolean;
  /** Presence of header fields a mail program writes (h:<Name>, case kept; relay headers never). */
  headerNames: boolean;
  /** MIME structure: part types, charsets, transfer encodings, dispositions, attachment extensions. */
  mime: boolean;
  /** URL detail beyond the organisational domain: scheme, host labels, path words. */
  urlDetail: boolean;
  /** Element names of the HTML (tag:font). */
  htmlTags: boolean;
  /** Pairs of adjacent body words. */
  bigrams: boolean;
  /** Values of a few composer headers (priority, importance) and the shapes of Date and the From address. */
  headerValues: boolean;
  /** 'space' words lose trailing sentence punctuation ("free." -> "free"). */
  stripPunct: boolean;
}

export const DEFAULT_TOKENIZER_OPTIONS: TokenizerOptions = {
  words: 'space',
  maxWord: 12,
  caseTokens: false,
  subjectCase: true,
  headerNames: true,
  mime: true,
  urlDetail: true,
  htmlTags: false,
  bigrams: false,
  headerValues: false,
  stripPunct: true,
};

/** Kept for callers that size things by it (the 'stem' tokenizer's limit). */
export const MAX_TOKEN_LENGTH = 20;
/** Tokens per message considered (hostile input cannot make tokenizing unbounded). */
const MAX_TOKENS = 20_000;
const MIN_LENGTH = 3;

/**
 * Header fields written by the sender's mail program. Their presence (and the
 * case of their names: "X-MSMail-Priority", "Mime-Version") says something
 * about what composed a message. Relay and mailbox headers (Received,
 * Message-ID, Delivered-To, Return-Path, list servers' List-*) are left out:
 * they teach a model one site's infrastructure, not spam.
 */
const COMPOSER_HEADERS = new Set([
  'from', 'to', 'cc', 'subject', 'date', 'reply-to', 'mime-version', 'organization', 'user-agent', 'x-mailer',
  'in-reply-to', 'references', 'importance', 'x-priority', 'x-msmail-priority', 'x-mimeole', 'content-type',
  'content-transfer-encoding', 'content-disposition', 'disposition-notification-to', 'return-receipt-to',
  'x-accept-language', 'content-language', 'thread-topic', 'thread-index', 'comments', 'keywords', 'x-face',
  'bcc', 'x-confirm-reading-to', 'x-unsent', 'x-apparently-to',
]);

// Porter stemming is costly; words repeat a lot across messages.
const stems = new Map<string, string>();
function stem(word: string): string {
  let s = stems.get(word);
  if (s === undefined) {
    const key = detached(word);
    s = PorterStemmer.stem(key);
    if (stems.size > 200_000) stems.clear();
    stems.set(key, s);
  }
  return s;
}

const PLAIN_SPLIT = /[^\p{L}\p{M}\p{N}$€£'-]+/u;
const WHITE_SPACE = /\s+/;
const LETTERS = /^[a-z]+$/;

function skipToken(w: string): string {
  return `skip:${w[0]}:${Math.floor(w.length / 10) * 10}`;
}

/** Quotes and sentence punctuation dropped around a 'space' word. */
const TRIM_START = `"'([`;
const TRIM_END = `.,;:!?"')]`;

function isNumber(w: string): boolean {
  for (let i = 0; i < w.length; i++) {
    const c = w.charCodeAt(i);
    // 0-9 : and , - . /
    if (!((c >= 48 && c <= 58) || (c >= 44 && c <= 47))) return false;
  }
  return true;
}

/** Normalises one word to a token, or '' to drop it. Numbers are bucketed by length. */
export function normaliseWord(raw: string, options: TokenizerOptions = DEFAULT_TOKENIZER_OPTIONS): string {
  return normaliseLower(raw.toLowerCase(), options);
}

/** normaliseWord for a word already in lower case; `ascii` when its text is known to be ASCII (nothing to fold). */
function normaliseLower(lower: string, options: TokenizerOptions, ascii = false): string {
  let w = ascii ? lower : foldWord(lower);
  if (options.words !== 'space') w = trimChars(w, "'’-");
  else if (options.stripPunct) w = trimChars(w, TRIM_START, TRIM_END);
  if (w.length < MIN_LENGTH) return options.words !== 'space' && /[$€£]/.test(w) ? w : '';
  const max = options.words === 'stem' ? Math.max(options.maxWord, MAX_TOKEN_LENGTH) : options.maxWord;
  if (isNumber(w)) return w.length > 4 ? `num:${w.length}` : w;
  if (w.length > max) return skipToken(w);
  if (options.words === 'stem' && LETTERS.test(w)) w = stem(w);
  return w;
}

interface Sink {
  out: Set<string>;
  options: TokenizerOptions;
}

function add(sink: Sink, token: string): void {
  if (sink.out.size < MAX_TOKENS) sink.out.add(token);
}

/** Words of a body text (see TokenizerOptions.words), with optional case tokens and bigrams. */
function bodyWords(written: string, sink: Sink): void {
  if (!written) return;
  const { options } = sink;
  const separator = options.words === 'space' ? WHITE_SPACE : PLAIN_SPLIT;
  const text = withoutInvisibles(written);
  const ascii = !NON_ASCII.test(text);
  const pieces = text.split(separator);
  // Lower-casing the whole text once is cheaper than word by word; raw words matter only for case tokens.
  const lowered = options.caseTokens ? undefined : text.toLowerCase().split(separator);
  const aligned = lowered !== undefined && lowered.length === pieces.length;
  let previous = '';
  for (let i = 0; i < pieces.length; i++) {
    const raw = pieces[i]!;
    if (sink.out.size >= MAX_TOKENS) return;
    if (!raw) continue;
    // URLs are read as URLs (url:, tld:...), not as words.
    if (options.words === 'space' && (raw.startsWith('http') || raw.startsWith('www.')) && /^(?:https?:|www\.)/i.test(raw)) {
      previous = '';
      continue;
    }
    const token = aligned ? normaliseLower(lowered[i]!, options, ascii) : normaliseWord(raw, options);
    if (!token) continue;
    add(sink, token);
    if (options.caseTokens && raw.length >= MIN_LENGTH && raw.length <= options.maxWord && raw !== raw.toLowerCase()) {
      add(sink, raw === raw.toUpperCase() ? `upper:${token}` : `cap:${token}`);
    }
    if (options.bigrams && previous && !token.startsWith('skip:')) add(sink, `bi:${previous} ${token}`);
    previous = token.startsWith('skip:') ? '' : token;
  }
}

/** Words of a header value, with a prefix; case kept when asked. */
function headerWords(text: string, prefix: string, keepCase: boolean, sink: Sink): void {
  if (!text) return;
  // As body words: invisible characters out, compatibility forms and look-alike letters folded (case kept).
  text = visibleNfkc(text);
  for (let raw of text.split(/[\s"<>()[\],;:]+/)) {
    if (!raw) continue;
    if (NON_ASCII.test(raw)) raw = foldLookalikes(raw);
    if (raw.length > sink.options.maxWord + 8) {
      add(sink, prefix + skipToken(raw.toLowerCase()));
      continue;
    }
    const w = keepCase ? raw : raw.toLowerCase();
    if (w.length >= 2 || /[$€£!?]/.test(w)) add(sink, prefix + w);
  }
}

function log2Bucket(n: number): string {
  return n === 0 ? '0' : String(Math.min(6, Math.floor(Math.log2(n)) + 1));
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

// getDomain/getPublicSuffix parse the host each time; hosts repeat.
const hostInfo = new Map<string, [string, string]>();
function domainAndSuffix(written: string): [string, string] {
  let info = hostInfo.get(written);
  if (!info) {
    // Kept past this message: its own copy, and what is derived from it refers to that copy (see detached).
    const host = detached(written);
    const domain = registrableDomain(host);
    info = [domain, domain === 'ip' ? '' : (getPublicSuffix(host) ?? '')];
    if (hostInfo.size > 50_000) hostInfo.clear();
    hostInfo.set(host, info);
  }
  return info;
}

function urlTokens(parts: MessageParts, sink: Sink): void {
  let count = 0;
  for (const written of parts.urls) {
    // The host as a browser resolves it: WWW.%70aypal.com., ｐａｙｐａｌ.com and paypal.com are one host.
    const link = linkHostAndPath(written);
    if (!link) continue;
    const { host, path: rest } = link;
    const url = written.trim();
    count++;
    const [domain, suffix] = domainAndSuffix(host);
    add(sink, `url:${domain}`);
    if (suffix) add(sink, `tld:${suffix}`);
    if (!sink.options.urlDetail) continue;
    const scheme = /^([a-z]+):/i.exec(url)?.[1]?.toLowerCase();
    add(sink, `proto:${scheme ?? 'none'}`);
    if (domain === 'ip') continue;
    if (host !== domain) add(sink, `uh:${host.slice(0, host.length - domain.length - 1).split('.').slice(-1)[0]}`);
    if (rest.length > 1) {
      for (const piece of rest.slice(0, 200).split(/[/?=&#.%+:_-]+/)) {
        if (piece.length >= 3 && piece.length <= sink.options.maxWord && !/\d/.test(piece)) add(sink, `up:${piece.toLowerCase()}`);
      }
    }
  }
  add(sink, `urls:${log2Bucket(count)}`);
}

/**
 * The features of a message for the classifier, each once: words of the
 * decoded text and image alt text, subject words (s:), sender name words and
 * organisational domain (fn:, fd:), recipients count, mailer, Reply-To
 * same/other, header-name presence, MIME structure, URL domains, suffixes and
 * detail, HTML markers. Headers that describe one site's relays (Received,
 * Message-ID, Delivered-To...) are left out on purpose: they teach the model a
 * mailbox's infrastructure, not spam.
 */
export function tokenize(parts: MessageParts, options: TokenizerOptions = DEFAULT_TOKENIZER_OPTIONS): string[] {
  const sink: Sink = { out: new Set<string>(), options };
  if (options.words === 'stem') bodyWordsInto(parts.subject, 's:', sink);
  else headerWords(parts.subject, 's:', options.subjectCase, sink);
  headerWords(parts.fromName, 'fn:', false, sink);
  if (!parts.fromName.trim()) add(sink, 'fn:none');
  const fromDomain = registrableDomain(parts.fromAddress.slice(parts.fromAddress.lastIndexOf('@') + 1));
  if (fromDomain) add(sink, `fd:${fromDomain}`);

  const contentType = header(parts, 'content-type').toLowerCase();
  const mainType = /^\s*([a-z]+\/[a-z0-9.+-]+)/.exec(contentType)?.[1];
  if (mainType) add(sink, `ct:${mainType}`);
  const charset = /charset\s*=\s*"?([a-z0-9_.:-]+)/.exec(contentType)?.[1];
  if (charset) add(sink, `cs:${charset}`);
  const mailer = (header(parts, 'x-mailer') || header(parts, 'user-agent')).toLowerCase();
  const mailerWord = /[a-z][a-z-]{2,}/.exec(mailer)?.[0];
  add(sink, `xm:${mailerWord ?? 'none'}`);
  const replyTo = header(parts, 'reply-to');
  if (replyTo) {
    const replyDomain = registrableDomain(/@([^>\s,;]+)/.exec(replyTo)?.[1]?.toLowerCase() ?? '');
    add(sink, replyDomain && replyDomain === fromDomain ? 'rt:same' : 'rt:other');
  }

  if (options.headerNames) {
    let recipients = 0;
    for (const h of parts.headers) {
      if (COMPOSER_HEADERS.has(h.key)) add(sink, `h:${h.name}`);
      if (h.key === 'to' || h.key === 'cc') recipients += h.value.split('@').length - 1;
    }
    add(sink, `rcpts:${log2Bucket(recipients)}`);
  }
  if (options.headerValues) {
    for (const name of ['x-priority', 'x-msmail-priority', 'importance', 'precedence']) {
      const v = header(parts, name).toLowerCase().trim().slice(0, 20);
      if (v) add(sink, `hv:${name}:${v}`);
    }
    const date = header(parts, 'date');
    add(sink, `date:${date ? date.replace(/[a-z]+/gi, 'a').replace(/\d+/g, '9').replace(/\s+/g, ' ').slice(0, 40) : 'none'}`);
    const local = parts.fromAddress.slice(0, Math.max(0, parts.fromAddress.lastIndexOf('@')));
    add(sink, `fl:${local.replace(/[a-z]+/g, 'a').replace(/\d+/g, '9').slice(0, 12) || 'none'}`);
    const to = header(parts, 'to').toLowerCase();
    if (!to) add(sink, 'to:none');
    else if (/undisclosed|recipient list/.test(to)) add(sink, 'to:undisclosed');
  }
  if (options.mime) for (const t of parts.structure) add(sink, t);

  const words = options.words === 'stem' ? (t: string) => bodyWordsInto(t, '', sink) : (t: string) => bodyWords(t, sink);
  words(parts.text);
  if (parts.html) {
    words(parts.html.altText);
    // With a plain part too, the HTML's visible text may differ from it (spam often does).
    if (parts.plainLength) words(parts.html.text);
    add(sink, parts.plainLength ? 'html:alt' : 'html:only');
    add(sink, `img:${bucket(parts.html.images)}`);
    add(sink, `links:${bucket(parts.html.links.length)}`);
    if (parts.html.hiddenText) add(sink, 'html:hidden');
    if (options.htmlTags) for (const tag of parts.html.tags) add(sink, `tag:${tag}`);
  }
  urlTokens(parts, sink);
  for (const a of parts.attachments) add(sink, `att:${a.mimeType || 'unknown'}`);
  return [...sink.out];
}

/** The 'stem' tokenizer's words (split on punctuation), with a prefix. */
function bodyWordsInto(text: string, prefix: string, sink: Sink): void {
  if (!text) return;
  for (const raw of withoutInvisibles(text).split(PLAIN_SPLIT)) {
    if (sink.out.size >= MAX_TOKENS) return;
    if (!raw) continue;
    const token = normaliseWord(raw, sink.options);
    if (token) add(sink, prefix + token);
  }
}
