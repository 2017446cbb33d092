// Filter rules and allow/block lists, evaluated on contexts built here (no MTA):
// parsing and its errors, each condition type, AND and any-of, ordering and
// first match, skip and score, and the spoof-safety of list entries.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../lib/config/errors';
import { parseIni } from '../lib/config/ini';
import { IniReader } from '../lib/config/reader';
import { parseSharedSettings } from '../lib/config/shared';
import { createContext, type MessageContext } from '../lib/message';
import { Ledger } from '../lib/score/ledger';
import { SymbolTable } from '../lib/score/symbol-table';
import { decide } from '../lib/score/verdict';
import { rulesSymbols } from '../lib/checks/rules';
import { evaluateData, evaluateEnvelope } from '../lib/checks/rules/evaluate';
import { SqliteListStore, StateListStore } from '../lib/checks/rules/list-store';
import { RedisStore } from '../lib/state/redis';
import { parseEntry } from '../lib/checks/rules/lists';
import { AddressPattern } from '../lib/checks/rules/match';
import { parseRules } from '../lib/checks/rules/ruleset';
import { parseRulesSettings, type RulesSettings } from '../lib/checks/rules/settings';
import { silentLogger } from '../lib/runtime';
import { DnsResolver } from '../lib/dns/resolver';
import { startDnsServer, type TestDnsServer } from './support/dns-server';
import { repoPath } from './support/paths';

const tmp = mkdtempSync(join(tmpdir(), 'mailward-rules-'));

// Reverse DNS of the test clients, for ptr conditions (forward-confirmed only).
const PTR_ZONES = {
  '10.2.0.192.in-addr.arpa': { PTR: ['mail.partner.test'] },
  'mail.partner.test': { A: ['192.0.2.10'] },
  // A PTR claiming partner.test that its name does not confirm: anyone can write one.
  '11.2.0.192.in-addr.arpa': { PTR: ['mail.partner.test'] },
  '12.2.0.192.in-addr.arpa': { PTR: ['partner.test.evil'] },
  'partner.test.evil': { A: ['192.0.2.12'] },
  // 192.0.2.13 has no PTR at all; 192.0.2.14's reverse zone never answers.
  // 192.0.2.15: a PTR into a zone of the client's own that never answers (set up in before()).
  '15.2.0.192.in-addr.arpa': { PTR: ['mx.slow.evil.test'] },
};
let dnsServer: TestDnsServer;
let dns: DnsResolver;
before(async () => {
  dnsServer = await startDnsServer(PTR_ZONES);
  dnsServer.silentNames.add('14.2.0.192.in-addr.arpa').add('mx.slow.evil.test');
  dns = new DnsResolver({ servers: [dnsServer.server], timeoutMs: 300, cacheSize: 100, maxTtl: 60, negativeTtl: 60 });
});
after(async () => {
  await dnsServer?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

function table(): SymbolTable {
  return new SymbolTable([
    ...rulesSymbols,
    { name: 'BAYES_SPAM', score: 5, group: 'content', description: 'test symbol' },
    { name: 'CONTENT_PHRASE', score: 2, group: 'content', description: 'test symbol' },
    { name: 'SPOOF_LOCAL_DOMAIN', score: 10, group: 'antispoof', description: 'test symbol' },
    { name: 'DNSBL_HIT', score: 4, group: 'reputation', description: 'test symbol' },
  ]);
}

function shared(ini = '') {
  return parseSharedSettings(new IniReader('mailward.ini', parseIni(`[main]\ndata_dir = ${tmp}\n${ini}`, 'mailward.ini')), tmp);
}

function settings(rules: string, ini = ''): RulesSettings {
  const reader = new IniReader('mailward.rules.ini', parseIni(ini, 'mailward.rules.ini'));
  const s = parseRulesSettings(reader, shared(), { text: (f) => (f === 'mailward.rules' ? { text: rules, source: 'mailward.rules' } : null) });
  reader.finish();
  return s;
}

interface Msg {
  ip?: string;
  helo?: string;
  mailFrom?: string;
  rcptTo?: string[];
  relaying?: boolean;
  headers?: string[];
  body?: string;
  auth?: 'from-aligned' | 'spf-only' | 'none' | 'dmarc' | 'dkim-timeout' | 'envelope-spf';
  /** The From: domain authentication was for, when the auth module read another From: than the rules. */
  authFromDomain?: string;
}

function ctxOf(m: Msg): MessageContext {
  const headers = m.headers ?? ['From: Bob <bob@partner.test>', 'Subject: hello'];
  const ctx = createContext({
    ip: m.ip ?? '192.0.2.10',
    // What the MTA reports; a ptr condition looks it up and confirms it itself.
    ptr: 'mail.partner.test',
    helo: m.helo ?? 'mail.partner.test',
    mailFrom: m.mailFrom ?? 'bob@partner.test',
    rcptTo: m.rcptTo ?? ['alice@example.com'],
    relaying: m.relaying ?? false,
    raw: `${headers.join('\r\n')}\r\n\r\n${m.body ?? 'Hello there\r\n'}`,
  });
  if (m.auth && m.auth !== 'none') {
    const fromDomain = m.authFromDomain ?? 'partner.test';
    ctx.notes.auth = {
      fromDomain,
      spf: { result: 'pass', domain: 'partner.test', aligned: m.auth !== 'spf-only' },
      dkim: m.auth === 'from-aligned' ? [{ result: 'pass', domain: 'partner.test', aligned: true }] : [],
      dmarc: { result: m.auth === 'spf-only' ? 'none' : 'pass' },
    };
    // partner.test's own signature whose key look-up timed out; SPF failed for a relay's domain.
    if (m.auth === 'dkim-timeout') {
      ctx.notes.auth = {
        fromDomain,
        spf: { result: 'fail', domain: 'relay.test', aligned: false },
        dkim: [{ result: 'temperror', domain: 'partner.test', aligned: true }],
        dmarc: { result: 'temperror' },
        temporaryError: true,
      };
    }
    if (m.auth === 'envelope-spf') ctx.notes.auth = { fromDomain: '', spf: { result: 'pass', domain: 'partner.test', aligned: false }, dkim: [], dmarc: { result: 'none' } };
    if (m.auth === 'spf-only') ctx.notes.auth = { ...(ctx.notes.auth as object), spf: { result: 'pass', domain: 'bulk.test', aligned: false } };
  }
  return ctx;
}

async function run(s: RulesSettings, m: Msg, prior: string[] = []) {
  const ctx = ctxOf(m);
  const ledger = new Ledger(table());
  for (const name of prior) ledger.add({ name, detail: 'prior' });
  const store = new SqliteListStore(join(tmp, `lists-${Math.random()}.sqlite`));
  const hits = await evaluateData(ctx, ledger, { settings: s, store: async () => store, log: silentLogger, dns });
  ledger.addAll(hits);
  await store.close();
  const verdict = decide(ledger, { thresholds: { reject: 15, soft_reject: 10, quarantine: 8, add_header: 5 }, domains: new Map(), notOverridable: new Set(['SPOOF_LOCAL_DOMAIN']) }, ctx.rcptTo);
  return { ctx, ledger, verdict, hits };
}

describe('rules: address patterns', () => {
  it('an internationalised domain matches in either form, and a trailing dot changes nothing', () => {
    for (const text of ['*@bücher.de', 'bücher.de', '.BÜCHER.de', 'bob@xn--bcher-kva.de', 'xn--bcher-kva.de.']) {
      const p = new AddressPattern(text);
      assert.ok(p.matches('bob@xn--bcher-kva.de'), `${text} vs punycode`);
      assert.ok(p.matches('Bob@Bücher.DE.'), `${text} vs unicode`);
      assert.equal(p.matches('bob@buecher.de'), false, text);
    }
    assert.equal(new AddressPattern('bücher.de').domain, 'xn--bcher-kva.de');
  });

  it('a pattern with nothing before or after the @ is refused', () => {
    assert.throws(() => new AddressPattern('bob@'), /"bob@" has nothing after the @/);
    assert.throws(() => new AddressPattern('@example.com'), /nothing before the @/);
    assert.throws(() => parseEntry('allow', 'bob@'), /nothing after the @/);
  });
});

describe('rules: allow rules a sender can satisfy alone', () => {
  it('are warned about at load, naming rule and line; one with ip, ptr or auth is not', () => {
    const s = settings('rule cc\n  header Received contains ccsend.constantcontact.com\n  action allow\n\nrule cc-ip\n  header Received contains ccsend.constantcontact.com\n  ip 208.75.120.0/22\n  action allow\n\nrule block-it\n  header Subject contains x\n  action block\n');
    assert.deepEqual(s.warnings, ['mailward.rules [rule cc]: line 1: allows on conditions any sender can meet (header): add an ip, ptr or "auth aligned" condition']);
  });

  it('so are skip rules: switching checks off for a forgeable sender is as good as allowing it; not one naming recipients', () => {
    const s = settings('rule partner\n  from *@partner.example\n  action skip content\n\nrule partner-ip\n  from *@partner.example\n  ip 192.0.2.1\n  action skip content\n\nrule abuse\n  recipient abuse@example.com\n  action skip content\n');
    assert.deepEqual(s.warnings, ['mailward.rules [rule partner]: line 1: skips content on conditions any sender can meet (from): add an ip, ptr or "auth aligned" condition']);
  });

  it('auth spf, auth dkim, direction inbound and negated conditions do not count: a forger meets them with a domain or address of its own', () => {
    const forgeable = ['auth spf', 'auth dkim', 'direction inbound', 'not ip 192.0.2.0/24', 'auth aligned, spf'];
    for (const condition of forgeable) {
      const s = settings(`rule r\n  from ceo@partner.example\n  ${condition}\n  action allow\n`);
      assert.equal(s.warnings.length, 1, condition);
    }
    for (const condition of ['auth aligned', 'auth dkim-aligned, dmarc', 'direction outbound', 'ptr partner.example']) {
      assert.deepEqual(settings(`rule r\n  from ceo@partner.example\n  ${condition}\n  action allow\n`).warnings, [], condition);
    }
  });

  it('none for the shipped examples once uncommented', () => {
    // Uncomment the example rules only: a "#rule" line and the indented "#  " lines under it.
    let inRule = false;
    const shipped = readFileSync(repoPath('config', 'mailward.rules'), 'utf8')
      .split('\n')
      .map((line) => {
        if (/^#rule /.test(line)) inRule = true;
        else if (!/^# {2}\S/.test(line)) inRule = false;
        return inRule ? line.slice(1) : line;
      })
      .join('\n');
    const s = settings(shipped);
    assert.ok(s.rules.length >= 4, String(s.rules.length));
    assert.deepEqual(s.warnings, []);
  });
});

describe('rules: parsing', () => {
  it('reads named rules with conditions, actions and a reason', () => {
    const rules = parseRules(`# comment\nrule one\n  sender a@b.test, *.c.test\n  header Received contains "x y, z", w\n  action allow\n  reason because\n\nrule two:\n  not ip 10.0.0.0/8\n  action score -2.5\n  action skip content, BAYES_SPAM\n`);
    assert.equal(rules.length, 2);
    assert.equal(rules[0]!.name, 'one');
    assert.equal(rules[0]!.decision, 'accept');
    assert.equal(rules[0]!.reason, 'because');
    assert.equal(rules[0]!.level, 'data');
    assert.equal(rules[1]!.name, 'two');
    assert.equal(rules[1]!.score, -2.5);
    assert.deepEqual(rules[1]!.skip, ['content', 'BAYES_SPAM']);
    assert.equal(rules[1]!.level, 'mail');
  });

  const bad: [string, string, RegExp][] = [
    ['unknown condition', 'rule r1\n  sender a@b.test\n  snder x\n  action allow\n', /mailward\.rules \[rule r1\]: line 3: unknown condition "snder"/],
    ['bad regex', 'rule r2\n  header Subject matches /a(b/\n  action block\n', /\[rule r2\]: line 2: bad regular expression/],
    ['regex RE2 cannot run', 'rule r3\n\n  body matches /free(?=money)/\n  action block\n', /\[rule r3\]: line 3: bad regular expression .*RE2 syntax/],
    ['unknown action', 'rule r4\n  ip 192.0.2.1\n  action deliver\n', /\[rule r4\]: line 3: unknown action "deliver"/],
    ['two prefix lengths', 'rule r4b\n  ip 192.0.2.0/24/8\n  action block\n', /\[rule r4b\]: line 2: .*"192\.0\.2\.0\/24\/8" is not an IP address or CIDR network/],
    ['no action', 'rule r5\n  ip 192.0.2.1\n', /\[rule r5\]: line 1: rule r5 has no action/],
    ['no condition', 'rule r6\n  action allow\n', /\[rule r6\]: line 1: .*no conditions/],
    ['two decisions', 'rule r7\n  ip 192.0.2.1\n  action allow\n  action block\n', /line 4: a rule can have only one/],
    ['duplicate name', 'rule r8\n  ip 192.0.2.1\n  action allow\nrule r8\n  ip 192.0.2.2\n  action allow\n', /line 4: rule r8 is defined twice \(the first is on line 1\)/],
    ['outside a rule', 'sender a@b.test\n', /\[rules\]: line 1: .*outside a rule/],
    ['bad ip', 'rule r9\n  ip 300.1.1.1\n  action block\n', /\[rule r9\]: line 2: .*not an IP/],
    ['bad auth', 'rule r10\n  auth spff\n  action allow\n', /\[rule r10\]: line 2: unknown auth result "spff"/],
    ['skip rules', 'rule r11\n  ip 192.0.2.1\n  action skip rules\n', /line 3: the rules checks cannot be skipped/],
    ['a wide counted repetition', 'rule r12\n  body matches /x.{0,998}z/\n  action block\n', /\[rule r12\]: line 2: bad regular expression \/x\.\{0,998\}z\/: counted repetitions \(\{n,m\}\) make 998 copies, more than 200/],
  ];
  for (const [what, text, message] of bad) {
    it(`refuses a rule file with ${what}, naming the rule and line`, () => {
      assert.throws(() => parseRules(text), (err: unknown) => err instanceof ConfigError && message.test(err.message));
    });
  }
});

describe('rules: conditions', () => {
  const cases: [string, string, Msg, Msg][] = [
    ['sender address', 'sender bob@partner.test', {}, { mailFrom: 'eve@partner.test' }],
    ['sender domain', 'sender partner.test', {}, { mailFrom: 'bob@sub.partner.test' }],
    ['sender subdomain glob', 'sender *.partner.test', { mailFrom: 'x@a.partner.test' }, { mailFrom: 'x@partner.test.evil' }],
    ['sender glob', 'sender news-*@partner.test', { mailFrom: 'news-42@partner.test' }, {}],
    ['null sender', 'sender <>', { mailFrom: '' }, {}],
    ['From: header', 'from *@partner.test', {}, { headers: ['From: x@other.test'] }],
    ['recipient', 'recipient alice@example.com', {}, { rcptTo: ['carol@example.com'] }],
    ['recipient: every recipient must match', 'recipient alice@example.com', {}, { rcptTo: ['alice@example.com', 'carol@example.com'] }],
    ['ip', 'ip 192.0.2.10', {}, { ip: '192.0.2.11' }],
    ['cidr', 'ip 198.51.100.0/24, 192.0.2.0/28', {}, { ip: '192.0.2.16' }],
    ['ipv6 cidr', 'ip 2001:db8::/32', { ip: '2001:db8::1' }, { ip: '2001:db9::1' }],
    ['ptr suffix (forward-confirmed)', 'ptr partner.test', {}, { ip: '192.0.2.12' }],
    ['ptr: a PTR its name does not confirm', 'ptr partner.test', {}, { ip: '192.0.2.11' }],
    ['no ptr', 'ptr partner.test', {}, { ip: '192.0.2.13' }],
    ['helo suffix', 'helo .partner.test', {}, { helo: 'mailpartner.test' }],
    ['header contains (case-insensitive)', 'header Subject contains HELLO', {}, { headers: ['Subject: bye'] }],
    ['header contains, any instance', 'header Received contains form.host', { headers: ['Received: from a', 'Received: from form.host', 'From: b@c.test'] }, { headers: ['Received: from a', 'X-Note: form.host'] }],
    ['header matches', 'header Received matches /from [a-z]+\\.host\\b/', { headers: ['Received: from form.host by mx'] }, { headers: ['Received: from form.hostile'] }],
    ['any header contains', 'header contains 203.0.113.5', { headers: ['X-Originating-IP: [203.0.113.5]'] }, {}],
    ['body contains', 'body contains "Cogito Ergo Sum"', { body: 'Regards\r\n\r\ncogito ergo sum\r\n' }, {}],
    ['body contains, base64 part decoded', 'body contains "open sesame"', { headers: ['From: a@b.test', 'Content-Transfer-Encoding: base64'], body: `${Buffer.from('say open sesame\r\n').toString('base64')}\r\n` }, { body: 'open\r\nsesame' }],
    ['body matches', 'body matches /order #\\d{5}/', { body: 'your order #12345' }, { body: 'order #12' }],
    ['auth aligned', 'auth aligned', { auth: 'from-aligned' }, { auth: 'spf-only' }],
    ['auth spf (not aligned)', 'auth spf', { auth: 'spf-only' }, { auth: 'none' }],
    ['auth none', 'auth none', { auth: 'none' }, { auth: 'dmarc' }],
    ['direction inbound', 'direction inbound', {}, { relaying: true }],
    ['direction outbound', 'direction outbound', { relaying: true }, {}],
    ['not', 'not sender partner.test', { mailFrom: 'x@other.test' }, {}],
  ];
  for (const [what, condition, yes, no] of cases) {
    it(`${what}: "${condition}"`, async () => {
      const s = settings(`rule t\n  ${condition}\n  action quarantine\n`);
      assert.equal((await run(s, yes)).ledger.forced?.action, 'quarantine', 'should match');
      assert.equal((await run(s, no)).ledger.forced, undefined, 'should not match');
    });
  }

  it('a regular expression shares 256 KiB among a header\'s fields: "header matches" over 15 fields of 64 KiB is no hang', async () => {
    const s = settings('rule t\n  header X-Pad matches /x.{0,200}z/\n  action quarantine\n');
    // The z lets the pattern's required literal be found, so the text is really matched.
    const pad = (i: number) => `X-Pad: ${i}z${'x'.repeat(64 * 1024)}`;
    const last = `X-Pad: ${'x'.repeat(999)}z`;
    // Each field was read up to 256 KiB on its own: 16 s here.
    const started = Date.now();
    const far = await run(s, { headers: [...Array.from({ length: 15 }, (_, i) => pad(i)), last] });
    const ms = Date.now() - started;
    // hang guard, not a performance test: typical 100ms. The check below, not this bound, is what fails on per-field reading.
    assert.ok(ms < 5000, `${ms} ms`);
    assert.equal(far.ledger.forced?.action, 'quarantine', 'the last field gets its share: 16 KiB');
    // The work, without a clock: the 256 KiB are shared, not read per field. After 15 fields of 64 KiB, a
    // match 40 KiB into the last field lies past what is read (each field read on its own found it).
    const deepLast = `X-Pad: ${'x'.repeat(40 * 1024)}z`;
    const past = await run(s, { headers: [...Array.from({ length: 15 }, (_, i) => pad(i)), deepLast] });
    assert.equal(past.ledger.forced, undefined, 'a match past the shared budget is not read');
  });

  it('junk fields placed first cannot push the real one out of what "header matches" reads', async () => {
    // Read in order up to 256 KiB in all, four X-Mailer fields of 70 KB hid a fifth.
    const s = settings('rule t\n  header X-Mailer matches /SpamBlaster/\n  action quarantine\n');
    const junk = Array.from({ length: 4 }, (_, i) => `X-Mailer: ${i}${'m'.repeat(70 * 1024)}`);
    const r = await run(s, { headers: ['From: Bob <bob@partner.test>', 'Subject: hello', ...junk, 'X-Mailer: SpamBlaster 3.1'] });
    assert.equal(r.ledger.forced?.action, 'quarantine');
  });

  it('an auth condition a DNS failure kept from being known leaves its rule undecided: not applied, and said so', async () => {
    const s = settings('rule ceo-must-sign\n  from bob@partner.test\n  not auth aligned\n  action block\n\nrule no-auth\n  auth none\n  action score +4\n');
    const timeout = await run(s, { auth: 'dkim-timeout' });
    assert.equal(timeout.ledger.forced, undefined, 'a resolver outage must not block');
    assert.equal(timeout.ledger.has('RULE_SCORE'), false);
    const undecided = timeout.ledger.symbols.find((x) => x.name === 'RULE_UNDECIDED')!;
    assert.equal(undecided.score, 0);
    assert.match(undecided.detail, /rule ceo-must-sign \(line 1\) not applied: "not auth aligned" could not be decided/);
    assert.match(undecided.detail, /rule no-auth \(line 6\) not applied: "auth none"/);
    // The same rules decide when authentication really failed, or passed.
    assert.equal((await run(s, { auth: 'none' })).ledger.forced?.action, 'reject');
    const signed = await run(s, { auth: 'from-aligned' });
    assert.equal(signed.ledger.forced, undefined);
    assert.equal(signed.ledger.has('RULE_UNDECIDED'), false);
    // A condition that fails outright still just does not match.
    assert.equal((await run(s, { auth: 'dkim-timeout', headers: ['From: eve@other.test'] })).ledger.has('RULE_UNDECIDED'), true, 'auth none is still undecided');
    const other = await run(settings('rule r\n  from bob@partner.test\n  not auth aligned\n  action block\n'), { auth: 'dkim-timeout', headers: ['From: eve@other.test'] });
    assert.equal(other.ledger.has('RULE_UNDECIDED'), false);
  });

  it('a ptr condition while reverse DNS times out is undecided too; no PTR at all is an answer', async () => {
    const s = settings('rule partner-servers-only\n  from *@partner.test\n  not ptr partner.test\n  action quarantine\n');
    const timeout = await run(s, { ip: '192.0.2.14' });
    assert.equal(timeout.ledger.forced, undefined);
    assert.match(timeout.ledger.symbols.find((x) => x.name === 'RULE_UNDECIDED')!.detail, /"not ptr partner\.test" could not be decided/);
    assert.equal((await run(s, { ip: '192.0.2.13' })).ledger.forced?.action, 'quarantine');
    assert.equal((await run(s, { ip: '192.0.2.11' })).ledger.forced?.action, 'quarantine', 'an unconfirmed PTR is no PTR');
    assert.equal((await run(s, {})).ledger.forced, undefined);
    // A PTR name in the client's own zone, whose look-up it lets time out, could never be partner.test:
    // the rule still decides (a sender must not switch rules off with a silent name server of its own).
    const own = await run(s, { ip: '192.0.2.15' });
    assert.equal(own.ledger.has('RULE_UNDECIDED'), false);
    assert.equal(own.ledger.forced?.action, 'quarantine');
  });

  it('an allow rule on ptr cannot be spoofed by a PTR the client wrote for its own address', async () => {
    const s = settings('rule partner\n  ptr mail.partner.test\n  action allow\n');
    assert.equal((await run(s, {})).ledger.forced?.action, 'accept');
    const forged = await run(s, { ip: '192.0.2.11' });
    assert.equal(forged.ledger.forced, undefined);
    assert.equal(forged.ledger.has('RULE_UNDECIDED'), false);
  });

  it('conditions are ANDed, values inside one condition are any-of', async () => {
    const s = settings('rule o365\n  from *@partner.test\n  header Received contains outbound.protection.outlook.com\n  header Received contains prod.outlook.com\n  action allow\n');
    const both = ['Received: from x.outbound.protection.outlook.com', 'Received: from y.namprd05.prod.outlook.com', 'From: b@partner.test'];
    assert.equal((await run(s, { headers: both })).ledger.forced?.action, 'accept');
    assert.equal((await run(s, { headers: [both[0]!, both[2]!] })).ledger.forced, undefined, 'one marker is not enough');
    assert.equal((await run(s, { headers: [both[0]!, both[1]!, 'From: b@other.test'] })).ledger.forced, undefined, 'wrong From');
    const anyOf = settings('rule r\n  sender a@x.test, bob@partner.test\n  action block\n');
    assert.equal((await run(anyOf, {})).ledger.forced?.action, 'reject');
  });
});

describe('rules: order and actions', () => {
  it('the first matching deciding rule wins and the explanation names it', async () => {
    const s = settings('rule never\n  ip 10.0.0.1\n  action block\nrule first\n  sender partner.test\n  action quarantine\nrule second\n  ip 192.0.2.10\n  action allow\n');
    const { verdict, ledger } = await run(s, {});
    assert.equal(verdict.action, 'quarantine');
    assert.match(verdict.reason, /forced by rule first/);
    assert.match(ledger.get('RULE_QUARANTINE')!.detail, /rule first \(line 4\)/);
    assert.ok(!ledger.has('RULE_ALLOW'));
  });

  it('score actions of matching rules add up; rules after the deciding one do not apply', async () => {
    const s = settings('rule a\n  ip 192.0.2.0/24\n  action score +3\nrule b\n  sender partner.test\n  action score 2.5\nrule c\n  ptr partner.test\n  action quarantine\nrule d\n  ip 192.0.2.10\n  action score +100\n');
    const { ledger } = await run(s, {});
    assert.equal(ledger.get('RULE_SCORE')!.score, 5.5);
    assert.match(ledger.get('RULE_SCORE')!.detail, /rule a \+3; rule b \+2\.5/);
  });

  it('skip removes the symbols of checks that already ran, and marks checks still to run', async () => {
    const s = settings('rule open-sesame\n  direction outbound\n  body contains "Cogito Ergo Sum"\n  action skip content, DNSBL_HIT, reputation.dnsbl\n');
    const { ledger, ctx, verdict } = await run(s, { relaying: true, body: 'Yves\r\nCogito Ergo Sum\r\n' }, ['BAYES_SPAM', 'CONTENT_PHRASE', 'DNSBL_HIT']);
    assert.ok(!ledger.has('BAYES_SPAM') && !ledger.has('CONTENT_PHRASE') && !ledger.has('DNSBL_HIT'));
    assert.match(ledger.get('RULE_SKIP')!.detail, /skipped content, DNSBL_HIT, reputation\.dnsbl: removed .*BAYES_SPAM 5/);
    assert.deepEqual([...(ctx.notes.skipChecks as Set<string>)].sort(), ['DNSBL_HIT', 'content', 'reputation.dnsbl']);
    assert.equal(verdict.action, 'accept');
    const inbound = await run(s, { body: 'Cogito Ergo Sum' }, ['BAYES_SPAM']);
    assert.ok(inbound.ledger.has('BAYES_SPAM'), 'an inbound message with the phrase keeps its content score');
  });

  it('allow cannot override a not-overridable symbol unless the rule skips its check, and the explanation says so', async () => {
    const plain = settings('rule webform\n  from info@partner.test\n  header Received contains webhoster.formservice.test\n  action allow\n');
    const msg: Msg = { headers: ['Received: from webhoster.formservice.test', 'From: info@partner.test'] };
    const refused = await run(plain, msg, ['SPOOF_LOCAL_DOMAIN']);
    assert.equal(refused.verdict.action, 'soft_reject');
    assert.match(refused.verdict.reason, /rule webform would allow .*SPOOF_LOCAL_DOMAIN cannot be overridden/);
    const skipping = settings('rule webform\n  from info@partner.test\n  header Received contains webhoster.formservice.test\n  action skip antispoof\n  action allow\n');
    const allowed = await run(skipping, msg, ['SPOOF_LOCAL_DOMAIN']);
    assert.equal(allowed.verdict.action, 'accept');
    assert.match(allowed.ledger.get('RULE_SKIP')!.detail, /removed SPOOF_LOCAL_DOMAIN 10/);
  });

  it('envelope rules decide at MAIL and RCPT only when no earlier rule could still decide', async () => {
    const s = settings('rule hdr\n  header X-Trusted contains yes\n  action allow\nrule blk\n  sender spammer.test\n  action block\n');
    const ctx = ctxOf({ mailFrom: 'x@spammer.test' });
    const ledger = new Ledger(table());
    await evaluateEnvelope(s.rules, ctx, ledger, dns, 'mail');
    assert.equal(ledger.forced, undefined, 'the header rule above it is undecided at MAIL');
    const early = settings('rule blk\n  sender spammer.test\n  action block\nrule hdr\n  header X-Trusted contains yes\n  action allow\n');
    const ledger2 = new Ledger(table());
    await evaluateEnvelope(early.rules, ctx, ledger2, dns, 'mail');
    assert.equal(ledger2.forced?.action, 'reject');
    assert.equal(ledger2.forced?.source, 'rule blk');
  });

  it('a block rule naming a recipient refuses only that recipient at RCPT', async () => {
    const s = settings('rule r\n  recipient alice@example.com\n  sender spammer.test\n  action block\n');
    const ctx = ctxOf({ mailFrom: 'x@spammer.test', rcptTo: ['alice@example.com', 'carol@example.com'] });
    const ledger = new Ledger(table());
    await evaluateEnvelope(s.rules, ctx, ledger, dns, 'rcpt', 'alice@example.com');
    await evaluateEnvelope(s.rules, ctx, ledger, dns, 'rcpt', 'carol@example.com');
    assert.deepEqual([...ledger.refusedRecipients.keys()], ['alice@example.com']);
    assert.equal(ledger.forced, undefined);
  });

  it('an envelope skip marks checks before they run', async () => {
    const s = settings('rule out\n  direction outbound\n  sender *@example.com\n  action skip content\n');
    const ctx = ctxOf({ relaying: true, mailFrom: 'me@example.com' });
    await evaluateEnvelope(s.rules, ctx, new Ledger(table()), dns, 'mail');
    assert.ok((ctx.notes.skipChecks as Set<string>).has('content'));
  });
});

describe('rules: allowed and blocked senders are spoof-safe', () => {
  it('an authenticated sender on the list is allowed; the same From unauthenticated is not', async () => {
    const s = settings('', '[allow]\nsenders = partner.test\n');
    const ok = await run(s, { auth: 'from-aligned' }, ['BAYES_SPAM', 'DNSBL_HIT']);
    assert.equal(ok.verdict.action, 'accept');
    assert.match(ok.verdict.reason, /accept forced by allow list \(everyone: partner\.test, spf=pass aligned/);
    const forged = await run(s, { auth: 'none' }, ['BAYES_SPAM', 'DNSBL_HIT']);
    assert.equal(forged.ledger.forced, undefined);
    assert.equal(forged.verdict.action, 'quarantine', 'the score decides as if there were no entry');
    assert.match(forged.ledger.get('ALLOWLIST_NOT_HELD')!.detail, /partner\.test does not hold: no authentication results/);
    const spfOther = await run(s, { auth: 'spf-only' });
    assert.equal(spfOther.ledger.forced, undefined, 'SPF for another domain does not authenticate the From:');
  });

  it('authentication for another From: domain holds no entry and no auth condition (a From: header read two ways)', async () => {
    // mailauth read the attacker's From: (authenticated); the rules read partner.test's.
    const s = settings('rule aligned-partner\n  from bob@partner.test\n  auth aligned, dmarc, dkim-aligned, spf-aligned\n  action allow\n', '[allow]\nsenders = partner.test\n');
    const forged = await run(s, { auth: 'from-aligned', authFromDomain: 'attacker.test' }, ['BAYES_SPAM', 'DNSBL_HIT']);
    assert.equal(forged.ledger.forced, undefined);
    assert.equal(forged.verdict.action, 'quarantine');
    assert.match(forged.ledger.get('ALLOWLIST_NOT_HELD')!.detail, /authentication was for From: domain attacker\.test, not partner\.test/);
    const genuine = await run(s, { auth: 'from-aligned' });
    assert.equal(genuine.ledger.forced?.action, 'accept');
    assert.match(genuine.verdict.reason, /aligned-partner/);
  });

  it('a header name is read as mailauth reads it: a NBSP or form feed around "From" makes no From: header', async () => {
    const s = settings('', '[allow]\nsenders = partner.test\n');
    for (const line of ['From\u00a0: bob@partner.test', '\fFrom: bob@partner.test']) {
      const r = await run(s, { headers: ['From: evil@attacker.test', 'X-A: 1', line], auth: 'from-aligned', authFromDomain: 'attacker.test' });
      assert.deepEqual(r.ctx.headers.filter((h) => h.key === 'from').map((h) => h.value), ['evil@attacker.test'], JSON.stringify(line));
      assert.equal(r.ledger.forced, undefined);
    }
  });

  it('an entry with a named sending server holds from that server only; unauthenticated: holds always', async () => {
    const s = settings('', '[allow]\nsenders = news@partner.test[192.0.2.0/28], unauthenticated:bob@partner.test\n');
    assert.match(s.warnings.join('\n'), /unauthenticated:bob@partner\.test is unauthenticated/);
    const fromServer = await run(s, { headers: ['From: news@partner.test'], ip: '192.0.2.3' });
    assert.equal(fromServer.ledger.forced?.action, 'accept');
    const elsewhere = await run(s, { headers: ['From: news@partner.test'], ip: '192.0.2.99' });
    assert.equal(elsewhere.ledger.forced, undefined);
    const unauth = await run(s, {});
    assert.equal(unauth.ledger.forced?.action, 'accept');
    // A "server" that is every address is as unconditional as unauthenticated:, and said so.
    for (const wide of ['0.0.0.0/0', '::/0', '::ffff:0.0.0.0/96', '192.0.2.1|0.0.0.0/00']) {
      const all = settings('', `[allow]\nsenders = ceo@partner.test[${wide}]\n`);
      assert.match(all.warnings.join('\n'), /names every address \([^)]+\) as its sending server: anyone can forge that sender/, wide);
    }
    assert.deepEqual(settings('', '[allow]\nsenders = ceo@partner.test[192.0.2.0/24|2001:db8::/32]\n').warnings, []);
  });

  it('a From: in our own domain is never allowed by an entry alone, only with a named server', async () => {
    const s = settings('', '[lists]\nlocal_domains = example.com\n[allow]\nsenders = unauthenticated:example.com, ceo@example.com, web@example.com[192.0.2.10]\n');
    assert.match(s.warnings.join('\n'), /names our own domain example\.com: it never holds without a named sending server/);
    const forged = await run(s, { headers: ['From: ceo@example.com'], ip: '203.0.113.9', auth: 'none' });
    assert.equal(forged.ledger.forced, undefined);
    assert.match(forged.ledger.get('ALLOWLIST_NOT_HELD')!.detail, /one of our own domains/);
    const server = await run(s, { headers: ['From: web@example.com'], ip: '192.0.2.10' });
    assert.equal(server.ledger.forced?.action, 'accept');
  });

  it('two From: addresses are never allowed', async () => {
    const s = settings('', '[allow]\nsenders = unauthenticated:partner.test\n');
    const r = await run(s, { headers: ['From: bob@partner.test', 'From: eve@evil.test'] });
    assert.equal(r.ledger.forced, undefined);
  });

  it('a From: with no address is not allowed on the envelope sender; mail with no From: header at all is', async () => {
    const s = settings('', '[allow]\nsenders = partner.test\n');
    // SPF passes for partner.test's envelope (anyone on its shared ESP can), while the reader sees another name.
    const encoded = `=?utf-8?B?${Buffer.from('ceo@bank.test').toString('base64')}?=`;
    for (const from of [`From: ${encoded}`, 'From: ceo@bank.test:;', 'From: "Bank" <>']) {
      const r = await run(s, { headers: [from, 'Subject: x'], auth: 'envelope-spf' });
      assert.equal(r.ledger.forced, undefined, from);
    }
    const none = await run(s, { headers: ['Subject: no From: header'], auth: 'envelope-spf' });
    assert.equal(none.ledger.forced?.action, 'accept');
    assert.match(none.verdict.reason, /SPF pass for partner\.test/);
  });

  it('a user-level entry allows for that recipient only, and not when another recipient is on the message', async () => {
    const s = settings('', '[allow:alice@example.com]\nsenders = partner.test\n[allow:example.org]\nsenders = partner.test\n');
    assert.equal((await run(s, { auth: 'dmarc' })).ledger.forced?.action, 'accept');
    assert.equal((await run(s, { auth: 'dmarc', rcptTo: ['carol@example.com'] })).ledger.forced, undefined);
    const mixed = await run(s, { auth: 'dmarc', rcptTo: ['alice@example.com', 'carol@example.com'] });
    assert.equal(mixed.ledger.forced, undefined);
    assert.match(mixed.ledger.get('ALLOWLIST_NOT_HELD')!.detail, /allowed for alice@example\.com but not for carol@example\.com/);
    const domain = await run(s, { auth: 'dmarc', rcptTo: ['x@example.org', 'alice@example.com'] });
    assert.equal(domain.ledger.forced?.action, 'accept');
  });

  it('filter rules come before allow lists, allow lists before block lists', async () => {
    const s = settings('rule q\n  sender partner.test\n  action quarantine\n', '[allow]\nsenders = partner.test\n[block]\nsenders = partner.test\n');
    assert.equal((await run(s, { auth: 'dmarc' })).verdict.action, 'quarantine');
    const lists = settings('', '[allow]\nsenders = partner.test\n[block]\nsenders = partner.test\n');
    assert.equal((await run(lists, { auth: 'dmarc' })).ledger.forced?.action, 'accept');
    const blocked = await run(lists, { auth: 'none' });
    assert.equal(blocked.ledger.forced?.action, 'reject');
    assert.match(blocked.verdict.reason, /reject forced by block list \(everyone: partner\.test\)/);
  });

  it('block entries match the envelope sender or any From: address, for every recipient', async () => {
    const s = settings('', '[block:alice@example.com]\nsenders = evil.test\n');
    assert.equal((await run(s, { mailFrom: 'x@evil.test' })).ledger.forced?.action, 'reject');
    assert.equal((await run(s, { headers: ['From: x@evil.test'] })).ledger.forced?.action, 'reject');
    const partial = await run(s, { mailFrom: 'x@evil.test', rcptTo: ['alice@example.com', 'bob@example.com'] });
    assert.equal(partial.ledger.forced, undefined);
    assert.match(partial.ledger.get('BLOCKLIST')!.detail, /blocked by alice@example\.com only/);
  });

  it('lists do not apply to outbound mail', async () => {
    const s = settings('', '[block]\nsenders = partner.test\n');
    assert.equal((await run(s, { relaying: true })).ledger.forced, undefined);
  });

  it('run-time entries in the store count like ini entries', async () => {
    const s = settings('');
    const store = new SqliteListStore(join(tmp, 'runtime.sqlite'));
    await store.add('allow', 'user:alice@example.com', 'bob@partner.test');
    const ctx = ctxOf({ auth: 'from-aligned' });
    const ledger = new Ledger(table());
    ledger.addAll(await evaluateData(ctx, ledger, { settings: s, store: async () => store, log: silentLogger, dns }));
    assert.match(ledger.forced!.source, /allow list \(alice@example\.com: bob@partner\.test/);
    const failing = new Ledger(table());
    failing.addAll(await evaluateData(ctxOf({}), failing, { settings: s, store: async () => { throw new Error('disk gone'); }, log: silentLogger, dns }));
    assert.match(failing.get('RULES_LIST_ERROR')!.detail, /disk gone/);
    await store.close();
  });

  it('shared lists on an unreachable Redis: RULES_LIST_ERROR, not an empty list read as "no entries"', async () => {
    const s = settings('');
    const state = new RedisStore({ backend: 'redis', redisUrl: 'redis://127.0.0.1:1', prefix: 'mwtest:rules-down:', timeoutMs: 200, memoryMaxEntries: 1000 }, silentLogger);
    const store = new StateListStore(state);
    try {
      const ledger = new Ledger(table());
      ledger.addAll(await evaluateData(ctxOf({ auth: 'from-aligned' }), ledger, { settings: s, store: async () => store, log: silentLogger, dns }));
      assert.match(ledger.get('RULES_LIST_ERROR')!.detail, /run-time allow list unavailable: the shared state \(redis\) could not be read: /);
      assert.equal(ledger.forced, undefined, 'nothing forced either way');
    } finally {
      await state.close();
    }
  });

  it('bad entries are refused with the reason', () => {
    assert.throws(() => parseEntry('allow', 'bob@x.test[mail.x.test]'), /must be an IP or CIDR/);
    assert.throws(() => parseEntry('block', 'unauthenticated:x.test'), /only applies to allow/);
    for (const every of ['*', '*@*', '*@*.*', 'unauthenticated:*@*.*', '*.*', '?*@*.??*']) assert.throws(() => parseEntry('allow', every), /every sender/, every);
    for (const fine of ['*@partner.test', '*.partner.test', 'bob@*']) assert.doesNotThrow(() => parseEntry('allow', fine), fine);
    assert.throws(() => settings('', '[allow]\nsenders = a@b.test[nope]\n'), /mailward\.rules\.ini \[allow\] senders: "a@b\.test\[nope\]"/);
  });
});
