// The MTA's own quarantine purge: retention_days holds whatever the rules do.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../lib/config/load';
import { closeSharedIndexes, openQuarantine } from '../lib/quarantine';
import { Runtime } from '../lib/runtime';
import { entry, RAW } from './support/quarantine';
import { waitFor } from './support/wait';

const DAY = 86_400_000;

describe('quarantine retention in the MTA', function () {
  this.timeout(30_000);
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'mw-q-retention-'))));
  afterEach(async () => {
    await closeSharedIndexes();
    rmSync(dir, { recursive: true, force: true });
  });

  it('purges messages past retention_days with the rules module switched off ([main] enabled = false)', async () => {
    writeFileSync(join(dir, 'mailward.ini'), `[main]\ndata_dir = ${dir}\n[dns]\nservers = 127.0.0.1:9\n[tracking]\nenabled = false\n[quarantine]\nretention_days = 30\n`);
    // A purge every 60 ms, so that the test need not wait an hour.
    writeFileSync(join(dir, 'mailward.rules.ini'), '[main]\nenabled = false\n[quarantine]\npurge_interval_minutes = 0.001\n');
    const config = loadConfig({ configDir: dir });
    const q = openQuarantine(config.shared);
    await q.put(entry('OLD0000001', { time: new Date(Date.now() - 40 * DAY).toISOString() }), RAW);
    await q.put(entry('NEW0000001'), RAW);
    const runtime = new Runtime(config);
    try {
      await waitFor('the expired message purged', async () => ((await q.get('OLD0000001')) === null ? true : undefined), 10_000);
      assert.ok(await q.get('NEW0000001'), 'a message within retention stays');
    } finally {
      await runtime.close();
      await q.close();
    }
  });
});
