// Releases that must deliver a message once: two at the same time, a status
// that cannot be written after the MTA took the message, a delete or purge
// during a release, the locks a crashed release leaves behind, and a copy the
// MTA held again instead of delivering it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../lib/cli/main';
import { closeSharedIndexes, FileQuarantine, releaseMessage, ReleaseError, type QuarantineRecord } from '../lib/quarantine';
import { ClaimBusyError, machineIdentity, takeClaim } from '../lib/quarantine/claim';
import { heldRefOfReply, smtpReplyText } from '../lib/score/verdict';
import type { SinkOptions, SmtpSink } from './support/smtp-sink';
import { capture, entry, RAW, releaseSink } from './support/quarantine';

const DAY = 86_400_000;

/** The stand-in MTA listens in 28000-28999 (the range these tests may use on a shared machine). */
const sink = (options: SinkOptions = {}) => releaseSink(28000, options);

/** A gate the sink waits at before its first 250: the test acts while a release is in flight. */
function gate() {
  let open!: () => void;
  let reach!: () => void;
  let first = true;
  const opened = new Promise<void>((r) => (open = r));
  const reached = new Promise<void>((r) => (reach = r));
  return {
    reached,
    open,
    beforeReply: async () => {
      if (!first) return;
      first = false;
      reach();
      await opened;
    },
  };
}

/** A store whose status writes fail like a full disk would, while `full` is set (the files stay as they are). */
class FullDiskQuarantine extends FileQuarantine {
  full = true;
  override async update(ref: string, changes: Partial<Pick<QuarantineRecord, 'status' | 'statusTime' | 'error'>>): Promise<QuarantineRecord> {
    if (this.full) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    return super.update(ref, changes);
  }
}

describe('quarantine release delivers once', () => {
  let dir: string;
  let mta: SmtpSink | undefined;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'mailward-qrel-'))));
  afterEach(async () => {
    await mta?.stop();
    mta = undefined;
    await closeSharedIndexes();
    rmSync(dir, { recursive: true, force: true });
  });

  it('two releases of one message at the same time: one delivers, the other is refused before sending', async () => {
    const g = gate();
    mta = await sink({ beforeReply: g.beforeReply });
    const q = new FileQuarantine(dir);
    await q.put(entry('RACE000001'), RAW);
    const first = releaseMessage(q, 'RACE000001', { host: '127.0.0.1', port: mta.port });
    await g.reached;
    // The first is in flight (its MTA has the message, the 250 has not come back).
    await assert.rejects(
      releaseMessage(new FileQuarantine(dir), 'RACE000001', { host: '127.0.0.1', port: mta.port }),
      (err: unknown) => err instanceof ReleaseError && /^RACE000001 is locked \(release by pid \d+ on .* since .*\); try again once it is done: not sent$/.test((err as Error).message),
    );
    g.open();
    const done = await first;
    assert.equal(done.record.status, 'released');
    assert.equal(mta.messages.length, 1, 'delivered once');
    assert.equal((await q.record('RACE000001'))!.status, 'released');
    assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('RACE000001.') && !/\.(eml|json)$/.test(f)), [], 'no lock left');
    await assert.rejects(releaseMessage(q, 'RACE000001', { host: '127.0.0.1', port: mta.port }), /already released/);
    assert.equal(mta.messages.length, 1);
  });

  it('a delete or purge during a release is refused (the release records its status), and works after it', async () => {
    const g = gate();
    mta = await sink({ beforeReply: g.beforeReply });
    const q = new FileQuarantine(dir);
    await q.put(entry('BUSY000001', { time: new Date(Date.now() - 40 * DAY).toISOString() }), RAW);
    const release = releaseMessage(q, 'BUSY000001', { host: '127.0.0.1', port: mta.port });
    await g.reached;
    await assert.rejects(q.delete('BUSY000001'), /BUSY000001 is locked \(release by pid/);
    assert.deepEqual(await q.purge(Date.now(), 30), [], 'purge leaves it for next time');
    g.open();
    assert.equal((await release).record.status, 'released');
    assert.deepEqual(await q.purge(Date.now(), 30), ['BUSY000001']);
    assert.equal(await q.get('BUSY000001'), null);
  });

  it('a lock left by a crashed release is taken over (its process gone, or old), with a warning; a live one is not', async () => {
    mta = await sink();
    const q = new FileQuarantine(dir);
    const lock = (ref: string, fields: object) => writeFileSync(join(dir, `${ref}.lock`), JSON.stringify({ pid: process.pid, host: hostname(), boot: machineIdentity(), time: new Date().toISOString(), action: 'release', ...fields }));
    const gone = spawnSync(process.execPath, ['-e', '0']).pid!;

    await q.put(entry('LIVE000001'), RAW);
    lock('LIVE000001', { host: 'other-node.test', pid: 4242 });
    await assert.rejects(releaseMessage(q, 'LIVE000001', { host: '127.0.0.1', port: mta.port }), /LIVE000001 is locked \(release by pid 4242 on other-node\.test since/);
    assert.equal((await q.record('LIVE000001'))!.status, 'held');
    assert.ok(existsSync(join(dir, 'LIVE000001.lock')), "another's lock is left alone");
    assert.equal(mta.messages.length, 0);

    await q.put(entry('STALE00001'), RAW);
    lock('STALE00001', { pid: gone });
    const taken = await releaseMessage(q, 'STALE00001', { host: '127.0.0.1', port: mta.port });
    assert.match(taken.warnings.join('\n'), new RegExp(`took over a stale lock of STALE00001 \\(release by pid ${gone} .*: its process ${gone} is gone\\); .*may have gone out already`));

    await q.put(entry('STALE00002'), RAW);
    lock('STALE00002', { host: 'other-node.test', pid: 4242, time: new Date(Date.now() - 20 * 60_000).toISOString() });
    assert.match((await releaseMessage(q, 'STALE00002', { host: '127.0.0.1', port: mta.port })).warnings.join(), /older than 15 minutes/);
    assert.equal(mta.messages.length, 2);
    assert.ok(!existsSync(join(dir, 'STALE00001.lock')) && !existsSync(join(dir, 'STALE00002.lock')));
  });

  it('a lock of another machine with the same host name (nodes sharing the directory) is not judged by its pid, only by its age', async () => {
    // A pid that is dead here: on the node that wrote the lock, it may be a release at work.
    const gone = spawnSync(process.execPath, ['-e', '0']).pid!;
    const lock = (fields: object) => writeFileSync(join(dir, 'SHARED0001.lock'), JSON.stringify({ pid: gone, host: hostname(), time: new Date().toISOString(), action: 'release', ...fields }));

    lock({ boot: 'another-machine' });
    await assert.rejects(takeClaim(dir, 'SHARED0001', 'release'), (err: unknown) => err instanceof ClaimBusyError && /SHARED0001 is locked \(release by pid \d+ on /.test((err as Error).message));
    assert.ok(existsSync(join(dir, 'SHARED0001.lock')), 'the live lock of the other machine is left alone');

    // Written by a mailward that kept no identity: it may be another node's, so it is not pid-checked either (where this machine has one).
    if (machineIdentity()) {
      lock({});
      await assert.rejects(takeClaim(dir, 'SHARED0001', 'release'), ClaimBusyError);
    }

    // Old enough, it is stale whoever wrote it.
    lock({ boot: 'another-machine', time: new Date(Date.now() - 16 * 60_000).toISOString() });
    const old = await takeClaim(dir, 'SHARED0001', 'release');
    assert.match(old.tookOver!.reason, /older than 15 minutes/);
    await old.release();

    // Written on this machine (same host, same boot and pid namespace) by a process that is gone: stale now.
    lock({ boot: machineIdentity() });
    const taken = await takeClaim(dir, 'SHARED0001', 'release');
    assert.equal(taken.tookOver!.reason, `its process ${gone} is gone`);
    assert.equal(JSON.parse(readFileSync(join(dir, 'SHARED0001.lock'), 'utf8')).boot, machineIdentity(), 'a new lock records the identity');
    await taken.release();
    assert.ok(!existsSync(join(dir, 'SHARED0001.lock')));
  });

  it('delivered but the status cannot be written: said so, never sent again, recorded by the next listing', async () => {
    mta = await sink();
    const q = new FullDiskQuarantine(dir);
    await q.put(entry('FULL000001'), RAW);
    await assert.rejects(releaseMessage(q, 'FULL000001', { host: '127.0.0.1', port: mta.port }), (err: unknown) => {
      assert.ok(err instanceof ReleaseError);
      assert.match(err.message, /^FULL000001 delivered \(250 .*Kept as message 1\) to alice@example\.com via 127\.0\.0\.1:\d+, but its status could not be recorded: ENOSPC: no space left on device, write\. It will not be sent again; .*mailward quarantine list/);
      return true;
    });
    assert.equal(mta.messages.length, 1);
    assert.equal((await q.record('FULL000001'))!.status, 'held', 'the record could not change');

    // Retried while the disk is still full: refused, not sent.
    await assert.rejects(releaseMessage(q, 'FULL000001', { host: '127.0.0.1', port: mta.port }), /FULL000001 was delivered at .*, but its status is still not recorded \(ENOSPC.*\): not sent again/);
    await assert.rejects(releaseMessage(q, 'FULL000001', { host: '127.0.0.1', port: mta.port, force: true }), /not sent again/, 'not even with --force');
    assert.equal(mta.messages.length, 1);

    // Room again: the next listing records it, and a release is the ordinary "already released".
    q.full = false;
    assert.deepEqual((await q.list({ status: 'all' })).map((r) => [r.ref, r.status]), [['FULL000001', 'released']]);
    assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('FULL000001.') && !/\.(eml|json)$/.test(f)), []);
    await assert.rejects(releaseMessage(q, 'FULL000001', { host: '127.0.0.1', port: mta.port }), /already released at/);
    assert.equal(mta.messages.length, 1);
  });

  it('mailward quarantine release: a status write failing after delivery exits 1 with one line, and the retry sends nothing', async () => {
    const base = dir;
    const configDir = join(base, 'config');
    mkdirSync(configDir);
    const qdir = join(base, 'data', 'quarantine');
    // The status write (REF.json.tmp, then a rename) fails once the MTA has the message.
    mta = await sink({ beforeReply: async () => mkdirSync(join(qdir, 'CLI0000001.json.tmp')) });
    writeFileSync(join(configDir, 'mailward.ini'), `[quarantine]\nrelease_port = ${mta.port}\n`);
    await new FileQuarantine(qdir).put(entry('CLI0000001'), RAW);
    const cli = async (...argv: string[]) => {
      const io = capture();
      const code = await main([...argv, '--config', configDir], io);
      return { code, out: io.outText(), err: io.errText() };
    };

    const r = await cli('quarantine', 'release', 'CLI0000001');
    assert.equal(r.code, 1);
    assert.match(r.err, /^mailward quarantine: CLI0000001 delivered \(250 .*Kept as message 1\) to alice@example\.com via 127\.0\.0\.1:\d+, but its status could not be recorded: EISDIR/);
    assert.doesNotMatch(r.err, /internal error|\n\s+at /, 'no stack trace');
    assert.equal(r.err.split('\n').length, 1);

    const again = await cli('quarantine', 'release', 'CLI0000001');
    assert.equal(again.code, 1);
    assert.match(again.err, /CLI0000001 was delivered at .* not sent again/);
    assert.equal(mta.messages.length, 1);
    assert.match((await cli('quarantine', 'show', 'CLI0000001')).out, /^delivered: .*but the status could not be recorded/m);

    rmdirSync(join(qdir, 'CLI0000001.json.tmp'));
    assert.match((await cli('quarantine', 'list', '--all')).out, /CLI0000001 +released/);
    assert.match((await cli('quarantine', 'release', 'CLI0000001')).err, /already released/);
    assert.equal(mta.messages.length, 1);
  });
});

describe('a release the MTA holds again', () => {
  it("is recognised from the verdict's own reply, whatever the MTA puts around it", () => {
    const verdict = { action: 'quarantine' as const, score: 9, ref: 'Q7K2M9XA4F', reason: 'score 9', groups: {}, symbols: [{ name: 'BAYES_SPAM', score: 9, group: 'content', detail: '' }] };
    const text = smtpReplyText(verdict);
    assert.equal(heldRefOfReply(`250 ${text}`), 'Q7K2M9XA4F');
    assert.equal(heldRefOfReply(`250 2.0.0 ${text}`), 'Q7K2M9XA4F');
    assert.equal(heldRefOfReply(`250 ${smtpReplyText({ ...verdict, action: 'accept' })}`), null);
    assert.equal(heldRefOfReply('250 Kept as message 1'), null);
  });
});
