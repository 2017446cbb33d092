import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { countRedisKeys, deleteRedisKeys, uniqueRedisPrefix } from '../support/redis';
import type { ScanResult } from '../../lib';
import { backscatterModule } from '../../lib/checks/backscatter';
import { builtinModule } from '../../lib/checks/builtin';
import type { MailwardConfig } from '../../lib/config/load';
import { parseIni } from '../../lib/config/ini';
import { IniReader } from '../../lib/config/reader';
import { parseSharedSettings } from '../../lib/config/shared';
import { createContext, type ContextInit, type MessageContext } from '../../lib/message';
import { Runtime } from '../../lib/runtime';
import { SymbolTable } from '../../lib/score/symbol-table';
import { repoPath } from '../support/paths';

export const KEY_A = 'ka:secret-number-one-0123456789';
export const KEY_B = 'kb:secret-number-two-9876543210';

export interface BounceFields {
  mid?: string;
  date?: string;
  from?: string;
  subject?: string;
  /** A whole "X-Mailward-Sig: ..." line, or nothing. */
  sigLine?: string;
}

/** A bounce fixture with the embedded original's fields filled in. */
export function bounce(name: string, fields: BounceFields = {}): string {
  const text = readFileSync(repoPath('test', 'fixtures', 'backscatter', name), 'utf8');
  return text
    .replace(/^\{\{SIGLINE\}\}\n/m, fields.sigLine ? `${fields.sigLine}\n` : '')
    .replaceAll('{{MID}}', fields.mid ?? '<original.1@example.com>')
    .replaceAll('{{DATE}}', fields.date ?? 'Mon, 10 Mar 2025 09:14:00 +0000')
    .replaceAll('{{FROM}}', fields.from ?? 'Alice <alice@example.com>')
    .replaceAll('{{SUBJECT}}', fields.subject ?? 'Quarterly report')
    .replace(/\r?\n/g, '\r\n');
}

/** The raw bytes of a fixture (for the 8-bit ones). */
export function fixtureBytes(name: string): Buffer {
  return readFileSync(repoPath('test', 'fixtures', 'backscatter', name));
}

export function outbound(fields: { mid?: string; date?: string; from?: string; subject?: string; replyTo?: string } = {}): string {
  return [
    `From: ${fields.from ?? 'Alice <alice@example.com>'}`,
    ...(fields.replyTo ? [`Reply-To: ${fields.replyTo}`] : []),
    'To: nobody@remote.example',
    `Subject: ${fields.subject ?? 'Quarterly report'}`,
    `Date: ${fields.date ?? 'Mon, 10 Mar 2025 09:14:00 +0000'}`,
    ...(fields.mid === '' ? [] : [`Message-ID: ${fields.mid ?? '<original.1@example.com>'}`]),
    '',
    'Numbers attached.',
    '',
  ].join('\r\n');
}

/** Scans like createMailward().scan, with only the builtin and backscatter modules. */
export interface BackscatterOnly {
  runtime: Runtime;
  /** A context made by the caller keeps its notes (e.g. auth results). */
  scan(init: ContextInit | MessageContext): Promise<ScanResult>;
  close(): Promise<void>;
}

/**
 * A runtime with just these two modules, configured from ini texts, so these
 * tests depend on no other module's configuration.
 */
export function backscatterRuntime(sharedIni: string, backscatterIni: string, baseDir: string, clock: () => number): BackscatterOnly {
  const sharedReader = new IniReader('mailward.ini', parseIni(sharedIni, 'mailward.ini'));
  const shared = parseSharedSettings(sharedReader, baseDir);
  const reader = new IniReader('mailward.backscatter.ini', parseIni(backscatterIni, 'mailward.backscatter.ini'));
  const parsed = backscatterModule.parseSettings(reader, shared);
  reader.finish();
  const symbols = new SymbolTable([...builtinModule.symbols, ...backscatterModule.symbols, ...(parsed.symbols ?? [])]);
  symbols.applyOverrides(Object.fromEntries(sharedReader.section('scores').entries()), 'mailward.ini');
  const config: MailwardConfig = {
    shared,
    symbols,
    modules: [
      { module: builtinModule, settings: null },
      { module: backscatterModule, settings: parsed.settings },
    ],
  };
  const runtime = new Runtime(config, { clock });
  const modules = ['builtin', 'backscatter'];
  return {
    runtime,
    async scan(init) {
      const ctx = 'notes' in init ? init : createContext(init);
      const ledger = runtime.newLedger();
      for (const phase of ['connect', 'helo', 'mail', 'rcpt', 'data'] as const) await runtime.runPhase(modules, phase, ctx, ledger);
      const verdict = runtime.decide(ctx, ledger);
      return { verdict, row: undefined as never, refusedRecipients: {}, refusedCount: 0, context: ctx };
    },
    close: () => runtime.close(),
  };
}

export interface TestMailward {
  mw: BackscatterOnly;
  dir: string;
  clock: { now: number };
  prefix: string;
  close(): Promise<void>;
}

export function uniquePrefix(what: string): string {
  return uniqueRedisPrefix('backscatter', what);
}

/** A library instance with only the backscatter module, an injectable clock and the given ini text. */
export function testMailward(backscatterIni: string, options: { backend?: 'memory' | 'redis'; prefix?: string; start?: number } = {}): TestMailward {
  const dir = mkdtempSync(join(tmpdir(), 'mw-backscatter-'));
  const prefix = options.prefix ?? uniquePrefix('lib');
  const sharedIni = `[main]\nnode_name = test-node\ndata_dir = ${dir}\n[state]\nbackend = ${options.backend ?? 'memory'}\nprefix = ${prefix}\n[tracking]\nenabled = false\n`;
  const clock = { now: options.start ?? Date.UTC(2025, 2, 10, 9, 15) };
  const mw = backscatterRuntime(sharedIni, backscatterIni, dir, () => clock.now);
  return {
    mw,
    dir,
    clock,
    prefix,
    async close() {
      await mw.close();
      rmSync(dir, { recursive: true, force: true });
      if (options.backend === 'redis') await deleteRedisKeys(prefix);
    },
  };
}



export { countRedisKeys, deleteRedisKeys };
