import assert from 'node:assert/strict';
import { type TestDnsServer, startDnsServer } from './support/dns-server';
import { canConnect, type HarakaInstance, removeDir, sendMail, simpleMessage, startHaraka } from './support/haraka';
import { type SinkMessage, type SmtpSink, startSmtpSink } from './support/smtp-sink';
import { waitFor } from './support/wait';
import { newsletter } from './outbound/support';

// Bulk routing with Haraka's own outbound delivery: a real Haraka relays for an
// authenticated user, queues to outbound (no queue plugin), and its get_mx hook
// chain decides where each message goes. Both destinations are SMTP servers of
// the test on 127.0.0.1.
//
// Port 25: an MX found in DNS is always delivered to on port 25 by Haraka (no
// setting changes that), and a test must not bind port 25. So for the domain
// remote.example a small test plugin listed AFTER mailward/plugins/outbound
// looks up the MX hosts with Haraka's own look-up (haraka-net-utils get_mx, the
// one outbound falls back to, against the test's DNS server) and only replaces
// the port. It sees only what mailward's get_mx left alone. For other.example
// nothing replaces the port: there we check that non-bulk mail goes to Haraka's
// built-in MX look-up and to port 25 of the MX (refused: nothing listens).

const THRESHOLD = 3;
const PASSWORDS = { alice: 'alice-secret-1', bob: 'bob-secret-2' };
const BULK_HELO = 'bulk.example.com';

/** Haraka's MX look-ups (haraka-net-utils' resolver) go to the test's DNS server. */
const dnsPlugin = (dns: TestDnsServer) => `'use strict';
exports.register = function () {
  require('haraka-net-utils/lib/dns_config').getDnsResolver().setServers(['${dns.server}']);
};
`;

/** The MX hosts of remote.example from Haraka's own look-up, on the normal sink's port instead of 25. */
const mxPortPlugin = (port: number) => `'use strict';
const net_utils = require('haraka-net-utils');
exports.hook_get_mx = function (next, hmail, domain) {
  if (domain !== 'remote.example') return next();
  net_utils.get_mx(domain).then(
    (mxs) => next(906, mxs.map((mx) => ({ exchange: mx.exchange, priority: mx.priority, port: ${port} }))),
    (err) => next(903, 'test MX look-up failed: ' + err.message),
  );
};
`;

const header = (text: string, name: string) => new RegExp(`^${name}: (.*)$`, 'mi').exec(text)?.[1]?.trim();
const rcpts = (messages: SinkMessage[]) => messages.flatMap((m) => m.rcptTo).sort();

describe('outbound end to end: Haraka delivers relayed bulk to the bulk relay, other mail to the MX', function () {
  this.timeout(120_000);
  let dns: TestDnsServer;
  let mx: SmtpSink;
  let relay: SmtpSink;
  let haraka: HarakaInstance;

  const send = (user: keyof typeof PASSWORDS, to: string, raw: string) =>
    sendMail({ port: haraka.port, from: `${user}@example.com`, to: [to], raw, auth: { user, pass: PASSWORDS[user] } });

  before(async () => {
    dns = await startDnsServer({
      'remote.example': { MX: [{ exchange: 'mx.remote.example', priority: 10 }] },
      'mx.remote.example': { A: ['127.0.0.1'] },
      'other.example': { MX: [{ exchange: 'mx.other.example', priority: 10 }] },
      'mx.other.example': { A: ['127.0.0.1'] },
    });
    [mx, relay] = await Promise.all([startSmtpSink('mx.remote.example'), startSmtpSink('bulk-relay.test')]);
    haraka = await startHaraka({
      plugins: [],
      pluginFiles: { test_dns_servers: dnsPlugin(dns), test_mx_port: mxPortPlugin(mx.port) },
      files: {
        // No queue plugin: relayed mail goes to Haraka's outbound queue. get_mx: mailward first.
        'plugins': [
          'test_no_system_rdns',
          'test_dns_servers',
          'rcpt_to.in_host_list',
          'auth/flat_file',
          'mailward/plugins/outbound',
          'test_mx_port',
          'mailward/plugins/tracking',
          'mailward/plugins/verdict',
        ].join('\n') + '\n',
        // The MX hosts are on loopback (local_mx_ok); the sinks offer no STARTTLS.
        'outbound.ini': 'local_mx_ok = true\nenable_tls = false\n',
        'mailward.ini': `[main]\ndata_dir = data\n[dns]\nservers = ${dns.server}\ntimeout_ms = 1000\n[state]\nbackend = memory\n[tracking]\nflush_interval_ms = 100\n[headers]\nalways = true\n`,
        'mailward.outbound.ini': `[bulk]\nthreshold = ${THRESHOLD}\nrelay = 127.0.0.1:${relay.port}\nbind_ip = 127.0.0.1\nbind_helo = ${BULK_HELO}\n`,
        'auth_flat_file.ini': `[core]\nmethods = PLAIN,LOGIN\n[users]\n${Object.entries(PASSWORDS).map(([u, p]) => `${u} = ${p}`).join('\n')}\n`,
      },
    });
  });
  after(async () => {
    await haraka?.stop();
    if (haraka) removeDir(haraka.dir);
    await Promise.all([mx?.stop(), relay?.stop(), dns?.stop()]);
  });

  it(`copies below the threshold go to the MX from DNS; from the ${THRESHOLD}rd on, tagged, to the bulk relay`, async () => {
    for (let n = 1; n <= 5; n++) {
      const r = await send('alice', `customer${n}@remote.example`, newsletter(n));
      assert.equal(r.code, 250, `copy ${n}: ${r.response}`);
      // One at a time, so which copies are bulk is certain (copy n counts n).
      if (n < THRESHOLD) await waitFor(`copy ${n} at the MX`, () => mx.messages.length === n);
    }
    const deliveries = () => mx.messages.length + relay.messages.length;
    await waitFor('5 deliveries', () => deliveries() >= 5, 20_000);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(deliveries(), 5, 'each copy is delivered once');

    // Non-bulk: the MX of remote.example from the test's DNS, as Haraka delivers any mail.
    assert.deepEqual(rcpts(mx.messages), ['customer1@remote.example', 'customer2@remote.example']);
    for (const m of mx.messages) {
      assert.equal(m.mailFrom, 'alice@example.com');
      assert.equal(header(m.raw, 'X-Mailward-Bulk'), undefined, 'non-bulk has no bulk header');
      assert.equal(m.helo, 'mx.example.com', 'normal mail uses the normal HELO');
      assert.match(m.raw, /^Received: .*Haraka outbound/m);
    }
    assert.ok(dns.queries.includes('MX remote.example'), dns.queries.join(', '));
    assert.ok(dns.queries.includes('A mx.remote.example'), dns.queries.join(', '));

    // Bulk: handed to [bulk] relay, with bind_helo, tagged with its count.
    assert.deepEqual(rcpts(relay.messages), ['customer3@remote.example', 'customer4@remote.example', 'customer5@remote.example']);
    for (const m of relay.messages) {
      const n = Number(/customer(\d)@/.exec(m.rcptTo[0]!)![1]);
      assert.equal(m.mailFrom, 'alice@example.com');
      assert.match(header(m.raw, 'X-Mailward-Bulk') ?? '', new RegExp(`^count=${n}; template=[0-9a-f]{12}; window=24h$`));
      assert.match(header(m.raw, 'X-Mailward-Status') ?? '', /OUTBOUND_BULK 0/);
      assert.equal(m.helo, BULK_HELO, 'bulk uses [bulk] bind_helo');
    }
  });

  it('bulk bypasses the MX look-up; non-bulk to a domain without the port stand-in goes to Haraka\'s own look-up and port 25', async function () {
    // Bulk for other.example: the relay, without asking DNS for other.example's MX.
    const bulk = await send('alice', 'customer6@other.example', newsletter(6, { domain: 'other.example' }));
    assert.equal(bulk.code, 250, bulk.response);
    await waitFor('the bulk copy for other.example at the relay', () => relay.messages.some((m) => m.rcptTo.includes('customer6@other.example')));
    assert.equal(header(relay.messages.at(-1)!.raw, 'X-Mailward-Bulk')?.startsWith('count=6;'), true);
    assert.ok(!dns.queries.includes('MX other.example'), `bulk asked DNS: ${dns.queries.join(', ')}`);

    // Non-bulk (bob, another text) for other.example: mailward's get_mx leaves it to Haraka,
    // which looks the MX up in DNS and connects to port 25 of it (nothing listens there, so it
    // is deferred in Haraka's queue: a test cannot bind port 25 to receive it).
    if (await canConnect(25)) this.skip();
    const mxBefore = mx.messages.length;
    const relayBefore = relay.messages.length;
    const personal = simpleMessage({ from: 'bob@example.com', to: 'friend@other.example', subject: 'Lunch?', body: 'Lunch on Friday at noon?\r\n' });
    const r = await send('bob', 'friend@other.example', personal);
    assert.equal(r.code, 250, r.response);
    await waitFor('Haraka asking DNS for the MX of other.example', () => dns.queries.includes('MX other.example') && dns.queries.includes('A mx.other.example'));
    await waitFor('Haraka connecting to port 25 of the MX', () => /\[outbound\] Failed to get socket: connect ECONNREFUSED 127\.0\.0\.1:25$/m.test(haraka.logs()));
    await new Promise((done) => setTimeout(done, 300));
    assert.equal(relay.messages.length, relayBefore, 'non-bulk never goes to the bulk relay');
    assert.equal(mx.messages.length, mxBefore, 'the port stand-in is for remote.example only');
  });
});
