// Line limits of what mailward writes, through a real Haraka: SMTP reply lines
// (RFC 5321 4.5.3.1.5: 512 octets with code and CRLF) whatever the length of a
// rule's conditions, with the ref kept. Red team 5 (hdr1.js): a block rule of 60
// sender patterns and no reason answered one 2043-octet line.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { loadConfig } from '../lib/config/load';
import { createTrackingReader } from '../lib/tracking';
import type { TrackingReader } from '../lib/tracking/types';
import { type HarakaInstance, removeDir, startHaraka } from './support/haraka';
import { repoPath } from './support/paths';
import { waitFor } from './support/wait';

const REF = /\(ref ([0-9A-Z]{10})\)$/;
const SPAM_DOMAINS = Array.from({ length: 60 }, (_, i) => `spam-domain-number-${i}.example`);
const TRAPS = Array.from({ length: 60 }, (_, i) => `a-rather-long-spamtrap-mailbox-name-${i}@example.com`);

const RULES =
  `rule blocked-senders\n  sender ${SPAM_DOMAINS.map((d) => `*@${d}`).join(', ')}\n  action block\n\n` +
  `rule traps\n  recipient ${TRAPS.join(', ')}\n  action block\n`;

/** Sends `commands` one at a time over raw SMTP and returns every reply line as sent (without CRLF). */
function smtp(port: number, commands: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(port, '127.0.0.1');
    const lines: string[] = [];
    let buffer = '';
    let next = 0;
    socket.on('data', (data) => {
      buffer += data.toString('latin1');
      for (let at = buffer.indexOf('\r\n'); at >= 0; at = buffer.indexOf('\r\n')) {
        const line = buffer.slice(0, at);
        buffer = buffer.slice(at + 2);
        lines.push(line);
        if (!/^\d{3} /.test(line)) continue;
        if (next < commands.length) socket.write(`${commands[next++]}\r\n`);
        else socket.end();
      }
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(lines));
  });
}

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
    const lines = await smtp(haraka.port, ['EHLO client.example.net', `MAIL FROM:<x@${SPAM_DOMAINS[59]}>`, 'QUIT']);
    const reply = lines.find((l) => l.startsWith('550'));
    const ref = assertReplyLine(reply, '550');
    assert.match(reply!, /^550 \[[^\]]+\] 5\.7\.1 Message refused by rule blocked-senders: sender \*@spam-domain-number-0\.example, .*\.\.\. and \d+ more \(ref /);
    const row = await waitFor(`tracking row ${ref}`, () => reader.get(ref));
    assert.equal(row.action, 'reject');
    assert.equal(row.phase, 'mail');
    assert.ok(row.reason.includes(`*@${SPAM_DOMAINS[59]}`), row.reason);
  });

  it('a recipient refused by a rule with 60 long recipient patterns gets a 550 line of at most 512 octets ending in the ref', async () => {
    const lines = await smtp(haraka.port, ['EHLO client.example.net', 'MAIL FROM:<a@example.net>', `RCPT TO:<${TRAPS[59]}>`, 'QUIT']);
    const reply = lines.find((l) => l.startsWith('550'));
    assertReplyLine(reply, '550');
    assert.match(reply!, /5\.7\.1 Recipient refused: rule traps: recipient a-rather-long-spamtrap-mailbox-name-0@example\.com, .*\.\.\. and \d+ more \(ref /);
  });
});
