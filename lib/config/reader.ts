import { isIP } from 'node:net';
import { URL } from 'node:url';
import { ConfigError } from './errors';
import type { RawIni } from './ini';

interface NumberOptions {
  min?: number;
  /** The value must be strictly greater than this. */
  above?: number;
  max?: number;
  integer?: boolean;
  /** `off`, `none` or `disabled` is accepted and means never (Infinity). Only for keys documented so. */
  off?: boolean;
}

/**
 * Typed access to one section, remembering which keys were read so that a
 * misspelt key is reported instead of silently ignored.
 */
export class SectionReader {
  readonly used = new Set<string>();

  constructor(
    readonly file: string,
    readonly name: string,
    readonly values: Record<string, string>,
  ) {}

  private raw(key: string): string | undefined {
    this.used.add(key);
    const value = this.values[key];
    return value === undefined || value === '' ? undefined : value;
  }

  error(key: string | null, problem: string): ConfigError {
    return new ConfigError(this.file, this.name, key, problem);
  }

  has(key: string): boolean {
    return this.raw(key) !== undefined;
  }

  string(key: string, fallback: string): string {
    return this.raw(key) ?? fallback;
  }

  optionalString(key: string): string | undefined {
    return this.raw(key);
  }

  number(key: string, fallback: number, options: NumberOptions = {}): number {
    const raw = this.raw(key);
    if (this.values[key] === '') throw this.error(key, 'expected a number, got "" (leave the key out for its default)');
    if (raw === undefined) return fallback;
    if (/^(off|none|disabled)$/i.test(raw)) {
      if (options.off) return Infinity;
      throw this.error(key, `expected a number, got ${JSON.stringify(raw)} (this key cannot be turned off)`);
    }
    // Decimal only: Number() would also take "0x10", "1e3" is fine, "" is not a value.
    const value = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(raw.trim()) ? Number(raw) : NaN;
    if (!Number.isFinite(value)) throw this.error(key, `expected a number, got ${JSON.stringify(raw)}`);
    if (options.integer && !Number.isInteger(value)) throw this.error(key, `expected a whole number, got ${raw}`);
    if (options.min !== undefined && value < options.min) throw this.error(key, `must be at least ${options.min}, got ${raw}`);
    if (options.above !== undefined && !(value > options.above)) throw this.error(key, `must be above ${options.above}, got ${raw}`);
    if (options.max !== undefined && value > options.max) throw this.error(key, `must be at most ${options.max}, got ${raw}`);
    return value;
  }

  boolean(key: string, fallback: boolean): boolean {
    const raw = this.raw(key);
    if (raw === undefined) return fallback;
    if (/^(true|yes|on|1)$/i.test(raw)) return true;
    if (/^(false|no|off|0)$/i.test(raw)) return false;
    throw this.error(key, `expected true or false, got ${JSON.stringify(raw)}`);
  }

  oneOf<T extends string>(key: string, choices: readonly T[], fallback: T): T {
    const raw = this.raw(key);
    if (raw === undefined) return fallback;
    if (!(choices as readonly string[]).includes(raw)) throw this.error(key, `expected one of ${choices.join(', ')}, got ${JSON.stringify(raw)}`);
    return raw as T;
  }

  /** A comma- or space-separated list. */
  list(key: string, fallback: string[] = []): string[] {
    const raw = this.raw(key);
    if (raw === undefined) return fallback;
    return raw.split(/[\s,]+/).filter(Boolean);
  }

  /** IP addresses, each optionally with a port (`192.0.2.1:5353`, `[2001:db8::1]:53`). */
  ipList(key: string, fallback: string[] = []): string[] {
    const items = this.list(key, fallback);
    for (const item of items) {
      const m = /^\[(.*)\](?::(\d+))?$/.exec(item) ?? /^([\d.]+)(?::(\d+))?$/.exec(item);
      const host = m ? m[1]! : item;
      if (!isIP(host)) throw this.error(key, `${JSON.stringify(item)} is not an IP address`);
      // Port 0 passes here but aborts the process inside c-ares at the first look-up.
      const port = m?.[2];
      if (port !== undefined && !(Number(port) >= 1 && Number(port) <= 65535)) throw this.error(key, `${JSON.stringify(item)}: port must be 1 to 65535`);
    }
    return items;
  }

  /**
   * A server's URL, read with the WHATWG URL parser: a scheme from `schemes`, a host and, if
   * given, a port from 1 to 65535. `check` adds what one kind of URL needs (a problem, or null);
   * `allowNoHost` accepts a URL without a host when it returns true (e.g. a Unix socket given
   * otherwise). `userInfoWithoutHost` reads `scheme://user:pass@/path` (user info and no host,
   * which the WHATWG parser refuses but pg accepts) with a placeholder host, as having no host.
   * `otherForm` checks forms that are not such URLs (a Unix socket path...): undefined when the
   * value is not one of them, else null (accepted) or a problem; `otherForms` names them in
   * errors. A password in the URL is never repeated in the error.
   */
  url(
    key: string,
    fallback: string,
    schemes: readonly string[],
    example: string,
    extra: {
      check?: (url: URL) => string | null;
      allowNoHost?: (url: URL) => boolean;
      userInfoWithoutHost?: boolean;
      otherForm?: (value: string) => string | null | undefined;
      otherForms?: string;
    } = {},
  ): string {
    const value = this.string(key, fallback);
    const shown = JSON.stringify(redactUrl(value));
    const forms = extra.otherForms ? `; or ${extra.otherForms}` : '';
    const kind = `expected a ${schemes.map((s) => `${s}//`).join(' or ')} URL (${example})`;
    const expected = `${kind}${forms}`;
    const other = extra.otherForm?.(value);
    if (other === null) return value;
    if (other !== undefined) throw this.error(key, `${shown}: ${other}`);
    let url: URL;
    let noHost = false;
    try {
      url = new URL(value);
    } catch {
      // scheme://user[:password]@/database: an authority with user info and no host.
      const placeholder = extra.userInfoWithoutHost && /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*@\//i.test(value) ? parseOrNull(value.replace('@/', '@placeholder.invalid/')) : null;
      // Port above 65535, non-digits in the port, no host before the port, spaces...
      if (!placeholder) throw this.error(key, `${shown} is not a valid URL: ${kind}, port 1 to 65535${forms}`);
      url = placeholder;
      noHost = true;
    }
    if (!schemes.includes(url.protocol)) throw this.error(key, `${shown}: ${expected}`);
    if ((noHost || url.hostname === '') && !extra.allowNoHost?.(url)) throw this.error(key, `${shown} names no host: ${expected}`);
    if (url.port !== '' && !(Number(url.port) >= 1 && Number(url.port) <= 65535)) throw this.error(key, `${shown}: port must be 1 to 65535`);
    const problem = extra.check?.(url);
    if (problem) throw this.error(key, `${shown}: ${problem}`);
    return value;
  }

  /** Every key of a free-form section (e.g. `[scores]`), marked as used. */
  entries(): [string, string][] {
    for (const key of Object.keys(this.values)) this.used.add(key);
    return Object.entries(this.values);
  }

  unknownKeys(): string[] {
    return Object.keys(this.values).filter((k) => !this.used.has(k));
  }
}

/**
 * Typed access to one ini file. `finish()` reports the first key or section
 * nobody read, naming file, section and key.
 */
export class IniReader {
  private readonly readers = new Map<string, SectionReader>();
  private readonly freeForm: RegExp[] = [];

  constructor(
    readonly file: string,
    readonly raw: RawIni,
  ) {}

  section(name: string): SectionReader {
    let reader = this.readers.get(name);
    if (!reader) {
      reader = new SectionReader(this.file, name, this.raw[name] ?? {});
      this.readers.set(name, reader);
    }
    return reader;
  }

  /** Sections whose names match (e.g. `domain:*`), each read by the caller. */
  sectionsMatching(pattern: RegExp): SectionReader[] {
    this.freeForm.push(pattern);
    return Object.keys(this.raw)
      .filter((name) => pattern.test(name))
      .map((name) => this.section(name));
  }

  finish(): void {
    for (const [name, keys] of Object.entries(this.raw)) {
      const reader = this.readers.get(name);
      if (!reader) {
        if (name === 'main' && Object.keys(keys).length === 0) continue;
        if (this.freeForm.some((p) => p.test(name))) continue;
        throw new ConfigError(this.file, name, null, 'unknown section');
      }
      const unknown = reader.unknownKeys();
      if (unknown.length) throw reader.error(unknown[0]!, 'unknown key');
    }
  }
}

function parseOrNull(value: string): URL | null {
  try {
    return new URL(value);
  } catch {
    return null;
  }
}

/** A URL as it may be shown in a message: the password (`user:password@`) replaced by `***`. */
export function redactUrl(value: string): string {
  // The password runs to the last @ of the authority: pg and the WHATWG parser read `u:p@ss@host` so.
  return value.replace(/^([a-z][a-z0-9+.-]*:\/\/[^@/?#:]*:)[^/?#]*@/i, '$1***@');
}
