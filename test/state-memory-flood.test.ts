// The memory store (the single-node default) under a flood of fresh subjects.
// Red team 4: every key shared one LRU of memory_max_entries, and each unverified bounce with a
// fresh subject creates a throttle counter key, so ~memory_max_entries such bounces from outside
// pushed out the record of Alice's relayed mail (her genuine bounce turned BOUNCE_UNVERIFIED) and
// the attacker IP's learnt REP_IP_BAD. Scaled down: memory_max_entries = 1000 (default 200000).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMailward } from '../lib';
import { domainEntities, entityKey, evictionGroup, ipEntity, LearnedStore, netEntity } from '../lib/checks/reputation/learned';
import { parseReputationSettings } from '../lib/checks/reputation/settings';
import { IniReader } from '../lib/config/reader';
import { OutboundLedger } from '../lib/checks/outbound/ledger';
import { SentMessages } from '../lib/checks/backscatter/sent';
import { GroupBoundedLru, keptPerGroup, MemoryStore, PROMOTE_AFTER_MS, SegmentedPool } from '../lib/state/memory';
import { bounce, outbound } from './backscatter/support';

const letters = (n: number): string => {
  let s = '';
  do {
    s += String.fromCharCode(97 + (n % 26));
    n = Math.floor(n / 26);
  } while (n);
  return s;
};

describe('memory state: short-lived counters cannot push out long-lived records', function () {
  this.timeout(120_000);
  const MAX = 1000;
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'mw-evict-'));
    writeFileSync(join(dir, 'mailward.ini'), `[main]\nnode_name = evict\ndata_dir = ${dir}\n[dns]\nservers = 127.0.0.1:9\ntimeout_ms = 200\n[state]\nbackend = memory\nmemory_max_entries = ${MAX}\n[tracking]\nenabled = false\n`);
    writeFileSync(join(dir, 'mailward.reputation.ini'), `[practices]\nenabled = false\n[spamtrap]\naddresses = trap@example.com\n`);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a flood of bounces with fresh subjects keeps our relayed mail\'s record and the attacker\'s trap hits', async () => {
    const mw = createMailward({ configDir: dir, modules: ['builtin', 'reputation', 'backscatter'] });
    try {
      await mw.scan({ ip: '192.0.2.25', mailFrom: 'alice@example.com', authUser: 'alice', relaying: true, rcptTo: ['nobody@remote.example'], raw: outbound({ mid: '<q1.alice@example.com>' }) });
      const realBounce = bounce('postfix-dsn.eml', { mid: '<q1.alice@example.com>' });
      const first = await mw.scan({ ip: '198.51.100.50', mailFrom: '', rcptTo: ['alice@example.com'], raw: realBounce });
      assert.ok(first.verdict.symbols.some((s) => s.name === 'BOUNCE_VERIFIED'), 'verified before the flood');

      const attacker = '203.0.113.99';
      const spam = 'From: x@spam.example\r\nSubject: hi\r\n\r\nx\r\n';
      for (let i = 0; i < 2; i++) await mw.scan({ ip: attacker, mailFrom: 'x@spam.example', rcptTo: ['trap@example.com', 'bob@example.com'], raw: spam });

      for (let i = 0; i < MAX + 50; i++) {
        const raw = `From: MAILER-DAEMON@bouncer${i % 7}.example\r\nTo: alice@example.com\r\nSubject: Undeliverable ${['alpha', 'beta', 'gamma', 'delta', 'eps'][i % 5]} ${letters(i)}\r\n\r\nno original\r\n`;
        await mw.scan({ ip: `198.18.${(i >> 8) & 255}.${i & 255}`, mailFrom: '', rcptTo: ['bob@example.com'], raw });
      }

      const after = await mw.scan({ ip: '198.51.100.50', mailFrom: '', rcptTo: ['alice@example.com'], raw: realBounce });
      const names = after.verdict.symbols.map((x) => x.name);
      assert.ok(names.includes('BOUNCE_VERIFIED') && !names.includes('BOUNCE_UNVERIFIED'), `Alice's genuine bounce after the flood: ${names.join(' ')}`);
      const post = await mw.scan({ ip: attacker, mailFrom: 'x@spam.example', rcptTo: ['bob@example.com'], raw: spam });
      assert.ok(post.verdict.symbols.some((x) => x.name === 'REP_IP_BAD'), 'the attacker keeps its bad reputation');
      const size = (mw.runtime.services.state as MemoryStore).size;
      console.log('    pools after the flood:', size);
      assert.equal(size.counters, MAX, `the flood filled the counters' pool (${JSON.stringify(size)})`);
    } finally {
      await mw.close();
    }
  });

  it('MemoryStore: counters and records are bounded separately', async () => {
    const store = new MemoryStore(100);
    await store.set('ob:susp:alice', 'suspended', 3600);
    await store.hashIncrBy('rep:ip:203.0.113.99', { '1:trap': 1 }, 3600);
    await store.incrBy('release-used:stamp1', 1, 3600);
    for (let i = 0; i < 500; i++) {
      await store.incrBy(`bs:cnt:${i}:1`, 1, 600);
      await store.hashIncrBy(`harvest:198.18.0.${i}`, { '1:u': 1 }, 600);
      await store.incrBy(`content:bulk:${i}:1`, 1, 600);
    }
    assert.deepEqual(store.size, { records: 2, reputation: 1, counters: 100 });
    assert.equal(await store.get('ob:susp:alice'), 'suspended');
    assert.deepEqual(await store.hashGetAll('rep:ip:203.0.113.99'), { '1:trap': '1' });
    assert.equal(await store.get('release-used:stamp1'), '1');
    // The newest counters are there, in both listings and reads.
    assert.equal(await store.get('bs:cnt:499:1'), '1');
    assert.deepEqual((await store.keys('bs:cnt:499:')).sort(), ['bs:cnt:499:1']);
    assert.deepEqual(await store.keys('ob:susp:'), ['ob:susp:alice']);
    // Records still evict each other past the bound (the store stays bounded).
    for (let i = 0; i < 150; i++) await store.set(`bs:sent:${i}`, '1', 3600);
    assert.equal(store.size.records, 100);
    await store.close();
  });

  it('a flood of fresh IPv6 clients keeps the reputation of trap hitters and of senders seen over time', async () => {
    // Known since stop 17: within the reputation pool, 500 fresh addresses of one /48 with a spam verdict
    // each pushed out a spamtrap-hitting IP's and a regular sender domain's whole history. Review (stop 22):
    // promoting on any second write was defeated by two writes per flooding client (two unknown recipients).
    const store = new MemoryStore(100, { promoteAfterMs: 40 });
    const clock = () => Date.now();
    const learned = new LearnedStore(store, parseReputationSettings(new IniReader('mailward.reputation.ini', {})).settings.learned, clock);
    const trapper = ipEntity('203.0.113.99');
    const regular = { type: 'domain', id: 'regular.example' } as const;
    await learned.record([trapper], 'trap');
    await learned.record([regular], 'ham');
    await new Promise((r) => setTimeout(r, 60));
    await learned.record([regular], 'ham');
    const once = ipEntity('198.51.100.7');
    await learned.record([once], 'ham');
    await learned.record([once], 'ham');
    for (let i = 0; i < 500; i++) {
      const ip = `2001:db8:77:${i.toString(16)}::1`;
      await learned.record([ipEntity(ip), netEntity(ip)], 'invalid');
      await learned.record([ipEntity(ip), netEntity(ip)], 'spam');
    }
    assert.equal((await learned.read(trapper)).raw.trap, 1, 'a trap hit survives the flood');
    assert.equal((await learned.read(regular)).raw.ham, 2, 'a sender seen over time keeps its history');
    // The price: an entity seen in one burst only is one of the flood's kind, and may go.
    assert.equal((await learned.read(once)).raw.ham ?? 0, 0);
    assert.ok(store.size.reputation <= 200, `bounded: ${store.size.reputation}`);
    await store.close();
  });

  it('SegmentedPool: a key that expired in the kept segment and is written again is held once', async () => {
    const pool = new SegmentedPool(10, { promoteAfterMs: 0 });
    pool.set('k', { value: 'a' }, { ttl: 20 });
    pool.set('k', { value: 'b' }, { ttl: 20 });
    await new Promise((r) => setTimeout(r, 40));
    pool.set('k', { value: 'c' }, { ttl: 1000 });
    assert.equal(pool.size, 1);
    assert.equal(pool.get('k')?.value, 'c');
  });

  it('a flood of fresh client IPs (one learnt reputation each) keeps suspensions and relayed Message-IDs', async () => {
    // Review (rv2): 1,000 fresh IPv6 client IPs with one ham each (rep:ip: + rep:net: keys) filled the
    // records pool and pushed out ob:susp:alice and the ob:mid record: the suspension lifted itself and
    // complaints about Alice's relayed mail could no longer be attributed.
    const store = new MemoryStore(1000);
    const clock = () => Date.now();
    const ledger = new OutboundLedger(store, { window: { hours: 168 }, policy: {} as never, recordSeconds: 86400 }, clock);
    await store.set('ob:susp:alice', 'suspended');
    await ledger.recordMessage('<m1@ours.example>', 'alice', ['bob@x.example']);
    const sent = new SentMessages(store, 86400, clock);
    await sent.record('<m2@ours.example>', ['alice@ours.example']);
    const learned = new LearnedStore(store, parseReputationSettings(new IniReader('mailward.reputation.ini', {})).settings.learned, clock);
    for (let i = 0; i < 1000; i++) {
      const ip = `2001:db8:${i.toString(16)}::1`;
      await learned.record([ipEntity(ip), netEntity(ip)], 'ham');
    }
    assert.equal(await store.get('ob:susp:alice'), 'suspended', 'the suspension survives');
    assert.equal(await ledger.senderOf('<m1@ours.example>'), 'alice', 'complaint attribution survives');
    assert.equal((await sent.lookup(['<m2@ours.example>'], 'alice@ours.example'))?.match, 'sender', 'the relayed Message-ID survives');
    // Learnt reputation is bounded by its own pool, and evicts only its own kind.
    assert.equal(store.size.reputation, 1000);
    assert.deepEqual(await store.keys('ob:susp:'), ['ob:susp:alice']);
    await store.close();
  });
});


describe('memory state: a flood from one network cannot evict the kept reputation of other networks', function () {
  this.timeout(120_000);
  // Review (stop 23): the kept segment was one LRU for every entity. Thousands of fresh addresses of one
  // IPv6 /48, each promoted (a trap hit at once, or a return a minute after the first event), pushed out a
  // regular sender's history and an earlier trap hitter's record. Scaled down: memory_max_entries = 1000.
  const MAX = 1000;
  const FLOOD = 5000;
  const learnedSettings = parseReputationSettings(new IniReader('mailward.reputation.ini', {})).settings.learned;
  /** 8 addresses in each of 625 /64s of 2001:db8:77::/48. */
  const floodIp = (i: number): string => `2001:db8:77:${(i >> 3).toString(16)}::${((i & 7) + 1).toString(16)}`;
  const regularIp = '198.51.100.20';
  const regularV6 = '2001:db8:aa::25';
  const regular = [ipEntity(regularIp), netEntity(regularIp), ipEntity(regularV6), netEntity(regularV6), ...domainEntities('regular.example')];
  // One in the flood's neighbouring /48 (same /32): only the flood's own /48 pays for the flood.
  const trappers = [ipEntity('203.0.113.99'), netEntity('203.0.113.99'), ipEntity('2001:db8:76::99'), netEntity('2001:db8:76::99')];

  let store: MemoryStore;
  let learned: LearnedStore;
  let now: number;
  beforeEach(async () => {
    now = Date.UTC(2026, 0, 5, 12);
    const clock = (): number => now;
    store = new MemoryStore(MAX, { clock });
    learned = new LearnedStore(store, learnedSettings, clock);
    // A sender seen over time (two events a minute apart), and trap hitters, before the flood.
    await learned.record(regular, 'ham');
    now += PROMOTE_AFTER_MS;
    await learned.record(regular, 'ham');
    await learned.record(trappers, 'trap');
  });
  afterEach(() => store.close());

  async function assertOthersSurvive(): Promise<void> {
    for (const entity of regular) assert.equal((await learned.read(entity)).raw.ham, 2, `${entityKey(entity)} keeps its history`);
    for (const entity of trappers) assert.equal((await learned.read(entity)).raw.trap, 1, `${entityKey(entity)} keeps its trap hit`);
    const size = store.size.reputation;
    assert.ok(size <= 2 * MAX, `bounded: ${size} reputation entries`);
  }

  it('thousands of addresses of one /48, each hitting a spamtrap once', async () => {
    for (let i = 0; i < FLOOD; i++) await learned.record([ipEntity(floodIp(i)), netEntity(floodIp(i))], 'trap');
    await assertOthersSurvive();
    // The flood is still penalised: its newest trap hitters, and their /64, are known.
    for (let i = FLOOD - 16; i < FLOOD; i++) assert.equal((await learned.read(ipEntity(floodIp(i)))).raw.trap, 1, `${floodIp(i)} is known`);
    assert.equal((await learned.read(netEntity(floodIp(FLOOD - 1)))).raw.trap, 8, 'the newest /64 of the flood has all its trap hits');
    // Trap hits are kept at once, so every key of the flood is a kept one: no more than its network's share.
    const others = new Set([...regular, ...trappers].map(entityKey));
    const floodKeys = (await store.keys('rep:')).filter((k) => !others.has(k));
    assert.ok(floodKeys.length > 0 && floodKeys.length <= keptPerGroup(MAX), `the flood holds ${floodKeys.length} kept entries`);
  });

  it('groups: an IP and its /64 by their /48, IPv4 by its /24, a domain and its aggregate by the organisation', () => {
    const group = evictionGroup;
    assert.equal(group(ipEntity('2001:db8:77:1::5')), 'net:2001:db8:77::/48');
    assert.equal(group(netEntity('2001:db8:77:ffff::5')), 'net:2001:db8:77::/48');
    assert.notEqual(group(ipEntity('2001:db8:76::99')), group(ipEntity('2001:db8:77::99')));
    assert.equal(group(ipEntity('::ffff:203.0.113.99')), 'net:203.0.113.0/24');
    assert.equal(group(netEntity('203.0.113.99')), 'net:203.0.113.0/24');
    assert.equal(group(domainEntities('x9.spammer.example')[0]!), 'org:spammer.example');
    assert.equal(group(domainEntities('x9.spammer.example')[1]!), 'org:spammer.example');
  });

  it('GroupBoundedLru: a full group pushes out its own oldest; a write without a group keeps the key in its group', () => {
    const pool = new GroupBoundedLru(10, 3);
    pool.set('other', { value: 'o' }, { group: 'b' });
    for (const k of ['a1', 'a2', 'a3']) pool.set(k, { value: k }, { group: 'a' });
    pool.set('a1', { value: 'a1 again' }); // as hashSet writes: still a's, now its newest
    pool.set('a4', { value: 'a4' }, { group: 'a' });
    assert.deepEqual([...pool.keys()].sort(), ['a1', 'a3', 'a4', 'other']);
    assert.equal(pool.get('a1')?.value, 'a1 again');
    pool.delete('a3');
    assert.equal(pool.groupSize('a'), 2);
    pool.clear();
    assert.equal(pool.groupSize('a'), 0);
  });

  it('GroupBoundedLru with a bound of 1: each new key of the group pushes out the one before', () => {
    // Review: pushing out the group's only key dropped its set, and the new key joined a set no one read (unbounded).
    const pool = new GroupBoundedLru(10, 1);
    for (const k of ['a1', 'a2', 'a3']) pool.set(k, { value: k }, { group: 'a' });
    assert.deepEqual([...pool.keys()], ['a3']);
    assert.equal(pool.groupSize('a'), 1);
  });

  it('thousands of addresses of one /48, each returning after promoteAfterMs', async () => {
    const BATCH = 100;
    for (let start = 0; start < FLOOD; start += BATCH) {
      for (let i = start; i < start + BATCH; i++) await learned.record([ipEntity(floodIp(i)), netEntity(floodIp(i))], 'spam');
      now += PROMOTE_AFTER_MS;
      for (let i = start; i < start + BATCH; i++) await learned.record([ipEntity(floodIp(i)), netEntity(floodIp(i))], 'spam');
    }
    await assertOthersSurvive();
    for (let i = FLOOD - 16; i < FLOOD; i++) assert.equal((await learned.read(ipEntity(floodIp(i)))).raw.spam, 2, `${floodIp(i)} is known`);
    assert.equal((await learned.read(netEntity(floodIp(FLOOD - 1)))).raw.spam, 16, 'the newest /64 of the flood has all its events');
  });
});

// Review of 4983ee6 (GroupBoundedLru). These two tests FAIL: they show what the per-/48 bound does not do.
describe('memory state: what the per-network bound of the kept reputation does not cover (review, failing)', function () {
  this.timeout(120_000);
  const MAX = 1000; // keptPerGroup(1000) = 32; the default 200000 gives 200, a provider's /48 holds thousands
  const learnedSettings = parseReputationSettings(new IniReader('mailward.reputation.ini', {})).settings.learned;
  let store: MemoryStore;
  let learned: LearnedStore;
  let now: number;
  beforeEach(() => {
    now = Date.UTC(2026, 0, 5, 12);
    const clock = (): number => now;
    store = new MemoryStore(MAX, { clock });
    learned = new LearnedStore(store, learnedSettings, clock);
  });
  afterEach(() => store.close());

  it("a large provider's /48 (Microsoft 365's 2a01:111:f403::/48): its other tenants' ordinary mail does not wash out one tenant's trap hit", async () => {
    const spamming = '2a01:111:f403:c10c::7';
    await learned.record([ipEntity(spamming), netEntity(spamming)], 'trap');
    // 100 other addresses of the /48 (other tenants' mail servers), each sending twice a few minutes apart.
    const other = (i: number): string => `2a01:111:f403:${(0xc000 + i).toString(16)}::${(i % 7) + 1}`;
    for (let i = 0; i < 100; i++) await learned.record([ipEntity(other(i)), netEntity(other(i))], 'ham');
    now += PROMOTE_AFTER_MS;
    for (let i = 0; i < 100; i++) await learned.record([ipEntity(other(i)), netEntity(other(i))], 'ham');
    assert.equal((await learned.read(ipEntity(spamming))).raw.trap, 1, 'the spamming tenant keeps its trap hit');
    assert.equal((await learned.read(ipEntity(other(0)))).raw.ham, 2, "a regular sender's history is kept");
  });

  it('one holder of a /40 (256 /48s, a fraction of an LIR\'s /32) still pushes out other networks\' kept reputation', async () => {
    const trapper = '203.0.113.99';
    await learned.record([ipEntity(trapper), netEntity(trapper)], 'trap');
    // 40 /48s of 2001:db8:ff00::/40, 40 fresh addresses in each, each hitting a trap once (kept at once).
    for (let n = 0; n < 40; n++) for (let i = 0; i < 40; i++) await learned.record([ipEntity(`2001:db8:ff${n.toString(16).padStart(2, '0')}:${i.toString(16)}::1`)], 'trap');
    assert.equal((await learned.read(ipEntity(trapper))).raw.trap, 1, 'another network keeps its trap hit');
  });
});
