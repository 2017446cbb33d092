// A feedback report whose From: names no single domain: the reporter must be the domain that
// authenticated (countReport), and a From: of several addresses has none. Before, the plugin passed
// no domain at all then and the check was skipped: in the shipped configuration (reporters empty,
// require_authenticated = true) a report From: two addresses of domains one sender controls, each
// passing DMARC (so the message passes as a whole), was counted against our user though parseArf
// found no reporter. Full createMailward(): real auth (SPF and DMARC served by a loopback DNS
// server), outbound module, Redis state (a prefix of its own).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMailward } from '../lib';
import { authResults } from '../lib/checks/auth';
import { parseArf } from '../lib/checks/outbound';
import { startDnsServer, type TestDnsServer } from './support/dns-server';
import { deleteRedisKeys } from './support/redis';
import { arfReport, recordedBy, uniquePrefix } from './outbound/support';

describe('outbound: a feedback report whose From: names no single domain', function () {
  this.timeout(60_000);
  let dns: TestDnsServer;
  let dir: string;
  const prefix = uniquePrefix('report-from');
  before(async () => {
    dns = await startDnsServer({
      '_dmarc.attacker.example': { TXT: ['v=DMARC1; p=none'] },
      'r1.attacker.example': { TXT: ['v=spf1 ip4:203.0.113.66 -all'] },
      'r2.attacker.example': { TXT: ['v=spf1 ip4:203.0.113.66 -all'] },
    });
    dir = mkdtempSync(join(tmpdir(), 'mw-complaint-from-'));
    // [dns] timeout_ms: every look-up here must answer (ANSWERED_LOOKUP_MS of the auth tests).
    writeFileSync(join(dir, 'mailward.ini'), `[main]\nnode_name = t\ndata_dir = ${dir}\n[dns]\nservers = ${dns.server}\ntimeout_ms = 5000\n[state]\nbackend = redis\nredis_url = redis://127.0.0.1:6379\nprefix = ${prefix}\ntimeout_ms = 2000\n[tracking]\nenabled = false\n`);
    writeFileSync(join(dir, 'mailward.outbound.ini'), `[complaints]\naddresses = fbl@example.com\n`);
  });
  after(async () => {
    await dns.stop();
    rmSync(dir, { recursive: true, force: true });
    await deleteRedisKeys(prefix);
  });

  it('a report From: a group of one mailbox (RFC 6854: one reporter, which mailauth reads as no address) counts', async () => {
    const mw = createMailward({ configDir: dir, modules: ['builtin', 'auth', 'backscatter', 'outbound'] });
    try {
      const mid = '<offer.2@example.com>';
      await mw.scan({ ip: '192.0.2.25', helo: 'laptop', mailFrom: 'alice@example.com', authUser: 'alice', relaying: true, rcptTo: ['trent@attacker.example'],
        raw: `From: Alice <alice@example.com>\r\nTo: trent@attacker.example\r\nSubject: Offer\r\nDate: Tue, 11 Mar 2025 09:57:58 +0000\r\nMessage-ID: ${mid}\r\n\r\nOur offer.\r\n` });
      await recordedBy(prefix, mid, 'alice');
      const raw = arfReport({ reporter: 'fbl@r1.attacker.example', rcpt: 'trent@attacker.example', mid })
        .replace(/\r?\n/g, '\r\n')
        .replace('From: Feedback Loop <fbl@r1.attacker.example>', 'From: Feedback Loop: fbl@r1.attacker.example;');
      assert.equal((await parseArf(raw)).reporter, 'fbl@r1.attacker.example');
      const r = await mw.scan({ ip: '203.0.113.66', helo: 'r1.attacker.example', mailFrom: 'fbl@r1.attacker.example', rcptTo: ['fbl@example.com'], raw });
      const auth = authResults(r.context)!;
      // mailauth finds no From: address in a group (its fromDomain ''); auth judged the one author domain and it passes.
      assert.deepEqual([auth.fromDomain, auth.dmarc.result, auth.dmarc.authors], ['', 'pass', ['r1.attacker.example']]);
      const detail = r.verdict.symbols.find((s) => s.name === 'FEEDBACK_REPORT')?.detail ?? '(no FEEDBACK_REPORT)';
      assert.match(detail, /^counted:/, detail);
    } finally {
      await mw.close();
    }
  });

  it('is untrusted even when every author passes DMARC; a report From: one of those addresses counts', async () => {
    const mw = createMailward({ configDir: dir, modules: ['builtin', 'auth', 'backscatter', 'outbound'] });
    try {
      const mid = '<offer.1@example.com>';
      await mw.scan({ ip: '192.0.2.25', helo: 'laptop', mailFrom: 'alice@example.com', authUser: 'alice', relaying: true, rcptTo: ['mallory@attacker.example'],
        raw: `From: Alice <alice@example.com>\r\nTo: mallory@attacker.example\r\nSubject: Offer\r\nDate: Tue, 11 Mar 2025 09:57:58 +0000\r\nMessage-ID: ${mid}\r\n\r\nOur offer.\r\n` });
      await recordedBy(prefix, mid, 'alice');
      const report = (rcpt: string) => arfReport({ reporter: 'fbl@r1.attacker.example', rcpt, mid }).replace(/\r?\n/g, '\r\n');
      const shapes = {
        'two addresses in one From:': report('mallory@attacker.example').replace('From: Feedback Loop <fbl@r1.attacker.example>', 'From: fbl@r1.attacker.example, fbl@r2.attacker.example'),
        'two From: fields': report('mallory@attacker.example').replace('From: Feedback Loop <fbl@r1.attacker.example>', 'From: fbl@r1.attacker.example\r\nFrom: fbl@r2.attacker.example'),
      };
      for (const [shape, raw] of Object.entries(shapes)) {
        assert.equal((await parseArf(raw)).reporter, '', `${shape}: parseArf finds no reporter`);
        const r = await mw.scan({ ip: '203.0.113.66', helo: 'r1.attacker.example', mailFrom: 'fbl@r1.attacker.example', rcptTo: ['fbl@example.com'], raw });
        const auth = authResults(r.context)!;
        // The From: as a whole passes DMARC (each author does), but names no single domain.
        assert.equal(auth.dmarc.result, 'pass', shape);
        assert.equal(auth.fromDomain, '', shape);
        const detail = r.verdict.symbols.find((s) => s.name === 'FEEDBACK_REPORT')?.detail ?? '(no FEEDBACK_REPORT)';
        assert.match(detail, /^untrusted: abuse report by \(no From\) about <offer\.1@example\.com>: authentication found no single From: domain \(several addresses or none\), so none is the reporter's$/, `${shape}: ${detail}`);
      }
      // The same report From: one of them is the reporter's and counts: nothing else refused the two above.
      const single = await mw.scan({ ip: '203.0.113.66', helo: 'r1.attacker.example', mailFrom: 'fbl@r1.attacker.example', rcptTo: ['fbl@example.com'], raw: report('mallory@attacker.example') });
      assert.match(single.verdict.symbols.find((s) => s.name === 'FEEDBACK_REPORT')?.detail ?? '', /^counted:/);
    } finally {
      await mw.close();
    }
  });
});
