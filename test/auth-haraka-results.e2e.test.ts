// mailward's Authentication-Results beside results Haraka collects itself: a
// real Haraka with a plain plugin that reports through
// connection.auth_results(), as Haraka's auth, spf and dkim plugins do. When
// any result was reported, Haraka (connection.js data_post_respond) removes
// every Authentication-Results field and writes its own, combined, on top:
// mailward's SPF/DKIM/DMARC results were gone from the delivered copy.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { main } from '../lib/cli/main';
import { resinfoEntries } from '../lib/checks/auth';
import { closeSharedIndexes } from '../lib/quarantine';
import { type HarakaInstance, removeDir, sendMail, startHaraka } from './support/haraka';
import { repoPath } from './support/paths';
import { harakaIni, IP, message, sign, startAuthWorld, type AuthWorld } from './fixtures/auth/world';

// Reports at RCPT (before DATA: Haraka also appends a field of its own at the end of the header at
// data_done) for a recipient early@ or both@, and in data_post after mailward's checks for late@ or both@.
// At EHLO, before any transaction (a result of the connection's, as a failed SMTP AUTH is), for a client
// that says EHLO conn.sender.test. Before mailward's data_post hook it removes Return-Path, as
// haraka-plugin-headers does (an operator may run it at an earlier priority).
const REPORTER = `
const addr = (a) => String(typeof a.address === 'function' ? a.address() : a.address);
exports.register = function () {
  this.register_hook('ehlo', 'report_ehlo');
  this.register_hook('rcpt', 'report_rcpt');
  this.register_hook('data_post', 'report_data_post');
  this.register_hook('data_post', 'drop_return_path', -50);
};
exports.drop_return_path = function (next, connection) {
  connection.transaction.remove_header('Return-Path');
  next();
};
exports.report_ehlo = function (next, connection, helo) {
  if (helo === 'conn.sender.test') connection.auth_results('x-test=fail (conn)');
  // A result with non-ASCII text (a failed SMTP AUTH's user name, an IDN in smtp.mailfrom): Haraka writes
  // its field RFC 2047-encoded.
  if (helo === 'utf8.sender.test') connection.auth_results('x-test=fail (conn) smtp.auth=jörg');
  // Text of the client's that splits results differently: Haraka's auth_base writes a failed user name as given.
  if (helo === 'split.sender.test') connection.auth_results('x-test=fail (conn) smtp.auth=bo(b;x');
  next();
};
exports.report_rcpt = function (next, connection, params) {
  if (/^(early|both)@/.test(addr(params[0]))) connection.auth_results('x-test=pass (early)');
  next();
};
exports.report_data_post = function (next, connection) {
  if (connection.transaction.rcpt_to.some((r) => /^(late|both)@/.test(addr(r)))) connection.auth_results('x-test=pass (late)');
  next();
};
`;

describe('Authentication-Results beside results Haraka collects (connection.auth_results)', function () {
  this.timeout(60_000);
  let world: AuthWorld;
  let haraka: HarakaInstance;

  before(async () => {
    world = await startAuthWorld();
    haraka = await startHaraka({
      plugins: ['mailward/plugins/auth', 'mailward/plugins/rules'],
      pluginFiles: { test_auth_reporter: REPORTER },
      hostList: ['widget.test'],
      me: 'mx.widget.test',
      files: {
        'mailward.ini': harakaIni(world),
        'mailward.rules': 'rule hold\n  header Subject contains [holdme]\n  action quarantine\n',
      },
    });
  });
  after(async () => {
    await closeSharedIndexes();
    await haraka?.stop();
    if (haraka) removeDir(haraka.dir);
    await world?.stop();
  });

  async function send(to: string, subject?: string, options: { helo?: string; from?: string; headers?: Record<string, string>; raw?: string; server?: HarakaInstance } = {}) {
    const raw = options.raw ?? (await sign(message({ to, subject, headers: options.headers }), 'example.com', 's1', world.keys.example));
    const server = options.server ?? haraka;
    const before = new Set(server.delivered());
    const result = await sendMail({ port: server.port, from: options.from ?? 'alice@example.com', to: [to], raw, localAddress: IP.example, helo: options.helo ?? 'mail.sender.test' });
    assert.equal(result.code, 250, result.response);
    const fresh = server.delivered().filter((f) => !before.has(f));
    assert.equal(fresh.length, 1);
    const text = readFileSync(fresh[0]!, 'utf8');
    return text.slice(0, text.search(/\r?\n\r?\n/));
  }

  /** Every Authentication-Results field of a header block, unfolded. */
  function authResults(block: string): string[] {
    return [...block.matchAll(/^Authentication-Results:([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)/gim)].map((m) => m[1]!.replace(/\r?\n[ \t]+/g, ' ').trim());
  }

  function assertOurs(field: string, block: string): void {
    assert.match(field, /spf=pass \([a-z.]+: domain of alice@example\.com designates 127\.0\.0\.10 as permitted sender\) smtp\.mailfrom=alice@example\.com/, block);
    assert.match(field, /dkim=pass header\.i=@example\.com header\.s=s1/, block);
    assert.match(field, /dmarc=pass \(p=REJECT[^)]*\) header\.from=example\.com/, block);
  }

  for (const [to, reported] of [
    ['early@widget.test', ['early']],
    ['late@widget.test', ['late']],
    ['both@widget.test', ['early', 'late']],
  ] as const) {
    it(`a result reported ${reported.join(' and ')} is written with mailward's in one field: ${to}`, async () => {
      const block = await send(to);
      const fields = authResults(block);
      assert.equal(fields.length, 1, block);
      const field = fields[0]!;
      assert.match(field, /^mx\.widget\.test; /, block);
      assertOurs(field, block);
      for (const when of reported) assert.equal(field.split(`x-test=pass (${when})`).length, 2, block);
      // Each of mailward's entries once.
      for (const method of ['spf', 'dkim', 'dmarc']) assert.equal(field.split(`; ${method}=`).length, 2, `${method}: ${block}`);
      // Haraka's own field (appended before data_post) is not a forged one.
      assert.doesNotMatch(block, /AUTH_RESULTS_FORGED/);
      assert.match(block, /^X-Mailward-Status: accept /m);
    });
  }

  it('a result of the connection\'s only (reported before MAIL): Haraka\'s data_done field is not a forged one', async () => {
    // Haraka appends "mx.widget.test; x-test=fail (conn)" at data_done, with no result of the transaction's.
    const block = await send('staff@widget.test', undefined, { helo: 'conn.sender.test' });
    assert.doesNotMatch(block, /AUTH_RESULTS_FORGED/);
    const fields = authResults(block);
    assert.equal(fields.length, 1, block);
    assert.match(fields[0]!, /^mx\.widget\.test; /, block);
    assert.equal(fields[0]!.split('x-test=fail (conn)').length, 2, block);
    assertOurs(fields[0]!, block);
  });

  // Haraka's data_done field does not always stand after the message's fields: Haraka adds it before it
  // parses a header not followed by an empty line (on top then), drops fields it finds unsafe, and a
  // data_post plugin before mailward may take out a field above it.
  for (const [what, raw] of [
    ['a message of header fields only (no empty line after them)', () => message({ to: 'staff@widget.test' }).split('\r\n\r\n')[0] + '\r\n'],
    ['a field Haraka drops as unsafe (constructor:)', () => message({ to: 'staff@widget.test', headers: { constructor: 'x' } })],
    ['a field a data_post plugin before mailward removes (Return-Path)', () => message({ to: 'staff@widget.test', prepend: ['Return-Path: <alice@example.com>'] })],
  ] as const) {
    it(`Haraka's data_done field is not a forged one: ${what}`, async () => {
      const block = await send('staff@widget.test', undefined, { helo: 'conn.sender.test', raw: raw() });
      assert.doesNotMatch(block, /AUTH_RESULTS_FORGED/, block);
      const fields = authResults(block);
      assert.equal(fields.length, 1, block);
      assert.match(fields[0]!, /^mx\.widget\.test; x-test=fail \(conn\); .*spf=pass/, block);
    });
  }

  it('Haraka\'s data_done field is not a forged one: a result with non-ASCII text (written RFC 2047-encoded)', async () => {
    const block = await send('early@widget.test', undefined, { helo: 'utf8.sender.test' });
    assert.doesNotMatch(block, /AUTH_RESULTS_FORGED/, block);
    const fields = authResults(block);
    assert.equal(fields.length, 1, block);
    assert.match(fields[0]!, /^mx\.widget\.test; /, block);
  });

  /** The field's resinfos as an RFC 8601 reader splits them: nothing RFC 2047-encoded (such readers do not decode it), ASCII. */
  function parsedEntries(field: string, block: string): string[] {
    assert.doesNotMatch(field, /=\?/, block);
    assert.match(field, /^[\x20-\x7e]+$/, block);
    const { authservId, entries } = resinfoEntries(field);
    assert.equal(authservId, 'mx.widget.test', block);
    return entries;
  }

  it('a result of Haraka\'s with non-ASCII text (a failed SMTP AUTH\'s user name): the delivered field stays parseable', async () => {
    // Haraka's add_leading_header Q-encoded its combined field from "jörg" on: mailward's results after it were lost.
    const block = await send('early@widget.test', undefined, { helo: 'utf8.sender.test' });
    const fields = authResults(block);
    assert.equal(fields.length, 1, block);
    const entries = parsedEntries(fields[0]!, block);
    assert.deepEqual(entries.slice(0, 2), ['x-test=fail (conn) smtp.auth="j?rg"', 'x-test=pass (early)'], block);
    assert.deepEqual(entries.slice(2).map((e) => e.split('=')[0]).sort(), ['dkim', 'dmarc', 'spf'], block);
    assertOurs(fields[0]!, block);
  });

  it('an SMTPUTF8 sender with a non-ASCII local part: mailward\'s field is written in ASCII, smtp.mailfrom kept', async () => {
    // mailward RFC 2047-encoded the field's non-ASCII words: the encoded word swallowed smtp.mailfrom and the ";".
    // (The client sends the domain as an A-label, MAIL FROM:<jörg@xn--mnchen-3ya.example> SMTPUTF8.)
    const block = await send('staff@widget.test', undefined, { from: 'jörg@münchen.example' });
    const fields = authResults(block);
    assert.equal(fields.length, 1, block);
    const entries = parsedEntries(fields[0]!, block);
    assert.deepEqual(entries.map((e) => e.split('=')[0]).sort(), ['dkim', 'dmarc', 'spf'], block);
    // The local part is not ASCII: the domain alone, as an A-label (RFC 8601 pvalue, RFC 8616).
    assert.match(entries.find((e) => e.startsWith('spf='))!, / smtp\.mailfrom=xn--mnchen-3ya\.example( |$)/, block);
  });

  it('Haraka\'s data_done field is not a forged one: a result with a semicolon and an open parenthesis of the client\'s', async () => {
    const block = await send('early@widget.test', undefined, { helo: 'split.sender.test' });
    assert.doesNotMatch(block, /AUTH_RESULTS_FORGED/, block);
    const fields = authResults(block);
    assert.equal(fields.length, 1, block);
    assert.match(fields[0]!, /^mx\.widget\.test; x-test=fail \(conn\) smtp\.auth=bo\(b;x; x-test=pass \(early\)/, block);
  });

  let lastHeld = '';

  /** Sends a message the rules quarantine; the held copy's header block. */
  async function hold(to: string): Promise<string> {
    const raw = await sign(message({ to, subject: '[holdme] figures' }), 'example.com', 's1', world.keys.example);
    const result = await sendMail({ port: haraka.port, from: 'alice@example.com', to: [to], raw, localAddress: IP.example, helo: 'mail.sender.test' });
    assert.equal(result.code, 250, result.response);
    const ref = /ref ([0-9A-Z]{10})/.exec(result.response)![1]!;
    lastHeld = ref;
    const out: string[] = [];
    assert.equal(await main(['quarantine', 'show', ref, '--raw', '--config', haraka.configDir], { out: (l) => out.push(l), err: (l) => out.push(l) }), 0, out.join('\n'));
    const held = out.join('\n');
    return held.slice(0, held.search(/\r?\n\r?\n/));
  }

  it('the held copy of a quarantined message has the field as it would have been delivered', async () => {
    // Held before data_post_respond: what a plugin reports after mailward's hook is not in it.
    const block = await hold('early@widget.test');
    const fields = authResults(block);
    assert.equal(fields.length, 1, block);
    assert.match(fields[0]!, /^mx\.widget\.test; /, block);
    assertOurs(fields[0]!, block);
    assert.equal(fields[0]!.split('x-test=pass (early)').length, 2, block);
    assert.doesNotMatch(block, /AUTH_RESULTS_FORGED/);
    // Its record keeps what auth decided as data (release-approve reads it): DMARC passed, no ARC sealer vouched.
    const out: string[] = [];
    assert.equal(await main(['quarantine', 'list', '--all', '--json', '--config', haraka.configDir], { out: (l) => out.push(l), err: (l) => out.push(l) }), 0, out.join('\n'));
    const record = (JSON.parse(out.join('\n')) as { ref: string; auth?: unknown }[]).find((r) => r.ref === lastHeld);
    assert.deepEqual(record?.auth, { arcVouchedFor: '' }, out.join('\n'));
  });

  /** The names of a header block's fields, in order (but the test store's X-Envelope-*, written as it stores a copy). */
  function fieldNames(block: string): string[] {
    return block
      .split(/\r?\n/)
      .filter((line) => line && !/^[ \t]/.test(line))
      .map((line) => line.slice(0, line.indexOf(':')))
      .filter((name) => !/^X-Envelope-/i.test(name));
  }

  it('the held copy has the fields in the order the delivered copy has them', async () => {
    // Delivered: Haraka's field on top (data_post_respond), above the X-Mailward-* fields.
    const delivered = fieldNames(await send('early@widget.test'));
    assert.equal(delivered[0], 'Authentication-Results', delivered.join(', '));
    assert.deepEqual(fieldNames(await hold('early@widget.test')), delivered);
  });

  it('without a result reported by Haraka, mailward writes its field as before', async () => {
    const block = await send('staff@widget.test');
    const fields = authResults(block);
    assert.equal(fields.length, 1, block);
    assertOurs(fields[0]!, block);
    assert.doesNotMatch(fields[0]!, /x-test/);
  });

  it('an authserv-id other than the host name: mailward keeps a field of its own beside Haraka\'s', async () => {
    writeFileSync(join(haraka.configDir, 'mailward.auth.ini'), '[headers]\nauthserv_id = auth.widget.test\n');
    const deadline = Date.now() + 10_000;
    while (!/mailward configuration reloaded/.test(haraka.logs()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.match(haraka.logs(), /mailward configuration reloaded/);
    const block = await send('both@widget.test');
    const fields = authResults(block);
    assert.equal(fields.length, 2, block);
    const ours = fields.find((f) => f.startsWith('auth.widget.test;'));
    const haraka_ = fields.find((f) => f.startsWith('mx.widget.test;'));
    assert.ok(ours && haraka_, block);
    assertOurs(ours, block);
    assert.match(haraka_, /x-test=pass \(early\).*x-test=pass \(late\)/, block);
    assert.doesNotMatch(haraka_, /spf=|dkim=|dmarc=/, block);
    assert.doesNotMatch(block, /AUTH_RESULTS_FORGED/);

    const held = await hold('early@widget.test');
    const heldFields = authResults(held);
    assert.equal(heldFields.length, 2, held);
    assertOurs(heldFields.find((f) => f.startsWith('auth.widget.test;')) ?? '', held);
    assert.equal(heldFields.find((f) => f.startsWith('mx.widget.test;')), 'mx.widget.test; x-test=pass (early)', held);
    // Delivered: ours on top (queue hook), Haraka's below it, then the X-Mailward-* fields; held alike.
    const delivered = await send('early@widget.test');
    const names = fieldNames(delivered);
    assert.deepEqual(names.slice(0, 3), ['Authentication-Results', 'Authentication-Results', 'X-Mailward-Score'], delivered);
    assert.match(authResults(delivered)[0]!, /^auth\.widget\.test; /, delivered);
    assert.deepEqual(fieldNames(held), names);
    assert.deepEqual(authResults(held).map((f) => f.split(';')[0]), authResults(delivered).map((f) => f.split(';')[0]));
  });
});

// With Haraka's clean_auth_results = false the sender's Authentication-Results reach mailward as they came
// (not renamed Original-Authentication-Results): a forged one in our name may carry exactly what Haraka or
// mailward would write.
const PRE_REPORTER = `
const addr = (a) => String(typeof a.address === 'function' ? a.address() : a.address);
exports.register = function () {
  this.register_hook('ehlo', 'report_ehlo');
  // In data_post before mailward's checks (-20): no result at data_done, so no field of Haraka's then.
  this.register_hook('data_post', 'report_pre', -50);
  // At DATA, before the message: a field above the message's own (as haraka-plugin-fcrdns adds).
  this.register_hook('data', 'tag');
};
exports.tag = function (next, connection) {
  if (connection.transaction.rcpt_to.some((r) => /^pretag@/.test(addr(r)))) connection.transaction.add_header('X-Test-Tag', 'data hook');
  next();
};
exports.report_ehlo = function (next, connection, helo) {
  if (helo === 'conn.sender.test') connection.auth_results('x-test=fail (conn)');
  next();
};
exports.report_pre = function (next, connection) {
  if (connection.transaction.rcpt_to.some((r) => /^pre(tag)?@/.test(addr(r)))) connection.auth_results('x-test=pass (pre)');
  next();
};
`;

describe('Authentication-Results in our name from the sender, with clean_auth_results = false', function () {
  this.timeout(60_000);
  let world: AuthWorld;
  let haraka: HarakaInstance;

  before(async () => {
    world = await startAuthWorld();
    haraka = await startHaraka({
      plugins: ['mailward/plugins/auth'],
      pluginFiles: { test_auth_pre_reporter: PRE_REPORTER },
      hostList: ['widget.test'],
      me: 'mx.widget.test',
      files: {
        'mailward.ini': harakaIni(world),
        // Haraka's own connection.ini, but the setting.
        'connection.ini': readFileSync(repoPath('node_modules', 'Haraka', 'config', 'connection.ini'), 'utf8').replace(/^\[headers\]$/m, '[headers]\nclean_auth_results = false'),
      },
    });
  });
  after(async () => {
    await haraka?.stop();
    if (haraka) removeDir(haraka.dir);
    await world?.stop();
  });

  /** Sends raw (signed by example.com); the delivered copy's header block. */
  async function send(to: string, raw: string, helo = 'mail.sender.test'): Promise<string> {
    const before = new Set(haraka.delivered());
    const result = await sendMail({ port: haraka.port, from: 'alice@example.com', to: [to], raw, localAddress: IP.example, helo });
    assert.equal(result.code, 250, result.response);
    const fresh = haraka.delivered().filter((f) => !before.has(f));
    assert.equal(fresh.length, 1);
    const text = readFileSync(fresh[0]!, 'utf8');
    return text.slice(0, text.search(/\r?\n\r?\n/));
  }

  /** The header block's fields, each unfolded as it was written (folding takes nothing out). */
  function fields(block: string): { name: string; value: string }[] {
    return block
      .replace(/\r?\n(?=[ \t])/g, '')
      .split(/\r?\n/)
      .map((line) => ({ name: line.slice(0, line.indexOf(':')), value: line.slice(line.indexOf(':') + 1).trim() }));
  }

  it('a forged field with the content of the one Haraka appends, results of the connection\'s only: still forged', async () => {
    const raw = await sign(message({ to: 'staff@widget.test', headers: { 'Authentication-Results': 'mx.widget.test;\r\n\tx-test=fail (conn)' } }), 'example.com', 's1', world.keys.example);
    const block = await send('staff@widget.test', raw, 'conn.sender.test');
    assert.match(block, /AUTH_RESULTS_FORGED/, block);
    // Haraka's field, ours in it; the forged one gone with the rest of the name.
    const ars = fields(block).filter((f) => f.name === 'Authentication-Results');
    assert.equal(ars.length, 1, block);
    assert.match(ars[0]!.value, /^mx\.widget\.test;\s+x-test=fail \(conn\);.*spf=pass/, block);
  });

  it('a forged field with the content Haraka collected in data_post before mailward (no field of Haraka\'s at data_done): forged', async () => {
    const raw = await sign(message({ to: 'pre@widget.test', headers: { 'Authentication-Results': 'mx.widget.test;\r\n\tx-test=pass (pre)' } }), 'example.com', 's1', world.keys.example);
    const block = await send('pre@widget.test', raw);
    assert.match(block, /AUTH_RESULTS_FORGED/, block);
    const ars = fields(block).filter((f) => f.name === 'Authentication-Results');
    assert.equal(ars.length, 1, block);
    assert.match(ars[0]!.value, /^mx\.widget\.test;\s+x-test=pass \(pre\);.*spf=pass/, block);
  });

  it('a forged field with the content Haraka collected, the last of the message\'s, below a field a plugin added at DATA: forged', async () => {
    // The plugin's field stands above the message's own: the sender's last field is one place lower
    // than the message's field count, where Haraka's data_done field would be.
    const raw = await sign(message({ to: 'pretag@widget.test', headers: { 'Authentication-Results': 'mx.widget.test;\r\n\tx-test=pass (pre)' } }), 'example.com', 's1', world.keys.example);
    const block = await send('pretag@widget.test', raw);
    assert.match(block, /^X-Test-Tag: data hook/m, block);
    assert.match(block, /AUTH_RESULTS_FORGED/, block);
    const ars = fields(block).filter((f) => f.name === 'Authentication-Results');
    assert.equal(ars.length, 1, block);
    assert.match(ars[0]!.value, /^mx\.widget\.test;\s+x-test=pass \(pre\);.*spf=pass/, block);
  });

  it('a forged field with exactly the value of ours: ours goes on top, the forged one goes', async () => {
    const raw = await sign(message({ to: 'staff@widget.test' }), 'example.com', 's1', world.keys.example);
    const first = fields(await send('staff@widget.test', raw));
    const ours = first.find((f) => f.name === 'Authentication-Results')!.value;
    assert.match(ours, /^mx\.widget\.test; .*spf=pass/);
    // The same signed message, with ours (as the first delivery had it) written by the sender.
    const block = await send('staff@widget.test', `Authentication-Results: ${ours}\r\n${raw}`);
    assert.match(block, /AUTH_RESULTS_FORGED/, block);
    const all = fields(block);
    const ars = all.filter((f) => f.name === 'Authentication-Results');
    assert.equal(ars.length, 1, block);
    assert.equal(ars[0]!.value, ours, block);
    // On top, above Haraka's Received, as the first delivery had it, not at the end of the sender's fields.
    assert.deepEqual(
      all.map((f) => f.name).slice(0, all.findIndex((f) => f.name === 'Received')),
      first.map((f) => f.name).slice(0, first.findIndex((f) => f.name === 'Received')),
      block,
    );
    assert.ok(all.findIndex((f) => f.name === 'Authentication-Results') < all.findIndex((f) => f.name === 'Received'), block);
  });
});
