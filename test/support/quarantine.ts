import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../lib/cli/main';
import type { CliIO } from '../../lib/cli/types';
import { closeSharedIndexes, type QuarantineEntry } from '../../lib/quarantine';
import { startSmtpSink, type SinkOptions, type SmtpSink } from './smtp-sink';

/** A small held message, and its entry: what the quarantine tests put and read back. */
export const RAW = Buffer.from('From: Bob <bob@partner.test>\r\nTo: alice@example.com\r\nSubject: hi\r\n\r\nHello Alice\r\n');

export function entry(ref: string, fields: Partial<QuarantineEntry> = {}): QuarantineEntry {
  return {
    ref,
    time: new Date().toISOString(),
    mailFrom: 'bob@partner.test',
    rcptTo: ['alice@example.com'],
    subject: `subject ${ref}`,
    remoteIp: '192.0.2.1',
    score: 9,
    reason: 'score 9 reached the quarantine threshold 8',
    symbols: [],
    ...fields,
  };
}

/** A CLI io that keeps what was written, for the quarantine command tests. */
export function capture(): CliIO & { outText(): string; errText(): string } {
  const out: string[] = [];
  const err: string[] = [];
  return { out: (l) => out.push(l), err: (l) => err.push(l), outText: () => out.join('\n'), errText: () => err.join('\n') };
}

/** A stand-in MTA for releases, on a free port in [base, base + 1000): each test file its own range. */
export async function releaseSink(base: number, options: SinkOptions = {}): Promise<SmtpSink> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await startSmtpSink('mta.test', { ...options, port: base + Math.floor(Math.random() * 1000) });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt > 20) throw err;
    }
  }
}

export interface QuarantineWorld {
  base: string;
  configDir: string;
  /** The quarantine directory the CLI reads (data/quarantine under base). */
  qdir: string;
  mta: SmtpSink;
  cli(...argv: string[]): Promise<{ code: number; out: string; err: string }>;
}

/**
 * Registers beforeEach/afterEach for a describe block: a fresh config
 * directory whose releases go to a stand-in MTA on ports from `portBase`,
 * and the mailward CLI run against it.
 */
export function quarantineWorld(name: string, portBase: number): QuarantineWorld {
  const world = {} as QuarantineWorld;
  beforeEach(async () => {
    world.base = mkdtempSync(join(tmpdir(), `mailward-${name}-`));
    world.configDir = join(world.base, 'config');
    world.qdir = join(world.base, 'data', 'quarantine');
    mkdirSync(world.configDir);
    world.mta = await releaseSink(portBase);
    writeFileSync(join(world.configDir, 'mailward.ini'), `[quarantine]\nrelease_port = ${world.mta.port}\n`);
  });
  afterEach(async () => {
    await world.mta.stop();
    await closeSharedIndexes();
    rmSync(world.base, { recursive: true, force: true });
  });
  world.cli = async (...argv) => {
    const io = capture();
    const code = await main([...argv, '--config', world.configDir], io);
    return { code, out: io.outText(), err: io.errText() };
  };
  return world;
}
