// A separate OS process opening the shared byte count (lib/quarantine/shared-usage.ts)
// while the parent holds the file's write lock, so the open waits in its setup
// (test/quarantine-shared-bound.test.ts forks it). argv: path, bytes to reserve.
// To the parent: { replaced, reserved } once open, or { error }.
import { SharedUsage } from '../../lib/quarantine/shared-usage';

const [path, bytes] = process.argv.slice(2) as [string, string];
try {
  const shared = new SharedUsage(path);
  const replaced = shared.replaced();
  const reserved = shared.reserve(Number(bytes), Number.MAX_SAFE_INTEGER, Date.now()).id !== null;
  shared.close();
  process.send!({ replaced, reserved });
} catch (err) {
  process.send!({ error: (err as Error).message });
}
