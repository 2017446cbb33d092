import { type ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import nodemailer from 'nodemailer';
import { repoPath } from './paths';

export interface HarakaOptions {
  /** Plugins between rcpt_to.in_host_list and the test store, e.g. ['mailward/plugins/auth']. verdict and tracking are added last unless listed. */
  plugins: string[];
  /** Files written into Haraka's config/ (e.g. 'mailward.ini'); replace the harness defaults of the same name. */
  files?: Record<string, string>;
  /** Domains we accept mail for (host_list). */
  hostList?: string[];
  /** Our host name (config/me). */
  me?: string;
  env?: Record<string, string>;
  /** Add mailward/plugins/verdict and tracking automatically (default true). */
  verdict?: boolean;
  /** Plain Haraka plugins written into the instance's plugins/ (name -> code), listed first. */
  pluginFiles?: Record<string, string>;
  /** A directory to run in (to restart an instance on the same data). */
  dir?: string;
  port?: number;
}

export interface HarakaInstance {
  port: number;
  /** The Haraka process id (e.g. to read its RSS from /proc/<pid>/status). */
  pid: number;
  dir: string;
  configDir: string;
  dataDir: string;
  /** Files of the messages accepted for delivery so far, oldest first. */
  delivered(): string[];
  logs(): string;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

/** The compiled mailward (MAILWARD_DIST lets each developer test their own build). */
function distDir(): string {
  return resolve(process.env.MAILWARD_DIST ?? repoPath('dist'));
}

/**
 * node_modules/mailward in the Haraka dir: the repo's package, with dist/ pointing at the build
 * under test. A node_modules/mailward already there is used as it is (a restart on the same
 * directory, or the package the test installed itself from the packed tarball).
 */
function installMailward(dir: string): void {
  const root = join(dir, 'node_modules', 'mailward');
  if (existsSync(root)) return;
  mkdirSync(root, { recursive: true });
  copyFileSync(repoPath('package.json'), join(root, 'package.json'));
  symlinkSync(repoPath('config'), join(root, 'config'));
  symlinkSync(distDir(), join(root, 'dist'));
  for (const name of readdirSync(repoPath('plugins'))) {
    const manifest = repoPath('plugins', name, 'package.json');
    if (!existsSync(manifest)) continue;
    mkdirSync(join(root, 'plugins', name), { recursive: true });
    copyFileSync(manifest, join(root, 'plugins', name, 'package.json'));
  }
}

/** The harness's own Haraka plugins in the instance's plugins/ (kept where a restart finds them). */
function installTestPlugins(dir: string): void {
  // Haraka's own rDNS look-up uses the system resolver, i.e. traffic off this
  // machine; tests keep DNS on loopback, so this answers it locally (mailward's
  // reputation checks resolve PTRs themselves through the configured servers).
  writeFileSync(
    join(dir, 'plugins', 'test_no_system_rdns.js'),
    "exports.hook_lookup_rdns = function (next) { next(906, 'NXDOMAIN'); };\n",
  );
  const demoPlugins = repoPath('demo', 'haraka', 'plugins');
  for (const name of readdirSync(demoPlugins)) {
    if (!existsSync(join(dir, 'plugins', name))) symlinkSync(join(demoPlugins, name), join(dir, 'plugins', name));
  }
}

/** Starts a real Haraka on 127.0.0.1 with the given plugins; resolves once it accepts connections. */
export async function startHaraka(options: HarakaOptions): Promise<HarakaInstance> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'mailward-haraka-'));
  const configDir = join(dir, 'config');
  const dataDir = join(dir, 'data');
  mkdirSync(configDir, { recursive: true });
  mkdirSync(join(dir, 'plugins'), { recursive: true });
  mkdirSync(dataDir, { recursive: true });
  installMailward(dir);
  installTestPlugins(dir);
  // What `haraka -i` would install: Haraka's own defaults (connection.ini etc.).
  const harakaDefaults = repoPath('node_modules', 'Haraka', 'config');
  for (const name of readdirSync(harakaDefaults)) {
    if (!existsSync(join(configDir, name))) cpSync(join(harakaDefaults, name), join(configDir, name), { recursive: true });
  }

  for (const [name, code] of Object.entries(options.pluginFiles ?? {})) writeFileSync(join(dir, 'plugins', `${name}.js`), code);
  const port = options.port ?? (await freePort());
  const plugins = [...options.plugins];
  if (options.verdict !== false) {
    if (!plugins.includes('mailward/plugins/tracking')) plugins.push('mailward/plugins/tracking');
    if (!plugins.includes('mailward/plugins/verdict')) plugins.push('mailward/plugins/verdict');
  }
  const defaults: Record<string, string> = {
    'smtp.ini': `[main]\nlisten=127.0.0.1:${port}\nnodes=0\n\n[headers]\nmax_lines=1000\nmax_received=100\n`,
    'plugins': ['test_no_system_rdns', ...Object.keys(options.pluginFiles ?? {}), 'rcpt_to.in_host_list', ...plugins, 'mailward_demo_store'].join('\n') + '\n',
    'host_list': (options.hostList ?? ['example.com']).join('\n') + '\n',
    'me': `${options.me ?? 'mx.example.com'}\n`,
    'log.ini': '[main]\nlevel=info\ntimestamps=false\nformat=default\n',
    // DNS stays on loopback in tests: nothing answers on port 9, so look-ups fail fast.
    'mailward.ini': '[main]\ndata_dir = data\n\n[dns]\nservers = 127.0.0.1:9\ntimeout_ms = 300\n',
  };
  for (const [name, content] of Object.entries({ ...defaults, ...(options.files ?? {}) })) writeFileSync(join(configDir, name), content);

  let output = '';
  const child: ChildProcess = spawn(process.execPath, [repoPath('node_modules', 'Haraka', 'bin', 'haraka'), '-c', dir], {
    cwd: dir,
    env: { ...process.env, ...(options.env ?? {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  let exited = false;
  child.on('exit', () => (exited = true));

  const deadline = Date.now() + 20_000;
  for (;;) {
    if (exited) throw new Error(`Haraka exited during start-up:\n${output.slice(-4000)}`);
    if (await canConnect(port)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`Haraka did not listen on 127.0.0.1:${port} within 20 s:\n${output.slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  return {
    port,
    pid: child.pid!,
    dir,
    configDir,
    dataDir,
    delivered: () => {
      const mailbox = join(dataDir, 'mailbox');
      if (!existsSync(mailbox)) return [];
      // In delivery order (file names are queue ids, which do not sort by time).
      return readdirSync(mailbox)
        .filter((f) => f.endsWith('.eml'))
        .map((f) => ({ path: join(mailbox, f), at: statSync(join(mailbox, f)).mtimeMs }))
        .sort((a, b) => a.at - b.at || a.path.localeCompare(b.path))
        .map((f) => f.path);
    },
    logs: () => output,
    stop: async () => {
      if (exited) return;
      await new Promise<void>((done) => {
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        child.once('exit', () => {
          clearTimeout(timer);
          done();
        });
        child.kill('SIGTERM');
      });
    },
  };
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export function canConnect(port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      done(true);
    });
    socket.once('error', () => done(false));
  });
}

export interface SendOptions {
  port: number;
  from: string;
  to: string[];
  raw: string | Buffer;
  helo?: string;
  /** Any 127.x.y.z, so the server sees a different client IP. */
  localAddress?: string;
  auth?: { user: string; pass: string };
}

export interface SendResult {
  code: number;
  response: string;
  accepted: string[];
  rejected: string[];
}

/** Sends one message over SMTP and reports the server's final reply (never throws on an SMTP refusal). */
export async function sendMail(options: SendOptions): Promise<SendResult> {
  const transport = nodemailer.createTransport({
    host: '127.0.0.1',
    port: options.port,
    secure: false,
    ignoreTLS: true,
    name: options.helo ?? 'client.example.net',
    localAddress: options.localAddress,
    auth: options.auth,
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 30_000,
  } as any);
  try {
    const info: any = await transport.sendMail({ envelope: { from: options.from, to: options.to }, raw: options.raw });
    const match = /^(\d{3})/.exec(info.response ?? '');
    return { code: match ? Number(match[1]) : 250, response: info.response ?? '', accepted: info.accepted ?? [], rejected: info.rejected ?? [] };
  } catch (err: any) {
    if (!err.responseCode) throw err;
    return { code: err.responseCode, response: err.response ?? err.message, accepted: [], rejected: err.rejected ?? options.to };
  } finally {
    transport.close();
  }
}

/** A small, valid RFC 5322 message. */
export function simpleMessage(fields: { from?: string; to?: string; subject?: string; body?: string; headers?: Record<string, string>; messageId?: string } = {}): string {
  const lines = [
    `From: ${fields.from ?? 'Alice <alice@example.net>'}`,
    `To: ${fields.to ?? 'bob@example.com'}`,
    `Subject: ${fields.subject ?? 'Hello'}`,
    `Date: ${new Date().toUTCString()}`,
    `Message-ID: ${fields.messageId ?? `<${Date.now()}.${Math.random().toString(36).slice(2)}@example.net>`}`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    ...Object.entries(fields.headers ?? {}).map(([k, v]) => `${k}: ${v}`),
    '',
    fields.body ?? 'Hello Bob,\r\n\r\nSee you tomorrow.\r\n',
  ];
  return lines.join('\r\n');
}

export function readDelivered(file: string): string {
  return readFileSync(file, 'utf8');
}

export function removeDir(dir: string): void {
  // In cluster mode a worker may still be writing into the directory for a moment after the
  // master exited (ENOTEMPTY): rmSync retries.
  rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
}
