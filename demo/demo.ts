// `npm start`: a Haraka on 127.0.0.1:2525 with every mailward plugin on
// embedded defaults (in-process state, SQLite tracking, file quarantine): no
// Redis, no PostgreSQL. Accepted mail is kept as files instead of delivered.
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../lib/util/package-root';

const root = packageRoot();
const port = Number(process.env.MAILWARD_DEMO_PORT ?? 2525);
const dir = join(root, '.demo');
const config = join(dir, 'config');
const data = join(dir, 'data');

const MAILWARD_PLUGINS = ['reputation', 'rules', 'backscatter', 'auth', 'antispoof', 'content', 'outbound', 'tracking', 'verdict'];

function setUp(): string[] {
  mkdirSync(config, { recursive: true });
  mkdirSync(join(dir, 'plugins'), { recursive: true });
  mkdirSync(join(dir, 'node_modules'), { recursive: true });
  mkdirSync(join(data, 'mailbox'), { recursive: true });
  // Haraka's own defaults, as `haraka -i` would install them.
  const harakaDefaults = join(root, 'node_modules', 'Haraka', 'config');
  for (const name of readdirSync(harakaDefaults)) if (!existsSync(join(config, name))) cpSync(join(harakaDefaults, name), join(config, name), { recursive: true });
  // This checkout, installed as the operator would install the npm package.
  const link = join(dir, 'node_modules', 'mailward');
  rmSync(link, { force: true, recursive: true });
  symlinkSync(root, link);
  const store = join(dir, 'plugins', 'mailward_demo_store');
  rmSync(store, { force: true, recursive: true });
  symlinkSync(join(root, 'demo', 'haraka', 'plugins', 'mailward_demo_store'), store);

  const plugins = MAILWARD_PLUGINS.filter((p) => existsSync(join(root, 'plugins', p, 'package.json')));
  writeFileSync(join(config, 'smtp.ini'), `[main]\nlisten=127.0.0.1:${port}\nnodes=0\n\n[headers]\nmax_lines=1000\n`);
  writeFileSync(join(config, 'host_list'), 'example.com\n');
  writeFileSync(join(config, 'me'), 'mx.example.com\n');
  writeFileSync(join(config, 'plugins'), ['rcpt_to.in_host_list', ...plugins.map((p) => `mailward/plugins/${p}`), 'mailward_demo_store'].join('\n') + '\n');
  // Operators' overrides go here; everything else comes from the shipped defaults.
  if (!existsSync(join(config, 'mailward.ini'))) writeFileSync(join(config, 'mailward.ini'), '; mailward demo: only what differs from the shipped defaults\n[main]\ndata_dir = data\n');
  rmSync(join(config, 'tls.ini'), { force: true });
  return plugins;
}

const plugins = setUp();
const haraka = spawn(process.execPath, [join(root, 'node_modules', 'Haraka', 'bin', 'haraka'), '-c', dir], { cwd: dir, stdio: ['ignore', 'pipe', 'inherit'] });
let announced = false;
haraka.stdout!.on('data', (chunk: Buffer) => {
  const text = chunk.toString();
  if (process.env.MAILWARD_DEMO_VERBOSE) process.stdout.write(text);
  if (!announced && text.includes('Listening on')) {
    announced = true;
    console.log(`
mailward demo: Haraka is listening on 127.0.0.1:${port} with ${plugins.map((p) => `mailward/plugins/${p}`).join(', ')}
  accepts mail for any address @example.com
  accepted messages are kept in   ${join(data, 'mailbox')}
  quarantined messages in         ${join(data, 'quarantine')}
  tracking rows (SQLite) in       ${join(data, 'tracking.sqlite')}
  configuration (edit and it reloads): ${config}

Send it a test message (in another terminal):
  npm run demo:send                  a clean message
  npm run demo:send -- --gtube       the GTUBE test string: refused with 550 and a ref
Then look it up:
  npx mailward trace --config ${config}
  npx mailward explain REF --config ${config}

Ctrl-C stops it. MAILWARD_DEMO_VERBOSE=1 shows Haraka's log.`);
  }
});
haraka.on('exit', (code) => {
  if (!announced) console.error(`Haraka exited before listening (code ${code}); run with MAILWARD_DEMO_VERBOSE=1 to see why`);
  process.exit(code ?? 1);
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => haraka.kill('SIGTERM'));
