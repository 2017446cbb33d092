import { createHash } from 'node:crypto';

/**
 * "Seen" records make learning idempotent, as SpamAssassin's bayes_seen does:
 * the store remembers, per learnt message, the class it was learnt as, and
 * changes it together with the counts in one transaction (SQLite) or one Lua
 * script (Redis), so two processes or nodes learning the same message at once
 * count it once.
 *
 * The id is the SHA-256 of the message's sorted unique classifier tokens
 * (first 128 bits, hex), not of Message-ID + a body hash, because:
 * - relearning and unlearning subtract exactly the tokens that were added: the
 *   same id means the same tokens, so counts cannot drift (a Message-ID + body
 *   hash id would unlearn whatever the tokenizer makes of the message today);
 * - the tokens leave out Received, Message-ID and the headers mailward or a
 *   relay adds, so the copy the SMTP scan learnt (autolearn, spamtraps), the
 *   quarantined copy released later and the copy an operator saved to an .eml
 *   file are one message;
 * - Message-ID is missing or random in much spam, and copies of one campaign
 *   with identical text are the same evidence: counting them once keeps one
 *   campaign from outweighing the rest of the model.
 * The cost: two different messages with identical tokens count once.
 * 128 bits: collisions are out of reach, and Redis keeps half the bytes.
 */
export function messageId(tokens: Iterable<string>): string {
  const unique = [...new Set(tokens)].sort();
  return createHash('sha256').update(unique.join('\0')).digest('hex').slice(0, 32);
}

/** What learning one message did: counted it, found it counted already, or moved it from the other class. */
export type LearnOutcome = 'learnt' | 'already learnt' | 'relearnt';
/** What unlearning one message did (only a message with a seen record is taken back). */
export type UnlearnOutcome = 'unlearnt' | 'not learnt';
