import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { OutboundLedger } from '../lib/checks/outbound';
import { createContext } from '../lib/message';
import { Runtime } from '../lib/runtime';
import { MemoryStore } from '../lib/state';
import { closeRuntime } from '../plugins/shared/runtime';
import { startDnsServer, type TestDnsServer } from './support/dns-server';
import { arfReport, deliveryStatus } from './outbound/support';
import { repoPath } from './support/paths';
import { deleteRedisKeys, REDIS_URL, uniqueRedisPrefix } from './support/redis';
import { createClient } from 'redis';

// The plugin module as Haraka loads it (plain hook functions on an object).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const plugin = require('../plugins/outbound') as Record<string, any>;

const OK = 906;
const DENYSOFT = 903;
const CONT = undefined;

/** Calls a Haraka-style hook and resolves with what it passed to next(). */
function callHook(name: string, self: object, ...args: unknown[]): Promise<[number | undefined, unknown]> {
  return new Promise((resolve) => plugin[name].call(self, (code?: number, msg?: unknown) => resolve([code, msg]), ...args));
}

function fakePlugin(files: Record<string, string>): object {
  const log = () => {};
  return {
    name: 'mailward/plugins/outbound',
    config: { get: (name: string) => (files[name] ? files[name]!.split('\n') : null) },
    register_hook() {},
    logdebug: log,
    loginfo: log,
    logwarn: log,
    logerror: (m: string) => {
      throw new Error(`plugin logged an error: ${m}`);
    },
  };
}

/** The outbound module's checks on one message, through a Runtime (no verdict). */
async function runOutbound(runtime: Runtime, init: Parameters<typeof createContext>[0], notes: Record<string, unknown> = {}) {
  const ctx = createContext(init);
  Object.assign(ctx.notes, notes);
  const ledger = runtime.newLedger();
  for (const phase of ['mail', 'rcpt', 'data'] as const) await runtime.runPhase(['outbound'], phase, ctx, ledger);
  return { ctx, ledger };
}

const hmail = (notes: Record<string, unknown>, domain = 'remote.example') => ({ todo: { notes, domain, uuid: 'U1', rcpt_to: [] as unknown[] }, logerror() {} });

describe('outbound plugin: delivery routing (get_mx) and Haraka bounces', function () {
  this.timeout(20_000);
  let dns: TestDnsServer;
  let self: object;

  before(async () => {
    dns = await startDnsServer({ 'remote.example': { MX: [{ exchange: 'mx1.remote.example', priority: 10 }, { exchange: 'mx2.remote.example', priority: 20 }] } });
    self = fakePlugin({
      'mailward.ini': `[main]\ndata_dir = data\n[dns]\nservers = ${dns.server}\ntimeout_ms = 500\n[tracking]\nenabled = false\n`,
      'mailward.outbound.ini': '[bulk]\nbind_ip = 192.0.2.26\n',
    });
  });
  after(async () => {
    await closeRuntime();
    await dns.stop();
  });

  it('leaves non-bulk mail to Haraka (CONT)', async () => {
    assert.deepEqual(await callHook('mailward_extra_get_mx', self, hmail({ mailward_outbound: { sender: 'alice', bulk: false } }), 'remote.example'), [CONT, undefined]);
    assert.deepEqual(await callHook('mailward_extra_get_mx', self, hmail({}), 'remote.example'), [CONT, undefined]);
  });

  it('bulk with bind_ip: the MX hosts (mailward resolver) bound to the bulk address', async () => {
    const route = { bindIp: '192.0.2.26', bindHelo: 'news.example.com', relay: '' };
    const [code, mx] = await callHook('mailward_extra_get_mx', self, hmail({ mailward_outbound: { sender: 'alice', bulk: true, route } }), 'remote.example');
    assert.equal(code, OK);
    assert.deepEqual(
      (mx as any[]).sort((a, b) => a.priority - b.priority),
      [
        { exchange: 'mx1.remote.example', priority: 10, bind: '192.0.2.26', bind_helo: 'news.example.com' },
        { exchange: 'mx2.remote.example', priority: 20, bind: '192.0.2.26', bind_helo: 'news.example.com' },
      ],
    );
  });

  it('bulk with bind_ip: a failed MX look-up defers (Haraka retries); a domain without MX is its own mail host', async () => {
    const route = { bindIp: '192.0.2.26', bindHelo: 'news.example.com', relay: '' };
    const bulk = () => hmail({ mailward_outbound: { sender: 'alice', bulk: true, route } }, 'broken.example');
    dns.mode = 'servfail';
    try {
      const [code, message] = await callHook('mailward_extra_get_mx', self, bulk(), 'broken.example');
      assert.equal(code, DENYSOFT);
      assert.match(String(message), /MX look-up for broken\.example failed: DNS ESERVFAIL/);
    } finally {
      dns.mode = 'normal';
    }
    const [code, mx] = await callHook('mailward_extra_get_mx', self, bulk(), 'no-mx.example');
    assert.equal(code, OK);
    assert.deepEqual(mx, [{ exchange: 'no-mx.example', priority: 0, bind: '192.0.2.26', bind_helo: 'news.example.com' }]);
  });

  it('bulk with a relay: handed to it', async () => {
    const route = { bindIp: '', bindHelo: '', relay: 'bulk-relay.example.com:2525' };
    const [code, mx] = await callHook('mailward_extra_get_mx', self, hmail({ mailward_outbound: { sender: 'alice', bulk: true, route } }), 'remote.example');
    assert.equal(code, OK);
    assert.deepEqual(mx, { exchange: 'bulk-relay.example.com', port: 2525, priority: 0, bind: undefined, bind_helo: undefined });
  });

  it("Haraka's own hard bounce: 5.1.x recipients count against the sender once, others not", async () => {
    const h = hmail({ mailward_outbound: { sender: 'zed', bulk: false } });
    h.todo.rcpt_to = [
      { address: 'gone@remote.example', dsn_status: '5.1.1' },
      { address: 'full@remote.example', dsn_status: '5.2.2' },
    ];
    assert.deepEqual(await callHook('mailward_extra_bounce', self, h, new Error('Some recipients failed')), [CONT, undefined]);
    await callHook('mailward_extra_bounce', self, h, new Error('again'));
    // The plugin's runtime uses the in-process store; read it through the same runtime.
    const { runtimeFor } = require('../plugins/shared/runtime');
    const runtime = runtimeFor(self);
    const settings = runtime.config.modules.find((m: any) => m.module.name === 'outbound').settings;
    const counts = await new OutboundLedger(runtime.services.state, settings, Date.now).counts('zed');
    assert.equal(counts.invalid, 1);
  });

  it("Haraka's bounce and the DSN it sends back through our MX count the same invalid recipient once", async () => {
    const { runtimeFor } = require('../plugins/shared/runtime');
    const runtime: Runtime = runtimeFor(self);
    const settings = runtime.config.modules.find((m) => m.module.name === 'outbound')!.settings as any;
    const ledger = new OutboundLedger(runtime.services.state, settings, Date.now);
    await ledger.recordMessage('<rel.9@example.com>', 'yan');
    const h = hmail({ mailward_outbound: { sender: 'yan', messageId: '<rel.9@example.com>', bulk: false } });
    h.todo.rcpt_to = [{ address: 'Nobody@other.example', dsn_status: '5.1.1' }];
    await callHook('mailward_extra_bounce', self, h, new Error('Some recipients failed'));
    assert.equal((await ledger.counts('yan')).invalid, 1);
    const dsn = readFileSync(repoPath('test', 'fixtures', 'outbound', 'malformed', 'delivery-status.eml'), 'utf8')
      .replace('--b5--', '--b5\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: a@example.com\r\nMessage-ID: <rel.9@example.com>\r\n\r\n--b5--');
    const { ledger: book } = await runOutbound(runtime, { ip: '203.0.113.9', mailFrom: '', rcptTo: ['a@example.com'], raw: dsn });
    assert.equal(book.has('OUTBOUND_INVALID_RCPT'), false);
    assert.equal((await ledger.counts('yan')).invalid, 1);
  });
});

describe('outbound module: relayed mail, bounces of it and feedback reports (Runtime, memory state)', () => {
  let runtime: Runtime;
  const scan = async (init: Parameters<typeof createContext>[0], notes: Record<string, unknown> = {}) => {
    const { ctx, ledger } = await runOutbound(runtime, init, notes);
    const verdict = runtime.decide(ctx, ledger);
    await runtime.afterVerdict(ctx, verdict);
    return { ctx, ledger, verdict };
  };
  const ledgerOf = () => new OutboundLedger(runtime.services.state, runtime.config.modules.find((m) => m.module.name === 'outbound')!.settings, Date.now);

  before(() => {
    runtime = Runtime.load({
      texts: {
        'mailward.ini': '[main]\ndata_dir = data\n[tracking]\nenabled = false\n',
        'mailward.outbound.ini': '[complaints]\naddresses = fbl@example.com\n[bulk]\nthreshold = 2\n',
      },
    });
    assert.equal(runtime.services.state instanceof MemoryStore, true);
  });
  after(() => runtime.close());

  it('records relayed mail; a DSN about it counts its invalid recipient once; a DSN about unknown mail nothing', async () => {
    const raw = 'From: a@example.com\r\nTo: x@remote.example\r\nSubject: hi\r\nMessage-ID: <rel.1@example.com>\r\n\r\nHello.\r\n';
    const sent = await scan({ ip: '10.0.0.1', relaying: true, authUser: 'frank', mailFrom: 'a@example.com', rcptTo: ['x@remote.example', 'Nobody@other.example'], raw });
    assert.equal(sent.verdict.action, 'accept');
    assert.equal((await ledgerOf().counts('frank')).sent, 2);
    const dsn = readFileSync(repoPath('test', 'fixtures', 'outbound', 'malformed', 'delivery-status.eml'), 'utf8')
      .replace('--b5--', '--b5\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: a@example.com\r\nMessage-ID: <rel.1@example.com>\r\n\r\n--b5--');
    const first = await scan({ ip: '203.0.113.9', mailFrom: '', rcptTo: ['a@example.com'], raw: dsn });
    assert.match(first.ledger.get('OUTBOUND_INVALID_RCPT')!.detail, /1 invalid recipient\(s\) of <rel\.1@example\.com> counted against frank: nobody@other\.example/);
    const again = await scan({ ip: '203.0.113.9', mailFrom: '', rcptTo: ['a@example.com'], raw: dsn });
    assert.equal(again.ledger.has('OUTBOUND_INVALID_RCPT'), false);
    assert.equal((await ledgerOf().counts('frank')).invalid, 1);
    const unknown = await scan({ ip: '203.0.113.9', mailFrom: '', rcptTo: ['a@example.com'], raw: dsn.replace('rel.1@', 'other.1@') });
    assert.equal(unknown.ledger.has('OUTBOUND_INVALID_RCPT'), false);

    // Anyone who got the message knows its Message-ID: a "bounce" naming 200 made-up recipients counts none of them.
    const made = Array.from({ length: 200 }, (_, i) => `Final-Recipient: rfc822; fake${i}@remote.example\r\nAction: failed\r\nStatus: 5.1.1\r\n`).join('\r\n');
    const forged = dsn.replace('Final-Recipient: rfc822; nobody@other.example', `${made}\r\nFinal-Recipient: rfc822; x@remote.example`);
    // (From an MTA authenticated for remote.example: an unauthenticated one's single count per message is spent.)
    const remoteAuth = { fromDomain: '', spf: { result: 'pass', domain: 'mx.remote.example' }, dkim: [], dmarc: { result: 'none' } };
    const result = await scan({ ip: '203.0.113.66', mailFrom: '', rcptTo: ['a@example.com'], raw: forged }, { auth: remoteAuth });
    assert.match(result.ledger.get('OUTBOUND_INVALID_RCPT')!.detail, /^1 invalid recipient\(s\) of <rel\.1@example\.com> counted against frank: x@remote\.example \(200 others not recipients of that message\)$/);
    assert.equal((await ledgerOf().counts('frank')).invalid, 2);
    assert.equal(await ledgerOf().suspension('frank'), null);
  });

  it('a DSN naming many recipients of one message counts them all only from an MTA authenticated for their domain; otherwise one per message', async () => {
    // alice invites 55 partners and mallory; mallory knows the Message-ID and the To: list.
    const partners = Array.from({ length: 55 }, (_, i) => `p${i}@partners.example`);
    const raw = 'From: alice@example.com\r\nSubject: invitation\r\nMessage-ID: <inv.1@example.com>\r\n\r\nYou are invited.\r\n';
    await scan({ ip: '10.0.0.1', relaying: true, authUser: 'ivy', mailFrom: 'alice@example.com', rcptTo: [...partners, 'mallory@evil.example'], raw });
    const dsn = (failed: string[]) => deliveryStatus('<inv.1@example.com>', failed);
    const auth = (spfDomain: string, dkimDomains: string[] = []) => ({
      fromDomain: '',
      spf: { result: spfDomain ? 'pass' : 'none', domain: spfDomain },
      dkim: dkimDomains.map((domain) => ({ result: 'pass', domain, selector: 's1' })),
      dmarc: { result: 'none' },
    });

    // Forged from anywhere (HELO and DKIM of mallory's own domain): the first partner counts, no more.
    const forged = await scan({ ip: '203.0.113.66', mailFrom: '', rcptTo: ['alice@example.com'], raw: dsn(partners) }, { auth: auth('mx.evil.example', ['evil.example']) });
    assert.match(
      forged.ledger.get('OUTBOUND_INVALID_RCPT')!.detail,
      /^1 invalid recipient\(s\) of <inv\.1@example\.com> counted against ivy: p0@partners\.example \(54 others not counted: the reporting MTA is not authenticated by SPF or DKIM for their domain, and one such recipient counts per message\)$/,
    );
    // Again, each partner named first in turn: that single count per message is spent.
    for (let i = 1; i < 4; i++) {
      const again = await scan({ ip: '203.0.113.66', mailFrom: '', rcptTo: ['alice@example.com'], raw: dsn([partners[i]!]) });
      assert.equal(again.ledger.has('OUTBOUND_INVALID_RCPT'), false);
    }
    assert.equal((await ledgerOf().counts('ivy')).invalid, 1);
    assert.equal(await ledgerOf().suspension('ivy'), null, '1 / max(56, 1000) is no reason to suspend');
    // A co-recipient with a mailbox at the partners' provider authenticates for their domain too, but sends as
    // herself, not with the null sender a mail server's report comes with: it vouches for no one.
    const colleague = await scan({ ip: '198.51.100.5', mailFrom: 'mallory@partners.example', rcptTo: ['alice@example.com'], raw: dsn(partners.slice(4)) }, { auth: auth('partners.example', ['partners.example']) });
    assert.equal(colleague.ledger.has('OUTBOUND_INVALID_RCPT'), false);
    assert.equal((await ledgerOf().counts('ivy')).invalid, 1);

    // SPF passes for the reporting MTA's HELO name in the partners' organisational domain: every recorded one counts, once.
    const real = await scan({ ip: '198.51.100.5', mailFrom: '', rcptTo: ['alice@example.com'], raw: dsn(partners) }, { auth: auth('mx1.partners.example') });
    assert.match(real.ledger.get('OUTBOUND_INVALID_RCPT')!.detail, /^54 invalid recipient\(s\) of <inv\.1@example\.com> counted against ivy: p0@partners\.example, p1@/);
    assert.equal((await ledgerOf().counts('ivy')).invalid, 55);
    assert.match(String((await ledgerOf().suspension('ivy'))?.reason), /invalid-recipient rate 5\.5/);

    // DKIM alike: a signature of the recipients' organisational domain vouches; of another domain, it does not.
    const team = ['a@eu.team.example', 'b@us.team.example', 'c@other.example'];
    await scan({ ip: '10.0.0.1', relaying: true, authUser: 'jon', mailFrom: 'jon@example.com', rcptTo: team, raw: raw.replace('inv.1@', 'inv.2@') });
    const signed = await scan({ ip: '198.51.100.6', mailFrom: '', rcptTo: ['jon@example.com'], raw: deliveryStatus('<inv.2@example.com>', team) }, { auth: auth('', ['team.example']) });
    assert.match(signed.ledger.get('OUTBOUND_INVALID_RCPT')!.detail, /^3 invalid recipient\(s\) of <inv\.2@example\.com> counted against jon: a@eu\.team\.example, b@us\.team\.example, c@other\.example$/);
  });

  it('a report needs its reporter authenticated by default; with DMARC pass it is counted; reports are forced accepted', async () => {
    await ledgerOf().recordMessage('<fb.1@example.com>', 'frank');
    const raw = arfReport({ mid: '<fb.1@example.com>' });
    const untrusted = await scan({ ip: '203.0.113.7', mailFrom: 'fbl@reports.example.org', rcptTo: ['fbl@example.com'], raw });
    assert.match(untrusted.ledger.get('FEEDBACK_REPORT')!.detail, /^untrusted: .*could not be authenticated/);
    assert.equal(untrusted.verdict.action, 'accept');
    assert.equal(untrusted.verdict.forced?.source, 'outbound feedback');
    const auth = { fromDomain: 'reports.example.org', dmarc: { result: 'pass' }, spf: { result: 'none' }, dkim: [] };
    const trusted = await scan({ ip: '203.0.113.7', mailFrom: 'fbl@reports.example.org', rcptTo: ['fbl@example.com'], raw }, { auth });
    assert.match(trusted.ledger.get('FEEDBACK_REPORT')!.detail, /^counted: abuse report .* against frank \(found by Message-ID\)/);
    assert.deepEqual((trusted.ctx.notes.outbound as any).consume, ['fbl@example.com']);
    const failing = await scan({ ip: '203.0.113.7', mailFrom: 'fbl@reports.example.org', rcptTo: ['fbl@example.com'], raw }, { auth: { ...auth, dmarc: { result: 'fail' } } });
    assert.match(failing.ledger.get('FEEDBACK_REPORT')!.detail, /^untrusted: .*fails DMARC/);
  });

  it('bulk: tagged from the threshold on, the warning without List-Unsubscribe, a forged bulk header removed', async () => {
    const body = 'our spring collection is here and every order this week ships for free with a small gift from our workshop and garden.\r\n';
    const raw = (n: number) => `From: shop@example.com\r\nTo: c${n}@remote.example\r\nSubject: offers\r\nX-Mailward-Bulk: forged\r\n\r\nDear Customer${n},\r\n${body}`;
    const one = await scan({ ip: '10.0.0.1', relaying: true, authUser: 'gina', mailFrom: 'shop@example.com', rcptTo: ['c1@remote.example'], raw: raw(1) });
    assert.equal(one.ledger.has('OUTBOUND_BULK'), false);
    assert.deepEqual(one.ctx.headerChanges.remove, ['X-Mailward-Bulk']);
    assert.equal(one.ctx.headerChanges.add.filter(([n]) => n === 'Message-ID').length, 1, 'a Message-ID is added when missing');
    const two = await scan({ ip: '10.0.0.1', relaying: true, authUser: 'gina', mailFrom: 'shop@example.com', rcptTo: ['c2@remote.example'], raw: raw(2) });
    assert.ok(two.ledger.has('OUTBOUND_BULK'));
    assert.ok(two.ledger.has('OUTBOUND_BULK_NO_UNSUBSCRIBE'));
    assert.match(two.ctx.headerChanges.add.find(([n]) => n === 'X-Mailward-Bulk')![1], /^count=2; template=[0-9a-f]{12}; window=24h$/);
    assert.equal((await ledgerOf().counts('gina')).bulk, 1);
  });
  it('bulk: an HTML-only message is fingerprinted by its visible text, in linear time (560 KB of "<script" took 12 s)', async () => {
    // Review (stop 22): the fingerprint's HTML strip was a lazy regex from each "<script" to its close: quadratic.
    const raw = `From: web@example.com\r\nTo: x@remote.example\r\nSubject: form\r\nContent-Type: text/html\r\n\r\n<p>hello</p>${'<script'.repeat(80_000)}\r\n`;
    const started = Date.now();
    const one = await scan({ ip: '10.0.0.2', relaying: true, mailFrom: 'web@example.com', rcptTo: ['x@remote.example'], raw });
    // hang guard, not a performance test: typical 60ms (the whole scan).
    assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
    assert.equal(one.ledger.has('OUTBOUND_BULK'), false);
    // Visible text, not markup: two HTML letters of one template with different markup count as one template.
    const letter = (n: number, markup: string) => `From: news@example.com\r\nTo: r${n}@remote.example\r\nSubject: news\r\nContent-Type: text/html\r\n\r\n<${markup}>Dear Reader${n}, our autumn catalogue is out with new tools seeds and garden furniture for every season and budget.</${markup}><style>p{color:red}</style>\r\n`;
    await scan({ ip: '10.0.0.3', relaying: true, authUser: 'hugo', mailFrom: 'news@example.com', rcptTo: ['r1@remote.example'], raw: letter(1, 'p') });
    const second = await scan({ ip: '10.0.0.3', relaying: true, authUser: 'hugo', mailFrom: 'news@example.com', rcptTo: ['r2@remote.example'], raw: letter(2, 'div') });
    assert.ok(second.ledger.has('OUTBOUND_BULK'));
  });
});

describe('outbound module: a Redis that refuses a command (Runtime, Redis state)', function () {
  this.timeout(20_000);
  const prefix = uniqueRedisPrefix('ob-refused');
  let runtime: Runtime;
  const scan = (init: Parameters<typeof createContext>[0]) => runOutbound(runtime, init);

  before(() => {
    runtime = Runtime.load({
      texts: {
        'mailward.ini': `[main]\ndata_dir = data\n[tracking]\nenabled = false\n[state]\nbackend = redis\nredis_url = ${REDIS_URL}\nprefix = ${prefix}\n`,
        'mailward.outbound.ini': '[complaints]\naddresses = fbl@example.com\nrequire_authenticated = false\n',
      },
    });
  });
  after(async () => {
    await runtime.close();
    await deleteRedisKeys(prefix);
  });

  it('a report whose count Redis refused (here WRONGTYPE; READONLY, OOM alike) is deferred, not counted in one process\'s memory, and counts when sent again', async () => {
    const settings = runtime.config.modules.find((m) => m.module.name === 'outbound')!.settings as any;
    await new OutboundLedger(runtime.services.state, settings, Date.now).recordMessage('<wt.1@example.com>', 'walt');
    const client = createClient({ url: REDIS_URL });
    await client.connect();
    try {
      // The sender's counters under a key of the wrong type: Redis answers HINCRBY with an error.
      await client.set(`${prefix}ob:stats:walt`, 'not a hash');
      const raw = arfReport({ mid: '<wt.1@example.com>' });
      const refused = await scan({ ip: '203.0.113.7', mailFrom: 'fbl@reports.example.org', rcptTo: ['fbl@example.com'], raw });
      assert.equal(runtime.services.state.degraded, false, 'Redis is up: only a command failed');
      assert.match(refused.ledger.get('FEEDBACK_REPORT')!.detail, /^deferred: .*not counted: the shared state \(Redis\) is unavailable or refused a command/);
      assert.equal((refused.ctx.notes.outbound as any).complaint.status, 'deferred');
      await client.del(`${prefix}ob:stats:walt`);
      // A refused command for someone else at the same moment is no reason to defer this one.
      await client.set(`${prefix}ob:stats:zed`, 'not a hash');
      await new OutboundLedger(runtime.services.state, settings, Date.now).add('zed', { sent: 1 });
      const again = await scan({ ip: '203.0.113.7', mailFrom: 'fbl@reports.example.org', rcptTo: ['fbl@example.com'], raw });
      assert.match(again.ledger.get('FEEDBACK_REPORT')!.detail, /^counted: /);
      assert.equal(await client.hGet(`${prefix}ob:stats:walt`, Object.keys(await client.hGetAll(`${prefix}ob:stats:walt`))[0]!), '1');
    } finally {
      await client.quit();
    }
  });
});
