import type { LoadOptions, MailwardConfig } from './config/load';
import { createContext, setMessage, type ContextInit, type MessageContext } from './message';
import { Runtime, type RuntimeOptions } from './runtime';
import type { Verdict } from './score/types';
import { recordRecipients, rowFromVerdict } from './tracking/row';
import type { TrackingRow } from './tracking/types';

export { ConfigError } from './config/errors';
export { loadConfig, type LoadOptions, type MailwardConfig } from './config/load';
export { createContext, setMessage, rawBody, domainOf, headerValues, firstHeader, parsedMessage, withHeaderChanges, type MessageContext, type ContextInit, type HeaderChanges } from './message';
export { Ledger } from './score/ledger';
export { SymbolTable } from './score/symbol-table';
export { decide, smtpReplyText, formatSymbols, actionForScore } from './score/verdict';
export type { Action, Verdict, ScoredSymbol, SymbolDef, Hit, ForcedAction } from './score/types';
export type { TrackingRow } from './tracking/types';
export { Runtime } from './runtime';

export interface ScanResult {
  verdict: Verdict;
  /** The tracking row for this message (written too when tracking is on). */
  row: TrackingRow;
  /** Recipients refused at RCPT (e.g. spamtraps), with the reason: the first 1,000 (KEPT_RECIPIENTS). */
  refusedRecipients: Record<string, string>;
  /** How many recipients were refused in all, those named in refusedRecipients and the rest. */
  refusedCount: number;
  context: MessageContext;
}

export interface Mailward {
  /** Runs every check, phase by phase, in the same order as the Haraka plugins, and decides. */
  scan(input: ContextInit | MessageContext): Promise<ScanResult>;
  readonly runtime: Runtime;
  close(): Promise<void>;
}

export interface MailwardOptions extends LoadOptions, RuntimeOptions {
  /** A configuration already loaded (the load options are then not read again). */
  config?: MailwardConfig;
  /** Only these modules' checks run (default: all). */
  modules?: string[];
  /** Receives each scan's tracking row (e.g. a TrackingWriter's write). */
  onRow?: (row: TrackingRow) => void;
  /**
   * false: modules do not learn from the verdicts (reputation, classifier
   * autolearn, outbound counts). For tools that only explain (`mailward
   * scan`), with `state` set to an OverlayStore so that counters stay untouched too.
   */
  learn?: boolean;
}

/** The library's front door, for any Node MTA: `const mw = createMailward({ configDir }); await mw.scan({...})`. */
export function createMailward(options: MailwardOptions = {}): Mailward {
  const runtime = options.config ? new Runtime(options.config, options) : Runtime.load(options);
  const modules = options.modules ?? runtime.moduleNames();
  return {
    runtime,
    async scan(input) {
      const ctx = 'headers' in input && 'notes' in input ? (input as MessageContext) : createContext(input as ContextInit);
      if (!ctx.raw && (input as ContextInit).raw !== undefined) setMessage(ctx, (input as ContextInit).raw!);
      const ledger = runtime.newLedger();
      await runtime.runPhase(modules, 'connect', ctx, ledger);
      await runtime.runPhase(modules, 'helo', ctx, ledger);
      await runtime.runPhase(modules, 'mail', ctx, ledger);
      const recipients = [...ctx.rcptTo];
      ctx.rcptTo = [];
      const accepted: string[] = [];
      for (const recipient of recipients) {
        ctx.rcptTo.push(recipient);
        await runtime.runPhase(modules, 'rcpt', ctx, ledger, { recipient });
        // Asked while it is the latest: the ledger names only the first refusals of a transaction.
        if (ledger.refusal(recipient) === undefined) accepted.push(recipient);
      }
      ctx.rcptTo = accepted.length ? accepted : ctx.rcptTo;
      await runtime.runPhase(modules, 'data', ctx, ledger);
      const verdict = runtime.decide(ctx, ledger);
      if (options.learn !== false) await runtime.afterVerdict(ctx, verdict);
      // The row says what an MTA's client was told: the accepted recipients, and the refused ones in the reason.
      const refused = [...ledger.refusedRecipients].map(([address, reason]) => ({ address, reason }));
      const row = recordRecipients(rowFromVerdict(ctx, verdict, runtime.config.shared.nodeName), { accepted, refused, attemptedCount: recipients.length });
      options.onRow?.(row);
      return { verdict, row, refusedRecipients: Object.fromEntries(ledger.refusedRecipients), refusedCount: ledger.refusedCount, context: ctx };
    },
    close: () => runtime.close(),
  };
}
