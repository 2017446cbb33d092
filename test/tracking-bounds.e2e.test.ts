// A tracking row's size does not grow with what one client sends: thousands of
// refused RCPT TO in one transaction, a Message-ID folded over many lines. Each
// was written whole into the row (and the refused recipients were matched
// against each other in quadratic time), so one transaction could leave a row
// of megabytes in tracking.sqlite.
import assert from 'node:assert/strict';
import { createConnection } from 'node:net';
import { loadConfig } from '../lib/config/load';
import { createTrackingReader } from '../lib/tracking';
import type { TrackingReader } from '../lib/tracking/types';
import { type HarakaInstance, type HarakaOptions, removeDir, startHaraka } from './support/haraka';
import { smtpConversation } from './support/smtp-conversation';
import { waitFor } from './support/wait';

/** Writes the whole conversation at once (PIPELINING) and returns every reply line. */
function pipelined(port: number, commands: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(port, '127.0.0.1');
    let text = '';
    let sent = false;
    socket.on('data', (data) => {
      text += data.toString('latin1');
      if (!sent && /^220 /m.test(text)) {
        sent = true;
        socket.write(commands.map((c) => `${c}\r\n`).join(''));
      }
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(text.split('\r\n')));
  });
}


const TRACKED = '[main]\ndata_dir = data\n[tracking]\nflush_interval_ms = 50\n[dns]\nservers = 127.0.0.1:9\ntimeout_ms = 300\n';

/** A Haraka of the suite's own (rows flushed every 50 ms) and a reader of its rows, stopped after the suite. */
function trackedHaraka(options: HarakaOptions): { haraka: HarakaInstance; reader: TrackingReader } {
  const started = {} as { haraka: HarakaInstance; reader: TrackingReader };
  before(async () => {
    started.haraka = await startHaraka({ ...options, files: { 'mailward.ini': TRACKED, ...options.files } });
    started.reader = createTrackingReader(loadConfig({ configDir: started.haraka.configDir }).shared.tracking);
  });
  after(async () => {
    await started.reader?.close();
    await started.haraka?.stop();
    if (started.haraka) removeDir(started.haraka.dir);
  });
  return started;
}

describe('tracking rows end to end: bounded whatever the client sends', function () {
  this.timeout(120_000);
  const started = trackedHaraka({
    plugins: [],
    // Like a recipient plugin that knows the mailboxes: every unknown one refused (through Haraka's deny hook).
    pluginFiles: { refuse_unknown: "exports.hook_rcpt = function (next, connection, params) { if (/^nobody/.test(params[0].user)) return next(DENY, 'no such user'); next(); };\n" },
  });

  it('3,000 refused recipients in one transaction: the reason names 20 and counts the rest', async () => {
    const refused = Array.from({ length: 3000 }, (_, i) => `RCPT TO:<nobody-with-a-long-mailbox-name-${i}@example.com>`);
    const lines = await pipelined(started.haraka.port, ['EHLO client.example', 'MAIL FROM:<flood@sender.example>', ...refused, 'RCPT TO:<bob@example.com>', 'RSET', 'QUIT']);
    assert.equal(lines.filter((l) => l.startsWith('550')).length, 3000);
    const [row] = await waitFor('the row', async () => {
      const rows = await started.reader.find({ from: 'flood@sender.example' });
      return rows.length ? rows : undefined;
    });
    assert.deepEqual(row!.rcptTo, ['bob@example.com']);
    assert.match(row!.reason, /refused recipients: nobody-with-a-long-mailbox-name-0@example\.com \(no such user \(by refuse_unknown\)\), /);
    assert.match(row!.reason, /, and 2980 more$/);
    assert.ok(row!.reason.length < 4000, `a reason of ${row!.reason.length} characters`);
  });

  it('a Message-ID folded over 800 lines is kept to its first 998 characters', async () => {
    const id = `<${Array.from({ length: 800 }, () => 'x'.repeat(70)).join('\r\n ')}@sender.example>`;
    const lines = await smtpConversation(started.haraka.port, [
      'EHLO client.example',
      'MAIL FROM:<long-id@sender.example>',
      'RCPT TO:<bob@example.com>',
      'DATA',
      `From: a@sender.example\r\nTo: bob@example.com\r\nSubject: hi\r\nMessage-ID: ${id}\r\n\r\nhello\r\n.`,
      'QUIT',
    ]);
    assert.ok(lines.some((l) => l.startsWith('354 ')), lines.slice(-4).join('\n'));
    const [row] = await waitFor('the row', async () => {
      const rows = await started.reader.find({ from: 'long-id@sender.example' });
      return rows.length ? rows : undefined;
    });
    assert.ok(row!.messageId, 'no message id');
    assert.ok(row!.messageId!.length <= 998, `a message id of ${row!.messageId!.length} characters`);
    assert.ok(row!.messageId!.startsWith('<xxxx'));
  });
});

describe('tracking rows end to end: spam traps past the refusals the ledger names', function () {
  this.timeout(120_000);
  const started = trackedHaraka({
    plugins: ['mailward/plugins/reputation'],
    // Test clients connect from 127.x.y.z.
    files: { 'mailward.reputation.ini': '[main]\nskip_internal = false\n[dnsbl]\nenabled = false\n[practices]\nenabled = false\n[learned]\nenabled = false\n[spamtrap]\naddresses = trap-*@example.com\n' },
  });

  it('1,500 trap recipients: each is refused (the ledger names only 1,000), and the row counts them all', async () => {
    const traps = Array.from({ length: 1500 }, (_, i) => `RCPT TO:<trap-${i}@example.com>`);
    const lines = await pipelined(started.haraka.port, ['EHLO client.example', 'MAIL FROM:<trapped@sender.example>', ...traps, 'RCPT TO:<bob@example.com>', 'RSET', 'QUIT']);
    assert.equal(lines.filter((l) => /^550 5\.7\.1 Recipient refused: mailbox unavailable/.test(l)).length, 1500);
    const [row] = await waitFor('the row', async () => {
      const rows = await started.reader.find({ from: 'trapped@sender.example' });
      return rows.length ? rows : undefined;
    });
    assert.deepEqual(row!.rcptTo, ['bob@example.com']);
    assert.match(row!.reason, /refused recipients: trap-0@example\.com \(/);
    assert.match(row!.reason, /, and 1480 more$/);
  });
});
