import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
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
  /**
   * Reads a file named in the configuration that `texts` does not hold (an
   * operator's own `rules_file`), from the host's config directory: null when
   * it is not there. Haraka's plugins pass one; without it, configDir is read.
   */
  readFile?: (file: string) => string | string[] | null;
  /** Where the shipped defaults are (default SHIPPED_CONFIG_DIR, the package's config/); for tests. */
  shippedDir?: string;
  /** The shipped defaults already read (readShippedDefaults), for several loads of one command; shippedDir is then not read. */
  shipped?: ShippedDefaults;
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
  /**
   * Problems found while loading that do not stop mail (a shipped defaults
   * file or directory missing): the Runtime logs them, the CLI prints them.
   */
  warnings?: string[];
}

/**
 * The files the package ships in config/: every mailward.* file the loader
 * reads (not host_list, which is the MTA's own).
 */
export function shippedFiles(): string[] {
  return configFiles().filter((f) => f.startsWith('mailward.'));
}

/** The shipped defaults, read once per load (or once per CLI command); what is missing or unreadable is a warning, not an error. */
export interface ShippedDefaults {
  texts: Map<string, { text: string; path: string }>;
  /** What is wrong with them (missing or unreadable directory or files); empty when all is there. */
  warnings: string[];
}

export function readShippedDefaults(dir: string = SHIPPED_CONFIG_DIR): ShippedDefaults {
  const texts: ShippedDefaults['texts'] = new Map();
  const warnings: string[] = [];
  const files = shippedFiles();
  let present: Set<string>;
  try {
    present = new Set(readdirSync(dir));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const rules = files.filter((f) => !f.endsWith('.ini')).join(', ');
    warnings.push(
      `the shipped defaults directory ${dir} ${e.code === 'ENOENT' ? 'is missing' : `cannot be read (${e.message})`} ` +
        `(a broken install, or a bundler that left out the package's config/?): every key your configuration does not set takes its built-in default, ` +
        `and the shipped rules (${rules}) are not loaded; reinstall mailward`,
    );
    return { texts, warnings };
  }
  for (const file of files) {
    const path = join(dir, file);
    const fallback = file.endsWith('.ini')
      ? 'the keys it sets take their built-in defaults unless your configuration sets them'
      : `its rules are not loaded unless your configuration has its own ${file}`;
    if (!present.has(file)) {
      warnings.push(`the shipped defaults file ${path} is missing (a broken install?): ${fallback}; reinstall mailward`);
      continue;
    }
    try {
      texts.set(file, { text: readFileSync(path, 'utf8'), path });
    } catch (err) {
      warnings.push(`the shipped defaults file ${path} cannot be read (${(err as Error).message}): ${fallback}; reinstall mailward`);
    }
  }
  return { texts, warnings };
}

function readRaw(file: string, options: LoadOptions, defaults: ShippedDefaults): RawIni {
  const found = defaults.texts.get(file);
  const shipped = found ? parseIni(found.text, found.path) : { main: {} };
  const supplied = options.texts && Object.hasOwn(options.texts, file) ? options.texts[file] : undefined;
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
function readText(file: string, options: LoadOptions, defaults: ShippedDefaults): { text: string; source: string } | null {
  // Own keys only: a plain object's `constructor` or `toString` is no file (rules_file = constructor).
  const held = options.texts !== undefined && Object.hasOwn(options.texts, file);
  const supplied = held ? options.texts![file] : options.readFile?.(file);
  // Present but empty is an operator's empty rules file: no rules, not the shipped ones.
  if (supplied !== undefined && supplied !== null) {
    return { text: Array.isArray(supplied) ? supplied.join('\n') : supplied, source: file };
  }
  if (options.configDir) {
    const path = join(options.configDir, file);
    if (existsSync(path)) {
      try {
        return { text: readFileSync(path, 'utf8'), source: path };
      } catch (err) {
        throw new ConfigError(path, 'main', null, `cannot read: ${(err as Error).message}`);
      }
    }
  }
  const shipped = defaults.texts.get(file);
  return shipped ? { text: shipped.text, source: shipped.path } : null;
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
  // Without them mail still flows, on built-in defaults and without the shipped rules: said loudly, not silently.
  const defaults = options.shipped ?? readShippedDefaults(options.shippedDir);
  const sharedReader = new IniReader(SHARED_FILE, readRaw(SHARED_FILE, options, defaults));
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
    const reader = new IniReader(module.file, readRaw(module.file, options, defaults));
    const texts: ConfigTexts = { text: (file) => readText(file, options, defaults), standardFiles: configFiles() };
    const parsed = module.parseSettings(reader, shared, texts);
    reader.finish();
    for (const def of parsed.symbols ?? []) symbols.define(def);
    modules.push({ module, settings: parsed.settings });
  }
  // Overrides can only be checked once every module (and config-defined symbol) is known.
  symbols.applyOverrides(Object.fromEntries(sharedReader.section('scores').entries()), SHARED_FILE);
  sharedReader.finish();
  return { shared, symbols, modules, configDir: options.configDir, warnings: defaults.warnings };
}

/** Names of every ini file a configuration reads (for Haraka's reload watching). */
export function configFiles(modules: CheckModule<any>[] = ALL_MODULES): string[] {
  return [SHARED_FILE, ...modules.flatMap((m) => [m.file, ...(m.extraFiles ?? [])]).filter((f): f is string => !!f)];
}
