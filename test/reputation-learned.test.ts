import assert from 'node:assert/strict';
import { createClient } from 'redis';
import type { Mailward, ScanResult } from '../lib';
import { recordRecipientOutcome, recordVerdict, type ReputationSettings } from '../lib/checks/reputation';
import { main } from '../lib/cli/main';
import { createContext } from '../lib/message';
import { startDnsServer, type TestDnsServer } from './support/dns-server';
import { deleteRedisKeys, manualClock, REDIS_URL, removeDir, reputationOnly, uniquePrefix, writeConfig } from './reputation/setup';

// Learned reputation, spam traps and directory harvest: one suite, run against
// the in-process store and against Redis (127.0.0.1:6379, a prefix of its own).

const HOUR = 3_600_000;
const BUCKET = 10 * 60_000;

const LEARNED = `
[practices]
enabled = false

[learned]
half_life_hours = 24
horizon_days = 7
bucket_minutes = 10
; Here only traps and recipients teach (verdict learning has its own test).
learn_spam_score = 1000
learn_ham_score = -1000

[spamtrap]
addresses = trap@example.com, *@honey.example.com

[harvest]
window_minutes = 60
min_recipients = 10
max_unknown_share = 0.5

[zone:bl.test]
type = ip
127.0.0.2 = TEST_SBL:6
`;

function score(r: ScanResult, name: string): number | undefined {
  return r.verdict.symbols.find((s) => s.name === name)?.score;
}

function settingsOf(mw: Mailward): ReputationSettings {
  return mw.runtime.config.modules.find((m) => m.module.name === 'reputation')!.settings;
}

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

for (const backend of ['memory', 'redis'] as const) {
  describe(`reputation: learned reputation, traps and harvest (${backend} state)`, () => {
    let dns: TestDnsServer;
    let dir: string;
    let mw: Mailward;
    const prefix = uniquePrefix(`reputation-${backend}`);
    const clock = manualClock(Math.floor(Date.now() / BUCKET) * BUCKET);

    before(async () => {
      dns = await startDnsServer({ '99.2.0.192.bl.test': { A: ['127.0.0.2'] } });
      dir = writeConfig({ dnsServer: dns.server, backend, prefix, reputation: LEARNED });
      mw = reputationOnly(dir, clock);
    });
    after(async () => {
      await mw.close();
      await dns.stop();
      removeDir(dir);
      if (backend === 'redis') await deleteRedisKeys(prefix);
    });

    it('refuses a spam-trap recipient at RCPT, keeps the others, and fires SPAMTRAP', async () => {
      const r = await mw.scan({ ip: '192.0.2.50', helo: 'x.test', mailFrom: 'promo@spamco.test', rcptTo: ['Trap@Example.com', 'user@example.com', 'x@honey.example.com'] });
      assert.deepEqual(Object.keys(r.refusedRecipients).sort(), ['trap@example.com', 'x@honey.example.com']);
      // The reason reaches the sender: it must not say "trap".
      assert.doesNotMatch(Object.values(r.refusedRecipients).join(' '), /trap/i);
      assert.deepEqual(r.context.rcptTo, ['user@example.com']);
      assert.equal(score(r, 'SPAMTRAP'), 6);
      // The tracking row names them as the Haraka tracking plugin's does (before: the library's row did not).
      assert.deepEqual(r.row.rcptTo, ['user@example.com']);
      assert.match(r.row.reason, /; refused recipients: trap@example\.com \(mailbox unavailable\), x@honey\.example\.com \(mailbox unavailable\)$/);
    });

    it('then penalises the IP and its neighbours (one hit per message), and the sender domain only once SPF or DKIM passed for it', async () => {
      const same = await mw.scan({ ip: '192.0.2.50', helo: 'x.test', mailFrom: 'other@elsewhere.test', rcptTo: ['user@example.com'] });
      // One trap hit (two trap recipients count once): 10 of saturation 20 -> half of REP_IP_BAD's 4.
      assert.equal(score(same, 'REP_IP_BAD'), 2);
      assert.equal(score(same, 'REP_NET_BAD'), undefined, 'the IP\'s own events do not count again as its neighbours\'');
      const neighbour = await mw.scan({ ip: '192.0.2.51', helo: 'x.test', mailFrom: 'other@elsewhere.test', rcptTo: ['user@example.com'] });
      assert.equal(score(neighbour, 'REP_IP_BAD'), undefined);
      assert.equal(score(neighbour, 'REP_NET_BAD'), 1);
      // The trap hit above came with an unauthenticated MAIL FROM: anyone can write that one.
      const forged = await mw.scan({ ip: '203.0.113.9', helo: 'x.test', mailFrom: 'again@spamco.test', rcptTo: ['user@example.com'] });
      assert.equal(score(forged, 'REP_DOMAIN_BAD'), undefined);
      // A trap hit whose message then passed SPF for its domain charges the domain.
      const authenticated = createContext({ ip: '192.0.2.52', helo: 'x.test', mailFrom: 'promo@spamco.test', rcptTo: ['trap@example.com', 'user@example.com'], raw: 'From: promo@spamco.test\r\nSubject: deal\r\n\r\nbuy\r\n' });
      authenticated.notes.auth = { spf: { result: 'pass', domain: 'spamco.test' }, dkim: [] };
      await mw.scan(authenticated);
      const domain = await mw.scan({ ip: '203.0.113.9', helo: 'x.test', mailFrom: 'again@spamco.test', rcptTo: ['user@example.com'] });
      assert.equal(score(domain, 'REP_DOMAIN_BAD'), 1.5);
      const unrelated = await mw.scan({ ip: '203.0.113.10', helo: 'x.test', mailFrom: 'a@clean.test', rcptTo: ['user@example.com'] });
      assert.deepEqual(unrelated.verdict.symbols, []);
    });

    if (backend === 'memory') {
      it('mailward reputation refuses in-process state (it lives in each MTA) instead of reporting into a copy of its own', async () => {
        for (const argv of [['report', '192.0.2.9', '--kind', 'trap'], ['show', '192.0.2.50'], ['forget', '192.0.2.50']]) {
          const r = await cli(['reputation', ...argv, '--config', dir]);
          assert.equal(r.code, 1, `${argv.join(' ')}: ${r.out}`);
          assert.match(r.err, /\[state\] backend = memory .* keeps learned reputation inside each running MTA.*use backend = redis/);
          assert.doesNotMatch(r.out, /recorded|reputation/);
        }
      });
    }

    if (backend === 'redis') {
      it('keeps reputation in Redis under the prefix, with an expiry', async () => {
        const client = createClient({ url: REDIS_URL });
        await client.connect();
        try {
          const ttl = await client.ttl(`${prefix}rep:ip:192.0.2.50`);
          assert.ok(ttl > 6 * 24 * 3600 && ttl <= 7 * 24 * 3600 + 600, `ttl ${ttl}`);
          assert.ok((await client.ttl(`${prefix}rep:dom:spamco.test`)) > 0);
        } finally {
          await client.quit();
        }
      });

      it('mailward reputation show prints the score, its components and when it is neutral; forget clears it', async () => {
        const shown = await cli(['reputation', 'show', '192.0.2.50', '--config', dir, '--json']);
        assert.equal(shown.code, 0, shown.err);
        const json = JSON.parse(shown.out);
        assert.ok(json.reputation.score.evidence > 9.9 && json.reputation.score.evidence <= 10, shown.out);
        assert.equal(json.reputation.symbol.name, 'REP_IP_BAD');
        assert.ok(Date.parse(json.reputation.neutralAt) > Date.now() + 3 * 24 * HOUR, 'neutral only after several half-lives');
        const text = await cli(['reputation', 'show', 'spamco.test', '--config', dir]);
        assert.match(text.out, /domain spamco\.test: reputation \+(9\.9\d|10\.00) \(bad\)/);
        assert.match(text.out, /neutral +in \d+ d/);

        const forgot = await cli(['reputation', 'forget', '192.0.2.50', '--config', dir]);
        assert.equal(forgot.code, 0, forgot.err);
        const after = await mw.scan({ ip: '192.0.2.50', helo: 'x.test', mailFrom: 'a@clean.test', rcptTo: ['user@example.com'] });
        assert.equal(score(after, 'REP_IP_BAD'), undefined);
        const bad = await cli(['reputation', 'show', 'not an address', '--config', dir]);
        assert.equal(bad.code, 2);
      });
    }

    it('decays a trap hit: half the penalty after one half-life, nothing after the horizon', async () => {
      const hit = createContext({ ip: '198.51.100.60', helo: 'x.test', mailFrom: 'a@decay.test', rcptTo: ['trap@example.com', 'user@example.com'], raw: 'From: a@decay.test\r\nSubject: x\r\n\r\nx\r\n' });
      hit.notes.auth = { spf: { result: 'pass', domain: 'decay.test' }, dkim: [] };
      await mw.scan(hit);
      const probe = () => mw.scan({ ip: '198.51.100.60', helo: 'x.test', mailFrom: 'a@decay.test', rcptTo: ['user@example.com'] });
      assert.equal(score(await probe(), 'REP_IP_BAD'), 2);
      clock.advance(24 * HOUR);
      const half = score(await probe(), 'REP_IP_BAD')!;
      assert.ok(Math.abs(half - 1) <= 0.01, `after one half-life: ${half}`);
      assert.ok(Math.abs(score(await probe(), 'REP_DOMAIN_BAD')! - 0.75) <= 0.01);
      clock.advance(6 * 24 * HOUR + BUCKET);
      const gone = await probe();
      assert.equal(score(gone, 'REP_IP_BAD'), undefined, JSON.stringify(gone.verdict.symbols));
      assert.equal(score(gone, 'REP_DOMAIN_BAD'), undefined);
    });

    it('flags a directory harvest: a high share of unknown recipients from one IP over the window', async () => {
      const services = mw.runtime.services;
      const s = settingsOf(mw);
      for (let i = 0; i < 8; i++) await recordRecipientOutcome(services, s, '198.51.100.70', false);
      for (let i = 0; i < 2; i++) await recordRecipientOutcome(services, s, '198.51.100.70', true);
      for (let i = 0; i < 5; i++) await recordRecipientOutcome(services, s, '198.51.100.71', false);
      const harvester = await mw.scan({ ip: '198.51.100.70', helo: 'x.test', mailFrom: 'a@h.test', rcptTo: ['user@example.com'] });
      assert.match(harvester.verdict.symbols.find((x) => x.name === 'DIRECTORY_HARVEST')!.detail, /8 of 10/);
      // Unknown recipients also count, a little, against the IP's reputation.
      assert.ok((score(harvester, 'REP_IP_BAD') ?? 0) > 0);
      const few = await mw.scan({ ip: '198.51.100.71', helo: 'x.test', mailFrom: 'a@h.test', rcptTo: ['user@example.com'] });
      assert.equal(score(few, 'DIRECTORY_HARVEST'), undefined, 'below min_recipients');
      clock.advance(61 * 60_000);
      const later = await mw.scan({ ip: '198.51.100.70', helo: 'x.test', mailFrom: 'a@h.test', rcptTo: ['user@example.com'] });
      assert.equal(score(later, 'DIRECTORY_HARVEST'), undefined, 'the window has passed');
    });
  });
}

describe('reputation: learning from verdicts', () => {
  let dns: TestDnsServer;
  let dir: string;
  let mw: Mailward;
  const clock = manualClock();

  before(async () => {
    dns = await startDnsServer({ '99.2.0.192.bl.test': { A: ['127.0.0.2'] } });
    dir = writeConfig({ dnsServer: dns.server, reputation: LEARNED.replace('learn_ham_score = -1000', 'learn_ham_score = 1').replace('learn_spam_score = 1000', 'learn_spam_score = 5') });
    mw = reputationOnly(dir, clock);
  });
  after(async () => {
    await mw.close();
    await dns.stop();
    removeDir(dir);
  });

  it('learns spam with a small, capped weight: our own verdicts never push past verdict_cap', async () => {
    let last: ScanResult | undefined;
    for (let i = 0; i < 30; i++) {
      last = await mw.scan({ ip: '192.0.2.99', helo: 'x.test', mailFrom: `a${i}@victim.test`, rcptTo: ['user@example.com'] });
      clock.advance(60_000);
    }
    assert.equal(score(last!, 'TEST_SBL'), 6);
    // 30 spam verdicts, capped at 5 of saturation 20: a quarter of REP_IP_BAD's 4.
    assert.equal(score(last!, 'REP_IP_BAD'), 1);
    // The sender domain was never authenticated: a forged domain is not blamed.
    const domain = await mw.scan({ ip: '203.0.113.5', helo: 'x.test', mailFrom: 'b@victim.test', rcptTo: ['user@example.com'] });
    assert.equal(score(domain, 'REP_DOMAIN_BAD'), undefined);
  });

  it('does not learn "spam" from a score made only of its own REP_* symbols', async () => {
    const ctx = createContext({ ip: '203.0.113.77', mailFrom: 'x@y.test', rcptTo: ['user@example.com'] });
    const verdict = {
      action: 'soft_reject' as const,
      score: 12,
      symbols: [{ name: 'REP_IP_BAD', score: 12, group: 'reputation', detail: '' }],
      ref: 'T1',
      reason: '',
      groups: { reputation: 12 },
    };
    assert.equal(await recordVerdict(mw.runtime.services, settingsOf(mw), ctx, verdict), 'ham');
    const spam = { ...verdict, score: 18, symbols: [...verdict.symbols, { name: 'TEST_SBL', score: 6, group: 'reputation', detail: '' }] };
    assert.equal(await recordVerdict(mw.runtime.services, settingsOf(mw), ctx, spam), 'spam');
    const forced = { ...spam, forced: { action: 'reject' as const, source: 'rule', reason: 'x' } };
    assert.equal(await recordVerdict(mw.runtime.services, settingsOf(mw), ctx, forced), null, 'forced actions teach nothing');
  });

  it('learns ham, and a good reputation is worth at most its (small) negative weight', async () => {
    let last: ScanResult | undefined;
    for (let i = 0; i < 20; i++) {
      last = await mw.scan({ ip: '203.0.113.20', helo: 'x.test', mailFrom: 'news@shop.test', rcptTo: ['user@example.com'] });
      clock.advance(60_000);
    }
    assert.equal(score(last!, 'REP_IP_GOOD'), -1);
  });
});

describe('reputation: a flood of spam-trap recipients in one scan', () => {
  let dir: string;
  let mw: Mailward;
  before(() => {
    dir = writeConfig({ dnsServer: '127.0.0.1:9', reputation: '[dnsbl]\nenabled = false\n[practices]\nenabled = false\n[learned]\nenabled = false\n[spamtrap]\naddresses = *@honey.example.com\n' });
    mw = reputationOnly(dir);
  });
  after(async () => {
    await mw.close();
    removeDir(dir);
  });

  it('names the first 1,000 refused recipients, counts all 1,500, and accepts only the others', async () => {
    // Before: all 1,500 kept by name (the ledger's map grew with every refused RCPT TO), and no total.
    const traps = Array.from({ length: 1500 }, (_, i) => `t${i}@honey.example.com`);
    const r = await mw.scan({ ip: '192.0.2.60', helo: 'x.test', mailFrom: 'promo@spamco.test', rcptTo: [...traps, 'user@example.com'] });
    assert.equal(Object.keys(r.refusedRecipients).length, 1000);
    assert.equal(r.refusedRecipients['t0@honey.example.com'], 'mailbox unavailable');
    assert.equal(r.refusedCount, 1500);
    assert.deepEqual(r.context.rcptTo, ['user@example.com'], 'a trap past the first 1,000 was accepted');
    assert.deepEqual(r.row.rcptTo, ['user@example.com']);
    assert.match(r.row.reason, /; refused recipients: t0@honey\.example\.com \(mailbox unavailable\), .*, and 1480 more$/);
  });

  it('records in the row a scan whose every recipient was refused', async () => {
    const r = await mw.scan({ ip: '192.0.2.61', helo: 'x.test', mailFrom: 'promo@spamco.test', rcptTo: ['t1@honey.example.com'] });
    assert.deepEqual(r.row.rcptTo, [], 'the row lists only accepted recipients');
    assert.match(r.row.reason, /; refused recipients: t1@honey\.example\.com \(mailbox unavailable\)$/);
  });
});
