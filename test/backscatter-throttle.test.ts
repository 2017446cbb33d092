import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { normaliseSubject, subjectId } from '../lib/checks/backscatter/subject';
import { SubjectThrottle, type ThrottleSettings } from '../lib/checks/backscatter/throttle';
import { main } from '../lib/cli/main';
import { silentLogger } from '../lib/runtime';
import { MemoryStore, RedisStore } from '../lib/state';
import type { StateStore } from '../lib/state/types';
import { countRedisKeys, deleteRedisKeys, uniquePrefix } from './backscatter/support';
import { holdAt } from './support/hold';

const SETTINGS: ThrottleSettings = { enabled: true, match: ['BOUNCE_UNVERIFIED'], threshold: 10, windowMinutes: 2, blockMinutes: 30, emptySubject: false };
const SUBJECT = normaliseSubject('Undeliverable Mail');
const MIN = 60_000;

function redisStore(prefix: string): RedisStore {
  return new RedisStore({ backend: 'redis', redisUrl: 'redis://127.0.0.1:6379', prefix, timeoutMs: 1000, memoryMaxEntries: 1000 }, silentLogger);
}

for (const backend of ['memory', 'redis'] as const) {
  describe(`subject throttle on ${backend} state with an injected clock`, () => {
    let store: StateStore;
    let prefix: string;
    const clock = { now: Date.UTC(2025, 2, 10, 12, 0) };
    const throttle = (s: Partial<ThrottleSettings> = {}, node = 'node-a') => new SubjectThrottle(store, { ...SETTINGS, ...s }, () => clock.now, node);

    beforeEach(() => {
      prefix = uniquePrefix('throttle');
      store = backend === 'memory' ? new MemoryStore(10_000) : redisStore(prefix);
      clock.now = Date.UTC(2025, 2, 10, 12, 0);
    });
    afterEach(async () => {
      await store.close();
      if (backend === 'redis') await deleteRedisKeys(prefix);
    });

    it('blocks at the threshold (the message reaching it included), then blocks every message with the subject', async () => {
      const t = throttle();
      for (let i = 1; i <= 9; i++) {
        const d = await t.decide(SUBJECT, 'Undeliverable Mail', true);
        assert.equal(d.block, null);
        assert.equal(d.count, i);
        clock.now += 5_000;
      }
      const tenth = await t.decide(SUBJECT, 'Undeliverable Mail', true);
      assert.equal(tenth.started, true);
      assert.equal(tenth.block?.count, 10);
      assert.equal(tenth.block?.until, clock.now + 30 * MIN);
      // A message that does not match the rule is blocked too, and not counted.
      const other = await t.decide(SUBJECT, 'UNDELIVERABLE mail', false);
      assert.equal(other.started, false);
      assert.equal(other.block?.subject, 'undeliverable mail');
      assert.equal(other.block?.refused, 2);
      // Other subjects are untouched.
      assert.equal((await t.decide(normaliseSubject('Hello'), 'Hello', true)).block, null);
    });

    it('counts only within the window (sliding, from timestamps)', async () => {
      const t = throttle();
      for (let i = 0; i < 9; i++) await t.decide(SUBJECT, 's', true);
      clock.now += 2 * MIN + 15_000; // the first nine fall out of the 2-minute window
      const d = await t.decide(SUBJECT, 's', true);
      assert.equal(d.block, null);
      assert.equal(d.count, 1);
      // A slow trickle never blocks: 30 messages, one every 20 s (6 per 2 minutes).
      for (let i = 0; i < 30; i++) {
        clock.now += 20_000;
        assert.equal((await t.decide(SUBJECT, 's', true)).block, null, `message ${i}`);
      }
    });

    it('lifts the block when its time is up, and counting starts afresh', async () => {
      const t = throttle();
      for (let i = 0; i < 10; i++) await t.decide(SUBJECT, 's', true);
      assert.ok(await t.activeBlock(SUBJECT));
      clock.now += 30 * MIN - 1;
      assert.ok(await t.activeBlock(SUBJECT));
      clock.now += 2;
      assert.equal(await t.activeBlock(SUBJECT), null);
      const d = await t.decide(SUBJECT, 's', true);
      assert.equal(d.block, null);
      assert.equal(d.count, 1);
    });

    it('a block shorter than the window: the flood that started it does not restart it when it ends', async () => {
      const t = throttle({ windowMinutes: 10, blockMinutes: 1 });
      for (let i = 0; i < 10; i++) await t.decide(SUBJECT, 's', true);
      clock.now += MIN + 1;
      const after = await t.decide(SUBJECT, 's', true);
      assert.equal(after.block, null);
      assert.equal(after.count, 1);
    });

    it('a message that read a block as it ended cannot wipe the block another node starts meanwhile', async () => {
      const nodeA = throttle({}, 'node-a');
      for (let i = 0; i < 10; i++) await nodeA.decide(SUBJECT, 's', true);
      clock.now += 30 * MIN + 1;
      const held = holdAt(store, 'hashGetAll', 'after');
      const slow = new SubjectThrottle(held.store, SETTINGS, () => clock.now, 'node-c').decide(SUBJECT, 's', true);
      await held.reached;
      const nodeB = throttle({}, 'node-b');
      let started = false;
      for (let i = 0; i < 10; i++) started = (await nodeB.decide(SUBJECT, 's', true)).started || started;
      assert.ok(started);
      held.release();
      await slow;
      assert.ok(await nodeA.activeBlock(SUBJECT), 'the new block is in force');
      assert.ok((await nodeA.decide(SUBJECT, 's', true)).block);
    });

    it('invisible characters and look-alike letters make no new subject: the copies count as one, and a blocked subject stays blocked', async () => {
      const t = throttle();
      // Each copy of the flood differs only in zero-width and format characters, or a Cyrillic а for the Latin a.
      const copies = ['Undeliverable Mail', 'Undeliver\u0430ble Mail', 'Un\u200bdeliverable Mail', 'Undeliver\u00adable M\u2060ail', '\ufeffUndeliverable\u200d Mail\u200e'];
      for (let i = 0; i < 10; i++) {
        const subject = copies[i % copies.length]!;
        const d = await t.decide(normaliseSubject(subject), subject, true);
        assert.equal(d.count, i + 1, JSON.stringify(subject));
      }
      const joined = await t.decide(normaliseSubject('Undeliverable M\u2060ail'), 'Undeliverable M\u2060ail', false);
      assert.equal(joined.block?.subject, 'undeliverable mail', 'shown as the copy that started it reads, without its invisible characters');
      assert.equal(joined.block?.refused, 2);
      assert.ok(await t.activeBlock(normaliseSubject('Undeliver\u0430ble Mail')));
      // The look-alike stays as it came in what operators read; it is folded only in the key.
      assert.equal(normaliseSubject('Undeliver\u0430ble Mail'), 'undeliver\u0430ble mail');
      assert.equal(await t.activeBlock(normaliseSubject('Undeliverable Nail')), null);
    });

    it('lists active blocks and clears one by subject or id, counters included', async () => {
      const t = throttle();
      for (let i = 0; i < 10; i++) await t.decide(SUBJECT, 'Undeliverable Mail', true);
      for (let i = 0; i < 10; i++) await t.decide(normaliseSubject('Returned mail: see transcript'), 'Returned mail: see transcript', true);
      const listed = await t.list();
      assert.deepEqual(listed.map((b) => b.subject).sort(), ['returned mail: see transcript', 'undeliverable mail']);
      assert.equal(listed[0]!.node, 'node-a');
      const lifted = await t.clear('  UNDELIVERABLE   mail ', normaliseSubject);
      assert.equal(lifted?.subject, 'undeliverable mail');
      assert.equal(await t.activeBlock(SUBJECT), null);
      // Counters went too: one more message does not restart the block.
      assert.equal((await t.decide(SUBJECT, 's', true)).count, 1);
      await t.clear(subjectId('returned mail: see transcript'), normaliseSubject);
      assert.deepEqual(await t.list(), []);
      assert.equal(await t.clear('never blocked', normaliseSubject), null);
    });

    if (backend === 'redis') {
      it('a block started on one node is enforced by another node sharing Redis', async () => {
        const other = redisStore(prefix);
        try {
          const nodeA = throttle({}, 'node-a');
          const nodeB = new SubjectThrottle(other, SETTINGS, () => clock.now, 'node-b');
          // Both nodes count toward one window: 5 + 5.
          for (let i = 0; i < 5; i++) assert.equal((await nodeA.decide(SUBJECT, 's', true)).block, null);
          for (let i = 0; i < 4; i++) assert.equal((await nodeB.decide(SUBJECT, 's', true)).block, null);
          const started = await nodeB.decide(SUBJECT, 's', true);
          assert.equal(started.started, true);
          const seen = await nodeA.decide(SUBJECT, 's', false);
          assert.equal(seen.block?.node, 'node-b');
          assert.equal(seen.block?.refused, 2);
        } finally {
          await other.close();
        }
      });

      it('a refusal counted against a block as it ended does not shorten the block another node starts meanwhile', async () => {
        const t = throttle();
        for (let i = 0; i < 10; i++) await t.decide(SUBJECT, 's', true);
        clock.now += 30 * MIN - 1;
        const held = holdAt(store, 'hashIncrBy', 'before');
        const refused = new SubjectThrottle(held.store, SETTINGS, () => clock.now, 'node-c').decide(SUBJECT, 's', true);
        await held.reached;
        clock.now += 2;
        // Counting restarts after the old block's flood: ten new messages start a new, full-length block.
        let block = null;
        for (let i = 0; i < 10; i++) block = (await t.decide(SUBJECT, 's', true)).block ?? block;
        assert.equal(block?.until, clock.now + 30 * MIN);
        held.release();
        await refused;
        const { createClient } = await import('redis');
        const c = createClient({ url: 'redis://127.0.0.1:6379' });
        await c.connect();
        try {
          const ttl = await c.ttl(`${prefix}bs:blk:${subjectId(SUBJECT)}`);
          assert.ok(ttl >= 30 * 60, `the block key expires in ${ttl} s, before the block's end`);
        } finally {
          await c.quit();
        }
      });

      it('a node configured with a shorter block_minutes does not cut short a longer block another node started', async () => {
        const other = redisStore(prefix);
        try {
          const long = throttle({ blockMinutes: 60 }, 'node-a');
          const short = new SubjectThrottle(other, { ...SETTINGS, blockMinutes: 5 }, () => clock.now, 'node-b');
          let block = null;
          for (let i = 0; i < 10; i++) block = (await long.decide(SUBJECT, 's', true)).block ?? block;
          assert.equal(block?.until, clock.now + 60 * MIN);
          // node-b refuses one message under node-a's block: that must not make the block key expire in 5 minutes.
          assert.equal((await short.decide(SUBJECT, 's', true)).block?.node, 'node-a');
          const { createClient } = await import('redis');
          const c = createClient({ url: 'redis://127.0.0.1:6379' });
          await c.connect();
          try {
            const ttl = await c.ttl(`${prefix}bs:blk:${subjectId(SUBJECT)}`);
            assert.ok(ttl >= 60 * 60, `the block key expires in ${ttl} s, 55 minutes before the block's end`);
          } finally {
            await c.quit();
          }
        } finally {
          await other.close();
        }
      });

      it('keeps its keys under the prefix with an expiry', async () => {
        const t = throttle();
        for (let i = 0; i < 10; i++) await t.decide(SUBJECT, 's', true);
        assert.ok((await countRedisKeys(prefix)) >= 2);
        const { createClient } = await import('redis');
        const c = createClient({ url: 'redis://127.0.0.1:6379' });
        await c.connect();
        try {
          for await (const batch of c.scanIterator({ MATCH: `${prefix}*` })) {
            for (const key of batch as unknown as string[]) assert.ok((await c.ttl(key)) > 0, `${key} has no expiry`);
          }
        } finally {
          await c.quit();
        }
      });
    }
  });
}

describe('subject throttle when Redis is unreachable', () => {
  it('answers from the in-process fallback without throwing', async () => {
    const store = new RedisStore({ backend: 'redis', redisUrl: 'redis://127.0.0.1:1', prefix: 'x:', timeoutMs: 100, memoryMaxEntries: 1000 }, silentLogger);
    try {
      const t = new SubjectThrottle(store, { ...SETTINGS, threshold: 2 }, Date.now);
      assert.equal((await t.decide(SUBJECT, 's', true)).block, null);
      assert.ok((await t.decide(SUBJECT, 's', true)).block);
    } finally {
      await store.close();
    }
  });
});

describe('mailward throttle list|clear', () => {
  let dir: string;
  let prefix: string;
  let store: RedisStore;
  const run = async (...argv: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
    return { code, out: out.join('\n'), err: err.join('\n') };
  };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'mw-throttle-cli-'));
    prefix = uniquePrefix('cli');
    writeFileSync(join(dir, 'mailward.ini'), `[main]\nnode_name = mx7\n[state]\nbackend = redis\nprefix = ${prefix}\n`);
    store = redisStore(prefix);
  });
  after(async () => {
    await store.close();
    await deleteRedisKeys(prefix);
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists the blocks any node started, and lifts one by subject', async () => {
    assert.match((await run('throttle', 'list', '--config', dir)).out, /no subject is blocked/);
    const t = new SubjectThrottle(store, SETTINGS, Date.now, 'mx7');
    for (let i = 0; i < 12; i++) await t.decide(SUBJECT, 'Undeliverable Mail', true);
    const listed = await run('throttle', 'list', '--config', dir);
    assert.equal(listed.code, 0, listed.err);
    assert.match(listed.out, /1 subject blocked:/);
    assert.match(listed.out, new RegExp(`${subjectId(SUBJECT)}  "undeliverable mail"`));
    assert.match(listed.out, /started after 10 messages, since \S+Z \(on mx7\), until \S+Z \(30 min left\)/);
    assert.match(listed.out, /3 messages refused so far; e\.g\. "Undeliverable Mail"/);
    const json = JSON.parse((await run('throttle', 'list', '--config', dir, '--json')).out);
    assert.equal(json[0].count, 10);

    const cleared = await run('throttle', 'clear', 'UNDELIVERABLE mail', '--config', dir);
    assert.equal(cleared.code, 0, cleared.err);
    assert.match(cleared.out, /lifted the block on "undeliverable mail" \(3 messages refused/);
    assert.equal((await run('throttle', 'clear', 'UNDELIVERABLE mail', '--config', dir)).code, 1);
    assert.match((await run('throttle', 'list', '--config', dir)).out, /no subject is blocked/);
  });

  it('clear --all lifts every block', async () => {
    const t = new SubjectThrottle(store, { ...SETTINGS, threshold: 1 }, Date.now, 'mx7');
    await t.decide('a', 'a', true);
    await t.decide('b', 'b', true);
    assert.match((await run('throttle', 'clear', '--all', '--config', dir)).out, /lifted 2 blocks/);
    assert.deepEqual(await t.list(), []);
  });

  it('explains usage mistakes, a memory backend and an unreachable Redis in one line', async () => {
    const usage = await run('throttle', 'purge', '--config', dir);
    assert.equal(usage.code, 2);
    assert.match(usage.err, /say list or clear/);
    assert.equal((await run('throttle', 'clear', '--config', dir)).code, 2);
    const memory = await run('throttle', 'list');
    assert.equal(memory.code, 1);
    assert.match(memory.err, /backend = memory .* use backend = redis/);
    const down = mkdtempSync(join(tmpdir(), 'mw-throttle-cli-down-'));
    try {
      writeFileSync(join(down, 'mailward.ini'), '[state]\nbackend = redis\nredis_url = redis://127.0.0.1:1\n');
      const r = await run('throttle', 'list', '--config', down);
      assert.equal(r.code, 1);
      assert.match(r.err, /cannot reach the shared state/);
      assert.doesNotMatch(r.err, /\n\s+at /);
    } finally {
      rmSync(down, { recursive: true, force: true });
    }
  });
});
