import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { builtinModules } from 'node:module';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { GTUBE } from '../lib/checks/builtin';
import { startDnsServer, type TestDnsServer } from './support/dns-server';
import { type HarakaInstance, removeDir, sendMail, simpleMessage, startHaraka } from './support/haraka';
import { repoPath } from './support/paths';
import { waitFor } from './support/wait';

// What an operator gets from `npm install mailward`: the tarball `npm pack` makes from package.json
// "files", installed into a Haraka directory with nothing of the repository around it. Every other
// test runs mailward from the repository, where a file left out of the package, a dependency
// declared only under devDependencies, or a path computed from the repository root still works.

/** Wording that only the shipped content rules score (CONTENT_LOTTERY_WIN). */
const LOTTERY = 'Congratulations, you have won the national lottery jackpot of $2,000,000.';

interface PackResult {
  filename: string;
  files: { path: string; mode: number }[];
}

/** The plugin names the README's "Use it in Haraka" section tells an operator to list, in order. */
function readmePluginList(): string[] {
  const readme = readFileSync(repoPath('README.md'), 'utf8');
  const section = /^## Use it in Haraka\n([\s\S]*?)(?=^## )/m.exec(readme)?.[1];
  assert.ok(section, 'README.md has a "## Use it in Haraka" section');
  const blocks = [...section.matchAll(/^```[^\n]*\n([\s\S]*?)^```/gm)].map((m) => m[1]!.trim().split('\n'));
  const list = blocks.find((lines) => lines.every((l) => l.startsWith('mailward/plugins/')));
  assert.ok(list, 'the section has a config/plugins block of mailward/plugins/<name> lines');
  return list;
}

/** Every Haraka plugin the repository has (a folder under plugins/ with a package.json). */
function repoPlugins(): string[] {
  return readdirSync(repoPath('plugins')).filter((name) => existsSync(repoPath('plugins', name, 'package.json')));
}

/** Compiled files with no source beside them: left over from an older build, they would be published too. */
function staleBuildOutput(files: string[]): string[] {
  return files
    .filter((f) => /^dist\/(lib|plugins)\/.*\.js$/.test(f))
    .filter((f) => !existsSync(repoPath(f.slice('dist/'.length).replace(/\.js$/, '.ts'))));
}

/** The packages a compiled file requires by bare name (tsc emits every import as require("...")). */
function requiredPackages(code: string): string[] {
  const names = [...code.matchAll(/\brequire\(["']([^"'./][^"']*)["']\)/g)].map((m) => m[1]!);
  return names
    .filter((n) => !n.startsWith('node:') && !builtinModules.includes(n))
    .map((n) => n.split('/').slice(0, n.startsWith('@') ? 2 : 1).join('/'));
}

/** The packaged `mailward` command, run with node from outside the Haraka directory. */
function runPackagedCli(packageDir: string, args: string[], cwd: string): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [join(packageDir, 'bin', 'mailward'), ...args], {
    cwd,
    encoding: 'utf8',
    timeout: 20_000,
    env: { ...process.env, NODE_PATH: '' },
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('the published package: npm pack, installed into a Haraka directory, runs every plugin', function () {
  this.timeout(60_000);
  let work: string;
  let haraka: HarakaInstance | undefined;
  let dns: TestDnsServer;
  let packed: PackResult;
  let harakaDir: string;
  let packageDir: string;
  const files = (): Set<string> => new Set(packed.files.map((f) => f.path));

  before(async () => {
    assert.ok(existsSync(repoPath('dist', 'lib', 'index.js')), 'dist/ is built (npm test builds first)');
    work = mkdtempSync(join(tmpdir(), 'mailward-package-'));
    // --ignore-scripts: "prepare" would rebuild dist/ (the test runs on the build it was given).
    const pack = spawnSync('npm', ['pack', '--json', '--ignore-scripts', '--offline', '--pack-destination', work], {
      cwd: repoPath(),
      encoding: 'utf8',
      timeout: 30_000,
      env: { ...process.env, npm_config_update_notifier: 'false', npm_config_audit: 'false', npm_config_fund: 'false' },
    });
    assert.equal(pack.status, 0, `npm pack failed:\n${pack.stderr}`);
    packed = (JSON.parse(pack.stdout) as PackResult[])[0]!;

    // What `npm install mailward` leaves in the Haraka directory, minus the download.
    harakaDir = join(work, 'haraka');
    packageDir = join(harakaDir, 'node_modules', 'mailward');
    mkdirSync(packageDir, { recursive: true });
    const untar = spawnSync('tar', ['-xzf', join(work, packed.filename), '-C', packageDir, '--strip-components=1'], { encoding: 'utf8' });
    assert.equal(untar.status, 0, untar.stderr);
    // Only the declared runtime dependencies are resolvable (offline: the repository's copies), so
    // a require of anything else, e.g. a devDependency, fails here as it would for an operator.
    const manifest = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    for (const name of Object.keys(manifest.dependencies ?? {})) {
      const link = join(harakaDir, 'node_modules', name);
      mkdirSync(dirname(link), { recursive: true });
      symlinkSync(repoPath('node_modules', name), link, 'dir');
    }

    dns = await startDnsServer();
  });

  after(async () => {
    await haraka?.stop();
    await dns?.stop();
    if (work) removeDir(work);
  });

  it('ships the runtime files and none of the repository\'s own', () => {
    const shipped = files();
    for (const prefix of ['test/', 'bench/', 'demo/', '.build/', '.ci/', 'lib/', 'node_modules/', 'dist/test/', 'dist/bench/', 'dist/demo/']) {
      const leaked = [...shipped].filter((f) => f.startsWith(prefix));
      assert.deepEqual(leaked, [], `${prefix} is not published`);
    }
    // What the manifest points at: main, types, each bin.
    const manifest = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')) as { main: string; types: string; bin: Record<string, string> };
    for (const required of ['package.json', 'README.md', manifest.main, manifest.types, ...Object.values(manifest.bin)]) {
      assert.ok(shipped.has(posix.normalize(required)), `${required} is published`);
    }
    assert.ok(shipped.has('bin/mailward'), 'bin/mailward is published');
    // The shipped defaults every loader falls back to: each file in config/.
    for (const name of readdirSync(repoPath('config'))) assert.ok(shipped.has(`config/${name}`), `config/${name} is published`);
    // Each plugin's package.json and the file its "main" names.
    for (const name of repoPlugins()) {
      assert.ok(shipped.has(`plugins/${name}/package.json`), `plugins/${name}/package.json is published`);
      const { main } = JSON.parse(readFileSync(join(packageDir, 'plugins', name, 'package.json'), 'utf8')) as { main: string };
      const entry = posix.normalize(posix.join('plugins', name, main));
      assert.ok(shipped.has(entry), `plugin ${name}'s main ${entry} is published`);
    }
    // Every CLI command (loaded by file name from dist/lib/cli/commands).
    for (const name of readdirSync(repoPath('lib', 'cli', 'commands')).filter((f) => f.endsWith('.ts'))) {
      assert.ok(shipped.has(`dist/lib/cli/commands/${name.replace(/\.ts$/, '.js')}`), `CLI command ${name} is published`);
    }
    // Every page the docs link or the CLI points to.
    for (const name of readdirSync(repoPath('docs')).filter((f) => f.endsWith('.md'))) assert.ok(shipped.has(`docs/${name}`), `docs/${name} is published`);
    assert.deepEqual(staleBuildOutput([...shipped]), [], 'dist/ holds no stale build output (npm run clean && npm run build)');
  });

  it('declares every package its code requires as a runtime dependency, not only the ones a default run loads', () => {
    const { dependencies = {} } = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    const undeclared = new Set<string>();
    for (const file of packed.files.map((f) => f.path).filter((f) => f.endsWith('.js') || f === 'bin/mailward')) {
      for (const name of requiredPackages(readFileSync(join(packageDir, file), 'utf8'))) {
        if (!(name in dependencies)) undeclared.add(`${name} (${file})`);
      }
    }
    assert.deepEqual([...undeclared], []);
  });

  it('the README lists every plugin for config/plugins, verdict last', () => {
    const listed = readmePluginList().map((p) => p.slice('mailward/plugins/'.length));
    assert.deepEqual([...listed].sort(), repoPlugins().sort());
    assert.equal(listed.at(-1), 'verdict');
  });

  it('the installed library loads and scans with only its declared dependencies', () => {
    const script = `
      const { createMailward } = require('mailward');
      const mailward = createMailward({ configDir: ${JSON.stringify(join(harakaDir, 'config-lib'))} });
      const raw = 'From: a@example.net\\r\\nTo: b@example.com\\r\\nSubject: t\\r\\n\\r\\n' + ${JSON.stringify(GTUBE)} + '\\r\\n';
      mailward.scan({ ip: '127.0.0.1', helo: 'client.example.net', mailFrom: 'a@example.net', rcptTo: ['b@example.com'], raw })
        .then(async ({ verdict }) => { console.log(verdict.action); await mailward.close(); });
    `;
    mkdirSync(join(harakaDir, 'config-lib'), { recursive: true });
    writeFileSync(join(harakaDir, 'config-lib', 'mailward.ini'), `[main]\ndata_dir = data-lib\n[dns]\nservers = ${dns.server}\ntimeout_ms = 500\n[tracking]\nenabled = false\n`);
    const result = spawnSync(process.execPath, ['-e', script], { cwd: harakaDir, encoding: 'utf8', timeout: 20_000, env: { ...process.env, NODE_PATH: '' } });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout.trim(), 'reject');
  });

  it('the command runs as npm links it: node_modules/.bin/mailward, executed through the symlink by its shebang', () => {
    const { bin } = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    const link = join(harakaDir, 'node_modules', '.bin', 'mailward');
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(join('..', 'mailward', bin.mailward!), link);
    chmodSync(join(packageDir, bin.mailward!), 0o755); // as npm's bin linking does
    const result = spawnSync(link, ['help'], {
      cwd: work,
      encoding: 'utf8',
      timeout: 20_000,
      env: { ...process.env, NODE_PATH: '', PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}` },
    });
    assert.equal(result.status, 0, `${result.error ?? ''}${result.stderr}`);
    assert.match(result.stdout, /^ {2}trace +list tracked SMTP transactions/m);
  });

  it('its type declarations compile in a strict TypeScript consumer without mailward\'s devDependencies', function () {
    this.timeout(60_000);
    const consumer = join(work, 'consumer');
    mkdirSync(join(consumer, 'node_modules', '@types'), { recursive: true });
    symlinkSync(packageDir, join(consumer, 'node_modules', 'mailward'), 'dir');
    // The consumer's own Node types; every other type comes with the package or its dependencies.
    symlinkSync(repoPath('node_modules', '@types', 'node'), join(consumer, 'node_modules', '@types', 'node'), 'dir');
    writeFileSync(join(consumer, 'index.ts'), [
      "import { createMailward, ConfigError, type ScanResult, type TrackingRow } from 'mailward';",
      'export async function check(raw: Buffer): Promise<ScanResult> {',
      "  const mailward = createMailward({ configDir: '/etc/mailward' });",
      "  const result = await mailward.scan({ ip: '192.0.2.1', helo: 'client.example.net', mailFrom: 'a@example.net', rcptTo: ['b@example.com'], raw });",
      '  const row: TrackingRow = result.row;',
      "  if (row.ref !== result.verdict.ref || !(new ConfigError('f', 's', 'k', 'm') instanceof Error)) throw new Error('unreachable');",
      '  await mailward.close();',
      '  return result;',
      '}',
      '',
    ].join('\n'));
    writeFileSync(join(consumer, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { strict: true, module: 'commonjs', moduleResolution: 'node', target: 'ES2022', types: ['node'], noEmit: true, skipLibCheck: false },
      files: ['index.ts'],
    }));
    const tsc = spawnSync(process.execPath, [repoPath('node_modules', 'typescript', 'bin', 'tsc'), '-p', consumer], { cwd: consumer, encoding: 'utf8', timeout: 50_000 });
    assert.equal(tsc.status, 0, `${tsc.stdout}${tsc.stderr}`);
  });

  it('a real Haraka runs every README plugin from the package on its shipped defaults: 250, GTUBE 550 with ref, rows via the packaged CLI', async () => {
    haraka = await startHaraka({
      dir: harakaDir,
      plugins: readmePluginList(),
      env: { NODE_PATH: '' },
      // Only what the test must set: loopback DNS and a fast tracking flush; the rest is shipped defaults.
      files: { 'mailward.ini': `[main]\ndata_dir = data\n[dns]\nservers = ${dns.server}\ntimeout_ms = 500\n[tracking]\nflush_interval_ms = 50\n` },
    });
    // Loaded in the documented order (from node_modules/mailward: nothing else on Haraka's search path has them).
    const loaded = [...haraka.logs().matchAll(/\[plugins\] loading (mailward\/\S+)/g)].map((m) => m[1]);
    assert.deepEqual(loaded, readmePluginList());

    const plain = await sendMail({ port: haraka.port, from: 'alice@example.net', to: ['bob@example.com'], raw: simpleMessage() });
    assert.equal(plain.code, 250, `${plain.response}\n${haraka.logs().slice(-3000)}`);
    const delivered = readFileSync(haraka.delivered().at(-1)!, 'utf8');
    const plainRef = /^X-Mailward-Ref: ([0-9A-Z]{10})$/m.exec(delivered)?.[1];
    assert.ok(plainRef, 'the accepted message carries X-Mailward-Ref');

    const spam = await sendMail({ port: haraka.port, from: 'mallory@example.net', to: ['bob@example.com'], raw: simpleMessage({ body: `${LOTTERY}\r\n${GTUBE}\r\n` }) });
    assert.equal(spam.code, 550, spam.response);
    const spamRef = /\(ref ([0-9A-Z]{10}): [^)]*\bGTUBE 1000\b/.exec(spam.response)?.[1];
    assert.ok(spamRef, `the 550 names its ref and the GTUBE symbol: ${spam.response}`);
    // A symbol only the shipped config/mailward.content.rules defines: the package's defaults were read.
    assert.match(spam.response, /\bCONTENT_LOTTERY_WIN 2\b/);
    // The checks resolved through the configured (loopback) server, not the system's.
    assert.ok(dns.queries.length > 0, 'mailward looked names up through [dns] servers');

    // The packaged command, from elsewhere, reads the rows the plugins wrote under the Haraka directory.
    const rows = await waitFor('both rows in the packaged `mailward trace`', () => {
      const trace = runPackagedCli(packageDir, ['trace', '--config', haraka!.configDir, '--json'], work);
      assert.equal(trace.status, 0, trace.stderr);
      const found = trace.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { ref: string; action: string; symbols: { name: string }[] });
      const plainRow = found.find((r) => r.ref === plainRef);
      const spamRow = found.find((r) => r.ref === spamRef);
      return plainRow && spamRow ? { plainRow, spamRow } : undefined;
    });
    assert.ok(['accept', 'add_header'].includes(rows.plainRow.action), rows.plainRow.action);
    assert.equal(rows.spamRow.action, 'reject');
    const names = rows.spamRow.symbols.map((s) => s.name);
    assert.ok(names.includes('GTUBE') && names.includes('CONTENT_LOTTERY_WIN'), names.join(', '));
  });
});
