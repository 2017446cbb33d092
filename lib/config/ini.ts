import { ConfigError } from './errors';

/** An ini file as text values: section -> key -> value. Keys before any section go in `main`. */
export type RawIni = Record<string, Record<string, string>>;

/**
 * Parses the ini dialect of mailward's files: `[section]`, `key = value`,
 * comments starting with `;` or `#`. Section names are kept literally
 * (`[domain:example.com]` is one section; general-purpose ini parsers split it
 * at the dots), and every value stays a string for the typed readers.
 * Haraka reads the same files as lines through `config.get(name, 'data')`, so
 * Haraka and the CLI parse them with this one function.
 */
export function parseIni(text: string | string[], file: string): RawIni {
  const lines = Array.isArray(text) ? text : text.split(/\r?\n/);
  const out: RawIni = { main: {} };
  let section = 'main';
  lines.forEach((rawLine, index) => {
    const line = rawLine.trim();
    if (!line || line.startsWith(';') || line.startsWith('#')) return;
    const header = /^\[([^\]]+)\]$/.exec(line);
    if (header) {
      section = header[1]!.trim();
      out[section] ??= {};
      return;
    }
    const eq = line.indexOf('=');
    if (eq <= 0) throw new ConfigError(file, section, null, `line ${index + 1} is not "key = value": ${JSON.stringify(line)}`);
    const key = line.slice(0, eq).trim();
    let value = line.slice(eq + 1).trim();
    if (value.length >= 2 && /^(["']).*\1$/.test(value)) value = value.slice(1, -1);
    // The second of two would silently win: an edit below a forgotten line would never apply.
    if (Object.prototype.hasOwnProperty.call(out[section], key)) throw new ConfigError(file, section, key, `set twice (again at line ${index + 1})`);
    out[section]![key] = value;
  });
  return out;
}

/** Overlays `over` on `base` key by key: an operator's file only needs the keys it changes. */
export function mergeIni(base: RawIni, over: RawIni): RawIni {
  const out: RawIni = {};
  for (const [section, keys] of Object.entries(base)) out[section] = { ...keys };
  for (const [section, keys] of Object.entries(over)) out[section] = { ...(out[section] ?? {}), ...keys };
  return out;
}
