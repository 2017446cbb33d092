import { domainToUnicode } from 'node:url';

/**
 * Our domains written as text in a From: or Sender: too long to parse as addresses (antispoof reads past 1 MB of
 * header, 256 KB of it as addresses): found as the parsed part finds them (the address parser, then asciiDomain),
 * in one pass per domain without a parse.
 */

/** Characters that IDNA (asciiDomain) maps away inside a label: `exa\u00admple.com` is example.com. */
const IDNA_IGNORED = /[\u00ad\u034f\u180b-\u180d\u180f\u200b\u2060\u2064\ufe00-\ufe0f\ufeff\u{1bca0}-\u{1bca3}]/gu;
/** Full stops that IDNA reads as a dot: `example。com` is example.com. */
const IDNA_DOTS = /[\u3002\ufe12\uff61]/g;
/** A character that continues a label: `@example.com-shop.net`, `@example.comé` are other domains. */
const LABEL_CHAR = /[\p{L}\p{N}\p{M}_-]/u;
/** Characters a comment between an address's `@` and its domain is looked back over (`ceo@(x) example.com` is ceo@example.com). */
const MAX_COMMENT = 256;

/**
 * Text (a field's value past the parse budget) as its domains read once mapped (asciiDomain): NFKC (fullwidth
 * letters and `＠`), lower case, IDNA's ignored characters out, its other full stops as dots. ASCII text is as it is.
 */
function domainText(value: string): string {
  const lower = value.toLowerCase();
  if (!/[^\x00-\x7f]/.test(lower)) return lower;
  return value.normalize('NFKC').toLowerCase().replace(IDNA_IGNORED, '').replace(IDNA_DOTS, '.');
}

/**
 * Whether the address's domain starts right after `before` (exclusive): `@`, or `@` then blanks and comments. A
 * comment is looked back over at most MAX_COMMENT characters (200,000 `)` after one `(` cost no more), and each
 * position's answer is kept in `memo` (0 unknown, 1 yes, 2 no): the walk back from one occurrence can cross the
 * comments that hold the ones before it (`(` then `)widget.test` twenty times, then `)`, repeated), which without it
 * each walked again, quadratic in the field's length.
 */
function afterAt(text: string, before: number, memo: Int8Array): boolean {
  const walked: number[] = [];
  let i = before - 1;
  let found = false;
  while (i >= 0) {
    if (memo[i]) {
      found = memo[i] === 1;
      break;
    }
    walked.push(i);
    const c = text[i]!;
    if (c === '@') {
      found = true;
      break;
    }
    if (/\s/.test(c)) i--;
    else if (c === ')') {
      const floor = Math.max(0, i - MAX_COMMENT);
      while (i >= floor && text[i] !== '(') i--;
      if (i < floor) break;
      i--;
    } else break;
  }
  for (const at of walked) memo[at] = found ? 1 : 2;
  return found;
}

/**
 * `text` (domainText) names `domain` (ASCII, or its Unicode form) or a subdomain of it as an address's domain
 * (`@example.com`, `@mail.example.com`, `@ example.com`): our domain written as text, where the rest of a field is too
 * long to parse. Whole labels only: `@example.community` and `@example.com-shop.net` are someone else's.
 */
function namesDomain(text: string, domain: string, memo: Int8Array): boolean {
  for (let at = text.indexOf(domain); at >= 0; at = text.indexOf(domain, at + 1)) {
    const after = text[at + domain.length] ?? '';
    if (LABEL_CHAR.test(after) || (after === '.' && LABEL_CHAR.test(text[at + domain.length + 1] ?? ''))) continue;
    if (text[at - 1] === '.' || afterAt(text, at, memo)) return true;
  }
  return false;
}

/**
 * The domains of `domains` (ASCII, as settings hold them) that `value` names as an address's domain, or a
 * subdomain of one: in ASCII or Unicode (`ceo@bücher.test` for xn--bcher-kva.test), fullwidth, with blanks or a
 * comment after the `@`.
 */
export function domainsWritten(value: string, domains: readonly string[]): string[] {
  const text = domainText(value);
  // What is before a position does not depend on the domain looked for: one memo for all of them.
  const memo = new Int8Array(text.length);
  return domains.filter((domain) => {
    const unicode = domain.includes('xn--') ? domainToUnicode(domain) : '';
    return namesDomain(text, domain, memo) || (!!unicode && unicode !== domain && namesDomain(text, unicode, memo));
  });
}
