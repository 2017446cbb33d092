// Red team 4 (low): learnt sender-domain reputation was keyed by the exact envelope domain, so a
// domain with a bad reputation shed it by sending from any fresh subdomain (wildcard DNS).
// Now events are recorded for the organisation's aggregate too (rep:org:, the organisational domain
// and all its subdomains), and a subdomain with too little history of its own is judged by it when it
// is bad; one with a history answers for itself. Review rv2: the aggregate used to be the
// organisational domain's own rep:dom: key, so one customer's subdomain made the ESP's own mail bad,
// and one ham event made a fresh subdomain "have a history".
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMailward, type Mailward } from '../lib';
import { recordEvent, recordVerdict, type ReputationSettings } from '../lib/checks/reputation';
import { domainEntities, domainEntity, LearnedStore, MIN_OWN_HISTORY, orgEntity, parseEntity } from '../lib/checks/reputation/learned';

describe('reputation: a subdomain does not shed its organisational domain\'s reputation', function () {
  let dir: string;
  let mw: Mailward;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'mw-sub-'));
    writeFileSync(join(dir, 'mailward.ini'), `[main]\ndata_dir = ${dir}\n[dns]\nservers = 127.0.0.1:9\ntimeout_ms = 200\n[tracking]\nenabled = false\n`);
    writeFileSync(join(dir, 'mailward.reputation.ini'), `[practices]\nenabled = false\n`);
    mw = createMailward({ configDir: dir, modules: ['builtin', 'reputation'] });
  });
  afterEach(async () => {
    await mw.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const settings = () => mw.runtime.config.modules.find((m) => m.module.name === 'reputation')!.settings as ReputationSettings;
  const scan = (from: string) => mw.scan({ ip: '203.0.113.5', mailFrom: from, rcptTo: ['bob@example.com'], raw: `From: ${from}\r\nSubject: x\r\n\r\nx\r\n` });
  const bad = async (from: string) => (await scan(from)).verdict.symbols.find((s) => s.name === 'REP_DOMAIN_BAD');

  it('complaints against spammer.example reach x1.spammer.example', async () => {
    await recordEvent(mw.runtime.services, settings(), 'spammer.example', 'complaint', 10);
    assert.ok(await bad('x@spammer.example'));
    const sub = await bad('x@x1.spammer.example');
    assert.ok(sub, 'REP_DOMAIN_BAD for a fresh subdomain');
    assert.match(sub.detail, /organisational domain spammer\.example/);
    assert.ok(!(await bad('x@other.example')));
  });

  it('what a subdomain earns is recorded for its organisation\'s aggregate too, and a fresh sibling is judged by it', async () => {
    // A verdict bound to the envelope (SPF passed for it) from a subdomain.
    const r = await scan('x@x2.spammer.example');
    r.context.notes.auth = { spf: { result: 'pass', domain: 'x2.spammer.example' }, dkim: [] };
    for (let i = 0; i < 5; i++) await recordVerdict(mw.runtime.services, settings(), r.context, { ...r.verdict, score: 50, symbols: [], forced: undefined });
    const store = new LearnedStore(mw.runtime.services.state, settings().learned, mw.runtime.services.clock);
    assert.equal((await store.read(orgEntity('spammer.example'))).raw.spam, 5);
    assert.equal((await store.read(domainEntity('x2.spammer.example'))).raw.spam, 5);
    assert.equal((await store.read(domainEntity('spammer.example'))).raw.spam, 0, 'not the organisational domain\'s own key');
    assert.ok(await bad('x@x3.spammer.example'), 'another fresh subdomain');
  });

  it('a subdomain with a history of its own answers for itself; a fresh one does not inherit a good name', async () => {
    await recordEvent(mw.runtime.services, settings(), 'esp.example', 'complaint', 10);
    await recordEvent(mw.runtime.services, settings(), 'u1.esp.example', 'ham', 20);
    assert.ok(!(await bad('x@u1.esp.example')), 'one customer with a good history is not spoilt by the organisation');
    assert.ok(await bad('x@u2.esp.example'), 'a fresh subdomain still gets the bad organisational name');
    await recordEvent(mw.runtime.services, settings(), 'bank.example', 'ham', 20);
    const fresh = (await scan('x@new.bank.example')).verdict.symbols.map((s) => s.name);
    assert.ok(!fresh.includes('REP_DOMAIN_GOOD') && !fresh.includes('REP_DOMAIN_BAD'), fresh.join(' '));
  });

  it('private suffixes count as suffixes: one customer does not spoil another', () => {
    const keys = (d: string) => domainEntities(d).map((e) => `${e.type}:${e.id}`);
    assert.deepEqual(keys('a.b.spammer.example'), ['domain:a.b.spammer.example', 'org:spammer.example']);
    assert.deepEqual(keys('spammer.example'), ['domain:spammer.example', 'org:spammer.example']);
    assert.deepEqual(keys('mail.example.co.uk'), ['domain:mail.example.co.uk', 'org:example.co.uk']);
    assert.deepEqual(keys('shop.herokuapp.com'), ['domain:shop.herokuapp.com', 'org:shop.herokuapp.com']);
  });

  it('a customer subdomain\'s spam does not make the organisational domain\'s own mail bad (review rv2, case 1)', async () => {
    await recordEvent(mw.runtime.services, settings(), 'esp.example', 'ham', 20); // the ESP's own good history
    const r = await scan('x@u7.esp.example');
    r.context.notes.auth = { spf: { result: 'pass', domain: 'u7.esp.example' }, dkim: [] };
    for (let i = 0; i < 30; i++) await recordVerdict(mw.runtime.services, settings(), r.context, { ...r.verdict, score: 50, symbols: [], forced: undefined });
    assert.ok(!(await bad('noreply@esp.example')), 'esp.example\'s own mail is judged by its own events');
    assert.ok(await bad('x@u7.esp.example'), 'the customer answers for itself');
    const store = new LearnedStore(mw.runtime.services.state, settings().learned, mw.runtime.services.clock);
    assert.equal((await store.read(domainEntity('esp.example'))).raw.spam, 0);
    assert.deepEqual({ ham: (await store.read(orgEntity('esp.example'))).raw.ham, spam: (await store.read(orgEntity('esp.example'))).raw.spam }, { ham: 20, spam: 30 });
    // The aggregate is a key of its own, which `mailward reputation show org:esp.example` reads.
    assert.deepEqual(parseEntity('org:u7.esp.example'), orgEntity('esp.example'));
    assert.equal(await mw.runtime.services.state.hashGetAll('rep:dom:esp.example').then((f) => Object.keys(f).some((k) => k.endsWith(':spam'))), false);
  });

  it('one ham event on a fresh subdomain does not shed the organisation\'s bad name (review rv2, case 2)', async () => {
    await recordEvent(mw.runtime.services, settings(), 'spammer.example', 'complaint', 10);
    assert.ok(await bad('x@x9.spammer.example'));
    await recordEvent(mw.runtime.services, settings(), 'x9.spammer.example', 'ham', 1);
    const after = await bad('x@x9.spammer.example');
    assert.ok(after, 'still judged by the organisation');
    assert.match(after.detail, /organisational domain spammer\.example/);
    // Enough history of its own, and it answers for itself.
    await recordEvent(mw.runtime.services, settings(), 'x9.spammer.example', 'ham', MIN_OWN_HISTORY);
    assert.ok(!(await bad('x@x9.spammer.example')));
  });
});
