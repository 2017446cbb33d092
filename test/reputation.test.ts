import assert from 'node:assert/strict';
import { loadConfig } from '../lib/config/load';
import { ConfigError } from '../lib/config/errors';
import type { Mailward } from '../lib';
import { startDnsServer, type TestDnsServer } from './support/dns-server';
import { recordingLogger, removeDir, reputationOnly, writeConfig } from './reputation/setup';

// DNS lists and bad sending practices against a real DNS server on loopback.

const ZONES = `
[learned]
; Verdicts of one test must not leak into the next through learning.
learn_from_verdicts = false

[practices]
local_names = mx.example.com, example.com
local_ips = 198.51.100.25

[zone:bl.test]
type = ip
127.0.0.2 = TEST_SBL:6
127.0.0.4 = TEST_XBL:5

[zone:wl.test]
type = ip
error_codes = 127.0.0.255
127.0.*.3 = TEST_WL_HI:-3

[zone:dbl.test]
type = domain
127.0.1.* = TEST_DBL:5

[zone:off.test]
enabled = false
127.0.0.2 = TEST_OFF:9
`;

function names(result: { verdict: { symbols: { name: string }[] } }): string[] {
  return result.verdict.symbols.map((s) => s.name).sort();
}

function score(result: { verdict: { symbols: { name: string; score: number }[] } }, name: string): number | undefined {
  return result.verdict.symbols.find((s) => s.name === name)?.score;
}

describe('reputation: DNS lists and sending practices (real DNS server on loopback)', () => {
  let dns: TestDnsServer;
  let dir: string;
  let mw: Mailward;
  const log = recordingLogger();

  before(async () => {
    dns = await startDnsServer({
      // A well-behaved sender: FCrDNS, allow-listed.
      '10.2.0.192.in-addr.arpa': { PTR: ['mail.good.test'] },
      'mail.good.test': { A: ['192.0.2.10'] },
      '10.2.0.192.wl.test': { A: ['127.0.10.3'] },
      // Listed twice in bl.test (two codes, two symbols).
      '99.2.0.192.in-addr.arpa': { PTR: ['host99.bad.test'] },
      'host99.bad.test': { A: ['192.0.2.99'] },
      '99.2.0.192.bl.test': { A: ['127.0.0.2', '127.0.0.4'] },
      // "Query refused" answers: never a listing.
      '77.2.0.192.bl.test': { A: ['127.255.255.254'] },
      '78.2.0.192.bl.test': { A: ['192.0.2.1'] },
      '77.2.0.192.wl.test': { A: ['127.0.0.255'] },
      // Listed IPv6 (nibble-reversed).
      '9.9.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test': { A: ['127.0.0.2'] },
      // PTR that does not resolve back.
      '30.2.0.192.in-addr.arpa': { PTR: ['liar.test'] },
      'liar.test': { A: ['192.0.2.31'] },
      // Listed sender domain.
      'spammy.test.dbl.test': { A: ['127.0.1.2'] },
      'listed-from.test.dbl.test': { A: ['127.0.1.4'] },
      // The disabled zone would list everyone.
      '10.2.0.192.off.test': { A: ['127.0.0.2'] },
    });
    dir = writeConfig({ dnsServer: dns.server, reputation: ZONES, timeoutMs: 300 });
    mw = reputationOnly(dir, undefined, log);
  });
  after(async () => {
    await mw.close();
    await dns.stop();
    removeDir(dir);
  });
  beforeEach(() => {
    dns.mode = 'normal';
    mw.runtime.services.dns.clear();
  });

  it('defines symbols from each zone\'s return codes, overridable in [scores]', () => {
    const config = loadConfig({ configDir: dir });
    assert.equal(config.symbols.get('TEST_SBL').score, 6);
    assert.equal(config.symbols.get('TEST_WL_HI').score, -3);
    assert.equal(config.symbols.get('TEST_SBL').group, 'reputation');
    assert.match(config.symbols.get('TEST_XBL').description, /bl\.test/);
    // Shipped (disabled) public zones still define their symbols, so [scores] may name them.
    assert.equal(config.symbols.get('DNSBL_SPAMHAUS_SBL').score, 6);
  });

  it('maps each listing code of an IPv4 client to its symbol', async () => {
    const r = await mw.scan({ ip: '192.0.2.99', helo: 'host99.bad.test', mailFrom: 'a@sender.test', rcptTo: ['u@example.com'] });
    assert.equal(score(r, 'TEST_SBL'), 6);
    assert.equal(score(r, 'TEST_XBL'), 5);
    assert.match(r.verdict.symbols.find((s) => s.name === 'TEST_SBL')!.detail, /127\.0\.0\.2/);
    assert.ok(dns.queries.includes('A 99.2.0.192.bl.test'));
  });

  it('looks IPv6 clients up nibble-reversed', async () => {
    const r = await mw.scan({ ip: '2001:db8::99', helo: 'v6.test', mailFrom: 'a@sender.test', rcptTo: ['u@example.com'] });
    assert.equal(score(r, 'TEST_SBL'), 6);
  });

  it('credits an allow-listed client (DNSWL) and leaves unknown names clean', async () => {
    const r = await mw.scan({ ip: '192.0.2.10', helo: 'mail.good.test', mailFrom: 'a@good.test', rcptTo: ['u@example.com'] });
    assert.deepEqual(names(r), ['TEST_WL_HI']);
    assert.equal(r.verdict.score, -3);
    assert.equal(r.row.ptr, 'mail.good.test');
    assert.ok(!dns.queries.some((q) => q.includes('off.test')), 'a disabled zone is never queried');
  });

  it('treats "query refused" answers (127.255.255.x, outside 127/8, a zone\'s error codes) as errors with score 0', async () => {
    for (const ip of ['192.0.2.77', '192.0.2.78']) {
      const r = await mw.scan({ ip, helo: 'x.test', mailFrom: 'a@sender.test', rcptTo: ['u@example.com'] });
      assert.ok(r.verdict.symbols.some((s) => s.name === 'DNSBL_BLOCKED' && s.score === 0), ip);
      assert.ok(!r.verdict.symbols.some((s) => /^TEST_/.test(s.name)), `${ip}: ${names(r)}`);
    }
    assert.ok(log.lines.some((l) => /^warn .*bl\.test answered 127\.255\.255\.254/.test(l)), 'the operator is told');
  });

  it('looks the envelope sender and the From: domain up in domain lists', async () => {
    const envelope = await mw.scan({ ip: '192.0.2.10', helo: 'mail.good.test', mailFrom: 'a@spammy.test', rcptTo: ['u@example.com'] });
    assert.match(envelope.verdict.symbols.find((s) => s.name === 'TEST_DBL')!.detail, /spammy\.test/);
    const header = await mw.scan({
      ip: '192.0.2.10',
      helo: 'mail.good.test',
      mailFrom: 'a@good.test',
      rcptTo: ['u@example.com'],
      raw: 'From: "Bank" <alert@listed-from.test>\r\nSubject: hi\r\n\r\nbody\r\n',
    });
    assert.match(header.verdict.symbols.find((s) => s.name === 'TEST_DBL')!.detail, /listed-from\.test/);
    // A clean address written inside the quoted display name does not hide the real one.
    const hidden = await mw.scan({
      ip: '192.0.2.10',
      helo: 'mail.good.test',
      mailFrom: 'a@good.test',
      rcptTo: ['u@example.com'],
      raw: 'From: "<news@good.test>" <alert@listed-from.test>\r\nSubject: hi\r\n\r\nbody\r\n',
    });
    assert.match(hidden.verdict.symbols.find((s) => s.name === 'TEST_DBL')?.detail ?? '', /listed-from\.test/);
  });

  it('reports a missing PTR and sets ctx.ptr to null', async () => {
    const r = await mw.scan({ ip: '192.0.2.20', helo: 'somewhere.test', mailFrom: 'a@sender.test', rcptTo: ['u@example.com'] });
    assert.ok(names(r).includes('RDNS_NONE'));
    assert.equal(r.row.ptr, null);
  });

  it('reports a PTR that is not forward-confirmed, and a HELO outside the PTR\'s domain', async () => {
    const r = await mw.scan({ ip: '192.0.2.30', helo: 'mail.other.test', mailFrom: 'a@sender.test', rcptTo: ['u@example.com'] });
    assert.ok(names(r).includes('RDNS_NOT_FCRDNS'), names(r).join());
    assert.ok(names(r).includes('HELO_PTR_MISMATCH'));
    assert.equal(r.row.ptr, 'liar.test');
  });

  it('judges the HELO name: not a FQDN, bare IP, wrong literal, our own name or address', async () => {
    const cases: [string, string[]][] = [
      ['localhost', ['HELO_NOT_FQDN']],
      ['192.0.2.10', ['HELO_BARE_IP']],
      ['[192.0.2.11]', ['HELO_IP_MISMATCH']],
      ['[192.0.2.10]', []],
      ['mx.example.com', ['HELO_FORGED_LOCAL']],
      ['[198.51.100.25]', ['HELO_FORGED_LOCAL']],
      ['relay.good.test', []],
    ];
    for (const [helo, expected] of cases) {
      const r = await mw.scan({ ip: '192.0.2.10', helo, localHostname: 'mx.example.com', mailFrom: 'a@good.test', rcptTo: ['u@example.com'] });
      const helos = names(r).filter((n) => n.startsWith('HELO_'));
      assert.deepEqual(helos, expected, `HELO ${helo}`);
    }
  });

  it('leaves internal and authenticated clients alone', async () => {
    const internal = await mw.scan({ ip: '10.1.2.3', helo: 'x', mailFrom: 'a@spammy.test', rcptTo: ['u@example.com'] });
    assert.deepEqual(names(internal), []);
    const auth = await mw.scan({ ip: '192.0.2.99', helo: 'x', authUser: 'alice', mailFrom: 'a@spammy.test', rcptTo: ['u@example.com'] });
    assert.deepEqual(names(auth), []);
  });

  it('turns a silent DNS server into TEMPERROR symbols within the deadline, never a refusal', async () => {
    dns.mode = 'silent';
    const started = Date.now();
    const r = await mw.scan({ ip: '192.0.2.99', helo: 'host99.bad.test', mailFrom: 'a@spammy.test', rcptTo: ['u@example.com'] });
    const elapsed = Date.now() - started;
    // The TEMPERROR symbols below are what the 300 ms DNS deadline promises; the bound, far above the look-ups
    // it allows, only catches one left to the resolver's own retries (23 s by default) or one that never ends.
    assert.ok(elapsed < 10_000, `took ${elapsed} ms`);
    const fired = names(r);
    assert.ok(fired.includes('DNSBL_TEMPERROR'), fired.join());
    assert.ok(fired.includes('RDNS_TEMPERROR'), fired.join());
    assert.equal(r.verdict.score, 0);
    assert.equal(r.verdict.action, 'accept');
  });

  it('turns SERVFAIL into TEMPERROR symbols with score 0', async () => {
    dns.mode = 'servfail';
    const r = await mw.scan({ ip: '192.0.2.99', helo: 'host99.bad.test', mailFrom: 'a@sender.test', rcptTo: ['u@example.com'] });
    assert.ok(r.verdict.symbols.some((s) => s.name === 'DNSBL_TEMPERROR' && s.score === 0 && /SERVFAIL|ESERVFAIL/.test(s.detail)), JSON.stringify(r.verdict.symbols));
    assert.equal(r.verdict.action, 'accept');
  });

  it('rejects a malformed zone at load, naming file, section and key', () => {
    const bad = writeConfig({ dnsServer: dns.server, reputation: '[zone:x.test]\n127.0.0.2 = lowercase:3\n' });
    const unknown = writeConfig({ dnsServer: dns.server, reputation: '[zone:x.test]\nbogus = 1\n' });
    const reward = writeConfig({ dnsServer: dns.server, reputation: '[zone:dwl.test]\ntype = domain\n127.0.2.* = DWL_HI:-3\n' });
    try {
      // A domain list can only add: the domain it looks up is whatever the sender wrote.
      assert.throws(() => loadConfig({ configDir: reward }), (err: unknown) => err instanceof ConfigError && /zone:dwl\.test\] 127\.0\.2\.\*: a domain list cannot lower the score/.test(err.message));
      removeDir(reward);
      assert.throws(() => loadConfig({ configDir: bad }), (err: unknown) => err instanceof ConfigError && /zone:x\.test/.test(err.message) && /127\.0\.0\.2/.test(err.message));
      assert.throws(() => loadConfig({ configDir: unknown }), (err: unknown) => err instanceof ConfigError && /bogus/.test(err.message));
    } finally {
      removeDir(bad);
      removeDir(unknown);
    }
  });
});

describe('reputation: shipped defaults', () => {
  it('query no public DNS list (the demo runs offline) and skip internal clients', () => {
    const config = loadConfig({});
    const settings = config.modules.find((m) => m.module.name === 'reputation')!.settings;
    assert.ok(settings.dnsbl.zones.length >= 3, 'public zones are shipped, ready to enable');
    assert.deepEqual(settings.dnsbl.zones.filter((z: { enabled: boolean }) => z.enabled), []);
    assert.equal(settings.skipInternal, true);
  });
});
