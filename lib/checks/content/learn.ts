import { createContext, type MessageContext } from '../../message';
import type { Label } from './bayes';
import type { Classifier } from './classifier';
import { messageParts, type PartLimits, DEFAULT_LIMITS } from './parts';
import { tokenize } from './tokenize';

/** The classifier's tokens of a message (raw RFC 5322 bytes or a context). */
export async function messageTokens(message: Buffer | string | MessageContext, limits: PartLimits = DEFAULT_LIMITS): Promise<string[]> {
  const ctx = typeof message === 'string' || Buffer.isBuffer(message) ? createContext({ ip: '0.0.0.0', raw: message }) : message;
  return tokenize(await messageParts(ctx, limits));
}

/**
 * Feedback entry point (CLI `mailward learn`, quarantine release -> ham,
 * spamtrap -> spam): learns one message; saved with the next flush.
 */
export async function learnMessage(classifier: Classifier, message: Buffer | string | MessageContext, label: Label): Promise<number> {
  const tokens = await messageTokens(message);
  classifier.learn(tokens, label);
  return tokens.length;
}

export async function unlearnMessage(classifier: Classifier, message: Buffer | string | MessageContext, label: Label): Promise<number> {
  const tokens = await messageTokens(message);
  classifier.unlearn(tokens, label);
  return tokens.length;
}
