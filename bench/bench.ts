// `npm run bench`: the same load against bare Haraka and Haraka with the
// mailward plugins, in one run, so the figures are ratios measured together;
// then the per-module benchmarks (tracking writers, throttle, ...).
//
// A module benchmark is a file bench/<name>.ts exporting `bench<Name>()` and
// `format<Name>Bench(result): string[]`; it is picked up when present.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { packageRoot } from '../lib/util/package-root';
import { startDnsServer } from '../test/support/dns-server';
import { removeDir, startHaraka, type HarakaInstance } from '../test/support/haraka';

const run = promisify(execFile);
const MESSAGES = Number(process.env.MAILWARD_BENCH_MESSAGES ?? 3000);
const CONCURRENCY = Number(process.env.MAILWARD_BENCH_CONCURRENCY ?? 8);
const MODULE_BENCHES = ['tracking', 'auth', 'reputation', 'backscatter', 'content', 'bound', 'quarantine', 'hostile'];

interface LoadResult {
  elapsedMs: number;
  latencies: number[];
  codes: Record<string, number>;
}

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Drives the server from a separate process: the client must not share the server's event loop. */
async function load(port: number, count: number): Promise<LoadResult> {
  const { stdout } = await run(process.execPath, [join(__dirname, 'load.js'), String(port), String(count), String(CONCURRENCY)], { maxBuffer: 64 * 1024 * 1024 });
  return JSON.parse(stdout) as LoadResult;
}

interface Figures {
  msgsPerSec: number;
  p50: number;
  p99: number;
  codes: Record<string, number>;
}

async function measure(haraka: HarakaInstance): Promise<Figures> {
  await load(haraka.port, Math.min(200, MESSAGES)); // warm-up: JIT, caches, database files
  const result = await load(haraka.port, MESSAGES);
  const sorted = [...result.latencies].sort((a, b) => a - b);
  return { msgsPerSec: (MESSAGES / result.elapsedMs) * 1000, p50: percentile(sorted, 50), p99: percentile(sorted, 99), codes: result.codes };
}

const MAILWARD_PLUGINS = ['reputation', 'rules', 'backscatter', 'auth', 'antispoof', 'content', 'outbound', 'tracking', 'verdict'];

async function harakaComparison(): Promise<string[]> {
  const dns = await startDnsServer({
    'example.net': { TXT: ['v=spf1 ip4:127.0.0.0/8 -all'] },
    '_dmarc.example.net': { TXT: ['v=DMARC1; p=none'] },
  });
  const root = packageRoot();
  const plugins = MAILWARD_PLUGINS.filter((p) => existsSync(join(root, 'plugins', p, 'package.json'))).map((p) => `mailward/plugins/${p}`);
  const mailwardIni = `[main]\ndata_dir = data\n\n[dns]\nservers = ${dns.server}\ntimeout_ms = 1000\n`;
  const bare = await startHaraka({ plugins: [], verdict: false });
  const full = await startHaraka({ plugins, files: { 'mailward.ini': mailwardIni } });
  try {
    const b = await measure(bare);
    const m = await measure(full);
    const f = (n: number) => n.toFixed(1);
    return [
      `load: ${MESSAGES} messages of ~0.5 kB over ${CONCURRENCY} connections from a separate process, 127.0.0.1`,
      `bare Haraka (rcpt_to.in_host_list + file queue): ${f(b.msgsPerSec)} msgs/s, latency p50 ${f(b.p50)} ms, p99 ${f(b.p99)} ms, replies ${JSON.stringify(b.codes)}`,
      `Haraka + mailward (${plugins.length} plugins, embedded defaults, DNS on loopback): ${f(m.msgsPerSec)} msgs/s, latency p50 ${f(m.p50)} ms, p99 ${f(m.p99)} ms, replies ${JSON.stringify(m.codes)}`,
      `ratio mailward/bare: ${(m.msgsPerSec / b.msgsPerSec).toFixed(2)} of bare throughput; added latency p50 ${f(m.p50 - b.p50)} ms, p99 ${f(m.p99 - b.p99)} ms`,
    ];
  } finally {
    await bare.stop();
    await full.stop();
    removeDir(bare.dir);
    removeDir(full.dir);
    await dns.stop();
  }
}

async function moduleBenches(): Promise<string[]> {
  const lines: string[] = [];
  for (const name of MODULE_BENCHES) {
    const file = join(__dirname, `${name}.js`);
    if (!existsSync(file)) continue;
    const mod = require(file) as Record<string, any>;
    const cap = name[0]!.toUpperCase() + name.slice(1);
    const bench = mod[`bench${cap}`];
    const format = mod[`format${cap}Bench`];
    if (typeof bench !== 'function' || typeof format !== 'function') continue;
    try {
      lines.push(...(format(await bench()) as string[]));
    } catch (err) {
      lines.push(`${name}: benchmark failed: ${(err as Error).message}`);
    }
  }
  return lines;
}

async function main(): Promise<void> {
  const started = new Date();
  console.log(`mailward benchmark, ${started.toISOString()}, Node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB`);
  for (const line of await harakaComparison()) console.log(line);
  for (const line of await moduleBenches()) console.log(line);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
