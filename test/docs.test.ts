import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { symbolsMarkdown } from '../lib/cli/commands/symbols';
import { cliMarkdown } from '../lib/cli/main';
import { loadConfig } from '../lib/config/load';
import { parseIni } from '../lib/config/ini';
import { repoPath } from './support/paths';

describe('documentation stays true to the code', () => {
  it('docs/symbols.md lists every registered symbol with its default weight (regenerate: npm run docs:symbols)', () => {
    assert.equal(readFileSync(repoPath('docs', 'symbols.md'), 'utf8'), symbolsMarkdown());
  });

  it('docs/cli.md lists every command with its usage (regenerate: npm run docs:cli)', () => {
    assert.equal(readFileSync(repoPath('docs', 'cli.md'), 'utf8'), cliMarkdown());
  });

  it('every symbol has a description', () => {
    for (const def of loadConfig().symbols.all()) assert.ok(def.description.trim().length > 10, `${def.name} needs a description`);
  });

  it('every mailward.ini key is documented in docs/configuration.md', () => {
    const shipped = parseIni(readFileSync(repoPath('config', 'mailward.ini'), 'utf8'), 'mailward.ini');
    const doc = readFileSync(repoPath('docs', 'configuration.md'), 'utf8');
    for (const [section, keys] of Object.entries(shipped)) {
      for (const key of Object.keys(keys)) assert.match(doc, new RegExp(`\\[${section}\\][^\\n]*\`${key}\`|\`${key}\``), `[${section}] ${key} is not documented`);
    }
  });

  it('each plugin with a folder has a docs page', () => {
    for (const name of ['verdict', 'tracking', 'reputation', 'auth', 'antispoof', 'content', 'backscatter', 'rules', 'outbound']) {
      if (existsSync(repoPath('plugins', name, 'package.json'))) assert.ok(existsSync(repoPath('docs', `${name}.md`)), `docs/${name}.md is missing`);
    }
  });
});
