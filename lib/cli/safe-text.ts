/**
 * Text from a message or its sender (subjects, addresses, names, Message-IDs,
 * symbol details quoting headers, body lines), made safe to print on the
 * operator's terminal. A terminal obeys control characters: a subject could
 * clear the screen, move the cursor to hide lines of a listing, retitle the
 * window or (OSC 52) write the clipboard. Bidi overrides and isolates reorder
 * what is read ("Trojan Source"). These are shown as escapes (\x1b, \u202e);
 * all other text, accents, scripts and emoji included, is printed as it is.
 */

import type { CliIO } from './types';

// C0 but tab, DEL, C1, and the bidi embeddings, overrides and isolates.
const UNSAFE = /[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;
// The same but newline, for text printed as several lines.
const UNSAFE_KEEPING_NEWLINES = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;
// What JSON.stringify leaves raw (it escapes only C0).
const UNSAFE_IN_JSON = /[\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;

function escaped(c: string): string {
  const code = c.charCodeAt(0);
  return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/** For a field on one line: a newline in it is escaped too, so it cannot start a line of its own. */
export function oneLine(text: string): string {
  return text.replace(UNSAFE, escaped);
}

/** For text printed as lines: newlines kept, everything else escaped. */
export function multiLine(text: string): string {
  return text.replace(UNSAFE_KEEPING_NEWLINES, escaped);
}

/** JSON.stringify, with DEL, C1 and bidi characters as \u escapes too: the same JSON value, safe on a terminal. */
export function jsonText(value: unknown, space?: number): string {
  return JSON.stringify(value, null, space).replace(UNSAFE_IN_JSON, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * An io that escapes each line whole, newlines included: for output made only
 * of one-line sentences quoting message text, where escaping the line is
 * escaping each value in it (the program's own words hold no controls).
 */
export function oneLineIO(io: CliIO): CliIO {
  return { out: (line) => io.out(oneLine(line)), err: (line) => io.err(oneLine(line)) };
}
