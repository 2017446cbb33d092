// The Haraka plugins' shared runtime (plugins/shared/runtime.ts): one per process, rebuilt when a
// watched config file changes.
import assert from 'node:assert/strict';
import { closeRuntime, runtimeFor } from '../plugins/shared/runtime';
import type { HarakaPlugin } from '../plugins/shared/haraka';

/** A plugin whose config loader records the change callbacks it is given, as haraka-config's watcher would call them. */
function pluginWith(dnsServer: string, watchers: (() => void)[]): HarakaPlugin {
  const files: Record<string, string> = { 'mailward.ini': `[main]\ndata_dir = data\n[dns]\nservers = ${dnsServer}\n[tracking]\nenabled = false\n` };
  const log = () => {};
  return {
    name: 'mailward/plugins/verdict',
    config: {
      get: (name: string, _type?: string, onChange?: () => void) => {
        if (onChange) watchers.push(onChange);
        return files[name] ? files[name]!.split('\n') : null;
      },
    },
    register_hook() {},
    logdebug: log,
    loginfo: log,
    logwarn: log,
    logerror: log,
  } as unknown as HarakaPlugin;
}

describe('plugins/shared/runtime: reloads', () => {
  afterEach(() => closeRuntime());

  it('a change reported after the runtime was closed builds nothing: the next plugin gets a runtime of its own configuration', async () => {
    // A test deleting its config directory after closeRuntime() set off haraka-config's watcher; the reload
    // then built a runtime from that stale plugin, which the next test file's plugin was handed (its DNS
    // servers were the first one's: an MX look-up went to the wrong server).
    const first: (() => void)[] = [];
    assert.deepEqual(runtimeFor(pluginWith('127.0.0.1:5301', first)).config.shared.dns.servers, ['127.0.0.1:5301']);
    await closeRuntime();
    for (const changed of first) changed();
    await new Promise((r) => setTimeout(r, 400));
    assert.deepEqual(runtimeFor(pluginWith('127.0.0.1:5302', [])).config.shared.dns.servers, ['127.0.0.1:5302']);
  });

  it('a change while the runtime runs rebuilds it from the files', async () => {
    const watchers: (() => void)[] = [];
    const plugin = pluginWith('127.0.0.1:5303', watchers);
    const before = runtimeFor(plugin);
    for (const changed of watchers) changed();
    await new Promise((r) => setTimeout(r, 400));
    const after = runtimeFor(plugin);
    assert.notEqual(after, before);
    assert.deepEqual(after.config.shared.dns.servers, ['127.0.0.1:5303']);
  });
});
