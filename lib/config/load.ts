import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { packageRoot } from '../util/package-root';
import { ALL_MODULES } from '../checks';
import type { CheckModule, ConfigTexts } from '../checks/types';
import { SymbolTable } from '../score/symbol-table';
import { ConfigError } from './errors';
import { mergeIni, parseIni, type RawIni } from './ini';
import { IniReader } from './reader';
import { parseSharedSettings, SHARED_FILE, type SharedSettings } from './shared';

/** The package's own config/ directory: the shipped defaults. */
export const SHIPPED_CONFIG_DIR = join(packageRoot(), 'config');

export interface LoadOptions {
  /** The operator's directory (CLI `--config DIR`); a file missing there falls back to the shipped one. */
  configDir?: string;
  /** Anchor for relative paths (data_dir); defaults to configDir's parent, else the working directory. */
  baseDir?: string;
  /**
   * File contents supplied by the host (Haraka's `config.get(name, 'data')`
   * lines); take precedence over configDir. null or undefined means "not
   * there". An empty one is an empty file: for an ini file the shipped
   * defaults, for a rules file no rules (not the shipped ones).
   */
  texts?: Record<string, string | string[] | null | undefined>;
}

export interface ModuleConfig<S = unknown> {
  module: CheckModule<S>;
  settings: S;
}

export interface MailwardConfig {
  shared: SharedSettings;
  symbols: SymbolTable;
  modules: ModuleConfig<any>[];
  /** Where the operator's files were read from, if a directory. */
  configDir?: string;
}

function readRaw(file: string, options: LoadOptions): RawIni {
  const shippedPath = join(SHIPPED_CONFIG_DIR, file);
  const shipped = existsSync(shippedPath) ? parseIni(readFileSync(shippedPath, 'utf8'), shippedPath) : { main: {} };
  const supplied = options.texts?.[file];
  if (supplied !== undefined && supplied !== null && supplied.length) return mergeIni(shipped, parseIni(supplied, file));
  if (options.configDir) {
    const path = join(options.configDir, file);
    if (existsSync(path)) {
      let text: string;
      try {
        text = readFileSync(path, 'utf8');
      } catch (err) {
        throw new ConfigError(path, 'main', null, `cannot read: ${(err as Error).message}`);
      }
      return mergeIni(shipped, parseIni(text, path));
    }
  }
  return shipped;
}

/** A non-ini file (e.g. mailward.rules), whole: supplied text, else configDir, else shipped; not merged. */
function readText(file: string, options: LoadOptions): { text: string; source: string } | null {
  const supplied = options.texts?.[file];
  // Present but empty is an operator's empty rules file: no rules, not the shipped ones.
  if (supplied !== undefined && supplied !== null) {
    return { text: Array.isArray(supplied) ? supplied.join('\n') : supplied, source: file };
  }
  for (const dir of [options.configDir, SHIPPED_CONFIG_DIR]) {
    if (!dir) continue;
    const path = join(dir, file);
    if (!existsSync(path)) continue;
    try {
      return { text: readFileSync(path, 'utf8'), source: path };
    } catch (err) {
      throw new ConfigError(path, 'main', null, `cannot read: ${(err as Error).message}`);
    }
  }
  return null;
}

/**
 * Reads mailward.ini and each module's mailward.<name>.ini into typed, checked
 * settings. One loader for Haraka, the CLI and the library; any invalid value
 * is a ConfigError naming file, section and key.
 */
export function loadConfig(options: LoadOptions = {}): MailwardConfig {
  // A mistyped --config path would otherwise run on the shipped defaults alone, silently.
  if (options.configDir && !(existsSync(options.configDir) && statSync(options.configDir).isDirectory())) {
    throw new ConfigError(options.configDir, 'main', null, 'no such configuration directory');
  }
  const baseDir = options.baseDir ?? (options.configDir ? dirname(resolve(options.configDir)) : process.cwd());
  const sharedReader = new IniReader(SHARED_FILE, readRaw(SHARED_FILE, options));
  const shared = parseSharedSettings(sharedReader, baseDir);

  const symbols = new SymbolTable();
  const modules: ModuleConfig[] = [];
  // Every module is configured even when a host runs only some of them: [scores]
  // may name any symbol, and one process shares one configuration.
  for (const module of ALL_MODULES) {
    for (const def of module.symbols) symbols.define(def);
    if (!module.file) {
      modules.push({ module, settings: module.parseSettings(new IniReader('(none)', {}), shared).settings });
      continue;
    }
    const reader = new IniReader(module.file, readRaw(module.file, options));
    const texts: ConfigTexts = { text: (file) => readText(file, options) };
    const parsed = module.parseSettings(reader, shared, texts);
    reader.finish();
    for (const def of parsed.symbols ?? []) symbols.define(def);
    modules.push({ module, settings: parsed.settings });
  }
  // Overrides can only be checked once every module (and config-defined symbol) is known.
  symbols.applyOverrides(Object.fromEntries(sharedReader.section('scores').entries()), SHARED_FILE);
  sharedReader.finish();
  return { shared, symbols, modules, configDir: options.configDir };
}

/** Names of every ini file a configuration reads (for Haraka's reload watching). */
export function configFiles(modules: CheckModule<any>[] = ALL_MODULES): string[] {
  return [SHARED_FILE, ...modules.flatMap((m) => [m.file, ...(m.extraFiles ?? [])]).filter((f): f is string => !!f)];
}
