import assert from 'node:assert/strict';
import { domainsWritten } from '../lib/checks/antispoof/written';
import { mailboxesOf } from '../lib/message';
import { asciiDomain } from '../lib/util/domain';

/** The local domain the parsed part of a From: reads in one address (the address parser, then asciiDomain). */
const parsedDomain = (address: string): string => asciiDomain(mailboxesOf([address])[0]?.address.split('@').pop() ?? '');

describe('antispoof: our domains written as text past the parse budget (review of 4d3e1ca)', () => {
  const domains = ['example.com', 'widget.test', 'xn--bcher-kva.test'];
  const filler = Array.from({ length: 50 }, (_, i) => `user${i}@d${i}.example.org`).join(', ');

  it('finds what the parsed part claims: Unicode and fullwidth forms, IDNA-ignored characters, blanks and a comment after @, any case, a trailing dot', () => {
    // namesDomain searched the lower-cased text for the ASCII domain right after '@' or '.': each of these the address
    // parser and asciiDomain read as ours within the budget went unclaimed beyond it.
    for (const [address, domain] of [
      ['ceo@b\u00fccher.test', 'xn--bcher-kva.test'],
      ['ceo@BU\u0308CHER.test', 'xn--bcher-kva.test'],
      ['ceo@\uff57\uff49\uff44\uff47\uff45\uff54.test', 'widget.test'],
      ['ceo@widget\u3002test', 'widget.test'],
      ['ceo@wid\u00adget.test', 'widget.test'],
      ['ceo@ widget.test', 'widget.test'],
      ['ceo@(boss) widget.test', 'widget.test'],
      ['"CEO" <ceo@mail.EXAMPLE.COM.>', 'example.com'],
    ] as const) {
      assert.equal(parsedDomain(address), address.includes('mail.') ? 'mail.example.com' : domain, `parsed: ${address}`);
      assert.deepEqual(domainsWritten(`${filler}, ${address}`, domains), [domain], address);
    }
  });

  it('still whole labels only, at every boundary an address has', () => {
    for (const end of ['', '>', ',', ';', ' ', ')', '.', '.>', '\r']) {
      assert.deepEqual(domainsWritten(`${filler}, <ceo@widget.test${end}`, domains), ['widget.test'], JSON.stringify(end));
    }
    for (const address of ['ceo@widget.testing', 'ceo@widget.test-shop.example.org', 'ceo@widget.test.evil.example', 'ceo@mywidget.test', 'ceo@b\u00fccher.testing', 'ceo@widget.test\u00e9.example.org', 'ceo@widget.test_x', 'ceo@x widget.test']) {
      assert.deepEqual(domainsWritten(`${filler}, ${address}`, domains), [], address);
    }
  });

  it('reads back over any blanks after the @, and over a comment within a bound: 200,000 ")" after one "(" end (no quadratic look-back)', () => {
    assert.deepEqual(domainsWritten(`${filler}, ceo@${' \r\n'.repeat(50_000)}widget.test`, domains), ['widget.test']);
    assert.deepEqual(domainsWritten(`(${')widget.test'.repeat(200_000)}`, domains), []);
    assert.deepEqual(domainsWritten(`${'@ widget.testx'.repeat(200_000)}`, domains), []);
  });

  it('review of ddab438: comments that each hold occurrences are walked back over once, not once per occurrence', () => {
    // The walk back from each occurrence crossed every comment before it (each `(...)` holding twenty occurrences of
    // its own): quadratic, 100 KB of this took 5 s and these 1.4 MB minutes (no assertion on time: mocha's timeout).
    const group = `(${')widget.test'.repeat(20)})`;
    assert.deepEqual(domainsWritten(`x${group.repeat(6_000)}`, domains), []);
    assert.deepEqual(domainsWritten(`ceo@${group.repeat(6_000)}`, domains), ['widget.test']);
    assert.deepEqual(domainsWritten(`ceo@${group.repeat(3)}x${group.repeat(3)}`, domains), ['widget.test']);
  });
});
