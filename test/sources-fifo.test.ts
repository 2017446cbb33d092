// `mailward learn`/`scan` walk paths the operator names, often as root over users' Maildirs: a user can
// swap a message file for a FIFO between the walk's stat and its read. It must be refused, not waited on.
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readMessages } from '../lib/cli/sources';

describe('cli sources: a message file swapped for a FIFO after the walk looked at it', () => {
  let dir: string;
  let writer: ChildProcess | undefined;
  const fs = require('node:fs') as typeof import('node:fs');
  const statSync0 = fs.statSync;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'mailward-sources-fifo-'));
  });
  afterEach(() => {
    (fs as { statSync: unknown }).statSync = statSync0;
    // A writer still waiting for a reader (the new code never opened the FIFO to read it) is let go.
    try {
      closeSync(openSync(join(dir, 'msg.eml'), constants.O_RDONLY | constants.O_NONBLOCK));
    } catch {
      // gone
    }
    writer?.kill();
    rmSync(dir, { recursive: true, force: true });
  });

  it('is said to be unreadable (not a regular file), not read nor waited on', function () {
    this.timeout(30_000);
    const file = join(dir, 'msg.eml');
    writeFileSync(file, 'Subject: hi\r\n\r\nhello\r\n');
    // The swap, right after the walk's stat saw a regular file.
    (fs as { statSync: unknown }).statSync = ((path: string, ...rest: unknown[]) => {
      const s = (statSync0 as (...a: unknown[]) => import('node:fs').Stats)(path, ...rest);
      if (path === file && s.isFile()) {
        unlinkSync(file);
        execFileSync('mkfifo', [file]);
        // A writer that lets an old, blocking open for reading return (with nothing to read) instead of hanging the test.
        writer = spawn('sh', ['-c', 'exec 3>"$1"', 'sh', file], { stdio: 'ignore' });
      }
      return s;
    }) as typeof statSync0;
    const entries = [...readMessages([file])];
    (fs as { statSync: unknown }).statSync = statSync0;
    assert.deepEqual(entries.map((e) => e.kind), ['unreadable'], JSON.stringify(entries));
    assert.match((entries[0] as { reason: string }).reason, /FIFO/);
  });
});
