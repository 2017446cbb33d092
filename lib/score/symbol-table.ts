import { ConfigError } from '../config/errors';
import type { SymbolDef } from './types';

const SYMBOL_NAME = /^[A-Z][A-Z0-9_]*$/;

/**
 * Every symbol that may fire, with its weight after `[scores]` overrides.
 * Built once per configuration; unknown names are errors, never silent zeros.
 */
export class SymbolTable {
  private readonly defs = new Map<string, SymbolDef>();

  constructor(defs: Iterable<SymbolDef> = []) {
    for (const def of defs) this.define(def);
  }

  /** Adds a symbol. Config-defined symbols (e.g. DNSBL return codes) come through here too. */
  define(def: SymbolDef): void {
    if (!SYMBOL_NAME.test(def.name)) throw new Error(`symbol name ${JSON.stringify(def.name)} is not UPPER_SNAKE`);
    const existing = this.defs.get(def.name);
    if (existing && (existing.group !== def.group)) {
      throw new Error(`symbol ${def.name} is defined twice (groups ${existing.group} and ${def.group})`);
    }
    this.defs.set(def.name, { ...def });
  }

  has(name: string): boolean {
    return this.defs.has(name);
  }

  get(name: string): SymbolDef {
    const def = this.defs.get(name);
    if (!def) throw new Error(`unknown symbol ${name}: every symbol must be registered before it is used`);
    return def;
  }

  all(): SymbolDef[] {
    return [...this.defs.values()].sort((a, b) => a.group.localeCompare(b.group) || a.name.localeCompare(b.name));
  }

  /** Applies `[scores] NAME = n` from an ini file; an unknown NAME names file, section and key. */
  applyOverrides(scores: Record<string, unknown>, file: string): void {
    for (const [name, raw] of Object.entries(scores)) {
      const def = this.defs.get(name);
      if (!def) throw new ConfigError(file, 'scores', name, 'no such symbol (see docs/symbols.md)');
      const value = Number(raw);
      if (raw === '' || raw === null || !Number.isFinite(value)) {
        throw new ConfigError(file, 'scores', name, `expected a number, got ${JSON.stringify(raw)}`);
      }
      def.score = value;
    }
  }
}
