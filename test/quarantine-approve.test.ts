// mailward quarantine release-approve of a message whose From: holds a name
// and no address: the envelope sender is not who the reader saw, so nothing
// is approved (it used to approve the envelope sender instead).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../lib/cli/main';
import type { CliIO } from '../lib/cli/types';
import { closeSharedIndexes, FileQuarantine } from '../lib/quarantine';
import { startSmtpSink, type SmtpSink } from './support/smtp-sink';
import { entry } from './support/quarantine';

/** The stand-in MTA listens in 27000-27999. */
async function sink(): Promise<SmtpSink> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await startSmtpSink('mta.test', { port: 27000 + Math.floor(Math.random() * 1000) });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt > 20) throw err;
    }
  }
}

const held = (from: string) => Buffer.from(`From: ${from}\r\nTo: alice@example.com\r\nSubject: hi\r\n\r\nHello Alice\r\n`);

describe('mailward quarantine release-approve: whom it approves', () => {
  let base: string;
  let configDir: string;
  let qdir: string;
  let mta: SmtpSink;
  beforeEach(async () => {
    base = mkdtempSync(join(tmpdir(), 'mailward-qapp-'));
    configDir = join(base, 'config');
    qdir = join(base, 'data', 'quarantine');
    mkdirSync(configDir);
    mta = await sink();
    writeFileSync(join(configDir, 'mailward.ini'), `[quarantine]\nrelease_port = ${mta.port}\n`);
  });
  afterEach(async () => {
    await mta.stop();
    await closeSharedIndexes();
    rmSync(base, { recursive: true, force: true });
  });

  async function cli(...argv: string[]) {
    const out: string[] = [];
    const err: string[] = [];
    const io: CliIO = { out: (l) => void out.push(l), err: (l) => void err.push(l) };
    const code = await main([...argv, '--config', configDir], io);
    return { code, out: out.join('\n'), err: err.join('\n') };
  }

  it('the From: address when it has one', async () => {
    await new FileQuarantine(qdir).put(entry('APP0000001', { mailFrom: 'bounces+x1@esp.test' }), held('Bob <bob@partner.test>'));
    const r = await cli('quarantine', 'release-approve', 'APP0000001');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^approved bob@partner\.test for alice@example\.com$/m);
    assert.match((await cli('allow', 'list')).out, /bob@partner\.test/);
  });

  for (const from of ['Bob Smith', '"Bob Smith"', 'Bob <>', '=?utf-8?q?ceo=40bank.test?=']) {
    it(`nothing, with a warning, when the From: holds no address (${from}); the release goes through`, async () => {
      await new FileQuarantine(qdir).put(entry('APP0000002', { mailFrom: 'bounces+x1@esp.test' }), held(from));
      const r = await cli('quarantine', 'release-approve', 'APP0000002');
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /^released APP0000002 to alice@example\.com/);
      assert.equal(mta.messages.length, 1);
      assert.doesNotMatch(r.out, /approved/);
      assert.match(r.err, /^warning: nothing approved: the From: holds no address \(.*\), and the envelope sender bounces\+x1@esp\.test is not who it shows/m);
      assert.doesNotMatch((await cli('allow', 'list')).out, /esp\.test/, 'the envelope sender is not approved');
    });
  }
});
