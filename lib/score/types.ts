/** The five things a verdict can do with a message, from mildest to harshest. */
export const ACTIONS = ['accept', 'add_header', 'quarantine', 'soft_reject', 'reject'] as const;
export type Action = (typeof ACTIONS)[number];

export function isAction(value: string): value is Action {
  return (ACTIONS as readonly string[]).includes(value);
}

/** Severity order, so "the milder of two actions" is a comparison. */
export function severity(action: Action): number {
  return ACTIONS.indexOf(action);
}

/** A symbol as defined once in a registry: its default weight and what it means. */
export interface SymbolDef {
  name: string;
  /** Default weight; positive pushes toward spam, negative toward ham. */
  score: number;
  group: string;
  description: string;
}

/** A symbol as it fired on one message. */
export interface ScoredSymbol {
  name: string;
  score: number;
  group: string;
  detail: string;
}

/** What a check reports: the ledger resolves the weight from the symbol table. */
export interface Hit {
  name: string;
  detail?: string;
  /** Multiplies the configured weight (e.g. a classifier's confidence, 0..1). */
  factor?: number;
}

/** An action imposed by a rule rather than by thresholds (allow/block lists, filter rules). */
export interface ForcedAction {
  action: Action;
  /** Who forced it, e.g. "rule webform" or "allow list (example.com)". */
  source: string;
  reason: string;
}

export interface Verdict {
  action: Action;
  score: number;
  symbols: ScoredSymbol[];
  /** Short reference id shown in the SMTP reply, the headers and the tracking row. */
  ref: string;
  /** One sentence an operator (or the sender) can read. */
  reason: string;
  /** Score per symbol group, for the tracking row. */
  groups: Record<string, number>;
  forced?: ForcedAction;
}
