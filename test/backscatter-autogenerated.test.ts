// Red team 4: authenticated automated notifications (Auto-Submitted: auto-generated, RFC 3834
// "not a reply") were taken for unverified automatic replies: +4 each, counted by the subject
// throttle, not exempt from its block, so an invoice run blocked itself and human mail with
// its subject. Full createMailward() with the real auth module, SPF/DMARC served by a loopback
// DNS server.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMailward } from '../lib';
import { startDnsServer, type TestDnsServer } from './support/dns-server';

describe('backscatter: Auto-Submitted: auto-generated from an authenticated sender', function () {
  this.timeout(60_000);
  let dns: TestDnsServer;
  let dir: string;
  before(async () => {
    dns = await startDnsServer({
      'billing.shop.example': { TXT: ['v=spf1 ip4:203.0.113.7 -all'] },
      '_dmarc.billing.shop.example': { TXT: ['v=DMARC1; p=reject'] },
    });
    dir = mkdtempSync(join(tmpdir(), 'mw-autogen-'));
    writeFileSync(join(dir, 'mailward.ini'), `[main]\nnode_name = t\ndata_dir = ${dir}\n[dns]\nservers = ${dns.server}\ntimeout_ms = 1000\n[state]\nbackend = memory\n[tracking]\nenabled = false\n`);
    // A small threshold keeps the test short; the default 50 behaves the same.
    writeFileSync(join(dir, 'mailward.backscatter.ini'), `[throttle]\nthreshold = 5\n`);
    writeFileSync(join(dir, 'mailward.reputation.ini'), `[practices]\nenabled = false\n`);
  });
  after(async () => { await dns.stop(); rmSync(dir, { recursive: true, force: true }); });

  it('an invoice run is ordinary mail: not an auto-reply, not counted, not blocked; a null-sender copy is still a bounce', async () => {
    const mw = createMailward({ configDir: dir, modules: ['builtin', 'auth', 'backscatter'] });
    try {
      const invoice = (n: number, to: string) =>
        [`From: ACME Billing <invoices@billing.shop.example>`, `To: ${to}`, `Subject: Your invoice ${1000 + n} from ACME`,
         `Date: Mon, 10 Mar 2025 09:14:00 +0000`, `Message-ID: <inv.${n}@billing.shop.example>`, 'Auto-Submitted: auto-generated', '',
         'Dear customer, please find your invoice attached.', ''].join('\r\n');
      const names = (r: Awaited<ReturnType<typeof mw.scan>>) => Object.fromEntries(r.verdict.symbols.map((s) => [s.name, `${s.score} ${s.detail}`]));
      for (let i = 1; i <= 8; i++) {
        const to = `user${i}@example.com`;
        const r = await mw.scan({ ip: '203.0.113.7', helo: 'mail.billing.shop.example', mailFrom: 'invoices@billing.shop.example', rcptTo: [to], raw: invoice(i, to) });
        const got = names(r);
        assert.ok('DMARC_PASS' in got || Object.keys(got).some((k) => k.startsWith('SPF_PASS')), `sender is authenticated: ${JSON.stringify(got)}`);
        for (const name of ['AUTO_REPLY', 'BOUNCE', 'BOUNCE_UNVERIFIED', 'BACKSCATTER_SUBJECT_BLOCKED']) assert.ok(!(name in got), `invoice ${i}: ${name} ${got[name]}`);
        assert.equal(r.verdict.action, 'accept', `invoice ${i}: ${r.verdict.reason}`);
        assert.equal((r.context.notes as Record<string, { kind?: unknown } | undefined>).backscatter?.kind ?? null, null);
      }
      // Human mail with the subject is not deferred: no flood was counted.
      const human = await mw.scan({ ip: '198.51.100.20', helo: 'h.small.example', mailFrom: 'bob@small.example', rcptTo: ['carol@example.com'],
        raw: 'From: bob@small.example\r\nSubject: Re: your invoice 77 from acme\r\nMessage-ID: <x@small.example>\r\n\r\nquestion\r\n' });
      assert.equal(human.verdict.action, 'accept', human.verdict.reason);
      // The same notification from the null sender is a bounce (unverified: we never sent it).
      const bounced = await mw.scan({ ip: '203.0.113.7', helo: 'mail.billing.shop.example', mailFrom: '', rcptTo: ['user1@example.com'], raw: invoice(99, 'user1@example.com') });
      const got = names(bounced);
      assert.ok('BOUNCE' in got && 'BOUNCE_UNVERIFIED' in got, JSON.stringify(got));
      assert.match(got.BOUNCE!, /null sender/);
    } finally {
      await mw.close();
    }
  });
});
