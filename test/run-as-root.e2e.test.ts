// Haraka started as root with smtp.ini user/group (to bind port 25) and the
// `mailward` CLI run as root on the same data: whoever creates a file first,
// the other must still write it. Haraka runs plugins' register() as root
// (before listening), then drops privileges; the CLI stays root. Only root can
// test this: the tests skip otherwise.
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Classifier } from '../lib/checks/content/classifier';
import { SqliteBayesStore } from '../lib/checks/content/store';
import { main } from '../lib/cli/main';
import { loadConfig } from '../lib/config/load';
import { closeSharedIndexes } from '../lib/quarantine/files';
import { createTrackingReader } from '../lib/tracking';
import type { TrackingReader } from '../lib/tracking/types';
import { freePort, type HarakaInstance, removeDir, sendMail, simpleMessage, startHaraka } from './support/haraka';
import { waitFor } from './support/wait';

// nobody:nogroup on Debian and Ubuntu.
const MTA_UID = 65534;
const MTA_GID = 65534;
const silent = { debug() {}, info() {}, warn() {}, error() {} };
const REF = /ref ([0-9A-Z]{10})/;
/** What a write refused for want of permission looks like in Haraka's log (errno, SQLite, or our warning). */
const PERMISSION_TROUBLE = /EACCES|EPERM|permission denied|readonly database|SQLITE_READONLY|SQLITE_CANTOPEN|unable to open database|chown /i;

/** Every file and directory under `dir` not owned by the MTA's user and group. */
function notOwnedByMta(dir: string): string[] {
  const wrong: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const s = statSync(path);
    if (name === 'mailbox') continue; // The test's delivery, made by the test.
    if (s.uid !== MTA_UID || s.gid !== MTA_GID) wrong.push(`${path} (${s.uid}:${s.gid})`);
    if (s.isDirectory()) wrong.push(...notOwnedByMta(path));
  }
  return wrong;
}

describe('Haraka started as root with smtp.ini user/group, the CLI run as root (needs root: skipped otherwise)', function () {
  this.timeout(120_000);
  let base: string;
  let dir: string;
  let port: number;
  let haraka: HarakaInstance | undefined;
  let reader: TrackingReader | undefined;
  const cli = async (...argv: string[]) => {
    const lines: string[] = [];
    const code = await main([...argv, '--config', join(dir, 'config')], { out: (l) => lines.push(l), err: (l) => lines.push(l) });
    return { code, text: lines.join('\n') };
  };

  before(function () {
    if (process.getuid?.() !== 0) this.skip(); // Needs root: only root can start Haraka as one user and drop to another.
  });

  beforeEach(async () => {
    base = mkdtempSync(join(tmpdir(), 'mailward-root-e2e-'));
    chmodSync(base, 0o755); // The MTA's user must reach its data below.
    dir = join(base, 'haraka');
    // What the operator sets up: the MTA's data directory, owned by the MTA's user. Nothing in it yet.
    // And Haraka's own queue directory, and the test's mailbox (the demo store makes it in register(), as root).
    for (const name of ['data', 'queue', 'data/mailbox']) {
      mkdirSync(join(dir, name), { recursive: true });
      chownSync(join(dir, name), MTA_UID, MTA_GID);
    }
    mkdirSync(join(dir, 'config'));
    port = await freePort();
    for (const [name, text] of Object.entries(files())) writeFileSync(join(dir, 'config', name), text);
  });
  afterEach(async () => {
    nodes = 0;
    await reader?.close();
    reader = undefined;
    await closeSharedIndexes();
    await haraka?.stop();
    haraka = undefined;
    removeDir(base);
  });

  /** nodes = 0: one process; more: Haraka's cluster (its master runs register() as root and never drops). */
  let nodes = 0;
  function files(): Record<string, string> {
    return {
      'smtp.ini': `[main]\nlisten=127.0.0.1:${port}\nnodes=${nodes}\nuser=nobody\ngroup=nogroup\n\n[headers]\nmax_lines=1000\nmax_received=100\n`,
      'mailward.ini': [
        '[main]', 'data_dir = data',
        '[dns]', 'servers = 127.0.0.1:9', 'timeout_ms = 300',
        '[tracking]', 'flush_interval_ms = 50',
        // Releases go back through this Haraka, which must recognise the release stamp (release.key).
        '[quarantine]', `release_port = ${port}`,
      ].join('\n') + '\n',
      // Held (9: the quarantine band) and learnt as spam at SMTP time.
      'mailward.content.rules': 'body TRAP_HOLD "trapholdword"\nscore TRAP_HOLD 9\ndescribe TRAP_HOLD hold\n',
      'mailward.content.ini': '[autolearn]\nspam_symbols = TRAP_HOLD\n',
    };
  }

  async function start(): Promise<HarakaInstance> {
    haraka = await startHaraka({ dir, port, plugins: ['mailward/plugins/rules', 'mailward/plugins/content'], files: files() });
    reader = createTrackingReader(loadConfig({ configDir: haraka.configDir }).shared.tracking);
    await waitFor('Haraka to drop privileges', () => /New uid: 65534/.test(haraka!.logs()));
    return haraka;
  }

  async function spamLearnt(): Promise<number> {
    const c = new Classifier(new SqliteBayesStore(join(dir, 'data', 'bayes.sqlite')), silent);
    await c.ready();
    const n = c.model.nspam;
    await c.close();
    return n;
  }

  /** One held (and autolearnt) message and one delivered: both tracked, nothing lost. */
  async function mailFlows(h: HarakaInstance, spamBefore: number, delivered: number): Promise<string> {
    const held = await sendMail({ port: h.port, from: 'alice@example.net', to: ['bob@example.com'], raw: simpleMessage({ subject: 'Chairs', body: `trapholdword our garden chairs are on sale, made of ${['oak', 'teak', 'pine', 'elm'][spamBefore]}` }) });
    assert.match(held.response, /held for review/, `${held.response}\n${h.logs().split('\n').filter((l) => /mailward|ERROR|WARN/.test(l)).slice(-30).join('\n')}`);
    const heldRef = REF.exec(held.response)![1]!;
    const ok = await sendMail({ port: h.port, from: 'carol@example.net', to: ['bob@example.com'], raw: simpleMessage({ subject: 'Lunch', body: 'See you at noon.' }) });
    assert.equal(ok.code, 250, ok.response);
    await waitFor(`tracking row ${heldRef}`, () => reader!.get(heldRef));
    await waitFor('the delivered message tracked', async () => (await reader!.find({ from: 'carol@example.net' })).length === delivered || undefined);
    assert.ok(readdirSync(join(dir, 'data', 'quarantine')).includes(`${heldRef}.eml`), 'held in the quarantine');
    await waitFor('the held message autolearnt as spam', async () => (await spamLearnt()) === spamBefore + 1 || undefined);
    return heldRef;
  }

  it('the CLI creates the Bayes model and the quarantine first: the MTA (user nobody) writes them, and reads the release key', async () => {
    const eml = join(base, 'spam.eml');
    writeFileSync(eml, simpleMessage({ subject: 'Pills', body: 'cheap pills cheap pills buy now' }));
    const learnt = await cli('learn', '--spam', eml);
    assert.equal(learnt.code, 0, learnt.text);
    const listed = await cli('quarantine', 'list');
    assert.equal(listed.code, 0, listed.text);
    await closeSharedIndexes();

    const h = await start();
    const heldRef = await mailFlows(h, 1, 1);

    // Released as root: the stamp's key is made now, by root, and the MTA must read it to let the copy through.
    const before = h.delivered().length;
    const released = await cli('quarantine', 'release', heldRef);
    assert.equal(released.code, 0, released.text);
    await waitFor('the released copy delivered, not held again', () => h.delivered().length > before || undefined);
    await closeSharedIndexes();

    assert.doesNotMatch(h.logs(), PERMISSION_TROUBLE);
    assert.deepEqual(notOwnedByMta(join(dir, 'data')), [], 'everything under the data directory is the MTA user\'s');
  });

  it('the MTA creates everything first (its register() runs as root, before the drop): mail flows, the files are the MTA user\'s', async () => {
    const h = await start();
    await mailFlows(h, 0, 1);
    // The CLI as root on the same files, then the MTA again.
    const listed = await cli('quarantine', 'usage');
    assert.equal(listed.code, 0, listed.text);
    await closeSharedIndexes();
    await mailFlows(h, 1, 2);
    assert.doesNotMatch(h.logs(), PERMISSION_TROUBLE);
    assert.deepEqual(notOwnedByMta(join(dir, 'data')), [], 'everything under the data directory is the MTA user\'s');
  });

  it('in cluster mode (nodes = 2): the master, root for good, makes the files first; the workers (user nobody) write them', async () => {
    nodes = 2;
    for (const [name, text] of Object.entries(files())) writeFileSync(join(dir, 'config', name), text);
    const h = await start();
    await mailFlows(h, 0, 1);
    await mailFlows(h, 1, 2);
    assert.doesNotMatch(h.logs(), PERMISSION_TROUBLE);
    assert.deepEqual(notOwnedByMta(join(dir, 'data')), [], 'everything under the data directory is the MTA user\'s');
  });
});
