import type { Logger } from '../checks/types';
import type { SharedSettings } from '../config/shared';
import { createStateStore, type StateStore } from '../state';
import { UserError } from './types';

export interface SharedStateHandle {
  store: StateStore;
  /** The first warning or error of the store (e.g. Redis unreachable), if any. */
  problem: () => string | undefined;
}

/**
 * The Redis state the MTAs share, opened by a command. In-process state lives
 * inside each running MTA, out of a command's reach: that is an error naming
 * `what` (e.g. "throttle blocks"), never an empty listing.
 */
export function openSharedState(shared: SharedSettings, configDir: string | undefined, what: string): SharedStateHandle {
  const state = shared.state;
  if (state.backend !== 'redis') {
    throw new UserError(
      `[state] backend = memory (in ${configDir ?? 'the shipped defaults: give --config DIR'}) keeps ${what} inside each running MTA, out of this command's reach; use backend = redis to share and manage them`,
      1,
    );
  }
  let problem: string | undefined;
  // The store's own log line goes on to say it falls back to in-process state: a command does not.
  const note = (m: string) => (problem ??= m.replace(/; using in-process state until it returns$/, ''));
  const log: Logger = { debug() {}, info() {}, warn: note, error: note };
  // A command may wait longer for Redis than mail does.
  const store = createStateStore({ ...state, timeoutMs: Math.max(state.timeoutMs, 3000) }, log);
  return { store, problem: () => problem };
}
