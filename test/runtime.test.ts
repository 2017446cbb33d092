// The runtime one Haraka process shares between its plugins, across reloads.
import assert from 'node:assert/strict';
import { loadConfig } from '../lib/config/load';
import { Runtime } from '../lib/runtime';

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
});
