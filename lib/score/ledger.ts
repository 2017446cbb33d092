import type { SymbolTable } from './symbol-table';
import type { ForcedAction, Hit, ScoredSymbol } from './types';
import { severity } from './types';

/** Characters of joined details a repeated symbol shows (a tracking row keeps 2,000 of a detail). */
const MAX_JOINED_DETAIL = 4000;

/**
 * Recipients of one transaction kept by name: refused ones in the ledger, a
 * tracking row's rcpt_to, the tracking plugin's note. Haraka sets no limit on
 * RCPT TO; past this many, recipients are only counted.
 */
export const KEPT_RECIPIENTS = 1000;

/**
 * The per-message account of everything that fired. Checks add hits; only the
 * verdict reads the total. A symbol fires once: a repeat keeps the stronger score
 * and joins the details, so a message cannot be punished twice for one finding.
 */
export class Ledger {
  private readonly entries = new Map<string, ScoredSymbol>();
  private forcedAction?: ForcedAction;
  private readonly caps = new Map<string, number>();
  /** The first KEPT_RECIPIENTS recipients refused at RCPT time, with the reason (e.g. a spamtrap). */
  private readonly refused = new Map<string, string>();
  /** Refusals past those named: counted, not kept (100,000 refused RCPT TO grew this map without bound). */
  private refusedUnnamed = 0;
  /** The latest refusal, named or not: the RCPT being answered is always told its reason. */
  private lastRefused?: { address: string; reason: string };
  /** Per symbol repeated: the details shown (at most MAX_JOINED_DETAIL), and how many more were left out. */
  private readonly joined = new Map<string, { shown: string; omitted: Set<string> }>();

  constructor(readonly table: SymbolTable) {}

  add(hit: Hit | string): ScoredSymbol {
    const { name, factor = 1 } = typeof hit === 'string' ? { name: hit } : hit;
    let detail = typeof hit === 'string' ? '' : (hit.detail ?? '');
    const def = this.table.get(name);
    const weighted = round(def.score * factor);
    // One NaN would make the total NaN, which is below every threshold: everything accepted.
    const score = Number.isFinite(weighted) ? weighted : 0;
    if (score !== weighted) detail = `${detail ? `${detail} ` : ''}(weight ${def.score} × factor ${factor} is not a finite number: counted as 0)`;
    const existing = this.entries.get(name);
    if (existing) {
      if (Math.abs(score) > Math.abs(existing.score)) existing.score = score;
      if (detail) this.join(existing, detail);
      return existing;
    }
    const symbol: ScoredSymbol = { name, score, group: def.group, detail };
    this.entries.set(name, symbol);
    return symbol;
  }

  /**
   * Joins a repeated symbol's detail to what it says, up to MAX_JOINED_DETAIL
   * characters, then only counts them: each join searched and copied the
   * detail so far, quadratic in a check that adds one hit per address of a
   * 20,000-address header (seconds to minutes of event loop).
   */
  private join(symbol: ScoredSymbol, detail: string): void {
    let joined = this.joined.get(symbol.name);
    if (!joined) this.joined.set(symbol.name, (joined = { shown: symbol.detail, omitted: new Set() }));
    if (joined.shown.includes(detail)) return;
    // A left-out detail is counted once, as a shown one is shown once (a Set: linear, not a search of the text).
    if (joined.shown && joined.shown.length + detail.length > MAX_JOINED_DETAIL) joined.omitted.add(detail);
    else joined.shown = joined.shown ? `${joined.shown}; ${detail}` : detail;
    symbol.detail = joined.omitted.size ? `${joined.shown}; and ${joined.omitted.size} more` : joined.shown;
  }

  addAll(hits: Iterable<Hit>): void {
    for (const hit of hits) this.add(hit);
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  get(name: string): ScoredSymbol | undefined {
    return this.entries.get(name);
  }

  remove(name: string): void {
    this.entries.delete(name);
    this.joined.delete(name);
  }

  /** Symbols by descending absolute score, the order an explanation reads best in. */
  get symbols(): ScoredSymbol[] {
    return [...this.entries.values()].sort((a, b) => Math.abs(b.score) - Math.abs(a.score) || a.name.localeCompare(b.name));
  }

  get total(): number {
    let sum = 0;
    for (const s of this.entries.values()) sum += s.score;
    return round(sum);
  }

  get groups(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const s of this.entries.values()) out[s.group] = round((out[s.group] ?? 0) + s.score);
    return out;
  }

  /**
   * Imposes an action from a rule. The first deciding rule wins, except that a
   * harsher forced action (a block) is never softened by a later allow.
   */
  force(forced: ForcedAction): void {
    if (!this.forcedAction || severity(forced.action) > severity(this.forcedAction.action)) {
      this.forcedAction = { ...forced };
    }
  }

  /**
   * Marks a group that must never refuse mail alone (content): the verdict
   * counts at most `max` of its score, and for each recipient domain less than
   * that domain's refusing thresholds. Per domain, because one strict
   * recipient must not lower the score for the others.
   */
  capGroup(group: string, max: number): void {
    this.caps.set(group, max);
  }

  get groupCaps(): ReadonlyMap<string, number> {
    return this.caps;
  }

  get forced(): ForcedAction | undefined {
    return this.forcedAction;
  }

  /**
   * Refuses a recipient at RCPT. Past KEPT_RECIPIENTS names a refusal is only
   * counted: once per RCPT TO (two checks refusing the one being answered
   * count once), since the names that would tell a repeat are not kept.
   */
  refuseRecipient(recipient: string, reason: string): void {
    const address = recipient.toLowerCase();
    if (this.refused.has(address) || this.refused.size < KEPT_RECIPIENTS) this.refused.set(address, reason);
    else if (this.lastRefused?.address !== address) this.refusedUnnamed += 1;
    this.lastRefused = { address, reason };
  }

  /**
   * Why a recipient was refused, or undefined. Always known for the recipient
   * refused last (the RCPT being answered); of the earlier ones, only for the
   * first KEPT_RECIPIENTS.
   */
  refusal(recipient: string): string | undefined {
    const address = recipient.toLowerCase();
    return this.refused.get(address) ?? (this.lastRefused?.address === address ? this.lastRefused.reason : undefined);
  }

  /** The first KEPT_RECIPIENTS refused recipients, with the reason; refusedCount says how many in all. */
  get refusedRecipients(): ReadonlyMap<string, string> {
    return this.refused;
  }

  /** Every refusal: those named in refusedRecipients and those only counted. */
  get refusedCount(): number {
    return this.refused.size + this.refusedUnnamed;
  }
}

export function round(n: number): number {
  return Math.round(n * 100) / 100;
}
