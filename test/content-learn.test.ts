// mailward learn (and scan) reading what they are given: entries that cannot
// be read, symbolic link loops, files that are not messages, large mboxes.
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../lib/cli/main';
import { assertPrintable } from './support/terminal';
import { mboxMessages, readMessages } from '../lib/cli/sources';

const mail = (subject: string, body: string) => `From: Alice <alice@example.net>\r\nTo: bob@example.com\r\nSubject: ${subject}\r\n\r\n${body}\r\n`;

describe('mailward learn: what it reads', function () {
  this.timeout(30_000);
  let dir: string;
  let config: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'mw-learn-'));
    config = join(dir, 'config');
    mkdirSync(config);
    writeFileSync(join(config, 'mailward.ini'), `[main]\ndata_dir = ${join(dir, 'data')}\n`);
    mkdirSync(join(dir, 'spam'));
    writeFileSync(join(dir, 'spam', 'a.eml'), mail('Prize', 'claim your prize now'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  async function learn(...args: string[]) {
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(['learn', ...args, '--config', config], { out: (l) => out.push(l), err: (l) => err.push(l) });
    return { code, out: out.join('\n'), err: err.join('\n') };
  }

  it('a dangling symbolic link is skipped with its reason; the rest is learnt, then exit 1', async () => {
    symlinkSync(join(dir, 'nowhere.eml'), join(dir, 'spam', 'gone.eml'));
    writeFileSync(join(dir, 'spam', 'z.eml'), mail('Pills', 'cheap pills for sale'));
    const r = await learn('--spam', join(dir, 'spam'));
    assert.equal(r.code, 1, r.err);
    assert.match(r.err, /gone\.eml: skipped \(ENOENT: no such file or directory\)/);
    assert.match(r.out, /^spam: 2 learnt, 0 already learnt, 0 relearnt \(moved from ham\), 1 skipped$/m);
    assert.match(r.out, /: 2 spam and 0 ham \(was 0 and 0\)/);
  });

  it('a symbolic link loop is followed once', async () => {
    mkdirSync(join(dir, 'spam', 'sub'));
    writeFileSync(join(dir, 'spam', 'sub', 'b.eml'), mail('Loans', 'fast loans approved today'));
    symlinkSync('..', join(dir, 'spam', 'sub', 'up'));
    const r = await learn('--spam', join(dir, 'spam'));
    assert.equal(r.code, 0, r.err);
    // Each message read once: none "already learnt" from a second pass through the loop.
    assert.match(r.out, /^spam: 2 learnt, 0 already learnt, 0 relearnt \(moved from ham\)$/m);
  });

  it('empty files, images and text files without a header block are not learnt, and counted', async () => {
    writeFileSync(join(dir, 'spam', 'empty.eml'), '');
    writeFileSync(join(dir, 'spam', 'photo.jpg'), Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x0a, 0x0a, 0x41, 0x3a]));
    writeFileSync(join(dir, 'spam', 'README'), 'Spam collected in March\n\nNotes: from the trap addresses.\n');
    const r = await learn('--spam', join(dir, 'spam'));
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^spam: 1 learnt, 0 already learnt, 0 relearnt \(moved from ham\), 3 not messages \(no header block\)$/m);
    for (const name of ['empty.eml', 'photo.jpg', 'README']) assert.match(r.err, new RegExp(`${name.replace('.', '\\.')}: skipped \\(not a message: no header block\\)`));
    assert.match(r.out, /: 1 spam and 0 ham/);
  });

  it('names skipped files and a missing path with control characters and newlines escaped, each on one line', async () => {
    writeFileSync(join(dir, 'spam', 'notes\x1b[31mred\nfake line.txt'), 'not a message\n');
    symlinkSync(join(dir, 'nowhere.eml'), join(dir, 'spam', 'gone\x1b[31m\n.eml'));
    const r = await learn('--spam', join(dir, 'spam'));
    assert.equal(r.code, 1, r.err);
    assertPrintable(r.err, 'learn');
    assertPrintable(r.out, 'learn');
    const lines = r.err.split('\n');
    assert.ok(lines.includes(`${join(dir, 'spam', 'gone\\x1b[31m\\x0a.eml')}: skipped (ENOENT: no such file or directory)`), r.err);
    assert.ok(lines.includes(`${join(dir, 'spam', 'notes\\x1b[31mred\\x0afake line.txt')}: skipped (not a message: no header block)`), r.err);
    assert.ok(!lines.some((l) => l.startsWith('fake line') || l.startsWith('.eml')), 'no name starts a line of its own');
    assert.match(r.out, /^spam: 1 learnt, 0 already learnt, 0 relearnt \(moved from ham\), 1 skipped, 1 not a message \(no header block\)$/m);
    const missing = await learn('--spam', join(dir, 'nope\x1b[31m\nforged line.eml'));
    assert.equal(missing.code, 2);
    assert.equal(missing.err, `mailward learn: no such file or directory: ${join(dir, 'nope\\x1b[31m\\x0aforged line.eml')}`);
  });

  it('an mbox is read as a stream, message by message, with its ">From " quoting undone', () => {
    const box = join(dir, 'box.mbox');
    const from = (n: number) => `From sender${n}@example.net Mon Nov 23 10:0${n}:00 2026\n`;
    writeFileSync(box, `${from(1)}${mail('one', '>From the start\r\n>>From two deep')}\n${from(2)}${mail('two', 'second')}\n`);
    const reader = readMessages([box]);
    const first = reader.next().value!;
    assert.equal(first.kind, 'message');
    // What is appended after the first message was handed out is read too: the file was not read whole up front.
    appendFileSync(box, `${from(3)}${mail('three', 'third')}`);
    const rest = [...reader];
    const bodies = [first, ...rest].map((m) => (m.kind === 'message' ? m.raw.toString('latin1') : m.kind));
    assert.deepEqual(bodies, [`${mail('one', 'From the start\r\n>From two deep')}\n`, `${mail('two', 'second')}\n`, mail('three', 'third')]);
    assert.deepEqual([first, ...rest].map((m) => m.name), [1, 2, 3].map((n) => `${box}#${n}`));
    // Chunks that end anywhere (inside a "From " line, inside a ">>From" quote) give the same messages.
    for (const size of [1, 2, 3, 5, 8, 13]) {
      assert.deepEqual([...mboxMessages(box, size)].map((m) => (m.kind === 'message' ? m.raw.toString('latin1') : m.kind)), bodies, `chunks of ${size}`);
    }
  });
});
