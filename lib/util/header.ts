import * as mimeFuncs from 'nodemailer/lib/mime-funcs';
import { asciiAuthResults } from './auth-results-value';

/** RFC 5322 2.1.1: a header line should be at most 78 characters and must be at most 998 (CRLF excluded). */
export const HEADER_LINE_SOFT = 78;
export const HEADER_LINE_HARD = 998;

const octets = (text: string) => Buffer.byteLength(text, 'utf8');

/** The longest start of `text` of at most `max` octets, whole characters (at least one). */
function cutAt(text: string, max: number): number {
  let used = 0;
  let at = 0;
  for (const ch of text) {
    used += octets(ch);
    if (used > max && at > 0) break;
    at += ch.length;
  }
  return at;
}

/**
 * `value` folded for the field `name: value` (RFC 5322 2.2.3): CRLF inserted
 * before the white space where a line would pass 78 octets, so unfolding gives
 * the value back as it was. A word longer than a line gets a line of its own;
 * only a word that would still pass 998 octets (which no validly written field
 * holds) is broken, with a fold and a space. Folding already in `value` is
 * unfolded first.
 */
export function foldHeaderValue(name: string, value: string): string {
  const unfolded = value
    .replace(/\r?\n(?=[ \t])/g, '')
    .replace(/[\r\n]+/g, ' ')
    .trim();
  if (!unfolded) return '';
  // Tokens with the white space before them; the first is the field name, never folded from.
  const tokens = [`${name}:`, ...(` ${unfolded}`.match(/[ \t]+[^ \t]+/g) ?? [])];
  let out = '';
  let line = 0;
  for (const [i, token] of tokens.entries()) {
    let rest = token;
    if (i > 1 && line + octets(rest) > HEADER_LINE_SOFT) {
      out += '\r\n';
      line = 0;
    }
    while (line + octets(rest) > HEADER_LINE_HARD) {
      const at = cutAt(rest, HEADER_LINE_HARD - line);
      out += `${rest.slice(0, at)}\r\n`;
      rest = ` ${rest.slice(at)}`;
      line = 0;
    }
    out += rest;
    line += octets(rest);
  }
  return out.slice(name.length + 2);
}

/**
 * A value for an MTA that RFC 2047-encodes non-ASCII text itself, as one
 * encoded word however long and with any folding inside it (Haraka's
 * add_header): the non-ASCII words encoded here in words of at most 52
 * characters of text, separated by white space, so that it can be folded.
 */
export function encodedHeaderValue(value: string): string {
  return /[^\x00-\x7f]/.test(value) ? mimeFuncs.encodeWords(value, 'Q', 52) : value;
}

/**
 * A field's value as mailward writes it: folded (foldHeaderValue), except our
 * own X-Mailward-* fields (the status, the backscatter signature), which stay
 * on one line as filters and bounce parsers read them: short ASCII values, the
 * status cut below 998 octets (verdict statusHeader).
 */
export function valueToWrite(name: string, value: string): string {
  return /^x-mailward-/i.test(name) ? value : foldHeaderValue(name, value);
}

/**
 * Trace fields of results, key=value pairs, comments and quoted strings
 * (Authentication-Results, RFC 8601; Received-SPF, RFC 7208 §9.1): never RFC
 * 2047-encoded, as their readers do not decode them and an encoded word
 * swallows what follows it (a comment's ")" and the pairs after it).
 */
const RESULT_TRACE_FIELD = /^(?:authentication-results|received-spf)$/i;

/**
 * A field's value as mailward writes it, whole: non-ASCII text encoded
 * (encodedHeaderValue), then folded (valueToWrite). Authentication-Results and
 * Received-SPF are never RFC 2047-encoded: their non-ASCII text is written in
 * ASCII (asciiAuthResults, whose rules for comments, quoted strings and
 * key=value pairs fit Received-SPF's grammar as well).
 */
export function headerValueToWrite(name: string, value: string): string {
  return valueToWrite(name, RESULT_TRACE_FIELD.test(name) ? asciiAuthResults(value) : encodedHeaderValue(value));
}
