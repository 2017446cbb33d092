import assert from 'node:assert/strict';

/** What a terminal obeys or reorders by: C0 but tab and newline, DEL, C1, bidi embeddings, overrides and isolates. */
const RAW_CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/u;

/** Attacker-written text to put in messages: a window title, a clear screen, a colour, a CSI in C1, a bidi override. */
export const HOSTILE = 'Hi \x1b]0;OWNED\x07\x1b[2J\x1b[31mRED\x1b[0m \x9b2J \u202eevil\u202c';
/** How the CLI prints it. */
export const HOSTILE_SHOWN = 'Hi \\x1b]0;OWNED\\x07\\x1b[2J\\x1b[31mRED\\x1b[0m \\x9b2J \\u202eevil\\u202c';
/** Ordinary text beyond ASCII, printed as it is. */
export const PLAIN = 'Grüße é 日本語 🎉';

/** The output holds no character a terminal would act on (newlines and tabs aside). */
export function assertPrintable(text: string, what: string): void {
  const found = RAW_CONTROL.exec(text);
  // Named by code point: the message itself must not carry the character to the test's terminal.
  assert.ok(!found, `${what} prints U+${found?.[0].codePointAt(0)!.toString(16).padStart(4, '0')} raw at ${found?.index}`);
}
