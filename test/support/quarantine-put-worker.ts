// A separate OS process holding mail in a shared quarantine directory, as a
// Haraka cluster worker does (test/quarantine-shared-bound.test.ts forks it).
// argv: dir, maxBytes, index directory, mode (`put N PREFIX` | `putlate N PREFIX` | `hang REF`).
// `putlate` opens the count only at 'go', so two workers open it at the same moment.
// Messages from the parent: 'go'. To the parent: 'ready', 'hanging', { held, full }.
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { FileQuarantine, isQuarantineFull, SqliteQuarantineIndex } from '../../lib/quarantine';

const [dir, maxBytes, indexDir, mode, arg1, arg2] = process.argv.slice(2) as [string, string, string, string, string, string?];
const RAW = Buffer.from('From: Bob <bob@partner.test>\r\nTo: alice@example.com\r\nSubject: hi\r\n\r\nHello Alice\r\n');
const send = (message: unknown) => process.send!(message);

function entry(ref: string) {
  return { ref, time: new Date().toISOString(), mailFrom: 'bob@partner.test', rcptTo: ['alice@example.com'], subject: ref, remoteIp: '192.0.2.1', score: 9, reason: 'test', symbols: [] };
}

/** Every file write hangs for good (after telling the parent): a put stopped between its reservation and its files. */
async function hangWrites(): Promise<void> {
  const probe = await open(join(indexDir, 'probe'), 'w');
  const proto = Object.getPrototypeOf(probe) as FileHandle;
  await probe.close();
  proto.writeFile = () => {
    send('hanging');
    return new Promise<void>(() => {});
  };
}

async function main(): Promise<void> {
  const index = new SqliteQuarantineIndex(join(indexDir, `index-${process.pid}.sqlite`));
  const store = new FileQuarantine(dir, { index, maxBytes: Number(maxBytes) });
  if (mode !== 'putlate') await store.startUsage();
  if (mode === 'hang') {
    await hangWrites();
    send('ready');
    await store.put(entry(arg1), RAW);
    return;
  }
  send('ready');
  await new Promise<void>((resolve) => process.once('message', () => resolve()));
  if (mode === 'putlate') await store.startUsage();
  let held = 0;
  let full = 0;
  // Two at a time, as a worker with several connections does.
  const refs = Array.from({ length: Number(arg1) }, (_, i) => `${arg2}${String(i).padStart(4, '0')}`);
  const next = async (): Promise<void> => {
    const ref = refs.shift();
    if (!ref) return;
    try {
      await store.put(entry(ref), RAW);
      held++;
    } catch (err) {
      if (!isQuarantineFull(err)) throw err;
      full++;
    }
    return next();
  };
  await Promise.all([next(), next()]);
  send({ held, full });
  await index.close();
  process.disconnect();
}

main().catch((err) => {
  send({ error: (err as Error).stack });
  process.exitCode = 1;
  process.disconnect();
});
