import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createClient } from 'redis';
import { MemoryStore, RedisStore, type StateStore } from '../lib/state';
import { OverlayStore } from '../lib/state/overlay';
import type { StateSettings } from '../lib/state/types';
import { freePort } from './support/haraka';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy';
import { deleteRedisKeys, recordingLogger, REDIS_URL, uniquePrefix } from './reputation/setup';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function redisSettings(prefix: string, url = REDIS_URL, timeoutMs = 250): StateSettings {
  return { backend: 'redis', redisUrl: url, prefix, timeoutMs, memoryMaxEntries: 1000 };
}

// One behavioural suite, two stores: whatever a check relies on must hold for both.
const backends: { name: string; make: (prefix: string) => StateStore; cleanup?: (prefix: string) => Promise<unknown> }[] = [
  { name: 'MemoryStore', make: () => new MemoryStore(1000) },
  { name: 'RedisStore (127.0.0.1:6379)', make: (prefix) => new RedisStore(redisSettings(prefix), recordingLogger()), cleanup: deleteRedisKeys },
];

for (const backend of backends) {
  describe(`state store contract: ${backend.name}`, () => {
    const prefix = uniquePrefix('state');
    let store: StateStore;
    before(() => {
      store = backend.make(prefix);
    });
    after(async () => {
      await store.close();
      await backend.cleanup?.(prefix);
    });

    it('gets, sets and deletes strings; absent keys are null', async () => {
      assert.equal(await store.get('s:none'), null);
      await store.set('s:a', 'one');
      assert.equal(await store.get('s:a'), 'one');
      await store.set('s:a', 'two');
      assert.equal(await store.get('s:a'), 'two');
      await store.del('s:a');
      assert.equal(await store.get('s:a'), null);
      await store.del('s:never');
    });

    it('sets a key only if absent (a lock), which then expires', async () => {
      assert.equal(await store.setIfAbsent('l:lock', 'a', 1), true);
      assert.equal(await store.setIfAbsent('l:lock', 'b', 60), false);
      assert.equal(await store.get('l:lock'), 'a', 'a refused attempt changes nothing');
      await sleep(1150);
      assert.equal(await store.setIfAbsent('l:lock', 'c', 1), true);
      await store.del('l:lock');
      await assert.rejects(store.setIfAbsent('l:forever', 'd', 0), /needs an expiry/);
    });

    it('expires keys after their ttl', async () => {
      await store.set('t:short', 'x', 1);
      await store.incrBy('t:counter', 1, 1);
      assert.equal(await store.get('t:short'), 'x');
      await sleep(1150);
      assert.equal(await store.get('t:short'), null);
      assert.equal(await store.get('t:counter'), null);
    });

    it('adds to counters (integers and fractions) and returns the new value', async () => {
      assert.equal(await store.incrBy('c:n', 1, 60), 1);
      assert.equal(await store.incrBy('c:n', 2, 60), 3);
      assert.equal(await store.incrBy('c:f', 0.5, 60), 0.5);
      assert.equal(await store.incrBy('c:f', 0.25, 60), 0.75);
      assert.equal(await store.incrBy('c:n', -3, 60), 0);
    });

    it('an increment never shortens a counter\'s expiry (nodes asking for different lifetimes)', async () => {
      // One node keeps the key for a minute, another (a shorter window in its config) asks for 1 s:
      // the count the first node still needs must not vanish after 1 s.
      await store.incrBy('x:long', 1, 60);
      await store.incrBy('x:long', 1, 1);
      await store.hashIncrBy('x:hlong', { a: 1 }, 60);
      await store.hashIncrBy('x:hlong', { a: 1 }, 1);
      // A longer lifetime asked later still extends it.
      await store.incrBy('x:grow', 1, 1);
      await store.incrBy('x:grow', 1, 60);
      await store.hashIncrBy('x:hgrow', { a: 1 }, 1);
      await store.hashIncrBy('x:hgrow', { a: 1 }, 60);
      await sleep(1150);
      assert.equal(await store.get('x:long'), '2');
      assert.deepEqual(await store.hashGetAll('x:hlong'), { a: '2' });
      assert.equal(await store.get('x:grow'), '2');
      assert.deepEqual(await store.hashGetAll('x:hgrow'), { a: '2' });
    });

    it('adds to several hash fields at once, reads, sets and deletes fields', async () => {
      assert.deepEqual(await store.hashGetAll('h:none'), {});
      await store.hashIncrBy('h:a', { x: 1, y: 2 }, 60);
      await store.hashIncrBy('h:a', { x: 1, z: 0.5 }, 60);
      assert.deepEqual(await store.hashGetAll('h:a'), { x: '2', y: '2', z: '0.5' });
      await store.hashSet('h:a', { y: 'text' });
      await store.hashDel('h:a', ['x', 'missing']);
      assert.deepEqual(await store.hashGetAll('h:a'), { y: 'text', z: '0.5' });
      await store.hashDel('h:a', ['y', 'z']);
      assert.deepEqual(await store.hashGetAll('h:a'), {});
      await store.hashDel('h:none', ['x']);
    });

    it('reads several keys at once, null where absent', async () => {
      await store.set('m:1', 'a');
      await store.set('m:3', 'c');
      assert.deepEqual(await store.mget(['m:1', 'm:2', 'm:3']), ['a', null, 'c']);
      assert.deepEqual(await store.mget([]), []);
    });

    it('keeps sets', async () => {
      await store.setAdd('set:a', ['x', 'y', 'x']);
      await store.setAdd('set:a', ['z']);
      assert.deepEqual((await store.setMembers('set:a')).sort(), ['x', 'y', 'z']);
      await store.setRemove('set:a', ['y', 'nope']);
      assert.deepEqual((await store.setMembers('set:a')).sort(), ['x', 'z']);
      assert.deepEqual(await store.setMembers('set:none'), []);
    });

    it('counts once: every mark checked against its limit, then all marks and the count written together, or nothing', async () => {
      const once = (mark: string, fields = { x: 1 }) => store.countOnceShared([{ key: mark, limit: 1 }, { key: 'o:msg', limit: 2 }], 60, 'o:h', fields, 60);
      assert.deepEqual(await once('o:a'), { counted: true });
      assert.deepEqual([await store.get('o:a'), await store.get('o:msg'), await store.hashGetAll('o:h')], ['1', '1', { x: '1' }]);
      assert.deepEqual(await once('o:a'), { counted: false, atLimit: 0 }, 'a mark at its limit');
      assert.deepEqual(await once('o:b'), { counted: true });
      assert.deepEqual(await once('o:c'), { counted: false, atLimit: 1 }, 'the second mark at its limit of 2');
      // Refused: nothing written, not even the marks that were below their limits.
      assert.deepEqual([await store.get('o:a'), await store.get('o:c'), await store.get('o:msg'), await store.hashGetAll('o:h')], ['1', null, '2', { x: '2' }]);
    });

    it('counts once under concurrency: of twenty calls at once against a limit of 3, three count', async () => {
      const calls = Array.from({ length: 20 }, (_, i) => store.countOnceShared([{ key: `p:${i % 10}`, limit: 1 }, { key: 'p:cap', limit: 3 }], 60, 'p:h', { y: 1 }, 60));
      const results = await Promise.all(calls);
      assert.equal(results.filter((r) => r.counted).length, 3);
      assert.deepEqual(await store.hashGetAll('p:h'), { y: '3' });
      assert.equal(await store.get('p:cap'), '3');
    });

    it('lists keys by prefix, without the store\'s own prefix', async () => {
      await store.set('list:one', '1');
      await store.hashIncrBy('list:two', { a: 1 }, 60);
      await store.set('other:three', '3');
      assert.deepEqual((await store.keys('list:')).sort(), ['list:one', 'list:two']);
    });

    if (backend.name.startsWith('Redis')) {
      it('writes under its prefix in Redis, with the expiry asked for', async () => {
        await store.hashIncrBy('raw:h', { a: 1 }, 300);
        const client = createClient({ url: REDIS_URL });
        await client.connect();
        try {
          assert.deepEqual({ ...(await client.hGetAll(`${prefix}raw:h`)) }, { a: '1' });
          const ttl = await client.ttl(`${prefix}raw:h`);
          assert.ok(ttl > 290 && ttl <= 300, `ttl ${ttl}`);
        } finally {
          await client.quit();
        }
      });

      it('counts once: a count Redis refuses (WRONGTYPE) leaves no mark, with the expiries asked for otherwise', async () => {
        const client = createClient({ url: REDIS_URL });
        await client.connect();
        try {
          await client.set(`${prefix}q:wrong`, 'not a hash');
          await assert.rejects(store.countOnceShared([{ key: 'q:mark', limit: 1 }], 60, 'q:wrong', { z: 1 }, 60), /WRONGTYPE/);
          assert.equal(await client.get(`${prefix}q:mark`), null, 'no mark without its count');
          assert.deepEqual(await store.countOnceShared([{ key: 'q:mark', limit: 1 }], 600, 'q:h', { z: 1 }, 300), { counted: true });
          const [markTtl, hashTtl] = [await client.ttl(`${prefix}q:mark`), await client.ttl(`${prefix}q:h`)];
          assert.ok(markTtl > 590 && markTtl <= 600, `mark ttl ${markTtl}`);
          assert.ok(hashTtl > 290 && hashTtl <= 300, `hash ttl ${hashTtl}`);
        } finally {
          await client.quit();
        }
      });

      it('shares state between two stores (two MTA nodes)', async () => {
        const other = backend.make(prefix);
        try {
          await store.incrBy('shared:c', 2, 60);
          assert.equal(await other.incrBy('shared:c', 3, 60), 5);
          assert.equal(await store.get('shared:c'), '5');
        } finally {
          await other.close();
        }
      });
    }
  });
}

describe('RedisStore: error replies are not outages', () => {
  const prefix = uniquePrefix('state-reply');
  const log = recordingLogger();
  let store: RedisStore;
  before(() => {
    store = new RedisStore(redisSettings(prefix), log);
  });
  after(async () => {
    await store.close();
    await deleteRedisKeys(prefix);
  });

  it('a WRONGTYPE reply answers that operation from the fallback; the store stays up and the next operation goes to Redis', async () => {
    const raw = createClient({ url: REDIS_URL });
    await raw.connect();
    try {
      // A key of the wrong type, written by someone else.
      await raw.set(`${prefix}senders:allow:*`, 'not a set');
      assert.deepEqual(await store.hashGetAll('senders:allow:*'), {});
      assert.equal(store.degraded, false);
      await assert.rejects(store.setMembersShared('senders:allow:*'), /WRONGTYPE/);
      await store.set('after', 'in-redis');
      assert.equal(await raw.get(`${prefix}after`), 'in-redis', 'the next operation reached Redis');
      assert.equal(store.degraded, false);
      assert.equal(log.lines.filter((l) => /refused a command \(WRONGTYPE/.test(l)).length, 1, log.lines.join('\n'));
      assert.ok(!log.lines.some((l) => /unavailable/.test(l)), log.lines.join('\n'));
    } finally {
      await raw.quit();
    }
  });
});

describe('RedisStore: Redis stopped mid-run (a redis-server of its own)', () => {
  let port: number;
  let server: ChildProcess | undefined;
  let store: RedisStore;
  const log = recordingLogger();

  async function startRedis(): Promise<void> {
    server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    const client = createClient({ url: `redis://127.0.0.1:${port}`, socket: { reconnectStrategy: false } });
    client.on('error', () => {});
    const deadline = Date.now() + 5000;
    for (;;) {
      try {
        await client.connect();
        await client.quit();
        return;
      } catch {
        if (Date.now() > deadline) throw new Error('redis-server did not start');
        await sleep(50);
      }
    }
  }

  async function stopRedis(): Promise<void> {
    const child = server;
    server = undefined;
    if (!child || child.exitCode !== null) return;
    await new Promise<void>((done) => {
      child.once('exit', () => done());
      child.kill('SIGKILL');
    });
  }

  before(async () => {
    port = await freePort();
    await startRedis();
    store = new RedisStore(redisSettings('mwtest:fault:', `redis://127.0.0.1:${port}`, 200), log);
  });
  after(async () => {
    await store.close();
    await stopRedis();
  });

  it('falls back to in-process state with a logged warning, never throws, and recovers when Redis returns', async () => {
    await store.set('k', 'from-redis');
    assert.equal(await store.get('k'), 'from-redis');
    assert.ok(!log.lines.some((l) => l.startsWith('warn')));

    await stopRedis();
    const started = Date.now();
    // Every operation still answers (from the fallback), within a bounded time.
    assert.equal(await store.get('k'), null);
    assert.equal(await store.incrBy('c', 1, 60), 1);
    assert.equal(await store.incrBy('c', 1, 60), 2);
    await store.hashIncrBy('h', { a: 1 }, 60);
    assert.deepEqual(await store.hashGetAll('h'), { a: '1' });
    // The answers above came from the fallback (Redis is stopped); the bound, far above the 200 ms
    // command deadline, only catches an operation left waiting on the reconnecting client.
    assert.equal(store.degraded, true, 'the fallback answered');
    assert.ok(Date.now() - started < 10_000, `fallback took ${Date.now() - started} ms`);
    const warnings = log.lines.filter((l) => l.startsWith('warn'));
    assert.ok(warnings.some((l) => /Redis .* unavailable/.test(l)), log.lines.join('\n'));
    assert.ok(warnings.length <= 2, `warned once per outage, not per operation: ${warnings.length}`);

    await startRedis();
    const deadline = Date.now() + 10_000;
    const raw = createClient({ url: `redis://127.0.0.1:${port}` });
    await raw.connect();
    try {
      for (;;) {
        await store.set('back', 'yes');
        if ((await raw.get('mwtest:fault:back')) === 'yes') break;
        assert.ok(Date.now() < deadline, 'the store did not return to Redis within 10 s');
        await sleep(200);
      }
    } finally {
      await raw.quit();
    }
    assert.ok(log.lines.some((l) => /^info .*Redis .* is back/.test(l)), log.lines.join('\n'));
  });

  it('a Redis that hangs (stopped, connection open) costs one deadline, then answers come at once; it is used again once it answers', async () => {
    await store.set('h', 'from-redis');
    assert.equal(await store.get('h'), 'from-redis');
    server!.kill('SIGSTOP');
    try {
      assert.equal(await store.get('h'), null, 'the first operation waits its deadline, then the fallback answers');
      const started = Date.now();
      for (let i = 0; i < 50; i++) await store.incrBy('hung', 1, 60);
      // 50 deadlines would be 10 s: while down nothing is sent, so nothing waits (or piles up) on the hung connection.
      // The bound is half of that, far above what 50 in-process answers take (a few ms).
      assert.ok(Date.now() - started < 5000, `50 operations took ${Date.now() - started} ms`);
      assert.equal(store.degraded, true);
    } finally {
      server!.kill('SIGCONT');
    }
    const deadline = Date.now() + 10_000;
    while (store.degraded || (await store.get('h')) !== 'from-redis') {
      assert.ok(Date.now() < deadline, `the store did not use Redis again within 10 s: degraded ${store.degraded}, ${await store.get('h')}\n${log.lines.join('\n')}`);
      await sleep(100);
    }
  });
});

describe('RedisStore: a black hole (connections accepted, never answered) that clears', () => {
  const prefix = uniquePrefix('state-blackhole');
  const log = recordingLogger();
  let proxy: TcpProxy;
  let store: RedisStore;
  before(async () => {
    proxy = await startTcpProxy({ host: '127.0.0.1', port: 6379 }, await freePort());
    store = new RedisStore(redisSettings(prefix, `redis://127.0.0.1:${proxy.port}`, 250), log);
  });
  after(async () => {
    await store.close();
    await proxy.stop();
    await deleteRedisKeys(prefix);
  });

  it('is used again within a few probe intervals (1 s here) once Redis answers, replacing at most one hung connection per interval', async () => {
    await store.set('k', 'from-redis');
    assert.equal(await store.get('k'), 'from-redis');
    assert.equal(store.degraded, false);

    // Black hole: the live connection is cut, new ones are accepted and never answered,
    // so the client's reconnect hangs in its handshake (node-redis has no deadline there).
    proxy.mode = 'silent';
    await proxy.stop();
    await proxy.start();
    const before = proxy.connections;
    const holeStarted = Date.now();
    while (Date.now() - holeStarted < 3000) {
      await store.get('k');
      await sleep(100);
    }
    assert.equal(store.degraded, true);
    const hung = proxy.connections - before;
    // One reconnect by the client, then at most one replacement per probe interval (1 s): no storm.
    assert.ok(hung >= 1 && hung <= 5, `connections opened during a 3 s black hole: ${hung}`);

    proxy.mode = 'forward'; // answered again; the hung connections stay hung (state lost in a firewall)
    const back = Date.now();
    while (store.degraded) {
      // Probes run every second: ten of them, not one, under a loaded machine.
      assert.ok(Date.now() - back < 10_000, `still degraded ${Date.now() - back} ms after Redis answered again\n${log.lines.join('\n')}`);
      await store.get('k');
      await sleep(100);
    }
    assert.equal(await store.get('k'), 'from-redis', 'reads reach Redis again');
    assert.ok(log.lines.some((l) => /^info .*Redis .* is back/.test(l)), log.lines.join('\n'));
  });
});

describe('RedisStore: the URL in what it logs', () => {
  it('hides the password of redis_url (one holding @ too) when Redis is unreachable', async () => {
    const log = recordingLogger();
    const port = await freePort();
    const store = new RedisStore(redisSettings('mwtest:redact:', `redis://mailward:s3cr@t-pw@127.0.0.1:${port}`, 100), log);
    try {
      assert.equal(await store.incrBy('c', 1, 60), 1, 'answers from the fallback');
      const warned = log.lines.filter((l) => /Redis at .* unavailable/.test(l));
      assert.ok(warned.length > 0, log.lines.join('\n'));
      for (const line of log.lines) assert.doesNotMatch(line, /s3cr|t-pw/, line);
      assert.match(warned[0]!, /Redis at redis:\/\/mailward:\*\*\*@127\.0\.0\.1:\d+ unavailable/);
    } finally {
      await store.close();
    }
  });
});

describe('OverlayStore: counts once against what the shared store holds, writing only in process', () => {
  it('a mark the shared store holds refuses the count; a new one counts here, and the shared store is unchanged', async () => {
    const base = new MemoryStore(1000);
    await base.countOnceShared([{ key: 'o:seen', limit: 1 }], 60, 'o:h', { x: 1 }, 60);
    const overlay = new OverlayStore(base);
    assert.deepEqual(await overlay.countOnceShared([{ key: 'o:seen', limit: 1 }], 60, 'o:h', { x: 1 }, 60), { counted: false, atLimit: 0 });
    assert.deepEqual(await overlay.countOnceShared([{ key: 'o:new', limit: 1 }], 60, 'o:h', { x: 1 }, 60), { counted: true });
    assert.deepEqual([await overlay.get('o:new'), await overlay.hashGetAll('o:h')], ['1', { x: '2' }]);
    assert.deepEqual([await base.get('o:new'), await base.hashGetAll('o:h')], [null, { x: '1' }]);
    await overlay.close();
  });
});
