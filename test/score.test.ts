import assert from 'node:assert/strict';
import { ConfigError } from '../lib/config/errors';
import { Ledger } from '../lib/score/ledger';
import { SymbolTable } from '../lib/score/symbol-table';
import { actionForScore, decide, smtpReplyText, type ActionPolicy } from '../lib/score/verdict';

const table = () =>
  new SymbolTable([
    { name: 'DNSBL_LISTED', score: 6, group: 'reputation', description: 'listed' },
    { name: 'DMARC_POLICY_REJECT', score: 8, group: 'auth', description: 'dmarc reject' },
    { name: 'BAYES_SPAM', score: 5, group: 'content', description: 'bayes' },
    { name: 'DNSWL_HI', score: -4, group: 'reputation', description: 'allow list' },
    { name: 'SPOOF_LOCAL_DOMAIN', score: 12, group: 'antispoof', description: 'spoof' },
  ]);

const policy = (over: Partial<ActionPolicy> = {}): ActionPolicy => ({
  thresholds: { reject: 15, soft_reject: 10, quarantine: 8, add_header: 5 },
  domains: new Map(),
  notOverridable: new Set(['SPOOF_LOCAL_DOMAIN']),
  ...over,
});

describe('Ledger', () => {
  it('resolves weights from the table, totals and groups them', () => {
    const ledger = new Ledger(table());
    ledger.add('DNSBL_LISTED');
    ledger.add({ name: 'DMARC_POLICY_REJECT', detail: 'p=reject' });
    ledger.add('DNSWL_HI');
    assert.equal(ledger.total, 10);
    assert.deepEqual(ledger.groups, { reputation: 2, auth: 8 });
    assert.equal(ledger.get('DMARC_POLICY_REJECT')!.detail, 'p=reject');
  });

  it('scales by factor and keeps one entry per symbol (the stronger score)', () => {
    const ledger = new Ledger(table());
    ledger.add({ name: 'BAYES_SPAM', factor: 0.5, detail: 'p=0.9' });
    ledger.add({ name: 'BAYES_SPAM', factor: 0.9, detail: 'p=0.99' });
    assert.equal(ledger.symbols.length, 1);
    assert.equal(ledger.get('BAYES_SPAM')!.score, 4.5);
    assert.equal(ledger.get('BAYES_SPAM')!.detail, 'p=0.9; p=0.99');
  });

  it('a symbol repeated thousands of times shows the first details and counts the rest', () => {
    // Each repeat searched and copied the whole detail so far: quadratic in a check adding one hit per address.
    const ledger = new Ledger(table());
    for (let i = 0; i < 20_000; i++) ledger.add({ name: 'BAYES_SPAM', detail: `address${i}@example.com is one of many` });
    const { detail } = ledger.get('BAYES_SPAM')!;
    assert.ok(detail.length < 4200, `${detail.length} characters`);
    assert.match(detail, /^address0@example\.com is one of many; address1@example\.com/);
    assert.match(detail, /; and 19\d{3} more$/);
    ledger.add({ name: 'BAYES_SPAM', detail: 'address5@example.com is one of many' });
    assert.match(ledger.get('BAYES_SPAM')!.detail, /; and 19\d{3} more$/);
  });

  it('counts a detail left out once, however often it repeats past the bound', () => {
    // "and N more" said N details: one omitted detail repeated counted each repeat, where a shown one is never repeated.
    const ledger = new Ledger(table());
    ledger.add({ name: 'BAYES_SPAM', detail: 'x'.repeat(3990) });
    for (let i = 0; i < 5; i++) ledger.add({ name: 'BAYES_SPAM', detail: 'the same left-out detail' });
    ledger.add({ name: 'BAYES_SPAM', detail: 'another left-out detail' });
    assert.match(ledger.get('BAYES_SPAM')!.detail, /; and 2 more$/);
  });

  it('counts a weight that is not a finite number as 0 and says so: one NaN would turn the total into NaN, below every threshold', () => {
    const ledger = new Ledger(table());
    ledger.add({ name: 'BAYES_SPAM', factor: Infinity / Infinity, detail: 'p=0.99' });
    ledger.add('DNSBL_LISTED');
    assert.equal(ledger.total, 6);
    assert.match(ledger.get('BAYES_SPAM')!.detail, /^p=0\.99 \(weight 5 × factor NaN is not a finite number: counted as 0\)$/);
  });

  it('refuses an unregistered symbol instead of scoring it zero', () => {
    assert.throws(() => new Ledger(table()).add('NO_SUCH_SYMBOL'), /unknown symbol NO_SUCH_SYMBOL/);
  });

  it('orders symbols by absolute score for explanations', () => {
    const ledger = new Ledger(table());
    ledger.add('DNSWL_HI');
    ledger.add('DMARC_POLICY_REJECT');
    ledger.add('DNSBL_LISTED');
    assert.deepEqual(ledger.symbols.map((s) => s.name), ['DMARC_POLICY_REJECT', 'DNSBL_LISTED', 'DNSWL_HI']);
  });

  it('keeps the harsher of two forced actions', () => {
    const ledger = new Ledger(table());
    ledger.force({ action: 'reject', source: 'rule a', reason: 'blocked' });
    ledger.force({ action: 'accept', source: 'allow list', reason: 'allowed' });
    assert.equal(ledger.forced!.action, 'reject');
  });

  it('names the first 1,000 refused recipients and counts the rest, still answering the RCPT being refused', () => {
    // Before: every refused RCPT TO of a transaction was kept by name (100,000 of them: a map as large).
    const ledger = new Ledger(table());
    for (let i = 0; i < 1500; i++) {
      ledger.refuseRecipient(`Trap-${i}@example.com`, 'mailbox unavailable');
      // A second check refusing the same RCPT (a spam trap and a block rule) counts once.
      if (i % 2) ledger.refuseRecipient(`trap-${i}@example.com`, 'rule r: blocked');
      assert.ok(ledger.refusal(`trap-${i}@Example.com`), `RCPT ${i} was not told it is refused`);
    }
    assert.equal(ledger.refusedRecipients.size, 1000);
    assert.equal(ledger.refusedCount, 1500);
    assert.equal(ledger.refusal('trap-1@example.com'), 'rule r: blocked');
    assert.equal(ledger.refusal('trap-1200@example.com'), undefined, 'past the first 1,000 only the latest is known');
    assert.equal(ledger.refusal('bob@example.com'), undefined);
  });
});

describe('SymbolTable', () => {
  it('applies [scores] overrides', () => {
    const t = table();
    t.applyOverrides({ DNSBL_LISTED: '7.5' }, 'mailward.ini');
    assert.equal(t.get('DNSBL_LISTED').score, 7.5);
  });

  it('rejects an override of an unknown symbol, naming file, section and key', () => {
    assert.throws(
      () => table().applyOverrides({ DNSBL_LISTD: '3' }, 'mailward.ini'),
      (err: unknown) => err instanceof ConfigError && err.message === 'mailward.ini [scores] DNSBL_LISTD: no such symbol (see docs/symbols.md)',
    );
  });

  it('rejects a non-numeric override', () => {
    assert.throws(() => table().applyOverrides({ DNSBL_LISTED: 'high' }, 'mailward.ini'), /\[scores\] DNSBL_LISTED: expected a number/);
  });

  it('rejects names that are not UPPER_SNAKE', () => {
    assert.throws(() => new SymbolTable([{ name: 'lower', score: 1, group: 'x', description: '' }]), /UPPER_SNAKE/);
  });
});

describe('thresholds and decide', () => {
  it('maps scores to actions at the documented defaults', () => {
    const t = policy().thresholds;
    assert.equal(actionForScore(4.99, t), 'accept');
    assert.equal(actionForScore(5, t), 'add_header');
    assert.equal(actionForScore(8, t), 'quarantine');
    assert.equal(actionForScore(10, t), 'soft_reject');
    assert.equal(actionForScore(15, t), 'reject');
  });

  it('explains a threshold verdict and builds a 550 text with the ref and symbols', () => {
    const ledger = new Ledger(table());
    ledger.add('DNSBL_LISTED');
    ledger.add('DMARC_POLICY_REJECT');
    ledger.add('DNSBL_LISTED');
    ledger.add('BAYES_SPAM');
    const verdict = decide(ledger, policy(), ['bob@example.com'], '7KQ2M9X');
    assert.equal(verdict.action, 'reject');
    assert.equal(verdict.reason, 'score 19 reached the reject threshold 15');
    assert.equal(smtpReplyText(verdict), 'Message rejected as spam (ref 7KQ2M9X: DMARC_POLICY_REJECT 8, DNSBL_LISTED 6, BAYES_SPAM 5)');
  });

  it('the reply also names what lowered the score: the listed symbols add up to the score that decided', () => {
    const ledger = new Ledger(table());
    ledger.add('DMARC_POLICY_REJECT');
    ledger.add('DNSBL_LISTED');
    ledger.add('DNSWL_HI');
    const verdict = decide(ledger, policy(), ['bob@example.com'], 'ABCDEFGHJK');
    assert.equal(verdict.score, 10);
    assert.equal(smtpReplyText(verdict), 'Message deferred, try again later (ref ABCDEFGHJK: DMARC_POLICY_REJECT 8, DNSBL_LISTED 6, DNSWL_HI -4)');
  });

  it('uses per-recipient-domain thresholds, and the mildest action across domains', () => {
    const ledger = new Ledger(table());
    ledger.add('DNSBL_LISTED');
    ledger.add('DMARC_POLICY_REJECT');
    const lenient = { reject: 30, soft_reject: 25, quarantine: 20, add_header: 12 };
    const p = policy({ domains: new Map([['lenient.example', lenient]]) });
    assert.equal(decide(ledger, p, ['a@strict.example']).action, 'soft_reject');
    assert.equal(decide(ledger, p, ['a@lenient.example']).action, 'add_header');
    assert.equal(decide(ledger, p, ['a@strict.example', 'b@lenient.example']).action, 'add_header');
  });

  it('counts a capped group (content) per recipient domain: below each domain\'s refusing thresholds, never lowered for the others', () => {
    const strict = { reject: 8, soft_reject: 4, quarantine: 3, add_header: 2 };
    const p = policy({ domains: new Map([['strict.example', strict]]) });
    const ledger = new Ledger(table());
    ledger.add('BAYES_SPAM');
    // Not capped: content alone (5) refuses mail to strict.example.
    assert.equal(decide(ledger, p, ['a@strict.example']).action, 'soft_reject');
    ledger.capGroup('content', 9);
    const alone = decide(ledger, p, ['a@strict.example']);
    assert.deepEqual([alone.action, alone.score, alone.groups], ['quarantine', 3.99, { content: 3.99 }]);
    assert.equal(alone.reason, 'score 3.99 (content 5 capped at 3.99 for strict.example) reached the quarantine threshold 3');
    // example.com counts all 5 (add_header), whichever recipient comes first.
    for (const rcpts of [['a@strict.example', 'b@example.com'], ['b@example.com', 'a@strict.example']]) {
      const both = decide(ledger, p, rcpts);
      assert.deepEqual([both.action, both.score, both.groups], ['add_header', 5, { content: 5 }]);
    }
    // Other groups count in full: the cap only keeps content from refusing alone.
    ledger.add('DNSBL_LISTED');
    const mixed = decide(ledger, p, ['a@strict.example']);
    assert.deepEqual([mixed.action, mixed.score, mixed.groups], ['reject', 9.99, { content: 3.99, reputation: 6 }]);
  });

  it('lets a forced allow win over the score, and explains it', () => {
    const ledger = new Ledger(table());
    ledger.add('DNSBL_LISTED');
    ledger.add('DMARC_POLICY_REJECT');
    ledger.add('BAYES_SPAM');
    ledger.force({ action: 'accept', source: 'allow list (partner.example)', reason: 'sender authenticated by DKIM' });
    const verdict = decide(ledger, policy(), ['bob@example.com']);
    assert.equal(verdict.action, 'accept');
    assert.match(verdict.reason, /^accept forced by allow list \(partner\.example\): sender authenticated by DKIM \(score 19 would give reject\)$/);
  });

  it('does not let an allow override a not-overridable finding, and says both', () => {
    const ledger = new Ledger(table());
    ledger.add('SPOOF_LOCAL_DOMAIN');
    ledger.add('DNSBL_LISTED');
    ledger.force({ action: 'accept', source: 'allow list (example.com)', reason: 'listed sender' });
    const verdict = decide(ledger, policy(), ['bob@example.com']);
    assert.equal(verdict.action, 'reject');
    assert.match(verdict.reason, /allow list \(example\.com\) would allow this message .* but SPOOF_LOCAL_DOMAIN cannot be overridden; score 18 gives reject/);
  });

  it('keeps the reply in one SMTP line with the ref, however long the symbol or rule names: the names that do not fit are counted', () => {
    // 8 symbols of ~120 characters: listed whole they made a reply of over 1000 octets.
    const names = Array.from({ length: 10 }, (_, i) => `CUSTOM_${i}_${'VERY_LONG_SYMBOL_NAME_'.repeat(5)}`);
    const long = new SymbolTable(names.map((name, i) => ({ name, score: 10 - i / 10, group: 'rules', description: 'custom' })));
    const ledger = new Ledger(long);
    for (const name of names) ledger.add(name);
    const verdict = decide(ledger, policy(), ['bob@example.com'], 'ABCDEFGHJK');
    const text = smtpReplyText(verdict);
    // "550 " + "5.7.1 " + text + CRLF, with room for Haraka's "[uuid@host] " in front.
    assert.ok(Buffer.byteLength(`5.7.1 ${text}`) <= 400, `${Buffer.byteLength(text)} octets: ${text}`);
    assert.match(text, /^Message rejected as spam \(ref ABCDEFGHJK: CUSTOM_0_VERY_LONG_SYMBOL_NAME_.* 10, .*\+\d+ more\)$/);
    assert.equal(/\+(\d+) more/.exec(text)![1], String(10 - text.split(', ').length + 1), 'every symbol left out is counted');

    const forced = new Ledger(table());
    forced.force({ action: 'reject', source: `block list (${Array.from({ length: 40 }, (_, i) => `user${i}@example.com: *@spam${i}.example`).join('; ')})`, reason: 'sender is blocked' });
    const byList = smtpReplyText(decide(forced, policy(), ['bob@example.com'], 'ABCDEFGHJK'));
    assert.ok(Buffer.byteLength(`5.7.1 ${byList}`) <= 400, byList);
    assert.match(byList, /^Message rejected as spam \(ref ABCDEFGHJK: block list \(user0@example\.com: .*\.\.\.\)$/);
  });

  it('lets a forced block refuse a low-scoring message, naming the rule in the reply', () => {
    const ledger = new Ledger(table());
    ledger.force({ action: 'reject', source: 'rule no-lottery', reason: 'subject matches lottery' });
    const verdict = decide(ledger, policy(), ['bob@example.com'], 'ABCDEFG');
    assert.equal(verdict.action, 'reject');
    assert.equal(smtpReplyText(verdict), 'Message rejected as spam (ref ABCDEFG: rule no-lottery)');
  });
});
