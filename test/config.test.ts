import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ConfigError } from '../lib/config/errors';
import { parseIni } from '../lib/config/ini';
import { loadConfig } from '../lib/config/load';

describe('configuration', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'mailward-config-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const load = (ini: string) => {
    writeFileSync(join(dir, 'mailward.ini'), ini);
    return loadConfig({ configDir: dir });
  };

  it('parses sections literally, including dotted names', () => {
    const raw = parseIni('top = 1\n[domain:example.com]\nreject = 20 ; not a comment\n# comment\n[x]\nq = "quoted"\n', 'f.ini');
    assert.deepEqual(raw, { main: { top: '1' }, 'domain:example.com': { reject: '20 ; not a comment' }, x: { q: 'quoted' } });
  });

  it('falls back to the shipped defaults, documented thresholds included', () => {
    const config = loadConfig({ configDir: dir });
    assert.deepEqual(config.shared.policy.thresholds, { reject: 15, soft_reject: 10, quarantine: 8, add_header: 5 });
    assert.equal(config.shared.state.backend, 'memory');
    assert.equal(config.shared.tracking.backend, 'sqlite');
    assert.equal(config.shared.dataDir, resolve(dir, '..', 'data'));
  });

  it('overlays only the keys an operator sets', () => {
    const config = load('[actions]\nreject = 20\n\n[domain:Example.ORG]\nquarantine = 9\n\n[scores]\nGTUBE = 500\n');
    assert.equal(config.shared.policy.thresholds.reject, 20);
    assert.equal(config.shared.policy.thresholds.soft_reject, 10);
    assert.deepEqual(config.shared.policy.domains.get('example.org'), { reject: 20, soft_reject: 10, quarantine: 9, add_header: 5 });
    assert.equal(config.symbols.get('GTUBE').score, 500);
  });

  const rejects = (ini: string, message: string) =>
    assert.throws(
      () => load(ini),
      (err: unknown) => err instanceof ConfigError && err.message === message,
    );

  it('names file, section and key for a bad number', () => {
    rejects('[actions]\nreject = lots\n', 'mailward.ini [actions] reject: expected a number, got "lots"');
  });
  it('names an unknown key (a typo is never silently ignored)', () => {
    rejects('[actions]\nrejct = 20\n', 'mailward.ini [actions] rejct: unknown key');
  });
  it('names an unknown section', () => {
    rejects('[acitons]\nreject = 20\n', 'mailward.ini [acitons]: unknown section');
  });
  it('refuses thresholds that do not rise', () => {
    rejects('[actions]\nquarantine = 12\n', 'mailward.ini [actions] soft_reject: threshold 10 is below quarantine (12): thresholds must rise from add_header to reject');
  });
  it('refuses an unknown backend with the choices', () => {
    rejects('[state]\nbackend = memcached\n', 'mailward.ini [state] backend: expected one of memory, redis, got "memcached"');
  });
  it('refuses a DNS server that is not an address', () => {
    rejects('[dns]\nservers = dns.example.com\n', 'mailward.ini [dns] servers: "dns.example.com" is not an IP address');
  });
  it('refuses a line that is not key = value, with its number', () => {
    assert.throws(() => load('[actions]\nreject\n'), /\[actions\]: line 2 is not "key = value"/);
  });
  it('refuses a [scores] entry for a symbol nobody defines', () => {
    rejects('[scores]\nNOT_A_SYMBOL = 1\n', 'mailward.ini [scores] NOT_A_SYMBOL: no such symbol (see docs/symbols.md)');
  });
});
