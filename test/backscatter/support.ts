import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createClient } from 'redis';
import { createMailward, type Mailward } from '../../lib';
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

export function outbound(fields: { mid?: string; date?: string; from?: string; subject?: string } = {}): string {
  return [
    `From: ${fields.from ?? 'Alice <alice@example.com>'}`,
    'To: nobody@remote.example',
    `Subject: ${fields.subject ?? 'Quarterly report'}`,
    `Date: ${fields.date ?? 'Mon, 10 Mar 2025 09:14:00 +0000'}`,
    ...(fields.mid === '' ? [] : [`Message-ID: ${fields.mid ?? '<original.1@example.com>'}`]),
    '',
    'Numbers attached.',
    '',
  ].join('\r\n');
}

export interface TestMailward {
  mw: Mailward;
  dir: string;
  clock: { now: number };
  prefix: string;
  close(): Promise<void>;
}

export function uniquePrefix(what: string): string {
  return `mwtest:backscatter:${what}:${randomBytes(4).toString('hex')}:`;
}

/** A library instance with only the backscatter module, an injectable clock and the given ini text. */
export function testMailward(backscatterIni: string, options: { backend?: 'memory' | 'redis'; prefix?: string; start?: number } = {}): TestMailward {
  const dir = mkdtempSync(join(tmpdir(), 'mw-backscatter-'));
  const prefix = options.prefix ?? uniquePrefix('lib');
  writeFileSync(join(dir, 'mailward.ini'), `[main]\nnode_name = test-node\ndata_dir = ${dir}\n[state]\nbackend = ${options.backend ?? 'memory'}\nprefix = ${prefix}\n[tracking]\nenabled = false\n`);
  writeFileSync(join(dir, 'mailward.backscatter.ini'), backscatterIni);
  const clock = { now: options.start ?? Date.UTC(2025, 2, 10, 9, 15) };
  const mw = createMailward({ configDir: dir, clock: () => clock.now, modules: ['backscatter'] });
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

export async function deleteRedisKeys(prefix: string): Promise<number> {
  const client = createClient({ url: 'redis://127.0.0.1:6379' });
  await client.connect();
  let n = 0;
  for await (const batch of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 })) {
    const keys = batch as unknown as string[];
    if (keys.length) n += await client.del(keys);
  }
  await client.quit();
  return n;
}

export async function countRedisKeys(prefix: string): Promise<number> {
  const client = createClient({ url: 'redis://127.0.0.1:6379' });
  await client.connect();
  let n = 0;
  for await (const batch of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 })) n += (batch as unknown as string[]).length;
  await client.quit();
  return n;
}
