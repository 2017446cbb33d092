// mailward quarantine release-approve of a message whose From: holds a name
// and no address: the envelope sender is not who the reader saw, so nothing
// is approved (it used to approve the envelope sender instead).
import assert from 'node:assert/strict';
import { FileQuarantine } from '../lib/quarantine';
import { entry, quarantineWorld } from './support/quarantine';

const held = (from: string) => Buffer.from(`From: ${from}\r\nTo: alice@example.com\r\nSubject: hi\r\n\r\nHello Alice\r\n`);

describe('mailward quarantine release-approve: whom it approves', () => {
  // The stand-in MTA listens in 27000-27999.
  const w = quarantineWorld('qapp', 27000);

  it('the From: address when it has one', async () => {
    await new FileQuarantine(w.qdir).put(entry('APP0000001', { mailFrom: 'bounces+x1@esp.test' }), held('Bob <bob@partner.test>'));
    const r = await w.cli('quarantine', 'release-approve', 'APP0000001');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^approved bob@partner\.test for alice@example\.com$/m);
    assert.match((await w.cli('allow', 'list')).out, /bob@partner\.test/);
  });

  it('a From: past the first 1 MB of header counts: nothing approved for a message of two authors, nor for one whose only From: there has no address', async () => {
    // approveSender counted the indexed From: only: it approved bob@partner.test for a message whose
    // second From: (ceo@bank.test, which auth judged and readers show) lay past the cut, and the
    // envelope sender for one whose only From:, a name, lay there.
    const padding = Array.from({ length: 1100 }, (_, i) => `X-Pad-${i}: ${'a'.repeat(990)}`).join('\r\n');
    const past = (top: string, below: string) => Buffer.from(`${top}To: alice@example.com\r\nSubject: hi\r\n${padding}\r\nFrom: ${below}\r\n\r\nHello Alice\r\n`);
    await new FileQuarantine(w.qdir).put(entry('APP0000007', { mailFrom: 'bounces+x1@esp.test' }), past('From: Bob <bob@partner.test>\r\n', 'CEO <ceo@bank.test>'));
    const two = await w.cli('quarantine', 'release-approve', 'APP0000007');
    assert.equal(two.code, 0, two.err);
    assert.match(two.err, /^warning: nothing approved: the message has 2 From: addresses \(bob@partner\.test, ceo@bank\.test\)/m);
    assert.doesNotMatch(two.out, /approved/);
    await new FileQuarantine(w.qdir).put(entry('APP0000008', { mailFrom: 'bounces+x1@esp.test' }), past('', 'Bob Smith'));
    const nameOnly = await w.cli('quarantine', 'release-approve', 'APP0000008');
    assert.equal(nameOnly.code, 0, nameOnly.err);
    assert.match(nameOnly.err, /^warning: nothing approved: the From: holds no address \("Bob Smith"\)/m);
    assert.doesNotMatch((await w.cli('allow', 'list')).out, /partner\.test|esp\.test/, 'nothing approved');
  });

  it('a From: past the first 1 MB of header whose address lies beyond the text parsed still counts: nothing approved', async () => {
    // authorFields parses 256 KB of From: text past the index: a 300 KB display name kept the second
    // author (ceo@bank.test, which readers show) out of the mailboxes counted, and bob@partner.test was approved.
    const padding = Array.from({ length: 1100 }, (_, i) => `X-Pad-${i}: ${'a'.repeat(990)}`).join('\r\n');
    const raw = Buffer.from(`From: Bob <bob@partner.test>\r\nTo: alice@example.com\r\nSubject: hi\r\n${padding}\r\nFrom: "${'C'.repeat(300 * 1024)}" <ceo@bank.test>\r\n\r\nHello Alice\r\n`);
    await new FileQuarantine(w.qdir).put(entry('APP0000009', { mailFrom: 'bounces+x1@esp.test' }), raw);
    const r = await w.cli('quarantine', 'release-approve', 'APP0000009');
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /^warning: nothing approved: the message has 2 From: fields, text of them past the first 1 MB of header not read/m);
    assert.doesNotMatch(r.out, /approved/);
    assert.doesNotMatch((await w.cli('allow', 'list')).out, /partner\.test|esp\.test/, 'nothing approved');
  });

  // Records held before mailward kept auth data (no `auth`): read from the symbol's detail, as then.
  // The approval warns when the held message would not have held an entry: mail a trusted ARC sealer
  // forwarded after it saw DMARC pass for that From: does ([lists] trusted_arc), a forwarding it saw fail does not.
  // The pass must name this From: domain (header.from), as for the entry: a pass for another one, or naming none, warns.
  const arcCases = [
    ['pass (header.from=partner.test)', false, 'APP0000003'],
    ['fail', true, 'APP0000004'],
    ['pass (header.from=attacker.test)', true, 'APP0000005'],
    ['pass', true, 'APP0000006'],
  ] as const;
  for (const [recorded, warned, ref] of arcCases) {
    it(`mail a trusted ARC sealer forwarded with dmarc=${recorded}: ${warned ? 'warned' : 'no warning'} that it was not authenticated`, async () => {
      const detail = `From: partner.test fails DMARC (no aligned SPF pass or DKIM signature), policy p=reject, neutralised: forwarded through trusted ARC sealer lists.example.org (i=1) which recorded dmarc=${recorded} on receipt`;
      await new FileQuarantine(w.qdir).put(entry(ref, { mailFrom: 'bounces@lists.example.org', symbols: [{ name: 'DMARC_FAIL_ARC_OVERRIDE', score: 0, group: 'auth', detail }] }), held('Bob <bob@partner.test>'));
      const r = await w.cli('quarantine', 'release-approve', ref);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /^approved bob@partner\.test for alice@example\.com$/m);
      if (warned) assert.match(r.err, /warning: the held message was not authenticated for partner\.test/);
      else assert.doesNotMatch(r.err, /was not authenticated/);
    });
  }

  // Held since mailward records it: the decision comes from the record's auth data (heldAuth at hold time), not from
  // the symbol's wording. The detail below reads as a vouch for partner.test and the data says none, and the reverse.
  const vouchLike = 'From: partner.test fails DMARC (no aligned SPF pass or DKIM signature), policy p=reject, neutralised: forwarded through trusted ARC sealer lists.example.org (i=1) which recorded dmarc=pass (header.from=partner.test) on receipt';
  const reworded = 'DMARC of partner.test neutralised by trusted ARC sealer lists.example.org (it saw dmarc=pass for partner.test)';
  const dataCases = [
    ['the data names partner.test, whatever the wording', reworded, 'partner.test', false, 'APP0000007'],
    ['the data names no domain, whatever the wording', vouchLike, '', true, 'APP0000008'],
    ['the data names another domain', vouchLike, 'attacker.test', true, 'APP0000009'],
  ] as const;
  for (const [what, detail, arcVouchedFor, warned, ref] of dataCases) {
    it(`a record with auth data: ${what} (${warned ? 'warned' : 'no warning'})`, async () => {
      const symbols = [{ name: 'DMARC_FAIL_ARC_OVERRIDE', score: 0, group: 'auth', detail }];
      await new FileQuarantine(w.qdir).put(entry(ref, { mailFrom: 'bounces@lists.example.org', symbols, auth: { arcVouchedFor } }), held('Bob <bob@partner.test>'));
      const r = await w.cli('quarantine', 'release-approve', ref);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /^approved bob@partner\.test for alice@example\.com$/m);
      if (warned) assert.match(r.err, /warning: the held message was not authenticated for partner\.test/);
      else assert.doesNotMatch(r.err, /was not authenticated/);
    });
  }

  for (const from of ['Bob Smith', '"Bob Smith"', 'Bob <>', '=?utf-8?q?ceo=40bank.test?=']) {
    it(`nothing, with a warning, when the From: holds no address (${from}); the release goes through`, async () => {
      await new FileQuarantine(w.qdir).put(entry('APP0000002', { mailFrom: 'bounces+x1@esp.test' }), held(from));
      const r = await w.cli('quarantine', 'release-approve', 'APP0000002');
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /^released APP0000002 to alice@example\.com/);
      assert.equal(w.mta.messages.length, 1);
      assert.doesNotMatch(r.out, /approved/);
      assert.match(r.err, /^warning: nothing approved: the From: holds no address \(.*\), and the envelope sender bounces\+x1@esp\.test is not who it shows/m);
      assert.doesNotMatch((await w.cli('allow', 'list')).out, /esp\.test/, 'the envelope sender is not approved');
    });
  }
});
