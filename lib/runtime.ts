import type { Check, CheckInput, Logger, Phase, Services } from './checks/types';
import { loadConfig, type LoadOptions, type MailwardConfig } from './config/load';
import { DnsResolver } from './dns/resolver';
import type { MessageContext } from './message';
import { Ledger } from './score/ledger';
import type { Verdict } from './score/types';
import { decide } from './score/verdict';
import { createStateStore } from './state';
import type { StateStore } from './state/types';

/** How long a host waits for learning from a verdict (see Runtime.afterVerdict). */
export const AFTER_VERDICT_WAIT_MS = 2000;

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

export interface RuntimeOptions {
  log?: Logger;
  clock?: () => number;
  /**
   * A state store to use instead of opening one: a reload with unchanged
   * [state] settings keeps the in-process store, and with it the counters,
   * reputation, throttle blocks and suspensions learnt so far.
   */
  state?: StateStore;
  /** With `state`: this runtime takes it over (a reload's successor), and closes it when it closes. */
  adoptState?: boolean;
}

/**
 * One configuration with its services (DNS, state) and every module's checks:
 * shared by all mailward plugins of a Haraka process, or owned by one
 * `createMailward()` instance.
 */
export class Runtime {
  readonly services: Services;
  private readonly checks = new Map<string, Check[]>();
  /** False once the state store was handed to a successor (handOverState): close() leaves it open. */
  private ownsState: boolean;

  constructor(
    readonly config: MailwardConfig,
    options: RuntimeOptions = {},
  ) {
    const log = options.log ?? silentLogger;
    this.services = {
      shared: config.shared,
      dns: new DnsResolver(config.shared.dns),
      state: options.state ?? createStateStore(config.shared.state, log),
      clock: options.clock ?? Date.now,
      log,
    };
    this.ownsState = !options.state || !!options.adoptState;
    // E.g. the shipped defaults missing: mail flows on built-in defaults, and the operator hears of it at each load.
    for (const warning of config.warnings ?? []) log.warn(`mailward: ${warning}`);
    for (const { module, settings } of config.modules) this.checks.set(module.name, module.createChecks(settings, this.services));
  }

  /** Gives this runtime's state store to the runtime that replaces it; this one no longer closes it. */
  handOverState(): StateStore {
    this.ownsState = false;
    return this.services.state;
  }

  static load(options: LoadOptions & RuntimeOptions = {}): Runtime {
    return new Runtime(loadConfig(options), options);
  }

  /** Phases in which a module has checks (which hooks its plugin needs). */
  phasesOf(moduleName: string): Phase[] {
    return [...new Set((this.checks.get(moduleName) ?? []).map((c) => c.phase))];
  }

  moduleNames(): string[] {
    return [...this.checks.keys()];
  }

  newLedger(): Ledger {
    return new Ledger(this.config.symbols);
  }

  /**
   * Runs the checks of the named modules for one phase: modules one after the
   * other (later ones read earlier results), a module's checks concurrently.
   * A check that throws adds CHECK_ERROR (score 0) and is logged; it never
   * stops the others or the mail.
   */
  async runPhase(modules: string[], phase: Phase, ctx: MessageContext, ledger: Ledger, input: CheckInput = {}): Promise<void> {
    const skip = skippedChecks(ctx);
    for (const name of modules) {
      const checks = (this.checks.get(name) ?? []).filter((c) => c.phase === phase && !skip.has(c.name) && !skip.has(name));
      if (!checks.length) continue;
      await Promise.all(
        checks.map(async (check) => {
          try {
            const hits = await check.run(ctx, ledger, input);
            if (hits) ledger.addAll(hits);
          } catch (err) {
            const message = err instanceof Error ? err.message : String(err);
            this.services.log.error(`mailward check ${check.name} failed: ${message}`);
            ledger.add({ name: 'CHECK_ERROR', detail: `${check.name}: ${message}` });
          }
        }),
      );
    }
  }

  decide(ctx: MessageContext, ledger: Ledger): Verdict {
    return decide(ledger, this.config.shared.policy, ctx.rcptTo, ctx.ref);
  }

  /**
   * Lets modules learn from a decision (reputation, classifier autolearn);
   * never throws, and returns within AFTER_VERDICT_WAIT_MS: learning that
   * waits on a hung store goes on in the background instead of holding up the
   * host's reply (the library's scan() awaits this).
   */
  async afterVerdict(ctx: MessageContext, verdict: Verdict): Promise<void> {
    const learning = (async () => {
      for (const { module, settings } of this.config.modules) {
        if (!module.afterVerdict) continue;
        try {
          await module.afterVerdict(settings, this.services, ctx, verdict);
        } catch (err) {
          this.services.log.error(`mailward ${module.name} afterVerdict failed: ${(err as Error).message}`);
        }
      }
    })();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), AFTER_VERDICT_WAIT_MS);
      timer.unref();
    });
    if ((await Promise.race([learning, late])) === 'late') {
      this.services.log.warn(`mailward: learning from verdict ${verdict.ref} still waits on a store after ${AFTER_VERDICT_WAIT_MS} ms; not waiting for it`);
    }
    clearTimeout(timer);
  }

  async close(): Promise<void> {
    for (const { module, settings } of this.config.modules) await module.close?.(settings);
    if (this.ownsState) await this.services.state.close();
  }
}

/** Checks (or whole modules) a filter rule asked to skip for this message. */
export function skippedChecks(ctx: MessageContext): Set<string> {
  const skip = ctx.notes.skipChecks;
  return skip instanceof Set ? (skip as Set<string>) : new Set();
}
