// A held message damaged on disk after it was held (its .eml cut short or
// emptied), and a record file that does not parse: neither is released, nor
// learnt as ham, and each is reported in one line naming the ref or the file.
import assert from 'node:assert/strict';
import { readFileSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileQuarantine, releaseMessage, ReleaseError } from '../lib/quarantine';
import { entry, quarantineWorld, RAW } from './support/quarantine';

describe('quarantine: a held message damaged on disk', () => {
  // The stand-in MTA listens in 27000-27999.
  const w = quarantineWorld('qdmg', 27000);

  it('put records the size of the held message', async () => {
    await new FileQuarantine(w.qdir).put(entry('SIZE000001'), RAW);
    assert.equal(JSON.parse(readFileSync(join(w.qdir, 'SIZE000001.json'), 'utf8')).size, RAW.length);
  });

  for (const [what, cut] of [['cut short', 10], ['emptied', 0]] as const) {
    it(`a message ${what} is not released, even with force, nor learnt as ham, and stays held`, async () => {
      const q = new FileQuarantine(w.qdir);
      await q.put(entry('DMG0000001'), RAW);
      truncateSync(join(w.qdir, 'DMG0000001.eml'), cut);
      let learnt = 0;
      await assert.rejects(
        releaseMessage(q, 'DMG0000001', { host: '127.0.0.1', port: w.mta.port, force: true, learnHam: async () => `learnt ${++learnt}` }),
        (err: unknown) => err instanceof ReleaseError && new RegExp(`^DMG0000001 is damaged.*DMG0000001\\.eml is ${cut} bytes, but it was ${RAW.length} bytes when held`).test((err as Error).message),
      );
      assert.equal(w.mta.messages.length, 0, 'nothing sent');
      assert.equal(learnt, 0, 'nothing learnt');
      assert.equal((await q.record('DMG0000001'))!.status, 'held');
    });
  }

  it('mailward quarantine release, release --force and release-approve refuse it in one line; show says damaged', async () => {
    await new FileQuarantine(w.qdir).put(entry('DMG0000002'), RAW);
    truncateSync(join(w.qdir, 'DMG0000002.eml'), 0);
    for (const argv of [['release'], ['release', '--force'], ['release-approve']]) {
      const r = await w.cli('quarantine', argv[0]!, 'DMG0000002', ...argv.slice(1));
      assert.equal(r.code, 1, `${argv.join(' ')}: ${r.err}`);
      assert.match(r.err, new RegExp(`^mailward quarantine: DMG0000002 is damaged, so it is not released \\(--force or not\\): DMG0000002\\.eml is 0 bytes, but it was ${RAW.length} bytes when held`));
      assert.equal(r.err.split('\n').length, 1, 'one line');
      assert.doesNotMatch(r.out, /released|ham learning|approved/);
    }
    assert.equal(w.mta.messages.length, 0, 'nothing sent');
    const shown = await w.cli('quarantine', 'show', 'DMG0000002');
    assert.equal(shown.code, 0);
    assert.match(shown.out, new RegExp(`^damaged: +DMG0000002\\.eml is 0 bytes, but it was ${RAW.length} bytes when held: it cannot be released$`, 'm'));
  });

  it('mailward quarantine list marks a damaged or missing message (text and --json); an intact one is not marked', async () => {
    const q = new FileQuarantine(w.qdir);
    for (const ref of ['LST0000001', 'LST0000002', 'LST0000003']) await q.put(entry(ref), RAW);
    truncateSync(join(w.qdir, 'LST0000001.eml'), 5);
    unlinkSync(join(w.qdir, 'LST0000003.eml'));
    const list = await w.cli('quarantine', 'list');
    assert.equal(list.code, 0, list.err);
    const line = (ref: string) => list.out.split('\n').find((l) => l.includes(ref)) ?? '';
    assert.match(line('LST0000001'), /LST0000001 +damaged /);
    assert.match(line('LST0000002'), /LST0000002 +held /);
    assert.match(line('LST0000003'), /LST0000003 +damaged /);
    const json = JSON.parse((await w.cli('quarantine', 'list', '--json')).out) as { ref: string; status: string; damaged?: string }[];
    const byRef = new Map(json.map((r) => [r.ref, r]));
    assert.equal(byRef.get('LST0000001')!.damaged, `LST0000001.eml is 5 bytes, but it was ${RAW.length} bytes when held`);
    assert.equal(byRef.get('LST0000001')!.status, 'held', 'the status is kept beside the mark');
    assert.equal(byRef.get('LST0000002')!.damaged, undefined);
    assert.equal(byRef.get('LST0000003')!.damaged, 'LST0000003.eml is missing');
  });

  it('a record written before sizes were kept is released as before; an intact message shows no damage', async () => {
    const q = new FileQuarantine(w.qdir);
    await q.put(entry('OLD0000001'), RAW);
    const path = join(w.qdir, 'OLD0000001.json');
    const { size: _size, ...old } = JSON.parse(readFileSync(path, 'utf8'));
    writeFileSync(path, JSON.stringify(old, null, 2));
    await q.put(entry('NEW0000001'), RAW);
    assert.doesNotMatch((await w.cli('quarantine', 'show', 'NEW0000001')).out, /damaged/);
    const r = await w.cli('quarantine', 'release', 'OLD0000001');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^released OLD0000001 to alice@example\.com/);
    assert.equal(w.mta.messages.length, 1);
  });

  it('a record file that is not valid JSON: show and release say which file in one line, and send nothing', async () => {
    await new FileQuarantine(w.qdir).put(entry('BAD0000001'), RAW);
    writeFileSync(join(w.qdir, 'BAD0000001.json'), '{"ref": "BAD0000001", "time": ');
    for (const argv of [['show'], ['release'], ['release-approve']]) {
      const r = await w.cli('quarantine', argv[0]!, 'BAD0000001');
      assert.equal(r.code, 1, `${argv[0]}: ${r.err}`);
      assert.equal(r.err.split('\n').length, 1, `${argv[0]}: one line, no stack trace: ${r.err}`);
      assert.doesNotMatch(r.err, /internal error/);
      assert.ok(r.err.startsWith(`mailward quarantine: ${join(w.qdir, 'BAD0000001.json')} is not a valid quarantine record (`), r.err);
    }
    assert.equal(w.mta.messages.length, 0);
    // A listing goes on with the other messages, and says which record it could not index.
    writeFileSync(join(w.qdir, 'BAD0000002.eml'), RAW);
    writeFileSync(join(w.qdir, 'BAD0000002.json'), '');
    const list = await w.cli('quarantine', 'list');
    assert.equal(list.code, 0, list.err);
    assert.match(list.out, /BAD0000001/, 'indexed when it was put: the index still lists it');
    assert.doesNotMatch(list.out, /BAD0000002/);
    assert.ok(list.err.startsWith(`warning: ${join(w.qdir, 'BAD0000002.json')} is not a valid quarantine record (`), list.err);
  });
});
