import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createMailward } from '../lib/index';

// Caches that outlive a message (host names of links, stems, look-alike answers) must not keep the
// message itself alive: V8 keeps a slice of a string as a view into the whole string.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function heapAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

describe('memory: nothing kept from a message once it is scanned', function () {
  this.timeout(120_000);
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'mw-retention-'));
    writeFileSync(join(dir, 'mailward.ini'), `[main]\ndata_dir = ${dir}\n[dns]\nservers = 127.0.0.1:9\ntimeout_ms = 200\n[tracking]\nenabled = false\n`);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a link to a new host in 1 MB of HTML does not keep the HTML in the host cache', async () => {
    const mailward = createMailward({ configDir: dir, modules: ['content'] });
    const filler = 'lorem ipsum dolor sit amet '.repeat(38_000); // ~1 MB of HTML each
    const scan = (i: number) =>
      mailward.scan({
        ip: '192.0.2.10',
        mailFrom: 'a@partner.example',
        rcptTo: ['bob@example.com'],
        raw: Buffer.from(
          `From: a@partner.example\r\nTo: bob@example.com\r\nSubject: s\r\nMIME-Version: 1.0\r\nContent-Type: text/html\r\n\r\n` +
            `<html><body><p>${filler}</p><a href="http://host-${i}-of-many-links.example.com/x">click</a></body></html>\r\n`,
        ),
      });
    try {
      await scan(-1);
      const before = heapAfterGc();
      const messages = 20;
      for (let i = 0; i < messages; i++) await scan(i);
      const grownMb = (heapAfterGc() - before) / 1e6;
      // Before: each message's HTML stayed reachable from its link's cache entry (~1 MB a message, 20 MB here).
      assert.ok(grownMb < messages / 4, `the heap grew by ${grownMb.toFixed(1)} MB over ${messages} messages of 1 MB`);
    } finally {
      await mailward.close();
    }
  });
});
