// mailward's Authentication-Results beside the one Haraka assembles itself.
//
// Haraka collects the results its plugins report with
// connection.auth_results(resinfo) (auth/auth_base on AUTH, spf, dkim, third
// parties) in connection.notes and transaction.notes.authentication_results.
// When any were collected it writes a field of its own twice
// (connection.js): at data_done, appended to the header before the data_post
// hooks run, and in data_post_respond, after them, where it first REMOVES
// every Authentication-Results field and then puts its field, "<local.host>;
// <every result>", on top. mailward's field, added in data_post, was thrown
// away with the rest, and Haraka's data_done field, in our name, was read as
// a forged one (AUTH_RESULTS_FORGED). Here:
//   - the data_done field is taken out before the message is read: Haraka
//     writes it again, with whatever is reported later, in data_post_respond
//     (known by what it says, and by being one more field of that content
//     than the message came with: a sender's copy stays a forged one);
//   - with the authserv-id Haraka uses (its host name), mailward's entries are
//     handed to Haraka, so that its one field carries them as well;
//   - with another authserv-id, or when a plugin reports only after mailward's
//     hook, mailward's own field is put back (queue hook, before delivery);
//   - Haraka RFC 2047-encodes its field when a result holds non-ASCII text (a
//     failed SMTP AUTH's user name), which RFC 8601 readers cannot parse: the
//     entries handed to it are ASCII already, and at the queue hook its field
//     is written again in ASCII (asciiAuthResults);
//   - the fields as they will stand on top of the delivered copy, above every
//     field mailward adds, are kept in state.authResultsOnTop: the held copy
//     of a quarantined message writes them first, in the same order.
import { decodeWords } from 'postal-mime';
import { ownAuthResults, resinfoEntries } from '../../lib/checks/auth';
import { asciiAuthResults } from '../../lib/util/auth-results-value';
import { headerValueToWrite } from '../../lib/util/header';
import type { HarakaConnection, HarakaTransaction } from './haraka';
import type { MailwardState } from './state';

const AR = 'Authentication-Results';

/** The results Haraka has collected so far, the connection's then the transaction's, as it assembles them. */
function collected(connection: HarakaConnection): { conn: string[]; txn: string[] } {
  const list = (notes: Record<string, any> | undefined): string[] => (Array.isArray(notes?.authentication_results) ? notes!.authentication_results.map(String) : []);
  return { conn: list(connection.notes), txn: list(connection.transaction?.notes) };
}

function harakaHasResults(connection: HarakaConnection): boolean {
  const { conn, txn } = collected(connection);
  return conn.length + txn.length > 0;
}

const same = (a: string | undefined, b: string | undefined) => !!a && !!b && a.toLowerCase() === b.toLowerCase();

/**
 * The fields the message came with, as Haraka parsed them from its
 * header_lines (Haraka's Received included): a line that starts with a blank
 * or a tab continues the field before, and so does whatever follows a bare CR
 * (Haraka writes it "\r\n ").
 */
function receivedFields(txn: HarakaTransaction): string[] | undefined {
  const lines = txn.header_lines;
  if (!Array.isArray(lines)) return undefined;
  const fields: string[] = [];
  for (const raw of lines) {
    const line = String(raw).replace(/\r(?!\n)/g, '\r\n ');
    if (!/^[ \t]/.test(line)) fields.push(line);
    else if (fields.length) fields[fields.length - 1] += line;
  }
  return fields;
}

const OAR = 'original-authentication-results';
const named = (entry: string, name: string) => entry.slice(0, name.length + 1).toLowerCase() === `${name}:`;

/**
 * Takes the Authentication-Results entry `at` out of the header list, and its
 * value out of Haraka's parsed copies (header.get) in step: the copy with
 * that value nearest `end`, or the one at `end` when none has it (a decoded
 * copy differs from the encoded entry). Returns its value.
 */
function takeField(txn: HarakaTransaction, list: string[], at: number, end: 'first' | 'last'): string {
  const [entry] = list.splice(at, 1);
  const value = entry!.slice(AR.length + 2).replace(/\n$/, '');
  for (const parsed of [txn.header?.headers, txn.header?.headers_decoded]) {
    const values = parsed?.[AR.toLowerCase()];
    if (!Array.isArray(values)) continue;
    const i = end === 'last' ? values.lastIndexOf(value) : values.indexOf(value);
    values.splice(i >= 0 ? i : end === 'last' ? values.length - 1 : 0, 1);
  }
  return value;
}

/**
 * Is this header entry, in content, the field Haraka appended at data_done:
 * its host name, then every result of the connection's (all reported before
 * the transaction began, so all there at data_done) and, of the
 * transaction's, those reported by then (a data_post hook may have reported
 * more since), in the order Haraka collected them? Compared as Haraka joins
 * them, text for text, not split into results again: a result may hold a
 * semicolon or an open parenthesis of the client's (a failed SMTP AUTH's user
 * name, as auth_base writes it), which splits it otherwise.
 */
function isDataDoneField(entry: string, connection: HarakaConnection): boolean {
  const colon = entry.indexOf(':');
  if (colon < 0 || entry.slice(0, colon) !== AR) return false;
  const { conn, txn } = collected(connection);
  const results = [...conn, ...txn];
  // Haraka's join, ";\r\n\t", unfolded; white space runs as one, case aside (the host name's is not the
  // sender's to vary, and a sender's copy that differs only so stays one of the same content).
  const plain = (text: string) => text.replace(/\s+/g, ' ').trim().toLowerCase();
  // The host name sanitised as Haraka does (no control characters).
  const host = String(connection.local.host ?? '').replace(/[\x00-\x1f\x7f]/g, '');
  const written = new Set<string>();
  for (let n = Math.max(1, conn.length); n <= results.length; n++) written.add(plain([host, ...results.slice(0, n)].join('; ')));
  const says = (value: string) => written.has(plain(value));
  // Haraka writes a value with non-ASCII text (a failed SMTP AUTH's user name, an IDN) RFC 2047-encoded,
  // from the first such word on as one encoded word, its folds and semicolons inside it (Header.add_end).
  const value = entry.slice(colon + 1);
  return says(value) || (/=\?/.test(value) && says(decodeWords(value)));
}

/**
 * Takes out of the header the field Haraka appended at data_done, before
 * mailward reads the message: it is Haraka's own, not a forged one in our
 * name, and Haraka removes it in data_post_respond anyway (it wrote it
 * because it holds results, and then writes them all again on top). The held
 * copy has it on top, where the delivered copy will (until the auth plugin
 * replaces it with the combined field).
 *
 * A sender may write a field with the very same content (a failed SMTP AUTH's
 * `auth=fail` is the sender's to know), so it is counted, not placed: Haraka's
 * is there when the header holds more fields of that content than the
 * message came with (txn.header_lines), none of those counted when Haraka's
 * clean_auth_results renamed them (more Original-Authentication-Results than
 * the message came with). Where it stands says nothing reliable: Haraka puts it
 * on top of a message without an empty line after its header (it parses such
 * a header only after adding the field), drops fields it finds unsafe
 * (`constructor:`), and a data_post plugin before mailward may remove a field
 * above it or add one. A sender's field of the same content stays a forged one.
 */
export function takeOutDataDoneField(state: MailwardState, connection: HarakaConnection, txn: HarakaTransaction): void {
  const list = txn.header?.header_list;
  const came = receivedFields(txn);
  if (!Array.isArray(list) || !came || !harakaHasResults(connection)) return;
  const isHarakas = (entry: string) => isDataDoneField(entry, connection);
  const renamed = list.filter((entry) => named(entry, OAR)).length > came.filter((field) => named(field, OAR)).length;
  const sendersLeft = renamed ? 0 : came.filter(isHarakas).length;
  const at = list.map((entry, i) => (isHarakas(entry) ? i : -1)).filter((i) => i >= 0);
  // The same content either way: the last one goes, and any left is the sender's, forged.
  if (at.length <= sendersLeft) return;
  // Appended: of Haraka's parsed copies with its value, the last.
  state.authResultsOnTop = [[AR, takeField(txn, list, at[at.length - 1]!, 'last')]];
}

/** Hands mailward's entries to Haraka, each once (notes hold them as Haraka sanitised them: no control characters). */
function handOver(connection: HarakaConnection, entries: string[]): void {
  const { conn, txn } = collected(connection);
  const have = new Set([...conn, ...txn].map((e) => e.trim()));
  for (const entry of entries) if (!have.has(entry.replace(/[\x00-\x1f\x7f]/g, '').trim())) connection.auth_results?.(entry);
}

/**
 * Haraka's combined field in ASCII: its plugins' results may hold non-ASCII
 * text (auth_base's failed SMTP AUTH user name, an IDN), which Haraka's
 * Header.add_leading_header RFC 2047-encodes, from the first such word on, as
 * one encoded word that swallows the semicolons and results after it; RFC
 * 8601 readers do not decode it (asciiAuthResults).
 */
function harakaField(connection: HarakaConnection): string {
  return asciiAuthResults(connection.auth_results?.() ?? '');
}

/** Haraka's field as data_post_respond writes it (every field of the name out, its own on top), in ASCII. */
function writeHarakaField(txn: HarakaTransaction, connection: HarakaConnection): string {
  const combined = harakaField(connection);
  txn.remove_header(AR);
  if (combined) txn.add_leading_header(AR, combined);
  return combined;
}

/**
 * Before delivery: Haraka's field as data_post_respond wrote it, RFC 2047-encoded when
 * a result held non-ASCII text, replaced with the same field in ASCII, where it stands.
 */
function asciiHarakaField(txn: HarakaTransaction, connection: HarakaConnection): void {
  const raw = connection.auth_results?.() ?? '';
  const list = txn.header?.header_list;
  if (!/[^\x00-\x7f]/.test(raw) || !Array.isArray(list)) return;
  const plain = (text: string) => text.replace(/\s+/g, ' ').trim();
  const at = list.findIndex((entry) => entry.slice(0, AR.length + 1) === `${AR}:` && plain(decodeWords(entry.slice(AR.length + 1))) === plain(raw));
  if (at < 0) return;
  // Written on top: of Haraka's parsed copies, the first.
  takeField(txn, list, at, 'first');
  txn.add_leading_header(AR, harakaField(connection));
  // Where it stood: add_leading_header put it on top.
  if (at > 0) list.splice(at, 0, list.shift()!);
}

/**
 * Right after the auth check wrote its field (data_post): if Haraka holds
 * results, it will replace every Authentication-Results field with its own.
 * With our authserv-id its host name, mailward's entries go to Haraka and the
 * combined field replaces ours now, in the message and in the held copy
 * (the verdict's quarantine copy is taken before data_post_respond). With
 * another authserv-id Haraka's field is added beside ours, as it will stand
 * (ours comes back at queue time). Haraka also drops the other hosts'
 * fields mailward put back (with connection.ini clean_auth_results, its
 * default, there are none: it renamed them Original-Authentication-Results).
 */
export function shareAuthResults(state: MailwardState, connection: HarakaConnection): void {
  const own = ownAuthResults(state.ctx);
  const txn = connection.transaction;
  if (!own || !txn || state.authResultsShared || !harakaHasResults(connection)) return;
  const written = headerValueToWrite(AR, own.value);
  // Haraka's field, and with another authserv-id ours above it, stand above every field mailward adds
  // (state.authResultsOnTop): none of the name stays among those.
  state.addedOnTop = state.addedOnTop.filter(([name]) => name !== AR);
  if (same(own.authservId, connection.local.host)) {
    handOver(connection, resinfoEntries(own.value).entries);
    state.authResultsShared = true;
    // Ours and Haraka's data_done field (takeOutDataDoneField) give way to the combined one.
    state.authResultsOnTop = [[AR, writeHarakaField(txn, connection)]];
  } else {
    const field = harakaField(connection);
    txn.add_leading_header(AR, field);
    // Delivered: Haraka's on top (data_post_respond), ours above it (restoreAuthResults, queue hook).
    state.authResultsOnTop = [
      [AR, written],
      [AR, field],
    ];
  }
  state.putBack = state.putBack.filter(([name]) => name !== AR);
}

/**
 * Before delivery (queue hook, after data_post_respond): Haraka's field
 * replaced ours when it held results mailward did not hand over, from a
 * plugin that reported after mailward's data_post hook, or under another
 * authserv-id. Ours comes back: combined with Haraka's when the authserv-id
 * is the same, as a field of its own on top otherwise. Haraka's field, when
 * data_post_respond RFC 2047-encoded it, is first written again in ASCII.
 */
export function restoreAuthResults(state: MailwardState, connection: HarakaConnection): void {
  const own = ownAuthResults(state.ctx);
  const txn = connection.transaction;
  if (!txn || !harakaHasResults(connection)) return;
  asciiHarakaField(txn, connection);
  if (!own || state.authResultsShared) return;
  if (same(own.authservId, connection.local.host)) {
    handOver(connection, resinfoEntries(own.value).entries);
    state.authResultsShared = true;
    writeHarakaField(txn, connection);
    return;
  }
  // Haraka held results, so data_post_respond took every field of the name out, ours too.
  txn.add_leading_header(AR, headerValueToWrite(AR, own.value));
}
