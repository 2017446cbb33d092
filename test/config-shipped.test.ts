import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GTUBE } from '../lib/checks/builtin';
import type { ContentSettings } from '../lib/checks/content/settings';
import { loadConfig, SHIPPED_CONFIG_DIR, shippedFiles, type MailwardConfig } from '../lib/config/load';
import { main } from '../lib/cli/main';
import { Runtime } from '../lib/runtime';

/**
 * A broken install (config/ left out by a bundler, a file lost) used to fall
 * back to built-in defaults and no rules in silence: now the loader says so,
 * naming the path, and mail still flows.
 */
describe('shipped defaults missing or unreadable', () => {
  let dir: string;
  let operator: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'mailward-shipped-'));
    operator = join(dir, 'operator');
    mkdirSync(operator);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const content = (c: MailwardConfig) => c.modules.find((m) => m.module.name === 'content')!.settings as ContentSettings;
  /** A copy of the shipped config/ in the temporary directory, to break. */
  const shippedCopy = () => {
    const copy = join(dir, 'shipped');
    cpSync(SHIPPED_CONFIG_DIR, copy, { recursive: true });
    return copy;
  };

  it('lists exactly the files the package ships, and a complete install has nothing to say', () => {
    assert.deepEqual(shippedFiles().sort(), readdirSync(SHIPPED_CONFIG_DIR).sort());
    assert.deepEqual(loadConfig({ configDir: operator }).warnings, []);
    assert.deepEqual(loadConfig({ configDir: operator, shippedDir: shippedCopy() }).warnings, []);
  });

  it('a missing shipped directory is one warning naming its path; the configuration still loads', () => {
    const missing = join(dir, 'no-such-config');
    const config = loadConfig({ configDir: operator, shippedDir: missing });
    assert.equal(config.warnings?.length, 1, String(config.warnings));
    assert.ok(config.warnings![0]!.includes(`${missing} is missing`), config.warnings![0]);
    assert.match(config.warnings![0]!, /built-in default/);
    assert.match(config.warnings![0]!, /mailward\.content\.rules/);
    // What the warning is about: no shipped content rules.
    assert.equal(content(config).heuristics.rules.length, 0);
  });

  it('an empty shipped directory names every missing file', () => {
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    const warnings = loadConfig({ configDir: operator, shippedDir: empty }).warnings ?? [];
    assert.equal(warnings.length, shippedFiles().length, warnings.join('\n'));
    for (const file of shippedFiles()) assert.ok(warnings.some((w) => w.includes(`${join(empty, file)} is missing`)), file);
  });

  it('a missing shipped content rules file is named; the other shipped files still apply', () => {
    const shipped = shippedCopy();
    rmSync(join(shipped, 'mailward.content.rules'));
    const config = loadConfig({ configDir: operator, shippedDir: shipped });
    assert.deepEqual(config.warnings?.map((w) => w.split(' (')[0]), [`the shipped defaults file ${join(shipped, 'mailward.content.rules')} is missing`]);
    assert.match(config.warnings![0]!, /its rules are not loaded unless your configuration has its own mailward\.content\.rules/);
    assert.equal(content(config).heuristics.rules.length, 0);
    assert.ok(content(loadConfig({ configDir: operator })).heuristics.rules.length > 0, 'the intact install loads the shipped content rules');
  });

  it('an unreadable shipped file is a warning, not an exception', () => {
    const shipped = shippedCopy();
    // Unreadable whatever the user (a directory where the file should be: EISDIR, even for root).
    rmSync(join(shipped, 'mailward.rules'));
    mkdirSync(join(shipped, 'mailward.rules'));
    const config = loadConfig({ configDir: operator, shippedDir: shipped });
    assert.equal(config.warnings?.length, 1);
    assert.ok(config.warnings![0]!.startsWith(`the shipped defaults file ${join(shipped, 'mailward.rules')} cannot be read (`), config.warnings![0]);
  });

  it('the runtime logs the warnings as warnings at load', async () => {
    const missing = join(dir, 'gone');
    const config = loadConfig({ configDir: operator, shippedDir: missing });
    const warned: string[] = [];
    const log = { debug() {}, info() {}, warn: (m: string) => void warned.push(m), error() {} };
    // No modules: only what the loader found is to be logged (no store files opened).
    const runtime = new Runtime({ ...config, modules: [] }, { log });
    await runtime.close();
    assert.equal(warned.length, 1, warned.join('\n'));
    assert.ok(warned[0]!.startsWith(`mailward: the shipped defaults directory ${missing} is missing`), warned[0]);
  });

  it('a mailward command prints the warning once, then does its work', async () => {
    const missing = join(dir, 'gone');
    const run = async (shippedDir?: string) => {
      const out: string[] = [];
      const err: string[] = [];
      const code = await main(['symbols', '--json', '--config', operator], { out: (l) => void out.push(l), err: (l) => void err.push(l) }, shippedDir);
      return { code, out, err };
    };
    const broken = await run(missing);
    assert.equal(broken.code, 0);
    assert.equal(broken.err.length, 1, broken.err.join('\n'));
    assert.ok(broken.err[0]!.startsWith(`mailward symbols: warning: the shipped defaults directory ${missing} is missing`), broken.err[0]);
    assert.ok(broken.out.length > 0);
    const intact = await run();
    assert.deepEqual(intact.err, []);
  });

  it('a mailward command run with a shipped directory of its own loads its configuration over those defaults', async () => {
    // Before: main() used the directory for its warning only; the command loaded the package's config/.
    const shipped = shippedCopy();
    const ini = join(shipped, 'mailward.ini');
    writeFileSync(ini, readFileSync(ini, 'utf8').replace(/^\[scores\]$/m, '[scores]\nMIME_TEXT_UNREAD = 3.5\nGTUBE = 42'));
    const run = async (args: string[]) => {
      const out: string[] = [];
      const err: string[] = [];
      const code = await main(args, { out: (l) => void out.push(l), err: (l) => void err.push(l) }, shipped);
      assert.deepEqual(err.filter((l) => !/messages? scanned/.test(l)), []);
      return { code, out };
    };
    const symbols = await run(['symbols', '--json', '--config', operator]);
    assert.equal(symbols.code, 0);
    assert.equal(symbols.out.map((l) => JSON.parse(l) as { name: string; score: number }).find((d) => d.name === 'MIME_TEXT_UNREAD')?.score, 3.5);
    const eml = join(dir, 'gtube.eml');
    writeFileSync(eml, `From: a@example.net\r\nTo: bob@example.com\r\nSubject: t\r\n\r\n${GTUBE}\r\n`);
    writeFileSync(join(operator, 'mailward.ini'), `[main]\ndata_dir = ${dir}\n[dns]\nservers = 127.0.0.1:9\ntimeout_ms = 300\n[tracking]\nenabled = false\n`);
    const scan = await run(['scan', eml, '--config', operator, '--json']);
    const verdict = JSON.parse(scan.out[0]!) as { symbols: { name: string; score: number }[] };
    assert.equal(verdict.symbols.find((s) => s.name === 'GTUBE')?.score, 42);
  });
});
