import { asciiDomain, isHostName } from './domain';

// An Authentication-Results value (RFC 8601) written in ASCII.
//
// RFC 8601 readers (mailauth, OpenDMARC, rspamd) do not decode RFC 2047
// encoded words inside Authentication-Results: an encoded word spans white
// space, semicolons and a comment's closing parenthesis, so the results it
// swallows (smtp.mailfrom=..., the resinfos after it) are lost. Such a field is
// never encoded; its non-ASCII text is made ASCII here instead:
//   - domains (an SMTPUTF8 sender's U-label domain in smtp.mailfrom, a
//     header.from or DKIM header.d with a U-label) become A-labels, which say
//     the same (RFC 8616 §5; mailauth itself writes DMARC's as A-labels);
//   - an address whose local part is not ASCII (only in SMTPUTF8 mail, RFC
//     6531) is written as its domain alone, which RFC 8601's pvalue allows
//     ("[ [ local-part ] "@" ] domain-name") and is what SPF and DMARC judged;
//   - any other non-ASCII character (a failed SMTP AUTH's user name, a
//     comment's text) becomes "?" inside a quoted string or a comment, where
//     "?" is allowed (a token may not hold it): the field keeps its structure
//     and only free text loses characters.
// RFC 8616 also lets SMTPUTF8 mail carry UTF-8 as it is (RFC 6532), but the
// MTA (Haraka's Header) RFC 2047-encodes every field value with non-ASCII text
// and ASCII is valid in every message, so the field is always written in ASCII.
// Received-SPF (RFC 7208 §9.1: a result, a comment, key=value pairs) is
// written by the same rules (headerValueToWrite).

const NON_ASCII = /[^\x00-\x7f]/;
const NON_ASCII_G = /[^\x00-\x7f]/gu;
/** RFC 2045 token characters (no tspecials), plus "@" and "." of an address or domain, as mailauth writes them. */
const TOKEN = /^[A-Za-z0-9!#$%&'*+\-.^_`{|}~@]+$/;

const replaced = (text: string) => text.replace(NON_ASCII_G, '?');
const quoted = (text: string) => `"${replaced(text).replace(/["\\]/g, (c) => `\\${c}`)}"`;
const asValue = (text: string) => (TOKEN.test(text) ? text : quoted(text));

/** The A-label form of a host name with a non-ASCII label, '' when it is not one (no dot, not a host name once converted). */
function aLabel(domain: string): string {
  return domain.includes('.') && isHostName(domain) ? asciiDomain(domain) : '';
}

/** A property's value (unquoted) in ASCII. */
function asciiValue(property: string, value: string): string {
  if (!NON_ASCII.test(value)) return asValue(value);
  // smtp.auth is a user name, which need not be an address: its domain alone would name someone else.
  if (property.toLowerCase() === 'smtp.auth') return quoted(value);
  const at = value.lastIndexOf('@');
  const domain = aLabel(value.slice(at + 1));
  if (!domain) return quoted(value);
  if (at < 0) return domain;
  const local = value.slice(0, at);
  return NON_ASCII.test(local) ? domain : asValue(`${local}@${domain}`);
}

/** The text of a quoted string (escapes undone) when `text` is exactly one, else undefined. */
function unquoted(text: string): string | undefined {
  const m = /^"((?:[^"\\]|\\.)*)"$/s.exec(text);
  return m ? m[1]!.replace(/\\(.)/gs, '$1') : undefined;
}

/** A word (no white space, semicolon or comment) in ASCII: `name=value` by its value, a bare word as a domain or text. */
function asciiWord(word: string): string {
  if (!NON_ASCII.test(word)) return word;
  const eq = /^([A-Za-z0-9._-]+)=(.*)$/s.exec(word);
  if (eq) return `${eq[1]}=${asciiValue(eq[1]!, unquoted(eq[2]!) ?? eq[2]!)}`;
  // The authserv-id (a host name) or stray text.
  return aLabel(word) || replaced(word);
}

/**
 * `value` with every non-ASCII character written in ASCII (see above), its
 * structure (semicolons, comments, quoted strings) left as it was; an ASCII
 * value comes back as it is.
 */
export function asciiAuthResults(value: string): string {
  if (!NON_ASCII.test(value)) return value;
  let out = '';
  let i = 0;
  while (i < value.length) {
    const c = value[i]!;
    if (c === '(') {
      // A comment, nested comments and escapes included: free text.
      let depth = 0;
      let j = i;
      for (; j < value.length; j++) {
        const d = value[j];
        if (d === '\\') j++;
        else if (d === '(') depth++;
        else if (d === ')' && --depth === 0) break;
      }
      out += replaced(value.slice(i, j + 1));
      i = j + 1;
    } else if (/[\s\u0085;]/.test(c)) {
      // Between words: a non-ASCII space (U+00A0, U+3000...) separates them as a space does, written as one.
      out += NON_ASCII.test(c) ? ' ' : c;
      i++;
    } else {
      // A word: up to white space, a semicolon or a comment outside a quoted string. Only ASCII white space
      // ends it (RFC 5322 WSP): a non-ASCII space inside a word (a failed AUTH's user name "j\u00a0rg") is
      // its text, made ASCII with it, never left in the field (Haraka would RFC 2047-encode the field).
      let j = i;
      let inQuotes = false;
      for (; j < value.length; j++) {
        const d = value[j]!;
        if (inQuotes && d === '\\') j++;
        else if (d === '"') inQuotes = !inQuotes;
        else if (!inQuotes && /[ \t\r\n;(]/.test(d)) break;
      }
      out += asciiWord(value.slice(i, j));
      i = j;
    }
  }
  return out;
}
