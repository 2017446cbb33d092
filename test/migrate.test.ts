// mailward migrate: a single node joining a fleet takes its SQLite model and run-time lists to Redis.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RedisBayesStore, SqliteBayesStore } from '../lib/checks/content/store';
import { copyModel } from '../lib/checks/content/copy';
import { BayesModel } from '../lib/checks/content/bayes';
import { main } from '../lib/cli/main';
import { createMailward } from '../lib/index';
import { copiedMark, warnIfLeftBehind } from '../lib/util/sqlite';
import { deleteRedisKeys, REDIS_URL, uniqueRedisPrefix } from './support/redis';

const mail = (subject: string, body: string) => `From: a@example.net\r\nTo: b@example.com\r\nSubject: ${subject}\r\nMessage-ID: <${subject.replace(/\W/g, '')}@example.net>\r\n\r\n${body}\r\n`;

describe('mailward migrate', function () {
  this.timeout(30_000);
  const prefix = uniqueRedisPrefix('migrate');
  let dir: string;
  let config: string;

  async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
    const out: string[] = [];
    const err: string[] = [];
    const code = await main([...argv, '--config', config], { out: (l) => out.push(l), err: (l) => err.push(l) });
    return { code, out: out.join('\n'), err: err.join('\n') };
  }
  const useState = (backend: 'memory' | 'redis') =>
    writeFileSync(join(config, 'mailward.ini'), `[main]\ndata_dir = ${join(dir, 'data')}\n[state]\nbackend = ${backend}\nredis_url = ${REDIS_URL}\nprefix = ${prefix}\n`);

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'mw-migrate-'));
    config = join(dir, 'config');
    mkdirSync(config);
    for (const sub of ['spam', 'ham']) mkdirSync(join(dir, sub));
    for (let i = 0; i < 3; i++) writeFileSync(join(dir, 'spam', `${i}.eml`), mail(`Prize ${i}`, `claim prize number${i} now`));
    for (const day of ['monday', 'friday']) writeFileSync(join(dir, 'ham', `${day}.eml`), mail(`Lunch ${day}`, `lunch at noon on ${day}`));
  });
  after(async () => {
    rmSync(dir, { recursive: true, force: true });
    await deleteRedisKeys(prefix);
  });

  it('copies the model (counts and seen records) and the lists once; the SQLite files stay', async () => {
    useState('memory');
    assert.equal((await cli('learn', '--spam', join(dir, 'spam'), '--ham', join(dir, 'ham'))).code, 0);
    assert.equal((await cli('allow', 'add', 'partner.example')).code, 0);
    assert.equal((await cli('block', 'add', '--rcpt', 'bob@example.com', 'pest@bad.example')).code, 0);
    const refused = await cli('migrate');
    assert.equal(refused.code, 1);
    assert.match(refused.err, /backend = memory/);

    useState('redis');
    // An MTA started on this configuration says what it leaves behind, and how to copy it.
    const warnings: string[] = [];
    const mw = createMailward({ configDir: config, log: { debug() {}, info() {}, warn: (m) => warnings.push(m), error: (m) => warnings.push(m) } });
    await mw.close();
    assert.ok(warnings.some((w) => /^mailward content: the classifier's counts live in Redis now; .*bayes\.sqlite, from when they lived in SQLite, is not used: copy it with `mailward migrate`/.test(w)), warnings.join('\n'));
    assert.ok(warnings.some((w) => /^mailward rules: run-time allow and block lists live in Redis now; .*senders\.sqlite/.test(w)), warnings.join('\n'));

    const moved = await cli('migrate');
    assert.equal(moved.code, 0, moved.err);
    assert.match(moved.out, /^lists: 2 entries copied from .*senders\.sqlite$/m);
    assert.match(moved.out, /^model: 3 spam and 2 ham learnt \(\d+ tokens, 5 seen records\) copied from .*bayes\.sqlite to redis /m);

    const sqlite = new BayesModel();
    const redis = new BayesModel();
    const from = new SqliteBayesStore(join(dir, 'data', 'bayes.sqlite'));
    const to = new RedisBayesStore(REDIS_URL, `${prefix}bayes:`);
    await from.load(sqlite);
    await to.load(redis);
    await Promise.all([from.close(), to.close()]);
    assert.deepEqual([redis.nspam, redis.nham], [3, 2]);
    assert.deepEqual([...redis.tokens].sort(), [...sqlite.tokens].sort());

    // Marked as copied: MTAs no longer warn about them.
    for (const file of ['bayes.sqlite', 'senders.sqlite']) assert.ok(existsSync(join(dir, 'data', `${file}.copied`)), file);

    // The fleet sees what the node had: the lists, and messages already learnt.
    assert.match((await cli('allow', 'list')).out, /partner\.example/);
    assert.match((await cli('block', 'list', '--rcpt', 'bob@example.com')).out, /pest@bad\.example/);
    const again = await cli('learn', '--spam', join(dir, 'spam'));
    assert.match(again.out, /^spam: 0 learnt, 3 already learnt/m);

    // Twice would count the model twice: refused, and the lists are already there.
    const twice = await cli('migrate');
    assert.equal(twice.code, 1);
    assert.match(twice.out, /^lists: 0 entries copied from .*, 2 already there$/m);
    assert.match(twice.out, /^model: not copied: redis .* already holds 3 spam and 2 ham learnt \(\d+ tokens\); copying would add to them \(--force to add anyway\)$/m);
    // A model copied some other way is only marked, so MTAs stop warning.
    rmSync(join(dir, 'data', 'bayes.sqlite.copied'));
    const marked = await cli('migrate', '--mark-copied');
    assert.equal(marked.code, 0);
    assert.match(marked.out, /^marked .*bayes\.sqlite as copied$/m);
    assert.ok(existsSync(join(dir, 'data', 'bayes.sqlite.copied')));
  });

  it('a copy cut short goes on where it stopped when run again, and keeps what the fleet learnt meanwhile', async () => {
    const prefix2 = uniqueRedisPrefix('migrate-again');
    const from = new SqliteBayesStore(join(dir, 'data', 'bayes.sqlite'));
    const to = new RedisBayesStore(REDIS_URL, `${prefix2}bayes:`);
    try {
      const sqlite = new BayesModel();
      await from.load(sqlite);
      // Redis goes away after two batches of five tokens.
      let saves = 0;
      const flaky = Object.create(to) as RedisBayesStore;
      flaky.save = (deltas, copy) => (++saves > 2 ? Promise.reject(new Error('connection lost')) : to.save(deltas, copy));
      await assert.rejects(copyModel(from, flaky, false, 5), /connection lost/);
      // Meanwhile an MTA of the fleet learns a message into the same counts.
      await to.save(new Map([['', [1, 0]], ['fleet-word', [1, 0]]]));
      const again = await copyModel(from, to, false, 5);
      assert.equal(again.copied, true);
      const redis = new BayesModel();
      await to.load(redis);
      assert.deepEqual([redis.nspam, redis.nham], [sqlite.nspam + 1, sqlite.nham]);
      for (const [token, counts] of sqlite.tokens) assert.deepEqual(redis.tokens.get(token), counts, token);
      assert.deepEqual(redis.tokens.get('fleet-word'), { spam: 1, ham: 0 });
      assert.equal(await to.copyProgress(), null);
      // A third run finds a model: refused, not added.
      const third = await copyModel(from, to, false, 5);
      assert.equal(third.copied, false);
    } finally {
      await Promise.all([from.close(), to.close()]);
      await deleteRedisKeys(prefix2);
    }
  });

  it('the left-behind warning is given once, and not for a file marked as copied', () => {
    const warned: string[] = [];
    const fresh = join(dir, 'fresh.sqlite');
    const copied = join(dir, 'copied.sqlite');
    for (const f of [fresh, copied]) writeFileSync(f, '');
    writeFileSync(copiedMark(copied), '{}\n');
    for (let i = 0; i < 2; i++) for (const f of [fresh, copied]) warnIfLeftBehind(f, 'x', '[x] store', (m) => warned.push(m));
    assert.deepEqual(warned.map((w) => w.includes('fresh.sqlite')), [true]);
  });
});
