import { fieldsPastIndex, fromMailboxes, headerValues, mailboxesOf, shownFromAddressesWith, type Mailbox, type MessageContext } from '../../message';

/** Characters of From: text past the header index that are parsed for authors (a forger sets its length; 10 domains are judged). */
const PAST_FROM_BUDGET = 256 * 1024;

/** The message's From: fields as DMARC and mailauth see them: those indexed and those past the 1 MB header index. */
export interface AuthorFields {
  /** How many From: fields the header holds. */
  fields: number;
  /** Every mailbox of them, in message order (past the index: those within the budget). */
  mailboxes: Mailbox[];
  /** From: values past the index (budgeted): the addresses their text shows count too when none has an address. */
  pastValues: string[];
  /** Some From: text past the index was beyond the budget and not parsed. */
  unparsed: boolean;
}

const cache = new WeakMap<Buffer, AuthorFields>();

/**
 * mailward indexes the first 1 MB of the header block; mailauth (DKIM, DMARC) and mail readers
 * read it all. A From: placed after 1 MB of padding is an author all the same: its domain must be
 * judged by DMARC, and "no From: header" must not be said of a message that has one there.
 */
export function authorFields(ctx: MessageContext): AuthorFields {
  const raw = ctx.raw;
  const cached = raw && cache.get(raw);
  if (cached) return cached;
  const indexed = headerValues(ctx, 'from').length;
  const pastFields = raw ? fieldsPastIndex(raw, ['from']) : [];
  const past = pastFields.map((f) => f.value);
  // fieldsPastIndex reads from the start of the field the cut falls in: when that is a From: the
  // index holds cut short, it is the same field again (its whole value), not another author. Known
  // by its position (cutShort), not by its text: a second From: past the cut whose value starts
  // with the last indexed one's is another field, and the indexed author must not vanish.
  const repeated = !!pastFields[0]?.cutShort && lastIndexedFrom(ctx) !== undefined;
  let left = PAST_FROM_BUDGET;
  let unparsed = false;
  const pastValues: string[] = [];
  for (const value of past) {
    if (value.length <= left) {
      pastValues.push(value);
      left -= value.length;
      continue;
    }
    // Cut at the last comma within the budget, so that no address is read cut short.
    const cut = value.lastIndexOf(',', left);
    if (cut > 0) pastValues.push(value.slice(0, cut));
    unparsed = true;
    break;
  }
  const indexedMailboxes = fromMailboxes(ctx);
  // The repeated field's cut-short value is left out: its whole value is the first past one.
  const kept = repeated ? indexedMailboxes.slice(0, indexedMailboxes.length - mailboxesOf([lastIndexedFrom(ctx)!]).length) : indexedMailboxes;
  const fields: AuthorFields = {
    fields: indexed + past.length - (repeated ? 1 : 0),
    mailboxes: [...kept, ...mailboxesOf(pastValues)],
    pastValues,
    unparsed,
  };
  if (raw) cache.set(raw, fields);
  return fields;
}

/** Addresses the From: text shows when no From: field, indexed or past the index, has one. */
export function shownAuthorAddresses(ctx: MessageContext, fields = authorFields(ctx), asWritten = false): string[] {
  return shownFromAddressesWith(ctx, fields.pastValues, asWritten);
}

function lastIndexedFrom(ctx: MessageContext): string | undefined {
  const last = ctx.headers[ctx.headers.length - 1];
  return last?.key === 'from' ? last.value : undefined;
}
