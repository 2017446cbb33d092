// Line limits of what mailward writes, through a real Haraka: SMTP reply lines
// (RFC 5321 4.5.3.1.5: 512 octets with code and CRLF) whatever the length of a
// rule's conditions, with the ref kept; header lines (RFC 5322 2.1.1: 998
// octets, 78 where possible) of the header fields mailward writes again.
// Red team 5 (hdr1.js): a block rule of 60 sender patterns and no reason
// answered one 2043-octet line; a long Subject, validly folded, was delivered
// as one 1513-octet line once tagged.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import PostalMime from 'postal-mime';
import { main } from '../lib/cli/main';
import { loadConfig } from '../lib/config/load';
import { closeSharedIndexes } from '../lib/quarantine';
import { createTrackingReader } from '../lib/tracking';
import type { TrackingReader } from '../lib/tracking/types';
import { type HarakaInstance, removeDir, sendMail, simpleMessage, startHaraka } from './support/haraka';
import { repoPath } from './support/paths';
import { smtpConversation } from './support/smtp-conversation';
import { waitFor } from './support/wait';

const REF = /\(ref ([0-9A-Z]{10})\)$/;
const SPAM_DOMAINS = Array.from({ length: 60 }, (_, i) => `spam-domain-number-${i}.example`);
const TRAPS = Array.from({ length: 60 }, (_, i) => `a-rather-long-spamtrap-mailbox-name-${i}@example.com`);

const RULES =
  `rule blocked-senders\n  sender ${SPAM_DOMAINS.map((d) => `*@${d}`).join(', ')}\n  action block\n\n` +
  `rule traps\n  recipient ${TRAPS.join(', ')}\n  action block\n`;


function assertReplyLine(line: string | undefined, code: string): string {
  assert.ok(line, `no ${code} reply`);
  assert.ok(line.startsWith(`${code} `), line);
  // Octets on the wire, CRLF included.
  assert.ok(Buffer.byteLength(line, 'latin1') + 2 <= 512, `reply line of ${Buffer.byteLength(line, 'latin1') + 2} octets: ${line.slice(0, 100)}...`);
  const ref = REF.exec(line)?.[1];
  assert.ok(ref, `the ref is not at the end of ${line}`);
  return ref;
}

describe('line limits end to end: SMTP reply lines', function () {
  this.timeout(60_000);
  let haraka: HarakaInstance;
  let reader: TrackingReader;

  before(async () => {
    // With Haraka's transaction uuid in front of every refusal: the longest a reply line gets.
    const connectionIni = readFileSync(repoPath('node_modules', 'Haraka', 'config', 'connection.ini'), 'utf8').replace(/^deny_chars=0$/m, 'deny_chars=1');
    haraka = await startHaraka({
      plugins: ['mailward/plugins/rules'],
      files: {
        'mailward.ini': '[main]\ndata_dir = data\n[tracking]\nflush_interval_ms = 50\n[dns]\nservers = 127.0.0.1:9\ntimeout_ms = 300\n',
        'mailward.rules': RULES,
        'connection.ini': connectionIni,
      },
    });
    reader = createTrackingReader(loadConfig({ configDir: haraka.configDir }).shared.tracking);
  });
  after(async () => {
    await reader?.close();
    await haraka?.stop();
    if (haraka) removeDir(haraka.dir);
  });

  it('a block rule with 60 sender patterns and no reason refuses MAIL FROM in one line of at most 512 octets ending in the ref; the row keeps the whole reason', async () => {
    const lines = await smtpConversation(haraka.port, ['EHLO client.example.net', `MAIL FROM:<x@${SPAM_DOMAINS[59]}>`, 'QUIT']);
    const reply = lines.find((l) => l.startsWith('550'));
    const ref = assertReplyLine(reply, '550');
    assert.match(reply!, /^550 \[[^\]]+\] 5\.7\.1 Message refused by rule blocked-senders: sender \*@spam-domain-number-0\.example, .*\.\.\. and \d+ more \(ref /);
    const row = await waitFor(`tracking row ${ref}`, () => reader.get(ref));
    assert.equal(row.action, 'reject');
    assert.equal(row.phase, 'mail');
    assert.ok(row.reason.includes(`*@${SPAM_DOMAINS[59]}`), row.reason);
  });

  it('a recipient refused by a rule with 60 long recipient patterns gets a 550 line of at most 512 octets ending in the ref', async () => {
    const lines = await smtpConversation(haraka.port, ['EHLO client.example.net', 'MAIL FROM:<a@example.net>', `RCPT TO:<${TRAPS[59]}>`, 'QUIT']);
    const reply = lines.find((l) => l.startsWith('550'));
    assertReplyLine(reply, '550');
    assert.match(reply!, /5\.7\.1 Recipient refused: rule traps: recipient a-rather-long-spamtrap-mailbox-name-0@example\.com, .*\.\.\. and \d+ more \(ref /);
  });
});

/** The header block of a message, one entry per physical line. */
function headerLines(text: string): string[] {
  return text.slice(0, text.search(/\r?\n\r?\n/)).split(/\r?\n/);
}

/** Every line of every field named `name`, in order (the field's first line, then its continuations). */
function fieldLines(text: string, name: string): string[] {
  const out: string[] = [];
  let inField = false;
  for (const line of headerLines(text)) {
    if (/^[ \t]/.test(line)) {
      if (inField) out.push(line);
      continue;
    }
    inField = line.toLowerCase().startsWith(`${name.toLowerCase()}:`);
    if (inField) out.push(line);
  }
  return out;
}

function assertHeaderLines(text: string, what: string): void {
  for (const line of headerLines(text)) assert.ok(Buffer.byteLength(line) <= 998, `${what}: header line of ${Buffer.byteLength(line)} octets: ${line.slice(0, 60)}...`);
}

describe('line limits end to end: header fields mailward writes again', function () {
  this.timeout(60_000);
  let haraka: HarakaInstance;
  // 200 words in 25 lines of 8: each line short, the field 1500 characters unfolded.
  const words = Array.from({ length: 200 }, (_, i) => `word${i}`);
  const lines: string[] = [];
  for (let i = 0; i < words.length; i += 8) lines.push(words.slice(i, i + 8).join(' '));

  before(async () => {
    haraka = await startHaraka({
      plugins: ['mailward/plugins/rules', 'mailward/plugins/auth'],
      files: {
        'mailward.ini': '[main]\ndata_dir = data\n[dns]\nservers = 127.0.0.1:9\ntimeout_ms = 300\n[actions]\nadd_header = 5\nquarantine = 8\n[headers]\nsubject_tag = [SPAM]\n',
        'mailward.rules': 'rule tag\n  header Subject contains [tagme]\n  action score +6\n\nrule hold\n  header Subject contains [holdme]\n  action quarantine\n',
      },
    });
  });
  after(async () => {
    await closeSharedIndexes();
    await haraka?.stop();
    if (haraka) removeDir(haraka.dir);
  });

  async function deliver(raw: string): Promise<string> {
    const before = haraka.delivered();
    const result = await sendMail({ port: haraka.port, from: 'a@example.net', to: ['bob@example.com'], raw });
    assert.equal(result.code, 250, result.response);
    const file = await waitFor('delivery', () => haraka.delivered().find((f) => !before.includes(f)));
    return readFileSync(file, 'utf8');
  }

  it('a long Subject folded by its sender, tagged, is delivered folded at white space (lines <= 78 octets) with the same words', async () => {
    const delivered = await deliver(simpleMessage({ subject: `[tagme] ${lines.join('\r\n ')}` }));
    assertHeaderLines(delivered, 'delivered');
    const subject = fieldLines(delivered, 'Subject');
    assert.ok(subject.length > 1, 'folded');
    for (const line of subject) assert.ok(Buffer.byteLength(line) <= 78, `Subject line of ${Buffer.byteLength(line)} octets: ${line}`);
    assert.equal(subject.join('').replace(/^Subject: /, ''), `[SPAM] [tagme] ${words.join(' ')}`, 'unfolding gives the tagged Subject back');
  });

  it('a long Subject in raw UTF-8 is encoded in words that fold: lines <= 78 octets, decoding gives the tagged Subject', async () => {
    const text = Array.from({ length: 120 }, (_, i) => `wört${i}`).join(' ');
    const delivered = await deliver(simpleMessage({ subject: `[tagme] ${text}` }));
    assertHeaderLines(delivered, 'delivered');
    const subject = fieldLines(delivered, 'Subject');
    for (const line of subject) assert.ok(Buffer.byteLength(line) <= 78, `Subject line of ${Buffer.byteLength(line)} octets: ${line}`);
    assert.match(subject[0]!, /^Subject: \[SPAM\] /, 'the tag stays readable');
    assert.equal((await PostalMime.parse(delivered)).subject, `[SPAM] [tagme] ${text}`);
  });

  it('the held copy of a quarantined message carries the tagged Subject folded too', async () => {
    const result = await sendMail({ port: haraka.port, from: 'a@example.net', to: ['bob@example.com'], raw: simpleMessage({ subject: `[holdme] ${lines.join('\r\n ')}` }) });
    assert.equal(result.code, 250, result.response);
    const ref = /ref ([0-9A-Z]{10})/.exec(result.response)![1]!;
    const out: string[] = [];
    const code = await main(['quarantine', 'show', ref, '--raw', '--config', haraka.configDir], { out: (l) => out.push(l), err: (l) => out.push(l) });
    assert.equal(code, 0, out.join('\n'));
    const held = out.join('\n');
    assertHeaderLines(held, 'held copy');
    const subject = fieldLines(held, 'Subject');
    for (const line of subject) assert.ok(Buffer.byteLength(line) <= 78, `Subject line of ${Buffer.byteLength(line)} octets: ${line}`);
    assert.equal(subject.join('').replace(/^Subject: /, ''), `[SPAM] [holdme] ${words.join(' ')}`);
  });

  it('the held copy of a quarantined message with a raw UTF-8 Subject has it encoded as on the delivered copy: 7-bit, lines <= 78 octets', async () => {
    const text = Array.from({ length: 60 }, (_, i) => `wört${i}`).join(' ');
    const result = await sendMail({ port: haraka.port, from: 'a@example.net', to: ['bob@example.com'], raw: simpleMessage({ subject: `[holdme] ${text}` }) });
    assert.equal(result.code, 250, result.response);
    const ref = /ref ([0-9A-Z]{10})/.exec(result.response)![1]!;
    const out: string[] = [];
    const code = await main(['quarantine', 'show', ref, '--raw', '--config', haraka.configDir], { out: (l) => out.push(l), err: (l) => out.push(l) });
    assert.equal(code, 0, out.join('\n'));
    const held = out.join('\n');
    const subject = fieldLines(held, 'Subject');
    for (const line of subject) {
      assert.ok(Buffer.byteLength(line) <= 78, `Subject line of ${Buffer.byteLength(line)} octets: ${line}`);
      assert.doesNotMatch(line, /[^\x00-\x7f]/, `raw 8-bit in the held Subject: ${line}`);
    }
    assert.equal((await PostalMime.parse(held)).subject, `[SPAM] [holdme] ${text}`);
  });

  it('the Authentication-Results mailward adds is folded at white space too (Haraka keeps the sender\'s, renamed, as they were folded)', async () => {
    const delivered = await deliver(simpleMessage({ subject: 'plain' }));
    assertHeaderLines(delivered, 'delivered');
    const ours = fieldLines(delivered, 'Authentication-Results');
    assert.match(ours[0]!, /^Authentication-Results: mx\.example\.com;/);
    assert.ok(ours.length > 1, ours.join('\n'));
    for (const line of ours) assert.ok(Buffer.byteLength(line) <= 78, `Authentication-Results line of ${Buffer.byteLength(line)} octets: ${line}`);
  });
});
