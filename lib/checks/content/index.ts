import type { MessageContext } from '../../message';
import { round, type Ledger } from '../../score/ledger';
import type { Hit, SymbolDef, Verdict } from '../../score/types';
import type { Check, CheckModule, Services } from '../types';
import type { Label } from './bayes';
import { bulkHits } from './bulk';
import { acquireClassifier, releaseClassifier, type Classifier } from './classifier';
import { builtinHeuristics, ruleHits } from './heuristics';
import { messageParts } from './parts';
import { parseContentSettings, RULES_FILE, type ContentSettings } from './settings';
import { registrableDomain } from './tokenize';
import { classifierTokens } from './learn';
import { authResults, fromDomainAuthenticated } from '../auth/results';
import type { BackscatterNote } from '../backscatter';

export type { ContentSettings } from './settings';
export { templateFingerprint, templateWords, type TemplateFingerprint } from './fingerprint';
export { compileSafeRegex, regexProblem, UnsafeRegexError } from './safe-regex';
export { learnMessage, unlearnMessage, messageTokens } from './learn';
export { messageId, type LearnOutcome, type UnlearnOutcome } from './seen';
export { Classifier, acquireClassifier, releaseClassifier, createBayesStore } from './classifier';

const g = 'content';
export const contentSymbols: SymbolDef[] = [
  { name: 'BAYES_SPAM', score: 6, group: g, description: 'Bayesian classifier: spam probability at or above spam_threshold (weight x 0.5..1 by probability)' },
  { name: 'BAYES_HAM', score: -3, group: g, description: 'Bayesian classifier: spam probability at or below ham_threshold (weight x 0.5..1 by probability)' },
  { name: 'BAYES_ERROR', score: 0, group: g, description: 'The Bayes model could not be loaded or saved; the classifier abstained' },
  { name: 'MIXED_SCRIPT_WORDS', score: 2.5, group: g, description: 'Words disguised with look-alike letters of another script (a Cyrillic а inside PayPal; Latin letters inside a Cyrillic word)' },
  { name: 'INVISIBLE_CHARACTERS', score: 2, group: g, description: 'Zero-width or invisible characters inside Latin, Cyrillic, Greek or Armenian words (splitting words past filters)' },
  { name: 'HTML_HIDDEN_TEXT', score: 1.5, group: g, description: 'A lot of text styled invisible in the HTML (display:none, zero size, white on white): 200 letters and a tenth of the visible text' },
  { name: 'HTML_LINK_MISMATCH', score: 2, group: g, description: "A link shows one domain as its text while it goes to another (a click tracker or opaque gateway is excepted only when the link shows the sender's own authenticated domain)" },
  { name: 'HTML_ONLY_LITTLE_TEXT', score: 1, group: g, description: 'HTML-only message with images and almost no visible text (image spam)' },
  { name: 'URI_PUBLIC_IP', score: 1, group: g, description: 'Link to a bare public IP address instead of a host name (private, loopback and link-local addresses do not count)' },
  { name: 'SUBJECT_ALL_CAPS', score: 1, group: g, description: 'Subject written mostly in capitals' },
  { name: 'SUBJECT_PUNCTUATION', score: 1, group: g, description: 'Subject full of !, ?, $ and similar' },
  { name: 'BULK', score: 0, group: g, description: 'Bulk: at least [bulk] threshold similar messages in the window. Not spam by itself' },
  { name: 'BULK_UNAUTHENTICATED', score: 3, group: g, description: 'Bulk mail without DMARC pass or aligned SPF/DKIM' },
  { name: 'BULK_BAD_REPUTATION', score: 3, group: g, description: 'Bulk mail from a source with a poor reputation score' },
  { name: 'BULK_NO_UNSUBSCRIBE', score: 1.5, group: g, description: 'Bulk marketing mail without a List-Unsubscribe header' },
  { name: 'BULK_ERROR', score: 0, group: g, description: 'Bulk fingerprints could not be counted (state store failure)' },
];

/** Per message, the tokens the classifier saw: autolearn reuses them. */
const tokensSeen = new WeakMap<MessageContext, string[]>();
const classifiers = new WeakMap<ContentSettings, Classifier>();

function bayesHits(settings: ContentSettings, classifier: Classifier, tokens: string[]): Hit[] {
  const b = settings.bayes;
  if (classifier.lastError && !classifier.loaded) return [{ name: 'BAYES_ERROR', detail: classifier.lastError }];
  const result = classifier.classify(tokens, b.minLearns);
  if (!result) return [];
  const p = result.probability;
  const learnt = `${classifier.model.nspam} spam/${classifier.model.nham} ham learnt`;
  const show = (e: { token: string; prob: number }[]) => e.map((x) => x.token).join(', ');
  if (p >= b.spamThreshold) {
    const factor = b.spamThreshold >= 1 ? 1 : 0.5 + (0.5 * (p - b.spamThreshold)) / (1 - b.spamThreshold);
    return [{ name: 'BAYES_SPAM', factor, detail: `p=${p.toFixed(4)} (${learnt}); spam words: ${show(result.spamTokens)}` }];
  }
  if (p <= b.hamThreshold) {
    const factor = b.hamThreshold <= 0 ? 1 : 0.5 + (0.5 * (b.hamThreshold - p)) / b.hamThreshold;
    return [{ name: 'BAYES_HAM', factor, detail: `p=${p.toFixed(4)} (${learnt}); ham words: ${show(result.hamTokens)}` }];
  }
  return [];
}

/** Scales positive hits down so content alone never scores above the cap. */
export function capHits(hits: Hit[], ledger: Ledger, cap: number): Hit[] {
  const weight = (h: Hit) => ledger.table.get(h.name).score * (h.factor ?? 1);
  // The ledger rounds each score to hundredths: compare what it will count.
  if (hits.reduce((sum, h) => sum + Math.max(0, round(weight(h))), 0) <= cap) return hits;
  const scale = cap / hits.reduce((sum, h) => sum + Math.max(0, weight(h)), 0);
  return hits.map((h) => {
    const w = weight(h);
    if (w <= 0) return h;
    // Rounded down (the epsilon only absorbs float error), so the rounded scores never add up to more than the cap.
    const score = Math.floor(w * scale * 100 + 1e-9) / 100;
    return { ...h, factor: score / ledger.table.get(h.name).score, detail: `${h.detail ?? ''} (content capped at ${cap})`.trim() };
  });
}

function createChecks(settings: ContentSettings, services: Services): Check[] {
  if (!settings.enabled) return [];
  for (const warning of settings.warnings) services.log.warn(`mailward content: ${warning}`);
  const classifier = settings.bayes.enabled ? acquireClassifier(settings.bayes, services.log) : undefined;
  if (classifier) classifiers.set(settings, classifier);
  const check: Check = {
    name: 'content.scan',
    phase: 'data',
    async run(ctx, ledger) {
      if (!ctx.raw || (settings.skipRelaying && ctx.relaying)) return [];
      const parts = await messageParts(ctx, settings.limits);
      const hits: Hit[] = [];
      if (classifier) {
        // Only right after start: give the background load a moment, never more.
        if (!classifier.loaded) await Promise.race([classifier.ready(), new Promise((r) => setTimeout(r, 250).unref())]);
        const tokens = classifierTokens(parts, settings.subjectTag);
        tokensSeen.set(ctx, tokens);
        hits.push(...bayesHits(settings, classifier, tokens));
      }
      if (settings.heuristics.enabled) {
        const auth = authResults(ctx);
        const authenticatedDomain = auth?.fromDomain && fromDomainAuthenticated(auth) ? registrableDomain(auth.fromDomain) : undefined;
        const links = { trackers: settings.heuristics.linkTrackers, ...(authenticatedDomain ? { authenticatedDomain } : {}) };
        hits.push(...builtinHeuristics(parts, settings.heuristics, links), ...ruleHits(parts, settings.heuristics));
      }
      if (settings.bulk.enabled) hits.push(...(await bulkHits(ctx, ledger, parts, services.state, services.clock(), settings.bulk)));
      // The cap that depends on the recipient's domain is the verdict's, per domain: a
      // cap per message would let one strict recipient lower the score for all.
      ledger.capGroup(g, settings.maxScore);
      return capHits(hits, ledger, settings.maxScore);
    },
  };
  return [check];
}

/** Autolearn (off by default) and learning from spamtrap-like symbols, after the verdict. */
async function afterVerdict(settings: ContentSettings, services: Services, ctx: MessageContext, verdict: Verdict): Promise<void> {
  const classifier = classifiers.get(settings);
  const tokens = tokensSeen.get(ctx);
  if (!classifier || !tokens) return;
  const label = autolearnLabel(settings, verdict, ctx);
  if (!label) return;
  try {
    // Idempotent (a seen record per message): a message delivered to several
    // recipients, or to several nodes, is learnt once.
    await classifier.learnOnce(tokens, label);
  } catch (err) {
    services.log.warn(`mailward content: autolearn as ${label} skipped: ${classifier.store.description}: ${(err as Error).message}`);
  }
}

function autolearnLabel(settings: ContentSettings, verdict: Verdict, ctx: MessageContext): Label | null {
  const b = settings.bayes;
  if (b.learnSpamSymbols.length && verdict.symbols.some((s) => b.learnSpamSymbols.includes(s.name))) return 'spam';
  if (!b.autolearn) return null;
  // Judge by everything except content itself, so the classifier does not teach itself its own mistakes.
  const others = verdict.score - (verdict.groups.content ?? 0);
  if (others >= b.autolearnSpamScore) return 'spam';
  // Never ham: a bounce or auto-reply carries text its sender chose (a forger's,
  // in a replayed "bounce"), and backscatter's credit (BOUNCE_VERIFIED) says who
  // a message is for, not that its words are good.
  if ((ctx.notes.backscatter as BackscatterNote | undefined)?.kind) return null;
  const credit = verdict.symbols.reduce((sum, s) => sum + (s.group === 'backscatter' ? Math.min(0, s.score) : 0), 0);
  if (others - credit <= b.autolearnHamScore) return 'ham';
  return null;
}

export const contentModule: CheckModule<ContentSettings> = {
  name: 'content',
  file: 'mailward.content.ini',
  extraFiles: [RULES_FILE],
  symbols: contentSymbols,
  parseSettings(reader, shared, files) {
    const settings = parseContentSettings(reader, shared, files);
    const symbols: SymbolDef[] = settings.heuristics.rules.map((r) => ({ name: r.name, score: r.score, group: g, description: r.description }));
    return { settings, symbols };
  },
  createChecks,
  afterVerdict,
  async close(settings) {
    const classifier = classifiers.get(settings);
    if (classifier) {
      classifiers.delete(settings);
      await releaseClassifier(settings.bayes, classifier);
    }
  },
};
