// A replayed DKIM signature must not charge (nor credit) the signer's domain.
// Red team 4: an attacker holding one genuine DKIM-signed example.com newsletter replays it
// from its own IP (SPF fails for example.com) with MAIL FROM news@example.com to a spam trap
// and a real user; each replay charged example.com with a trap hit (DKIM passed "for it"),
// and two gave example.com's own, fully authenticated mail REP_DOMAIN_BAD +3.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { createMailward, type Mailward } from '../lib';
import { recordVerdict, type ReputationSettings } from '../lib/checks/reputation';
import { domainEntity, LearnedStore } from '../lib/checks/reputation/learned';
import { configDir, IP, message, sharedIni, sign, startAuthWorld, type AuthWorld } from './fixtures/auth/world';

describe('reputation: a replayed DKIM signature does not bind the envelope domain', function () {
  this.timeout(60_000);
  let world: AuthWorld;
  let dir: string;
  let mw: Mailward;
  before(async () => {
    world = await startAuthWorld();
    dir = configDir({
      'mailward.ini': `${sharedIni(world.dns)}\n[main]\nnode_name = replay\n[state]\nbackend = memory\n`,
      // skip_internal off only because the test world's client IPs are on 127/8.
      'mailward.reputation.ini': '[main]\nskip_internal = false\n[practices]\nenabled = false\n[spamtrap]\naddresses = trap@ourmx.example\n',
    });
  });
  beforeEach(() => {
    mw = createMailward({ configDir: dir, modules: ['builtin', 'reputation', 'auth'] });
  });
  afterEach(() => mw.close());
  after(async () => {
    await world.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const settings = () => mw.runtime.config.modules.find((m) => m.module.name === 'reputation')!.settings as ReputationSettings;
  const domainCounts = async (domain: string) => (await new LearnedStore(mw.runtime.services.state, settings().learned, mw.runtime.services.clock).read(domainEntity(domain))).raw;
  const names = (r: { verdict: { symbols: { name: string }[] } }) => r.verdict.symbols.map((s) => s.name);

  it('replays of a signed newsletter to a trap charge the attacker\'s IP, not example.com', async () => {
    const newsletter = await sign(message({ from: 'News <news@example.com>', to: 'mallory@attacker.test', subject: 'March news' }), 'example.com', 's1', world.keys.example);
    for (let i = 0; i < 2; i++) {
      const r = await mw.scan({ ip: IP.attacker, helo: 'mx.attacker.test', mailFrom: 'news@example.com', rcptTo: ['trap@ourmx.example', 'bob@ourmx.example'], raw: newsletter });
      assert.ok(names(r).includes('SPAMTRAP'));
      assert.ok(names(r).includes('SPF_FAIL'), 'SPF fails for the envelope');
      assert.equal((r.context.notes.auth as any).dkim[0].result, 'pass', 'the signature itself verifies');
    }
    assert.equal((await domainCounts('example.com')).trap, 0, 'no trap hit charged to example.com');
    const own = await sign(message({ from: 'Alice <alice@example.com>', to: 'bob@ourmx.example' }), 'example.com', 's1', world.keys.example);
    const legit = await mw.scan({ ip: IP.example, helo: 'mail.example.com', mailFrom: 'alice@example.com', rcptTo: ['bob@ourmx.example'], raw: own });
    assert.ok(!names(legit).includes('REP_DOMAIN_BAD'), `example.com's own mail: ${names(legit).join(' ')}`);
    // The replaying IP itself did hit the trap.
    const again = await mw.scan({ ip: IP.attacker, helo: 'mx.attacker.test', mailFrom: 'x@attacker.test', rcptTo: ['bob@ourmx.example'], raw: message({ from: 'x@attacker.test' }) });
    assert.ok(names(again).includes('REP_IP_BAD'));
  });

  it('a replay teaches example.com nothing from our verdicts, spam or ham', async () => {
    const newsletter = await sign(message({ from: 'News <news@example.com>', to: 'mallory@attacker.test' }), 'example.com', 's1', world.keys.example);
    const r = await mw.scan({ ip: IP.attacker, helo: 'mx.attacker.test', mailFrom: 'news@example.com', rcptTo: ['bob@ourmx.example'], raw: newsletter });
    const spam = { ...r.verdict, score: 50, symbols: [], forced: undefined };
    const ham = { ...r.verdict, score: -5, symbols: [], forced: undefined };
    for (let i = 0; i < 3; i++) {
      assert.equal(await recordVerdict(mw.runtime.services, settings(), r.context, spam), 'spam');
      assert.equal(await recordVerdict(mw.runtime.services, settings(), r.context, ham), 'ham');
    }
    const counts = await domainCounts('example.com');
    assert.equal(counts.spam, 0, 'replay did not spoil example.com');
    assert.equal(counts.ham, 0, 'replay did not launder example.com');
  });

  it('still charges example.com when SPF passes for it, or when it signed the trap into To:', async () => {
    // example.com's own server mails the trap (and a user): SPF passes for the envelope domain.
    const own = await sign(message({ from: 'News <news@example.com>', to: 'list@example.com' }), 'example.com', 's1', world.keys.example);
    await mw.scan({ ip: IP.example, helo: 'mail.example.com', mailFrom: 'news@example.com', rcptTo: ['trap@ourmx.example', 'bob@ourmx.example'], raw: own });
    assert.equal((await domainCounts('example.com')).trap, 1, 'SPF pass: charged');

    // A signature whose signed To: names the trap: example.com itself addressed the trap, wherever it came from.
    const toTrap = await sign(message({ from: 'News <news@example.com>', to: 'Trap <trap@ourmx.example>' }), 'example.com', 's1', world.keys.example);
    await mw.scan({ ip: IP.attacker, helo: 'mx.attacker.test', mailFrom: 'news@example.com', rcptTo: ['trap@ourmx.example', 'bob@ourmx.example'], raw: toTrap });
    assert.equal((await domainCounts('example.com')).trap, 2, 'trap in the signed To:: charged');

    // A To: naming the trap added above the signed one by the replayer is not covered by the signature.
    const signed = await sign(message({ from: 'News <news@example.com>', to: 'mallory@attacker.test' }), 'example.com', 's1', world.keys.example);
    const added = `To: trap@ourmx.example\r\n${signed}`;
    const r = await mw.scan({ ip: IP.attacker, helo: 'mx.attacker.test', mailFrom: 'news@example.com', rcptTo: ['trap@ourmx.example', 'bob@ourmx.example'], raw: added });
    assert.equal((r.context.notes.auth as any).dkim[0].result, 'pass', 'the added To: does not break the signature');
    assert.equal((await domainCounts('example.com')).trap, 2, 'an unsigned To: charges nothing');
  });
});
