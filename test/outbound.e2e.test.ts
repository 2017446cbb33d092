import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { main } from '../lib/cli/main';
import { type HarakaInstance, removeDir, sendMail, simpleMessage, startHaraka } from './support/haraka';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy';
import { startDnsServer, type TestDnsServer } from './support/dns-server';
import { arfReport, deleteRedisKeys, deliveryStatus, newsletter, uniquePrefix } from './outbound/support';

const MESSAGES = 2000;
const WORKERS = 25;
const BULK_THRESHOLD = 20;
const USERS = { alice: 'alice-secret-1', bob: 'bob-secret-2' };

function files(prefix: string, node: string): Record<string, string> {
  return {
    'mailward.ini': `[main]\nnode_name = ${node}\ndata_dir = data\n[state]\nbackend = redis\nprefix = ${prefix}\ntimeout_ms = 2000\n[tracking]\nflush_interval_ms = 100\n[headers]\nalways = true\n`,
    'mailward.outbound.ini': `[complaints]\naddresses = fbl@example.com\nrequire_authenticated = false\n[bulk]\nthreshold = ${BULK_THRESHOLD}\nbind_ip = 127.0.0.1\n`,
    // Authenticated submission: an authenticated client relays (connection.relaying).
    'auth_flat_file.ini': `[core]\nmethods = PLAIN,LOGIN\n[users]\n${Object.entries(USERS).map(([u, p]) => `${u} = ${p}`).join('\n')}\n`,
  };
}

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

const header = (text: string, name: string) => new RegExp(`^${name}: (.*)$`, 'mi').exec(text)?.[1]?.trim();

describe('outbound end to end: two Haraka nodes with authenticated relaying, shared Redis', function () {
  this.timeout(300_000);
  const prefix = uniquePrefix('e2e');
  let a: HarakaInstance;
  let b: HarakaInstance;
  const aliceIds: string[] = [];

  const send = (node: HarakaInstance, user: keyof typeof USERS, raw: string, to = ['someone@remote.example']) =>
    sendMail({ port: node.port, from: `${user}@example.com`, to, raw, auth: { user, pass: USERS[user] } });
  const report = (node: HarakaInstance, raw: string, to = ['fbl@example.com']) => sendMail({ port: node.port, from: 'fbl@reports.example.org', to, raw, localAddress: '127.0.0.50' });

  before(async () => {
    [a, b] = await Promise.all([
      startHaraka({ plugins: ['auth/flat_file', 'mailward/plugins/outbound'], files: files(prefix, 'mx-a') }),
      startHaraka({ plugins: ['auth/flat_file', 'mailward/plugins/outbound'], files: files(prefix, 'mx-b') }),
    ]);
  });
  after(async () => {
    for (const node of [a, b]) {
      await node?.stop();
      if (node) removeDir(node.dir);
    }
    await deleteRedisKeys(prefix);
  });

  it(`${MESSAGES} templated messages from one user, no complaints: all accepted, tagged bulk from the threshold on, never suspended`, async () => {
    let next = 0;
    const codes: number[] = [];
    const started = Date.now();
    await Promise.all(
      Array.from({ length: WORKERS }, async () => {
        while (next < MESSAGES) {
          const n = next++;
          const r = await send(a, 'alice', newsletter(n), [`customer${n}@remote.example`]);
          codes.push(r.code);
          if (r.code !== 250) assert.fail(`message ${n}: ${r.code} ${r.response}`);
        }
      }),
    );
    const elapsed = (Date.now() - started) / 1000;
    assert.equal(codes.filter((c) => c === 250).length, MESSAGES);
    const stored = a.delivered().map((f) => readFileSync(f, 'utf8'));
    assert.equal(stored.length, MESSAGES);
    const bulk = stored.filter((t) => header(t, 'X-Mailward-Bulk'));
    // Counting is atomic in Redis: the first threshold-1 copies are not bulk yet, the rest are.
    // Each copy counts itself before it reads, so up to WORKERS early copies arriving together
    // read each other's increments and are bulk too (with 25 at once: sometimes all of them).
    assert.ok(bulk.length >= MESSAGES - BULK_THRESHOLD + 1 && bulk.length <= MESSAGES - BULK_THRESHOLD + 1 + WORKERS, `${bulk.length} tagged bulk`);
    assert.match(header(bulk[0]!, 'X-Mailward-Bulk')!, /^count=\d+; template=[0-9a-f]{12}; window=24h$/);
    assert.match(header(bulk[0]!, 'X-Mailward-Status')!, /^accept .*OUTBOUND_BULK 0/);
    assert.doesNotMatch(header(bulk[0]!, 'X-Mailward-Status')!, /NO_UNSUBSCRIBE/);
    for (const t of stored) aliceIds.push(header(t, 'Message-ID')!);
    // In send order: aliceIds[n] went to customer<n> (a report must name a real recipient).
    const nth = (mid: string) => Number(/spring\.(\d+)\./.exec(mid)?.[1]);
    aliceIds.sort((x, y) => nth(x) - nth(y));
    console.log(`      ${MESSAGES} relayed messages in ${elapsed.toFixed(1)} s (${Math.round(MESSAGES / elapsed)} msg/s, ${WORKERS} connections); ${bulk.length} tagged bulk`);

    // Bulk without List-Unsubscribe: the warning symbol.
    const noUnsub = await send(a, 'alice', newsletter(MESSAGES + 1, { unsubscribe: false }));
    assert.equal(noUnsub.code, 250, noUnsub.response);
    const last = a.delivered().map((f) => readFileSync(f, 'utf8')).find((t) => t.includes(`customer${MESSAGES + 1}@`))!;
    assert.match(header(last, 'X-Mailward-Status')!, /OUTBOUND_BULK_NO_UNSUBSCRIBE 1/);

    const status = await cli('outbound', 'status', '--config', a.configDir);
    assert.match(status.out, /no sender is suspended/);
  });

  it('feedback reports are consumed, counted once, malformed ones counted never; over 0.3% the user is deferred with the reason, others flow', async () => {
    const before = a.delivered().length;
    // Let afterVerdict record the last Message-IDs.
    await new Promise((r) => setTimeout(r, 300));
    // 6 complaints of 2,001 messages: 0.3%, not above it. The first is sent twice, to both nodes.
    const first = arfReport({ mid: aliceIds[0], rcpt: 'customer0@remote.example' });
    for (const node of [a, b]) {
      const r = await report(node, first);
      assert.equal(r.code, 250, r.response);
      assert.match(r.response, /Feedback report (counted|duplicate) \(ref [0-9A-Z]{10}\)/);
    }
    const bad = await report(b, arfReport({ mid: aliceIds[1], version: '0.9' }));
    assert.equal(bad.code, 250, bad.response);
    assert.match(bad.response, /Feedback report invalid/);
    for (let i = 1; i < 6; i++) assert.equal((await report(i % 2 ? a : b, arfReport({ mid: aliceIds[i], rcpt: `customer${i}@remote.example` }))).code, 250);
    assert.equal(a.delivered().length, before, 'reports are not delivered');
    const ok = await send(b, 'alice', newsletter(9001));
    assert.equal(ok.code, 250, `6 complaints do not suspend: ${ok.response}`);

    // A report to the feedback address and a person: consumed for one, delivered to the other.
    const mixed = await report(a, arfReport({ mid: aliceIds[6], rcpt: 'customer6@remote.example' }), ['fbl@example.com', 'postmaster@example.com']);
    assert.equal(mixed.code, 250, mixed.response);
    const copy = a.delivered().map((f) => readFileSync(f, 'utf8')).filter((t) => t.includes(aliceIds[6]!) && t.startsWith('X-Envelope-From: <fbl@'));
    assert.equal(copy.length, 1);
    assert.match(copy[0]!, /^X-Envelope-To: <postmaster@example\.com>\r?$/m);
    assert.match(header(copy[0]!, 'X-Mailward-Status')!, /FEEDBACK_REPORT 0/);
    assert.match(header(copy[0]!, 'X-Mailward-Status')!, /OUTBOUND_SENDER_SUSPENDED 0/);

    // The 7th complaint took alice over: her next message is deferred on both nodes, with the reason and the ref.
    for (const node of [a, b]) {
      const deferred = await send(node, 'alice', newsletter(9002));
      assert.equal(deferred.code, 451, deferred.response);
      assert.match(deferred.response, /^451 4\.7\.1 Message refused by outbound policy: sender alice suspended since \S+Z: complaint rate 0\.35% \(7 complaints \/ 2002 messages\) is above 0\.3% in 168 h; contact the postmaster to be reinstated \(ref [0-9A-Z]{10}\)$/);
    }
    const bob = await send(a, 'bob', simpleMessage({ from: 'bob@example.com', to: 'friend@remote.example', subject: 'Lunch?' }));
    assert.equal(bob.code, 250, `bob is unaffected: ${bob.response}`);

    // The refusal is in tracking with the forced action and its reason.
    const deferred = await send(a, 'alice', newsletter(9003));
    const ref = /ref ([0-9A-Z]{10})/.exec(deferred.response)![1]!;
    await new Promise((r) => setTimeout(r, 600));
    const explained = await cli('explain', ref, '--config', a.configDir);
    assert.equal(explained.code, 0, explained.err);
    assert.match(explained.out, /soft_reject/);
    assert.match(explained.out, /outbound policy: sender alice suspended/);
    assert.match(explained.out, /OUTBOUND_SUSPENDED/);

    const report2 = await cli('outbound', 'report', '--config', b.configDir);
    assert.match(report2.out, /^alice\s+2002\s+(?:99\.\d\d|100\.00)%\s+7 \(0\.35%\)\s+0 \(0\.00%\)\s+0\s+SUSPENDED$/m);
    assert.match(report2.out, /^bob\s+1\s+0\.00%\s+0 \(0\.00%\)\s+0 \(0\.00%\)\s+0\s+ok$/m);
  });

  it('mailward outbound reinstate lifts it: mail flows again on both nodes', async () => {
    const lifted = await cli('outbound', 'reinstate', 'alice', '--config', a.configDir);
    assert.equal(lifted.code, 0, lifted.err);
    for (const node of [b, a]) {
      const r = await send(node, 'alice', newsletter(9100));
      assert.equal(r.code, 250, r.response);
    }
    assert.match((await cli('outbound', 'status', '--config', b.configDir)).out, /no sender is suspended/);
  });
});

describe('outbound end to end: a feedback report while Redis is away', function () {
  this.timeout(60_000);
  const prefix = uniquePrefix('e2e-down');
  let redis: TcpProxy;
  let node: HarakaInstance;

  before(async () => {
    redis = await startTcpProxy({ host: '127.0.0.1', port: 6379 });
    const shared = files(prefix, 'mx-c');
    shared['mailward.ini'] = shared['mailward.ini'].replace('[state]\n', `[state]\nredis_url = redis://127.0.0.1:${redis.port}\n`);
    node = await startHaraka({ plugins: ['auth/flat_file', 'mailward/plugins/outbound'], files: shared });
  });
  after(async () => {
    await node?.stop();
    if (node) removeDir(node.dir);
    await redis?.stop();
    await deleteRedisKeys(prefix);
  });

  it('is deferred (450), not consumed as unattributed, and counted once Redis is back; with a person among the recipients it is delivered to all', async () => {
    const message = newsletter(1);
    const sent = await sendMail({ port: node.port, from: 'alice@example.com', to: ['customer1@remote.example'], raw: message, auth: { user: 'alice', pass: USERS.alice } });
    assert.equal(sent.code, 250, sent.response);
    const mid = /^Message-ID: (<[^>]+>)/im.exec(message)![1]!;
    await new Promise((r) => setTimeout(r, 300));

    await redis.stop();
    const reportRaw = arfReport({ mid, rcpt: 'customer1@remote.example' });
    const report = (to = ['fbl@example.com']) => sendMail({ port: node.port, from: 'fbl@reports.example.org', to, raw: reportRaw, localAddress: '127.0.0.50' });
    const deferred = await report();
    // Haraka answers 450 to DENYSOFT at the queue hook whatever code the reply object carries.
    assert.equal(deferred.code, 450, deferred.response);
    assert.match(deferred.response, /^450 4\.3\.0 Feedback report not counted now, please send it again later \(ref [0-9A-Z]{10}\) \([0-9A-F.-]+\)$/);
    const before = node.delivered().length;
    const mixed = await report(['fbl@example.com', 'postmaster@example.com']);
    assert.equal(mixed.code, 250, mixed.response);
    const copies = node.delivered().slice(before).map((f) => readFileSync(f, 'utf8'));
    assert.equal(copies.length, 1);
    assert.match(copies[0]!, /^X-Envelope-To: <fbl@example\.com>, <postmaster@example\.com>\r?$/m);
    assert.match(header(copies[0]!, 'X-Mailward-Status')!, /OUTBOUND_ERROR 0/);

    await redis.start();
    let counted: Awaited<ReturnType<typeof report>> | undefined;
    for (let i = 0; i < 40 && counted?.code !== 250; i++) {
      await new Promise((r) => setTimeout(r, 250));
      counted = await report();
    }
    assert.equal(counted!.code, 250, counted!.response);
    assert.match(counted!.response, /Feedback report counted/);
    const status = await cli('outbound', 'report', '--config', node.configDir);
    assert.match(status.out, /^alice\s+1\s+\S+\s+1 \(100\.00%\)/m);
  });
});

describe('outbound end to end: a DSN naming many recipients of a relayed message (mailward/auth before mailward/outbound)', function () {
  this.timeout(60_000);
  const prefix = uniquePrefix('e2e-dsn');
  let dns: TestDnsServer;
  let node: HarakaInstance;

  before(async () => {
    // SPF for the HELO names the DSNs come with (the null sender's SPF identity).
    dns = await startDnsServer({
      'mx.partners.example': { TXT: ['v=spf1 ip4:127.0.0.60 -all'] },
      'mx.evil.example': { TXT: ['v=spf1 ip4:127.0.0.66 -all'] },
    });
    const shared = files(prefix, 'mx-d');
    shared['mailward.ini'] += `[dns]\nservers = ${dns.server}\ntimeout_ms = 500\n`;
    node = await startHaraka({ plugins: ['auth/flat_file', 'mailward/plugins/auth', 'mailward/plugins/outbound'], files: shared });
  });
  after(async () => {
    await node?.stop();
    if (node) removeDir(node.dir);
    await dns?.stop();
    await deleteRedisKeys(prefix);
  });

  it('a co-recipient\'s forged DSN listing 55 partners counts one and does not suspend; the partners\' authenticated MTA counts all 55 and does', async () => {
    const partners = Array.from({ length: 55 }, (_, i) => `p${i}@partners.example`);
    const mid = `<invite.${Date.now()}@example.com>`;
    const invitation = simpleMessage({ from: 'alice@example.com', to: partners.join(', '), subject: 'Partner day', messageId: mid });
    const sent = await sendMail({ port: node.port, from: 'alice@example.com', to: [...partners, 'mallory@evil.example'], raw: invitation, auth: { user: 'alice', pass: USERS.alice } });
    assert.equal(sent.code, 250, sent.response);
    await new Promise((r) => setTimeout(r, 300));
    const bounce = (ip: string, helo: string) =>
      sendMail({ port: node.port, from: '', to: ['alice@example.com'], raw: deliveryStatus(mid, partners, helo), localAddress: ip, helo });
    const aliceSends = () => sendMail({ port: node.port, from: 'alice@example.com', to: ['friend@remote.example'], raw: simpleMessage({ from: 'alice@example.com', subject: 'hi' }), auth: { user: 'alice', pass: USERS.alice } });

    // mallory's own server, SPF-authenticated for evil.example only.
    const forged = await bounce('127.0.0.66', 'mx.evil.example');
    assert.equal(forged.code, 250, forged.response);
    const report = await cli('outbound', 'report', '--config', node.configDir);
    assert.match(report.out, /^alice\s+56\s+\S+\s+0 \(0\.00%\)\s+1 \(1\.79%\)\s+0\s+ok$/m);
    assert.equal((await aliceSends()).code, 250, 'alice is not suspended');

    const real = await bounce('127.0.0.60', 'mx.partners.example');
    assert.equal(real.code, 250, real.response);
    const stored = node.delivered().map((f) => readFileSync(f, 'utf8')).filter((t) => t.includes(`Message-ID: ${mid}`) && /^X-Envelope-From: <>\r?$/m.test(t));
    assert.equal(stored.length, 2, 'both DSNs are delivered to alice');
    const deferred = await aliceSends();
    assert.equal(deferred.code, 451, deferred.response);
    assert.match(deferred.response, /: invalid-recipient rate 5\.5% \(55 hard bounces \/ 57 messages \(rate over at least 1000 messages\)\) is above 5%/);
  });
});
