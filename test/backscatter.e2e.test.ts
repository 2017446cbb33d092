import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Classifier } from '../lib/checks/content/classifier';
import { SqliteBayesStore } from '../lib/checks/content/store';
import { silentLogger } from '../lib/runtime';
import { main } from '../lib/cli/main';
import { RedisStore } from '../lib/state';
import { type HarakaInstance, removeDir, sendMail, startHaraka } from './support/haraka';
import { bounce, deleteRedisKeys, KEY_A, outbound, uniquePrefix } from './backscatter/support';

const FLOOD = 2000;
const IPS = 50;
const THRESHOLD = 50;
const RELAY_IP = '127.0.0.200';

function files(prefix: string, node: string, throttle: string): Record<string, string> {
  return {
    // A generous Redis deadline: 50 concurrent clients on a loaded CI machine can miss the
    // default 250 ms, and a missed deadline rightly accepts (BACKSCATTER_ERROR), which would
    // read here as the throttle letting mail through.
    'mailward.ini': `[main]\nnode_name = ${node}\ndata_dir = data\n[state]\nbackend = redis\nprefix = ${prefix}\ntimeout_ms = 5000\n[tracking]\nflush_interval_ms = 100\n`,
    'mailward.backscatter.ini': `[signing]\nkeys = ${KEY_A}\n[throttle]\n${throttle}`,
    // Clients at 127.0.0.200 may relay (our own users' outbound mail).
    'relay.ini': '[relay]\nacl = true\nforce_routing = false\n',
    'relay_acl_allow': `${RELAY_IP}/32\n`,
  };
}

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

/** A bounce of something we never sent, as a backscatter run delivers them. */
function backscatter(n: number): string {
  return bounce('postfix-dsn.eml', { mid: `<forged.${n}.${Math.random().toString(36).slice(2)}@example.com>`, subject: `Cheap pills ${n}` });
}

const refByResponse = (response: string) => /ref ([0-9A-Z]{10})/.exec(response)?.[1];

describe('backscatter end to end through a real Haraka (Redis state)', function () {
  this.timeout(180_000);
  let haraka: HarakaInstance;
  const prefix = uniquePrefix('e2e');
  let signedOriginal = '';

  before(async () => {
    haraka = await startHaraka({
      plugins: ['relay', 'mailward/plugins/backscatter'],
      files: files(prefix, 'mx-a', `threshold = ${THRESHOLD}\nwindow_minutes = 5\nblock_minutes = 60\n`),
    });
  });
  after(async () => {
    await haraka?.stop();
    if (haraka) removeDir(haraka.dir);
    await deleteRedisKeys(prefix);
  });

  it('signs relayed mail on the queue_outbound path', async () => {
    // A client-supplied signature header is replaced, never passed on.
    const raw = outbound({ mid: '<real.outbound.1@example.com>' }).replace('\r\n\r\n', '\r\nX-Mailward-Sig: v=1; k=ka; t=1; s=FORGED\r\n\r\n');
    const result = await sendMail({ port: haraka.port, from: 'alice@example.com', to: ['nobody@remote.example'], raw, localAddress: RELAY_IP });
    assert.equal(result.code, 250, result.response);
    assert.equal(haraka.delivered().length, 1);
    const stored = readFileSync(haraka.delivered()[0]!, 'utf8');
    assert.match(stored, /^X-Envelope-To: <nobody@remote\.example>/m);
    assert.match(stored, /^X-Mailward-Sig: v=1; k=ka; t=\d+; s=[A-Za-z0-9_-]{43}\r?$/m);
    assert.equal(stored.match(/^X-Mailward-Sig:/gm)?.length, 1);
    assert.doesNotMatch(stored, /FORGED/);
    signedOriginal = stored.replace(/^X-Envelope-(From|To):.*\r?\n/gm, '');
  });

  /** The count the block started at (test 2 reads it in the listing). */
  let startedAfterCount = '';

  it(`2,000 bounces with one subject from ${IPS} IPs: block after ${THRESHOLD}, the rest refused with an explanation; a verified bounce still passes`, async () => {
    const results: { code: number; response: string; at: number }[] = [];
    let next = 0;
    const started = Date.now();
    await Promise.all(
      Array.from({ length: IPS }, async (_, worker) => {
        const localAddress = `127.0.0.${10 + worker}`;
        while (next < FLOOD) {
          const n = next++;
          const r = await sendMail({ port: haraka.port, from: '', to: ['alice@example.com'], raw: backscatter(n), localAddress });
          results.push({ ...r, at: Date.now() });
        }
      }),
    );
    const elapsed = (Date.now() - started) / 1000;
    const accepted = results.filter((r) => r.code === 250);
    const refused = results.filter((r) => r.code !== 250);
    // Counting is atomic in Redis: exactly threshold-1 get through, give or take a
    // message racing the bucket boundary of the sliding window.
    assert.ok(accepted.length >= THRESHOLD - 1 && accepted.length <= THRESHOLD + 2, `${accepted.length} accepted`);
    assert.equal(accepted.length + refused.length, FLOOD);
    for (const r of refused) {
      assert.equal(r.code, 550, r.response);
      assert.match(r.response, /5\.7\.1 Message rejected as spam \(ref [0-9A-Z]{10}: BACKSCATTER_SUBJECT_BLOCKED 12, BOUNCE_UNVERIFIED 4/);
    }
    const blockHeld = (Math.max(...refused.map((r) => r.at)) - Math.min(...refused.map((r) => r.at))) / 1000;
    const rate = Math.round(refused.length / blockHeld);
    console.log(`      flood: ${FLOOD} bounces in ${elapsed.toFixed(1)} s (${Math.round(FLOOD / elapsed)} msg/s); ${accepted.length} accepted, ${refused.length} refused at ${rate} msg/s while the block held`);

    // The explanation of a refusal: subject, count and end of the block.
    await new Promise((r) => setTimeout(r, 500));
    const ref = refByResponse(refused.at(-1)!.response)!;
    const explained = await cli('explain', ref, '--config', haraka.configDir);
    assert.equal(explained.code, 0, explained.err);
    // The count when the block started: the threshold, plus the messages of the ${IPS} concurrent
    // clients that were counted in the same instant (atomic increments, then one block).
    const startedAfter = /BACKSCATTER_SUBJECT_BLOCKED\s+backscatter: subject "undelivered mail returned to sender" blocked after (\d+) matching messages within 5 min \(since \S+Z on mx-a, until \S+Z\)/.exec(explained.out);
    assert.ok(startedAfter, explained.out);
    assert.ok(Number(startedAfter[1]) >= THRESHOLD && Number(startedAfter[1]) <= THRESHOLD + IPS, startedAfter[1]);
    startedAfterCount = startedAfter[1]!;

    // A bounce of mail we really sent, same subject, during the block: accepted.
    const sig = /^X-Mailward-Sig: (.*?)\r?$/m.exec(signedOriginal)![1]!;
    const real = bounce('postfix-dsn.eml', { mid: '<real.outbound.1@example.com>', date: 'Mon, 10 Mar 2025 09:14:00 +0000', from: 'Alice <alice@example.com>', sigLine: `X-Mailward-Sig: ${sig}` });
    const verified = await sendMail({ port: haraka.port, from: '', to: ['alice@example.com'], raw: real, localAddress: '127.0.0.77' });
    assert.equal(verified.code, 250, verified.response);
    const delivered = haraka.delivered().map((f) => readFileSync(f, 'utf8')).find((t) => t.startsWith('X-Envelope-From: <>') && t.includes('<real.outbound.1@example.com>'));
    assert.ok(delivered, 'the verified bounce was delivered');
    assert.match(delivered, /^X-Mailward-Status: accept .*BOUNCE_VERIFIED -2/m);
    // Ordinary mail with the blocked subject, from a fresh IP, is deferred.
    const plain = outbound({ mid: '<someone@other.example>', subject: 'Undelivered Mail Returned to Sender', from: 'carol@other.example' });
    const deferred = await sendMail({ port: haraka.port, from: 'carol@other.example', to: ['alice@example.com'], raw: plain, localAddress: '127.0.0.78' });
    assert.equal(deferred.code, 451, deferred.response);
    assert.match(deferred.response, /451 4\.7\.1 Message deferred/);
    assert.match(deferred.response, /BACKSCATTER_SUBJECT_BLOCKED 12/);
  });

  it('mailward throttle list shows the block; clear lifts it and bounces flow again', async () => {
    const listed = await cli('throttle', 'list', '--config', haraka.configDir);
    assert.equal(listed.code, 0, listed.err);
    assert.match(listed.out, /"undelivered mail returned to sender"/);
    // The flood takes over a minute on a loaded machine: the block may have a minute or more less to run.
    assert.match(listed.out, new RegExp(`started after ${startedAfterCount} messages, since \\S+ \\(on mx-a\\), until \\S+ \\((?:5\\d|60) min left\\)`));
    assert.match(listed.out, /19\d\d messages refused so far/);
    const cleared = await cli('throttle', 'clear', 'Undelivered Mail Returned to Sender', '--config', haraka.configDir);
    assert.equal(cleared.code, 0, cleared.err);
    const after = await sendMail({ port: haraka.port, from: '', to: ['alice@example.com'], raw: backscatter(9999), localAddress: '127.0.0.79' });
    assert.equal(after.code, 250, after.response);
  });
});

describe('backscatter end to end: two Haraka nodes sharing Redis', function () {
  this.timeout(120_000);
  let a: HarakaInstance;
  let b: HarakaInstance;
  const prefix = uniquePrefix('fleet');
  // A short block, so its end can be seen through Haraka's own clock.
  const throttle = 'threshold = 10\nwindow_minutes = 5\nblock_minutes = 0.1\n';

  before(async () => {
    [a, b] = await Promise.all([
      startHaraka({ plugins: ['mailward/plugins/backscatter'], files: files(prefix, 'mx-a', throttle) }),
      startHaraka({ plugins: ['mailward/plugins/backscatter'], files: files(prefix, 'mx-b', throttle) }),
    ]);
  });
  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    if (a) removeDir(a.dir);
    if (b) removeDir(b.dir);
    await deleteRedisKeys(prefix);
  });

  it('a block started on one node is enforced on the other, and ends for both when its time is up', async () => {
    for (let i = 0; i < 9; i++) {
      const r = await sendMail({ port: a.port, from: '', to: ['alice@example.com'], raw: backscatter(i), localAddress: `127.0.1.${i + 1}` });
      assert.equal(r.code, 250, r.response);
    }
    const tenth = await sendMail({ port: a.port, from: '', to: ['alice@example.com'], raw: backscatter(10), localAddress: '127.0.1.10' });
    assert.equal(tenth.code, 550, tenth.response);
    const startedAt = Date.now();

    const onB = await sendMail({ port: b.port, from: '', to: ['alice@example.com'], raw: backscatter(11), localAddress: '127.0.2.1' });
    assert.equal(onB.code, 550, onB.response);
    assert.match(onB.response, /BACKSCATTER_SUBJECT_BLOCKED/);
    await new Promise((r) => setTimeout(r, 400));
    const explained = await cli('explain', refByResponse(onB.response)!, '--config', b.configDir);
    assert.match(explained.out, /blocked after 10 matching messages within 5 min \(since \S+Z on mx-a, until \S+Z\)/);

    // 6 s block: wait it out, then mail flows on both nodes.
    await new Promise((r) => setTimeout(r, Math.max(0, 6_000 - (Date.now() - startedAt)) + 500));
    for (const node of [a, b]) {
      const r = await sendMail({ port: node.port, from: '', to: ['alice@example.com'], raw: backscatter(100 + node.port), localAddress: '127.0.3.1' });
      assert.equal(r.code, 250, r.response);
    }
  });
});

describe("backscatter end to end: a signature copied from one of our messages verifies only its sender's bounces", function () {
  this.timeout(120_000);
  let haraka: HarakaInstance;
  const prefix = uniquePrefix('replay');

  before(async () => {
    haraka = await startHaraka({ plugins: ['relay', 'mailward/plugins/backscatter'], files: files(prefix, 'mx-a', 'threshold = 5\nwindow_minutes = 5\nblock_minutes = 60\n') });
  });
  after(async () => {
    await haraka?.stop();
    if (haraka) removeDir(haraka.dir);
    await deleteRedisKeys(prefix);
  });

  /** Sends one message and returns the SMTP code and the delivered copy's X-Mailward-Status. */
  async function deliver(from: string, to: string, raw: string, localAddress: string): Promise<{ code: number; status: string }> {
    const before = new Set(haraka.delivered());
    const r = await sendMail({ port: haraka.port, from, to: [to], raw, localAddress });
    const file = haraka.delivered().find((f) => !before.has(f));
    return { code: r.code, status: file ? (/^X-Mailward-Status: (.*?)\r?$/m.exec(readFileSync(file, 'utf8'))?.[1] ?? '') : r.response };
  }

  it('bounces quoting alice\'s signed headers to other users are unverified and throttled; her own bounce and auto-reply still verify', async () => {
    // alice writes once to an outsider, who receives her signature.
    const mid = `<replayed.${Date.now()}@example.com>`;
    const date = new Date().toUTCString();
    const sent = await sendMail({ port: haraka.port, from: 'alice@example.com', to: ['attacker@evil.example'], raw: outbound({ mid, date }), localAddress: RELAY_IP });
    assert.equal(sent.code, 250, sent.response);
    const sig = /^X-Mailward-Sig: (.*?)\r?$/m.exec(readFileSync(haraka.delivered().at(-1)!, 'utf8'))![1]!;
    const dsn = bounce('headers-only-dsn.eml', { mid, date, sigLine: `X-Mailward-Sig: ${sig}` });

    // The outsider's "bounces" to others: never verified, so the throttle (threshold 5) stops them.
    const replays = [];
    for (let n = 0; n < 8; n++) replays.push(await deliver('', ['bob@example.com', 'carol@example.com', 'dave@example.com'][n % 3]!, dsn, `127.0.4.${n + 1}`));
    for (const r of replays.slice(0, 4)) {
      assert.equal(r.code, 250);
      assert.match(r.status, /BOUNCE_UNVERIFIED 4/);
      assert.doesNotMatch(r.status, /BOUNCE_VERIFIED/);
    }
    for (const r of replays.slice(4)) assert.equal(r.code, 550, r.status);

    // The same bounce to alice herself is hers: verified, and passes the block.
    const real = await deliver('', 'alice@example.com', dsn, '127.0.4.20');
    assert.equal(real.code, 250, real.status);
    assert.match(real.status, /^accept .*BOUNCE_VERIFIED -2/);

    // An auto-reply naming alice's Message-ID: verified only when it goes to alice.
    const reply = (n: number) => ['From: Promo <deals@spam.example>', `Subject: Away ${n}`, `Message-ID: <ar.${n}.${Date.now()}@spam.example>`, 'Auto-Submitted: auto-replied', `In-Reply-To: ${mid}`, '', 'Cheap pills.', ''].join('\r\n');
    const toErin = await deliver('deals@spam.example', 'erin@example.com', reply(1), '127.0.4.21');
    assert.match(toErin.status, /BOUNCE_UNVERIFIED 4/);
    assert.doesNotMatch(toErin.status, /BOUNCE_VERIFIED/);
    assert.match((await deliver('deals@spam.example', 'alice@example.com', reply(2), '127.0.4.22')).status, /BOUNCE_VERIFIED -2/);
  });

  it("a list's VERP copies of one message: the bounce of each verifies; a record of the previous release verifies a bounce to anyone", async () => {
    // One Message-ID relayed once per recipient, each copy with its own envelope sender.
    const mid = `<digest.${Date.now()}@example.com>`;
    const date = new Date().toUTCString();
    const verp = ['bob', 'carol', 'dave'].map((u) => `list-bounces+${u}=remote.example@example.com`);
    for (const [i, sender] of verp.entries()) {
      const r = await sendMail({ port: haraka.port, from: sender, to: [`${['bob', 'carol', 'dave'][i]}@remote.example`], raw: outbound({ mid, date, from: 'List <list@example.com>' }), localAddress: RELAY_IP });
      assert.equal(r.code, 250, r.response);
    }
    const dsn = bounce('headers-only-dsn.eml', { mid, date, from: 'List <list@example.com>' });
    for (const [i, sender] of verp.entries()) assert.match((await deliver('', sender, dsn, `127.0.4.${30 + i}`)).status, /^accept .*BOUNCE_VERIFIED -2/, sender);
    assert.match((await deliver('', 'erin@example.com', dsn, '127.0.4.33')).status, /BOUNCE_UNVERIFIED 4/);

    // Mail relayed before the upgrade: its record (bs:mid:, a plain time) verifies as it did then.
    const old = `<before-upgrade.${Date.now()}@example.com>`;
    const legacyKey = `bs:mid:${createHash('sha256').update(old.slice(1, -1)).digest('hex').slice(0, 32)}`;
    const store = new RedisStore({ backend: 'redis', redisUrl: 'redis://127.0.0.1:6379', prefix, timeoutMs: 1000, memoryMaxEntries: 100 }, silentLogger);
    try {
      // Nothing this node relayed above left one (a node of the previous release would verify any bounce by it).
      assert.deepEqual(await store.keys('bs:mid:'), []);
      await store.set(legacyKey, String(Date.now() - 3600_000), 14 * 86400);
    } finally {
      await store.close();
    }
    assert.match((await deliver('', 'frank@example.com', bounce('headers-only-dsn.eml', { mid: old }), '127.0.4.34')).status, /^accept .*BOUNCE_VERIFIED -2/);
  });
});

for (const backend of ['memory', 'redis'] as const) {
  describe(`backscatter end to end: an automatic reply to the original's Reply-To: or second From: address verifies (${backend} state)`, function () {
    this.timeout(120_000);
    let haraka: HarakaInstance;
    const prefix = uniquePrefix(`replyto-${backend}`);

    before(async () => {
      haraka = await startHaraka({
        // Reply addresses are recorded for authenticated submission only (SMTP AUTH).
        plugins: ['auth/flat_file', 'mailward/plugins/backscatter'],
        files: {
          ...files(prefix, 'mx-a', 'threshold = 5\nwindow_minutes = 5\nblock_minutes = 60\n'),
          'mailward.ini': `[main]\nnode_name = mx-a\ndata_dir = data\n[state]\nbackend = ${backend}\nprefix = ${prefix}\n[tracking]\nflush_interval_ms = 100\n`,
          'auth_flat_file.ini': '[core]\nmethods = PLAIN,LOGIN\n[users]\nalice = alice-secret\n',
        },
      });
    });
    after(async () => {
      await haraka?.stop();
      if (haraka) removeDir(haraka.dir);
      if (backend === 'redis') await deleteRedisKeys(prefix);
    });

    async function deliver(from: string, to: string, raw: string, localAddress: string): Promise<string> {
      const before = new Set(haraka.delivered());
      const r = await sendMail({ port: haraka.port, from, to: [to], raw, localAddress });
      assert.equal(r.code, 250, r.response);
      const file = haraka.delivered().find((f) => !before.has(f))!;
      return /^X-Mailward-Status: (.*?)\r?$/m.exec(readFileSync(file, 'utf8'))?.[1] ?? '';
    }

    it('the vacation reply to the help desk alice named in Reply-To: and to her co-author verifies; a DSN to the help desk does not', async () => {
      const mid = `<desk.${Date.now()}@example.com>`;
      const date = new Date().toUTCString();
      const raw = outbound({ mid, date, from: 'Alice <alice@example.com>, Team <team@example.com>', replyTo: 'Help Desk <desk@example.com>' });
      const sent = await sendMail({ port: haraka.port, from: 'alice@example.com', to: ['bob@remote.example'], raw, auth: { user: 'alice', pass: 'alice-secret' } });
      assert.equal(sent.code, 250, sent.response);
      const sig = /^X-Mailward-Sig: (.*?)\r?$/m.exec(readFileSync(haraka.delivered().at(-1)!, 'utf8'))![1]!;

      // bob's responder answers Reply-To: (here with the null sender), or the second author.
      const reply = (n: number, to: string) => [`From: Bob <bob@remote.example>`, `To: ${to}`, `Subject: Out of office ${n}`, `Message-ID: <ooo.${n}.${Date.now()}@remote.example>`, 'Auto-Submitted: auto-replied', `In-Reply-To: ${mid}`, '', 'Away until Monday.', ''].join('\r\n');
      assert.match(await deliver('', 'desk@example.com', reply(1, 'desk@example.com'), '127.0.6.1'), /^accept .*BOUNCE_VERIFIED -2, AUTO_REPLY 0/);
      assert.match(await deliver('bob@remote.example', 'team@example.com', reply(2, 'team@example.com'), '127.0.6.2'), /^accept .*BOUNCE_VERIFIED -2/);
      // The same reply to someone alice did not name stays unverified.
      const toErin = await deliver('bob@remote.example', 'erin@example.com', reply(3, 'erin@example.com'), '127.0.6.3');
      assert.match(toErin, /BOUNCE_UNVERIFIED 4/);
      assert.doesNotMatch(toErin, /BOUNCE_VERIFIED/);

      // A DSN goes to the envelope sender: one to the help desk is not verified, one to alice still is.
      const dsn = bounce('headers-only-dsn.eml', { mid, date, from: 'Alice <alice@example.com>, Team <team@example.com>', sigLine: `X-Mailward-Sig: ${sig}` });
      const toDesk = await deliver('', 'desk@example.com', dsn, '127.0.6.4');
      assert.match(toDesk, /BOUNCE_UNVERIFIED 4/);
      assert.doesNotMatch(toDesk, /BOUNCE_VERIFIED/);
      assert.match(await deliver('', 'alice@example.com', dsn, '127.0.6.5'), /^accept .*BOUNCE_VERIFIED -2/);
    });
  });
}

describe('backscatter end to end: autolearn never learns a bounce as ham', function () {
  this.timeout(120_000);
  let haraka: HarakaInstance;

  before(async () => {
    haraka = await startHaraka({
      plugins: ['relay', 'mailward/plugins/backscatter', 'mailward/plugins/content'],
      files: {
        // Memory state, the model in data/bayes.sqlite; autolearn with its default ham_score (-2 = BOUNCE_VERIFIED).
        'mailward.ini': '[main]\ndata_dir = data\n[dns]\nservers = 127.0.0.1:9\ntimeout_ms = 300\n',
        'mailward.backscatter.ini': `[signing]\nkeys = ${KEY_A}\n`,
        'mailward.content.ini': '[autolearn]\nenabled = true\n',
        'relay.ini': '[relay]\nacl = true\nforce_routing = false\n',
        'relay_acl_allow': `${RELAY_IP}/32\n`,
      },
    });
  });
  after(async () => {
    await haraka?.stop();
    if (haraka) removeDir(haraka.dir);
  });

  it("verified bounces to alice carrying a forger's text are delivered but not learnt", async () => {
    const mid = `<learn.${Date.now()}@example.com>`;
    const date = new Date().toUTCString();
    await sendMail({ port: haraka.port, from: 'alice@example.com', to: ['attacker@evil.example'], raw: outbound({ mid, date }), localAddress: RELAY_IP });
    const sig = /^X-Mailward-Sig: (.*?)\r?$/m.exec(readFileSync(haraka.delivered().at(-1)!, 'utf8'))![1]!;
    for (let n = 1; n <= 3; n++) {
      const dsn = bounce('headers-only-dsn.eml', { mid, date, sigLine: `X-Mailward-Sig: ${sig}` }).replace('Address not found.', `viagra cialis casino jackpot crypto doubler ${n} cheap pills replica watches winner lottery`);
      const before = new Set(haraka.delivered());
      const r = await sendMail({ port: haraka.port, from: '', to: ['alice@example.com'], raw: dsn, localAddress: `127.0.5.${n}` });
      assert.equal(r.code, 250, r.response);
      const file = haraka.delivered().find((f) => !before.has(f))!;
      assert.match(readFileSync(file, 'utf8'), /^X-Mailward-Status: .*BOUNCE_VERIFIED -2/m);
    }
    await haraka.stop();
    const path = join(haraka.dataDir, 'bayes.sqlite');
    assert.ok(existsSync(path), path);
    const c = new Classifier(new SqliteBayesStore(path), silentLogger);
    await c.ready();
    try {
      assert.equal(c.model.nham, 0);
      assert.equal(c.model.tokens.get('casino'), undefined);
    } finally {
      await c.close();
    }
  });
});
