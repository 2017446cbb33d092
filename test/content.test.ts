import assert from 'node:assert/strict';
import { BayesModel, chi2Q, DEFAULT_BAYES_OPTIONS, type BayesOptions } from '../lib/checks/content/bayes';
import { bulkHits } from '../lib/checks/content/bulk';
import { templateFingerprint, templateWords } from '../lib/checks/content/fingerprint';
import { analyseHtml, LOOK_ATTRIBUTES } from '../lib/util/html';
import { builtinHeuristics, mixedScriptWords, ruleHits } from '../lib/checks/content/heuristics';
import { messageParts, type MessageParts } from '../lib/checks/content/parts';
import { parseRules } from '../lib/checks/content/rules-file';
import { compileSafeRegex, regexProblem, UnsafeRegexError } from '../lib/checks/content/safe-regex';
import { DEFAULT_CONTENT_SETTINGS, type ContentSettings } from '../lib/checks/content/settings';
import { DEFAULT_TOKENIZER_OPTIONS, normaliseWord, tokenize } from '../lib/checks/content/tokenize';
import { capHits } from '../lib/checks/content';
import { builtinModule } from '../lib/checks/builtin';
import { ConfigError } from '../lib/config/errors';
import { loadConfig } from '../lib/config/load';
import { createMailward, type Verdict } from '../lib';
import { createContext, MAX_PARSE_BYTES, MAX_PARSE_LINES, parsedMessage } from '../lib/message';
import { mimeCut } from '../lib/mime/limits';
import { bodyBefore, htmlLooksLikePadding, unshownOpenAt } from '../lib/mime/padding';
import { lineCount, postalInputs } from './support/postal-spy';
import { Ledger } from '../lib/score/ledger';
import { SymbolTable } from '../lib/score/symbol-table';
import { MemoryStore } from '../lib/state/memory';
import type { AuthResults } from '../lib/checks/auth';

function parts(raw: string) {
  return messageParts(createContext({ ip: '192.0.2.1', raw }));
}

/** What the parse check reads of `raw` (its text and HTML) and the detail of MIME_TEXT_UNREAD, if raised. */
async function verdictOf(raw: string): Promise<{ words: string; unread?: string }> {
  const parseCheck = builtinModule.createChecks(null, undefined as never).find((c) => c.name === 'builtin.parse')!;
  const ctx = createContext({ ip: '192.0.2.1', raw });
  const e = await parsedMessage(ctx);
  const hits = (await parseCheck.run(ctx, undefined as never, undefined as never)) ?? [];
  return { words: (e?.text ?? '') + (e?.html ?? ''), unread: hits.find((h) => h.name === 'MIME_TEXT_UNREAD')?.detail };
}

const SPAMMY = ['viagra', 'cheap', 'pills', 'winner', 'casino', 'bonus'];
const HAMMY = ['meeting', 'agenda', 'patch', 'review', 'lunch', 'minutes'];

function sample(words: string[], i: number): string[] {
  return [...words.slice(0, 4), `noise${i % 7}`, `shared${i % 3}`];
}

function trained(n: number): BayesModel {
  const model = new BayesModel();
  for (let i = 0; i < n; i++) {
    model.learn(sample(SPAMMY, i), 'spam');
    model.learn(sample(HAMMY, i), 'ham');
  }
  return model;
}

describe('content: Bayes model', () => {
  it('chi2Q is a probability that falls as chi-square grows', () => {
    assert.ok(Math.abs(chi2Q(0, 4) - 1) < 1e-12);
    assert.ok(chi2Q(10, 4) < chi2Q(2, 4));
    assert.ok(Math.abs(chi2Q(2, 2) - Math.exp(-1)) < 1e-12);
  });

  it('learns: spam words score near 1, ham words near 0, unknown words 0.5', () => {
    const model = trained(50);
    assert.equal(model.nspam, 50);
    assert.equal(model.nham, 50);
    assert.ok(model.classify(['viagra', 'casino', 'pills']).probability > 0.95);
    assert.ok(model.classify(['meeting', 'agenda', 'review']).probability < 0.05);
    assert.equal(model.classify(['never-seen']).probability, 0.5);
    const c = model.classify(['viagra', 'meeting']);
    assert.equal(c.spamTokens[0]?.token, 'viagra');
    assert.equal(c.hamTokens[0]?.token, 'meeting');
  });

  it('how sure it is of a token does not depend on which class it was fed more of', () => {
    // 'offer' is in half the spam and a tenth of the ham in both models; B has learnt ten times the ham.
    const fed = (options: BayesOptions, hams: number) => {
      const model = new BayesModel(options);
      for (let i = 0; i < 10; i++) model.learn(i < 5 ? ['offer', `s${i}`] : [`s${i}`], 'spam');
      for (let i = 0; i < hams; i++) model.learn(i < hams / 10 ? ['offer', `h${i}`] : [`h${i}`], 'ham');
      return model.tokenProb(model.tokens.get('offer')!);
    };
    const balanced = DEFAULT_BAYES_OPTIONS;
    assert.equal(balanced.balanceClasses, true);
    assert.ok(Math.abs(fed(balanced, 10) - fed(balanced, 100)) < 1e-12);
    // Counting raw messages, the extra ham makes the model surer of the same ratio.
    const raw = { ...balanced, balanceClasses: false };
    assert.ok(Math.abs(fed(raw, 10) - fed(raw, 100)) > 0.005);
  });

  it('unlearning a message takes exactly its counts back, never below zero', () => {
    const model = trained(10);
    const before = model.tokens.get('viagra')!.spam;
    model.learn(['viagra', 'fresh'], 'spam');
    model.unlearn(['viagra', 'fresh'], 'spam');
    assert.equal(model.tokens.get('viagra')!.spam, before);
    assert.equal(model.tokens.has('fresh'), false);
    assert.equal(model.nspam, 10);
    model.unlearn(['unknown-token'], 'ham');
    assert.equal(model.tokens.has('unknown-token'), false);
    const empty = new BayesModel();
    empty.unlearn(['a1b'], 'spam');
    assert.equal(empty.nspam, 0);
  });

  it('records pending deltas for the store, and restores them after a failed save', () => {
    const model = new BayesModel();
    model.learn(['abc', 'def'], 'spam');
    model.learn(['abc'], 'ham');
    const deltas = model.takePending();
    assert.deepEqual(deltas.get('abc'), [1, 1]);
    assert.deepEqual(deltas.get(''), [1, 1]);
    assert.equal(model.pending.size, 0);
    model.learn(['abc'], 'spam');
    model.restorePending(deltas);
    assert.deepEqual(model.pending.get('abc'), [2, 1]);
  });

  it('the check caps content so it never reaches the reject threshold alone', () => {
    const config = loadConfig();
    const ledger = new Ledger(config.symbols);
    const capped = capHits(
      [
        { name: 'BAYES_SPAM', factor: 1 },
        { name: 'MIXED_SCRIPT_WORDS' },
        { name: 'HTML_LINK_MISMATCH' },
        { name: 'INVISIBLE_CHARACTERS' },
        { name: 'BAYES_HAM', factor: 0 },
      ],
      ledger,
      9,
    );
    ledger.addAll(capped);
    assert.ok(ledger.total <= 9, `content total ${ledger.total}`);
    assert.ok(ledger.total >= 8.9);
    assert.match(ledger.get('BAYES_SPAM')!.detail, /capped at 9/);
    assert.throws(
      () => loadConfig({ texts: { 'mailward.content.ini': '[main]\nmax_score = 15\n' } }),
      (err: unknown) => err instanceof ConfigError && /max_score: must stay below the reject threshold/.test(err.message),
    );
  });
});

describe('content: the cap holds against every threshold that refuses', () => {
  // Three rules whose scaled weights (9/14 of 2, 6, 6) each round up: 1.29 + 3.86 + 3.86 = 9.01.
  const rules = ['A 2', 'B 6', 'C 6'].map((r) => r.split(' ')).map(([n, score]) => `body T_${n} /cap${n}/\nscore T_${n} ${score}\ndescribe T_${n} test\n`).join('');
  const texts = {
    'mailward.ini': '[domain:example.org]\nquarantine = 6\nsoft_reject = 7\nreject = 8\n',
    'mailward.content.ini': '[bayes]\nenabled = false\n[bulk]\nenabled = false\n',
    'mailward.content.rules': rules,
  };
  const raw = 'From: a@example.net\r\nSubject: hello\r\n\r\ncapA capB capC\r\n';

  it('content alone stays under a [domain:NAME] soft_reject and reject, and at most max_score elsewhere', async () => {
    const mw = createMailward({ texts, modules: ['content'] });
    try {
      const to = async (...rcptTo: string[]) => (await mw.scan({ ip: '192.0.2.1', mailFrom: 'a@example.net', rcptTo, raw })).verdict;
      // Each scaled score is rounded down: the total may fall a few hundredths short of the cap, never over.
      const within = (v: Verdict, action: string, low: number, cap: number) => assert.ok(v.action === action && v.score >= low && v.score <= cap, v.reason);
      const strict = await to('b@example.org');
      within(strict, 'quarantine', 6.9, 6.99);
      assert.match(strict.reason, /^score 6\.99 \(content 8\.9\d capped at 6\.99 for example\.org\) reached the quarantine threshold 6$/);
      assert.equal(strict.groups.content, 6.99, 'the groups add up to the score that decided');
      within(await to('b@example.com'), 'quarantine', 8.9, 9);
    } finally {
      await mw.close();
    }
  });

  it("a strict domain's recipient does not lower the content score for the other recipients", async () => {
    const mw = createMailward({ texts, modules: ['content'] });
    try {
      const to = async (...rcptTo: string[]) => (await mw.scan({ ip: '192.0.2.1', mailFrom: 'a@example.net', rcptTo, raw })).verdict;
      // Each domain counts content up to its own cap; the mildest action over the domains applies
      // (quarantine for both here), with the score of the domain whose cap took nothing off.
      for (const rcptTo of [['b@example.com', 'c@example.org'], ['c@example.org', 'b@example.com']]) {
        const v = await to(...rcptTo);
        assert.ok(v.action === 'quarantine' && v.score >= 8.9 && v.score <= 9, `${rcptTo}: ${v.action} ${v.reason}`);
        assert.match(v.reason, /^score 8\.9\d reached the quarantine threshold 8$/);
      }
    } finally {
      await mw.close();
    }
  });

  it('says at load which section lowers the cap', () => {
    const config = loadConfig({ texts: { ...texts, 'mailward.ini': `[actions]\nquarantine = 7\nsoft_reject = 9\n${texts['mailward.ini']}` } });
    const settings = config.modules.find((m) => m.module.name === 'content')!.settings as ContentSettings;
    assert.deepEqual(settings.warnings, [
      'max_score 9 is not below mailward.ini [actions] soft_reject 9: content is capped at 8.99 for recipients of domains without a [domain:NAME] section, so that it never refuses mail alone',
      'max_score 9 is not below mailward.ini [domain:example.org] soft_reject 7: content is capped at 6.99 for recipients in example.org, so that it never refuses mail alone',
    ]);
  });
});

describe('content: tokens and MIME', () => {
  it('tokenizes decoded text, subject, sender, URL domains; skips long debris; leaves Received out', async () => {
    const p = await parts(
      [
        'Received: from relay.internal.example (10.0.0.1) by mx',
        'From: "Cheap Pharmacy" <sales@shop.example.co.uk>',
        'Subject: =?UTF-8?B?V2lubmVyIQ==?=',
        'Content-Type: text/html; charset=utf-8',
        '',
        '<p>Running <b>offers</b> at <a href="http://click.tracker.example.com/x?id=1">here</a> aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa</p>',
      ].join('\r\n'),
    );
    const tokens = tokenize(p);
    for (const t of [
      's:Winner!', 'fn:cheap', 'fd:example.co.uk', 'running', 'offers', 'url:example.com', 'tld:com', 'proto:http', 'uh:tracker', 'html:only',
      'ct:text/html', 'cs:utf-8', 'type:text/html', 'charset:utf-8', 'h:Subject', 'h:From', 'skip:a:50',
    ]) {
      assert.ok(tokens.includes(t), `${t} missing from ${tokens.join(' ')}`);
    }
    assert.ok(!tokens.some((t) => t.includes('relay') || t.includes('internal') || t === 'h:Received'), 'Received header leaked into tokens');
  });

  it('reads MIME structure, buckets numbers, drops sentence punctuation, keeps relay headers out', async () => {
    const p = await parts(
      [
        'Received: from mx1.corp.example by mx2.corp.example',
        'Message-ID: <abc123@mx1.corp.example>',
        'Delivered-To: someone@corp.example',
        'From: sales@shop.example',
        'To: a@x.example, b@x.example, c@x.example',
        'Subject: Invoice',
        'X-MSMail-Priority: High',
        'MIME-Version: 1.0',
        'Content-Type: multipart/mixed; boundary="b1"',
        '',
        '--b1',
        'Content-Type: text/plain; charset="KOI8-R"',
        'Content-Transfer-Encoding: quoted-printable',
        '',
        'Please pay 1234567 today. "Urgent"',
        '--b1',
        'Content-Type: application/octet-stream; name="invoice.exe"',
        'Content-Transfer-Encoding: base64',
        'Content-Disposition: attachment; filename="invoice.exe"',
        '',
        'TVqQAAMAAAAEAAAA',
        '--b1--',
        '',
      ].join('\r\n'),
    );
    const tokens = tokenize(p);
    for (const t of ['type:multipart/mixed', 'type:text/plain', 'charset:koi8-r', 'cte:quoted-printable', 'cte:base64', 'disp:attachment', 'ext:exe',
      'h:X-MSMail-Priority', 'h:MIME-Version', 'rcpts:2', 'num:7', 'today', 'urgent', 'pay']) {
      assert.ok(tokens.includes(t), `${t} missing from ${tokens.join(' ')}`);
    }
    assert.ok(!tokens.includes('today.') && !tokens.includes('"urgent"'), 'sentence punctuation kept');
    assert.ok(!tokens.some((t) => /corp|abc123|^h:(Received|Message-ID|Delivered-To)$/.test(t)), `relay headers leaked: ${tokens.join(' ')}`);
  });

  it('reads an HTML part with no MIME charset in the charset its <meta> declares (koi8-r, windows-1251, latin-1); a MIME charset wins', async () => {
    // Real bytes in a single-byte charset, from TextDecoder's own table.
    const encode = (text: string, charset: string) => {
      const decoder = new TextDecoder(charset);
      const byte = new Map(Array.from({ length: 256 }, (_, b) => [decoder.decode(Uint8Array.of(b)), b] as const));
      return Buffer.from([...text].map((c) => byte.get(c)!));
    };
    const message = (contentType: string, cte: string, body: Buffer, plain?: string) => {
      const encoded = cte === 'base64' ? body.toString('base64').replace(/.{76}/g, '$&\r\n') : body.toString('latin1');
      const html = `Content-Type: ${contentType}\r\nContent-Transfer-Encoding: ${cte}\r\n\r\n${encoded}\r\n`;
      const head = 'From: a@shop.example\r\nSubject: hi\r\nMIME-Version: 1.0\r\n';
      const raw = plain === undefined
        ? `${head}${html}`
        : `${head}Content-Type: multipart/alternative; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${plain}\r\n--b\r\n${html}--b--\r\n`;
      return messageParts(createContext({ ip: '192.0.2.1', raw: Buffer.from(raw, 'latin1') }));
    };
    const rules = parseRules('body R_WIN /Вы выиграли приз/\nscore R_WIN 2\ndescribe R_WIN Won\nbody R_CAFE "Café crème"\nscore R_CAFE 1\ndescribe R_CAFE Cafe\n', 'test.rules');
    const fired = (p: MessageParts) => ruleHits(p, { ...DEFAULT_CONTENT_SETTINGS.heuristics, rules }).map((h) => h.name);
    const russian = 'Вы выиграли приз! Получите деньги сегодня';

    // koi8-r, <meta charset>, base64, beside a clean plain part: the words reach the tokens and a body rule.
    const koi = await message('text/html', 'base64', Buffer.concat([Buffer.from('<html><head><meta charset="koi8-r"></head><body><p>'), encode(russian, 'koi8-r'), Buffer.from('</p></body></html>')]), 'Hello, see you tomorrow');
    assert.match(koi.html!.text, /Вы выиграли приз/);
    const tokens = tokenize(koi);
    for (const t of ['выиграли', 'получите', 'деньги', 'сегодня']) assert.ok(tokens.includes(t), `${t} missing from ${tokens.join(' ')}`);
    assert.deepEqual(fired(koi), ['R_WIN']);

    // windows-1251, <meta http-equiv content>, 8bit, HTML only.
    const cp1251 = Buffer.concat([Buffer.from('<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1251"><title>x</title></head><body>'), encode(russian, 'windows-1251'), Buffer.from('</body></html>')]);
    const win = await message('text/html', '8bit', cp1251);
    assert.match(win.text, /Получите деньги сегодня/);
    assert.deepEqual(fired(win), ['R_WIN']);

    // latin-1 (read as windows-1252, as browsers do).
    const latin = await message('text/html', '8bit', Buffer.concat([Buffer.from('<meta charset=iso-8859-1><p>'), encode('Café crème à volonté', 'latin1'), Buffer.from('</p>')]));
    assert.ok(tokenize(latin).includes('volonté'), tokenize(latin).join(' '));
    assert.deepEqual(fired(latin), ['R_CAFE']);

    // The MIME charset wins over the markup's; a label TextDecoder does not know, or one in a comment, changes nothing.
    const mime = await message('text/html; charset=koi8-r', 'base64', Buffer.concat([Buffer.from('<meta charset="windows-1251"><p>'), encode(russian, 'koi8-r'), Buffer.from('</p>')]));
    assert.deepEqual(fired(mime), ['R_WIN']);
    const bytes = Buffer.concat([Buffer.from('<p>'), encode(russian, 'windows-1251'), Buffer.from('</p>')]);
    for (const declared of ['<meta charset="no-such-charset">', '<!-- <meta charset="windows-1251"> -->']) {
      const kept = await message('text/html', 'base64', Buffer.concat([Buffer.from(declared), bytes]));
      assert.match(kept.html!.text, /\ufffd/, declared);
    }
  });

  it('a <meta> charset is only a meta tag\'s charset attribute or an http-equiv Content-Type content; a UTF-8 BOM wins over it', async () => {
    const words = 'Купить виагру дешево сегодня';
    const read = async (head: string, body: Buffer = Buffer.from(`<p>${words}</p></body></html>`, 'utf8')) => {
      const html = Buffer.concat([Buffer.from(head, 'utf8'), body]);
      const raw = Buffer.concat([Buffer.from('From: a@example.com\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n'), Buffer.from(html.toString('base64').replace(/.{76}/g, '$&\r\n') + '\r\n')]);
      return (await messageParts(createContext({ ip: '192.0.2.1', raw }))).text.trim();
    };
    // UTF-8 text, not re-read as windows-1251.
    for (const head of ['\ufeff<html><head><meta charset="windows-1251"></head><body>', '<html><head><meta name="keywords" content="charset=windows-1251"></head><body>', '<html><head><meta data-charset="windows-1251"></head><body>', '<meta http-equiv="refresh" content="5; charset=windows-1251"><body>']) {
      assert.equal(await read(head), words, head);
    }
    // Declarations still read, in any attribute order and quoting, the first meta that declares one winning.
    const cp1251 = Buffer.from([...`<p>${words}</p>`].map((c) => (c < '\u0400' ? c.charCodeAt(0) : c === 'Ё' ? 0xa8 : c === 'ё' ? 0xb8 : c.charCodeAt(0) - 0x410 + 0xc0)));
    for (const head of ['<meta content="text/html; charset=windows-1251" http-equiv="Content-Type">', "<meta name=x><META HTTP-EQUIV='content-type' CONTENT='text/html;charset=windows-1251'>", '<meta charset=windows-1251 />', '<meta name="a>b" charset="windows-1251">']) {
      assert.equal(await read(head, cp1251), words, head);
    }
  });

  it('an HTML part postal-mime joins otherwise than its bytes (format=flowed) does not stop the <meta> charset of later parts', async () => {
    const koi8 = new TextDecoder('koi8-r');
    const byte = new Map(Array.from({ length: 256 }, (_, b) => [koi8.decode(Uint8Array.of(b)), b] as const));
    const encode = (text: string) => Buffer.from([...text].map((c) => byte.get(c)!));
    const part = (ct: string, html: Buffer) => [`Content-Type: ${ct}`, 'Content-Transfer-Encoding: base64', '', html.toString('base64').replace(/.{76}/g, '$&\r\n')].join('\r\n');
    const decoy = Buffer.from('<html><head><meta charset="windows-1251"></head><body><p>Hello \r\nthere \r\n</p></body></html>');
    const spam = Buffer.concat([Buffer.from('<html><head><meta charset="koi8-r"></head><body><p>'), encode('Купить виагру дешево'), Buffer.from('</p></body></html>')]);
    const raw = ['From: a@example.com', 'Subject: x', 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="B"', '',
      '--B', part('text/html; format=flowed', decoy), '--B', part('text/html', spam), '--B--', ''].join('\r\n');
    const p = await messageParts(createContext({ ip: '192.0.2.1', raw }));
    assert.match(p.html!.text, /Купить виагру дешево/);
    assert.match(p.html!.text, /Hello/);
  });

  it('URLs in the plain part, the HTML links and the HTML\'s text each have their own budget of 300: 300 plain URLs do not hide one in the HTML text', async () => {
    const plain = Array.from({ length: 300 }, (_, i) => `https://ok${i}.example.org/`).join('\r\n');
    const links = Array.from({ length: 300 }, (_, i) => `<a href="https://news${i}.example.org/">n</a>`).join('');
    const raw = ['From: a@example.com', 'Subject: x', 'MIME-Version: 1.0', 'Content-Type: multipart/alternative; boundary="B"', '',
      '--B', 'Content-Type: text/plain; charset=utf-8', '', plain,
      '--B', 'Content-Type: text/html; charset=utf-8', '', `<html><body>${links}<p>Sign in at https://examp1e.com/owa now</p></body></html>`, '--B--', ''].join('\r\n');
    const p = await messageParts(createContext({ ip: '192.0.2.1', raw }));
    assert.ok(p.urls.includes('https://examp1e.com/owa'), `${p.urls.length} urls`);
    assert.ok(p.urls.includes('https://ok299.example.org/') && p.urls.includes('https://news299.example.org/'));
    const rules = parseRules('uri R_OWA /examp1e\\.com/\nscore R_OWA 2\ndescribe R_OWA Owa\n', 'test.rules');
    assert.deepEqual(ruleHits(p, { ...DEFAULT_CONTENT_SETTINGS.heuristics, rules }).map((h) => h.name), ['R_OWA']);
  });

  it('a text part after a large leading attachment is read past the 2 MB cut (its text, links, a uri rule, tokens); attachment bodies are not decoded', async () => {
    const b64 = Buffer.alloc(1600 * 1024, 7).toString('base64').replace(/.{76}/g, '$&\r\n');
    const headers = ['From: a@example.com', 'To: b@example.net', 'Subject: hi', 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="B"', ''];
    const image = ['--B', 'Content-Type: image/jpeg; name="a.jpg"', 'Content-Disposition: inline; filename="a.jpg"', 'Content-Transfer-Encoding: base64', '', b64];
    const spam = ['--B', 'Content-Type: text/html; charset=utf-8', 'Content-Transfer-Encoding: quoted-printable', '', '<html><body><p>Buy cheap viagra now</p><a href=3D"https://evil-pharma.example/buy">click</a></body></html>'];
    // A text attachment past the cut is not read, nor is a text part after the closing delimiter's own line.
    const attached = ['--B', 'Content-Type: text/plain', 'Content-Disposition: attachment; filename="x.txt"', '', 'attached secret words'];
    const raw = [...headers, ...image, ...spam, ...attached, '--B--', ''].join('\r\n');
    const ctx = createContext({ ip: '192.0.2.1', raw });
    const p = await messageParts(ctx);
    assert.match(ctx.parse.partial ?? '', /^decoded the first 2048 KB of 21\d\d KB and 1 text part crossing or after it$/);
    assert.match(p.html?.text ?? '', /Buy cheap viagra now/);
    assert.match(p.text, /Buy cheap viagra now/);
    assert.doesNotMatch(p.text + (p.html?.text ?? ''), /attached secret/);
    assert.deepEqual(p.urls, ['https://evil-pharma.example/buy']);
    const rules = parseRules('uri R_PHARMA /evil-pharma\\.example/\nscore R_PHARMA 2\ndescribe R_PHARMA Pharma\n', 'test.rules');
    assert.deepEqual(ruleHits(p, { ...DEFAULT_CONTENT_SETTINGS.heuristics, rules }).map((h) => h.name), ['R_PHARMA']);
    assert.ok(tokenize(p).includes('viagra'), tokenize(p).join(' '));
    // With no text part after the cut, the wording is as before.
    const none = createContext({ ip: '192.0.2.1', raw: [...headers, ...image, ...image, '--B--', ''].join('\r\n') });
    await messageParts(none);
    assert.match(none.parse.partial ?? '', /^decoded the first 2048 KB of \d+ KB$/);
  });

  it('past the 2 MB cut: a text part straddling it, with no Content-Type or no headers, after decoys, is read; attached messages and preamble are not', async () => {
    const CRLF = '\r\n';
    const head = ['From: a@example.com', 'To: b@example.net', 'Subject: hi', 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="B"', ''].join(CRLF) + CRLF;
    const b64 = (n: number) => Buffer.alloc(n, 7).toString('base64').replace(/.{76}/g, `$&${CRLF}`);
    const img = (n: number, pad = 0) => ['--B', 'Content-Type: image/jpeg; name="a.jpg"', 'X-Pad: ' + 'p'.repeat(pad), 'Content-Transfer-Encoding: base64', '', b64(n)].join(CRLF) + CRLF;
    const spam = 'Buy cheap viagra now';
    const html = ['--B', 'Content-Type: text/html', '', `<p>${spam}</p>`, '--B--', ''].join(CRLF);
    const read = async (raw: string, want = spam) => {
      const ctx = createContext({ ip: '192.0.2.1', raw });
      const e = await parsedMessage(ctx);
      return { found: ((e?.text ?? '') + (e?.html ?? '')).includes(want), partial: ctx.parse.partial ?? '' };
    };
    // D: boundary, Content-Type and the start of the body before the cut, the rest after it.
    const base = head.length + img(1400 * 1024).length;
    let pre = head + img(1400 * 1024, MAX_PARSE_BYTES - base - 300);
    const d = await read(pre + ['--B', 'Content-Type: text/html; charset=utf-8', '', '<html><body>', ' '.repeat(600), `<p>${spam}</p></body></html>`, '--B--', ''].join(CRLF));
    assert.ok(d.found, 'D');
    assert.match(d.partial, /^decoded the first 2048 KB of 20\d\d KB and 1 text part crossing or after it$/);
    // D2: the boundary line before the cut, its header block after it.
    pre = head + img(1400 * 1024, MAX_PARSE_BYTES - base - 10);
    assert.ok((await read(pre + ['--B', 'X-Filler: ' + 'f'.repeat(100), 'Content-Type: text/html', '', `<p>${spam}</p>`, '--B--', ''].join(CRLF))).found, 'D2');
    const big = head + img(1600 * 1024);
    // B, C: no Content-Type (text/plain by default), an empty header block.
    assert.ok((await read(big + ['--B', 'Content-Transfer-Encoding: 7bit', '', spam, '--B--', ''].join(CRLF))).found, 'B');
    assert.ok((await read(big + ['--B', '', spam, '--B--', ''].join(CRLF))).found, 'C');
    // I: a 17 KB field before the Content-Type.
    assert.ok((await read(big + ['--B', 'X-Filler: ' + 'a'.repeat(17 * 1024), 'Content-Type: text/html', '', `<p>${spam}</p>`, '--B--', ''].join(CRLF))).found, 'I');
    // K: four small text parts first.
    const k = await read(big + Array.from({ length: 4 }, () => ['--B', 'Content-Type: text/plain', '', 'hello'].join(CRLF)).join(CRLF) + CRLF + html);
    assert.ok(k.found, 'K');
    assert.match(k.partial, /and 5 text parts crossing or after it$/);
    // J': a text attachment of 200 lines starting with `--` first.
    const decoy = ['--B', 'Content-Type: text/plain', 'Content-Disposition: attachment; filename="sig.txt"', '', ...Array.from({ length: 200 }, (_, i) => `--x${i}${CRLF}`)].join(CRLF) + CRLF;
    assert.ok((await read(big + decoy + html)).found, "J'");
    // E: the text of an attached message (postal-mime does not read it either), then a real text part.
    const fwd = ['--B', 'Content-Type: message/rfc822', 'Content-Disposition: attachment; filename="fwd.eml"', '', 'From: x@y', 'Subject: fwd', 'MIME-Version: 1.0',
      'Content-Type: multipart/alternative; boundary="I"', '', '--I', 'Content-Type: text/plain', '', 'INNER ATTACHED WORDS', '--I--', ''].join(CRLF);
    assert.equal((await read(big + fwd + html, 'INNER ATTACHED')).found, false, 'E');
    assert.ok((await read(big + fwd + html)).found, 'E then html');
    // J: a "header block" of lines that are not header fields (a multipart's preamble) is not a part.
    const preamble = ['--B', 'Content-Type: multipart/alternative; boundary="I"', '', '--x', 'not a header', 'Content-Type: text/html', '', 'PREAMBLE WORDS', '--I', 'Content-Type: text/html', '', `<p>${spam}</p>`, '--I--', ''].join(CRLF);
    const j = await read(big + preamble + '--B--' + CRLF, 'PREAMBLE');
    assert.equal(j.found, false, 'J');
    assert.ok((await read(big + preamble + '--B--' + CRLF)).found, 'J then html');
  });

  describe('past the 2 MB cut only the delimiters of declared boundaries start or end a part (RFC 2046 §5.1)', () => {
    const CRLF = '\r\n';
    const head = ['From: a@example.com', 'To: b@example.net', 'Subject: hi', 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="B"', ''].join(CRLF) + CRLF;
    const img = (n: number) => ['--B', 'Content-Type: image/jpeg; name="a.jpg"', 'Content-Transfer-Encoding: base64', '', Buffer.alloc(n, 7).toString('base64').replace(/.{76}/g, `$&${CRLF}`)].join(CRLF) + CRLF;
    /** Lines of filler text, `bytes` long or a line more. */
    const filler = (bytes: number) => 'plain filler words on a line\r\n'.repeat(Math.ceil(bytes / 30));
    const read = async (raw: string) => {
      const ctx = createContext({ ip: '192.0.2.1', raw });
      const e = await parsedMessage(ctx);
      assert.ok(raw.length > MAX_PARSE_BYTES && e, 'a partial parse');
      return { words: (e.text ?? '') + (e.html ?? ''), partial: ctx.parse.partial ?? '' };
    };
    const fake = (delimiter: string, words: string) => [delimiter, 'Content-Type: text/plain; charset=utf-8', '', words].join(CRLF) + CRLF;

    it('text parts the tail budgets leave unread give MIME_TEXT_UNREAD with the count; parts all read, or read in part, do not', async () => {
      const small = (i: number, words: string) => ['--B', 'Content-Type: text/plain', '', `part ${i} ${words}`].join(CRLF) + CRLF;
      // 256 decoy parts spend the tail's part budget; the spam stands in the 264th.
      const parts = Array.from({ length: 264 }, (_, i) => small(i, i === 263 ? 'SPAM PAST THE BUDGET' : 'hello')).join('');
      const hidden = await verdictOf(head + img(1600 * 1024) + parts + '--B--\r\n');
      assert.doesNotMatch(hidden.words, /SPAM PAST THE BUDGET/);
      assert.match(hidden.unread ?? '', /^8 text parts past the cut left unread \(the tail budget/);
      // Review (stop 22): Apple Mail puts an HTML fragment between inline photos; 40 photos and 41 fragments are all read.
      const photos = Array.from({ length: 40 }, (_, i) => small(i, 'fragment') + img(40 * 1024)).join('') + small(40, 'LAST FRAGMENT');
      const apple = await verdictOf(head + img(1600 * 1024) + photos + '--B--\r\n');
      assert.match(apple.words, /LAST FRAGMENT/);
      assert.equal(apple.unread, undefined);
      // A large message whose text past the cut was all read: no symbol.
      assert.equal((await verdictOf(head + img(1600 * 1024) + small(1, 'all read') + '--B--\r\n')).unread, undefined);
      // One long HTML part (inline data: images) read only in part: its start was read, no symbol.
      const html = ['--B', 'Content-Type: text/html', '', '<p>newsletter</p>' + '<img src="data:image/png;base64,' + 'A'.repeat(70) + '">\r\n'.repeat(1)].join(CRLF);
      const longHtml = html + ('<p>' + 'x'.repeat(70) + '</p>\r\n').repeat(Math.ceil((3 * 1024 * 1024) / 79)) + '--B--\r\n';
      assert.equal((await verdictOf(head + longHtml)).unread, undefined);
      // Review (stop 22): one text part of 84 KB, 42,000 blank lines before its text: the line budgets run out inside it.
      const padded = ['From: a@example.com', 'Subject: hi', 'MIME-Version: 1.0', 'Content-Type: text/html', '', ''].join(CRLF) + CRLF.repeat(42_000) + '<p>PADDED SPAM</p>' + CRLF;
      const paddedRead = await verdictOf(padded);
      assert.doesNotMatch(paddedRead.words, /PADDED SPAM/);
      assert.match(paddedRead.unread ?? '', /^1 text part read only in part \(the tail's 14000 lines ran out inside it/);
      // Review (h-review2): ordinary lines shorter than 75 bytes run out of the tail's lines before its bytes too; that is no padding.
      const altHead = ['From: news@example.com', 'Subject: catalogue', 'MIME-Version: 1.0', 'Content-Type: multipart/alternative; boundary="ALT"', '', ''].join(CRLF);
      const row = '<td class="p">' + 'Product name and price '.repeat(2).slice(0, 40) + '</td>' + CRLF;
      const newsletter = altHead + ['--ALT', 'Content-Type: text/plain', '', 'See the web version'.repeat(3), '--ALT', 'Content-Type: text/html', '', ''].join(CRLF) + row.repeat(45_000) + '<p>LAST ROW</p>' + CRLF + '--ALT--' + CRLF;
      assert.equal((await verdictOf(newsletter)).unread, undefined);
      const log = ['From: cron@example.com', 'Subject: log', 'Content-Type: text/plain', '', ''].join(CRLF) + ('2026-12-02T10:00:00Z host app[123]: request served in 12 ms, ok' + CRLF).repeat(45_000);
      assert.equal((await verdictOf(log)).unread, undefined);
      // Padding of lines with a few blanks each, or of dots, is still padding.
      const spaced = ['From: a@example.com', 'Subject: hi', 'MIME-Version: 1.0', 'Content-Type: text/html', '', ''].join(CRLF) + (' '.repeat(60) + CRLF).repeat(42_000) + '<p>PADDED SPAM</p>' + CRLF;
      assert.match((await verdictOf(spaced)).unread ?? '', /^1 text part read only in part/);
      const dots = ['From: a@example.com', 'Subject: hi', 'MIME-Version: 1.0', 'Content-Type: text/plain', '', ''].join(CRLF) + ('.' + CRLF).repeat(42_000) + 'PADDED SPAM' + CRLF;
      assert.match((await verdictOf(dots)).unread ?? '', /^1 text part read only in part/);
      // A walk stopped by its own bound says what follows was not read.
      const tiny = head + img(1600 * 1024) + '--B\r\nContent-Type: image/gif\r\n\r\nx\r\n'.repeat(10_050) + small(0, 'AFTER THE WALK') + '--B--\r\n';
      assert.match((await verdictOf(tiny)).unread ?? '', /stopped at 10000 parts past the cut/);
      // Review: the decoys spent while searching a nested multipart's boundary (the search at the top of the walk, not the
      // part-end one) stopped the walk in silence, and the text after them was neither read nor scored.
      const inner = head + img(1600 * 1024) + small(0, 'hello') + ['--B', 'Content-Type: multipart/mixed; boundary="C"', '', ''].join(CRLF) + '--Cx\r\n'.repeat(50_001) + ['--C', 'Content-Type: text/plain', '', 'SPAM AFTER THE DECOYS', '--C--', '--B--', ''].join(CRLF);
      const decoyed = await verdictOf(inner);
      assert.doesNotMatch(decoyed.words, /SPAM AFTER THE DECOYS/);
      assert.match(decoyed.unread ?? '', /stopped at 50000 lines like a boundary delimiter/);
    });

    describe('HTML padding whose lines are long and not blank, but show nothing, gives MIME_TEXT_UNREAD; real mail of heavy markup does not', () => {
      const htmlMessage = (body: string) => ['From: a@example.com', 'Subject: hi', 'MIME-Version: 1.0', 'Content-Type: text/html; charset=utf-8', '', ''].join(CRLF) + body;
      // Review: 50,000 lines of 36 bytes, none blank, past the cut and the tail's 14,000 lines; the spam stands after them.
      const crafted: [string, string][] = [
        ['a comment a line', '<html><body>' + CRLF + `<!-- ${'x'.repeat(29)} -->${CRLF}`.repeat(50_000)],
        ['empty elements', '<html><body>' + CRLF + `<div></div><span></span><div></div>${CRLF}`.repeat(50_000)],
        ['&nbsp; runs', '<html><body>' + CRLF + `${'&nbsp;'.repeat(6)}${CRLF}`.repeat(50_000)],
        ['zero-width characters', '<html><body>' + CRLF + `${'&#8203;&zwnj;'.repeat(3)}<br>${CRLF}`.repeat(50_000)],
        ['inline images of nothing', '<html><body>' + CRLF + `<img alt="" src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">${CRLF}`.repeat(50_000)],
        // One comment opened before the cut and still open past the tail's lines: its text is no text.
        ['one comment of 50,000 lines', '<html><body><!--' + CRLF + `${'x'.repeat(34)}${CRLF}`.repeat(50_000) + '-->'],
      ];
      for (const [name, padding] of crafted) {
        it(`an HTML part of ${name} before its text`, async () => {
          const r = await verdictOf(htmlMessage(padding + '<p>PADDED SPAM</p>' + CRLF));
          assert.ok(!r.words.includes('PADDED SPAM'), 'the spam is past what was read');
          assert.match(r.unread ?? '', /^1 text part read only in part \(the tail's 14000 lines ran out inside it, in what reads as padding/);
        });
      }

      it('an HTML part of comment padding in base64 of short lines: judged as decoded', async () => {
        const html = '<html><body>' + CRLF + `<!-- ${'x'.repeat(29)} -->${CRLF}`.repeat(50_000) + '<p>PADDED SPAM</p>' + CRLF;
        const body = Buffer.from(html).toString('base64').replace(/.{40}/g, `$&${CRLF}`);
        const raw = ['From: a@example.com', 'Subject: hi', 'MIME-Version: 1.0', 'Content-Type: text/html; charset=utf-8', 'Content-Transfer-Encoding: base64', '', ''].join(CRLF) + body + CRLF;
        const r = await verdictOf(raw);
        assert.ok(!r.words.includes('PADDED SPAM'), 'the spam is past what was read');
        assert.match(r.unread ?? '', /^1 text part read only in part .*HTML that shows almost nothing/);
      });

      it('an HTML part read from inside an unclosed <style>, <script> or <title> opened before the cut', async () => {
        // Review (h-mime): only an open comment was seen; a style sheet of 50,000 lines read from the cut on was all "text".
        const hidden: [string, string, string][] = [
          ['<html><head><style type="text/css">', '.c{} .pad { color: #123456; } .x{}', '</style></head><body>'],
          ['<html><head><SCRIPT>', 'var pad = "xxxxxxxxxxxxxxxxxxxxxxx";', '</script></head><body>'],
          ['<html><head><title>', 'Your account statement is ready xx', '</title></head><body>'],
        ];
        for (const [open, line, close] of hidden) {
          const r = await verdictOf(htmlMessage(open + CRLF + `${line}${CRLF}`.repeat(50_000) + close + '<p>PADDED SPAM</p>' + CRLF));
          assert.ok(!r.words.includes('PADDED SPAM'), `${open}: the spam is past what was read`);
          assert.match(r.unread ?? '', /^1 text part read only in part \(the tail's 14000 lines ran out inside it, in what reads as padding/, open);
        }
        // Closed before the cut (an end tag in capitals, with a blank), or opened inside a comment: the text after it shows.
        const rows = `<p>Order ${'line of text '.repeat(2)}</p>${CRLF}`.repeat(50_000);
        for (const closed of ['<html><head><style>.a{}</STYLE ></head><body>', '<html><body><!-- <style> -->']) {
          assert.equal((await verdictOf(htmlMessage(closed + CRLF + rows))).unread, undefined, closed);
        }
      });

      it('a base64 HTML part of 76-character lines whose content is one comment, or comment lines (cut by the bytes, not the lines)', async () => {
        // Review (h-mime): base64 lines are 78 bytes, so both bounds that cut it are the byte bounds, which were never judged;
        // and where the cut fell inside the one comment was not known for base64.
        const one = '<html><body><!--' + CRLF + `${'x'.repeat(70)}${CRLF}`.repeat(44_000) + '-->';
        const lines = '<html><body>' + CRLF + `<!-- ${'x'.repeat(65)} -->${CRLF}`.repeat(44_000);
        for (const padding of [one, lines]) {
          const body = Buffer.from(padding + '<p>PADDED SPAM</p>' + CRLF).toString('base64').replace(/.{76}/g, `$&${CRLF}`);
          const raw = ['From: a@example.com', 'Subject: hi', 'MIME-Version: 1.0', 'Content-Type: text/html; charset=utf-8', 'Content-Transfer-Encoding: base64', '', ''].join(CRLF) + body + CRLF;
          assert.ok(raw.length / raw.split('\n').length > 75, 'cut by the bytes');
          const r = await verdictOf(raw);
          assert.ok(!r.words.includes('PADDED SPAM'), 'the spam is past what was read');
          assert.match(r.unread ?? '', /^1 text part read only in part \(the tail's 1 MB ran out inside it, in what reads as padding/);
        }
      });

      it('what the body before the cut leaves open is read through its transfer encoding, and an end tag or --> the cut splits closes it again', () => {
        const raw = (s: string) => Buffer.from(`HEADER${s}`, 'latin1');
        const open = (s: string, encoding: string) => unshownOpenAt(bodyBefore(raw(s), 6, 6 + s.length, encoding));
        // base64: a `=` ends a chunk and decoding goes on (Buffer.from stops there); quoted-printable: encoded `<`, soft breaks.
        assert.equal(open(`QQ==${CRLF}${Buffer.from('<p>x</p><!-- pad').toString('base64')}`, 'base64'), '<p>x</p><!-- pad'.slice(8));
        assert.equal(open(`<p>x</p>=3C!-- pad`, 'quoted-printable'), '<!-- pad');
        assert.equal(open(`<p>x</p><!-- pad -=${CRLF}-> <p>shown</p>`, 'quoted-printable'), '');
        assert.equal(open(`<STYLE media=3Dall>p{}`, 'quoted-printable'), '<STYLE media=all>p{}');
        assert.equal(open('<!-- <style> --> <script>if (a<b) document.write("<!--")</script>', '7bit'), '');
        // A cut at each character of a closing `</style>` or `-->` after a long sheet or comment: what follows shows.
        const shown = '<p>' + 'Order confirmed, thank you. '.repeat(40) + '</p>';
        for (const [opener, closer] of [['<style type="text/css">', '</style>'], ['<!--', '-->'], ['<title>', '</TITLE >']]) {
          const html = `<html><head>${opener}${'x'.repeat(500)}${closer}</head><body>${shown}`;
          const at = html.indexOf(closer);
          for (let k = 0; k <= closer.length; k++) {
            assert.equal(htmlLooksLikePadding(html.slice(at + k), unshownOpenAt(html.slice(0, at + k))), false, `${closer} cut after ${k}`);
          }
          assert.equal(htmlLooksLikePadding(html.slice(at - 10), unshownOpenAt(html.slice(0, at - 10)).replace(/x+$/, '')), false, opener);
        }
      });

      it('a base64 HTML part cut inside a large data: font in its <style> does not; padding after such a payload still does', async () => {
        // Review (h-rev-a): read from inside the open <style>, the 1 MB of the font's payload after the cut was "hidden text"
        // (0% visible): a newsletter embedding its fonts raised MIME_TEXT_UNREAD (the commit before raised nothing).
        const text = `<p>${'Order confirmed, thank you for shopping with us. '.repeat(20)}</p>${CRLF}`.repeat(50);
        const font = Buffer.alloc(2_600_000, 3).toString('base64');
        const html = `<html><head><style>@font-face{font-family:X;src:url(data:font/woff2;base64,${font}) format("woff2")}</style></head><body>${text}</body></html>`;
        const raw = ['From: a@example.com', 'Subject: hi', 'MIME-Version: 1.0', 'Content-Type: text/html; charset=utf-8', 'Content-Transfer-Encoding: base64', '', ''].join(CRLF) +
          Buffer.from(html).toString('base64').replace(/.{76}/g, `$&${CRLF}`) + CRLF;
        assert.equal((await verdictOf(raw)).unread, undefined);
        // The payload ends after the cut and comment padding follows: judged as before, without the payload.
        const before = '<html><head><style>p{background:url(data:image/png;base64,' + 'QUFB'.repeat(1000);
        const after = 'QUFB'.repeat(100) + ')}</style></head><body>' + `<!-- ${'x'.repeat(65)} -->${CRLF}`.repeat(10_000);
        assert.equal(htmlLooksLikePadding(after, unshownOpenAt(before)), true);
        assert.equal(htmlLooksLikePadding(after + `<p>${'shown text '.repeat(2000)}</p>`, unshownOpenAt(before)), false);
      });

      it('a base64 HTML part past the cut that opens with a large inline image does not; one of hidden words after data: does', async () => {
        // Review (h-rev-a): the 1 MB read was the photo's payload (left out of the length) and 30 characters of tags: 0% visible,
        // "padding". Byte cuts of base64 HTML were not judged before 47afd36, which made this greeting card raise MIME_TEXT_UNREAD.
        const card = (payload: string) => `<html><body><img src="data:image/png;base64,${payload}"><p>${'Happy birthday from all of us! '.repeat(200)}</p></body></html>`;
        const part = (html: string) => ['--B', 'Content-Type: text/html; charset=utf-8', 'Content-Transfer-Encoding: base64', '', Buffer.from(html).toString('base64').replace(/.{76}/g, `$&${CRLF}`), '--B--', ''].join(CRLF);
        assert.equal((await verdictOf(head + img(1600 * 1024) + part(card(Buffer.alloc(1_200_000, 5).toString('base64'))))).unread, undefined);
        const words = (await verdictOf(head + img(1600 * 1024) + part(card('lorem ipsum dolor sit amet '.repeat(60_000)))));
        assert.match(words.unread ?? '', /^1 text part read only in part \(the tail's 1 MB ran out inside it/);
      });

      it('a cut that splits the opener itself (a quoted-printable soft break in <!--, a base64 line in <style>) still opens it', async () => {
        // Review (h-rev-a): unshownOpenAt saw no opener in `<!-`, and the read from the cut began `- lorem ...`: 50,000 lines
        // of a comment read as text, and the spam after it went unread without a symbol.
        const head = ['From: a@example.com', 'Subject: hi', 'MIME-Version: 1.0', 'Content-Type: text/html; charset=utf-8', 'Content-Transfer-Encoding: quoted-printable', '', ''].join(CRLF);
        const lines = Array.from({ length: 50_000 }, () => `${'Shown text of the letter and more of it here'.padEnd(58, '.')}${CRLF}`);
        lines[0] = `${'<html><body><p>'.padEnd(58, 'x')}${CRLF}`;
        const k = (mimeCut(Buffer.from(head + lines.join(''))).end - head.length) / 60 - 1;
        assert.ok(Number.isInteger(k) && k > 0 && k < 40_000, 'the cut falls at a line end');
        lines[k] = `${lines[k]!.slice(0, 54)}<!-=${CRLF}`;
        for (let i = k + 1; i < lines.length; i++) lines[i] = `${i === k + 1 ? '- ' : ''}${'lorem ipsum dolor sit amet consectetur adipiscing elit sed do'.slice(0, i === k + 1 ? 56 : 58)}${CRLF}`;
        const r = await verdictOf(head + lines.join('') + '--><p>PADDED SPAM</p>' + CRLF);
        assert.ok(!r.words.includes('PADDED SPAM'), 'the spam is past what was read');
        assert.match(r.unread ?? '', /^1 text part read only in part \(the tail's 14000 lines ran out/);
        // Unit: `<sty` | `le>` opens the style sheet; `<s` | `pan>` is a span, and its text shows.
        const css = `le>${'.pad { color: #123456; } '.repeat(2000)}`;
        assert.equal(htmlLooksLikePadding(css, unshownOpenAt('<html><head><title>x</title><sty')), true);
        assert.equal(htmlLooksLikePadding(`pan>${'Shown words. '.repeat(2000)}`, unshownOpenAt('<html><body><s')), false);
        assert.equal(unshownOpenAt('<!-- <sty -->'), '', 'inside a closed comment');
      });

      it('an HTML part read from inside an element hidden by its attributes, opened before the cut', async () => {
        // Review (h-hide): a <div style="display:none"> opened before the cut and holding 1.8 MB of words hid the spam after
        // it: read from the cut on, its words were "shown" text, and no symbol was raised.
        const pad = `${'lorem ipsum dolor sit amet consec'}${CRLF}`.repeat(50_000);
        const hiders = ['<div style="display:none">', '<span style="visibility: hidden">', '<div style="font-size:0px;">', '<td style="opacity:0">', '<div hidden>', '<font color="#ffffff">'];
        for (const hider of hiders) {
          const r = await verdictOf(htmlMessage(`<html><body><p>Hello</p>${hider}<table><tr><td>${CRLF}${pad}</td></tr></table></${hider.slice(1, hider.search(/[ >]/))}><p>PADDED SPAM</p>${CRLF}`));
          assert.ok(!r.words.includes('PADDED SPAM'), `${hider}: the spam is past what was read`);
          assert.match(r.unread ?? '', /^1 text part read only in part \(the tail's 14000 lines ran out inside it, in what reads as padding/, hider);
        }
        // Closed before the cut (a preheader), or hidden inside an element closed before it: the text after the cut shows.
        const rows = `<p>Order ${'line of text '.repeat(2)}</p>${CRLF}`.repeat(50_000);
        for (const closed of ['<div style="display:none">Preheader</div><table><tr><td>', '<div><span hidden>x</span></div><div style="display:none"><div>y</div></div><div>']) {
          assert.equal((await verdictOf(htmlMessage(`<html><body>${closed}${CRLF}${rows}</td></tr></table>`))).unread, undefined, closed);
        }
        // What is reopened: the outermost hiding element open at the cut and every element open inside it, so that their end
        // tags past the cut close them as the real ones; a visible element inside a hidden one is hidden with it.
        assert.equal(unshownOpenAt('<body><div class="a"><div style="display:none"><div style="display:block"><p>x'), '<div><div hidden><div><p>');
        assert.equal(unshownOpenAt('<body><div hidden><div>x</div></div><div><p>x'), '');
        // A zero font size reset inside: reopened with its reset, so the text past the cut shows until the child's end tag.
        assert.equal(unshownOpenAt('<body><table><tr><td style="font-size:0"><div style="font-size:14px">x'), '<table><tr><td style="font-size:0px"><div style="font-size:14px">');
        assert.equal(htmlLooksLikePadding(`${'Shown text of the letter. '.repeat(2000)}</div>`, unshownOpenAt('<body><td style="font-size:0"><div style="font-size:14px">x')), false);
        assert.equal(htmlLooksLikePadding(`</div>${'hidden words of no use at all '.repeat(2000)}`, unshownOpenAt('<body><td style="font-size:0"><div style="font-size:14px">x')), true);
        // Review (h-rev-f): the text colour and background open at the cut go with it, so white text on a dark
        // column shows past the cut, and white text on a white paragraph past it stays hidden.
        assert.equal(htmlLooksLikePadding(`<font color="#fff">${'Shown text of the letter. '.repeat(2000)}</font></div>`, unshownOpenAt('<body><td style="font-size:0"><div style="font-size:14px;background:#123">x')), false);
        assert.equal(htmlLooksLikePadding(`<font color="#fff">${'Shown text of the letter. '.repeat(2000)}</font></div>`, unshownOpenAt('<body><td bgcolor="#123"><div style="font-size:0"><div style="font-size:14px">x')), false);
        assert.equal(htmlLooksLikePadding(`<p style="background:#fff">${'hidden words of no use at all '.repeat(2000)}</p></div>`, unshownOpenAt('<body><td style="font-size:0"><div style="font-size:14px;color:#fff;background:#000">x')), true);
        // So does the background of a cell around the hiding element: once it closes, white text in the cell shows.
        assert.equal(htmlLooksLikePadding(`</span><font color="#fff">${'Shown text of the letter. '.repeat(2000)}</font></td>`, unshownOpenAt('<body><table><tr><td bgcolor="#000"><span style="visibility:hidden">x')), false);
        assert.equal(unshownOpenAt('<body><div style="display:none"><style>p{}'), '<div hidden><style>p{}');
        // Closed past the cut, by one end tag or by the same names nested: what follows shows again.
        const words = 'hidden words of no use at all '.repeat(5000);
        const shown = `<p>${'Shown text of the letter. '.repeat(2000)}</p>`;
        assert.equal(htmlLooksLikePadding(`${words}</div>${shown}`, unshownOpenAt('<body><div style="display:none">x')), false);
        assert.equal(htmlLooksLikePadding(`${words}</div>${words}</div>`, unshownOpenAt('<body><div style="display:none"><div>x')), true);
        assert.equal(htmlLooksLikePadding(`${words}</div>${words}</div>${shown}`, unshownOpenAt('<body><div style="display:none"><div>x')), false);
        // A cut inside the hiding start tag, or inside its end tag: the two halves are read as one tag.
        assert.equal(htmlLooksLikePadding(`ne">${words}`, unshownOpenAt('<body><div style="display:no')), true);
        assert.equal(htmlLooksLikePadding(`v>${shown}`, unshownOpenAt('<body><div style="display:none">x</di')), false);
      });

      it('a hiding element left unclosed at the cut is closed past it by the end tag of an element around it', async () => {
        // Review (h-rev-e): only the hiding element and those inside it were reopened, so a </td>, </li>, </p> or </table> past
        // the cut, which closes an unclosed <span style="display:none"> in the whole part, closed nothing there: all the
        // letter's text after it read as hidden, and a long newsletter cut there was flagged MIME_TEXT_UNREAD.
        const words = 'hidden words of no use at all '.repeat(500);
        const shown = `<p>${'Shown text of the letter. '.repeat(2000)}</p>`;
        const around: [string, string][] = [
          ['<body><table><tr><td><span style="display:none">x', `${words}</td><td>${shown}</td></tr></table>`],
          ['<body><p>a<span style="display:none">x', `${words}</p>${shown}`],
          ['<body><ul><li><div style="display:none">x', `${words}</li><li>${shown}</li></ul>`],
          ['<body><table><tr style="display:none"><td>x', `${words}</table>${shown}`],
        ];
        for (const [before, after] of around) assert.equal(htmlLooksLikePadding(after, unshownOpenAt(before)), false, before);
        assert.equal(unshownOpenAt('<html><body><table><tr><td><span style="display:none">x'), '<table><tr><td><span hidden>');
        // Not html, head or body, nor inline or unknown elements: a browser's </body> closes nothing, nor does </x> close a
        // <div> open inside it, and what follows them in the hiding element stays hidden.
        assert.equal(htmlLooksLikePadding(`${words}</body>${shown}`, unshownOpenAt('<html><body><font color="#ffffff">x')), true);
        assert.equal(htmlLooksLikePadding(`${words}</x>${shown}`, unshownOpenAt('<body><x><div style="display:none">x')), true);
        const pad = `${'lorem ipsum dolor sit amet consec'}${CRLF}`.repeat(28_500);
        const rows = `<p>Order ${'line of text '.repeat(2)}</p>${CRLF}`.repeat(50_000);
        const r = await verdictOf(htmlMessage(`<html><body><table><tr><td><span style="display:none">${CRLF}${pad}</td><td>${CRLF}${rows}</td></tr></table>`));
        assert.equal(r.unread, undefined);
      });

      it('hostile nesting before the cut: read flat past 500 levels, a hiding element open there still hides what follows', async () => {
        // 200,000 unclosed elements (millions of tags cost the same per tag): analyseHtml follows 500 levels and reads the
        // rest flat; the open elements past them are not known one by one, so one hiding element is reopened that no end tag closes.
        const deep = '<div>'.repeat(200_000);
        assert.match(unshownOpenAt(`<body>${deep}<div style="display:none">x`), /^<mailward-deep-hidden-[0-9a-f]{16} hidden>$/);
        assert.equal(unshownOpenAt(`<body>${deep}<div style="display:none">x</div>`), '');
        assert.equal(unshownOpenAt(`<body>${'<b>'.repeat(700_000)}<p>x`), '');
        const pad = `${'lorem ipsum dolor sit amet consec'}${CRLF}`.repeat(50_000);
        const r = await verdictOf(htmlMessage(`<html><body>${'<div><span>'.repeat(3000)}${CRLF}<div style="display:none">${CRLF}${pad}</div><p>PADDED SPAM</p>${CRLF}`));
        assert.ok(!r.words.includes('PADDED SPAM'), 'the spam is past what was read');
        assert.match(r.unread ?? '', /^1 text part read only in part \(the tail's 14000 lines ran out inside it, in what reads as padding/);
        const rows = `<p>Order ${'line of text '.repeat(2)}</p>${CRLF}`.repeat(50_000);
        assert.equal((await verdictOf(htmlMessage(`<html><body>${'<div><span>'.repeat(3000)}${CRLF}${rows}`))).unread, undefined);
      });

      /**
       * A text/html part of 60-byte lines, `line(i)` each, and the index of the last line before the cut (a line end):
       * lines to change there keep the cut where it is.
       */
      const linesAtCut = () => {
        const lines = Array.from({ length: 50_000 }, (_, i) => (i ? 'Shown text of the letter and more of it here' : '<html><body><p>').padEnd(58, '.') + CRLF);
        const k = (mimeCut(Buffer.from(htmlMessage(lines.join('')))).end - htmlMessage('').length) / 60 - 1;
        assert.ok(Number.isInteger(k) && k > 200 && k < 40_000, 'the cut falls at a line end');
        const message = (from: (i: number) => string | undefined, end: string) =>
          htmlMessage(lines.map((l, i) => (from(i) ?? l.slice(0, 58)).padEnd(58, ' ') + CRLF).join('') + end);
        return { k, message };
      };
      const hiddenLine = 'lorem ipsum dolor sit amet consectetur adipiscing elit sed';

      it('a < or > in an attribute value, or a <!-- or <style> in one, starts, ends or opens nothing for what the cut leaves open', async () => {
        // Review (opn): the start tag the cut splits was found by the last `<` before the cut with no `>` after it, and what is
        // open (a comment, a style sheet) by searching `<!--` and `<style` forward: a `<` in `title="a<b"` took the hiding
        // tag's place, a `>` in one dropped it, and `alt="<!--"` swallowed the real <style> up to a `-->` in its CSS.
        const words = 'hidden words of no use at all '.repeat(5000);
        const css = '.pad { color: #123456; } '.repeat(3000);
        const split: [string, string][] = [
          ['<body><div style="display:none" title="a<b', `">${words}`],
          ['<body><div title="a>b" style="display:no', `ne">${words}`],
          ["<body><div title='x<y>z' style=display:no", `ne>${words}`],
          ['<body><img alt="<!--"><style>/*-->*/ p{}', css],
          ['<body><img alt="<style>"><!-- </style> x', words],
          ['<body><p title="<template>">a</p><!-- x', words],
        ];
        for (const [before, after] of split) assert.equal(htmlLooksLikePadding(after, unshownOpenAt(before)), true, before);
        // Through the MIME tail: the hiding tag split at the cut between its attributes, a `<` in the one before the cut.
        const { k, message } = linesAtCut();
        const split1 = message((i) => (i === k ? '<div style="display:none" title="a<b"' : i === k + 1 ? `>${hiddenLine.slice(1)}` : i > k ? hiddenLine : undefined), '</div><p>PADDED SPAM</p>' + CRLF);
        const r = await verdictOf(split1);
        assert.ok(!r.words.includes('PADDED SPAM'), 'the spam is past what was read');
        assert.match(r.unread ?? '', /^1 text part read only in part \(the tail's 14000 lines ran out inside it, in what reads as padding/);
        // And a style sheet open at the cut after an image whose alt text holds `<!--`, with a `-->` in the sheet.
        const sheet = message((i) => (i === 1 ? '<img alt="<!--" src="a.png"><style>/* --> */' : i > 1 ? '.pad { color: #123456; } .x { margin: 0 }' : undefined), '</style><p>PADDED SPAM</p>' + CRLF);
        assert.match((await verdictOf(sheet)).unread ?? '', /^1 text part read only in part \(the tail's 14000 lines ran out inside it, in what reads as padding/);
        // Ham: a newsletter with `<` and `>` in alt texts, cut inside an image's tag or just after it, reads as shown.
        for (const at of [k, k + 1]) {
          const ham = message((i) => (i === at ? '<p>We <img alt="<3 and >_<" src="https://shop.example/h.png"' : i === at + 1 ? ' width="20"> our readers.</p>' : undefined), '</body></html>' + CRLF);
          assert.equal((await verdictOf(ham)).unread, undefined, `cut before line ${at}`);
        }
        assert.equal(htmlLooksLikePadding(`"><p>${'Shown text of the letter. '.repeat(2000)}</p>`, unshownOpenAt('<body><p>Hi</p><img alt="<3 love" src="https://x.example/a.png')), false);
      });

      it('a start tag the cut splits is kept by its name and the attributes that decide hiding, however long', async () => {
        // Review (opn): a split tag was kept only within 4 KB of the cut (MAX_PARTIAL_TAG): a hiding div padded past it by an
        // attribute of 8 KB lost its opener, and the 1 MB of words it hid read as shown.
        const words = 'hidden words of no use at all '.repeat(5000);
        const shown = `<p>${'Shown text of the letter. '.repeat(2000)}</p>`;
        const pad = 'x'.repeat(8000);
        const split: [string, string, boolean][] = [
          [`<body><div data-pad="${pad}" style="display:no`, `ne">${words}`, true],
          [`<body><div style="display:none;${'color:red;'.repeat(800)}`, `">${words}`, true],
          [`<body><div title="${pad}`, `" style="display:none">${words}`, true],
          [`<body><div data-pad="${pad}" hidden data-more="${pad}`, `">${words}`, true],
          [`<body><div style="display:none" data-pad="${pad}`, `">${words}</div>${shown}`, false],
          [`<body><p>Hi</p><img alt="<3" src="data:image/png;base64,${'QUFB'.repeat(3000)}`, `QUFB">${shown}`, false],
        ];
        for (const [before, after, hidden] of split) assert.equal(htmlLooksLikePadding(after, unshownOpenAt(before)), hidden, before.slice(0, 40));
        // Bounded however long the tag: its name and each attribute kept by both ends.
        const huge = 'y'.repeat(1024 * 1024);
        assert.ok(unshownOpenAt(`<body><div data-a="${huge}" title="${huge}" class="${huge}" style="display:none;${huge}`).length < 48 * 1024);
        // Through the MIME tail: the hiding div's 9 KB attribute spans 150 lines before the cut.
        const { k, message } = linesAtCut();
        const raw = message((i) => (i === k - 150 ? '<div style="display:none" data-pad="' : i > k - 150 && i <= k ? 'x'.repeat(58) : i === k + 1 ? `">${hiddenLine}` : i > k ? hiddenLine : undefined), '</div><p>PADDED SPAM</p>' + CRLF);
        const r = await verdictOf(raw);
        assert.ok(!r.words.includes('PADDED SPAM'), 'the spam is past what was read');
        assert.match(r.unread ?? '', /^1 text part read only in part \(the tail's 14000 lines ran out inside it, in what reads as padding/);
      });

      it('a split start tag keeps every attribute the look is read from: a body\'s text colour, a link\'s href', () => {
        // Review (rv3): LOOK_ATTRIBUTES missed `text` and `href`, which html.ts reads (textColorOf): `<body text="#ffffff"`
        // split after it read its white text as shown, and a link in a white div, split after its href, read as hidden.
        const shown = 'Shown text of the letter. '.repeat(2000);
        assert.equal(htmlLooksLikePadding(`n"><p>${shown}`, unshownOpenAt('<html><body text="#ffffff" lang="e')), true);
        assert.equal(htmlLooksLikePadding(`ank">${shown}</a></div>`, unshownOpenAt('<body><div style="color:#fff"><a href="https://x.example/" target="_bl')), false);
      });

      it('a start tag the cut splits keeps what each attribute html.ts reads does to the look (LOOK_ATTRIBUTES, one list)', () => {
        // padding.ts kept its own list of the attributes html.ts reads, in step by a comment (it missed `text` and `href`
        // once). Each attribute of html.ts's one list has a case here: split after it, the read past the cut must come out
        // as in the whole part, and must not without it (the attribute renamed), so the case shows the attribute counts.
        // A class was kept on the split tag but the style sheet giving it a dark background was not: its white text read as hidden.
        const shown = 'Shown text of the letter. '.repeat(2000);
        const sheet = '<html><head><style>.dk{background:#000}</style></head><body>';
        const cases: Record<string, [before: string, after: string, hidden: boolean]> = {
          style: ['<body><div style="display:none" lang="e', `n">${shown}`, true],
          hidden: ['<body><div hidden lang="e', `n">${shown}`, true],
          class: [`${sheet}<div style="color:#fff"><div class="dk" lang="e`, `n">${shown}</div>`, false],
          bgcolor: ['<body><div style="color:#fff"><table><tr><td bgcolor="#000000" lang="e', `n">${shown}</td>`, false],
          background: ['<body><div style="color:#fff"><table><tr><td background="night.png" lang="e', `n">${shown}</td>`, false],
          color: ['<body><font color="#ffffff" lang="e', `n">${shown}`, true],
          size: ['<body><div style="font-size:0"><font size="3" lang="e', `n">${shown}</font>`, false],
          alt: ['<body><img alt="' + 'A picture of the product. '.repeat(40) + '" lang="e', `n">${'<!-- nothing -->'.repeat(5000)}`, false],
          title: ['<body><img title="' + 'A picture of the product. '.repeat(40) + '" lang="e', `n">${'<!-- nothing -->'.repeat(5000)}`, false],
          text: ['<html><body text="#ffffff" lang="e', `n"><p>${shown}`, true],
          href: ['<body><div style="color:#fff"><a href="https://x.example/" lang="e', `n">${shown}</a></div>`, false],
        };
        assert.deepEqual(Object.keys(cases).sort(), [...LOOK_ATTRIBUTES].sort(), 'a case for each attribute html.ts reads');
        for (const [name, [before, after, hidden]] of Object.entries(cases)) {
          assert.equal(htmlLooksLikePadding(after, unshownOpenAt(before)), hidden, `${name}: split after it`);
          const without = before.replace(new RegExp(`(<[a-z]+ )${name}(?=[ =])(?!.*<)`), `$1data-${name}`);
          assert.notEqual(without, before, name);
          assert.equal(htmlLooksLikePadding(after, unshownOpenAt(without)), !hidden, `${name}: without it`);
        }
        // The restated sheet is not counted in the length judged: 2,000 dark classes (about 50 KB) before a short read of 1% text.
        const classes = Array.from({ length: 2000 }, (_, i) => `.dark-cell-${i}{background:#000}`).join('');
        const short = `<p>${'Shown text. '.repeat(20)}</p>${'<div><!-- spacer --></div>'.repeat(800)}`;
        assert.equal(htmlLooksLikePadding(short, unshownOpenAt(`<html><head><style>${classes}</style></head><body><p>x</p>`)), false, 'a large sheet before a short read');
        assert.equal(htmlLooksLikePadding(short.replace(/Shown text/g, '<!-- -->'), unshownOpenAt(`<html><head><style>${classes}</style></head><body><p>x</p>`)), true);
        // Past the cut too: a cell of the class the sheet before the cut colours dark keeps its white text shown.
        assert.equal(htmlLooksLikePadding(`<td class="dk"><font color="#fff">${shown}</font></td>`, unshownOpenAt(`${sheet}<table><tr><td>x</td></tr>`)), false);
      });

      it('a forged </mailward-deep-hidden> past the cut does not close the hiding element reopened past 500 levels', async () => {
        // Review (opn): the element reopened for a hiding one open past MAX_DEPTH had a fixed name, so its end tag, which closes
        // nothing in a browser, closed it past the cut and the words after it read as shown.
        const words = 'hidden words of no use at all '.repeat(5000);
        const open = unshownOpenAt(`<body>${'<div>'.repeat(600)}<div style="display:none">x`);
        assert.equal(htmlLooksLikePadding(`</mailward-deep-hidden>${words}`, open), true);
        assert.notEqual(unshownOpenAt(`<body>${'<div>'.repeat(600)}<div hidden>x`).match(/<[^ ]+/)![0], open.match(/<[^ ]+/)![0], 'a name of its own each time');
        const pad = `</mailward-deep-hidden>${'lorem ipsum dolor sit amet'}${CRLF}`.repeat(50_000);
        const r = await verdictOf(htmlMessage(`<html><body>${'<div><span>'.repeat(3000)}${CRLF}<div style="display:none">${CRLF}${pad}</div><p>PADDED SPAM</p>${CRLF}`));
        assert.ok(!r.words.includes('PADDED SPAM'), 'the spam is past what was read');
        assert.match(r.unread ?? '', /^1 text part read only in part \(the tail's 14000 lines ran out inside it, in what reads as padding/);
      });

      it('ham: a dark newsletter (white text on a dark table) cut at the bound reads as shown past the cut', async () => {
        // Review (rv3): only a hiding element open at the cut is reopened (hiddenOpen); the dark background around the cut
        // (a table's bgcolor or style, a style sheet class) is not, so every white cell read past the cut was judged on
        // white, hidden, and the newsletter raised MIME_TEXT_UNREAD though a reader sees all of it.
        const shown = 'Shown text of the letter, news of the week.';
        const dark = (td: string, table: string, headExtra = '') => {
          const row = `<tr>${td}${shown}</td></tr>${CRLF}`;
          return `<html><head>${headExtra}</head><body>${table}${CRLF}${row.repeat(50_000)}</table><p>THE END</p></body></html>${CRLF}`;
        };
        const bodies: [string, string][] = [
          ['table style', dark('<td style="color:#ffffff">', '<table style="background-color:#111111" width="600">')],
          ['table bgcolor', dark('<td><font color="#ffffff">', '<table bgcolor="#000000" width="600">')],
          ['style sheet class', dark('<td style="color:#ffffff">', '<table class="dark" width="600">', '<style>.dark { background: #000000; }</style>')],
        ];
        const flagged: string[] = [];
        for (const [name, body] of bodies) {
          assert.equal(analyseHtml(body).hiddenText, '', `${name}: the whole part shows everything`);
          const r = await verdictOf(htmlMessage(body));
          assert.ok(!r.words.includes('THE END'), `${name}: cut twice (the parse and the tail)`);
          if (r.unread !== undefined) flagged.push(name);
        }
        assert.deepEqual(flagged, [], 'MIME_TEXT_UNREAD raised on ham');
        // A start tag the cut splits is read without the elements around it too: white text of a dark table read on white.
        const after = `">${shown.repeat(2000)}</td></tr></table>`;
        assert.equal(htmlLooksLikePadding(after, unshownOpenAt('<body><table style="background:#000"><tr><td style="color:#fff')), false);
        assert.equal(htmlLooksLikePadding(after, unshownOpenAt('<body><table bgcolor="#000000"><tr><td><font color="#ffffff" size="2')), false);
      });

      it('ham: a dark page (the body\'s or html\'s background) with no block element open at the cut reads as shown past it', async () => {
        // Review: only block and table elements open at the cut were reopened with their look; a `<body style="background:#000">`
        // (or bgcolor, or `<html style>`) was not, so white text read past the cut was judged on white, hidden, and a dark
        // newsletter of inline text raised MIME_TEXT_UNREAD.
        const shown = 'Shown text of the letter, news of the week.';
        const page = (open: string, line: string) => `${open}${CRLF}${line.repeat(50_000)}<p>THE END</p></body></html>${CRLF}`;
        const bodies: [string, string][] = [
          ['body style', page('<html><body style="background:#000000">', `<font color="#ffffff">${shown}</font><br>${CRLF}`)],
          ['body bgcolor and text', page('<html><body bgcolor="#000000" text="#ffffff">', `${shown}<br>${CRLF}`)],
          ['html style', page('<html style="background-color:#111"><body>', `<span style="color:#fff">${shown}</span><br>${CRLF}`)],
        ];
        const flagged: string[] = [];
        for (const [name, body] of bodies) {
          assert.equal(analyseHtml(body).hiddenText, '', `${name}: the whole part shows everything`);
          const r = await verdictOf(htmlMessage(body));
          assert.ok(!r.words.includes('THE END'), `${name}: cut twice (the parse and the tail)`);
          if (r.unread !== undefined) flagged.push(name);
        }
        assert.deepEqual(flagged, [], 'MIME_TEXT_UNREAD raised on ham');
        // Padding on that page still reads as padding: black text on the black body, and a forged end tag of the
        // element the page's look is reopened under (or `</body>`) does not bring back the white page.
        const words = 'hidden words of no use at all '.repeat(5000);
        for (const close of ['', '</mailward-page>', '</body>']) {
          assert.equal(htmlLooksLikePadding(`${close}<font color="#000">${words}</font>`, unshownOpenAt('<html><body bgcolor="#000000"><font color="#fff">x</font>')), true, close);
        }
      });

      it('a text fill colour and an opacity open at the cut go with what is reopened: the text past it is judged with them', () => {
        const words = `<p>${'hidden words of no use at all '.repeat(5000)}</p>`;
        const shown = `<p>${'Shown text of the letter. '.repeat(2000)}</p>`;
        assert.equal(htmlLooksLikePadding(words, unshownOpenAt('<body><div style="-webkit-text-fill-color:transparent"><p>x</p>')), true);
        assert.equal(htmlLooksLikePadding(`<span style="opacity:0.3">${words}</span>`, unshownOpenAt('<body><div style="opacity:0.3"><p>x</p>')), true);
        assert.equal(htmlLooksLikePadding(`</div>${shown}`, unshownOpenAt('<body><div style="-webkit-text-fill-color:transparent"><p>x</p>')), false);
        assert.equal(htmlLooksLikePadding(`<span style="opacity:0.5">${shown}</span>`, unshownOpenAt('<body><div style="opacity:0.5"><p>x</p>')), false);
      });

      it('ham: gradient text open at the cut (a background clipped to it, a transparent fill) reads as shown past it', () => {
        // The fill colour open at the cut is carried past it; the background clipped to the text must go with it, or the
        // gradient heading's words past the cut read as transparent, hidden.
        const shown = `<p>${'Shown text of the letter. '.repeat(2000)}</p>`;
        const words = `<p>${'hidden words of no use at all '.repeat(5000)}</p>`;
        const clip = (background: string) => `<body><div style="background:${background};-webkit-background-clip:text;-webkit-text-fill-color:transparent"><p>x</p>`;
        assert.equal(htmlLooksLikePadding(shown, unshownOpenAt(clip('linear-gradient(90deg,#f36,#63f)'))), false);
        assert.equal(htmlLooksLikePadding(shown, unshownOpenAt(clip('#cc0000'))), false);
        // White clipped to the text on the white page is white text.
        assert.equal(htmlLooksLikePadding(words, unshownOpenAt(clip('#ffffff'))), true);
      });

      it('an HTML part of 1 MB of 76-byte comment lines wholly past the cut: the byte bound cuts it, under the line bound', async () => {
        const part = ['--B', 'Content-Type: text/html', '', ''].join(CRLF) + `<!-- ${'x'.repeat(65)} -->${CRLF}`.repeat(16_000) + '<p>PADDED SPAM</p>' + CRLF + '--B--' + CRLF;
        const r = await verdictOf(head + img(1600 * 1024) + part);
        assert.ok(!r.words.includes('PADDED SPAM'), 'the spam is past what was read');
        assert.match(r.unread ?? '', /^1 text part read only in part \(the tail's 1 MB ran out inside it/);
      });

      it('long text and HTML parts of ordinary long lines that the byte bound cuts do not', async () => {
        const row = (i: number) => `<tr><td class="p">Woollen scarf no. ${i}</td><td class="price">EUR ${(i % 90) + 9}.90</td><td><a href="https://shop.example.com/p/${i}">buy</a></td></tr>${CRLF}`;
        const html = '<html><body><table>' + CRLF + Array.from({ length: 30_000 }, (_, i) => row(i)).join('') + '</table></body></html>' + CRLF;
        const b64 = ['From: news@shop.example.com', 'Subject: hi', 'MIME-Version: 1.0', 'Content-Type: text/html; charset=utf-8', 'Content-Transfer-Encoding: base64', '', ''].join(CRLF) +
          Buffer.from(html).toString('base64').replace(/.{76}/g, `$&${CRLF}`) + CRLF;
        assert.equal((await verdictOf(b64)).unread, undefined, 'base64 HTML');
        const text = ['From: a@example.com', 'Subject: report', 'Content-Type: text/plain', '', ''].join(CRLF) + `${'A line of an ordinary long report, wrapped at no column at all, '.repeat(2)}${CRLF}`.repeat(30_000);
        assert.equal((await verdictOf(text)).unread, undefined, 'text');
        const part = ['--B', 'Content-Type: text/html', '', ''].join(CRLF) + html + '--B--' + CRLF;
        assert.equal((await verdictOf(head + img(1600 * 1024) + part)).unread, undefined, 'HTML past the cut');
      });

      it('a list of short lines the byte bound cuts, after a part that spent the bytes in long lines, does not', async () => {
        // Review (h-rev-a): the short-line test (under 24 bytes a line) was applied to byte cuts too. After an HTML part of
        // 900-byte lines, 98 KB and ~13,000 lines were left: a list of 15-byte lines ran out of bytes first and was "padding".
        const long = ['--B', 'Content-Type: text/html', '', ''].join(CRLF) + `<p>${'Long paragraph of an ordinary report with real words in it. '.repeat(15)}</p>${CRLF}`.repeat(1000);
        const list = ['--B', 'Content-Type: text/plain', '', ''].join(CRLF) + Array.from({ length: 40_000 }, (_, i) => `Item ${i} ok`).join(CRLF) + CRLF + '--B--' + CRLF;
        assert.equal((await verdictOf(head + img(1600 * 1024) + long + list)).unread, undefined);
      });

      it('an HTML part of comment padding wholly past the cut (after a large image)', async () => {
        const part = ['--B', 'Content-Type: text/html', '', ''].join(CRLF) + `<!-- ${'x'.repeat(29)} -->${CRLF}`.repeat(20_000) + '<p>PADDED SPAM</p>' + CRLF + '--B--' + CRLF;
        const r = await verdictOf(head + img(1600 * 1024) + part);
        assert.ok(!r.words.includes('PADDED SPAM'), 'the spam is past what was read');
        assert.match(r.unread ?? '', /^1 text part read only in part/);
      });

      it('a long catalogue of images with alt texts, and one of inline data: thumbnails with prices, do not', async () => {
        // Review: both read as < 0.5% visible (alt texts were not counted, data: payloads were), so each raised it.
        const card = (i: number, img: string) =>
          ['<tr>', '  <td align="center" style="padding:0 0 8px 0;">', `    <a href="https://shop.example.com/p/${100000 + i}?utm_source=news"`, '       target="_blank">', img, '    </a>', '  </td>', '</tr>'].join(CRLF) + CRLF;
        const remote = (i: number) =>
          [`      <img src="https://img.shop.example.com/p/${100000 + i}/600.jpg"`, `           width="600" height="400" alt="Woollen scarf no. ${i}, now EUR 19.90"`, '           style="display:block;border:0;width:100%;">'].join(CRLF);
        const inline = (i: number) =>
          `      <img width="120" height="120" alt="" src="data:image/jpeg;base64,${Buffer.alloc(4000, i % 251).toString('base64').replace(/.{76}/g, `$&${CRLF}`)}"> <span>EUR ${(i % 90) + 9}.90</span>`;
        for (const [img, n] of [[remote, 5_000], [inline, 1_200]] as const) {
          const catalogue = '<html><body><table>' + CRLF + Array.from({ length: n }, (_, i) => card(i, img(i))).join('') + '</table></body></html>' + CRLF;
          assert.ok(catalogue.split('\n').length > 40_000 && catalogue.length / catalogue.split('\n').length < 75, 'cut by the lines, not the bytes');
          assert.equal((await verdictOf(htmlMessage(catalogue))).unread, undefined, img.name);
        }
      });

      it('a quoted-printable newsletter whose last Outlook conditional comment before the cut ends on a soft line break does not', async () => {
        // Review: `-->` written as `-=` CRLF `->` was not seen, so the part read from the cut was taken as inside a comment (0% visible).
        const row = (i: number) =>
          ['<tr>', '  <td align=3D"left" valign=3D"top" class=3D"item" bgcolor=3D"#ffffff">', `    <a href=3D"https://shop.example.com/p/${10000 + i}">Woollen scarf</a>`, `    <span>EUR ${(i % 90) + 9}.90</span>`, '  </td>', '</tr>'].join(CRLF) + CRLF;
        const rows = (from: number, n: number) => Array.from({ length: n }, (_, i) => row(from + i)).join('');
        const mso = '<!--[if mso]><table role=3D"presentation" width=3D"600"><tr><td ><![endif]-=' + CRLF + '->' + CRLF;
        const body = '<html><body><table>' + CRLF + rows(0, 4_000) + mso + rows(4_000, 6_000) + '</table></body></html>' + CRLF;
        const raw = ['From: news@shop.example.com', 'Subject: hi', 'MIME-Version: 1.0', 'Content-Type: text/html; charset=utf-8', 'Content-Transfer-Encoding: quoted-printable', '', ''].join(CRLF) + body;
        assert.ok(body.indexOf('[if mso]') < body.split(CRLF).slice(0, 28_000).join(CRLF).length, 'the comment stands before the cut');
        assert.equal((await verdictOf(raw)).unread, undefined);
      });

      it('a long newsletter of short lines heavy with inline CSS and table markup, and a long CSV, do not', async () => {
        // A product grid as template engines write it (attributes a line, links with tracking): ~5% of it shows.
        const product = (i: number) =>
          [
            '<tr>',
            '  <td align="left" valign="top" class="item" bgcolor="#ffffff"',
            '      style="padding:0 24px 12px 24px;font-family:Arial,sans-serif;">',
            `    <a href="https://shop.example.com/p/${10000 + i}?utm_source=news"`,
            '       style="color:#1a73e8;text-decoration:none;">Woollen scarf</a>',
            `    <span style="font-size:13px;color:#555555;">EUR ${(i % 90) + 9}.90</span>`,
            '  </td>',
            '</tr>',
            i % 4 ? '' : '<tr><td style="padding:0 24px;">Warm and soft, made to last.</td></tr>',
          ]
            .filter(Boolean)
            .join(CRLF) + CRLF;
        const grid = Array.from({ length: 5_400 }, (_, i) => product(i)).join('');
        const altHead = ['From: news@shop.example.com', 'Subject: new in', 'MIME-Version: 1.0', 'Content-Type: multipart/alternative; boundary="ALT"', '', ''].join(CRLF);
        const newsletter = altHead + ['--ALT', 'Content-Type: text/plain', '', 'See the web version', '--ALT', 'Content-Type: text/html; charset=utf-8', '', '<html><body><table>', ''].join(CRLF) + grid + '<p>LAST ROW</p></table></body></html>' + CRLF + '--ALT--' + CRLF;
        assert.ok(newsletter.split('\n').length > 40_000 && newsletter.length / newsletter.split('\n').length < 75, 'cut by the lines, not the bytes');
        const read = await verdictOf(newsletter);
        assert.ok(read.words.includes('Woollen scarf'));
        assert.equal(read.unread, undefined);
        const csv = ['From: reports@example.com', 'Subject: orders', 'Content-Type: text/plain; charset=utf-8', '', 'date,order,item,qty,price,currency,status', ''].join(CRLF) +
          Array.from({ length: 45_000 }, (_, i) => `2026-12-01,ORD-${100000 + i},widget-${i % 37},${(i % 5) + 1},19.99,EUR,shipped${CRLF}`).join('');
        assert.equal((await verdictOf(csv)).unread, undefined);
      });
    });

    it('a fake delimiter and text/plain header inside an attachment straddling the cut, or in the epilogue, is not read as a text part', async () => {
      const start = head + img(1200 * 1024) + ['--B', 'Content-Type: text/plain; name="notes.txt"', 'Content-Disposition: attachment; filename="notes.txt"', '', ''].join(CRLF);
      // The fake block stands 5 KB before the cut, the attachment goes on 20 KB past it.
      const attachment = filler(MAX_PARSE_BYTES - start.length - 5000) + fake('--fake', 'SMUGGLED SPAM WORDS') + filler(25000);
      const genuine = ['--B', 'Content-Type: text/plain', '', 'GENUINE TAIL WORDS', '--B--', ''].join(CRLF);
      const r = await read(start + attachment + genuine + fake('--epilogue', 'EPILOGUE WORDS'));
      assert.doesNotMatch(r.words, /SMUGGLED|EPILOGUE/);
      assert.match(r.words, /GENUINE TAIL WORDS/);
      assert.match(r.partial, /and 1 text part crossing or after it$/);
    });

    it('a text part straddling the cut is read to its own end: a fake delimiter and image header inside it hide nothing', async () => {
      const start = head + img(1200 * 1024);
      // The line limit cuts it (short lines): ~1,000 lines before the fake delimiter.
      const before = ['--B', 'Content-Type: text/plain', '', ''].join(CRLF) + filler(30 * (MAX_PARSE_LINES - lineCount(Buffer.from(start)) + 1000));
      const hider = ['--hide', 'Content-Type: image/png', 'Content-Transfer-Encoding: base64', '', ''].join(CRLF);
      // An image after it keeps the message over 2 MB.
      const r = await read(start + before + hider + filler(20000) + 'HIDDEN SPAM WORDS\r\n' + ['--B', 'Content-Type: text/html', '', '<p>NEXT PART WORDS</p>', ''].join(CRLF) + img(600 * 1024) + '--B--\r\n');
      assert.match(r.words, /HIDDEN SPAM WORDS/);
      assert.match(r.words, /NEXT PART WORDS/);
    });

    it('a nested multipart past the cut is walked by its own declared boundary; a line only starting like it, or a delimiter of an attached message, is no delimiter', async () => {
      const inner = [
        '--B', 'Content-Type: multipart/mixed; boundary="INNER"', '', 'preamble',
        '--INNER', 'Content-Type: text/plain', 'Content-Disposition: attachment; filename="a.txt"', '', 'attached', fake('--INNERfake', 'SMUGGLED INNER WORDS'),
        '--INNER', 'Content-Type: message/rfc822', '', 'Subject: fwd', 'Content-Type: multipart/alternative; boundary="FWD"', '', '--FWD', 'Content-Type: text/plain', '', 'FORWARDED WORDS',
        '--INNER', 'Content-Type: text/html; charset=utf-8', '', '<p>NESTED GENUINE WORDS</p>',
        '--INNER--', '',
        // Never closed: the outer delimiter ends it, as in postal-mime.
        '--B', 'Content-Type: multipart/alternative; boundary="OPEN"', '', '--OPEN', 'Content-Type: text/plain', '', 'OPEN INNER WORDS',
        '--B', 'Content-Type: text/plain', '', 'OUTER AFTER WORDS', '--B--', '',
      ].join(CRLF);
      const r = await read(head + img(1600 * 1024) + inner);
      assert.doesNotMatch(r.words, /SMUGGLED/);
      // The inline forwarded message is read as a message of its own (its FWD delimiters end no outer part), as postal-mime reads it before the cut.
      for (const words of ['FORWARDED', 'NESTED GENUINE', 'OPEN INNER', 'OUTER AFTER']) assert.match(r.words, new RegExp(words));
      assert.match(r.partial, /and 4 text parts crossing or after it$/);
    });

    it('an inline message/rfc822 past the cut is read, as postal-mime reads one before it; an attached one, or a report\'s original, is not', async () => {
      const message = (disposition: string, words: string) =>
        ['--B', 'Content-Type: message/rfc822', ...(disposition ? [`Content-Disposition: ${disposition}`] : []), '', 'From: x@example.org', 'Subject: fwd', 'Content-Type: text/plain', '', words].join(CRLF) + CRLF;
      const tail = message('', 'INLINE MESSAGE SPAM') + message('inline', 'DISPOSED INLINE SPAM') + message('attachment; filename="m.eml"', 'ATTACHED MESSAGE WORDS') + '--B--' + CRLF;
      const r = await read(head + img(1600 * 1024) + tail);
      assert.match(r.words, /INLINE MESSAGE SPAM/);
      assert.match(r.words, /DISPOSED INLINE SPAM/);
      assert.doesNotMatch(r.words, /ATTACHED MESSAGE WORDS/);
      // A report's original is evidence, not text (postal-mime: any delivery-status or feedback-report part makes it one).
      const reportHead = head.replace('multipart/mixed', 'multipart/report; report-type=delivery-status');
      const status = ['--B', 'Content-Type: message/delivery-status', '', 'Reporting-MTA: dns; mx.example.net', '', 'Final-Recipient: rfc822; b@example.net', 'Action: failed', 'Status: 5.1.1', ''].join(CRLF) + CRLF;
      for (const report of [await read(reportHead + img(1600 * 1024) + status + tail), await read(reportHead + img(1600 * 1024) + tail.replace('--B--', status + '--B--'))]) {
        assert.doesNotMatch(report.words, /INLINE MESSAGE SPAM|DISPOSED INLINE SPAM|ATTACHED MESSAGE WORDS/);
      }
      // Inline messages that a later report part makes evidence do not use up what the text parts may take.
      const many = Array.from({ length: 40 }, (_, i) => message('', `ORIGINAL ${i}`)).join('');
      const late = await read(reportHead + img(1600 * 1024) + many + ['--B', 'Content-Type: text/plain', '', 'TEXT AFTER ORIGINALS'].join(CRLF) + CRLF + status + '--B--' + CRLF);
      assert.match(late.words, /TEXT AFTER ORIGINALS/);
      assert.doesNotMatch(late.words, /ORIGINAL \d/);
      // Declaring multipart/report without a report part hides nothing: postal-mime reads a small copy's inline message.
      const declared = await read(reportHead + img(1600 * 1024) + tail);
      assert.match(declared.words, /INLINE MESSAGE SPAM/);
    });

    it('the boundary is the Content-Type\'s own first boundary parameter, not one inside a quoted value or a comment', async () => {
      const tricky = head.replace('boundary="B"', 'name="x; boundary=EVIL" (a comment; boundary=EVIL); boundary="B"; boundary=EVIL');
      const r = await read(tricky + img(1600 * 1024) + ['--B', 'Content-Type: text/plain', '', 'GENUINE TAIL WORDS', '--B--', ''].join(CRLF) + fake('--EVIL', 'EVIL WORDS'));
      assert.match(r.words, /GENUINE TAIL WORDS/);
      assert.doesNotMatch(r.words, /EVIL WORDS/);
    });

    it('the boundary is the one postal-mime takes: RFC 2231 sections, blanks inside quotes, a folded value, `(` inside a value', async () => {
      // Each declares the boundary a small message's decoder follows; a parser of the walk's own missed it and read nothing past the cut.
      const declared: [string, string][] = [
        ['boundary*0="PA"; boundary*1="RT"', 'PART'],
        ["boundary*=utf-8''PART%21", 'PART!'],
        ['boundary=" PART"', ' PART'],
        ['boundary="PA\r\n\tRT"', 'PA\tRT'],
        ['boundary=PA(RT)', 'PA(RT)'],
      ];
      for (const [param, boundary] of declared) {
        const r = await read(
          head.replace('boundary="B"', param) +
            img(1600 * 1024).replace(/^--B/, `--${boundary}`) +
            [`--${boundary}`, 'Content-Type: text/plain', '', 'TAIL SPAM WORDS', `--${boundary}--`, ''].join(CRLF),
        );
        assert.match(r.words, /TAIL SPAM WORDS/, param);
        assert.match(r.partial, /and 1 text part crossing or after it$/, param);
      }
    });

    it('text nested deeper than the walk follows (12 multiparts) is decoded with its multipart, as postal-mime reads it before the cut', async () => {
      for (const depth of [12, 20]) {
        const deep = Array.from({ length: depth }, (_, i) => [`--${i ? `D${i - 1}` : 'B'}`, `Content-Type: multipart/mixed; boundary="D${i}"`, '', ''].join(CRLF)).join('');
        const r = await read(head + img(1600 * 1024) + deep + [`--D${depth - 1}`, 'Content-Type: text/plain', '', 'DEEP SPAM WORDS', `--D${depth - 1}--`, '--B--', ''].join(CRLF));
        assert.match(r.words, /DEEP SPAM WORDS/, `${depth} deep`);
      }
    });

    it('a part\'s header block ends where postal-mime ends it: at a line of CRs only, or after 300 KB of fields', async () => {
      const pad = `X-Pad: ${'p'.repeat(70)}${CRLF}`.repeat(4000);
      const tail =
        ['--B', 'Content-Type: text/plain', '\r', 'CR CR LF SPAM WORDS'].join(CRLF) + CRLF +
        ['--B', 'Content-Type: text/html; charset=utf-8', pad + '', '<p>LONG HEADER SPAM WORDS</p>', '--B--', ''].join(CRLF);
      const r = await read(head + img(1600 * 1024) + tail);
      assert.match(r.words, /CR CR LF SPAM WORDS/);
      assert.match(r.words, /LONG HEADER SPAM WORDS/);
      assert.doesNotMatch(r.words, /X-Pad|pppp/, 'the header is not read as text');
      assert.match(r.partial, /and 2 text parts crossing or after it$/);
    });

    it('stays bounded: thousands of declared boundaries never used, deep nesting and decoy lines still let the last text part be read', async () => {
      // Each a multipart whose preamble holds a line only starting like the outer delimiter, with a text/plain header after it.
      const unused = Array.from({ length: 5000 }, (_, i) => ['--B', `Content-Type: multipart/mixed; boundary="U${i}"`, '', fake(`--B${i}x`, 'DECOY WORDS')].join(CRLF)).join('');
      const deep = Array.from({ length: 100 }, (_, i) => [`--${i ? `D${i - 1}` : 'B'}`, `Content-Type: multipart/related; boundary="D${i}"`, '', ''].join(CRLF)).join('');
      const started = Date.now();
      const r = await read(head + img(1600 * 1024) + unused + CRLF + deep + ['--B', 'Content-Type: text/plain', '', 'LAST PART WORDS', '--B--', ''].join(CRLF));
      assert.match(r.words, /LAST PART WORDS/);
      assert.doesNotMatch(r.words, /DECOY/);
      assert.match(r.partial, /and 1 text part crossing or after it$/);
      // hang guard, not a performance test: typical 310ms (the partial note above is what says the cut held).
      assert.ok(Date.now() - started < 10_000, `${Date.now() - started} ms`);
    });
  });

  describe('the line limit: postal-mime costs per line and per part, so a message of short lines is cut before 2 MB', () => {
    const CRLF = '\r\n';
    const head = (type: string, more: string[] = []) => ['From: a@example.com', 'To: b@example.net', 'Subject: hi', 'MIME-Version: 1.0', `Content-Type: ${type}`, ...more, ''].join(CRLF) + CRLF;
    const decode = async (raw: string) => {
      const ctx = createContext({ ip: '192.0.2.1', raw });
      const { result: e, inputs } = await postalInputs(() => parsedMessage(ctx));
      return { words: (e?.text ?? '') + (e?.html ?? ''), partial: ctx.parse.partial, inputs, lines: inputs.map(lineCount) };
    };

    it('2 MB of short lines hands postal-mime at most MAX_PARSE_LINES lines, and the parse result says why it was cut', async () => {
      // 2 MB of 18-byte lines: 116k lines, 2.5 s of decoding in one stretch here before the limit.
      const raw = head('text/plain') + 'abcdefghijklmnop\r\n'.repeat(116_000);
      const r = await decode(raw);
      // The prefix, then the rest of the one text part from the cut, within the tail's line bound.
      assert.equal(r.inputs.length, 2);
      assert.ok(r.lines[0]! <= MAX_PARSE_LINES, `postal-mime given ${r.lines[0]} lines`);
      assert.ok(r.lines[0]! > MAX_PARSE_LINES - 10, `postal-mime given ${r.lines[0]} lines`);
      assert.ok(r.lines[1]! <= MAX_PARSE_LINES / 2 + 10, `past the cut postal-mime given ${r.lines[1]} lines`);
      assert.ok(r.inputs[0]!.at(-1) === 0x0a, 'cut at a line end');
      assert.match(r.partial ?? '', new RegExp(`^decoded the first \\d+ KB \\(${r.lines[0]} lines: the line limit\\) of 20\\d\\d KB and 1 text part crossing or after it$`));
    });

    it('base64 dense with = signs (each a chunk in postal-mime) hands it a bounded number of them, on many lines or one; quoted-printable Cyrillic is decoded as far as before', async () => {
      // 2 MB of `QQ==` took postal-mime 3-4 s, against 0.05 s for 2 MB of ordinary base64.
      const equals = (b: Buffer) => b.toString('latin1').split('=').length - 1;
      for (const body of [('QQ=='.repeat(19) + '\r\n').repeat(26_000), 'QQ=='.repeat(520_000)]) {
        const r = await decode(head('text/plain\r\nContent-Transfer-Encoding: base64') + body);
        const given = r.inputs.reduce((n, b) => n + equals(b), 0);
        // Prefix and tail together: at most their line budgets' worth of = signs, 8 to a unit.
        assert.ok(given <= (MAX_PARSE_LINES + MAX_PARSE_LINES / 2) * 8, `postal-mime given ${given} = signs`);
        assert.match(r.partial ?? '', /lines: the line limit/);
      }
      // Past the cut, text parts each one line of QQ== longer than the bytes left: each piece cut inside its line
      // must spend the line units its = signs cost, or every part gets the whole line budget again.
      const big = (n: number) => `--B\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n${'QQ=='.repeat(n)}\r\n`;
      const image = `--B\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n${('A'.repeat(76) + '\r\n').repeat(28_000)}`;
      const many = await decode(head('multipart/mixed; boundary="B"') + image + big(300_000).repeat(6) + '--B--\r\n');
      const tailEquals = many.inputs.slice(1).reduce((n, b) => n + equals(b), 0);
      assert.ok(tailEquals <= (MAX_PARSE_LINES / 2) * 8 + 8, `past the cut postal-mime given ${tailEquals} = signs`);
      // Quoted-printable Cyrillic (25 = in a 78-byte line, with blanks between words) (1.95 MB) is decoded whole.
      const cyrillic = '=D0=9F=D1=80=D0=B8=D0=B2=D0=B5=D1=82 =D0=BC=D0=B8=D1=80 =D0=BA=D0=B0=D0=BA =\r\n';
      const qp = await decode(head('text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable') + cyrillic.repeat(25_000));
      assert.equal(qp.inputs.length, 1);
      assert.equal(qp.partial, undefined);
    });

    it('2 MB of tiny parts hands postal-mime at most a third as many delimiter lines (a part costs it 2-3 lines)', async () => {
      // 233k parts with no Content-Type (text/plain): 23 s of decoding before the limit.
      const raw = head('multipart/mixed; boundary="B"') + '--B\r\n\r\nx\r\n'.repeat(233_000) + '--B--\r\n';
      const r = await decode(raw);
      const delimiters = r.inputs.map((b) => b.toString('latin1').split('\n').filter((l) => l.startsWith('--B')).length);
      assert.ok(delimiters[0]! <= MAX_PARSE_LINES / 3, `postal-mime given ${delimiters[0]} parts`);
      // Past the cut the text parts read are bounded by the tail's own limits (256 parts).
      assert.ok(r.inputs.length <= 257 && r.lines.slice(1).every((n) => n <= 10), r.lines.join(' '));
      assert.match(r.partial ?? '', /\(\d+ lines: the line limit\) of 22\d\d KB and 256 text parts crossing or after it$/);
    });

    it('a text part after the line cut is still read by the tail scan, and so is the rest of the part the cut falls in, however long', async () => {
      // A 60k-line text part (240 KB: the whole message was decoded before the limit) hides nothing after the cut.
      const pad = (n: number) => 'ok\r\n'.repeat(n);
      const first = ['--B', 'Content-Type: text/plain', '', pad(31_000) + 'CROSSING PART WORDS' + CRLF + pad(29_000)].join(CRLF);
      const html = ['--B', 'Content-Type: text/html', '', '<p>Buy cheap viagra now</p>', '--B--', ''].join(CRLF);
      const r = await decode(head('multipart/alternative; boundary="B"') + first + html);
      assert.ok(r.lines.every((n) => n <= MAX_PARSE_LINES), `postal-mime given ${r.lines.join(', ')} lines`);
      assert.match(r.words, /Buy cheap viagra now/);
      assert.match(r.words, /CROSSING PART WORDS/);
      assert.match(r.partial ?? '', /\(\d+ lines: the line limit\) of 2\d\d KB and 2 text parts crossing or after it$/);
      // The part the cut falls in is decoded on from the cut, not again from its start (its words stand 3k lines past the cut, 31k into it).
      const crossing = r.inputs.find((b) => b.includes('CROSSING PART WORDS'))!;
      assert.ok(lineCount(crossing) <= MAX_PARSE_LINES / 2 + 10, `${lineCount(crossing)} lines`);
    });

    it('text past the cut is line-limited too: 1 MB of short lines after a large image is not decoded whole', async () => {
      const b64 = Buffer.alloc(1600 * 1024, 7).toString('base64').replace(/.{76}/g, `$&${CRLF}`);
      const image = ['--B', 'Content-Type: image/jpeg', 'Content-Transfer-Encoding: base64', '', b64].join(CRLF);
      const text = ['--B', 'Content-Type: text/plain', '', 'TAIL START WORDS', 'ab\r\n'.repeat(262_000) + '--B--', ''].join(CRLF);
      const r = await decode(head('multipart/mixed; boundary="B"') + image + CRLF + text);
      assert.match(r.words, /TAIL START WORDS/);
      const tail = r.lines.slice(1).reduce((a, b) => a + b, 0);
      assert.ok(tail <= MAX_PARSE_LINES / 2 + 10, `past the cut postal-mime given ${tail} lines`);
    });

    it('a message that is one text part (no multipart) padded with 28k short lines still has the text after them read', async () => {
      // 60 KB of blank lines cut the prefix: before, nothing past the cut of a single-part message was read.
      const plain = await decode(head('text/plain') + CRLF.repeat(30_000) + 'Buy cheap viagra now' + CRLF);
      assert.match(plain.partial ?? '', /\(28000 lines: the line limit\) of \d+ KB and 1 text part crossing or after it$/);
      assert.match(plain.words, /Buy cheap viagra now/);
      const html = await decode(head('text/html') + '<p>\r\n'.repeat(30_000) + '<b>Buy cheap viagra now</b>' + CRLF);
      assert.match(html.words, /Buy cheap viagra now/);
      // Read from the cut, not again from the start.
      assert.ok(plain.lines.slice(1).every((n) => n < 3000), plain.lines.join(' '));
      // An attachment is still not read.
      const attached = await decode(head('text/plain', ['Content-Disposition: attachment; filename="a.txt"']) + CRLF.repeat(30_000) + 'Buy cheap viagra now' + CRLF);
      assert.doesNotMatch(attached.words, /viagra/);
    });

    it('a base64 text part the cut falls in decodes from the cut even when the characters before it are not a multiple of 4', async () => {
      // Lines of 4 characters but one of 6: 28k lines in, the rest (from the cut) decoded out of step was noise and hid the text.
      const lines = Buffer.from(' '.repeat(90_000)).toString('base64').match(/.{4}/g)!;
      lines[0] += 'IC';
      const body = lines.join(CRLF) + 'IC' + CRLF + Buffer.from(' Buy cheap viagra now. '.repeat(5)).toString('base64').replace(/.{76}/g, `$&${CRLF}`);
      assert.match(Buffer.from(body, 'base64').toString(), /Buy cheap viagra now/);
      const part = ['--B', 'Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding:', ' base64', '', body, '--B--', ''].join(CRLF);
      const r = await decode(head('multipart/mixed; boundary="B"') + part);
      assert.match(r.partial ?? '', /line limit\) of \d+ KB and 1 text part crossing or after it$/);
      assert.match(r.words, /Buy cheap viagra now/);
      // The same as a single-part message, and with padding (`=`) closing units before the cut.
      const single = await decode(head('text/plain', ['Content-Transfer-Encoding: base64']) + body);
      assert.match(single.words, /Buy cheap viagra now/);
      // 'IC==' closes a unit: counted from the body's start the 6-character line that follows would look aligned.
      const padded = ['IC==', 'ICAgIC', ...lines.slice(2)].join(CRLF) + 'IC' + CRLF + Buffer.from(' Buy cheap viagra now. '.repeat(5)).toString('base64').replace(/.{76}/g, `$&${CRLF}`);
      const withPad = await decode(head('text/plain', ['Content-Transfer-Encoding: base64']) + padded);
      assert.match(withPad.words, /Buy cheap viagra now/);
    });

    it('padding in a text part after the cut does not hide the text just past the cut in the part the cut falls in', async () => {
      // 157 KB: the part the cut falls in was taken last, with what 15k lines of padding after it left (nothing).
      const first = ['--B', 'Content-Type: text/plain', '', 'ok\r\n'.repeat(28_000) + 'Buy cheap viagra now'].join(CRLF);
      const second = ['--B', 'Content-Type: text/plain', '', '.\r\n'.repeat(15_000) + 'SECOND PART END', '--B--', ''].join(CRLF);
      const r = await decode(head('multipart/mixed; boundary="B"') + first + CRLF + second);
      assert.match(r.words, /Buy cheap viagra now/);
      // The part after it still gets the rest of the bounds (its start is read), and the tail as a whole stays within them.
      assert.match(r.words, /\.\n\./);
      const tail = r.lines.slice(1).reduce((a, b) => a + b, 0);
      assert.ok(tail <= MAX_PARSE_LINES / 2 + 10, `past the cut postal-mime given ${tail} lines`);
    });

    it('ordinary mail of 76-character lines under 2 MB and the line limit is decoded whole, as before', async () => {
      const line = 'The quick brown fox jumps over the lazy dog and keeps running far away ok--\r\n';
      const raw = head('text/plain') + line.repeat(25_000) + 'LAST LINE WORDS\r\n';
      assert.ok(raw.length > 1.8 * 1024 * 1024 && raw.length < MAX_PARSE_BYTES);
      const r = await decode(raw);
      assert.equal(r.partial, undefined);
      assert.deepEqual(r.lines, [lineCount(Buffer.from(raw))]);
      assert.match(r.words, /LAST LINE WORDS/);
      // Over 2 MB, 76-character lines meet the byte limit first: coverage is what it was.
      const over = await decode(head('text/plain') + line.repeat(27_500));
      assert.match(over.partial ?? '', /^decoded the first 2048 KB of 20\d\d KB and 1 text part crossing or after it$/);
    });
  });

  it('reads HTML: hidden text, alt text, links with their visible text, bounded input', () => {
    const html = analyseHtml(
      '<html><head><style>p{}</style></head><body><p>Hello</p><div style="display:none">secret words</div>' +
        '<font color="#ffffff">white on white</font><img src=x alt="Buy now"><a href="http://evil.test/">www.bank.example</a></body></html>',
    );
    assert.match(html.text, /Hello/);
    assert.doesNotMatch(html.text, /secret|white on white|p\{\}/);
    assert.match(html.hiddenText, /secret words/);
    assert.match(html.hiddenText, /white on white/);
    assert.equal(html.altText, 'Buy now');
    assert.deepEqual(html.links, [{ href: 'http://evil.test/', text: 'www.bank.example' }]);
    assert.equal(analyseHtml('<p>' + 'x'.repeat(100), 50).truncated, true);
  });
});

describe('content: heuristics', () => {
  const s = DEFAULT_CONTENT_SETTINGS.heuristics;

  it('built-in detectors fire with their names on obfuscated mail and stay quiet on plain mail', async () => {
    const bad = await parts(
      [
        'Subject: URGENT!!! VERIFY YOUR ACCOUNT NOW $$$',
        'Content-Type: text/html; charset=utf-8',
        '',
        '<p>Your P\u0430yPal acc\u200bount is loc\u200bked.</p><a href="http://phish.test/login">https://www.paypal.com</a><img src="http://phish.test/logo.gif">',
      ].join('\r\n'),
    );
    const names = builtinHeuristics(bad, s).map((h) => h.name).sort();
    assert.deepEqual(names, ['HTML_LINK_MISMATCH', 'HTML_ONLY_LITTLE_TEXT', 'INVISIBLE_CHARACTERS', 'MIXED_SCRIPT_WORDS', 'SUBJECT_ALL_CAPS', 'SUBJECT_PUNCTUATION']);
    const good = await parts('Subject: Minutes of Tuesday\r\nContent-Type: text/plain\r\n\r\nHi all, the minutes are attached. Привет, Ivan! Thanks.\r\n');
    assert.deepEqual(builtinHeuristics(good, s), []);
    assert.deepEqual(mixedScriptWords('Привет Paris'), []);
  });

  it('operator rules match body, header and uri targets', async () => {
    const rules = parseRules(
      ['body  R_BODY  /you have won/i', 'score R_BODY 2', 'describe R_BODY Won', 'header R_SUBJ Subject =~ "free"', 'score R_SUBJ 1', 'describe R_SUBJ Free', 'uri R_URI /\\.zip\\b/', 'score R_URI 1', 'describe R_URI Zip'].join('\n'),
      'test.rules',
    );
    const p = await parts('Subject: Free stuff\r\n\r\nYou have WON! see https://x.zip/a\r\n');
    assert.deepEqual(ruleHits(p, { ...s, rules }).map((h) => h.name), ['R_BODY', 'R_SUBJ', 'R_URI']);
  });

  it('a URL written in the HTML text (not linked) is a uri rule\'s and a url: token beside a clean plain part, not listed twice', async () => {
    const rules = parseRules('uri R_BAD /bad\\.example/\nscore R_BAD 2\ndescribe R_BAD Bad\n', 'test.rules');
    const p = await parts(
      [
        'From: news@shop.example',
        'Subject: Your order',
        'MIME-Version: 1.0',
        'Content-Type: multipart/alternative; boundary="b"',
        '',
        '--b',
        'Content-Type: text/plain; charset=utf-8',
        '',
        'Your order has shipped: https://shop.example/track',
        '--b',
        'Content-Type: text/html; charset=utf-8',
        '',
        '<p>Your order has shipped: <a href="https://shop.example/track">https://shop.example/track</a></p><p>Claim your refund at http://bad.example/ today (http://bad.example/)</p>',
        '--b--',
        '',
      ].join('\r\n'),
    );
    assert.deepEqual(ruleHits(p, { ...s, rules }).map((h) => h.name), ['R_BAD']);
    assert.ok(tokenize(p).includes('url:bad.example'), tokenize(p).join(' '));
    // The HTML's text adds only URLs not listed yet: the tracking link (its href and the plain part's, as
    // before) is not listed a third time, nor the bad one twice.
    assert.deepEqual(p.urls, ['https://shop.example/track', 'https://shop.example/track', 'http://bad.example/']);
  });

  it('the shipped rules file loads and its rules are symbols', () => {
    const config = loadConfig();
    assert.equal(config.symbols.get('CONTENT_LOTTERY_WIN').group, 'content');
  });
});

describe('content: regex guard', () => {
  it('runs any pattern in linear time: ones that hang a backtracking engine answer at once', () => {
    // Each of these passed the former load-time guard and took from seconds to minutes in V8.
    const cases: [string, string][] = [
      ['^(a|a)*$', `${'a'.repeat(5000)}b`],
      ['^(\\w|\\d)+$', `${'1'.repeat(5000)}!`],
      ['\\s*\\s*\\s*x', ' '.repeat(100_000)],
      ['(a+)+$', `${'a'.repeat(5000)}b`],
    ];
    for (const [pattern, text] of cases) assert.equal(compileSafeRegex(pattern).test(text), false, pattern);
    assert.ok(compileSafeRegex('you (?:have )?won', 'i').test('You have won'));
    assert.ok(compileSafeRegex('^subject: x$', 'im').test('a\nSubject: X\nb'));
    assert.ok(compileSafeRegex('a.b', 's').test('a\nb'));
    assert.equal(regexProblem('\\bfree\\s+money\\b'), null);
  });

  it('means what the pattern means in JavaScript: \\s takes a no-break space, . no \\r, \\uXXXX escapes work', () => {
    const cases: [string, string, string][] = [
      ['free\\s+money', 'i', 'free\u00a0MONEY'],
      ['free\\s+money', 'i', 'free\u2003money'],
      ['a.b', '', 'a\rb'],
      ['a.b', 's', 'a\rb'],
      ['caf\\u00e9', '', 'café'],
      ['x\\S+y', '', 'x\u00a0y'],
      ['[^\\s]x', '', '\u00a0x'],
      ['[\\s\\d]x', '', '\u00a0x'],
      ['\\bfree\\b', 'i', 'get FREE now'],
    ];
    for (const [pattern, flags, text] of cases) assert.equal(compileSafeRegex(pattern, flags).test(text), new RegExp(pattern, flags).test(text), `/${pattern}/${flags} on ${JSON.stringify(text)}`);
  });

  it('refuses what RE2 cannot run, bad flags and overlong patterns, saying why', () => {
    assert.match(regexProblem('free(?=money)')!, /does not compile \(RE2 syntax: no look-around, no back-references\)/);
    assert.match(regexProblem('(a)\\1')!, /does not compile/);
    assert.match(regexProblem('(unclosed')!, /does not compile/);
    assert.match(regexProblem('abc', 'g')!, /flags/);
    assert.match(regexProblem('a'.repeat(1001))!, /longer than 1000/);
    assert.throws(() => compileSafeRegex('(?<=x)y'), UnsafeRegexError);
  });

  it('a rules file with an unsafe regex is a ConfigError naming the rule and the line', () => {
    const text = '# rules\nbody GOOD /fine/\nscore GOOD 1\ndescribe GOOD ok\n\nbody EVIL_RULE /free(?=money)/\nscore EVIL_RULE 1\ndescribe EVIL_RULE bad\n';
    assert.throws(
      () => parseRules(text, 'x.rules'),
      (err: unknown) => err instanceof ConfigError && /x\.rules \[rule EVIL_RULE\]: line 6: unsafe regex/.test(err.message),
    );
    assert.throws(
      () => loadConfig({ texts: { 'mailward.content.rules': text } }),
      (err: unknown) => err instanceof ConfigError && /EVIL_RULE.*line 6/.test(err.message),
    );
  });

  it('refuses wide counted repetitions at load, naming the rule: linear matching still took seconds per message on them', () => {
    // On 64 KiB of text x.{0,998}z took 2 s and (?:x.{0,30}){30}z 5 s; the copies are counted, nested ones multiplied.
    assert.match(regexProblem('x.{0,998}z')!, /counted repetitions \(\{n,m\}\) make 998 copies, more than 200/);
    assert.match(regexProblem('(?:x.{0,30}){30}z', 's')!, /930 copies/);
    assert.match(regexProblem('a{150}b[0-9]{60,}')!, /210 copies/);
    for (const fine of ['\\b(?:bitcoin|btc) (?:wallet|address)\\b.{0,200}\\b(?:48|72) hours\\b', '\\p{L}{2,5}[{]{9}', 'x.*z', '\\x{41}{3}', 'a\\{999}']) {
      assert.equal(regexProblem(fine, 'is'), null, fine);
    }
    const text = 'body WIDE_GAP /x.{0,998}z/i\nscore WIDE_GAP 1\ndescribe WIDE_GAP x then z\n';
    assert.throws(
      () => parseRules(text, 'x.rules'),
      (err: unknown) => err instanceof ConfigError && /x\.rules \[rule WIDE_GAP\]: line 1: unsafe regex \/x\.\{0,998\}z\/: counted repetitions/.test(err.message),
    );
  });

  it('a uri or header rule shares 64 KiB among the links or fields: 256 characters at least of each, not 2 KiB or 64 KiB of each', () => {
    // One uri rule over 300 links of 2 KiB took 20 s: ten times the text a body rule may read.
    const [uriRule, headerRule] = parseRules('uri T_URI /x.{0,200}z/\nscore T_URI 1\ndescribe T_URI u\nheader T_HDR X-Pad =~ /x.{0,200}z/\nscore T_HDR 1\ndescribe T_HDR h\n', 'r');
    let read = 0;
    for (const rule of [uriRule!, headerRule!]) {
      const test = rule.tests[0]!.test;
      rule.tests[0]!.test = (s) => ((read += s.length), test(s));
    }
    const urls = Array.from({ length: 300 }, (_, i) => `http://z${i}.test/${'x'.repeat(2034)}`);
    const headers = Array.from({ length: 300 }, (_, i) => ({ key: 'x-pad', name: 'X-Pad', value: `${i} ${'x'.repeat(2048)}` }));
    const settings = { ...DEFAULT_CONTENT_SETTINGS.heuristics, rules: [uriRule!, headerRule!] };
    assert.deepEqual(ruleHits({ text: '', urls, headers, subject: '' } as any, settings), []);
    // The start of each of the 300 links and of each of the 300 fields, 256 characters each; no more (the heads fill the budget).
    assert.equal(read, 300 * 256 * 2);
    // The last link and the 256th field are read, each as far as its share.
    urls[299] = `http://z.test/${'x'.repeat(241)}z`;
    headers[255]!.value = `${'x'.repeat(255)}z`;
    assert.deepEqual(ruleHits({ text: '', urls, headers, subject: '' } as any, settings).map((h) => h.name), ['T_URI', 'T_HDR']);
    // Repeats are read once: one link of 2 KiB given 300 times is read whole, once.
    read = 0;
    assert.deepEqual(ruleHits({ text: '', urls: Array<string>(300).fill(`http://z.test/${'x'.repeat(2033)}z`), headers: [], subject: '' } as any, settings).map((h) => h.name), ['T_URI']);
    assert.equal(read, 2048);
  });

  it('many short fields do not use up what a rule reads, and a long link is read further while the budget lasts', () => {
    const [uriRule, headerRule] = parseRules('uri T_CAMP /campaign=evilcampaign/\nscore T_CAMP 1\ndescribe T_CAMP c\nheader T_MAILER X-Mailer =~ /SpamBlaster/\nscore T_MAILER 1\ndescribe T_MAILER m\n', 'r');
    const settings = { ...DEFAULT_CONTENT_SETTINGS.heuristics, rules: [uriRule!, headerRule!] };
    // 1,000 tiny fields first: a few characters each, far from the budget.
    const headers = [...Array.from({ length: 1000 }, (_, i) => ({ key: 'x-mailer', name: 'X-Mailer', value: `m${i}` })), { key: 'x-mailer', name: 'X-Mailer', value: 'SpamBlaster 3.1' }];
    // 100 tracking links of about 1 KB, the campaign deep in the first.
    const urls = Array.from({ length: 100 }, (_, i) => `https://t.news.example/c/${i}/${'q'.repeat(660)}${i === 0 ? '&campaign=evilcampaign' : ''}&${'r'.repeat(300)}`);
    assert.deepEqual(ruleHits({ text: '', urls, headers, subject: '' } as any, settings).map((h) => h.name).sort(), ['T_CAMP', 'T_MAILER']);
    // An empty field first (X-Mailer: with nothing after it) hides nothing, and an empty value is tested too.
    const empty = [{ key: 'x-mailer', name: 'X-Mailer', value: '' }, { key: 'x-mailer', name: 'X-Mailer', value: 'SpamBlaster 3.1' }];
    assert.deepEqual(ruleHits({ text: '', urls: [], headers: empty, subject: '' } as any, settings).map((h) => h.name), ['T_MAILER']);
    const [blank] = parseRules('header T_BLANK Subject =~ /^\\s*$/\nscore T_BLANK 1\ndescribe T_BLANK b\n', 'r');
    assert.deepEqual(ruleHits({ text: '', urls: [], headers: [], subject: '' } as any, { ...settings, rules: [blank!] }).map((h) => h.name), ['T_BLANK']);
  });

  it('junk placed first cannot push a link or header value out of what a rule reads', async () => {
    // Read in order up to 64 KiB in all, 40 links of 2 KiB or one X-Mailer of 70 KB hid what followed.
    const rules = parseRules('uri T_EVIL /evil\\.example/\nscore T_EVIL 1\ndescribe T_EVIL e\nheader T_MAILER X-Mailer =~ /SpamBlaster/\nscore T_MAILER 1\ndescribe T_MAILER m\n', 'r');
    const links = Array.from({ length: 40 }, (_, i) => `<a href="http://pad${i}.test/${'p'.repeat(2030)}">x</a>`).join('\n');
    const raw = [
      'From: a@example.com',
      'To: b@example.net',
      'Subject: hello',
      `X-Mailer: ${'m'.repeat(70 * 1024)}`,
      'X-Mailer: SpamBlaster 3.1',
      'Content-Type: text/html',
      '',
      `<html><body>${links}\n<a href="http://evil.example/claim">claim</a></body></html>`,
      '',
    ].join('\r\n');
    const p = await parts(raw);
    assert.equal(p.urls.length, 41);
    const settings = { ...DEFAULT_CONTENT_SETTINGS.heuristics, rules };
    assert.deepEqual(ruleHits(p, settings).map((h) => h.name), ['T_EVIL', 'T_MAILER']);
  });

  it('other rules-file mistakes name rule and line too', () => {
    const cases: [string, RegExp][] = [
      ['body lower /x/', /rule lower\]: line 1: rule names are UPPER_SNAKE/],
      ['body R1 /x/\nscore R1 abc', /rule R1\]: line 2: score must be a number/],
      ['body R1 /x/\ndescribe R1 d', /rule R1\]: line 1: has no "score" line/],
      ['score R2 1\ndescribe R2 d', /rule R2\]: line 1: has a score or description but no/],
      ['header R3 Subject /x/', /line 1: header rules read/],
      ['bodyy R4 /x/', /line 1: unknown directive/],
    ];
    for (const [text, expected] of cases) assert.throws(() => parseRules(text, 'f'), (err: unknown) => err instanceof ConfigError && expected.test(err.message), text);
  });
});

describe('content: template fingerprints', () => {
  const letter = (name: string, balance: string, account: string, date: string) =>
    `Dear ${name},\n\nYour statement for account ${account} dated ${date} is now available. The balance is ${balance}.\n` +
    `You can view it in online banking at https://bank.example/statements?u=${account}. Thank you for banking with us, ${name}.\n\n` +
    `-- \nJane Roe, Customer Service, direct line +44 20 7946 0${date.slice(-3)}\n`;

  it('is the same across per-recipient names, amounts, accounts, dates, link tokens and signatures', () => {
    const a = templateFingerprint(letter('John Smith', '£1,234.56', 'AC-10023', '2024-01-05'))!;
    const b = templateFingerprint(letter('María José Carreño', '$99.00', 'ZX998877', '2024-02-11'))!;
    assert.ok(a && b);
    assert.equal(a.key, b.key);
    assert.deepEqual(a.bands, b.bands);
  });

  it('differs for a different text, and skips bodies too short to tell', () => {
    const a = templateFingerprint(letter('John', '1', '2', '2024-01-01'))!;
    const other = templateFingerprint('Hello team, the quarterly planning meeting moves to the large room on the third floor after lunch, please bring your laptops and the draft budget figures.')!;
    assert.notEqual(a.key, other.key);
    assert.equal(a.bands.filter((band) => other.bands.includes(band)).length, 0);
    assert.equal(templateFingerprint('ok thanks, see you'), null);
  });

  it('BULK_UNAUTHENTICATED needs authentication to have failed, not a DNS time-out on the aligned key', async () => {
    const state = new MemoryStore();
    const settings = { ...DEFAULT_CONTENT_SETTINGS.bulk, threshold: 2 };
    const auth = (dkimResult: string): AuthResults => ({
      fromDomain: 'bank.example',
      spf: { result: 'none', domain: 'mailer.bank.example', aligned: false, comment: '' },
      dkim: [{ result: dkimResult, domain: 'bank.example', selector: 's1', aligned: true, comment: '' }],
      dmarc: { result: 'fail', policy: 'none', domain: 'bank.example' },
      arc: { result: 'none', sealer: '', instance: 0, trusted: false, upstreamDmarc: '', comment: '' },
      temporaryError: dkimResult === 'temperror',
    });
    const bulkSymbols = async (dkimResult: string, i: number) => {
      const ctx = createContext({ ip: '192.0.2.1', rcptTo: ['a@example.org'], raw: 'Subject: statement\r\n\r\nx' });
      ctx.notes.auth = auth(dkimResult);
      const text = letter(`Customer ${i}`, `${i}.00`, `AC-${i}`, '2024-01-05');
      const hits = await bulkHits(ctx, new Ledger(new SymbolTable()), { text } as any, state, Date.now(), settings);
      return hits.map((h) => h.name);
    };
    assert.deepEqual(await bulkSymbols('temperror', 1), []);
    assert.deepEqual(await bulkSymbols('temperror', 2), ['BULK']);
    assert.deepEqual(await bulkSymbols('fail', 3), ['BULK', 'BULK_UNAUTHENTICATED']);
  });

  it('BULK_NO_UNSUBSCRIBE reads the HTML too: marketing wording only there still counts', async () => {
    const state = new MemoryStore();
    const settings = { ...DEFAULT_CONTENT_SETTINGS.bulk, threshold: 2 };
    const bulkSymbols = async (i: number) => {
      const text = letter(`Customer ${i}`, `${i}.00`, `AC-${i}`, '2024-01-05');
      const html = `<p>${text}</p><p>You receive our newsletter as a customer. <a href="https://bank.example/u">Unsubscribe</a></p>`;
      const raw = `From: news@bank.example\r\nSubject: statement\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n${text}\r\n--b\r\nContent-Type: text/html\r\n\r\n${html}\r\n--b--\r\n`;
      const ctx = createContext({ ip: '192.0.2.1', rcptTo: ['a@example.org'], raw });
      return (await bulkHits(ctx, new Ledger(new SymbolTable()), await messageParts(ctx), state, Date.now(), settings)).map((h) => h.name);
    };
    assert.deepEqual(await bulkSymbols(1), []);
    assert.deepEqual(await bulkSymbols(2), ['BULK', 'BULK_NO_UNSUBSCRIBE']);
  });

  it('trims punctuation around words in linear time: a word of 150,000 dots is no hang (a 274 KB message held Haraka for 28 s)', () => {
    assert.deepEqual(templateWords("'quoted'... -dashed- words."), ['quoted', 'dashed', 'words']);
    // The regex /^[.'-]+|[.'-]+$/ retried its second branch at every dot: 64,000 took 3.4 s, 150,000 about 20 s.
    // bench/hostile.ts times this against prose of the same size.
    const started = Date.now();
    const words = templateWords(`please read a${'.'.repeat(150_000)}a this notice`);
    const ms = Date.now() - started;
    // hang guard, not a performance test: typical 1ms.
    assert.ok(ms < 3000, `${ms} ms`);
    assert.deepEqual(words, ['please', 'read', 'this', 'notice'], 'the overlong word is skipped');
    // The tokenizer's 'plain' words are trimmed by the same loop.
    const plain = { ...DEFAULT_TOKENIZER_OPTIONS, words: 'plain' as const };
    assert.equal(normaliseWord("'-free-'", plain), 'free');
    const t = Date.now();
    assert.equal(normaliseWord(`a${'-'.repeat(100_000)}a`, plain), 'skip:a:100000');
    // hang guard, not a performance test: typical 0.1ms.
    assert.ok(Date.now() - t < 3000, `${Date.now() - t} ms`);
  });

  it('near-identical texts (one sentence added) still share a band', () => {
    const base = letter('John', '1', '2', '2024-01-01');
    const a = templateFingerprint(base)!;
    const b = templateFingerprint(base.replace('Thank you', 'Note that branch hours change in spring. Thank you'))!;
    assert.notEqual(a.key, b.key);
    assert.ok(a.bands.some((band) => b.bands.includes(band)));
  });
});
