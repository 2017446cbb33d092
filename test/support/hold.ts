import type { StateStore } from '../../lib/state/types';

export interface Held {
  store: StateStore;
  /** Resolves once the held operation is reached. */
  reached: Promise<void>;
  release: () => void;
}

/**
 * The store, with the first call of one operation held until released,
 * `after` it ran (a read whose answer is then acted on late) or `before` it
 * runs (a write made late): another node's steps go in between, as they can
 * when a node stalls (GC, a busy event loop, a slow network).
 */
export function holdAt(store: StateStore, op: keyof StateStore, when: 'before' | 'after'): Held {
  let release!: () => void;
  let reach!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const reached = new Promise<void>((r) => (reach = r));
  let held = false;
  const wrapped = new Proxy(store, {
    get(target, name, receiver) {
      const value = Reflect.get(target, name, receiver);
      if (typeof value !== 'function') return value;
      if (name !== op) return value.bind(target);
      return async (...args: unknown[]) => {
        if (held) return value.apply(target, args);
        held = true;
        const result = when === 'after' ? await value.apply(target, args) : undefined;
        reach();
        await released;
        return when === 'after' ? result : value.apply(target, args);
      };
    },
  });
  return { store: wrapped, reached, release };
}
