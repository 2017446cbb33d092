// The runtime one Haraka process shares between its plugins, across reloads.
import assert from 'node:assert/strict';
import { loadConfig } from '../lib/config/load';
import { AFTER_VERDICT_WAIT_MS, Runtime } from '../lib/runtime';
import { createContext } from '../lib/message';
import type { Verdict } from '../lib/score/types';

describe('runtime reload', () => {
  it('a runtime built for a reload can take over the state store: what the node learnt survives the old runtime closing', async () => {
    const config = loadConfig({ texts: { 'mailward.ini': '[tracking]\nenabled = false\n' } });
    const before = new Runtime(config);
    await before.services.state.incrBy('rep:ip:192.0.2.1', 10, 3600);
    const after = new Runtime(config, { state: before.handOverState() });
    await before.close();
    assert.equal(await after.services.state.incrBy('rep:ip:192.0.2.1', 1, 3600), 11);
    await after.close();
  });

  it('without a hand-over each runtime owns its store', async () => {
    const config = loadConfig({ texts: { 'mailward.ini': '[tracking]\nenabled = false\n' } });
    const one = new Runtime(config);
    const two = new Runtime(config);
    await one.services.state.set('k', 'v');
    assert.equal(await two.services.state.get('k'), null);
    await one.close();
    await two.close();
  });

  it('learning from a verdict that waits on a hung store does not hold up the host: afterVerdict returns after its wait', async function () {
    this.timeout(10_000);
    const config = loadConfig({ texts: { 'mailward.ini': '[tracking]\nenabled = false\n' } });
    const lines: string[] = [];
    const runtime = new Runtime(config, { log: { debug() {}, info() {}, warn: (m) => lines.push(m), error: (m) => lines.push(m) } });
    // A module whose store never answers (a Redis that hangs).
    config.modules.push({ module: { name: 'hung', file: null, symbols: [], parseSettings: () => ({ settings: null }), createChecks: () => [], afterVerdict: () => new Promise<void>(() => {}) }, settings: null });
    const started = Date.now();
    await runtime.afterVerdict(createContext({ ip: '192.0.2.1' }), { ref: 'HUNG123' } as Verdict);
    assert.ok(Date.now() - started >= AFTER_VERDICT_WAIT_MS - 50);
    assert.match(lines.join('\n'), /learning from verdict HUNG123 still waits on a store after 2000 ms/);
    config.modules.pop();
    await runtime.close();
  });
});
