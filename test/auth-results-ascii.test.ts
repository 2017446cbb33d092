// Authentication-Results with non-ASCII text (an SMTPUTF8 sender, a U-label
// domain, a failed SMTP AUTH's user name) is written in ASCII, never RFC
// 2047-encoded: RFC 8601 readers do not decode encoded words there, and an
// encoded word swallowed smtp.mailfrom, the ";" after it and a comment's ")".
import assert from 'node:assert/strict';
import { resinfoEntries } from '../lib/checks/auth';
import { withHeaderChanges } from '../lib/message';
import { asciiAuthResults } from '../lib/util/auth-results-value';
import { writtenValue } from '../plugins/shared/adapter';

// mailauth's own formatting and its own Authentication-Results parser (what it reads ARC and DKIM results with).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { formatAuthHeaderRow } = require('mailauth/lib/tools') as { formatAuthHeaderRow: (method: string, status: object) => string };
// eslint-disable-next-line @typescript-eslint/no-require-imports
const parseHeader = require('mailauth/lib/parse-dkim-headers') as (field: string) => { parsed: any };

const AR = 'Authentication-Results';

/** A value as mailauth writes it for an SMTPUTF8 sender at a U-label domain, signed by that domain. */
function mailauthValue(mailfrom: string): string {
  return [
    'mx.widget.test',
    formatAuthHeaderRow('spf', {
      result: 'pass',
      comment: `mx.widget.test: domain of ${mailfrom} designates 192.0.2.1 as permitted sender`,
      smtp: { mailfrom, helo: 'mail.münchen.example' },
    }),
    formatAuthHeaderRow('dkim', { result: 'pass', header: { i: '@münchen.example', s: 's1' } }),
    formatAuthHeaderRow('dmarc', { result: 'pass', comment: 'p=REJECT ü', header: { from: 'münchen.example' } }),
  ].join('; ');
}

/** The field as an RFC 8601 reader sees it: unfolded, nothing decoded. */
function unfolded(written: string): string {
  assert.doesNotMatch(written, /=\?/, written);
  assert.match(written, /^[\x00-\x7f]*$/, written);
  return written.replace(/\r?\n[ \t]+/g, ' ');
}

function assertParsed(value: string, mailfrom: string): void {
  const { parsed } = parseHeader(`${AR}: ${value}`);
  assert.equal(parsed.value, 'mx.widget.test', value);
  assert.equal(parsed.spf?.value, 'pass', value);
  assert.equal(parsed.spf?.smtp?.mailfrom, mailfrom, value);
  assert.equal(parsed.spf?.smtp?.helo, 'mail.xn--mnchen-3ya.example', value);
  assert.equal(parsed.dkim?.[0]?.header?.i, '@xn--mnchen-3ya.example', value);
  assert.equal(parsed.dmarc?.value, 'pass', value);
  assert.equal(parsed.dmarc?.header?.from, 'xn--mnchen-3ya.example', value);
  assert.deepEqual(
    resinfoEntries(value).entries.map((e) => e.split('=')[0]),
    ['spf', 'dkim', 'dmarc'],
    value,
  );
}

describe('Authentication-Results with non-ASCII text', () => {
  for (const [mailfrom, expected] of [
    ['alice@münchen.example', 'alice@xn--mnchen-3ya.example'],
    // A non-ASCII local part (SMTPUTF8 only): the domain alone, which RFC 8601's pvalue allows.
    ['jörg@münchen.example', 'xn--mnchen-3ya.example'],
  ] as const) {
    it(`written by withHeaderChanges: parseable, smtp.mailfrom kept (${mailfrom})`, () => {
      const raw = Buffer.from('From: a@b.example\r\nSubject: x\r\n\r\nbody\r\n');
      const out = withHeaderChanges(raw, { add: [[AR, mailauthValue(mailfrom)]], remove: [], putBack: [] }).toString('utf8');
      const field = /^Authentication-Results: ((?:.*)(?:\r\n[ \t].*)*)/m.exec(out)![1]!;
      assertParsed(unfolded(field), expected);
    });

    it(`written by the Haraka adapter: parseable, smtp.mailfrom kept (${mailfrom})`, () => {
      assertParsed(unfolded(writtenValue(AR, mailauthValue(mailfrom))), expected);
    });
  }

  it('a failed SMTP AUTH\'s non-ASCII user name: a quoted string, "?" for each non-ASCII character', () => {
    const value = 'mx.widget.test; auth=fail (plain) smtp.auth=jörg; spf=pass smtp.mailfrom=a@b.example';
    const written = unfolded(writtenValue(AR, value));
    assert.equal(written, 'mx.widget.test; auth=fail (plain) smtp.auth="j?rg"; spf=pass smtp.mailfrom=a@b.example');
    assert.equal(parseHeader(`${AR}: ${written}`).parsed.spf.smtp.mailfrom, 'a@b.example');
  });

  it('comments keep their parentheses and escapes; an ASCII value is left as it is', () => {
    assert.equal(asciiAuthResults('h; dkim=fail (bad (ü) \\) ä) header.d=b.example'), 'h; dkim=fail (bad (?) \\) ?) header.d=b.example');
    const ascii = 'h; spf=pass (x: "q;" (y)) smtp.mailfrom="a b"@c.example';
    assert.equal(asciiAuthResults(ascii), ascii);
  });

  it('a quoted value with an escaped quote; a U-label authserv-id', () => {
    assert.equal(asciiAuthResults('mx.münchen.example; x=pass smtp.auth="a\\"ü"'), 'mx.xn--mnchen-3ya.example; x=pass smtp.auth="a\\"?"');
  });
  // mailauth's Received-SPF: "<result> (<comment>) client-ip=<ip>;", its comment naming the envelope
  // sender. RFC 2047-encoded, the word of a sender at the end of the comment swallowed its ")", and
  // client-ip=... was read as part of a comment that never closed.
  for (const [label, written] of [
    ['withHeaderChanges', (value: string) => {
      const raw = Buffer.from('From: a@b.example\r\nSubject: x\r\n\r\nbody\r\n');
      const out = withHeaderChanges(raw, { add: [['Received-SPF', value]], remove: [], putBack: [] }).toString('utf8');
      return /^Received-SPF: ((?:.*)(?:\r\n[ \t].*)*)/m.exec(out)![1]!;
    }],
    ['the Haraka adapter', (value: string) => writtenValue('Received-SPF', value)],
  ] as const) {
    it(`Received-SPF with a non-ASCII sender, written by ${label}: in ASCII, its comment closed, client-ip kept`, () => {
      const value = 'neutral (mx.widget.test: 192.0.2.1 is neither permitted nor denied by domain of jörg@münchen.example) client-ip=192.0.2.1;';
      assert.equal(
        unfolded(written(value)),
        'neutral (mx.widget.test: 192.0.2.1 is neither permitted nor denied by domain of j?rg@m?nchen.example) client-ip=192.0.2.1;',
      );
    });
  }
  it('a non-ASCII space (a failed SMTP AUTH user name with U+00A0, U+2028, U+3000...) is text, not left in the field', () => {
    // auth_base writes the client's user name as given (control characters removed only). Left as it was, one
    // non-ASCII character made Haraka RFC 2047-encode the whole field again at the queue hook.
    const value = 'mx.widget.test; auth=fail (plain) smtp.auth=j\u00a0rg; spf=pass smtp.mailfrom=a@b.example';
    assert.equal(asciiAuthResults(value), 'mx.widget.test; auth=fail (plain) smtp.auth="j?rg"; spf=pass smtp.mailfrom=a@b.example');
    for (const space of ['\u0085', '\u00a0', '\u1680', '\u2000', '\u2028', '\u2029', '\u202f', '\u205f', '\u3000', '\ufeff']) {
      const written = asciiAuthResults(`mx.widget.test; auth=fail smtp.auth=a${space}b;${space}spf=pass (x${space}y) smtp.mailfrom=a@b.example`);
      assert.match(written, /^[\x00-\x7f]*$/, JSON.stringify(written));
      assert.equal(parseHeader(`${AR}: ${written}`).parsed.spf?.smtp?.mailfrom, 'a@b.example', written);
    }
  });
});
