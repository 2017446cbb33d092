import { parseEntry, type ListKind, type ScopedEntry } from './lists';
import { addressKeys } from './match';

/**
 * Allow and block lists of thousands of entries, looked up instead of walked.
 * An entry naming one address, one domain, or a domain and its subdomains is
 * filed under its pattern's key (AddressPattern.key); globs and the rest are
 * filed under '' and tried one by one, as before. A look-up returns every
 * entry that can match, in list order (the first allow entry that holds, and
 * the first block entry, are named in the verdict); the caller still matches
 * each one, so a key can only narrow the walk, never add a match.
 */

/** Items filed under string keys, found again in their original order. */
export class KeyIndex<T> {
  private readonly positions = new Map<string, number[]>();

  constructor(
    private readonly items: readonly T[],
    keyOf: (item: T) => string,
  ) {
    items.forEach((item, i) => {
      const key = keyOf(item);
      const list = this.positions.get(key);
      if (list) list.push(i);
      else this.positions.set(key, [i]);
    });
  }

  /** The items filed under any of `keys`, each once, in their original order. */
  find(keys: Iterable<string>): T[] {
    const found = new Set<number>();
    for (const key of keys) for (const i of this.positions.get(key) ?? []) found.add(i);
    return [...found].sort((a, b) => a - b).map((i) => this.items[i]!);
  }
}

/** The keys to look up for these sender addresses: theirs, and '' (entries without a key). */
export function lookupKeys(addresses: string[]): string[] {
  return [...new Set(['', ...addresses.flatMap(addressKeys)])];
}

/**
 * The key of an entry as stored (SQLite column, state store index): '' when
 * it has none or does not parse, so it is read for every message and the
 * mistake is logged there as before.
 */
export function entryKey(kind: ListKind, text: string): string {
  try {
    return parseEntry(kind, text).pattern.key;
  } catch {
    return '';
  }
}

/** The ini entries of one list, indexed once per configuration (a reload makes new lists). */
const staticIndexes = new WeakMap<ScopedEntry[], KeyIndex<ScopedEntry>>();

/** The ini entries of these scopes that can match one of the keys, in file order. */
export function staticCandidates(entries: ScopedEntry[], scopes: string[], keys: string[]): ScopedEntry[] {
  let index = staticIndexes.get(entries);
  if (!index) {
    index = new KeyIndex(entries, (e) => `${e.scope}\0${e.entry.pattern.key}`);
    staticIndexes.set(entries, index);
  }
  return index.find(scopes.flatMap((scope) => keys.map((key) => `${scope}\0${key}`)));
}
