// Bayes token evasion: spammers break a word ("viagra") or a link's host so
// that it never meets the token the model learnt. Each case tokenizes the
// obfuscated form and the plain one and asserts they give the same token.
import assert from 'node:assert/strict';
import { templateFingerprint } from '../lib/checks/content/fingerprint';
import { foldText } from '../lib/checks/content/fold';
import { builtinHeuristics, mismatchedLinks, mixedScriptWords, RULE_MAX_CHARS, ruleHits } from '../lib/checks/content/heuristics';
import { parseRules } from '../lib/checks/content/rules-file';
import { messageParts, type MessageParts } from '../lib/checks/content/parts';
import { DEFAULT_CONTENT_SETTINGS } from '../lib/checks/content/settings';
import { DEFAULT_TOKENIZER_OPTIONS, tokenize } from '../lib/checks/content/tokenize';
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
/** Tokens that come from words of the body (no prefix). */
const words = async (spec: Spec): Promise<string[]> => (await tokens(spec)).filter((t) => !t.includes(':'));
/** Tokens that come from links. */
const linkTokens = async (spec: Spec): Promise<string[]> => (await tokens(spec)).filter((t) => /^(?:url|tld|uh|up|proto):/.test(t)).sort();

describe('content tokens: obfuscated words give the plain word\'s token', () => {
  describe('invisible characters inside a word join it, they do not split it', () => {
    const invisibles: [string, string][] = [
      ['soft hyphen U+00AD', '\u00ad'],
      ['zero-width space U+200B', '\u200b'],
      ['zero-width non-joiner U+200C', '\u200c'],
      ['zero-width joiner U+200D', '\u200d'],
      ['word joiner U+2060', '\u2060'],
      ['byte order mark U+FEFF', '\ufeff'],
      ['combining grapheme joiner U+034F', '\u034f'],
      ['left-to-right mark U+200E', '\u200e'],
    ];
    for (const [name, c] of invisibles) {
      it(`${name} in the plain text`, async () => {
        const got = await words({ text: `Buy cheap V${c}i${c}agra today` });
        assert.ok(got.includes('viagra'), got.join(' '));
        assert.deepEqual(got.sort(), (await words({ text: 'Buy cheap Viagra today' })).sort());
      });
    }
    for (const entity of ['&shy;', '&#8203;', '&#x200B;', '&zwnj;', '&zwj;', '&#xFEFF;', '&NoBreak;']) {
      it(`${entity} in an HTML part`, async () => {
        const got = await words({ html: `<html><body><p>Buy cheap Vi${entity}ag${entity}ra today</p></body></html>` });
        assert.ok(got.includes('viagra'), got.join(' '));
      });
    }
    it('in the subject (s: tokens) and the image alt text', async () => {
      const got = await tokens({ subject: 'Cheap Via\u200bgra', html: '<p>Hello</p><img src="x.png" alt="via&shy;gra">' });
      assert.ok(got.includes('s:Viagra'), got.join(' '));
      assert.ok(got.includes('viagra'), got.join(' '));
    });
    it('the INVISIBLE_CHARACTERS detector still sees them (it reads the parts, not the tokens)', async () => {
      const parts = await parse({ text: 'Buy cheap V\u200bi\u200ba\u200bgra today' });
      assert.ok(tokenize(parts).includes('viagra'));
      const hits = builtinHeuristics(parts, DEFAULT_CONTENT_SETTINGS.heuristics).map((h) => h.name);
      assert.ok(hits.includes('INVISIBLE_CHARACTERS'), hits.join(' '));
      assert.match(parts.text, /V\u200bi/);
    });
    it('the plain splitter joins them too', async () => {
      const parts = await parse({ text: 'Buy cheap Via\u200bgra today' });
      assert.ok(tokenize(parts, { ...DEFAULT_TOKENIZER_OPTIONS, words: 'plain' }).includes('viagra'));
    });
  });

  describe('compatibility forms fold (NFKC, then lower case)', () => {
    const forms: [string, string, string][] = [
      ['fullwidth letters', 'ｖｉａｇｒａ', 'viagra'],
      ['fullwidth capitals', 'ＶＩＡＧＲＡ', 'viagra'],
      ['mathematical bold', '𝐯𝐢𝐚𝐠𝐫𝐚', 'viagra'],
      ['mathematical bold capitals', '𝐕𝐈𝐀𝐆𝐑𝐀', 'viagra'],
      ['mathematical sans-serif italic', '𝘷𝘪𝘢𝘨𝘳𝘢', 'viagra'],
      ['circled letters', 'ⓥⓘⓐⓖⓡⓐ', 'viagra'],
      ['a ligature', 'ﬁnancial', 'financial'],
      ['fullwidth digits', '１２３４５６', 'num:6'],
    ];
    for (const [name, written, token] of forms) {
      it(name, async () => {
        const got = (await tokens({ text: `Special offer ${written} today` })).filter((t) => !t.includes(':') || t.startsWith('num:'));
        assert.ok(got.includes(token), got.join(' '));
        assert.ok(!got.includes(written.toLowerCase()), got.join(' '));
      });
    }
    it('in an HTML part and the subject', async () => {
      assert.ok((await words({ html: '<p>Special &#xFF56;&#xFF49;&#xFF41;&#xFF47;&#xFF52;&#xFF41; today</p>' })).includes('viagra'));
      assert.ok((await tokens({ subject: 'ＶＩＡＧＲＡ ｎｏｗ', text: 'hello' })).includes('s:VIAGRA'));
    });
    it('an ellipsis is sentence punctuation like "..."', async () => {
      assert.ok((await words({ text: 'Wait for it\u2026 amazing\u2026' })).includes('amazing'));
    });
  });

  describe('look-alike letters of another script in a Latin word', () => {
    it('fold to Latin ("viаgrа" with Cyrillic а) and MIXED_SCRIPT_WORDS still fires', async () => {
      const parts = await parse({ text: 'Buy cheap vi\u0430gr\u0430 and P\u0430yP\u0430l today' });
      const got = tokenize(parts);
      assert.ok(got.includes('viagra') && got.includes('paypal'), got.join(' '));
      assert.ok(mixedScriptWords(parts.text).length > 0);
    });
    it('in the subject, case kept', async () => {
      assert.ok((await tokens({ subject: 'Your P\u0430yP\u0430l account', text: 'hello' })).includes('s:PayPal'));
    });
    it('but not a Russian ending on a brand, nor a Russian word', async () => {
      const got = await words({ text: 'Купите iPhone\u043e\u043c сегодня' });
      assert.ok(got.includes('iphoneом'), got.join(' '));
      assert.ok(got.includes('сегодня'), got.join(' '));
    });
  });
});

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

describe('HTML_LINK_MISMATCH reads the href host as a browser resolves it', () => {
  const hosts = async (href: string) => {
    const parts = await parse({ html: `<p>Sign in at <a href="${href}">www.paypal.com</a> today</p>` });
    return mismatchedLinks(parts);
  };
  it('a percent-encoded host is judged (it was skipped: no host)', async () => {
    assert.deepEqual(await hosts('http://%65vil.example/login'), ['www.paypal.com -> evil.example']);
  });
  it('a fullwidth host is named as the browser resolves it (it was named as written)', async () => {
    assert.deepEqual(await hosts('http://ｅｖｉｌ.example/login'), ['www.paypal.com -> evil.example']);
  });
  it('user information with an encoded slash is not the host (guard: already right)', async () => {
    assert.deepEqual(await hosts('http://www.paypal.com%2F@evil.example/login'), ['www.paypal.com -> evil.example']);
  });
  it('an encoded href to the shown domain is no mismatch', async () => {
    assert.deepEqual(await hosts('http://WWW.%70aypal.com./login'), []);
  });
});

describe('operator rules read the words as a reader sees them', () => {
  const rules = parseRules(
    [
      'body R_VIAGRA /viagra/i', 'score R_VIAGRA 2', 'describe R_VIAGRA Viagra',
      'body R_PAYPAL "paypal account"', 'score R_PAYPAL 1', 'describe R_PAYPAL PayPal',
      'body R_ZWSP /\\x{200b}/', 'score R_ZWSP 1', 'describe R_ZWSP A zero-width space',
      'header R_FREE Subject =~ /\\bfree\\b/i', 'score R_FREE 1', 'describe R_FREE Free',
      'header R_FROM From =~ /paypal/i', 'score R_FROM 1', 'describe R_FROM PayPal in From',
    ].join('\n'),
    'test.rules',
  );
  const settings = { ...DEFAULT_CONTENT_SETTINGS.heuristics, rules };
  const fired = async (spec: Spec) => ruleHits(await parse(spec), settings).map((h) => h.name).sort();
  const obfuscated: [string, string][] = [
    ['a soft hyphen', 'vi\u00adagra'],
    ['zero-width spaces', 'V\u200bia\u200bgra'],
    ['a word joiner and a byte order mark', 'vi\u2060ag\ufeffra'],
    ['fullwidth letters', 'ｖｉａｇｒａ'],
    ['mathematical bold capitals', '𝐕𝐈𝐀𝐆𝐑𝐀'],
    ['Cyrillic а', 'vi\u0430gr\u0430'],
    ['Greek α', 'Vi\u03b1gr\u03b1'],
  ];
  for (const [name, word] of obfuscated) {
    it(`a body rule catches ${name} (plain text and HTML)`, async () => {
      assert.ok((await fired({ text: `Cheap ${word} today` })).includes('R_VIAGRA'));
      assert.ok((await fired({ html: `<p>Cheap ${word} today</p>` })).includes('R_VIAGRA'));
    });
  }
  it('a literal rule too, and a capital look-alike folds to a capital', async () => {
    assert.ok((await fired({ text: 'Verify your P\u0430yP\u0430l \u0430ccount now' })).includes('R_PAYPAL'));
    assert.equal(foldText('\u0406nvoice \u0412uy P\u0430yPal'), 'Invoice Buy PayPal');
  });
  it('a capital look-alike in a subject word is read through its small letter (s:Invoice, not the skeleton\'s s:lnvoice)', async () => {
    const got = await tokens({ subject: '\u0406nvoice overdue' });
    assert.ok(got.includes('s:Invoice'), got.join(' '));
  });
  it('a rule that matches an invisible character itself still fires', async () => {
    assert.deepEqual(await fired({ text: 'Cheap V\u200bia\u200bgra today' }), ['R_VIAGRA', 'R_ZWSP']);
  });
  it('header rules read the subject and header values folded too', async () => {
    assert.ok((await fired({ subject: 'ＦＲＥＥ gift for you', text: 'hello' })).includes('R_FREE'));
    assert.ok((await fired({ subject: 'Fr\u200bee gift for you', text: 'hello' })).includes('R_FREE'));
    const raw = 'From: "P\u0430yP\u0430l" <service@example.com>\r\nSubject: hi\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n';
    const parts = await messageParts(createContext({ ip: '192.0.2.1', raw: Buffer.from(raw, 'utf8') }));
    assert.deepEqual(ruleHits(parts, settings).map((h) => h.name), ['R_FROM']);
  });
  it('ordinary text, accents and Russian words fire nothing (guard)', async () => {
    assert.deepEqual(await fired({ subject: 'Freedom', text: 'Café crème, Вы выиграли приз, naïve façade' }), []);
  });
  it('the folded copy is of the text read (64 KiB), not read further', async () => {
    assert.ok(!(await fired({ text: `${'x\u200b'.repeat(RULE_MAX_CHARS / 2)} viagra` })).includes('R_VIAGRA'));
    assert.ok((await fired({ text: `${'x\u200b'.repeat(RULE_MAX_CHARS / 2 - 10)} vi\u00adagra` })).includes('R_VIAGRA'));
  });
});

describe('template fingerprints read the words as a reader sees them', () => {
  const letter = (transform: (word: string) => string) =>
    `Dear Customer,\n\nYour statement for account AC-10023 is now available. ${['Please', 'review', 'your', 'recent', 'transactions', 'and', 'confirm', 'your', 'banking', 'details', 'through', 'our', 'secure', 'portal', 'before', 'the', 'end', 'of', 'this', 'week'].map(transform).join(' ')}.\nThank you for banking with us.\n`;
  const plain = templateFingerprint(letter((w) => w))!;
  it('invisible characters inserted per recipient do not change the fingerprint', () => {
    assert.ok(plain);
    let n = 0;
    const zw = ['\u200b', '\u00ad', '\u200c', '\u2060', '\ufeff'];
    const a = templateFingerprint(letter((w) => (w.length > 3 ? `${w.slice(0, 2)}${zw[n++ % zw.length]}${w.slice(2)}` : w)))!;
    const b = templateFingerprint(letter((w) => (w.length > 4 ? `${w.slice(0, 3)}\u200d${w.slice(3)}` : w)))!;
    assert.equal(a.key, plain.key);
    assert.deepEqual(a.bands, plain.bands);
    assert.equal(b.key, plain.key);
  });
  it('fullwidth letters and Cyrillic look-alikes do not change it either', () => {
    const fullwidth = (w: string) => [...w].map((c) => String.fromCodePoint(c.codePointAt(0)! + 0xfee0)).join('');
    const a = templateFingerprint(letter((w) => (w === 'review' || w === 'banking' ? fullwidth(w) : w)))!;
    const b = templateFingerprint(letter((w) => (w.length > 3 ? w.replace('a', '\u0430').replace('o', '\u043e') : w)))!;
    assert.equal(a.key, plain.key);
    assert.equal(b.key, plain.key);
    assert.deepEqual(b.bands, plain.bands);
  });
  it('an ASCII text\'s fingerprint is what it was before folding (bulk counters of a running fleet carry on)', () => {
    // Computed with the code before foldText (commit ff64c19).
    const text = 'Dear John Smith,\n\nYour statement for account AC-10023 dated 2024-01-05 is now available. The balance is $1,234.56.\nYou can view it in online banking at https://bank.example/statements?u=AC-10023. Thank you for banking with us, John.\n\n-- \nJane Roe, Customer Service\n';
    assert.deepEqual(templateFingerprint(text), {
      key: 'a81a7e891d43345e6538',
      bands: ['f4c243ebc8fd3bd1', '8aa88f0dcee4c68a', 'be01d884c383886d', '2a82b517205c3cfa'],
      words: 22,
    });
  });
});
