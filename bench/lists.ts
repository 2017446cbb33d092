// The cost of large rules files and allow/block lists per message, by where the
// entries live (ini, run-time store in memory state, SQLite, Redis), with the
// store read timed on its own. Used for docs/rules.md "Size":
//   node dist/bench/lists.js [ENTRIES_PER_LIST] [MESSAGES]
// Redis (127.0.0.1:6379, keys under mwtest-lists:bench:) is skipped when unreachable.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { parseIni } from '../lib/config/ini';
import { IniReader } from '../lib/config/reader';
import { parseSharedSettings } from '../lib/config/shared';
import { createContext, type MessageContext } from '../lib/message';
import { Ledger } from '../lib/score/ledger';
import { SymbolTable } from '../lib/score/symbol-table';
import { rulesSymbols } from '../lib/checks/rules';
import { evaluateData } from '../lib/checks/rules/evaluate';
import { SqliteListStore, StateListStore, type SenderListStore } from '../lib/checks/rules/list-store';
import { parseRulesSettings, type RulesSettings } from '../lib/checks/rules/settings';
import { MemoryStore } from '../lib/state/memory';
import { RedisStore } from '../lib/state/redis';
import type { StateStore } from '../lib/state/types';
import { silentLogger } from '../lib/runtime';
import { DnsResolver } from '../lib/dns/resolver';

const ENTRIES = Number(process.argv[2] ?? 40_000);
const MESSAGES = Number(process.argv[3] ?? 200);
const RECIPIENT_DOMAIN = 'example.com';

/**
 * Entry `i` of a list: half addresses, 30% domains, 15% ".domain" (and
 * subdomains), 5% globs; 60% for everyone, 20% for the recipients' domain,
 * 20% for one of 100 users of it.
 */
function entry(kind: 'allow' | 'block', i: number): { scope: string; text: string } {
  const base = kind === 'allow' ? 'partner' : 'spam';
  const r = i % 20;
  const text = r < 10 ? `u${i}@${base}${i}.test` : r < 16 ? `${base}${i}.test` : r < 19 ? `.${base}${i}.test` : `news-*@${base}${i}.test`;
  const s = i % 5;
  const scope = s < 3 ? '*' : s === 3 ? `domain:${RECIPIENT_DOMAIN}` : `user:user${i % 100}@${RECIPIENT_DOMAIN}`;
  return { scope, text };
}

function iniSection(kind: string, scope: string): string {
  return scope === '*' ? kind : `${kind}:${scope.replace(/^(domain|user):/, '')}`;
}

function listIni(n: number): string {
  const sections = new Map<string, string[]>();
  for (const kind of ['allow', 'block'] as const) {
    for (let i = 0; i < n; i++) {
      const e = entry(kind, i);
      const name = iniSection(kind, e.scope);
      if (!sections.has(name)) sections.set(name, []);
      sections.get(name)!.push(e.text);
    }
  }
  return [...sections].map(([name, texts]) => `[${name}]\nsenders = ${texts.join(', ')}\n`).join('');
}

/** 40,000 rules as docs/rules.md describes them: a quarter each of sender + ip, from glob, header contains + ip, body contains. */
function rulesText(n: number): string {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const q = i % 4;
    const cond =
      q === 0 ? `sender s${i}@rules${i}.test\n  ip 198.51.${i % 250}.0/24` : q === 1 ? `from *@*.r${i}.test` : q === 2 ? `header Received contains relay${i}.test\n  ip 203.0.${i % 250}.0/24` : `body contains "phrase number ${i}"`;
    out.push(`rule r${i}\n  ${cond}\n  action score +1\n`);
  }
  return out.join('');
}

function settings(rules: string, ini: string, dataDir: string): RulesSettings {
  const shared = parseSharedSettings(new IniReader('mailward.ini', parseIni(`[main]\ndata_dir = ${dataDir}\n`, 'mailward.ini')), dataDir);
  const reader = new IniReader('mailward.rules.ini', parseIni(ini, 'mailward.rules.ini'));
  return parseRulesSettings(reader, shared, { text: (f) => (f === 'mailward.rules' ? { text: rules, source: 'mailward.rules' } : null) });
}

/** Message `i`: nine in ten from senders on no list, one in ten from a blocked domain. */
function message(i: number): MessageContext {
  const sender = i % 10 === 9 ? `x${i}@spam${(i * 20 + 10) % ENTRIES}.test` : `someone${i}@sender${i}.test`;
  const ctx = createContext({
    ip: '192.0.2.10',
    helo: 'mail.sender.test',
    mailFrom: sender,
    rcptTo: i % 3 === 0 ? [`user${i % 100}@${RECIPIENT_DOMAIN}`, `user${(i + 1) % 100}@${RECIPIENT_DOMAIN}`] : [`user${i % 100}@${RECIPIENT_DOMAIN}`],
    raw: `From: ${sender}\r\nReceived: from relay.sender.test\r\nSubject: hello ${i}\r\n\r\nHello there, message ${i}\r\n`,
  });
  ctx.notes.auth = { fromDomain: sender.split('@')[1], spf: { result: 'pass', domain: sender.split('@')[1], aligned: true }, dkim: [], dmarc: { result: 'pass' } };
  return ctx;
}

const table = new SymbolTable(rulesSymbols);
const dns = new DnsResolver({ servers: ['127.0.0.1:9'], timeoutMs: 100, cacheSize: 10, maxTtl: 60, negativeTtl: 60 });

/** Mean ms per message over MESSAGES messages, after a warm-up; checks the blocked ones were refused. */
async function perMessage(s: RulesSettings, store: SenderListStore | undefined, expectBlocks: boolean): Promise<number> {
  const dc = { settings: s, store: async () => store, log: silentLogger, dns };
  const runOne = async (i: number) => {
    const ctx = message(i);
    const ledger = new Ledger(table);
    const hits = await evaluateData(ctx, ledger, dc);
    if (expectBlocks && i % 10 === 9 && ledger.forced?.action !== 'reject') throw new Error(`message ${i} not blocked: ${JSON.stringify(hits)}`);
    if (hits.some((h) => h.name === 'RULES_LIST_ERROR')) throw new Error(`list error: ${JSON.stringify(hits)}`);
  };
  for (let i = 0; i < 50; i++) await runOne(i);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < MESSAGES; i++) await runOne(i);
  return Number(process.hrtime.bigint() - t0) / 1e6 / MESSAGES;
}

/**
 * Mean ms for reading one message's entries from the store (both lists, the
 * recipients' scopes): all of them, or with the look-up keys of a sender on
 * no list (a store that predates keys ignores them and reads all).
 */
async function storeRead(store: SenderListStore, keyed: boolean): Promise<number> {
  const scopes = ['*', `domain:${RECIPIENT_DOMAIN}`, `user:user1@${RECIPIENT_DOMAIN}`];
  const keys = keyed ? ['', 'a:someone@sender1.test', 'd:sender1.test', 's:sender1.test', 's:test'] : undefined;
  const read = (list: 'allow' | 'block') => (store.entries as (l: string, s: string[], k?: string[]) => Promise<unknown[]>)(list, scopes, keys);
  for (let i = 0; i < 5; i++) await read('allow');
  const n = Math.max(20, MESSAGES / 4);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    await read('allow');
    await read('block');
  }
  return Number(process.hrtime.bigint() - t0) / 1e6 / n;
}

/** Per message through the checks, then the store reads alone (after: their garbage would weigh on the first). */
async function storeFigures(name: string, s: RulesSettings, store: SenderListStore, results: Record<string, number | string>): Promise<void> {
  results[`${name}ListsMsPerMsg`] = await perMessage(s, store, true);
  results[`${name}ReadAllMs`] = await storeRead(store, false);
  results[`${name}ReadKeyedMs`] = await storeRead(store, true);
}

/** Adds the rows to a state store a set at a time (the store's add() reads the set back for each). */
async function fillState(state: StateStore, store: StateListStore): Promise<void> {
  const byKey = new Map<string, string[]>();
  for (const r of rows()) {
    const key = `senders:${r.list}:${r.scope}`;
    if (!byKey.has(key)) byKey.set(key, []);
    byKey.get(key)!.push(r.entry);
  }
  for (const [key, members] of byKey) for (let i = 0; i < members.length; i += 5000) await state.setAdd(key, members.slice(i, i + 5000));
  // An add through the store too, so any bookkeeping it keeps is current.
  await store.add('block', '*', 'bench-last@spam.test');
}

function rows(): { list: 'allow' | 'block'; scope: string; entry: string }[] {
  const out: { list: 'allow' | 'block'; scope: string; entry: string }[] = [];
  for (const list of ['allow', 'block'] as const) for (let i = 0; i < ENTRIES; i++) out.push({ list, ...(({ scope, text }) => ({ scope, entry: text }))(entry(list, i)) });
  return out;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mailward-bench-lists-'));
  const results: Record<string, number | string> = {};
  try {
    let t0 = Date.now();
    const withRules = settings(rulesText(ENTRIES), '', dir);
    results.rulesLoadMs = Date.now() - t0;
    results.rulesMsPerMsg = await perMessage(withRules, undefined, false);

    const none = settings('', '', dir);
    results.noListsMsPerMsg = await perMessage(none, undefined, false);

    t0 = Date.now();
    const withLists = settings('', listIni(ENTRIES), dir);
    results.iniLoadMs = Date.now() - t0;
    results.iniListsMsPerMsg = await perMessage(withLists, undefined, true);

    const memoryState = new MemoryStore();
    const memory = new StateListStore(memoryState);
    await fillState(memoryState, memory);
    await storeFigures('memory', none, memory, results);

    // Written as the CLI would, in one transaction (the schema every version reads).
    const path = join(dir, 'senders.sqlite');
    new SqliteListStore(path).close();
    const db = new Database(path);
    const insert = db.prepare('INSERT INTO sender_lists (list, scope, entry, added) VALUES (?, ?, ?, ?)');
    db.transaction(() => rows().forEach((r, i) => insert.run(r.list, r.scope, r.entry, new Date(1e12 + i).toISOString())))();
    db.close();
    const sqlite = new SqliteListStore(path);
    await storeFigures('sqlite', none, sqlite, results);
    await sqlite.close();

    const state = new RedisStore({ backend: 'redis', redisUrl: 'redis://127.0.0.1:6379', prefix: `mwtest-lists:bench:${process.pid}:`, timeoutMs: 2000, memoryMaxEntries: 1000 }, silentLogger);
    try {
      await state.get('probe');
      if (state.degraded) throw new Error('Redis unreachable');
      const redis = new StateListStore(state);
      await fillState(state, redis);
      await storeFigures('redis', none, redis, results);
    } catch (err) {
      results.redis = `skipped: ${(err as Error).message}`;
    } finally {
      for (const key of await state.keys('').catch(() => [] as string[])) await state.del(key);
      await state.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  for (const [k, v] of Object.entries(results)) results[k] = typeof v === 'number' ? Math.round(v * 100) / 100 : v;
  console.log(JSON.stringify({ entries: ENTRIES, messages: MESSAGES, ...results }));
}

void main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
