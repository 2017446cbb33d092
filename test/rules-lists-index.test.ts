// Allow/block lists looked up by key (lib/checks/rules/list-index.ts) must
// decide exactly as the walk of every entry did: checked against a walk (the
// same entries with no key) over many senders, scopes and spellings, and in
// the cases that a wrong key would get wrong (exact and glob entries together,
// subdomains, scopes, case and IDN, rows of an older SQLite file, changes made
// by another process, the store down).
import assert from 'node:assert/strict';
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
import { KeyIndex, lookupKeys } from '../lib/checks/rules/list-index';
import { SqliteListStore, StateListStore, type SenderListStore } from '../lib/checks/rules/list-store';
import { parseEntry, type ListKind, type ScopedEntry } from '../lib/checks/rules/lists';
import { AddressPattern } from '../lib/checks/rules/match';
import { parseRulesSettings, type RulesSettings } from '../lib/checks/rules/settings';
import { MemoryStore } from '../lib/state/memory';
import { RedisStore } from '../lib/state/redis';
import type { StateStore } from '../lib/state/types';
import { silentLogger } from '../lib/runtime';
import { DnsResolver } from '../lib/dns/resolver';
import type { Hit } from '../lib/score/types';

const tmp = mkdtempSync(join(tmpdir(), 'mailward-lists-index-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const table = new SymbolTable(rulesSymbols);
// No rule here looks anything up.
const dns = new DnsResolver({ servers: ['127.0.0.1:9'], timeoutMs: 100, cacheSize: 10, maxTtl: 60, negativeTtl: 60 });

function settings(ini: string, localDomains = ''): RulesSettings {
  const shared = parseSharedSettings(new IniReader('mailward.ini', parseIni(`[main]\ndata_dir = ${tmp}\n`, 'mailward.ini')), tmp);
  return parseRulesSettings(new IniReader('mailward.rules.ini', parseIni(`[lists]\nlocal_domains = ${localDomains}\n${ini}`, 'mailward.rules.ini')), shared);
}

interface Msg {
  from?: string;
  mailFrom?: string;
  rcptTo?: string[];
  ip?: string;
  /** The From: domain is authenticated (DMARC pass). */
  authenticated?: boolean;
}

function ctxOf(m: Msg): MessageContext {
  const from = m.from ?? 'bob@partner.test';
  const ctx = createContext({
    ip: m.ip ?? '192.0.2.10',
    helo: 'mail.partner.test',
    mailFrom: m.mailFrom ?? from,
    rcptTo: m.rcptTo ?? ['alice@example.com'],
    raw: `From: ${from}\r\nSubject: hello\r\n\r\nHello\r\n`,
  });
  if (m.authenticated) {
    const domain = from.slice(from.lastIndexOf('@') + 1);
    ctx.notes.auth = { fromDomain: domain, spf: { result: 'pass', domain, aligned: true }, dkim: [], dmarc: { result: 'pass' } };
  }
  return ctx;
}

async function run(s: RulesSettings, m: Msg, store?: SenderListStore): Promise<{ hits: Hit[]; ledger: Ledger }> {
  const ledger = new Ledger(table);
  const hits = await evaluateData(ctxOf(m), ledger, { settings: s, store: async () => store, log: silentLogger, dns });
  ledger.addAll(hits);
  return { hits, ledger };
}

/** What a message's list checks said, to compare two runs. */
function outcome(r: { hits: Hit[]; ledger: Ledger }): string {
  return JSON.stringify({ hits: r.hits.map((h) => `${h.name}: ${h.detail}`), forced: r.ledger.forced ?? null });
}

/** The same entries with no key: every one is matched in turn, as before the index. */
function walked(entries: ScopedEntry[]): ScopedEntry[] {
  return entries.map(({ scope, entry }) => ({ scope, entry: { ...entry, pattern: Object.assign(new AddressPattern(entry.pattern.text), { key: '' }) } }));
}

/** A store answering every look-up with all its rows: the walk, for run-time entries. */
function walking(store: SenderListStore): SenderListStore {
  return { kind: store.kind, entries: (l, s) => store.entries(l, s), add: (...a) => store.add(...a), remove: (...a) => store.remove(...a), all: (...a) => store.all(...a), close: () => store.close() };
}

// Entries and senders chosen so that a key filed or looked up wrongly changes an answer.
const PATTERNS = [
  'bob@partner.test', 'Bob@Partner.TEST.', 'partner.test', '.partner.test', '*.partner.test', '*@partner.test', 'news-*@partner.test',
  'sub.partner.test', '.sub.partner.test', '*@*.partner.test', 'bücher.test', 'xn--bcher-kva.test', '.BÜCHER.test', 'σ@greek.test',
  'K@kelvin.test', 'evil.test', '.evil.test', 'x?@evil.test', 'bob@xn--bcher-kva.test', 'partner.test.evil', '*partner.test',
];
const ALLOW_DECORATIONS = ['', '', 'unauthenticated:', '[192.0.2.0/28]'];
const SCOPES = ['*', 'domain:example.com', 'domain:example.org', 'user:alice@example.com', 'user:carol@example.org'];
const SENDERS = [
  'bob@partner.test', 'BOB@PARTNER.TEST', 'bob@partner.test.', 'news-1@partner.test', 'x@sub.partner.test', 'x@deep.sub.partner.test',
  'x@partner.test.evil', 'x@xpartner.test', 'x@bücher.test', 'x@XN--BCHER-KVA.test', 'bob@sub.bücher.test', 'ς@greek.test', 'σ@greek.test',
  'Σ@greek.test', '\u212a@kelvin.test', 'k@kelvin.test', 'xy@evil.test', 'x@a.evil.test', 'nobody@else.test', 'bob@bücher.test',
];
const RECIPIENTS = [['alice@example.com'], ['carol@example.org'], ['alice@example.com', 'carol@example.org'], ['dave@example.com', 'Alice@Example.com'], ['eve@example.net']];

/** A deterministic pseudo-random sequence, so a failure can be replayed. */
function rng(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x / 2 ** 31;
  };
}
const pick = <T>(r: () => number, items: readonly T[]): T => items[Math.floor(r() * items.length)]!;

/** Entries for one trial: [list, scope, text], with the same pattern often in several scopes and both lists. */
function trialEntries(r: () => number): [ListKind, string, string][] {
  const out: [ListKind, string, string][] = [];
  for (let i = 0; i < 14; i++) {
    const kind: ListKind = r() < 0.5 ? 'allow' : 'block';
    const decoration = kind === 'allow' ? pick(r, ALLOW_DECORATIONS) : '';
    const pattern = pick(r, PATTERNS);
    const text = decoration.startsWith('[') ? `${pattern}${decoration}` : `${decoration}${pattern}`;
    out.push([kind, pick(r, SCOPES), text]);
  }
  return out;
}

function iniOf(entries: [ListKind, string, string][]): string {
  const sections = new Map<string, string[]>();
  for (const [kind, scope, text] of entries) {
    const name = scope === '*' ? kind : `${kind}:${scope.replace(/^\w+:/, '')}`;
    sections.set(name, [...(sections.get(name) ?? []), text]);
  }
  return [...sections].map(([name, texts]) => `[${name}]\nsenders = ${texts.join(', ')}\n`).join('');
}

function trialMessages(r: () => number): Msg[] {
  return Array.from({ length: 12 }, () => {
    const from = pick(r, SENDERS);
    return { from, mailFrom: r() < 0.3 ? pick(r, SENDERS) : from, rcptTo: pick(r, RECIPIENTS), ip: r() < 0.3 ? '192.0.2.3' : '203.0.113.5', authenticated: r() < 0.6 };
  });
}

describe('rules: allow/block lists looked up by key decide as the walk of every entry did', () => {
  it('every pattern a sender matches is filed under one of the sender\'s keys (or under none)', () => {
    for (const text of PATTERNS) {
      const pattern = new AddressPattern(text);
      for (const sender of SENDERS) {
        if (!pattern.matches(sender)) continue;
        assert.ok(pattern.key === '' || lookupKeys([sender]).includes(pattern.key), `${text} (key ${pattern.key}) matches ${sender}, whose keys are ${lookupKeys([sender])}`);
      }
    }
    // Globs, the null sender and non-ASCII patterns are walked; the rest has a key.
    assert.deepEqual(
      ['*@partner.test', 'x?@evil.test', '<>', 'bücher.test', 'σ@greek.test', 'Bob@Partner.TEST.', '*.partner.test', 'partner.test'].map((t) => new AddressPattern(t).key),
      ['', '', '', '', '', 'a:bob@partner.test', 's:partner.test', 'd:partner.test'],
    );
  });

  it('KeyIndex finds each item once, in its original order', () => {
    const index = new KeyIndex(['a1', 'b1', 'a2', 'x', 'b2', 'a3'], (s) => (s === 'x' ? '' : s[0]!));
    assert.deepEqual(index.find(['b', '', 'a', 'b']), ['a1', 'b1', 'a2', 'x', 'b2', 'a3']);
    assert.deepEqual(index.find(['b', 'z']), ['b1', 'b2']);
  });

  for (const where of ['ini', 'sqlite', 'memory state'] as const) {
    it(`${where}: the same hits and verdict as the walk, over 60 random lists of 14 entries and 12 messages each`, async () => {
      const r = rng(where.length * 7919);
      for (let trial = 0; trial < 60; trial++) {
        const entries = trialEntries(r);
        let indexed: RulesSettings;
        let reference: RulesSettings;
        let store: SenderListStore | undefined;
        if (where === 'ini') {
          indexed = settings(iniOf(entries));
          reference = { ...indexed, staticLists: { allow: walked(indexed.staticLists.allow), block: walked(indexed.staticLists.block) } };
        } else {
          indexed = reference = settings('');
          store = where === 'sqlite' ? new SqliteListStore(join(tmp, `trial-${trial}.sqlite`)) : new StateListStore(new MemoryStore());
          for (const [kind, scope, text] of entries) await store.add(kind, scope, text);
        }
        for (const m of trialMessages(r)) {
          const got = outcome(await run(indexed, m, store));
          const want = outcome(await run(reference, m, store && walking(store)));
          assert.equal(got, want, `trial ${trial}: entries ${JSON.stringify(entries)}, message ${JSON.stringify(m)}`);
        }
        await store?.close();
      }
    });
  }

  it('an exact entry and a glob for the same sender: the first in list order is the one named, whichever it is', async () => {
    const exactFirst = settings('[allow]\nsenders = bob@partner.test[192.0.2.0/24], *@partner.test[192.0.2.0/24]\n');
    assert.match((await run(exactFirst, {})).ledger.forced!.source, /everyone: bob@partner\.test\[192\.0\.2\.0\/24\], sent from named server/);
    const globFirst = settings('[allow]\nsenders = *@partner.test[192.0.2.0/24], bob@partner.test[192.0.2.0/24]\n');
    assert.match((await run(globFirst, {})).ledger.forced!.source, /everyone: \*@partner\.test\[192\.0\.2\.0\/24\], sent from named server/);
    // Entries that do not hold are named in list order too, glob and exact alike.
    const neither = settings('[allow]\nsenders = partner.test, *@partner.test, bob@partner.test\n');
    assert.equal(
      (await run(neither, {})).ledger.get('ALLOWLIST_NOT_HELD')!.detail,
      'everyone: partner.test does not hold: no authentication results; everyone: *@partner.test does not hold: no authentication results; everyone: bob@partner.test does not hold: no authentication results',
    );
    // A later exact entry that holds is found after an earlier glob that does not.
    const later = settings('[allow]\nsenders = *@partner.test, bob@partner.test[192.0.2.10]\n');
    assert.equal((await run(later, {})).ledger.forced?.action, 'accept');
  });

  it('a domain entry is that domain only; ".domain" and "*.domain" take its subdomains at any depth', async () => {
    const s = settings('[block]\nsenders = partner.test\n[block:example.org]\nsenders = .deep.test\n[block:eve@example.net]\nsenders = *.star.test\n');
    assert.equal((await run(s, { from: 'x@partner.test' })).ledger.forced?.action, 'reject');
    assert.equal((await run(s, { from: 'x@sub.partner.test' })).ledger.forced, undefined);
    for (const from of ['x@deep.test', 'x@a.deep.test', 'x@a.b.c.deep.test']) assert.equal((await run(s, { from, rcptTo: ['carol@example.org'] })).ledger.forced?.action, 'reject', from);
    assert.equal((await run(s, { from: 'x@notdeep.test', rcptTo: ['carol@example.org'] })).ledger.forced, undefined);
    assert.equal((await run(s, { from: 'x@a.b.star.test', rcptTo: ['eve@example.net'] })).ledger.forced?.action, 'reject');
  });

  it('scopes: every recipient must allow; the message is refused when each recipient blocks, through whichever scope', async () => {
    const s = settings(
      '[allow:alice@example.com]\nsenders = bob@partner.test\n[allow:example.org]\nsenders = partner.test\n' +
        '[block:alice@example.com]\nsenders = evil.test\n[block:example.org]\nsenders = x@evil.test\n[block]\nsenders = .worse.test\n',
    );
    const both = await run(s, { authenticated: true, rcptTo: ['alice@example.com', 'carol@example.org'] });
    assert.match(both.ledger.forced!.source, /allow list \(alice@example\.com: bob@partner\.test, .*; domain example\.org: partner\.test, /);
    const notCarol = await run(s, { authenticated: true, rcptTo: ['alice@example.com', 'carol@example.com'] });
    assert.equal(notCarol.ledger.forced, undefined);
    assert.match(notCarol.ledger.get('ALLOWLIST_NOT_HELD')!.detail, /allowed for alice@example\.com but not for carol@example\.com/);
    const blocked = await run(s, { from: 'x@evil.test', rcptTo: ['alice@example.com', 'carol@example.org'] });
    assert.match(blocked.ledger.forced!.source, /block list \(alice@example\.com: evil\.test; domain example\.org: x@evil\.test\)/);
    const partial = await run(s, { from: 'y@evil.test', rcptTo: ['alice@example.com', 'carol@example.org'] });
    assert.equal(partial.ledger.forced, undefined);
    assert.match(partial.ledger.get('BLOCKLIST')!.detail, /blocked by alice@example\.com only/);
    // The envelope sender is a sender address too, looked up by its own keys.
    assert.equal((await run(s, { from: 'ok@fine.test', mailFrom: 'bounce@a.worse.test', rcptTo: ['dave@example.net'] })).ledger.forced?.action, 'reject');
  });

  it('case, a trailing dot and either form of an internationalised domain find the entry', async () => {
    for (const entry of ['Bob@Bücher.TEST.', 'bob@xn--bcher-kva.test', 'BÜCHER.test', 'xn--bcher-kva.test', '.bücher.test', '.XN--BCHER-KVA.test']) {
      const s = settings(`[block]\nsenders = ${entry}\n`);
      for (const from of ['bob@bücher.test', 'BOB@XN--BCHER-KVA.TEST', 'bob@BÜCHER.test.']) {
        assert.equal((await run(s, { from })).ledger.forced?.action, 'reject', `${entry} for ${from}`);
      }
    }
  });

  it('SQLite: rows of an older file (no key column) and rows written without a key are read, and keyed when the file is next opened; a newer format is read whole', async () => {
    const path = join(tmp, 'old.sqlite');
    const db = new Database(path);
    db.exec('CREATE TABLE sender_lists (list TEXT NOT NULL, scope TEXT NOT NULL, entry TEXT NOT NULL, added TEXT NOT NULL, PRIMARY KEY (list, scope, entry))');
    db.prepare('INSERT INTO sender_lists VALUES (?, ?, ?, ?)').run('block', '*', 'Spammer@Evil.test', '2020-01-01T00:00:00.000Z');
    db.close();
    const s = settings('');
    let store = new SqliteListStore(path);
    assert.equal((await run(s, { from: 'spammer@evil.test' }, store)).ledger.forced?.action, 'reject');
    // An older mailward writing to the file now: no key.
    const old = new Database(path);
    old.prepare('INSERT INTO sender_lists (list, scope, entry, added) VALUES (?, ?, ?, ?)').run('block', '*', 'evil2.test', '2020-01-02T00:00:00.000Z');
    assert.equal((await run(s, { from: 'x@evil2.test' }, store)).ledger.forced?.action, 'reject');
    await store.close();
    store = new SqliteListStore(path);
    assert.deepEqual(old.prepare('SELECT entry, key FROM sender_lists ORDER BY added').all(), [
      { entry: 'Spammer@Evil.test', key: 'a:spammer@evil.test' },
      { entry: 'evil2.test', key: 'd:evil2.test' },
    ]);
    // Keys of another format are computed again.
    old.exec("UPDATE sender_lists SET key = 'stale'");
    old.pragma('user_version = 0');
    old.close();
    await store.close();
    store = new SqliteListStore(path);
    assert.equal((await run(s, { from: 'x@evil2.test' }, store)).ledger.forced?.action, 'reject');
    assert.equal((await run(s, { from: 'SPAMMER@evil.test' }, store)).ledger.forced?.action, 'reject');
    await store.close();
    // Keys of a newer format, which this version cannot read: the file is read whole and left as it is.
    const newer = new Database(path);
    newer.exec("UPDATE sender_lists SET key = 'newer'");
    newer.pragma('user_version = 99');
    store = new SqliteListStore(path);
    assert.equal((await run(s, { from: 'x@evil2.test' }, store)).ledger.forced?.action, 'reject');
    await store.add('block', '*', 'evil3.test');
    assert.equal((await run(s, { from: 'x@evil3.test' }, store)).ledger.forced?.action, 'reject');
    assert.deepEqual(newer.prepare('SELECT key FROM sender_lists ORDER BY added').pluck().all(), ['newer', 'newer', null]);
    assert.equal(newer.pragma('user_version', { simple: true }), 99);
    newer.close();
    await store.close();
  });

  it('state store: a change made by another process is seen on the next message; one made behind its back once the sets are read again', async () => {
    const shared = new MemoryStore();
    const mta = new StateListStore(shared);
    const cli = new StateListStore(shared);
    const s = settings('');
    assert.equal((await run(s, { from: 'x@evil.test' }, mta)).ledger.forced, undefined);
    await cli.add('block', '*', 'evil.test');
    assert.equal((await run(s, { from: 'x@evil.test' }, mta)).ledger.forced?.action, 'reject');
    await cli.remove('block', '*', 'evil.test');
    assert.equal((await run(s, { from: 'x@evil.test' }, mta)).ledger.forced, undefined);
    // Written without the change mark (an older mailward): read again after rereadAfterMs.
    await shared.setAdd('senders:block:*', ['evil.test']);
    assert.equal((await run(s, { from: 'x@evil.test' }, mta)).ledger.forced, undefined, 'cached until then');
    const fresh = new StateListStore(shared, { rereadAfterMs: 0 });
    assert.equal((await run(s, { from: 'x@evil.test' }, fresh)).ledger.forced?.action, 'reject');
  });

  it('state store down after its sets were read: RULES_LIST_ERROR, the cached entries are not used, nothing is refused', async () => {
    const memory = new MemoryStore();
    let down = false;
    const failing = new Proxy(memory, {
      get(target, name) {
        const value = Reflect.get(target, name, target) as unknown;
        if (down && (name === 'getShared' || name === 'setMembersShared')) return () => Promise.reject(new Error('connection refused'));
        return typeof value === 'function' ? value.bind(target) : value;
      },
    }) as StateStore;
    const store = new StateListStore(failing);
    await store.add('block', '*', 'evil.test');
    const s = settings('[allow]\nsenders = unauthenticated:friend.test\n');
    assert.equal((await run(s, { from: 'x@evil.test' }, store)).ledger.forced?.action, 'reject');
    down = true;
    const r = await run(s, { from: 'x@evil.test' }, store);
    assert.equal(r.ledger.forced, undefined);
    assert.match(r.ledger.get('RULES_LIST_ERROR')!.detail, /run-time allow list unavailable: the shared state \(memory\) could not be read: connection refused; run-time block list unavailable/);
    // The ini entries still apply.
    assert.equal((await run(s, { from: 'x@friend.test' }, store)).ledger.forced?.action, 'accept');
  });

  it('Redis: two MTA nodes; an entry added or removed through one is applied by the other on its next message', async function () {
    const prefix = `mwtest-lists:${process.pid}:`;
    const open = () => new RedisStore({ backend: 'redis', redisUrl: 'redis://127.0.0.1:6379', prefix, timeoutMs: 1000, memoryMaxEntries: 1000 }, silentLogger);
    const [a, b] = [open(), open()];
    try {
      await a.get('probe');
      if (a.degraded) this.skip();
      const nodeA = new StateListStore(a);
      const nodeB = new StateListStore(b);
      const s = settings('');
      await nodeB.add('block', 'user:alice@example.com', 'Evil.test');
      assert.equal((await run(s, { from: 'x@EVIL.test' }, nodeA)).ledger.forced?.action, 'reject');
      assert.equal((await run(s, { from: 'x@evil.test', rcptTo: ['alice@example.com', 'bob@example.com'] }, nodeA)).ledger.forced, undefined);
      await nodeB.add('allow', '*', 'unauthenticated:.partner.test');
      assert.equal((await run(s, { from: 'x@mail.partner.test' }, nodeA)).ledger.forced?.action, 'accept');
      await nodeB.remove('block', 'user:alice@example.com', 'Evil.test');
      assert.equal((await run(s, { from: 'x@evil.test' }, nodeA)).ledger.forced, undefined);
    } finally {
      for (const key of await a.keys('')) await a.del(key);
      await a.close();
      await b.close();
    }
  });

  it('bad run-time entries are still skipped with a warning, for every message', async () => {
    const store = new StateListStore(new MemoryStore());
    await store.add('block', '*', 'unauthenticated:evil.test');
    const warnings: string[] = [];
    const log = { ...silentLogger, warn: (m: string) => warnings.push(m) };
    for (const from of ['x@evil.test', 'x@other.test']) {
      const ledger = new Ledger(table);
      await evaluateData(ctxOf({ from }), ledger, { settings: settings(''), store: async () => store, log, dns });
      assert.equal(ledger.forced, undefined);
    }
    assert.equal(warnings.length, 2);
    assert.match(warnings[0]!, /ignoring bad block entry "unauthenticated:evil\.test" for everyone: "unauthenticated:" only applies to allow entries/);
    assert.throws(() => parseEntry('block', 'unauthenticated:evil.test'));
  });
});
