import assert from 'node:assert/strict';
import { deleteRedisKeys, uniquePrefix } from './reputation/setup';
import { startDnsServer, type TestDnsServer } from './support/dns-server';
import { type HarakaInstance, readDelivered, removeDir, sendMail, simpleMessage, startHaraka } from './support/haraka';

// Two real Haraka instances with mailward/reputation, sharing reputation through
// Redis (127.0.0.1:6379, a prefix of their own); DNS from the test server.

function statusOf(file: string): string {
  return /^X-Mailward-Status: (.*)$/m.exec(readDelivered(file))?.[1] ?? '';
}

let sequence = 0;
/** A message with a subject of its own, to find its delivered copy. */
function tagged(): { raw: string; subject: string } {
  const subject = `rep-e2e-${process.pid}-${++sequence}`;
  return { raw: simpleMessage({ subject }), subject };
}

/** X-Mailward-Status of the delivered copy of the message with this subject. */
function statusFor(node: HarakaInstance, subject: string): string {
  const file = node.delivered().find((f) => readDelivered(f).includes(`Subject: ${subject}`));
  assert.ok(file, `no delivered message with subject ${subject}`);
  return statusOf(file);
}

describe('reputation end to end: two Haraka nodes sharing Redis', function () {
  this.timeout(60_000);
  let dns: TestDnsServer;
  let a: HarakaInstance;
  let b: HarakaInstance;
  const prefix = uniquePrefix('reputation-e2e');

  before(async () => {
    dns = await startDnsServer({ '1.7.0.127.bl.test': { A: ['127.0.0.2'] } });
    const files = {
      'mailward.ini': `[main]\ndata_dir = data\n[dns]\nservers = ${dns.server}\ntimeout_ms = 300\n[state]\nbackend = redis\nprefix = ${prefix}\n`,
      'mailward.reputation.ini': [
        '[main]',
        // Test clients connect from 127.x.y.z.
        'skip_internal = false',
        '[practices]',
        'enabled = false',
        '[learned]',
        'learn_spam_score = 1000',
        'learn_ham_score = -1000',
        '[spamtrap]',
        'addresses = trap@example.com',
        '[zone:bl.test]',
        '127.0.0.2 = TEST_SBL:3',
        '',
      ].join('\n'),
    };
    [a, b] = await Promise.all([
      startHaraka({ plugins: ['mailward/plugins/reputation'], files }),
      startHaraka({ plugins: ['mailward/plugins/reputation'], files }),
    ]);
  });
  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await dns?.stop();
    for (const h of [a, b]) if (h) removeDir(h.dir);
    await deleteRedisKeys(prefix);
  });

  it('refuses a spam-trap recipient at RCPT and delivers to the others', async () => {
    const result = await sendMail({ port: a.port, from: 'promo@trapped.test', to: ['trap@example.com', 'bob@example.com'], raw: simpleMessage(), localAddress: '127.0.4.1' });
    assert.deepEqual(result.rejected, ['trap@example.com'], JSON.stringify(result));
    assert.deepEqual(result.accepted, ['bob@example.com']);
  });

  it('a trap hit on one node raises the score the other node gives that IP', async () => {
    await sendMail({ port: a.port, from: 'promo@spamco.test', to: ['trap@example.com', 'bob@example.com'], raw: simpleMessage(), localAddress: '127.0.5.1' });
    const m1 = tagged();
    const clean = await sendMail({ port: b.port, from: 'x@clean.test', to: ['bob@example.com'], raw: m1.raw, localAddress: '127.0.5.2' });
    assert.equal(clean.code, 250);
    assert.doesNotMatch(statusFor(b, m1.subject), /REP_IP_BAD/);
    const m2 = tagged();
    const second = await sendMail({ port: b.port, from: 'other@elsewhere.test', to: ['bob@example.com'], raw: m2.raw, localAddress: '127.0.5.1' });
    assert.equal(second.code, 250);
    // A trap hit weighs 2 and decays from the moment it was counted: a slow run reads 1.99.
    const weight = Number(/REP_IP_BAD (-?[\d.]+)/.exec(statusFor(b, m2.subject))?.[1]);
    assert.ok(weight > 1.9 && weight <= 2, `REP_IP_BAD ${weight}`);
  });

  it('lists the client from a DNS list, and a silent DNS server only adds TEMPERROR (mail accepted, bounded time)', async () => {
    const m = tagged();
    const listed = await sendMail({ port: a.port, from: 'a@sender.test', to: ['bob@example.com'], raw: m.raw, localAddress: '127.0.7.1' });
    assert.equal(listed.code, 250);
    assert.match(statusFor(a, m.subject), /TEST_SBL 3\b/);

    dns.mode = 'silent';
    try {
      const started = Date.now();
      const m2 = tagged();
      const result = await sendMail({ port: b.port, from: 'a@sender.test', to: ['bob@example.com'], raw: m2.raw, localAddress: '127.0.7.9' });
      const elapsed = Date.now() - started;
      assert.equal(result.code, 250, result.response);
      // DNSBL_TEMPERROR (below) is what the 300 ms DNS deadline promises; the bound, far above the look-ups it
      // allows, only catches one left to the resolver's own retries (23 s by default) or one that never ends.
      assert.ok(elapsed < 15_000, `took ${elapsed} ms`);
      assert.match(statusFor(b, m2.subject), /DNSBL_TEMPERROR 0\b/);
    } finally {
      dns.mode = 'normal';
    }
  });

  it('counts unknown recipients per IP across nodes and flags a directory harvest', async () => {
    // Recipients outside host_list are refused by Haraka itself (no plugin accepts them).
    for (let i = 0; i < 12; i++) {
      const node = i % 2 ? a : b;
      await sendMail({ port: node.port, from: 'h@harvest.test', to: [`user${i}@unknown-${i}.test`], raw: simpleMessage(), localAddress: '127.0.8.1' });
    }
    const m = tagged();
    const result = await sendMail({ port: a.port, from: 'h@harvest.test', to: ['bob@example.com'], raw: m.raw, localAddress: '127.0.8.1' });
    assert.equal(result.code, 250, result.response);
    assert.match(statusFor(a, m.subject), /DIRECTORY_HARVEST/);
  });
});
