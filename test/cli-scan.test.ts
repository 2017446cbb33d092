import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GTUBE } from '../lib/checks/builtin';
import { main } from '../lib/cli/main';
import type { CliIO } from '../lib/cli/types';
import { createClient } from 'redis';
import { deleteRedisKeys, REDIS_URL, uniquePrefix } from './reputation/setup';
import { repoPath } from './support/paths';
import { assertPrintable, HOSTILE, PLAIN } from './support/terminal';

function capture(): CliIO & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (l) => stdout.push(l), err: (l) => stderr.push(l) };
}

const message = (subject: string, body: string) => `From: Alice <alice@example.net>\r\nTo: bob@example.com\r\nSubject: ${subject}\r\n\r\n${body}\r\n`;

describe('the mailward command', () => {
  it('piped into a reader that stops early (| head): no crash, the command finishes with its own exit code', async () => {
    const child = spawn(process.execPath, [repoPath('bin', 'mailward'), 'symbols'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    // Close the pipe before the command writes, as a reader that has seen enough does.
    child.stdout.destroy();
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(stderr, '');
    assert.equal(code, 0);
  });

  it('with its messages piped to a reader that is gone too, a usage mistake still exits 2', async () => {
    const child = spawn(process.execPath, [repoPath('bin', 'mailward'), 'trace', '--since', 'yesterday'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    child.stderr.destroy();
    assert.equal(await new Promise<number | null>((resolve) => child.on('exit', resolve)), 2);
  });
});

describe('mailward scan', function () {
  this.timeout(30_000);
  let dir: string;
  let config: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'mw-scan-'));
    config = join(dir, 'config');
    mkdirSync(config);
    writeFileSync(join(config, 'mailward.ini'), '[dns]\nservers = 127.0.0.1:9\ntimeout_ms = 300\n');
    writeFileSync(join(dir, 'gtube.eml'), message('test', GTUBE));
    writeFileSync(join(dir, 'clean.eml'), message('hello', 'See you tomorrow.'));
    // An mbox with two messages, one of them quoting a "From " line.
    writeFileSync(join(dir, 'box.mbox'), `From alice@example.net Mon Nov 23 10:00:00 2026\n${message('one', 'first')}\nFrom bob@example.net Mon Nov 23 10:01:00 2026\n${message('two', `>From the start\r\n${GTUBE}`)}\n`);
    // A maildir with one new and one read message.
    for (const sub of ['new', 'cur', 'tmp']) mkdirSync(join(dir, 'maildir', sub), { recursive: true });
    writeFileSync(join(dir, 'maildir', 'new', '1.host'), message('new one', 'hello'));
    writeFileSync(join(dir, 'maildir', 'cur', '2.host:2,S'), message('read one', GTUBE));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('explains each verdict with every symbol, its score and description', async () => {
    const io = capture();
    assert.equal(await main(['scan', join(dir, 'gtube.eml'), '--config', config], io), 0);
    const text = io.stdout.join('\n');
    assert.match(text, /gtube\.eml: reject \(score [\d.]+, ref [0-9A-Z]{10}\)/);
    assert.match(text, /why: score [\d.]+ reached the reject threshold 15/);
    assert.match(text, /\+ +1000 +GTUBE +policy +Body carries the GTUBE anti-spam test string/);
  });

  it('prints what the message wrote, and a file name, with control and bidi characters escaped', async () => {
    const hostile = join(dir, 'hostile');
    mkdirSync(hostile);
    // Two From: addresses: FROM_MULTIPLE quotes them in its detail (the parser drops C0 there itself, not C1 or bidi).
    writeFileSync(join(hostile, `saved\x1b[2J${PLAIN}.eml`), `From: a\x9b2J\u202eb@x.test, ${PLAIN}@y.test\r\nTo: bob@example.com\r\nSubject: ${HOSTILE}\r\n\r\n${GTUBE}\r\n`);
    const io = capture();
    assert.equal(await main(['scan', hostile, '--config', config], io), 0);
    const text = io.stdout.join('\n');
    assertPrintable(text, 'scan');
    assert.ok(text.includes(`saved\\x1b[2J${PLAIN}.eml: reject`), 'the file name');
    assert.ok(text.includes('[From: has 2 addresses (a\\x9b2j\\u202eb@x.test, '), 'the From: addresses in a detail');
    const json = capture();
    assert.equal(await main(['scan', hostile, '--config', config, '--json'], json), 0);
    assertPrintable(json.stdout.join('\n'), 'scan --json');
  });

  it('prints one JSON object per message with --json, across mbox and maildir', async () => {
    const io = capture();
    assert.equal(await main(['scan', join(dir, 'box.mbox'), join(dir, 'maildir'), '--config', config, '--json'], io), 0);
    const results = io.stdout.map((l) => JSON.parse(l));
    assert.deepEqual(results.map((r) => [r.file.replace(dir, ''), r.action === 'reject']), [
      ['/box.mbox#1', false],
      ['/box.mbox#2', true],
      [join('/maildir', 'new', '1.host'), false],
      [join('/maildir', 'cur', '2.host:2,S'), true],
    ]);
    for (const r of results) {
      assert.match(r.ref, /^[0-9A-Z]{10}$/);
      assert.ok(Array.isArray(r.symbols));
      for (const s of r.symbols) assert.deepEqual(Object.keys(s).sort(), ['detail', 'group', 'name', 'score']);
    }
  });

  it('uses the envelope given on the command line', async () => {
    const io = capture();
    await main(['scan', join(dir, 'clean.eml'), '--config', config, '--json', '--ip', '192.0.2.1', '--from', 'x@partner.example', '--to', 'y@example.com'], io);
    assert.equal(JSON.parse(io.stdout[0]!).action, 'accept');
  });

  it('says which path is missing, with exit code 2 and no stack trace', async () => {
    const io = capture();
    assert.equal(await main(['scan', join(dir, 'nope.eml'), '--config', config], io), 2);
    assert.deepEqual(io.stderr, [`mailward scan: no such file or directory: ${join(dir, 'nope.eml')}`]);
  });

  it('names what it cannot read or is not a message, scans the rest, and exits 1 for the unreadable', async () => {
    const mixed = join(dir, 'mixed');
    mkdirSync(mixed);
    writeFileSync(join(mixed, 'a.eml'), message('hello', 'See you tomorrow.'));
    writeFileSync(join(mixed, 'README'), 'Messages kept for testing\n');
    symlinkSync(join(dir, 'nowhere.eml'), join(mixed, 'gone.eml'));
    const io = capture();
    assert.equal(await main(['scan', mixed, '--config', config], io), 1);
    assert.match(io.stdout.join('\n'), /a\.eml: accept/);
    assert.deepEqual(io.stderr, [
      `${join(mixed, 'README')}: skipped (not a message: no header block)`,
      `${join(mixed, 'gone.eml')}: skipped (ENOENT: no such file or directory)`,
      '1 message scanned, 1 unreadable',
    ]);
  });

  it('names skipped files and a missing path with control characters and newlines escaped, each on one line', async () => {
    const hostile = join(dir, 'hostile-names');
    mkdirSync(hostile);
    writeFileSync(join(hostile, 'notes\x1b[31mred\nfake line.txt'), 'not a message\n');
    symlinkSync(join(dir, 'nowhere.eml'), join(hostile, 'gone\x1b[31m\n.eml'));
    const io = capture();
    assert.equal(await main(['scan', hostile, '--config', config], io), 1);
    assertPrintable(io.stderr.join('\n'), 'scan');
    assert.deepEqual(io.stderr, [
      `${join(hostile, 'gone\\x1b[31m\\x0a.eml')}: skipped (ENOENT: no such file or directory)`,
      `${join(hostile, 'notes\\x1b[31mred\\x0afake line.txt')}: skipped (not a message: no header block)`,
      '0 messages scanned, 1 unreadable',
    ]);
    const missing = capture();
    assert.equal(await main(['scan', join(dir, 'nope\x1b[31m\nforged line.eml'), '--config', config], missing), 2);
    assert.deepEqual(missing.stderr, [`mailward scan: no such file or directory: ${join(dir, 'nope\\x1b[31m\\x0aforged line.eml')}`]);
  });

  it('reports a configuration error by file, section and key, exit code 3', async () => {
    const bad = join(dir, 'bad-config');
    mkdirSync(bad, { recursive: true });
    writeFileSync(join(bad, 'mailward.ini'), '[actions]\nreject = soon\n');
    const io = capture();
    assert.equal(await main(['scan', join(dir, 'clean.eml'), '--config', bad], io), 3);
    assert.match(io.stderr.join('\n'), /configuration error: .*mailward\.ini \[actions\] reject: expected a number, got "soon"/);
  });

  it('refuses an --ip that is not an address, and a --config directory that does not exist', async () => {
    const io = capture();
    assert.equal(await main(['scan', join(dir, 'clean.eml'), '--config', config, '--ip', 'notanip'], io), 2);
    assert.deepEqual(io.stderr, ['mailward scan: --ip "notanip" is not an IP address']);
    const missing = capture();
    assert.equal(await main(['scan', join(dir, 'clean.eml'), '--config', join(dir, 'no-such-config')], missing), 3);
    assert.match(missing.stderr.join('\n'), /no such configuration directory/);
  });

  it('touches no shared state: a scan against an MTA\'s Redis configuration writes nothing there', async () => {
    const prefix = uniquePrefix('scan');
    const live = join(dir, 'live-config');
    mkdirSync(live, { recursive: true });
    writeFileSync(join(live, 'mailward.ini'), `[dns]\nservers = 127.0.0.1:9\ntimeout_ms = 300\n[state]\nbackend = redis\nprefix = ${prefix}\n`);
    writeFileSync(join(live, 'mailward.reputation.ini'), '[practices]\nenabled = false\n[learned]\nlearn_spam_score = 5\n');
    const client = createClient({ url: REDIS_URL });
    await client.connect();
    try {
      for (let i = 0; i < 3; i++) assert.equal(await main(['scan', join(dir, 'gtube.eml'), '--config', live, '--ip', '192.0.2.77'], capture()), 0);
      assert.deepEqual(await client.keys(`${prefix}*`), [], 'no reputation learnt, no counter written');
      // ...but it reads what the MTA's state holds: a run-time block entry decides the scan.
      assert.equal(await main(['block', 'add', 'alice@example.net', '--config', live], capture()), 0);
      const keysBefore = (await client.keys(`${prefix}*`)).sort();
      const io = capture();
      assert.equal(await main(['scan', join(dir, 'clean.eml'), '--config', live, '--ip', '192.0.2.78', '--json'], io), 0);
      assert.equal(JSON.parse(io.stdout[0]!).action, 'reject', io.stdout[0]);
      assert.deepEqual((await client.keys(`${prefix}*`)).sort(), keysBefore);
    } finally {
      await client.quit();
      await deleteRedisKeys(prefix);
    }
  });

  it('names the first 1,000 refused recipients and counts the others', async () => {
    const traps = join(dir, 'traps');
    mkdirSync(traps);
    writeFileSync(join(traps, 'mailward.ini'), '[dns]\nservers = 127.0.0.1:9\ntimeout_ms = 300\n');
    writeFileSync(join(traps, 'mailward.reputation.ini'), '[dnsbl]\nenabled = false\n[practices]\nenabled = false\n[learned]\nenabled = false\n[spamtrap]\naddresses = trap-*@example.com\n');
    const to = Array.from({ length: 1002 }, (_, i) => ['--to', `trap-${i}@example.com`]).flat();
    const io = capture();
    assert.equal(await main(['scan', join(dir, 'clean.eml'), '--config', traps, '--ip', '192.0.2.9', ...to, '--to', 'bob@example.com'], io), 0);
    assert.equal(io.stdout.filter((l) => / refused: mailbox unavailable$/.test(l)).length, 1000);
    assert.ok(io.stdout.includes('  and 2 more recipient(s) refused'), io.stdout.slice(-3).join('\n'));
  });

  it('rejects an unknown option with the usage', async () => {
    const io = capture();
    assert.equal(await main(['scan', '--colour'], io), 2);
    assert.match(io.stderr.join('\n'), /usage: mailward scan PATH/);
  });
});
