import assert from 'node:assert/strict';
import { DnsResolver, DnsTempError, expandIPv6, reverseName } from '../lib/dns/resolver';
import { startDnsServer, type TestDnsServer } from './support/dns-server';

describe('DnsResolver against a real DNS server on loopback', () => {
  let dns: TestDnsServer;
  let resolver: DnsResolver;

  before(async () => {
    dns = await startDnsServer({
      'mail.example.net': { A: ['192.0.2.10'], AAAA: ['2001:db8::10'] },
      'example.net': { TXT: ['v=spf1 ip4:192.0.2.0/24 -all', `long=${'x'.repeat(600)}`], MX: [{ exchange: 'mail.example.net', priority: 10 }] },
      '10.2.0.192.in-addr.arpa': { PTR: ['mail.example.net'] },
    });
    resolver = new DnsResolver({ servers: [dns.server], timeoutMs: 400, cacheSize: 100, maxTtl: 60, negativeTtl: 60 });
  });
  after(() => dns.stop());
  beforeEach(() => {
    dns.mode = 'normal';
    resolver.clear();
  });

  it('answers A, AAAA, MX, PTR and multi-chunk TXT records', async () => {
    assert.deepEqual(await resolver.resolve('mail.example.net', 'A'), ['192.0.2.10']);
    assert.deepEqual(await resolver.resolve('mail.example.net', 'AAAA'), ['2001:db8::10']);
    assert.deepEqual(await resolver.reverse('192.0.2.10'), ['mail.example.net']);
    const txt = (await resolver.resolve('example.net', 'TXT')).map((parts: string[]) => parts.join(''));
    assert.ok(txt.includes('v=spf1 ip4:192.0.2.0/24 -all'));
    assert.ok(txt.includes(`long=${'x'.repeat(600)}`));
    assert.equal((await resolver.resolve('example.net', 'MX'))[0].exchange, 'mail.example.net');
  });

  it('treats NXDOMAIN as an empty answer, not an error', async () => {
    assert.deepEqual(await resolver.resolve('nothing.example.net', 'A'), []);
  });

  it('caches answers', async () => {
    await resolver.resolve('mail.example.net', 'A');
    const before = dns.queries.length;
    await resolver.resolve('mail.example.net', 'A');
    assert.equal(dns.queries.length, before);
  });

  it('turns SERVFAIL into a DnsTempError', async () => {
    dns.mode = 'servfail';
    await assert.rejects(resolver.resolve('mail.example.net', 'A'), DnsTempError);
  });

  it('gives up on a silent server at the deadline', async () => {
    dns.mode = 'silent';
    const started = Date.now();
    // TIMEOUT is the code of the resolver's own deadline timer (c-ares, left to its tries, ends with ETIMEOUT):
    // the deadline fired, and not before its 400 ms (load only makes it later).
    await assert.rejects(resolver.resolve('silent.example.net', 'A'), (err: unknown) => err instanceof DnsTempError && err.code === 'TIMEOUT');
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 380, `gave up after ${elapsed} ms, before the deadline`);
    // hang guard, not a performance test: typical 400ms.
    assert.ok(elapsed < 10_000, `took ${elapsed} ms`);
  });

  it('builds reverse names for IPv4 and IPv6', () => {
    assert.equal(reverseName('192.0.2.1'), '1.2.0.192.in-addr.arpa');
    assert.equal(expandIPv6('2001:db8::1'), '2001:0db8:0000:0000:0000:0000:0000:0001');
    assert.equal(reverseName('2001:db8::1'), '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa');
  });
});

describe('DnsResolver cache: bounded in bytes, not only in answers', () => {
  let dns: TestDnsServer;
  const names = Array.from({ length: 20 }, (_, i) => `big${i}.hostile.example`);

  before(async () => {
    // What a hostile zone can serve for every name a sender makes us look up: TXT answers of 8 KB (over TCP).
    dns = await startDnsServer(Object.fromEntries(names.map((name) => [name, { TXT: [`v=spf1 ${'x'.repeat(8000)}`] }])));
  });
  after(() => dns.stop());

  it('keeps at most cache_max_kb of answers: the oldest big ones are asked again', async () => {
    const settings = { servers: [dns.server], timeoutMs: 2000, cacheSize: 10_000, maxTtl: 600, negativeTtl: 60, cacheMaxBytes: 40 * 1024 };
    const resolver = new DnsResolver(settings);
    for (const name of names) assert.equal((await resolver.resolve(name, 'TXT'))[0].join('').length, 8007);
    const asked = dns.queries.length;
    for (const name of names) await resolver.resolve(name, 'TXT');
    // 20 answers of 8 KB are 160 KB; 40 KB hold at most 4 of them, so at least 16 are asked again.
    const again = dns.queries.length - asked;
    assert.ok(again >= 16, `only ${again} of 20 answers were asked again: the cache kept more than 40 KB`);
  });

  it('still serves small answers from the cache', async () => {
    const resolver = new DnsResolver({ servers: [dns.server], timeoutMs: 2000, cacheSize: 10_000, maxTtl: 600, negativeTtl: 60 });
    await resolver.resolve(names[0]!, 'TXT');
    const asked = dns.queries.length;
    await resolver.resolve(names[0]!, 'TXT');
    assert.equal(dns.queries.length, asked);
  });
});
