// Red team 4: one recipient of ONE message from our user got the user suspended by sending the
// same complaint from rotating reporter (sub)domains it controls, each passing SPF: the duplicate
// key of a report included the reporter domain. Full createMailward(): real auth (SPF served by a
// loopback DNS server), outbound module, Redis state (a prefix of its own), shipped defaults
// otherwise (reporters empty, require_authenticated = true, min_messages 1000, 0.3 %).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMailward } from '../lib';
import { startDnsServer, type TestDnsServer } from './support/dns-server';
import { deleteRedisKeys } from './support/redis';
import { arfReport, recordedBy, uniquePrefix } from './outbound/support';

describe('outbound: complaints about one message from rotating reporter domains', function () {
  this.timeout(60_000);
  let dns: TestDnsServer;
  let dir: string;
  const prefix = uniquePrefix('reporters');
  const N = 4;
  before(async () => {
    const zones: Record<string, { TXT: string[] }> = { '_dmarc.attacker.example': { TXT: ['v=DMARC1; p=none'] } };
    for (let i = 1; i <= N; i++) zones[`r${i}.attacker.example`] = { TXT: ['v=spf1 ip4:203.0.113.66 -all'] };
    dns = await startDnsServer(zones);
    dir = mkdtempSync(join(tmpdir(), 'mw-complaint-reporters-'));
    writeFileSync(join(dir, 'mailward.ini'), `[main]\nnode_name = t\ndata_dir = ${dir}\n[dns]\nservers = ${dns.server}\ntimeout_ms = 1000\n[state]\nbackend = redis\nredis_url = redis://127.0.0.1:6379\nprefix = ${prefix}\ntimeout_ms = 2000\n[tracking]\nenabled = false\n`);
    writeFileSync(join(dir, 'mailward.outbound.ini'), `[complaints]\naddresses = fbl@example.com\n`);
  });
  after(async () => { await dns.stop(); rmSync(dir, { recursive: true, force: true }); await deleteRedisKeys(prefix); });

  it('counts one complaint for the one recipient, whatever domains report it; the sender is not suspended', async () => {
    const mw = createMailward({ configDir: dir, modules: ['builtin', 'auth', 'backscatter', 'outbound'] });
    try {
      const mid = '<spring.1@example.com>';
      const out = await mw.scan({ ip: '192.0.2.25', helo: 'laptop', mailFrom: 'alice@example.com', authUser: 'alice', relaying: true, rcptTo: ['mallory@attacker.example'],
        raw: `From: Alice <alice@example.com>\r\nTo: mallory@attacker.example\r\nSubject: Lunch?\r\nDate: Tue, 11 Mar 2025 09:57:58 +0000\r\nMessage-ID: ${mid}\r\n\r\nLunch on Friday?\r\n` });
      assert.equal(out.verdict.action, 'accept');
      await recordedBy(prefix, mid, 'alice');
      const details: string[] = [];
      for (let i = 1; i <= N; i++) {
        const reporter = `fbl@r${i}.attacker.example`;
        // Odd ones name the recipient, even ones redact it: neither makes a report new.
        const raw = arfReport({ reporter, rcpt: i % 2 ? 'mallory@attacker.example' : '', mid }).replace(/\r?\n/g, '\r\n');
        const r = await mw.scan({ ip: '203.0.113.66', helo: `r${i}.attacker.example`, mailFrom: reporter, rcptTo: ['fbl@example.com'], raw });
        details.push(r.verdict.symbols.find((s) => s.name === 'FEEDBACK_REPORT')?.detail ?? '(no FEEDBACK_REPORT)');
        assert.equal(r.verdict.symbols.find((s) => s.name === 'OUTBOUND_SENDER_SUSPENDED'), undefined, details.join('\n'));
      }
      assert.match(details[0]!, /^counted:/, details.join('\n'));
      for (const d of details.slice(1)) assert.match(d, /^duplicate:.*already counted/, details.join('\n'));
      const next = await mw.scan({ ip: '192.0.2.25', helo: 'laptop', mailFrom: 'alice@example.com', authUser: 'alice', relaying: true, rcptTo: ['bob@partner.example'],
        raw: 'From: Alice <alice@example.com>\r\nTo: bob@partner.example\r\nSubject: hi\r\nMessage-ID: <n.2@example.com>\r\n\r\nhi\r\n' });
      assert.equal(next.verdict.action, 'accept', next.verdict.reason);
    } finally {
      await mw.close();
    }
  });
});
