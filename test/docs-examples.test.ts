import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename } from 'node:path';
import { ALL_MODULES } from '../lib/checks';
import { parseRules as parseContentRules } from '../lib/checks/content/rules-file';
import { RULES_FILE as CONTENT_RULES_FILE } from '../lib/checks/content/settings';
import { parseRules as parseFilterRules, ruleWarnings } from '../lib/checks/rules/ruleset';
import { RULES_FILE as FILTER_RULES_FILE } from '../lib/checks/rules/settings';
import { parseIni } from '../lib/config/ini';
import { configFiles, loadConfig, type MailwardConfig, type LoadOptions } from '../lib/config/load';
import { IniReader, SectionReader } from '../lib/config/reader';
import { SHARED_FILE } from '../lib/config/shared';
import { repoPath } from './support/paths';

/*
 * Keeps docs/*.md true to the code:
 *  - every ini key the settings readers read (found by watching the real
 *    readers while the shipped configuration loads, not from a list kept by
 *    hand) is documented on its plugin's page, in its [section], with its default;
 *  - every default a docs settings table states is the one the code applies;
 *  - every ```ini example loads through loadConfig without error or warning;
 *  - every example of mailward.rules and mailward.content.rules parses;
 *  - the shipped config/ files load cleanly and state the code's defaults.
 */

// ---------------------------------------------------------------------------
// What the code reads: every SectionReader call, recorded while loading.

type ReadKind = 'string' | 'optionalString' | 'has' | 'number' | 'boolean' | 'oneOf' | 'list' | 'ipList' | 'entries';
const READ_METHODS: ReadKind[] = ['string', 'optionalString', 'has', 'number', 'boolean', 'oneOf', 'list', 'ipList', 'entries'];

interface KeyRead {
  /** mailward.ini, mailward.<module>.ini */
  file: string;
  /** The section name as read (for a free-form section, the probe's name). */
  section: string;
  /** Set for sections found by IniReader.sectionsMatching (`[domain:NAME]`, `[zone:...]`). */
  pattern?: RegExp;
  key: string;
  kind: ReadKind;
  /** The code default (the reader's fallback argument). */
  fallback: unknown;
  /** What the reader returned: the effective default once the shipped file is merged in. */
  value: unknown;
  /** The shipped file's text for the key, if any. */
  shipped?: string;
}

interface CodeConfig {
  reads: KeyRead[];
  /** Sections read whole (`[scores]`): names are free, the section must be documented. */
  wholeSections: { file: string; section: string }[];
  /** Free-form section patterns per file. */
  patterns: { file: string; pattern: RegExp }[];
  /** Fixed section names per file. */
  sections: Map<string, Set<string>>;
}

function fileOf(reader: { file: string }): string {
  return basename(reader.file);
}

/** Runs `work` with every SectionReader read recorded. */
function recording(work: () => void): { reads: KeyRead[]; whole: { file: string; section: string }[]; patterns: { file: string; pattern: RegExp }[] } {
  const reads: KeyRead[] = [];
  const whole: { file: string; section: string }[] = [];
  const patterns: { file: string; pattern: RegExp }[] = [];
  const freeForm = new WeakMap<SectionReader, RegExp>();
  const proto = SectionReader.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
  const iniProto = IniReader.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
  const originals = new Map<string, (...args: unknown[]) => unknown>();
  const originalMatching = iniProto.sectionsMatching!;
  let depth = 0;
  for (const method of READ_METHODS) {
    const original = proto[method]!;
    originals.set(method, original);
    proto[method] = function (this: SectionReader, ...args: unknown[]) {
      depth++;
      try {
        const value = original.apply(this, args);
        if (depth === 1) {
          const file = fileOf(this);
          if (method === 'entries') whole.push({ file, section: this.name });
          else {
            const key = args[0] as string;
            const fallback = method === 'oneOf' ? args[2] : method === 'optionalString' || method === 'has' ? undefined : args[1];
            const shipped = Object.prototype.hasOwnProperty.call(this.values, key) ? this.values[key] : undefined;
            reads.push({ file, section: this.name, pattern: freeForm.get(this), key, kind: method, fallback: method === 'list' || method === 'ipList' ? (fallback ?? []) : fallback, value, shipped });
          }
        }
        return value;
      } finally {
        depth--;
      }
    };
  }
  iniProto.sectionsMatching = function (this: IniReader, ...args: unknown[]) {
    const found = originalMatching.apply(this, args) as SectionReader[];
    const pattern = args[0] as RegExp;
    patterns.push({ file: fileOf(this), pattern });
    for (const section of found) freeForm.set(section, pattern);
    return found;
  };
  try {
    work();
  } finally {
    for (const [method, original] of originals) proto[method] = original;
    iniProto.sectionsMatching = originalMatching;
  }
  return { reads, whole, patterns };
}

function sameRead(a: KeyRead, b: KeyRead): boolean {
  return a.file === b.file && a.key === b.key && (a.pattern && b.pattern ? a.pattern.source === b.pattern.source : a.section === b.section && !a.pattern && !b.pattern);
}

/** Section names written in the docs and the shipped files: candidates for probing free-form sections. */
function sectionNamesInText(): string[] {
  const names: string[] = [];
  for (const dir of ['docs', 'config']) {
    for (const name of readdirSync(repoPath(dir))) {
      const text = readFileSync(repoPath(dir, name), 'utf8');
      for (const m of text.matchAll(/\[([A-Za-z_][^\]\s`|]*)\](?!\()/g)) names.push(m[1]!);
    }
  }
  return [...new Set(names)];
}

function collectCodeConfig(): CodeConfig {
  const base = recording(() => loadConfig());
  const reads: KeyRead[] = [];
  const add = (list: KeyRead[]) => {
    for (const r of list) if (!reads.some((x) => sameRead(x, r))) reads.push(r);
  };
  // Keys of fixed sections first; keys of free-form sections come from the probes below
  // (the shipped [zone:...] sections set values of their own, not the code defaults).
  add(base.reads.filter((r) => !r.pattern));
  const patterns: { file: string; pattern: RegExp }[] = [];
  for (const p of base.patterns) if (!patterns.some((q) => q.file === p.file && q.pattern.source === p.pattern.source)) patterns.push(p);

  // A free-form section's keys are only read when such a section exists: load one of each.
  const written = sectionNamesInText();
  for (const { file, pattern } of patterns) {
    const literal = /^\^([A-Za-z0-9_:.-]+)/.exec(pattern.source)?.[1];
    // A name the shipped file does not use, so the keys read there are the code's defaults.
    const shippedPath = repoPath('config', file);
    const shippedSections = existsSync(shippedPath) ? Object.keys(parseIni(readFileSync(shippedPath, 'utf8'), file)) : [];
    const matching = written.filter((n) => pattern.test(n));
    const candidates = [...(literal ? [`${literal}example.com`] : []), ...matching.filter((n) => !shippedSections.includes(n)), ...matching.filter((n) => shippedSections.includes(n))];
    for (const name of candidates) {
      const probe = recording(() => {
        try {
          loadConfig({ texts: { [file]: `[${name}]\n` } });
        } catch {
          // e.g. a [service:NAME] without evidence: its keys were read before the error
        }
      });
      const found = probe.reads.filter((r) => r.file === file && r.section === name && r.pattern?.source === pattern.source);
      if (found.length) {
        add(found);
        break;
      }
    }
  }
  add(base.reads.filter((r) => r.pattern));
  const sections = new Map<string, Set<string>>();
  for (const r of [...reads, ...base.whole]) {
    if ('pattern' in r && r.pattern) continue;
    if (!sections.has(r.file)) sections.set(r.file, new Set());
    sections.get(r.file)!.add(r.section);
  }
  return { reads, wholeSections: base.whole, patterns, sections };
}

// ---------------------------------------------------------------------------
// What the docs say.

const INI_FILE = /\bmailward(?:\.[a-z]+)?\.ini\b/g;

/** docs/<page>.md documents the ini file of the module of the same name; configuration.md mailward.ini. */
function pageFileMap(): Map<string, string> {
  const map = new Map<string, string>([['configuration.md', SHARED_FILE]]);
  for (const module of ALL_MODULES) if (module.file) map.set(`${module.name}.md`, module.file);
  return map;
}

interface Heading {
  level: number;
  text: string;
}

interface Fence {
  page: string;
  /** 1-based line of the opening ``` */
  line: number;
  lang: string;
  lines: string[];
  /** Text since the previous heading, table or fence. */
  before: string;
  /** Text after it, up to the next heading, table or fence. */
  after: string;
  headings: Heading[];
}

interface DocEntry {
  page: string;
  line: number;
  /** The ini file the statement is about, when the page or a heading says. */
  file?: string;
  section?: string;
  key: string;
  /** The default as written; undefined when the row leaves it blank. */
  defaultText: string;
  how: 'table' | 'prose' | 'ini comment';
}

interface Inherit {
  page: string;
  line: number;
  section: string;
  from: string;
}

interface DocPage {
  page: string;
  fences: Fence[];
  entries: DocEntry[];
  inherits: Inherit[];
  /** Keys set in ```ini examples (not a statement of their defaults). */
  examples: { section: string; key: string; line: number }[];
  text: string;
}

function filesNamed(text: string): string[] {
  return [...new Set([...text.matchAll(INI_FILE)].map((m) => m[0]))];
}

/** `[name]` tokens (not markdown links). */
function sectionsNamed(text: string): string[] {
  return [...text.matchAll(/\[([A-Za-z_][^\]\s`|]*)\](?!\()/g)].map((m) => m[1]!);
}

function splitRow(line: string): string[] {
  const cells: string[] = [];
  let cell = '';
  let inCode = false;
  const body = line.trim().replace(/^\|/, '').replace(/\|$/, '');
  for (const ch of body) {
    if (ch === '`') inCode = !inCode;
    if (ch === '|' && !inCode) {
      cells.push(cell.trim());
      cell = '';
    } else cell += ch;
  }
  cells.push(cell.trim());
  return cells;
}

function headingContext(headings: Heading[], pick: (text: string) => string[]): string | undefined {
  for (let i = headings.length - 1; i >= 0; i--) {
    const found = [...new Set(pick(headings[i]!.text))];
    if (found.length === 1) return found[0];
    if (found.length > 1) return undefined;
  }
  return undefined;
}

function parseDocPage(page: string, pageFile: string | undefined): DocPage {
  const text = readFileSync(repoPath('docs', page), 'utf8');
  const lines = text.split('\n');
  const fences: Fence[] = [];
  const entries: DocEntry[] = [];
  const inherits: Inherit[] = [];
  const examples: { section: string; key: string; line: number }[] = [];
  let headings: Heading[] = [];
  let since: string[] = [];
  let leadSection: string | undefined;
  let lastFence: Fence | undefined;
  const flushProse = (upto: number) => {
    const para = since.join('\n');
    if (lastFence) lastFence.after = para;
    lastFence = undefined;
    parseProse(para, upto - since.length);
    since = [];
  };
  const parseProse = (para: string, firstLine: number) => {
    const lineOf = (index: number) => firstLine + para.slice(0, index).split('\n').length;
    // "`[harvest]`: `enabled = true`, `window_minutes = 60`, ..."
    for (const m of para.matchAll(/`\[([^\]`]+)\]`\s*:\s*/g)) {
      let rest = para.slice(m.index! + m[0].length);
      let offset = m.index! + m[0].length;
      for (;;) {
        const span = /^`([^`]+)`/.exec(rest);
        if (!span) break;
        const kv = /^([a-z_][a-z0-9_]*)\s*=\s*(.+)$/.exec(span[1]!);
        if (kv) entries.push({ page, line: lineOf(offset), file: headingContext(headings, filesNamed) ?? pageFile, section: m[1]!, key: kv[1]!, defaultText: `\`${kv[2]!.trim()}\``, how: 'prose' });
        rest = rest.slice(span[0].length);
        offset += span[0].length;
        const sep = /^[\s,]*(?:and\s+)?/.exec(rest)![0];
        rest = rest.slice(sep.length);
        offset += sep.length;
      }
    }
    // "a `[domain:NAME]` section ...; keys it leaves out keep the values of `[actions]`"
    for (const m of para.matchAll(/`?\[([^\]`\s]+:[^\]`\s]+)\]`?[^.]*?\bkeeps?\b[^.]*?\bvalues? of `?\[([^\]`\s]+)\]`?/g)) {
      inherits.push({ page, line: lineOf(m.index!), section: m[1]!, from: m[2]! });
    }
  };

  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const fence = /^(\s*)```\s*([A-Za-z0-9_-]*)\s*$/.exec(line);
    if (fence) {
      const indent = fence[1]!;
      const body: string[] = [];
      let j = i + 1;
      while (j < lines.length && lines[j]!.trim() !== '```') body.push(lines[j++]!.slice(indent.length));
      const before = since.join('\n');
      flushProse(i);
      const f: Fence = { page, line: i + 1, lang: fence[2]!.toLowerCase(), lines: body, before, after: '', headings: [...headings] };
      fences.push(f);
      lastFence = f;
      if (f.lang === 'ini') {
        entries.push(...iniCommentDefaults(f, pageFile));
        let section = 'main';
        f.lines.forEach((raw, index) => {
          section = /^\s*\[([^\]]+)\]\s*$/.exec(raw)?.[1] ?? section;
          const kv = /^\s*([a-z_][a-z0-9_]*)\s*=/i.exec(raw);
          if (kv) examples.push({ section, key: kv[1]!, line: f.line + index + 1 });
        });
      }
      i = j;
      continue;
    }
    const heading = /^(#{1,6})\s+(.*)$/.exec(line);
    if (heading) {
      flushProse(i);
      const level = heading[1]!.length;
      headings = [...headings.filter((h) => h.level < level), { level, text: heading[2]! }];
      leadSection = undefined;
      continue;
    }
    if (/^\s*\|/.test(line)) {
      flushProse(i);
      const start = i;
      const rows: string[] = [];
      while (i < lines.length && /^\s*\|/.test(lines[i]!)) rows.push(lines[i++]!);
      i--;
      entries.push(...tableEntries(page, start, rows, headings, leadSection, pageFile));
      leadSection = undefined;
      continue;
    }
    // "`[practices]`:" on its own line names the section of the table below it.
    const lead = /^\s*`?\[([^\]`]+)\]`?\s*:?\s*$/.exec(line);
    if (lead) leadSection = lead[1];
    since.push(line);
  }
  flushProse(lines.length);
  return { page, fences, entries, inherits, examples, text };
}

function tableEntries(page: string, start: number, rows: string[], headings: Heading[], leadSection: string | undefined, pageFile: string | undefined): DocEntry[] {
  if (rows.length < 3) return [];
  const header = splitRow(rows[0]!).map((h) => h.toLowerCase());
  const keyCol = header.findIndex((h) => /\bkey\b/.test(h));
  const defaultCol = header.findIndex((h) => /\bdefault\b/.test(h));
  const sectionCol = header.findIndex((h) => h === 'section');
  if (keyCol < 0 || defaultCol < 0) return [];
  const file = headingContext(headings, filesNamed) ?? pageFile;
  const contextSection = leadSection ?? headingContext(headings, sectionsNamed);
  const out: DocEntry[] = [];
  rows.slice(2).forEach((row, index) => {
    const cells = splitRow(row);
    const keyCell = cells[keyCol] ?? '';
    const defaultText = (cells[defaultCol] ?? '').trim();
    let section = sectionCol >= 0 ? (cells[sectionCol] ?? '').replace(/[`[\]]/g, '').trim() || undefined : undefined;
    section ??= contextSection;
    let key: string | undefined;
    const spans = [...keyCell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!.trim());
    if (!spans.length && keyCell.trim()) spans.push(keyCell.trim());
    for (const span of spans) {
      const withSection = /^\[([^\]]+)\](?:\s+([A-Za-z_][\w]*))?$/.exec(span);
      if (withSection) {
        section = withSection[1]!;
        key = withSection[2] ?? key;
      } else if (/^[A-Za-z_][\w]*$/.test(span)) key = span;
      else continue;
      if (key) out.push({ page, line: start + 3 + index, file, section, key, defaultText, how: 'table' });
    }
  });
  return out;
}

/** `key = value   ; ... (the default)` in an ini example states the default. */
function iniCommentDefaults(fence: Fence, pageFile: string | undefined): DocEntry[] {
  const out: DocEntry[] = [];
  let section = 'main';
  fence.lines.forEach((raw, index) => {
    const header = /^\s*\[([^\]]+)\]\s*$/.exec(raw);
    if (header) section = header[1]!;
    const m = /^\s*([a-z_][a-z0-9_]*)\s*=\s*(.*?)\s+;(.*)$/i.exec(raw);
    if (m && /\bdefault\b/i.test(m[3]!)) out.push({ page: fence.page, line: fence.line + index + 1, file: pageFile, section, key: m[1]!, defaultText: `\`${m[2]!.trim()}\``, how: 'ini comment' });
  });
  return out;
}

// ---------------------------------------------------------------------------
// Comparing a documented default with the code's.

function show(value: unknown): string {
  if (Array.isArray(value)) return value.length ? value.join(', ') : '(empty)';
  if (value === undefined || value === '') return '(empty)';
  if (value === Infinity) return 'off';
  return String(value);
}

/** The value a default cell states: its leading `code`, else its text. */
function statedValue(cell: string): string {
  const t = cell.trim().replace(/^[*_]+|[*_]+$/g, '').trim();
  const span = /^`([^`]*)`/.exec(t);
  return (span ? span[1]! : t).trim();
}

/**
 * Whether a documented default agrees with the code's: the same value, "(empty)"
 * for an empty one, "required" (not checkable here), or, for a free-form
 * section, "from `[S]`" where [S] of the same file has the key.
 */
function defaultAgrees(cell: string, read: KeyRead, code: CodeConfig): boolean {
  const v = statedValue(cell);
  const value = read.value;
  const empty = /^\(?\s*(empty|none)\b/i.test(v);
  if (/^required\b/i.test(v)) return value === undefined || value === '' || (Array.isArray(value) && !value.length);
  if (read.pattern) {
    for (const s of sectionsNamed(cell)) {
      if (code.reads.some((r) => r.file === read.file && !r.pattern && r.section === s && r.key === read.key)) return true;
    }
  }
  if (value === undefined || value === '') return empty;
  if (Array.isArray(value)) {
    if (!value.length) return empty;
    const stated = v.split(/[\s,]+/).filter(Boolean);
    return stated.length === value.length && [...stated].sort().join(',') === [...value].map(String).sort().join(',');
  }
  if (typeof value === 'boolean') return v.toLowerCase() === String(value);
  if (typeof value === 'number') {
    if (value === Infinity) return /^(off|none|disabled)\b/i.test(v);
    const n = /^[+-]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)/.exec(v);
    return !!n && Number(n[0].replace(/,/g, '')) === value;
  }
  if (typeof value === 'string') {
    if (read.fallback === value && value === hostname()) return /\bhost ?name\b/i.test(v);
    return v === value || v.startsWith(`${value} `);
  }
  return false;
}

function describeRead(r: KeyRead): string {
  return `${r.file} [${r.pattern ? `${r.section} (any ${r.pattern})` : r.section}] ${r.key}`;
}

function sectionMatches(read: KeyRead, docSection: string | undefined): boolean {
  if (docSection === undefined) return false;
  if (read.pattern) return read.pattern.test(docSection);
  return docSection === read.section;
}

// ---------------------------------------------------------------------------
// ini examples: which file, and do they load.

interface IniSegment {
  fence: Fence;
  file?: string;
  /** Candidates when the file could not be decided. */
  candidates: string[];
  /** The block's text with other segments' lines blanked, so line numbers stay the block's. */
  text: string;
  /** Block-relative (1-based) lines of this segment. */
  lines: number[];
}

function sectionsOfIni(lines: string[]): string[] {
  return [...new Set(lines.map((l) => /^\s*\[([^\]]+)\]\s*$/.exec(l)?.[1]).filter((s): s is string => !!s))];
}

function fileKnowsSection(code: CodeConfig, file: string, section: string): boolean {
  return !!code.sections.get(file)?.has(section) || code.patterns.some((p) => p.file === file && p.pattern.test(section));
}

function iniSegments(fence: Fence, pageFile: string | undefined, code: CodeConfig): IniSegment[] {
  // A comment naming a file ("; mailward.backscatter.ini") starts that file's part of the block.
  const parts: { file?: string; lines: number[] }[] = [{ lines: [] }];
  fence.lines.forEach((raw, index) => {
    const named = /^\s*[;#]/.test(raw) ? filesNamed(raw) : [];
    if (named.length === 1) parts.push({ file: named[0]!, lines: [] });
    parts[parts.length - 1]!.lines.push(index + 1);
  });
  const allFiles = [...code.sections.keys()];
  return parts
    .filter((p) => p.lines.some((n) => /\S/.test(fence.lines[n - 1]!.replace(/^\s*[;#].*$/, ''))))
    .map((part) => {
      const partLines = part.lines.map((n) => fence.lines[n - 1]!);
      const sections = sectionsOfIni(partLines);
      const knowsAll = (file: string) => sections.every((s) => fileKnowsSection(code, file, s)) && (sections.length > 0 || file === SHARED_FILE);
      let file = part.file;
      let candidates: string[] = [];
      if (!file) {
        const named = filesNamed(fence.before);
        if (named.length === 1) file = named[0];
        else if (named.length > 1) candidates = named.filter(knowsAll);
      }
      if (!file && !candidates.length) file = headingContext(fence.headings, filesNamed);
      if (!file && !candidates.length && pageFile && knowsAll(pageFile)) file = pageFile;
      if (!file && !candidates.length) candidates = allFiles.filter(knowsAll);
      if (!file && candidates.length === 1) file = candidates[0];
      const text = fence.lines.map((l, i) => (part.lines.includes(i + 1) ? l : '')).join('\n');
      return { fence, file, candidates: file ? [] : candidates, text, lines: part.lines };
    });
}

/** Warnings the loader reports for a configuration (logged at load; the CLI shows them). */
function loadWarnings(config: MailwardConfig): string[] {
  const out: string[] = [];
  for (const { settings } of config.modules) {
    const warnings = (settings as { warnings?: unknown } | null)?.warnings;
    if (Array.isArray(warnings)) out.push(...warnings.map(String));
  }
  return out;
}

function load(options: LoadOptions): { config?: MailwardConfig; error?: Error } {
  try {
    return { config: loadConfig(options) };
  } catch (err) {
    return { error: err as Error };
  }
}

/** Where in the doc a loader error points: its "line N", else the line of the key it names. */
function errorLine(fence: Fence, error: Error): number {
  const m = /\bline (\d+)\b/.exec(error.message);
  if (m) return fence.line + Number(m[1]);
  const e = error as Error & { section?: string; key?: string | null };
  let section = 'main';
  let sectionLine: number | undefined;
  for (let i = 0; i < fence.lines.length; i++) {
    const raw = fence.lines[i]!;
    const header = /^\s*\[([^\]]+)\]\s*$/.exec(raw);
    if (header) {
      section = header[1]!;
      if (e.section === section) sectionLine ??= fence.line + i + 1;
      continue;
    }
    if (e.key && section === e.section && new RegExp(`^\\s*${e.key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*=`).test(raw)) return fence.line + i + 1;
  }
  return sectionLine ?? fence.line;
}

function meantToWarn(fence: Fence): boolean {
  return /\bwarn/i.test([fence.before.split('\n').slice(-3).join('\n'), fence.after.split('\n').slice(0, 3).join('\n'), ...fence.lines.filter((l) => /^\s*[;#]/.test(l))].join('\n'));
}

type RulesKind = 'filter' | 'content';

/** Fenced blocks written in the syntax of mailward.rules or mailward.content.rules. */
function rulesKind(fence: Fence): RulesKind | undefined {
  if (!['', 'text', 'rules', 'conf'].includes(fence.lang)) return undefined;
  const body = fence.lines.map((l) => l.trim()).filter((l) => l && !l.startsWith('#') && !l.startsWith(';'));
  if (!body.length) return undefined;
  if (/^rule\s+\S+$/i.test(body[0]!)) return 'filter';
  if (body.every((l) => /^(body|header|uri|score|describe)\s+[A-Z][A-Z0-9_]+\s/.test(l))) return 'content';
  return undefined;
}

// ---------------------------------------------------------------------------

describe('documentation examples and settings stay true to the code', () => {
  let code: CodeConfig;
  let pages: DocPage[];
  let pageFiles: Map<string, string>;
  /** Warnings the shipped configuration alone gives (none, checked below). */
  let baseWarnings: string[];

  before(() => {
    code = collectCodeConfig();
    pageFiles = pageFileMap();
    pages = readdirSync(repoPath('docs'))
      .filter((n) => n.endsWith('.md'))
      .sort()
      .map((n) => parseDocPage(n, pageFiles.get(n)));
    baseWarnings = loadWarnings(loadConfig());
  });

  it('finds the settings the code reads (the probe itself works)', () => {
    for (const file of configFiles().filter((f) => f.endsWith('.ini'))) {
      assert.ok(code.reads.some((r) => r.file === file), `no key of ${file} was seen read`);
    }
    for (const p of code.patterns) {
      assert.ok(code.reads.some((r) => r.file === p.file && r.pattern?.source === p.pattern.source), `no key of the ${p.file} sections matching ${p.pattern} was seen read`);
    }
    assert.ok(code.reads.length > 100, `only ${code.reads.length} keys seen`);
  });

  for (const file of configFiles().filter((f) => f.endsWith('.ini'))) {
    it(`every ${file} key is on its page, in its [section], with its default`, () => {
      const page = [...pageFileMap()].find(([, f]) => f === file)?.[0];
      assert.ok(page, `no docs page for ${file}`);
      const doc = pages.find((p) => p.page === page)!;
      const problems: string[] = [];
      for (const read of code.reads.filter((r) => r.file === file)) {
        const documented = doc.entries.filter((e) => (e.file ?? file) === file && e.key === read.key && sectionMatches(read, e.section));
        const inherited = read.pattern && doc.inherits.some((h) => read.pattern!.test(h.section) && code.reads.some((r) => r.file === file && !r.pattern && r.section === h.from && r.key === read.key));
        if (!documented.length && !inherited) {
          const example = doc.examples.find((e) => e.key === read.key && sectionMatches(read, e.section));
          const hint = example ? ` (it only appears in the example at docs/${page}:${example.line}, which states no default)` : '';
          problems.push(`${describeRead(read)} (default ${show(read.value)}) is not documented with its default in docs/${page}${hint}`);
        } else if (documented.length && !inherited && documented.every((e) => !e.defaultText.trim())) {
          problems.push(`${describeRead(read)}: docs/${page}:${documented[0]!.line} states no default (code: ${show(read.value)})`);
        }
      }
      for (const w of code.wholeSections.filter((s) => s.file === file)) {
        if (!doc.text.includes(`[${w.section}]`)) problems.push(`${file} [${w.section}] (any key) is not documented in docs/${page}`);
      }
      assert.deepEqual(problems, [], `\n${problems.join('\n')}`);
    });
  }

  it('every default stated in a docs settings table is the code default', () => {
    const problems: string[] = [];
    for (const doc of pages) {
      for (const e of doc.entries) {
        const file = e.file ?? pageFiles.get(doc.page);
        const reads = code.reads.filter((r) => (file ? r.file === file : true) && r.key === e.key && sectionMatches(r, e.section));
        const where = `docs/${doc.page}:${e.line}`;
        if (!reads.length) {
          problems.push(`${where}: ${file ?? '(no file)'} [${e.section ?? '?'}] ${e.key} is documented but the code reads no such key`);
          continue;
        }
        if (!e.defaultText.trim()) {
          problems.push(`${where}: [${e.section}] ${e.key}: no default stated (code: ${show(reads[0]!.value)})`);
          continue;
        }
        if (!reads.some((r) => defaultAgrees(e.defaultText, r, code))) {
          problems.push(`${where}: ${describeRead(reads[0]!)}: docs say ${JSON.stringify(e.defaultText)}, code default is ${show(reads[0]!.value)}`);
        }
      }
    }
    assert.deepEqual(problems, [], `\n${problems.join('\n')}`);
  });

  it('every ```ini example says (or shows) which file it belongs to', () => {
    const problems: string[] = [];
    for (const doc of pages) {
      for (const fence of doc.fences.filter((f) => f.lang === 'ini')) {
        for (const seg of iniSegments(fence, pageFiles.get(doc.page), code)) {
          if (!seg.file) problems.push(`docs/${doc.page}:${fence.line}: cannot tell which file this example is for (${seg.candidates.length ? `could be ${seg.candidates.join(', ')}` : 'no file knows its sections'})`);
        }
      }
    }
    assert.deepEqual(problems, [], `\n${problems.join('\n')}`);
  });

  it('every ```ini example loads through loadConfig with no error and no warning', () => {
    const problems: string[] = [];
    let checked = 0;
    for (const doc of pages) {
      for (const fence of doc.fences.filter((f) => f.lang === 'ini')) {
        for (const seg of iniSegments(fence, pageFiles.get(doc.page), code)) {
          for (const file of seg.file ? [seg.file] : seg.candidates) {
            checked++;
            const { config, error } = load({ texts: { [file]: seg.text } });
            if (error) {
              problems.push(`docs/${doc.page}:${errorLine(fence, error)}: example for ${file} does not load: ${error.message}`);
              continue;
            }
            const warnings = loadWarnings(config!).filter((w) => !baseWarnings.includes(w));
            if (warnings.length && !meantToWarn(fence)) problems.push(`docs/${doc.page}:${fence.line}: example for ${file} warns: ${warnings.join('; ')}`);
          }
        }
      }
    }
    assert.ok(checked > 5, `only ${checked} ini examples found`);
    assert.deepEqual(problems, [], `\n${problems.join('\n')}`);
  });

  it(`every example of ${FILTER_RULES_FILE} and ${CONTENT_RULES_FILE} in the docs parses`, () => {
    const problems: string[] = [];
    const found: Record<RulesKind, number> = { filter: 0, content: 0 };
    for (const doc of pages) {
      for (const fence of doc.fences) {
        const kind = rulesKind(fence);
        if (!kind) continue;
        found[kind]++;
        const file = kind === 'filter' ? FILTER_RULES_FILE : CONTENT_RULES_FILE;
        const text = fence.lines.join('\n');
        // The parser alone, then the whole loader (which also reports warnings).
        try {
          if (kind === 'filter') parseFilterRules(text, file);
          else parseContentRules(text, file);
        } catch (err) {
          problems.push(`docs/${doc.page}:${errorLine(fence, err as Error)}: ${file} example does not parse: ${(err as Error).message}`);
          continue;
        }
        const { config, error } = load({ texts: { [file]: text } });
        if (error) {
          problems.push(`docs/${doc.page}:${errorLine(fence, error)}: ${file} example does not load: ${error.message}`);
          continue;
        }
        const warnings = loadWarnings(config!).filter((w) => !baseWarnings.includes(w));
        if (warnings.length && !meantToWarn(fence)) problems.push(`docs/${doc.page}:${fence.line}: ${file} example warns: ${warnings.join('; ')}`);
      }
    }
    assert.ok(found.filter > 0, `no ${FILTER_RULES_FILE} example found in docs/`);
    assert.ok(found.content > 0, `no ${CONTENT_RULES_FILE} example found in docs/`);
    assert.deepEqual(problems, [], `\n${problems.join('\n')}`);
  });

  describe('the shipped config/ files', () => {
    const shipped = readdirSync(repoPath('config')).sort();

    it('are each read by the loader', () => {
      const read = new Set(configFiles());
      for (const name of shipped) assert.ok(read.has(name), `config/${name} is shipped but no module reads it`);
    });

    for (const name of shipped.filter((n) => n.endsWith('.ini'))) {
      it(`config/${name} parses`, () => {
        parseIni(readFileSync(repoPath('config', name), 'utf8'), name);
      });
    }

    it(`config/${FILTER_RULES_FILE} parses with no warning`, () => {
      const text = readFileSync(repoPath('config', FILTER_RULES_FILE), 'utf8');
      assert.deepEqual(ruleWarnings(parseFilterRules(text, FILTER_RULES_FILE), FILTER_RULES_FILE), []);
    });

    it(`config/${CONTENT_RULES_FILE} parses`, () => {
      parseContentRules(readFileSync(repoPath('config', CONTENT_RULES_FILE), 'utf8'), CONTENT_RULES_FILE);
    });

    it('load together with no error and no warning', () => {
      const config = loadConfig({ configDir: repoPath('config') });
      assert.deepEqual(loadWarnings(config), []);
      assert.deepEqual(loadWarnings(loadConfig()), []);
    });

    it('state the code defaults (what an operator copies from them is what applies without them)', () => {
      const problems: string[] = [];
      for (const r of code.reads) {
        if (r.shipped === undefined || r.shipped === '' || r.pattern) continue;
        const same = Array.isArray(r.value) ? JSON.stringify(r.value) === JSON.stringify(r.fallback) : r.value === r.fallback;
        if (!same) problems.push(`config/${r.file} [${r.section}] ${r.key} = ${r.shipped}, code default ${show(r.fallback)}`);
      }
      assert.deepEqual(problems, [], `\n${problems.join('\n')}`);
    });
  });
});
