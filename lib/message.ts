import { addressParser } from 'postal-mime';
import type { Email } from 'postal-mime';
import { headerBlockBounds, headerBlockEnd, parseHeaderBlock, splitHeaderFields, type HeaderField, type RawHeaderField } from './mime/header-block';
import { newRef } from './score/ref';
import { headerValueToWrite } from './util/header';
import { plainIp } from './util/ip';

// The MIME decoding machinery (the cut, the tail walk past it, <meta> charsets) lives in lib/mime/;
// these names were always imported from here, and still are.
export { fieldsPastIndex, withinPastBudget, PAST_INDEX_BUDGET, headerBlockCut, headerBlockEnd, parseHeaderBlock, splitHeaderFields, type HeaderField, type RawHeaderField } from './mime/header-block';
export { MAX_PARSE_BYTES, MAX_PARSE_LINES, mimePrefix } from './mime/limits';
export { parsedMessage } from './mime/parse';

export interface HeaderChanges {
  /** [name, value] pairs, added in order. */
  add: [string, string][];
  /** Names of headers to remove (all instances), e.g. forged X-Mailward-* from outside. */
  remove: string[];
  /**
   * Of `add`, the message's own fields a check removed by name only to keep
   * them (auth: other hosts' Authentication-Results, when one claims our
   * name), listed here as well: an MTA adapter puts these back where they
   * were, at the end of the header, and mailward's own on top. Told, not
   * guessed from the values: a sender's forged field may carry exactly the
   * value of ours.
   */
  putBack: [string, string][];
}

export interface ParseResult {
  ok: boolean;
  /** What went wrong, for the tracking row's parse result; empty when ok. */
  error: string;
  /** Set when only the start of a large message was MIME-decoded: how much of it. */
  partial?: string;
  /** Set when text parts past that start were left unread (budgets spent, or the walk stopped): what and why. */
  unread?: string;
}

/**
 * What every check reads about one SMTP transaction. Built up phase by phase
 * (connect, helo, mail, rcpt, data) by whichever front door is in use: the
 * Haraka plugins or `createMailward().scan()`.
 */
export interface MessageContext {
  /** Reference id of this transaction (SMTP reply, headers, tracking row). */
  ref: string;
  startedAt: number;
  /** The MTA's own id for the transaction (Haraka's uuid), when it has one. */
  queueId?: string;
  ip: string;
  /** Remote host name from reverse DNS: undefined when not looked up, null when there is none. */
  ptr?: string | null;
  helo: string;
  /** Our own host name, as the MTA announces itself. */
  localHostname: string;
  /** True for authenticated submission or a relay-allowed client (outbound mail). */
  relaying: boolean;
  authUser?: string;
  /** Envelope sender; '' is the null sender (bounces); undefined before MAIL FROM. */
  mailFrom?: string;
  rcptTo: string[];
  /** The whole message, headers and body, once DATA has been received. */
  raw?: Buffer;
  headers: HeaderField[];
  /** Where checks leave results for later checks (e.g. auth results for the rules). */
  notes: Record<string, unknown>;
  /** Header changes checks ask the MTA to make on the delivered message (e.g. Authentication-Results). */
  headerChanges: HeaderChanges;
  /** Parsed MIME, computed on first use and shared by every check. */
  parsed?: Promise<Email | null>;
  parse: ParseResult;
}

export interface ContextInit {
  ip: string;
  helo?: string;
  ptr?: string | null;
  localHostname?: string;
  relaying?: boolean;
  authUser?: string;
  mailFrom?: string;
  rcptTo?: string[];
  queueId?: string;
  ref?: string;
  raw?: Buffer | string;
}

export function createContext(init: ContextInit): MessageContext {
  const ctx: MessageContext = {
    ref: init.ref ?? newRef(),
    startedAt: Date.now(),
    queueId: init.queueId,
    // One form for every check and the tracking row: an IPv4 client of a dual-stack socket is IPv4.
    ip: plainIp(init.ip),
    ptr: init.ptr,
    helo: init.helo ?? '',
    localHostname: init.localHostname ?? 'localhost',
    relaying: init.relaying ?? false,
    authUser: init.authUser,
    mailFrom: init.mailFrom,
    rcptTo: [...(init.rcptTo ?? [])],
    headers: [],
    notes: {},
    headerChanges: { add: [], remove: [], putBack: [] },
    parse: { ok: true, error: '' },
  };
  if (init.raw !== undefined) setMessage(ctx, init.raw);
  return ctx;
}

/** Attaches the message data and indexes its header block (tolerant of malformed input). */
export function setMessage(ctx: MessageContext, raw: Buffer | string): void {
  ctx.raw = Buffer.isBuffer(raw) ? raw : Buffer.from(raw, 'utf8');
  ctx.parsed = undefined;
  const { headers, complete } = parseHeaderBlock(ctx.raw);
  ctx.headers = headers;
  ctx.parse = complete ? { ok: true, error: '' } : { ok: false, error: 'header block not terminated or too large' };
}

/**
 * The message without the header fields `drop` picks (given each field and
 * its text, continuation lines and line ending included); the body and every
 * other byte are left as they were. Fields are split and named as
 * parseHeaderBlock and mailauth read them (splitHeaderFields): a field any
 * mailward reader, or DKIM and DMARC, takes for one goes whole.
 */
export function withoutFields(raw: Buffer, drop: (field: RawHeaderField, text: string) => boolean): Buffer {
  const split = keptFields(raw, drop);
  return split ? Buffer.concat([split.fields, split.rest]) : raw;
}

/**
 * withoutFields in two pieces: the kept fields, and the rest of the message from the blank line on.
 * Undefined without a blank line. A caller that adds fields at the end of the header adds them
 * between the two: once every field is dropped, the rest starts with the blank line, and a search
 * for the header's end in the message put together again finds none there (a blank line first is
 * no header end to mailauth) but one in the body.
 */
function keptFields(raw: Buffer, drop: (field: RawHeaderField, text: string) => boolean): { fields: Buffer; rest: Buffer } | undefined {
  // The last field's own line ending belongs to it (the blank line follows): dropping that field
  // must not leave its ending behind as a second blank line, which would move the body down.
  const blockEnd = headerBlockEnd(raw);
  if (blockEnd < 0) return undefined;
  // latin1 maps bytes to characters one to one, so the kept fields come back byte for byte.
  const block = raw.subarray(0, blockEnd).toString('latin1');
  const kept = splitHeaderFields(block)
    .map((field) => ({ field, text: block.slice(field.start, field.end) }))
    .filter(({ field, text }) => !drop(field, text));
  return { fields: Buffer.from(kept.map(({ text }) => text).join(''), 'latin1'), rest: raw.subarray(blockEnd) };
}

/**
 * The message with every field named in `names` (any case) taken out of its
 * header block, continuation lines included, except the first `keepFirst`
 * fields of each name (see withoutFields).
 */
export function withoutHeaders(raw: Buffer, names: string[], keepFirst = 0): Buffer {
  if (!names.length) return raw;
  return withoutFields(raw, namedFields(names, keepFirst));
}

/** withoutHeaders' choice: the fields named in `names` (any case) but the first `keepFirst` of each name. */
function namedFields(names: string[], keepFirst: number): (field: RawHeaderField) => boolean {
  const seen = new Map(names.map((n) => [n.toLowerCase(), 0]));
  return (field) => {
    const name = field.name.toLowerCase();
    const count = seen.get(name);
    if (count === undefined) return false;
    seen.set(name, count + 1);
    return count >= keepFirst;
  };
}

/**
 * Of the fields a check added, those it listed as put back (headerChanges.putBack:
 * the message's own fields it removed by name only to keep them) and the rest,
 * mailward's own. Each listed pair matches one added field, the same pair, in
 * order: told, not guessed from the values (a sender's forged field may carry
 * exactly the value of ours).
 */
export function splitPutBack(added: readonly [string, string][], putBack: readonly [string, string][]): { onTop: [string, string][]; back: [string, string][] } {
  const left = [...putBack];
  const onTop: [string, string][] = [];
  const back: [string, string][] = [];
  for (const field of added) {
    const at = left.findIndex(([name, value]) => name === field[0] && value === field[1]);
    if (at < 0) onTop.push(field);
    else {
      left.splice(at, 1);
      back.push(field);
    }
  }
  return { onTop, back };
}

/**
 * The message with the header edits the checks asked for (headerChanges), for
 * an MTA that writes the message itself: every field named in `remove` taken
 * out (a sender's forged Authentication-Results in our name, X-Mailward-*),
 * the fields mailward adds on top, in the order given, below `extra` (the
 * MTA's own, e.g. X-Mailward-Ref), and the message's own fields a check put
 * back at the end of the header block, where they stood (RFC 8601 §5: on top
 * they would read as added at our boundary). Values are written as the Haraka
 * plugins write them: non-ASCII encoded (Authentication-Results
 * written in ASCII instead, never encoded), folded.
 */
export function withHeaderChanges(raw: Buffer, changes: HeaderChanges, extra: readonly [string, string][] = []): Buffer {
  const { onTop, back } = splitPutBack(changes.add, changes.putBack);
  const written = (fields: readonly [string, string][]) => fields.map(([name, value]): [string, string] => [name, headerValueToWrite(name, value)]);
  // A message of header fields only gets the empty line that ends its header, as Haraka writes one:
  // its fields are then fields to remove, and the put-backs go above that line.
  const ending = raw.subarray(-2).toString() === '\r\n' ? '\r\n' : raw.subarray(-1).toString() === '\n' ? '\n' : '\r\n\r\n';
  const whole = headerBlockEnd(raw) < 0 ? Buffer.concat([raw, Buffer.from(ending)]) : raw;
  return withFieldsWritten(whole, changes.remove, written([...extra, ...onTop]), written(back));
}

/**
 * `raw` without the fields named in `remove`, with `top` above its header and
 * `back` at the end of its header block, after the last field's own line
 * ending (a message with no empty line is all header: at its end). Values
 * are written as given: withHeaderChanges, and the quarantine's held copy,
 * which repeats what the MTA wrote.
 */
export function withFieldsWritten(raw: Buffer, remove: string[], top: readonly [string, string][], back: readonly [string, string][]): Buffer {
  const lines = (fields: readonly [string, string][]) => Buffer.from(fields.map(([name, value]) => `${name}: ${value}\r\n`).join(''), 'utf8');
  // Where the kept fields end, as split, not the header end of what is left: with every field
  // removed that lies in the body (after its first blank line), and `back` went into the body.
  const kept = keptFields(raw, namedFields(remove, 0));
  if (!kept) return Buffer.concat([lines(top), raw, lines(back)]);
  return Buffer.concat([lines(top), kept.fields, lines(back), kept.rest]);
}

/** All values of a header, in message order. */
export function headerValues(ctx: MessageContext, name: string): string[] {
  const key = name.toLowerCase();
  return ctx.headers.filter((h) => h.key === key).map((h) => h.value);
}

/** One mailbox of a From: header: the display name decoded, the address lower-cased ('' when it has none). */
export interface Mailbox {
  name: string;
  address: string;
  /** The address as written: case matters to what a reader sees (an upper-case I reads as l). */
  written: string;
}

/** One address header parsed: its mailboxes (groups flattened) and every name written in it (group names too). */
interface AddressField {
  mailboxes: Mailbox[];
  names: string[];
}

function parseAddressField(value: string): AddressField {
  const field: AddressField = { mailboxes: [], names: [] };
  const add = (a: { name?: string; address?: string; group?: unknown[] }): void => {
    field.names.push(a.name ?? '');
    if (Array.isArray(a.group)) {
      for (const member of a.group) add(member as typeof a);
      return;
    }
    // A name without an address ("Jane Doe" <>) is kept: it is still what the reader sees.
    if (a.address || a.name) field.mailboxes.push({ name: a.name ?? '', address: (a.address ?? '').toLowerCase(), written: a.address ?? '' });
  };
  try {
    for (const a of addressParser(value)) add(a);
  } catch {
    // an unparseable field names no mailbox; its text is still what the reader sees
    field.names.push(value);
  }
  return field;
}

/** Every mailbox in these address-header values, groups flattened (an unparseable value names none). */
export function mailboxesOf(values: string[]): Mailbox[] {
  return values.flatMap((v) => parseAddressField(v).mailboxes);
}

/**
 * Address headers (From:, Reply-To:, Sender:) parsed once per message and
 * name: several checks read them, and a forger controls their size.
 */
const addressFields = new WeakMap<MessageContext, { headers: HeaderField[]; byName: Map<string, AddressField[]> }>();

function addressFieldsOf(ctx: MessageContext, name: string): AddressField[] {
  let cached = addressFields.get(ctx);
  if (!cached || cached.headers !== ctx.headers) {
    cached = { headers: ctx.headers, byName: new Map() };
    addressFields.set(ctx, cached);
  }
  const key = name.toLowerCase();
  let fields = cached.byName.get(key);
  if (!fields) cached.byName.set(key, (fields = headerValues(ctx, key).map(parseAddressField)));
  return fields;
}

/** Every mailbox in every header of this name (Reply-To, Sender), groups flattened, in message order; parsed once per message. */
export function headerMailboxes(ctx: MessageContext, name: string): Mailbox[] {
  return addressFieldsOf(ctx, name).flatMap((f) => f.mailboxes);
}

/**
 * Every mailbox in every From: header, groups flattened, in message order.
 * Checks that judge the sender must look at all of them: a forger puts the
 * address it wants believed second, in a group, or in a second From: header.
 */
export function fromMailboxes(ctx: MessageContext): Mailbox[] {
  return headerMailboxes(ctx, 'from');
}

/** A word that reads as an address: what a reader takes for one in a display or group name (any script in the domain). */
const SHOWN_ADDRESS = /^[^@]+@[\p{L}\p{N}-]+(?:\.[\p{L}\p{N}-]+)*\.[\p{L}\p{N}-]{2,}$/u;

/**
 * Addresses written as text in a name: `"ceo@example.com" <x@y>`, an encoded
 * word, a group's name. Split into words first and each tested anchored, so
 * the time stays linear in the text (a forger controls its length).
 */
export function addressesInText(text: string, asWritten = false): string[] {
  const words = text
    .normalize('NFKC')
    .split(/[\s<>"'(),;:[\]]+/)
    .filter((word) => word.includes('@') && SHOWN_ADDRESS.test(word));
  return asWritten ? words : words.map((word) => word.toLowerCase());
}

/**
 * The addresses a reader sees in From: when it holds no address at all (an
 * encoded word, or a group, whose text is an address; RFC 2047 forbids the
 * first, but clients show it): the author DMARC and the local-domain check
 * must judge. Empty when From: has an address.
 */
export function shownFromAddresses(ctx: MessageContext, asWritten = false): string[] {
  return shownAddresses(addressFieldsOf(ctx, 'from'), asWritten);
}

/** The same for From: values read elsewhere (fieldsPastIndex), together with the indexed ones. */
export function shownFromAddressesWith(ctx: MessageContext, values: string[], asWritten = false): string[] {
  return shownAddresses([...addressFieldsOf(ctx, 'from'), ...values.map(parseAddressField)], asWritten);
}

function shownAddresses(fields: AddressField[], asWritten: boolean): string[] {
  if (fields.some((f) => f.mailboxes.some((m) => m.address))) return [];
  return [...new Set(fields.flatMap((f) => f.names).flatMap((name) => addressesInText(name, asWritten)))];
}

export function firstHeader(ctx: MessageContext, name: string): string | undefined {
  const key = name.toLowerCase();
  return ctx.headers.find((h) => h.key === key)?.value;
}

/** The message body as text (undecoded), or '' before DATA. */
export function rawBody(ctx: MessageContext): string {
  if (!ctx.raw) return '';
  const bounds = headerBlockBounds(ctx.raw);
  return bounds ? ctx.raw.subarray(bounds.bodyStart).toString('utf8') : '';
}

export function domainOf(address: string | undefined): string {
  if (!address) return '';
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1).toLowerCase().replace(/>$/, '');
}
