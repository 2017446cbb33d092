// content [heuristics] rules_file: a name both hosts (the CLI's --config DIR, Haraka's own config
// loader) read as the same file, or a configuration error naming file, section and key in both.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../lib/config/errors';
import { loadConfig } from '../lib/config/load';
import { closeRuntime, runtimeFor } from '../plugins/shared/runtime';
import type { HarakaPlugin } from '../plugins/shared/haraka';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const harakaConfig = require('haraka-config') as { module_config(root: string): unknown };

const RULES = 'body SITE_WORD /sitewordzz/\nscore SITE_WORD 3\ndescribe SITE_WORD A word only this site scores\n';

/** A plugin object as Haraka hands it to mailward, its config read by haraka-config from ROOT/config. */
function harakaPlugin(root: string): HarakaPlugin {
  const log = () => {};
  return { name: 'mailward/plugins/content', config: harakaConfig.module_config(root), register_hook() {}, logdebug: log, loginfo: log, logwarn: log, logerror: log } as unknown as HarakaPlugin;
}

/** What each host makes of the configuration: the error message, or the rules it loaded. */
async function bothHosts(root: string): Promise<{ cli: string; haraka: string }> {
  const outcome = (load: () => { modules: { module: { name: string }; settings: any }[] }): string => {
    try {
      const content = load().modules.find((m) => m.module.name === 'content')!.settings;
      return `rules: ${content.heuristics.rules.map((r: { name: string }) => r.name).join(',')}`;
    } catch (err) {
      return err instanceof ConfigError ? `ConfigError: ${err.message}` : `${(err as Error).name}: ${(err as Error).message}`;
    }
  };
  const cli = outcome(() => loadConfig({ configDir: join(root, 'config') }));
  const haraka = outcome(() => runtimeFor(harakaPlugin(root)).config);
  await closeRuntime();
  return { cli, haraka };
}

describe('content rules_file: the same file, or the same error, under the CLI and under Haraka', () => {
  const roots: string[] = [];
  afterEach(async () => {
    await closeRuntime();
    for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
  });

  /** A Haraka directory (ROOT/config, the CLI's --config) whose content ini names `rulesFile`; a fresh one each time: haraka-config caches what it read. */
  function hostsWith(rulesFile: string): Promise<{ cli: string; haraka: string }> {
    const root = mkdtempSync(join(tmpdir(), 'mailward-rules-file-'));
    roots.push(root);
    mkdirSync(join(root, 'config', 'rules'), { recursive: true });
    mkdirSync(join(root, 'data'));
    writeFileSync(join(root, 'config', 'mailward.ini'), `data_dir = ${join(root, 'data')}\n`);
    writeFileSync(join(root, 'config', 'mailward.content.ini'), `[heuristics]\nrules_file = ${rulesFile.replace('ROOT', root)}\n`);
    // Rules where a host could find a path-like name: beside the config directory, below it, in it.
    writeFileSync(join(root, 'site.rules'), RULES);
    writeFileSync(join(root, 'config', 'rules', 'site.rules'), RULES);
    writeFileSync(join(root, 'config', 'site.rules'), RULES);
    return bothHosts(root);
  }

  it('a plain name is read from the config directory by both', async () => {
    assert.deepEqual(await hostsWith('site.rules'), { cli: 'rules: SITE_WORD', haraka: 'rules: SITE_WORD' });
  });

  it('a name with "..", a path separator, or an absolute path is refused by both, naming file, section and key', async () => {
    for (const name of ['../site.rules', 'rules/site.rules', 'rules\\site.rules', 'ROOT/site.rules']) {
      const { cli, haraka } = await hostsWith(name);
      assert.match(cli, /^ConfigError: mailward\.content\.ini \[heuristics\] rules_file: .*a plain file name/, name);
      assert.equal(haraka, cli, name);
    }
  });

  it("a name of one of mailward's own files (mailward.ini, the rules module's file, host_list) is refused by both", async () => {
    for (const name of ['mailward.ini', 'mailward.rules', 'mailward.content.ini', 'host_list']) {
      const { cli, haraka } = await hostsWith(name);
      assert.match(cli, new RegExp(`^ConfigError: mailward\\.content\\.ini \\[heuristics\\] rules_file: ${name.replace(/\./g, '\\.')} is one of mailward's own configuration files`), name);
      assert.equal(haraka, cli, name);
    }
    // The shipped name stays the default's own.
    const { cli, haraka } = await hostsWith('mailward.content.rules');
    assert.match(cli, /^rules: /);
    assert.equal(haraka, cli);
  });
});
