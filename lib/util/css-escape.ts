/**
 * CSS escapes as a browser decodes them (CSS Syntax 3, 4.3): `\` and 1 to 6 hex digits (and one blank after them) is
 * that code point, `\` and any other character but a newline is that character. They count in names only: property
 * names, keywords, units, `#` colours, function names. `disp\lay:n\6f ne` hides; `font-size:\30` is no size (an
 * escape never makes a digit of a number, `\30` is the name "0"); `0\70x` is 0px. See css-style's unescapedStyle.
 */

const isHex = (c: string | undefined): boolean => c !== undefined && /^[0-9a-f]$/i.test(c);
const isNewline = (c: string | undefined): boolean => c === '\n' || c === '\r' || c === '\f';
/** A name-start code point: a letter, `_`, or beyond ASCII. */
const isNameStart = (c: string | undefined): boolean => c !== undefined && (/^[a-z_]$/i.test(c) || c.charCodeAt(0) >= 0x80);
/** A name code point: a name-start one, a digit or `-`. */
const isNameChar = (c: string | undefined): boolean => c !== undefined && (isNameStart(c) || /^[0-9-]$/.test(c));

/** Whether `s[i]` starts a valid escape: a backslash not followed by a newline. */
export const isEscape = (s: string, i: number): boolean => s[i] === '\\' && !isNewline(s[i + 1]);

/** Whether a name starting at `i` reads as an identifier (CSS Syntax 4.3.9): not a number, `-` or a lone backslash. */
export function startsIdent(s: string, i: number): boolean {
  if (s[i] === '-') return isNameStart(s[i + 1]) || s[i + 1] === '-' || isEscape(s, i + 1);
  return isNameStart(s[i]) || isEscape(s, i);
}

/** The code point the escape at `s[i]` (a backslash, isEscape) stands for, and where it ends. */
function readEscape(s: string, i: number): { char: string; end: number } {
  let j = i + 1;
  if (!isHex(s[j])) {
    if (j >= s.length) return { char: '\ufffd', end: j };
    const code = s.codePointAt(j)!;
    return { char: String.fromCodePoint(code), end: j + (code > 0xffff ? 2 : 1) };
  }
  while (j < i + 7 && isHex(s[j])) j++;
  const code = parseInt(s.slice(i + 1, j), 16);
  // One blank after the digits belongs to the escape (`\6e one` is "none"); CR LF is one.
  if (s[j] === '\r' && s[j + 1] === '\n') j += 2;
  else if (s[j] === ' ' || s[j] === '\t' || isNewline(s[j])) j++;
  const invalid = code === 0 || (code >= 0xd800 && code <= 0xdfff) || code > 0x10ffff;
  return { char: invalid ? '\ufffd' : String.fromCodePoint(code), end: j };
}

/** The name (name code points and escapes, decoded) starting at `s[i]`, and where it ends. */
export function readName(s: string, i: number): { name: string; end: number } {
  let name = '';
  let j = i;
  while (j < s.length) {
    if (isEscape(s, j)) {
      const escape = readEscape(s, j);
      name += escape.char;
      j = escape.end;
    } else if (isNameChar(s[j])) {
      name += s[j];
      j++;
    } else break;
  }
  return { name, end: j };
}

/**
 * A decoded name written back plain when it reads back as the same name, else behind `\?` (an escaped `?`), its
 * characters other than name ones `?` too: no keyword, number or colour of ours holds a `?`, and read again (the
 * written style is: unescapedStyle) it stays one.
 */
function writeName(name: string, plain: boolean): string {
  return plain && [...name].every(isNameChar) ? name : `\\?${name.replace(/[^\w\u0080-\uffff-]/g, '?')}`;
}

/** A number's text at the start of a string (CSS Syntax 4.3.12): digits, a fraction, an exponent. */
const NUMBER = /^[+-]?(?:\d+(?:\.\d+)?|\.\d+)(?:e[+-]?\d+)?/i;

/**
 * A declaration's value with its escapes decoded where a browser reads them as part of a name, in one pass: keywords,
 * units, `#` colours and function names come plain (`n\6f ne` is `none`, `#\66\66\66` is `#fff`, `0\70x` is `0px`). A
 * name a browser reads that no plain writing reads back (`\30` is the name "0", not the number) is kept apart by a
 * backslash: no keyword, number or colour. Strings and url() are kept as written.
 */
export function unescapeValue(value: string): string {
  if (!value.includes('\\')) return value;
  let out = '';
  let i = 0;
  while (i < value.length) {
    const c = value[i]!;
    const number = /[\d.+-]/.test(c) ? NUMBER.exec(value.slice(i, i + 64)) : null;
    if (c === '"' || c === "'") {
      // A string, to its closing quote or a newline (a bad string), escapes and all.
      let j = i + 1;
      while (j < value.length && value[j] !== c && !isNewline(value[j])) j += value[j] === '\\' ? 2 : 1;
      out += value.slice(i, j + 1);
      i = j + 1;
    } else if (number) {
      out += number[0];
      i += number[0].length;
      if (startsIdent(value, i)) {
        // The unit: a name that, written plain, must read as the unit again: not as the number's exponent (`1\65 3`
        // is 1 of unit "e3"), nor as its digits (`1\30px` is 1 of unit "0px", dropped by a browser, not 10px).
        const unit = readName(value, i);
        out += writeName(unit.name, startsIdent(unit.name, 0) && !/^e[+-]?\d/i.test(unit.name));
        i = unit.end;
      }
    } else if (startsIdent(value, i)) {
      const ident = readName(value, i);
      const plain = startsIdent(ident.name, 0) && !ident.name.startsWith('\\');
      out += writeName(ident.name, plain);
      i = ident.end;
      if (/^url$/i.test(ident.name) && value[i] === '(') {
        // A url() is read to its `)` as written: what it holds is not read.
        const close = value.indexOf(')', i);
        const end = close < 0 ? value.length : close + 1;
        out += value.slice(i, end);
        i = end;
      }
    } else if (c === '#' && (isNameChar(value[i + 1]) || isEscape(value, i + 1))) {
      const hash = readName(value, i + 1);
      out += `#${writeName(hash.name, true)}`;
      i = hash.end;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}
