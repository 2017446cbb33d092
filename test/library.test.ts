import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GTUBE } from '../lib/checks/builtin';
import { createMailward } from '../lib/index';
import { startExampleServer, type ExampleServer } from '../demo/smtp-server';
import { freePort, sendMail, simpleMessage } from './support/haraka';

describe('library front door: createMailward() without Haraka', function () {
  this.timeout(30_000);
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'mw-library-'));
    // DNS stays on loopback (nothing answers on port 9: look-ups fail fast, as TEMPERRORs).
    writeFileSync(join(dir, 'mailward.ini'), '[dns]\nservers = 127.0.0.1:9\ntimeout_ms = 300\n\n[scores]\nGTUBE = 1000\n');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('scans a message through every module and returns verdict, row and context', async () => {
    const rows: unknown[] = [];
    const mailward = createMailward({ configDir: dir, onRow: (row) => rows.push(row) });
    try {
      const { verdict, row, context } = await mailward.scan({ ip: '192.0.2.10', helo: 'mail.partner.example', mailFrom: 'a@partner.example', rcptTo: ['bob@example.com'], raw: simpleMessage({ body: `${GTUBE}\r\n` }) });
      assert.equal(verdict.action, 'reject');
      assert.ok(verdict.symbols.some((s) => s.name === 'GTUBE' && s.score === 1000));
      assert.equal(row.ref, verdict.ref);
      assert.equal(row.remoteIp, '192.0.2.10');
      assert.equal(rows.length, 1);
      assert.equal(context.mailFrom, 'a@partner.example');
    } finally {
      await mailward.close();
    }
  });

  it('runs only the named modules', async () => {
    const mailward = createMailward({ configDir: dir, modules: ['builtin'] });
    try {
      const { verdict } = await mailward.scan({ ip: '192.0.2.10', mailFrom: 'a@partner.example', rcptTo: ['bob@example.com'], raw: simpleMessage() });
      assert.deepEqual(verdict.symbols, []);
      assert.equal(verdict.action, 'accept');
    } finally {
      await mailward.close();
    }
  });

  it('decodes only the first 2 MB of a large message, says so, and still finds GTUBE at its end in the raw bytes', async () => {
    // A 24 MB text body took postal-mime 6.7 s in one stretch of the event loop, holding up every connection.
    // Lines of 76 characters, as most mail: the 2 MB byte limit comes before the line limit (shorter lines meet that first).
    const body = `${'lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor\r\n'.repeat(300_000)}${GTUBE}\r\n`;
    const mailward = createMailward({ configDir: dir, modules: ['builtin'] });
    try {
      const { verdict, row, context } = await mailward.scan({ ip: '192.0.2.10', mailFrom: 'a@partner.example', rcptTo: ['bob@example.com'], raw: simpleMessage({ body }) });
      assert.equal(verdict.action, 'reject');
      assert.ok(verdict.symbols.some((s) => s.name === 'GTUBE'));
      const partial = verdict.symbols.find((s) => s.name === 'MIME_PARTIAL');
      assert.equal(partial?.score, 0);
      // The first 2 MB, then at most 1 MB more of its one text part from the cut (the tail's bound).
      assert.match(partial?.detail ?? '', /^decoded the first 2048 KB of 2\d{4} KB and 1 text part crossing or after it$/);
      assert.equal(row.parseResult, `ok; ${partial?.detail}`);
      const parsed = await context.parsed;
      assert.ok(parsed?.text?.startsWith('lorem ipsum'));
      assert.ok(parsed!.text!.length < 3 * 1024 * 1024 && !parsed!.text!.includes('GTUBE'));
    } finally {
      await mailward.close();
    }
  });

  it('shared state on an unreachable Redis: mail flows, and the outbound and rules checks say they could not read it', async () => {
    const down = mkdtempSync(join(tmpdir(), 'mw-library-down-'));
    writeFileSync(join(down, 'mailward.ini'), '[dns]\nservers = 127.0.0.1:9\ntimeout_ms = 300\n\n[state]\nbackend = redis\nredis_url = redis://127.0.0.1:1\ntimeout_ms = 200\n');
    const mailward = createMailward({ configDir: down, modules: ['outbound', 'rules'] });
    try {
      const relayed = await mailward.scan({ ip: '127.0.0.1', mailFrom: 'alice@example.com', rcptTo: ['someone@remote.example'], relaying: true, authUser: 'alice', raw: simpleMessage() });
      assert.equal(relayed.verdict.action, 'accept');
      assert.match(relayed.verdict.symbols.find((s) => s.name === 'OUTBOUND_ERROR')?.detail ?? '', /reading the suspension list: the shared state \(redis\) is unreachable/);
      const inbound = await mailward.scan({ ip: '192.0.2.10', mailFrom: 'a@partner.example', rcptTo: ['bob@example.com'], raw: simpleMessage() });
      assert.equal(inbound.verdict.action, 'accept');
      assert.match(inbound.verdict.symbols.find((s) => s.name === 'RULES_LIST_ERROR')?.detail ?? '', /the shared state \(redis\) could not be read: Redis at redis:\/\/127\.0\.0\.1:1 is unreachable/);
    } finally {
      await mailward.close();
      rmSync(down, { recursive: true, force: true });
    }
  });

  describe('the smtp-server example of docs/library.md', () => {
    let example: ExampleServer;
    let port: number;
    before(async () => {
      port = await freePort();
      example = await startExampleServer(port, dir);
    });
    after(() => example?.close());

    it('accepts clean mail with a ref and the headers mailward asked for', async () => {
      const result = await sendMail({ port, from: 'alice@example.net', to: ['bob@example.com'], raw: simpleMessage() });
      assert.equal(result.code, 250);
      assert.match(result.response, /Message accepted \(ref [0-9A-Z]{10}\)/);
      assert.match(example.delivered.at(-1)!.toString(), /^X-Mailward-Ref: [0-9A-Z]{10}\r\n/m);
    });

    it('delivers no Authentication-Results forged in our name, and another host\'s once, below our own', async () => {
      const raw = `Authentication-Results: other.example; spf=pass smtp.mailfrom=alice@example.net\r\nAuthentication-Results: mx.example.com; dmarc=pass header.from=example.net\r\n${simpleMessage()}`;
      const result = await sendMail({ port, from: 'alice@example.net', to: ['bob@example.com'], raw });
      assert.equal(result.code, 250, result.response);
      const delivered = example.delivered.at(-1)!.toString();
      const header = delivered.slice(0, delivered.indexOf('\r\n\r\n'));
      const fields = [...header.matchAll(/^Authentication-Results: ([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)/gm)].map((m) => m[1]!.replace(/\r\n[ \t]+/g, ' '));
      assert.equal(fields.filter((f) => /dmarc=pass header\.from=example\.net/.test(f)).length, 0, header);
      assert.equal(fields.filter((f) => f.startsWith('other.example;')).length, 1, header);
      // Ours on top, the other host's where it was, below it (RFC 8601 §5: it came with the message).
      assert.ok(fields.findIndex((f) => f.startsWith('mx.example.com;')) < fields.findIndex((f) => f.startsWith('other.example;')), header);
    });

    it('refuses GTUBE with 550 and the explanation', async () => {
      const result = await sendMail({ port, from: 'alice@example.net', to: ['bob@example.com'], raw: simpleMessage({ body: `${GTUBE}\r\n` }) });
      assert.equal(result.code, 550);
      assert.match(result.response, /Message rejected as spam \(ref [0-9A-Z]{10}: GTUBE 1000/);
    });
  });
});
