import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createClient } from 'redis';
import Database from 'better-sqlite3';
import { Classifier } from '../lib/checks/content/classifier';
import { learnMessage, messageTokens, unlearnMessage } from '../lib/checks/content/learn';
import { messageId } from '../lib/checks/content/seen';
import { dayNumber, RedisBayesStore, SqliteBayesStore, type BayesStore } from '../lib/checks/content/store';
import { balanceNote } from '../lib/cli/commands/learn';
import { main } from '../lib/cli/main';
import type { CliIO } from '../lib/cli/types';
import { createMailward } from '../lib';
import { silentLogger } from '../lib/runtime';
import { deleteRedisKeys, REDIS_URL, uniqueRedisPrefix } from './support/redis';

const run = promisify(execFile);

const mail = (subject: string, body: string, extraHeaders = '') =>
  `${extraHeaders}From: Alice <alice@example.net>\r\nTo: bob@example.com\r\nSubject: ${subject}\r\nMessage-ID: <${subject.replace(/\W/g, '')}@example.net>\r\n\r\n${body}\r\n`;

const SPAMMY = mail('Claim your prize', 'congratulations winner claim your lottery prize today, wire the fee now');
const HAMMY = mail('Project review', 'see you tomorrow for the project review, bring the quarterly figures');

async function open(makeStore: () => BayesStore): Promise<Classifier> {
  const c = new Classifier(makeStore(), silentLogger);
  await c.ready();
  assert.equal(c.loaded, true, c.lastError);
  return c;
}

/** What the store holds (a fresh load), for one token of the message. */
async function stored(makeStore: () => BayesStore, token: string) {
  const c = await open(makeStore);
  const result = { nspam: c.model.nspam, nham: c.model.nham, token: c.model.tokens.get(token) ?? { spam: 0, ham: 0 }, tokens: c.model.tokens.size };
  await c.close();
  return result;
}

async function idempotence(makeStore: () => BayesStore): Promise<void> {
  const tokens = await messageTokens(SPAMMY);
  assert.ok(tokens.includes('lottery'));
  const a = await open(makeStore);
  assert.equal(await learnMessage(a, SPAMMY, 'spam'), 'learnt');
  assert.equal(await learnMessage(a, SPAMMY, 'spam'), 'already learnt');
  assert.equal(a.model.nspam, 1);
  assert.deepEqual(a.model.tokens.get('lottery'), { spam: 1, ham: 0 });
  assert.equal(a.model.pending.size, 0, 'written at once, nothing left for the periodic save');
  await a.close();
  assert.deepEqual(await stored(makeStore, 'lottery'), { nspam: 1, nham: 0, token: { spam: 1, ham: 0 }, tokens: new Set(tokens).size });

  // A second process (another node) learning the same message changes nothing,
  // even from a copy that went through more relays and the quarantine.
  const b = await open(makeStore);
  const relayed = `Received: from mx.example.org by mx.example.com\r\nX-Mailward-Score: 7\r\n${SPAMMY}`;
  assert.equal(await learnMessage(b, relayed, 'spam'), 'already learnt');
  assert.equal(b.model.nspam, 1);

  // Ham after spam: moved, not added.
  assert.equal(await learnMessage(b, SPAMMY, 'ham'), 'relearnt');
  assert.equal(b.model.nspam, 0);
  assert.equal(b.model.nham, 1);
  assert.deepEqual(b.model.tokens.get('lottery'), { spam: 0, ham: 1 });
  assert.equal(await learnMessage(b, SPAMMY, 'ham'), 'already learnt');
  await b.close();
  assert.deepEqual(await stored(makeStore, 'lottery'), { nspam: 0, nham: 1, token: { spam: 0, ham: 1 }, tokens: new Set(tokens).size });

  // Unlearn takes it out of whichever class it was learnt as; the store is back at the start.
  const c = await open(makeStore);
  assert.equal(await learnMessage(c, HAMMY, 'ham'), 'learnt');
  assert.equal(await unlearnMessage(c, SPAMMY), 'unlearnt');
  assert.equal(await unlearnMessage(c, SPAMMY), 'not learnt');
  assert.equal(c.model.nham, 1);
  assert.equal(c.model.tokens.has('lottery'), false);
  assert.equal(await unlearnMessage(c, HAMMY), 'unlearnt');
  await c.close();
  assert.deepEqual(await stored(makeStore, 'lottery'), { nspam: 0, nham: 0, token: { spam: 0, ham: 0 }, tokens: 0 });

  // A message never learnt is not taken out of the counts.
  const d = await open(makeStore);
  await learnMessage(d, SPAMMY, 'spam');
  assert.equal(await unlearnMessage(d, mail('Other', 'congratulations winner claim your lottery prize')), 'not learnt');
  assert.equal(d.model.nspam, 1);
  assert.deepEqual(d.model.tokens.get('lottery'), { spam: 1, ham: 0 });
  assert.equal(await unlearnMessage(d, SPAMMY), 'unlearnt');
  await d.close();
}

/** Two nodes learn the same messages at the same moment, some of them as different classes. */
async function race(makeStore: () => BayesStore): Promise<void> {
  const messages = Array.from({ length: 60 }, (_, i) => mail(`Offer ${i}`, `cheap pills offer number${i} limited time`));
  const a = await open(makeStore);
  const b = await open(makeStore);
  const outcomes = await Promise.all(messages.flatMap((m) => [learnMessage(a, m, 'spam'), learnMessage(b, m, 'spam')]));
  assert.equal(outcomes.filter((o) => o === 'learnt').length, 60);
  assert.equal(outcomes.filter((o) => o === 'already learnt').length, 60);
  // Opposite classes at once: each message ends in exactly one class.
  await Promise.all(messages.flatMap((m, i) => (i % 2 ? [learnMessage(a, m, 'ham'), learnMessage(b, m, 'spam')] : [])));
  await a.close();
  await b.close();
  const after = await stored(makeStore, 'cheap');
  assert.equal(after.nspam + after.nham, 60);
  assert.deepEqual(after.token, { spam: after.nspam, ham: after.nham });
}

describe('content: learning is idempotent (seen records)', function () {
  this.timeout(60_000);
  let dir: string;
  let prefix: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'mw-seen-'));
    prefix = uniqueRedisPrefix('content', 'seen');
  });
  afterEach(async () => {
    rmSync(dir, { recursive: true, force: true });
    await deleteRedisKeys(prefix);
  });

  it('the id is the same for the same tokens in any order and differs otherwise', () => {
    assert.equal(messageId(['b', 'a', 'a']), messageId(['a', 'b']));
    assert.notEqual(messageId(['a', 'b']), messageId(['a', 'b', 'c']));
    assert.match(messageId(['a']), /^[0-9a-f]{32}$/);
  });

  it('a delivered or held copy has the tokens of the scanned one: subject tag and the headers mailward adds left out', async () => {
    const added = [
      'X-Mailward-Score: 9', 'X-Mailward-Status: quarantine score=9 ref=ABC symbols=TRAP 9', 'X-Mailward-Ref: ABC', 'X-Mailward-Bulk: count=120; template=abc; window=24h',
      'X-Mailward-Sig: v=1; abc', 'X-Mailward-Release: v=1; ref=ABC', 'Authentication-Results: mx.example.com; spf=pass', 'Received-SPF: pass',
    ].join('\r\n');
    const original = await messageTokens(SPAMMY);
    // Tagged once by the verdict, and once more if a released copy was tagged again.
    for (const subject of ['[SPAM] Claim your prize', '[SPAM] [SPAM] Claim your prize']) {
      const copy = `${added}\r\n${SPAMMY.replace('Subject: Claim your prize', `Subject: ${subject}`)}`;
      assert.deepEqual(await messageTokens(copy, undefined, '[SPAM]'), original, subject);
    }
    // Only the configured tag, at the start, as a word of its own.
    assert.notDeepEqual(await messageTokens(SPAMMY.replace('Subject: Claim', 'Subject: [SPAM]Claim'), undefined, '[SPAM]'), original);
    assert.notDeepEqual(await messageTokens(SPAMMY.replace('Subject: Claim', 'Subject: [JUNK] Claim'), undefined, '[SPAM]'), original);
  });

  it('SQLite: twice counts once, ham after spam moves it, unlearn goes back to the start', async () => {
    const path = join(dir, 'bayes.sqlite');
    await idempotence(() => new SqliteBayesStore(path));
    const db = new Database(path);
    assert.deepEqual(db.prepare('SELECT count(*) AS n FROM bayes_seen_v2').get(), { n: 0 });
    db.close();
  });

  it('Redis: the same, with the seen records in <prefix>bayes:v2:seen', async () => {
    await idempotence(() => new RedisBayesStore(REDIS_URL, `${prefix}bayes:`));
    const client = createClient({ url: REDIS_URL });
    await client.connect();
    try {
      const store = new RedisBayesStore(REDIS_URL, `${prefix}bayes:`);
      const c = await open(() => store);
      await learnMessage(c, HAMMY, 'ham');
      await c.close();
      const id = messageId(await messageTokens(HAMMY));
      assert.deepEqual(await client.hGetAll(`${prefix}bayes:v2:seen`), { [id]: `ham:${dayNumber(Date.now())}` }, 'class and day of the learn');
    } finally {
      await client.quit();
    }
  });

  it('Redis: two nodes learning the same messages at once count each once', async () => {
    await race(() => new RedisBayesStore(REDIS_URL, `${prefix}bayes:`));
  });

  it('SQLite: two processes learning the same messages at once count each once', async () => {
    const path = join(dir, 'bayes.sqlite');
    await race(() => new SqliteBayesStore(path));
    // Really concurrent: two OS processes on one file.
    const script = `
      const { Classifier } = require(${JSON.stringify(join(__dirname, '..', 'lib', 'checks', 'content', 'classifier'))});
      const { SqliteBayesStore } = require(${JSON.stringify(join(__dirname, '..', 'lib', 'checks', 'content', 'store'))});
      (async () => {
        const c = new Classifier(new SqliteBayesStore(process.argv[1]), { info() {}, warn() {}, error() {}, debug() {} });
        let learnt = 0;
        for (let i = 0; i < 300; i++) if ((await c.learnOnce(['proc', 'tok' + i], 'spam')) === 'learnt') learnt++;
        await c.close();
        console.log(learnt);
      })();`;
    const results = await Promise.all([0, 1].map(() => run(process.execPath, ['-e', script, join(dir, 'procs.sqlite')])));
    assert.equal(results.reduce((sum, r) => sum + Number(r.stdout.trim()), 0), 300);
    const after = await stored(() => new SqliteBayesStore(join(dir, 'procs.sqlite')), 'proc');
    assert.equal(after.nspam, 300);
    assert.deepEqual(after.token, { spam: 300, ham: 0 });
  });

  it('SQLite: a raw unlearn saved apart from its learn takes the counts back (negative deltas are applied)', async () => {
    const makeStore = () => new SqliteBayesStore(join(dir, 'raw.sqlite'));
    const a = await open(makeStore);
    a.learn(['cheap', 'pills'], 'spam');
    a.learn(['cheap'], 'spam');
    await a.flush();
    a.unlearn(['cheap', 'pills'], 'spam');
    await a.close();
    const after = await stored(makeStore, 'cheap');
    assert.deepEqual([after.nspam, after.token, after.tokens], [1, { spam: 1, ham: 0 }, 1]);
  });

  it('autolearn and spamtrap symbols learn a message once, however often it is scanned', async () => {
    const config = join(dir, 'config');
    mkdirSync(config);
    writeFileSync(join(config, 'mailward.ini'), `[main]\ndata_dir = ${join(dir, 'data')}\n[dns]\nservers = 127.0.0.1:9\ntimeout_ms = 300\n`);
    writeFileSync(join(config, 'mailward.content.rules'), 'body TRAP_WORD "trapword"\nscore TRAP_WORD 0.1\ndescribe TRAP_WORD Test spamtrap marker\n');
    writeFileSync(join(config, 'mailward.content.ini'), '[autolearn]\nenabled = true\nham_score = 0.5\nspam_symbols = TRAP_WORD\n');
    const mw = createMailward({ configDir: config, modules: ['content'] });
    const trapped = mail('Hello', 'trapword and some cheap pills for you');
    try {
      for (const raw of [HAMMY, HAMMY, trapped, trapped, HAMMY]) await mw.scan({ ip: '192.0.2.1', mailFrom: 'a@example.net', rcptTo: ['b@example.com'], raw });
    } finally {
      await mw.close();
    }
    const path = join(dir, 'data', 'bayes.sqlite');
    const after = await stored(() => new SqliteBayesStore(path), 'pills');
    assert.deepEqual([after.nspam, after.nham], [1, 1]);
    assert.deepEqual(after.token, { spam: 1, ham: 0 });
    // An operator then corrects the autolearnt ham: moved, not added.
    const c = await open(() => new SqliteBayesStore(path));
    assert.equal(await learnMessage(c, HAMMY, 'spam'), 'relearnt');
    await c.close();
    const fixed = await stored(() => new SqliteBayesStore(path), 'quarterly');
    assert.deepEqual([fixed.nspam, fixed.nham, fixed.token.spam, fixed.token.ham], [2, 0, 1, 0]);
  });

  it('mailward learn counts learnt, already learnt and relearnt, and --unlearn takes them back', async () => {
    const config = join(dir, 'config');
    mkdirSync(config);
    writeFileSync(join(config, 'mailward.ini'), `[main]\ndata_dir = ${join(dir, 'data')}\n`);
    for (const sub of ['spam', 'ham', 'more']) mkdirSync(join(dir, sub));
    for (let i = 0; i < 3; i++) writeFileSync(join(dir, 'spam', `${i}.eml`), mail(`Prize ${i}`, `claim prize number${i} now`));
    writeFileSync(join(dir, 'ham', 'a.eml'), HAMMY);
    writeFileSync(join(dir, 'more', 'a.eml'), mail('Prize 0', 'claim prize number0 now')); // learnt as spam before
    writeFileSync(join(dir, 'more', 'b.eml'), mail('Lunch', 'lunch at noon on friday'));
    const cli = async (...args: string[]) => {
      const out: string[] = [];
      const io: CliIO = { out: (l) => out.push(l), err: () => {} };
      assert.equal(await main(['learn', ...args, '--config', config], io), 0);
      return out.join('\n');
    };

    let text = await cli('--spam', join(dir, 'spam'), '--ham', join(dir, 'ham'));
    assert.match(text, /^spam: 3 learnt, 0 already learnt, 0 relearnt \(moved from ham\)$/m);
    assert.match(text, /^ham: 1 learnt, 0 already learnt, 0 relearnt \(moved from spam\)$/m);
    assert.match(text, /model \(sqlite .*bayes\.sqlite\): 3 spam and 1 ham \(was 0 and 0\)/);
    assert.match(text, /^note: fewer ham than spam learnt \(1 and 3\)/m);

    text = await cli('--spam', join(dir, 'spam'), '--ham', join(dir, 'more'), '--ham', join(dir, 'ham'));
    assert.match(text, /^spam: 0 learnt, 3 already learnt, 0 relearnt/m);
    assert.match(text, /^ham: 1 learnt, 1 already learnt, 1 relearnt \(moved from spam\)$/m);
    assert.match(text, /: 2 spam and 3 ham \(was 3 and 1\)/);
    assert.doesNotMatch(text, /fewer ham|spam scarce/);
    // The other way round: spam under a tenth of the ham.
    assert.match(balanceNote(9, 100) ?? '', /^note: under a tenth as much spam as ham learnt \(9 and 100\)/);
    assert.equal(balanceNote(10, 100), undefined);
    assert.equal(balanceNote(0, 100), undefined);

    // Unlearning forgets a message whatever it was learnt as (as sa-learn --forget):
    // spam/0.eml was moved to ham above, and is taken out of ham here.
    text = await cli('--unlearn', '--ham', join(dir, 'more'), '--ham', join(dir, 'ham'), '--spam', join(dir, 'spam'));
    assert.match(text, /^spam: 3 unlearnt, 0 not learnt \(nothing to take back\)$/m);
    assert.match(text, /^ham: 2 unlearnt, 1 not learnt/m);
    assert.match(text, /: 0 spam and 0 ham \(was 2 and 3\), 0 tokens/);
  });
});
