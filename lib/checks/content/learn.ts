import { createContext, type MessageContext } from '../../message';
import type { Label } from './bayes';
import type { Classifier } from './classifier';
import type { LearnOutcome, UnlearnOutcome } from './seen';
import { messageParts, type PartLimits, DEFAULT_LIMITS } from './parts';
import { tokenize } from './tokenize';

/** The classifier's tokens of a message (raw RFC 5322 bytes or a context). */
export async function messageTokens(message: Buffer | string | MessageContext, limits: PartLimits = DEFAULT_LIMITS): Promise<string[]> {
  const ctx = typeof message === 'string' || Buffer.isBuffer(message) ? createContext({ ip: '0.0.0.0', raw: message }) : message;
  return tokenize(await messageParts(ctx, limits));
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
): Promise<LearnOutcome> {
  return classifier.learnOnce(await messageTokens(message, limits), label);
}

/** Takes a learnt message back out of the class it was learnt as ('not learnt' when there is no record of it). */
export async function unlearnMessage(classifier: Classifier, message: Buffer | string | MessageContext, limits: PartLimits = DEFAULT_LIMITS): Promise<UnlearnOutcome> {
  return classifier.unlearnOnce(await messageTokens(message, limits));
}
