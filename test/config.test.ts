import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ConfigError } from '../lib/config/errors';
import { parseIni } from '../lib/config/ini';
import { loadConfig } from '../lib/config/load';
import { main } from '../lib/cli/main';
import { parseSince } from '../lib/cli/since';
import { UserError } from '../lib/cli/types';

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
  it('refuses a DNS server port outside 1-65535 (port 0 aborts the process inside c-ares)', () => {
    rejects('[dns]\nservers = 127.0.0.1:0\n', 'mailward.ini [dns] servers: "127.0.0.1:0": port must be 1 to 65535');
    rejects('[dns]\nservers = [::1]:99999\n', 'mailward.ini [dns] servers: "[::1]:99999": port must be 1 to 65535');
    assert.deepEqual(load('[dns]\nservers = 127.0.0.1:5353, [::1]:53\n').shared.dns.servers, ['127.0.0.1:5353', '[::1]:53']);
  });
  it('"off" only where a key can be turned off: an action threshold, not a timeout', () => {
    rejects('[dns]\ntimeout_ms = off\n', 'mailward.ini [dns] timeout_ms: expected a number, got "off" (this key cannot be turned off)');
    rejects('[state]\nmemory_max_entries = none\n', 'mailward.ini [state] memory_max_entries: expected a number, got "none" (this key cannot be turned off)');
    // Any action may be off, not only the top ones; the others must still rise.
    const t = load('[actions]\nadd_header = off\nquarantine = off\n').shared.policy.thresholds;
    assert.equal(t.add_header, Infinity);
    assert.equal(t.soft_reject, 10);
    rejects('[actions]\nsoft_reject = off\nquarantine = 16\n', 'mailward.ini [actions] reject: threshold 15 is below quarantine (16): thresholds must rise from add_header to reject');
  });
  it('refuses an action threshold of 0 or below, in [actions] and in a [domain:NAME] section (score-0 mail would take that action)', () => {
    rejects('[actions]\nadd_header = -5\n', 'mailward.ini [actions] add_header: must be above 0, got -5');
    rejects('[actions]\nadd_header = 0\n', 'mailward.ini [actions] add_header: must be above 0, got 0');
    rejects('[actions]\nadd_header = off\nquarantine = -1\n', 'mailward.ini [actions] quarantine: must be above 0, got -1');
    rejects('[domain:example.org]\nadd_header = -2\n', 'mailward.ini [domain:example.org] add_header: must be above 0, got -2');
    rejects('[domain:example.org]\nadd_header = 0\nquarantine = 0\n', 'mailward.ini [domain:example.org] quarantine: must be above 0, got 0');
    // Small positive thresholds and off stay valid.
    assert.equal(load('[actions]\nadd_header = 0.5\n').shared.policy.thresholds.add_header, 0.5);
    assert.equal(load('[domain:example.org]\nadd_header = off\n').shared.policy.domains.get('example.org')!.add_header, Infinity);
  });
  it('refuses a number that is empty or hexadecimal, and a key set twice', () => {
    rejects('[actions]\nreject =\n', 'mailward.ini [actions] reject: expected a number, got "" (leave the key out for its default)');
    rejects('[actions]\nreject = 0x10\n', 'mailward.ini [actions] reject: expected a number, got "0x10"');
    assert.throws(() => load('[actions]\nreject = 20\nreject = 25\n'), /mailward\.ini \[actions\] reject: set twice \(again at line 3\)$/);
  });
  it('refuses a configuration directory that does not exist (a mistyped --config would run on the defaults alone)', () => {
    assert.throws(() => loadConfig({ configDir: join(dir, 'no-such-dir') }), /no-such-dir \[main\]: no such configuration directory/);
  });
  it('--since: a span too far back for a date is a usage error, not a stack trace', () => {
    assert.throws(() => parseSince('99999999w'), (err: unknown) => err instanceof UserError && /--since "99999999w"/.test((err as Error).message));
    assert.equal(parseSince('2d', Date.UTC(2026, 0, 3)).toISOString(), '2026-01-01T00:00:00.000Z');
  });
  it('refuses a line that is not key = value, with its number', () => {
    assert.throws(() => load('[actions]\nreject\n'), /\[actions\]: line 2 is not "key = value"/);
  });
  it('refuses a redis_url or postgres_url that is not a URL of its kind, naming the key (and never the password)', () => {
    rejects('[state]\nredis_url = localhost:6379\n', 'mailward.ini [state] redis_url: "localhost:6379": expected a redis:// or rediss:// URL (redis://[:password@]host:port[/db]); or unix://[[user][:password]@]/path/to/redis.sock[?db=N]');
    rejects('[state]\nredis_url = redis://127.0.0.1:99999\n', 'mailward.ini [state] redis_url: "redis://127.0.0.1:99999" is not a valid URL: expected a redis:// or rediss:// URL (redis://[:password@]host:port[/db]), port 1 to 65535; or unix://[[user][:password]@]/path/to/redis.sock[?db=N]');
    rejects('[state]\nredis_url = redis://127.0.0.1:0\n', 'mailward.ini [state] redis_url: "redis://127.0.0.1:0": port must be 1 to 65535');
    rejects('[state]\nredis_url = redis:///0\n', 'mailward.ini [state] redis_url: "redis:///0" names no host: expected a redis:// or rediss:// URL (redis://[:password@]host:port[/db]); or unix://[[user][:password]@]/path/to/redis.sock[?db=N]');
    rejects('[state]\nredis_url = redis://:s3cret@10.0.0.5:6379/cache\n', 'mailward.ini [state] redis_url: "redis://:***@10.0.0.5:6379/cache": the path must be a database number (/0, /1...), got "/cache"');
    rejects('[tracking]\npostgres_url = localhost:5432\n', 'mailward.ini [tracking] postgres_url: "localhost:5432": expected a postgres:// or postgresql:// URL (postgres://[user[:password]@]host[:port]/database); or socket:/path/to/socket-directory[?db=database] or /path/to/socket-directory [database]');
    // A password holding @ is hidden whole, up to the authority's last @.
    assert.throws(
      () => load('[tracking]\npostgres_url = postgres://u:s3@cr3t@db:70000/mail\n'),
      (err: unknown) => err instanceof ConfigError && err.message.includes('"postgres://u:***@db:70000/mail" is not a valid URL') && !err.message.includes('cr3t'),
    );
    rejects('[tracking]\npostgres_url = postgres://u:s3cret@db:70000/mail\n', 'mailward.ini [tracking] postgres_url: "postgres://u:***@db:70000/mail" is not a valid URL: expected a postgres:// or postgresql:// URL (postgres://[user[:password]@]host[:port]/database), port 1 to 65535; or socket:/path/to/socket-directory[?db=database] or /path/to/socket-directory [database]');
    // What the docs show stays valid, and a Unix socket given as pg's host parameter.
    const ok = load('[state]\nredis_url = rediss://:pw@[::1]:6380/2\n[tracking]\npostgres_url = postgresql://mailward:secret@db.example.com/mail?sslmode=require\n').shared;
    assert.equal(ok.state.redisUrl, 'rediss://:pw@[::1]:6380/2');
    assert.equal(ok.tracking.postgresUrl, 'postgresql://mailward:secret@db.example.com/mail?sslmode=require');
    assert.equal(load('[tracking]\npostgres_url = postgres:///mail?host=/var/run/postgresql\n').shared.tracking.postgresUrl, 'postgres:///mail?host=/var/run/postgresql');
  });
  it('refuses a redis_url whose user, password or socket path node-redis cannot decode (it threw URIError at start)', () => {
    const message = (shown: string) => `mailward.ini [state] redis_url: ${JSON.stringify(shown)}: the user name, password or path holds a % that starts no escape (write %25 for a % sign)`;
    rejects('[state]\nredis_url = redis://u:50%@10.0.0.5:6379\n', message('redis://u:***@10.0.0.5:6379'));
    rejects('[state]\nredis_url = unix:///tmp/%zz.sock\n', message('unix:///tmp/%zz.sock'));
    rejects('[state]\nredis_url = unix://%E0@/tmp/r.sock\n', message('unix://%E0@/tmp/r.sock'));
    rejects('[state]\nredis_url = unix://u:%@/tmp/r.sock\n', message('unix://u:***@/tmp/r.sock'));
    assert.equal(load('[state]\nredis_url = redis://u:50%25@10.0.0.5:6379\n').shared.state.redisUrl, 'redis://u:50%25@10.0.0.5:6379');
  });
  it('accepts the Unix socket forms node-redis and pg read, and still refuses what they do not (review 2)', () => {
    // A config that loaded before URL checks came must still load: node-redis reads unix://,
    // pg reads user info with no host (and ?host=), socket: and a leading /.
    for (const url of ['unix:///run/redis/redis.sock', 'unix://:s3cret@/run/redis/redis.sock?db=2', 'unix://mw:s3cret@/run/redis/redis.sock'])
      assert.equal(load(`[state]\nbackend = redis\nredis_url = ${url}\n`).shared.state.redisUrl, url);
    for (const url of ['postgres://mailward:secret@/mailward?host=/run/postgresql', 'postgres://mailward:se@cret@/mailward?host=/run/postgresql', 'postgres://mailward:se@cret@db.internal/mailward', 'postgresql://mailward@/mailward?host=/run/postgresql', 'socket:/run/postgresql?db=mailward', 'socket://mailward:secret@/run/postgresql?db=mailward', '/run/postgresql mailward', '/run/postgresql'])
      assert.equal(load(`[tracking]\nbackend = postgres\npostgres_url = ${url}\n`).shared.tracking.postgresUrl, url);
    rejects('[state]\nredis_url = unix:///\n', "mailward.ini [state] redis_url: \"unix:///\": a Unix socket URL names the socket's path: expected unix://[[user][:password]@]/path/to/redis.sock[?db=N]");
    rejects('[state]\nredis_url = unix:/run/redis.sock\n', "mailward.ini [state] redis_url: \"unix:/run/redis.sock\": a Unix socket URL names the socket's path: expected unix://[[user][:password]@]/path/to/redis.sock[?db=N]");
    rejects('[state]\nredis_url = unix://:s3cret@/run/redis.sock?db=cache\n', 'mailward.ini [state] redis_url: "unix://:***@/run/redis.sock?db=cache": ?db= must be a database number (0, 1...), got "cache"');
    // User info and no host: the host must then come as a parameter.
    rejects('[tracking]\npostgres_url = postgres://mailward:s3cret@/mailward\n', 'mailward.ini [tracking] postgres_url: "postgres://mailward:***@/mailward" names no host: expected a postgres:// or postgresql:// URL (postgres://[user[:password]@]host[:port]/database); or socket:/path/to/socket-directory[?db=database] or /path/to/socket-directory [database]');
    rejects('[tracking]\npostgres_url = mysql://u:s3cret@/db?host=/run/x\n', 'mailward.ini [tracking] postgres_url: "mysql://u:***@/db?host=/run/x": expected a postgres:// or postgresql:// URL (postgres://[user[:password]@]host[:port]/database); or socket:/path/to/socket-directory[?db=database] or /path/to/socket-directory [database]');
    rejects('[tracking]\npostgres_url = socket://run/postgresql?db=mailward\n', 'mailward.ini [tracking] postgres_url: "socket://run/postgresql?db=mailward": a socket: URL names no host, the socket directory is its path: expected socket:/path/to/socket-directory[?db=database]');
    rejects('[tracking]\npostgres_url = socket:\n', 'mailward.ini [tracking] postgres_url: "socket:": a socket: URL names the socket directory as its path: expected socket:/path/to/socket-directory[?db=database]');
    rejects('[tracking]\npostgres_url = /run/postgresql  mailward\n', 'mailward.ini [tracking] postgres_url: "/run/postgresql  mailward": a socket directory and an optional database name, one space apart, expected (/run/postgresql mailward)');
  });
  it('the command exits 3 (a configuration error) on a malformed redis_url or postgres_url, not with an internal error', async () => {
    const run = async (ini: string, argv: string[]) => {
      writeFileSync(join(dir, 'mailward.ini'), ini);
      const err: string[] = [];
      const code = await main([...argv, '--config', dir], { out: () => {}, err: (l) => void err.push(l) });
      return { code, err: err.join('\n') };
    };
    const redis = await run('[state]\nbackend = redis\nredis_url = localhost:6379\n', ['outbound', 'status']);
    assert.equal(redis.code, 3, redis.err);
    assert.match(redis.err, /configuration error: .*mailward\.ini \[state\] redis_url: "localhost:6379"/);
    assert.doesNotMatch(redis.err, /internal error|TypeError/);
    const port = await run('[state]\nbackend = redis\nredis_url = redis://127.0.0.1:99999\n', ['reputation', 'show', '192.0.2.1']);
    assert.equal(port.code, 3, port.err);
    assert.match(port.err, /mailward\.ini \[state\] redis_url: /);
    const pg = await run('[tracking]\nbackend = postgres\npostgres_url = localhost:5432\n', ['explain', 'ABCDEFG']);
    assert.equal(pg.code, 3, pg.err);
    assert.match(pg.err, /mailward\.ini \[tracking\] postgres_url: "localhost:5432"/);
  });
  it('refuses a [scores] entry for a symbol nobody defines', () => {
    rejects('[scores]\nNOT_A_SYMBOL = 1\n', 'mailward.ini [scores] NOT_A_SYMBOL: no such symbol (see docs/symbols.md)');
  });
  it('a rules_file named like an Object property (constructor, toString) is not found, not a TypeError', () => {
    // Review of 0f3e6de (h-review2): texts is a plain object, so texts['constructor'] was Object's own
    // function, handed to the rules parser as the file's text: "text.split is not a function".
    for (const name of ['constructor', 'toString', '__proto__']) {
      assert.throws(
        () => loadConfig({ texts: { 'mailward.content.ini': `[heuristics]\nrules_file = ${name}\n` }, readFile: () => null }),
        (err: unknown) => err instanceof ConfigError && /not found in the config directory/.test(err.message),
        name,
      );
    }
  });
});
