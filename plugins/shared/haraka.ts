// The parts of Haraka's plugin API mailward uses. Haraka ships no type
// declarations, so this small hand-written subset keeps the adapters typed.
import { splitHeaderFields } from '../../lib/mime/header-block';

/** Return codes of haraka-constants (stable across Haraka releases). */
export const CONT = 900;
export const DENY = 902;
export const DENYSOFT = 903;
export const OK = 906;

export type Next = (code?: number, message?: unknown) => void;

/**
 * A reply with an exact SMTP code. Haraka answers DENYSOFT with 450 unless the
 * message is a DSN object (haraka-dsn's shape, recognised by its class name,
 * with `code` and `reply`); this is that shape, without depending on
 * haraka-dsn, so a soft refusal can be the 451 its meaning calls for.
 */
export class DSN {
  constructor(
    readonly code: number,
    readonly reply: string,
    /** The text before it was shortened to fit a reply line (fitReply), for the tracking row. */
    readonly full?: string,
  ) {}

  toString(): string {
    return this.reply;
  }
}

/** The text of a hook's message, whether a string, lines or a DSN (its full text if the reply was shortened). */
export function replyText(message: unknown): string {
  if (message instanceof DSN && message.full) return message.full;
  if (message instanceof DSN || (message && typeof message === 'object' && 'reply' in message)) return String((message as DSN).reply);
  return Array.isArray(message) ? message.join(' ') : String(message ?? '');
}

export interface HarakaAddress {
  /** A getter in @haraka/email-address 3 (Haraka 3.3), a method in older releases. */
  address: string | (() => string);
  isNull(): boolean;
  host?: string | null;
}

/** The bare user@host of an envelope address, whichever Haraka release made it. */
export function addressOf(value: unknown): string | undefined {
  if (!value || typeof value !== 'object') return undefined;
  const a = (value as HarakaAddress).address;
  const text = typeof a === 'function' ? a.call(value) : a;
  return typeof text === 'string' ? text : undefined;
}

export interface HarakaResults {
  add(plugin: { name: string } | string, result: Record<string, unknown>): void;
}

export interface HarakaTransaction {
  uuid: string;
  mail_from: HarakaAddress | null;
  rcpt_to: HarakaAddress[];
  notes: Record<string, any>;
  results: HarakaResults;
  data_bytes?: number;
  message_stream: { get_data(cb: (data: Buffer) => void): void };
  /** Adds a field at the end of the header list: mailward's own go on top instead (prependHeaderFields). */
  add_header(name: string, value: string): void;
  /** Adds a field at the top of the header list (haraka-email-message's Header.add, an unshift). */
  add_leading_header(name: string, value: string): void;
  remove_header(name: string): void;
  /** The message's header as received, one line as it came each (Haraka's Received first), parsed into `header`. */
  header_lines?: string[];
  /** haraka-email-message's Header: `header_list` is the fields as they are written on delivery, one entry each. */
  header?: { header_list?: string[]; headers?: Record<string, string[]>; headers_decoded?: Record<string, string[]> };
}

/**
 * Removes every field named in `names` (any case) from the message as
 * delivered, in one pass over the header list, naming fields as mail readers
 * and mailauth do: the name is what precedes the colon, white space trimmed
 * ("X-Mailward-Status :", "X-Mailward-Score\f:"). Haraka's remove_header
 * drops only fields written exactly "Name:", so a forged X-Mailward-Status or
 * Authentication-Results written so reached the delivered copy, above ours,
 * for a downstream filter to read as ours.
 */
export function removeHeaderFields(txn: HarakaTransaction, names: readonly string[]): void {
  if (!names.length) return;
  const list = txn.header?.header_list;
  if (Array.isArray(list)) {
    const wanted = new Set(names.map((name) => name.toLowerCase()));
    // Haraka continues a field only on a line that starts with a blank or a tab; for mailauth any
    // white space (a form feed) continues it, so such an entry goes with the field above it.
    let dropping = false;
    let write = 0;
    for (let read = 0; read < list.length; read++) {
      const entry = list[read]!;
      // Haraka writes a bare CR as "\r\n ": an entry made from a line that starts with one holds an empty
      // line, where the delivered copy's header block ends, as the scanned copy's did. It is never a
      // continuation to drop with a forged field above it: that took the end of the block with it and
      // turned fields no check had read (a From: of ours) into the delivered copy's header fields.
      if (/(?:^|\n)\r?\n/.test(entry)) {
        dropping = false;
        list[write++] = entry;
        continue;
      }
      if (read === 0 || !/^\s/.test(entry)) dropping = wanted.has(splitHeaderFields(entry)[0]?.name.toLowerCase() ?? '');
      if (!dropping) list[write++] = entry;
    }
    // In place: Haraka's message stream holds this very array.
    list.length = write;
  }
  // Haraka's remove_header (for its parsed headers) comes after the pass above: run first, it took a
  // "Name:" field out alone, and the form-feed line that continued it then joined the field above.
  for (const name of names) txn.remove_header(name);
}

export interface HarakaConnection {
  uuid: string;
  remote: { ip: string; host?: string | null; is_private?: boolean; is_local?: boolean };
  local: { host?: string; ip?: string; port?: number };
  hello: { host?: string | null; verb?: string | null };
  relaying: boolean;
  notes: Record<string, any>;
  transaction: HarakaTransaction | null;
  results: HarakaResults;
  /**
   * Haraka's Authentication-Results collector: stores a resinfo (in the
   * transaction's notes when there is one) and returns the field it would
   * write, "<local.host>;\r\n\t<result>;...", or '' without results.
   */
  auth_results?(message?: string): string;
}

export interface HarakaConfig {
  get(name: string, type?: string, cb?: () => void): any;
  /** Where haraka-config reads a plugin's defaults (module_config), and the Haraka directory's config/ that overrides them. */
  root_path?: string;
  overrides_path?: string;
}

export interface HarakaPlugin {
  name: string;
  config: HarakaConfig;
  register_hook(hook: string, method: string, priority?: number): void;
  logdebug(message: string, conn?: unknown): void;
  loginfo(message: string, conn?: unknown): void;
  logwarn(message: string, conn?: unknown): void;
  logerror(message: string, conn?: unknown): void;
  [method: string]: any;
}
