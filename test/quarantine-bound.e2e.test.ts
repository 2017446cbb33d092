// The quarantine's byte bound through a real Haraka: a message to be held when
// the quarantine is full is deferred (452, the sender retries) or delivered with
// its verdict headers ([quarantine] when_full), never rejected and never lost;
// the tracking row says what was done.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GTUBE } from '../lib/checks/builtin';
import { loadConfig } from '../lib/config/load';
import { createTrackingReader } from '../lib/tracking';
import type { TrackingReader, TrackingRow } from '../lib/tracking/types';
import { type HarakaInstance, removeDir, sendMail, simpleMessage, startHaraka } from './support/haraka';
import { waitFor } from './support/wait';

const REF = /ref ([0-9A-Z]{10})/;

/** A Haraka whose GTUBE scores 9 (the quarantine band, 8..10), its quarantine in `qdir`, with these [quarantine] keys. */
async function harakaWith(qdir: string, keys: string[]): Promise<{ haraka: HarakaInstance; reader: TrackingReader }> {
  const haraka = await startHaraka({
    plugins: [],
    files: {
      'mailward.ini': [
        '[main]', 'data_dir = data',
        '[dns]', 'servers = 127.0.0.1:9', 'timeout_ms = 300',
        '[scores]', 'GTUBE = 9',
        '[tracking]', 'flush_interval_ms = 50',
        '[quarantine]', `dir = ${qdir}`, ...keys,
      ].join('\n'),
    },
  });
  return { haraka, reader: createTrackingReader(loadConfig({ configDir: haraka.configDir }).shared.tracking) };
}

const spam = (subject: string, padding = '') => simpleMessage({ subject, body: `${GTUBE}\r\n${padding}` });

function rowFor(reader: TrackingReader, ref: string): Promise<TrackingRow> {
  return waitFor(`tracking row ${ref}`, () => reader.get(ref));
}

/** The held messages (REF.eml) in a quarantine directory. */
function held(qdir: string): string[] {
  return existsSync(qdir) ? readdirSync(qdir).filter((n) => n.endsWith('.eml')) : [];
}

describe('quarantine byte bound end to end', function () {
  this.timeout(90_000);
  let base: string;
  let haraka: HarakaInstance | undefined;
  let reader: TrackingReader | undefined;

  beforeEach(() => (base = mkdtempSync(join(tmpdir(), 'mailward-qbound-e2e-'))));
  afterEach(async () => {
    await reader?.close();
    await haraka?.stop();
    if (haraka) removeDir(haraka.dir);
    haraka = undefined;
    reader = undefined;
    rmSync(base, { recursive: true, force: true });
  });

  /** A quarantine directory already past a bound of 1 MB (the least max_mb): 1.2 MB of other files. */
  function fullQuarantine(): string {
    const qdir = join(base, 'quarantine');
    mkdirSync(qdir);
    writeFileSync(join(qdir, 'filler'), Buffer.alloc(1200 * 1024));
    return qdir;
  }

  it('when_full = defer (the default): 452 4.3.1 with the ref, nothing held or delivered, row soft_reject; a message larger than the bound itself is delivered', async () => {
    const qdir = fullQuarantine();
    ({ haraka, reader } = await harakaWith(qdir, ['max_mb = 1']));
    const result = await sendMail({ port: haraka.port, from: 'alice@example.net', to: ['bob@example.com'], raw: spam('hold me') });
    assert.equal(result.code, 452, result.response);
    assert.match(result.response, /^452 4\.3\.1 Insufficient storage for quarantine \(ref [0-9A-Z]{10}\)$/);
    const ref = REF.exec(result.response)![1]!;
    assert.deepEqual(held(qdir), [], 'not held');
    assert.deepEqual(haraka.delivered(), [], 'not delivered either: the sender retries');
    const row = await rowFor(reader, ref);
    assert.equal(row.action, 'soft_reject');
    assert.match(row.reason, /then deferred \(452\), not held: the quarantine is full/);
    assert.match(haraka.logs(), /mailward quarantine: full: .*\[quarantine\] max_mb/);

    // Larger than the whole bound: it could never be held, and deferring it would only delay its bounce.
    const big = await sendMail({ port: haraka.port, from: 'alice@example.net', to: ['bob@example.com'], raw: spam('too big to hold', `${'x'.repeat(76)}\r\n`.repeat(16000)) });
    assert.equal(big.code, 250, big.response);
    const delivered = await waitFor('the large message delivered', () => haraka!.delivered()[0]);
    const text = readFileSync(delivered, 'utf8');
    assert.match(text, /^X-Mailward-Status: quarantine /m);
    assert.match(text, /^Subject: too big to hold/m);
    const bigRef = /^X-Mailward-Ref: (\S+)/m.exec(text)![1]!;
    assert.equal((await rowFor(reader, bigRef)).action, 'add_header');
    assert.deepEqual(held(qdir), []);
  });

  it('when_full = deliver: 250, delivered with its verdict headers, row add_header', async () => {
    const qdir = fullQuarantine();
    ({ haraka, reader } = await harakaWith(qdir, ['max_mb = 1', 'when_full = deliver']));
    const result = await sendMail({ port: haraka.port, from: 'alice@example.net', to: ['bob@example.com'], raw: spam('deliver me') });
    assert.equal(result.code, 250, result.response);
    assert.doesNotMatch(result.response, /held for review/);
    const delivered = await waitFor('delivered', () => haraka!.delivered()[0]);
    const text = readFileSync(delivered, 'utf8');
    assert.match(text, /^X-Mailward-Status: quarantine score=9 /m);
    const ref = /^X-Mailward-Ref: (\S+)/m.exec(text)![1]!;
    assert.deepEqual(held(qdir), []);
    const row = await rowFor(reader, ref);
    assert.equal(row.action, 'add_header');
    assert.match(row.reason, /then delivered with its verdict headers, not held: the quarantine is full/);
    assert.match(haraka.logs(), /quarantine cannot hold ref [0-9A-Z]{10}, delivering it instead \(\[quarantine\] when_full = deliver\)/);
  });

  it('below the bound, messages are held as before', async () => {
    const qdir = join(base, 'quarantine');
    ({ haraka, reader } = await harakaWith(qdir, ['max_mb = 1']));
    const result = await sendMail({ port: haraka.port, from: 'alice@example.net', to: ['bob@example.com'], raw: spam('hold me') });
    assert.equal(result.code, 250, result.response);
    assert.match(result.response, /held for review/);
    assert.equal(held(qdir).length, 1);
  });

  it('an unwritable quarantine directory: the message is delivered with its verdict headers, never lost', async () => {
    // A regular file where the directory's parent should be: every write fails (root ignores modes).
    writeFileSync(join(base, 'not-a-directory'), 'x');
    const qdir = join(base, 'not-a-directory', 'quarantine');
    ({ haraka, reader } = await harakaWith(qdir, []));
    const result = await sendMail({ port: haraka.port, from: 'alice@example.net', to: ['bob@example.com'], raw: spam('nowhere to hold') });
    assert.equal(result.code, 250, result.response);
    const delivered = await waitFor('delivered', () => haraka!.delivered()[0]);
    const text = readFileSync(delivered, 'utf8');
    assert.match(text, /^X-Mailward-Status: quarantine /m);
    const ref = /^X-Mailward-Ref: (\S+)/m.exec(text)![1]!;
    assert.equal((await rowFor(reader, ref)).action, 'add_header');
    assert.match(haraka.logs(), /delivering it instead \(the store failed\)/);
  });

  it('a real full disk (ENOSPC, a small tmpfs) is handled as when_full: deferred with 452, nothing left behind', async function () {
    const qdir = join(base, 'tmpfs');
    mkdirSync(qdir);
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', qdir], { stdio: 'ignore' });
    } catch {
      // Mounting needs root with CAP_SYS_ADMIN; the unit tests cover ENOSPC without it.
      this.skip();
    }
    try {
      // Fill the file system to the last block (tmpfs counts pages).
      for (let i = 0; ; i++) {
        try {
          writeFileSync(join(qdir, `filler${i}`), Buffer.alloc(4096));
        } catch {
          break;
        }
      }
      ({ haraka, reader } = await harakaWith(qdir, []));
      const result = await sendMail({ port: haraka.port, from: 'alice@example.net', to: ['bob@example.com'], raw: spam('disk full') });
      assert.equal(result.code, 452, result.response);
      assert.match(result.response, /^452 4\.3\.1 Insufficient storage for quarantine \(ref [0-9A-Z]{10}\)$/);
      const ref = REF.exec(result.response)![1]!;
      assert.deepEqual(haraka.delivered(), []);
      assert.deepEqual(readdirSync(qdir).filter((n) => n.startsWith(ref)), [], 'nothing of it left in the quarantine');
      assert.equal((await rowFor(reader, ref)).action, 'soft_reject');
      assert.match(haraka.logs(), /the disk of .* is full \(ENOSPC\)/);
    } finally {
      await reader?.close();
      reader = undefined;
      await haraka?.stop();
      try {
        execFileSync('umount', [qdir], { stdio: 'ignore' });
      } catch {
        execFileSync('umount', ['-l', qdir], { stdio: 'ignore' }); // Still busy a moment after Haraka ended: detach.
      }
    }
  });
});
