import { fieldsPastIndex, withinPastBudget, fromMailboxes, headerValues, mailboxesOf, shownFromAddressesWith, type Mailbox, type MessageContext } from '../../message';


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
  // fieldsPastIndex reads from the start of the field the cut falls in: when that is a From: the
  // index holds cut short, it is the same field again (its whole value), not another author. Known
  // by its position (cutShort), not by its text: a second From: past the cut whose value starts
  // with the last indexed one's is another field, and the indexed author must not vanish.
  const repeated = !!pastFields[0]?.cutShort && lastIndexedFrom(ctx) !== undefined;
  // Within the budget antispoof parses too (a forger sets the text's length; 10 domains are judged).
  const budget = withinPastBudget(pastFields);
  const pastValues = budget.read.map((f) => f.value);
  const unparsed = budget.unread.length > 0;
  const indexedMailboxes = fromMailboxes(ctx);
  // The repeated field's cut-short value is left out: its whole value is the first past one.
  const kept = repeated ? indexedMailboxes.slice(0, indexedMailboxes.length - mailboxesOf([lastIndexedFrom(ctx)!]).length) : indexedMailboxes;
  const fields: AuthorFields = {
    fields: indexed + pastFields.length - (repeated ? 1 : 0),
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
