import type { IniReader } from '../config/reader';
import type { SharedSettings } from '../config/shared';
import type { DnsResolver } from '../dns/resolver';
import type { MessageContext } from '../message';
import type { Ledger } from '../score/ledger';
import type { Hit, SymbolDef, Verdict } from '../score/types';
import type { StateStore } from '../state/types';

/** Text of a module's extra config file, or null when there is none anywhere (not even shipped). */
export interface ConfigTexts {
  text(file: string): { text: string; source: string } | null;
  /** The files the loader reads by their own names (mailward.ini, each mailward.<module>.ini, their rules files, host_list): a file the configuration names must not be one of them. */
  standardFiles?: readonly string[];
}

/** SMTP phases, in the order a transaction goes through them. */
export const PHASES = ['connect', 'helo', 'mail', 'rcpt', 'data'] as const;
export type Phase = (typeof PHASES)[number];

export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** What checks may use beyond the message: one set per process, shared by all plugins. */
export interface Services {
  shared: SharedSettings;
  dns: DnsResolver;
  state: StateStore;
  /** Milliseconds since the epoch; injectable so tests can move time. */
  clock: () => number;
  log: Logger;
}

export interface CheckInput {
  /** At the rcpt phase: the recipient being added (also the last of ctx.rcptTo). */
  recipient?: string;
}

/** One check: reads the context (and the ledger so far), reports hits. */
export interface Check {
  /** e.g. "reputation.dnsbl"; used in logs and to skip checks from rules. */
  name: string;
  phase: Phase;
  run(ctx: MessageContext, ledger: Ledger, input: CheckInput): Promise<Hit[] | void>;
}

/**
 * One concern (reputation, auth, ...): its symbols, its ini file, its checks.
 * The Haraka plugin of the same name and `createMailward().scan()` both run
 * the checks a module creates.
 */
export interface CheckModule<S = unknown> {
  name: string;
  /** Its own ini file (`mailward.<name>.ini`), or null when it only uses mailward.ini. */
  file: string | null;
  symbols: SymbolDef[];
  /**
   * Other config files it reads that are not ini (e.g. `mailward.rules`): read
   * through the same loader (Haraka's config, --config DIR, shipped default)
   * and watched for reloads like the ini files.
   */
  extraFiles?: string[];
  /** Reads its ini file; may define extra symbols from config (e.g. DNSBL codes). */
  parseSettings(reader: IniReader, shared: SharedSettings, files?: ConfigTexts): { settings: S; symbols?: SymbolDef[] };
  createChecks(settings: S, services: Services): Check[];
  /**
   * Called once a message has its verdict (learning: reputation, autolearn).
   * Runs off the reply path; errors are logged, never raised.
   */
  afterVerdict?(settings: S, services: Services, ctx: MessageContext, verdict: Verdict): Promise<void>;
  /** Releases what createChecks opened (timers, connections). */
  close?(settings: S): Promise<void>;
}
