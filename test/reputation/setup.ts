import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deleteRedisKeys, REDIS_URL, uniqueRedisPrefix } from '../support/redis';
import { createMailward, type Mailward } from '../../lib';
import type { Logger } from '../../lib/checks/types';


export function uniquePrefix(name: string): string {
  return uniqueRedisPrefix(name);
}


export interface ConfigOptions {
  dnsServer: string;
  backend?: 'memory' | 'redis';
  prefix?: string;
  reputation?: string;
  timeoutMs?: number;
}

/** A config dir with mailward.ini (DNS on the test server, chosen state backend) and mailward.reputation.ini. */
export function writeConfig(options: ConfigOptions): string {
  const dir = mkdtempSync(join(tmpdir(), 'mailward-rep-'));
  writeFileSync(
    join(dir, 'mailward.ini'),
    [
      '[dns]',
      `servers = ${options.dnsServer}`,
      `timeout_ms = ${options.timeoutMs ?? 400}`,
      '[state]',
      `backend = ${options.backend ?? 'memory'}`,
      `redis_url = ${REDIS_URL}`,
      `prefix = ${options.prefix ?? 'mwtest:unused:'}`,
      '[tracking]',
      'enabled = false',
      '',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'mailward.reputation.ini'), options.reputation ?? '');
  return dir;
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** A clock tests move by hand. */
export function manualClock(start = Date.UTC(2025, 0, 6, 12, 30, 0)) {
  let now = start;
  const clock = () => now;
  return Object.assign(clock, {
    advance(ms: number) {
      now += ms;
    },
    set(t: number) {
      now = t;
    },
  });
}

export function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    debug: (m) => lines.push(`debug ${m}`),
    info: (m) => lines.push(`info ${m}`),
    warn: (m) => lines.push(`warn ${m}`),
    error: (m) => lines.push(`error ${m}`),
  };
}

export function reputationOnly(configDir: string, clock?: () => number, log?: Logger): Mailward {
  return createMailward({ configDir, modules: ['reputation'], clock, log });
}

export { deleteRedisKeys, REDIS_URL };
