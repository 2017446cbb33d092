import { createContext, type MessageContext } from '../../message';
import type { Label } from './bayes';
import type { Classifier } from './classifier';
import type { LearnOutcome, UnlearnOutcome } from './seen';
import { messageParts, type MessageParts, type PartLimits, DEFAULT_LIMITS } from './parts';
import { tokenize } from './tokenize';

/**
 * The subject without the [headers] subject_tag mailward put in front of it
 * (once per pass through the verdict, so possibly more than once): the copy
 * an operator learns from the quarantine or a mailbox must give the same
 * tokens, hence the same seen record, as the copy scanned and autolearnt.
 */
export function untaggedSubject(subject: string, subjectTag: string): string {
  let s = subject;
  while (subjectTag && s.startsWith(subjectTag) && (s.length === subjectTag.length || /\s/.test(s[subjectTag.length]!))) s = s.slice(subjectTag.length).trimStart();
  return s;
}

/** The classifier's tokens of a message's parts: what is scored, learnt and identified as seen. */
export function classifierTokens(parts: MessageParts, subjectTag: string): string[] {
  return tokenize(subjectTag ? { ...parts, subject: untaggedSubject(parts.subject, subjectTag) } : parts);
}

/** The classifier's tokens of a message (raw RFC 5322 bytes or a context). */
export async function messageTokens(message: Buffer | string | MessageContext, limits: PartLimits = DEFAULT_LIMITS, subjectTag = ''): Promise<string[]> {
  const ctx = typeof message === 'string' || Buffer.isBuffer(message) ? createContext({ ip: '0.0.0.0', raw: message }) : message;
  return classifierTokens(await messageParts(ctx, limits), subjectTag);
}

/**
 * Feedback entry point (quarantine release -> ham, `mailward learn`, and what
 * autolearn and spamtrap symbols call underneath): learns one message once,
 * written to the store at once. Learning it again is 'already learnt';
 * learning it as the other class moves it ('relearnt').
 */
export async function learnMessage(
  classifier: Classifier,
  message: Buffer | string | MessageContext,
  label: Label,
  limits: PartLimits = DEFAULT_LIMITS,
  subjectTag = '',
): Promise<LearnOutcome> {
  return classifier.learnOnce(await messageTokens(message, limits, subjectTag), label);
}

/** Takes a learnt message back out of the class it was learnt as ('not learnt' when there is no record of it). */
export async function unlearnMessage(
  classifier: Classifier,
  message: Buffer | string | MessageContext,
  limits: PartLimits = DEFAULT_LIMITS,
  subjectTag = '',
): Promise<UnlearnOutcome> {
  return classifier.unlearnOnce(await messageTokens(message, limits, subjectTag));
}
