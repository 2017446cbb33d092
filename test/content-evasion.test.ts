// Bayes token evasion: spammers break a word ("viagra") or a link's host so
// that it never meets the token the model learnt. Each case tokenizes the
// obfuscated form and the plain one and asserts they give the same token.
import assert from 'node:assert/strict';
import { messageParts, type MessageParts } from '../lib/checks/content/parts';
import { tokenize } from '../lib/checks/content/tokenize';
import { createContext } from '../lib/message';

interface Spec {
  subject?: string;
  text?: string;
  html?: string;
}

function raw({ subject = 'Hello there', text, html }: Spec): string {
  const b64 = (t: string) => Buffer.from(t, 'utf8').toString('base64').replace(/.{76}/g, '$&\r\n');
  const head = `From: Shop <shop@example.com>\r\nTo: user@example.org\r\nSubject: =?UTF-8?B?${Buffer.from(subject).toString('base64')}?=\r\nMIME-Version: 1.0\r\n`;
  const part = (type: string, body: string) => `Content-Type: text/${type}; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n${b64(body)}\r\n`;
  return head + (html ? part('html', html) : part('plain', text ?? ''));
}

const parse = (spec: Spec): Promise<MessageParts> => messageParts(createContext({ ip: '192.0.2.1', raw: raw(spec) }));
const tokens = async (spec: Spec): Promise<string[]> => tokenize(await parse(spec));
/** Tokens that come from links. */
const linkTokens = async (spec: Spec): Promise<string[]> => (await tokens(spec)).filter((t) => /^(?:url|tld|uh|up|proto):/.test(t)).sort();

describe('content tokens: obfuscated link hosts give the plain host\'s tokens', () => {
  const same: [string, string, string][] = [
    ['capitals', 'http://WWW.PAYPAL.COM/login', 'http://www.paypal.com/login'],
    ['capitals, mixed', 'http://Mail.PayPal.com/signin/verify', 'http://mail.paypal.com/signin/verify'],
    ['a trailing dot (guard: already right)', 'http://www.paypal.com./login', 'http://www.paypal.com/login'],
    ['percent-encoded letters', 'http://www.%70ay%70al.com/login', 'http://www.paypal.com/login'],
    ['a percent-encoded dot', 'http://www.paypal%2Ecom/login', 'http://www.paypal.com/login'],
    ['fullwidth letters', 'http://ｗｗｗ.ｐａｙｐａｌ.ｃｏｍ/login', 'http://www.paypal.com/login'],
    ['a soft hyphen', 'http://www.pay\u00adpal.com/login', 'http://www.paypal.com/login'],
    ['IDN as Unicode vs punycode', 'http://www.münchen.de/angebot', 'http://www.xn--mnchen-3ya.de/angebot'],
    ['a port (guard: already right)', 'http://www.paypal.com:8080/login', 'http://www.paypal.com/login'],
  ];
  for (const [name, obfuscated, plain] of same) {
    it(`${name}: ${obfuscated}`, async () => {
      const want = await linkTokens({ text: `Sign in at ${plain} now` });
      assert.ok(want.some((t) => t.startsWith('url:')), want.join(' '));
      assert.deepEqual(await linkTokens({ text: `Sign in at ${obfuscated} now` }), want);
      assert.deepEqual(await linkTokens({ html: `<p>Sign in <a href="${obfuscated}">here</a> now</p>` }), want);
    });
  }
  for (const ip of ['3232235777', '0xC0A80101', '0xc0.168.1.1', '0300.0250.1.1']) {
    it(`a numeric IP written as ${ip} is an IP${ip.startsWith('0300') ? ' (guard: already right)' : ''}`, async () => {
      const got = await linkTokens({ html: `<p>Sign in <a href="http://${ip}/login">here</a></p>` });
      assert.deepEqual(got, await linkTokens({ html: '<p>Sign in <a href="http://192.168.1.1/login">here</a></p>' }));
      assert.ok(got.includes('url:ip'), got.join(' '));
    });
  }
  it('user information before @ is not the host (guard: already right)', async () => {
    const got = await linkTokens({ html: '<p><a href="http://www.paypal.com@evil.example/login">PayPal</a></p>' });
    assert.ok(got.includes('url:evil.example') && !got.includes('url:paypal.com'), got.join(' '));
    const encoded = await linkTokens({ html: '<p><a href="http://www.paypal.com%2F@evil.example/login">PayPal</a></p>' });
    assert.ok(encoded.includes('url:evil.example') && !encoded.includes('url:paypal.com'), encoded.join(' '));
  });
});
