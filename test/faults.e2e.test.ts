// Fault injection under load, CI-sized: a real Haraka with every mailward
// plugin, Redis state (a redis-server of our own) and PostgreSQL tracking
// (through a TCP proxy), driven by a separate load process at a steady rate
// while DNS goes silent then SERVFAILs, Redis is killed and restarted, and
// PostgreSQL becomes unreachable then black-holed. `npm run soak -- --faults`
// runs the same faults for longer with corpus mail.
import assert from 'node:assert/strict';
import { injectFault, startLoad, startRig, type FaultWindow, type Rig, type Sent } from './faults/rig';
import { waitFor } from './support/wait';

const RATE = 25;
const SECONDS = 40;
const DNS_TIMEOUT_MS = 300;
const REDIS_TIMEOUT_MS = 250;

function windowOf(s: Sent, windows: FaultWindow[]): string {
  const w = windows.find((f) => s.at + s.latencyMs >= f.from && s.at <= f.to);
  return w ? w.what : 'none';
}

describe('faults under load: DNS, Redis and PostgreSQL go away and come back', function () {
  this.timeout(150_000);
  let rig: Rig;

  before(async () => {
    rig = await startRig({ dnsTimeoutMs: DNS_TIMEOUT_MS, redisTimeoutMs: REDIS_TIMEOUT_MS, retryIntervalMs: 500 });
  });
  after(async () => {
    await rig?.stop();
  });

  it('rejects nothing because of a fault, does not crash, loses no tracking row, reconnects by itself, stays within deadlines', async () => {
    const load = startLoad({ port: rig.haraka.port, rate: RATE, seconds: SECONDS, connections: 40, spamShare: 0.2, source: 'generated', seed: 42 });
    const t0 = load.startedAt;
    const at = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, t0 + ms - Date.now())));
    const windows: FaultWindow[] = [];
    await at(4_000);
    windows.push(await injectFault(rig, 'dns-silent', 5_000, t0));
    await at(11_000);
    const keysBefore = await rig.redis.keyCount(`${rig.prefix}*`);
    windows.push(await injectFault(rig, 'redis-down', 5_000, t0));
    await at(18_000);
    windows.push(await injectFault(rig, 'postgres-down', 7_000, t0));
    await at(27_000);
    windows.push(await injectFault(rig, 'dns-servfail', 3_000, t0));
    await at(31_000);
    windows.push(await injectFault(rig, 'postgres-silent', 4_000, t0));
    const results = await load.done;

    const sent = Math.round(RATE * SECONDS);
    assert.equal(results.length, sent, 'a reply for every message');
    // Ham is accepted and GTUBE spam rejected, inside a fault window or not.
    const wrong = results.filter((s) => s.code !== (s.kind === 'ham' ? 250 : 550));
    assert.deepEqual(
      wrong.slice(0, 5).map((s) => `#${s.i} ${s.kind} at ${s.at} ms (${windowOf(s, windows)}): ${s.code} ${s.response}`),
      [],
      `${wrong.length} messages got an unexpected reply`,
    );
    assert.ok(rig.harakaAlive(), 'Haraka is still running');
    assert.doesNotMatch(rig.haraka.logs(), /uncaught|unhandled/i);

    // Redis: the restarted server starts empty (no persistence); keys under our prefix prove the store reconnected.
    assert.ok(keysBefore > 0, 'state was in Redis before the fault');
    await waitFor('state written to the restarted Redis', async () => (await rig.redis.keyCount(`${rig.prefix}*`)) > 0, 10_000);

    // PostgreSQL: every row, once, after the spool replays.
    await waitFor('every tracking row in PostgreSQL', async () => (await rig.rowCount()) >= sent, 30_000);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await rig.rowCount(), sent, 'tracking rows == messages sent');
    assert.equal(await rig.distinctRefs(), sent, 'no row twice');

    // Latency: a silent DNS costs each message a few look-up deadlines in series (PTR, DNSBL, SPF, DMARC, ...:
    // about ten at most, 3 s); nothing waits on Redis or PostgreSQL beyond their deadlines. Enough connections
    // (40 for 25 msgs/s) that the client's own queue adds little. The replies above are what the deadlines
    // promise; the bound is far above the deadlines in series (and what a loaded machine adds to 25 msgs/s)
    // and below what no deadline costs: Haraka's 30 s plugin timeout, an unanswered connect's minutes.
    const worst = (what: string) => Math.max(0, ...results.filter((s) => windowOf(s, windows) === what).map((s) => s.latencyMs));
    const calm = Math.max(0, ...results.filter((s) => windowOf(s, windows) === 'none').map((s) => s.latencyMs));
    const bound = 15_000;
    for (const what of ['none', 'dns-silent', 'dns-servfail', 'redis-down', 'postgres-down', 'postgres-silent']) {
      assert.ok(worst(what) <= bound, `worst latency during ${what}: ${worst(what)} ms > ${bound} ms (calm: ${calm} ms)`);
    }
    console.log(`      faults: ${sent} messages; worst latency ms: ${['none', 'dns-silent', 'dns-servfail', 'redis-down', 'postgres-down', 'postgres-silent'].map((w) => `${w} ${worst(w)}`).join(', ')}`);
  });
});
