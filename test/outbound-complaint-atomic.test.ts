import assert from 'node:assert/strict';
import { countReport, OutboundLedger, parseArf } from '../lib/checks/outbound';
import { NotSharedError } from '../lib/checks/outbound/ledger';
import type { ComplaintStatus } from '../lib/checks/outbound/complaints';
import { MemoryStore, RedisStore, type StateStore } from '../lib/state';
import { arfReport, deleteRedisKeys, outboundSettings, REDIS_URL, uniquePrefix } from './outbound/support';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy';
import { waitFor } from './support/wait';

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const settings = outboundSettings('[complaints]\nrequire_authenticated = false\n');
const RECIPIENT = 'someone@reports.example.org';

/** The two shapes of report: one naming its recipient, one with the recipient redacted. */
const SHAPES = [
  { name: 'Original-Rcpt-To', rcpt: RECIPIENT },
  { name: 'recipient redacted', rcpt: '' },
];

describe('outbound: a report is seen and counted in one step, whenever Redis goes away', function () {
  // Redis through a TCP proxy: stopping the proxy takes Redis away from the store (open
  // connections are cut, new ones refused) while what it holds stays, as a network cut or a
  // failover does; starting it again is the recovery.
  let proxy: TcpProxy;
  let store: RedisStore;
  const prefix = uniquePrefix('atomic');

  before(async () => {
    proxy = await startTcpProxy({ host: '127.0.0.1', port: 6379 });
    await proxy.start();
    store = new RedisStore({ backend: 'redis', redisUrl: `redis://127.0.0.1:${proxy.port}`, prefix, timeoutMs: 300, memoryMaxEntries: 1000 }, quiet);
  });
  after(async () => {
    await store.close();
    await proxy.stop();
    await deleteRedisKeys(prefix, REDIS_URL);
  });

  /** The store, whose Redis goes away right after its `n`-th operation has answered. */
  function awayAfter(n: number): StateStore {
    let calls = 0;
    return new Proxy(store, {
      get(target, prop) {
        const value: unknown = Reflect.get(target, prop, target);
        if (typeof value !== 'function') return value;
        return async (...args: unknown[]) => {
          try {
            return await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          } finally {
            if (++calls === n) await proxy.stop();
          }
        };
      },
    });
  }

  /**
   * What the feedback plugin (lib/checks/outbound/index.ts) makes of a delivery: deferred
   * (450: the provider delivers the report again) while the shared state is away or did not
   * take the count, else countReport's status.
   */
  async function deliver(raw: string, ledger: OutboundLedger): Promise<ComplaintStatus | 'deferred'> {
    if (store.degraded) return 'deferred';
    try {
      const outcome = await countReport(await parseArf(raw), settings, ledger, Date.now);
      return store.degraded && outcome.status !== 'counted' ? 'deferred' : outcome.status;
    } catch (err) {
      if (store.degraded || err instanceof NotSharedError) return 'deferred';
      throw err;
    }
  }

  async function recover(): Promise<void> {
    await proxy.start();
    await waitFor('the store to reach Redis again', async () => {
      await store.get('probe');
      return !store.degraded;
    });
  }

  for (const shape of SHAPES) {
    it(`${shape.name}: Redis away after any of the report's store operations, its redeliveries count it exactly once`, async () => {
      const ledger = new OutboundLedger(store, settings, Date.now, 'node-a');
      // Every point in a delivery at which Redis can go away, and one past the last.
      for (let n = 1; n <= 8; n++) {
        const sender = `sender-${n}-${shape.rcpt ? 'named' : 'redacted'}`;
        const mid = `<away.${n}.${shape.rcpt ? 'named' : 'redacted'}@example.com>`;
        await ledger.recordMessage(mid, sender, [RECIPIENT]);
        const report = arfReport({ mid, rcpt: shape.rcpt });
        const outcomes = [await deliver(report, new OutboundLedger(awayAfter(n), settings, Date.now, 'node-a'))];
        await recover();
        // The provider delivers the report again until it is taken, and then once more.
        while (outcomes.at(-1) === 'deferred' && outcomes.length < 5) outcomes.push(await deliver(report, ledger));
        outcomes.push(await deliver(report, ledger));
        const where = `Redis away after operation ${n}: deliveries ${outcomes.join(', ')}`;
        assert.equal(outcomes.filter((o) => o === 'counted').length, 1, where);
        assert.deepEqual(outcomes.slice(outcomes.indexOf('counted') + 1), ['duplicate'], where);
        assert.equal((await ledger.counts(sender)).complaint, 1, where);
      }
    });
  }

  it('invalid recipients (vouched for, and not): Redis away after any store operation, a later try counts each exactly once', async () => {
    const ledger = new OutboundLedger(store, settings, Date.now, 'node-a');
    for (let n = 1; n <= 4; n++) {
      const sender = `dsn-sender-${n}`;
      const count = (l: OutboundLedger) => l.countInvalid(sender, `vouched.${n}@example.com`, ['a@remote.example', 'b@remote.example']);
      const countUnvouched = (l: OutboundLedger) => l.countUnvouchedInvalid(sender, `unvouched.${n}@example.com`, 'c@remote.example');
      for (const attempt of [count, countUnvouched]) {
        // A try that fails is made again (our next bounce of the recipient, or an import) until it answers.
        const first = await attempt(new OutboundLedger(awayAfter(n), settings, Date.now, 'node-a')).catch(() => 0);
        await recover();
        const later = await attempt(ledger);
        assert.equal(await attempt(ledger), 0, `Redis away after operation ${n}: a third try counts nothing`);
        assert.ok(first + later >= 1, `Redis away after operation ${n}: tries counted ${first} then ${later}`);
      }
      assert.equal((await ledger.counts(sender)).invalid, 3, `Redis away after operation ${n}`);
    }
  });
});

const backends: { name: string; make: (prefix: string) => StateStore; cleanup?: (prefix: string) => Promise<unknown> }[] = [
  { name: 'memory', make: () => new MemoryStore(1000) },
  {
    name: 'Redis',
    make: (prefix) => new RedisStore({ backend: 'redis', redisUrl: REDIS_URL, prefix, timeoutMs: 2000, memoryMaxEntries: 1000 }, quiet),
    cleanup: (prefix) => deleteRedisKeys(prefix, REDIS_URL),
  },
];

for (const backend of backends) {
  describe(`outbound: concurrent deliveries of one report (${backend.name})`, () => {
    const prefix = uniquePrefix(`concurrent-${backend.name}`);
    let stores: StateStore[];
    before(() => {
      // Two stores: two nodes of a fleet on Redis (in memory, one process's two deliveries).
      stores = backend.name === 'memory' ? [backend.make(prefix)] : [backend.make(prefix), backend.make(prefix)];
    });
    after(async () => {
      for (const s of stores) await s.close();
      await backend.cleanup?.(prefix);
    });

    for (const shape of SHAPES) {
      it(`${shape.name}: the same report delivered eight times at once counts once`, async () => {
        const ledgers = stores.map((s) => new OutboundLedger(s, settings, Date.now, 'node'));
        const sender = `bob-${shape.rcpt ? 'named' : 'redacted'}`;
        const mid = `<together.${shape.rcpt ? 'named' : 'redacted'}@example.com>`;
        // Two recipients: the message may draw two complaints, one per recipient, but this report only one.
        await ledgers[0]!.recordMessage(mid, sender, [RECIPIENT, 'other@reports.example.org']);
        const report = await parseArf(arfReport({ mid, rcpt: shape.rcpt }));
        const outcomes = await Promise.all(Array.from({ length: 8 }, (_, i) => countReport(report, settings, ledgers[i % ledgers.length]!, Date.now)));
        assert.deepEqual(outcomes.map((o) => o.status).sort(), ['counted', ...Array(7).fill('duplicate')]);
        assert.equal((await ledgers[0]!.counts(sender)).complaint, 1);
      });
    }
  });
}
