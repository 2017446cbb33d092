// The built-in content detectors and the shipped rules against the good mail
// they used to flag (measured on the public corpus and on modern mail:
// newsletters through click trackers, hidden preheaders, dark footers,
// scripts that need joiners, reply subjects, HR forms, intranet links) and
// against the tricks they exist for, which must still fire.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { analyseHtml } from '../lib/util/html';
import { builtinHeuristics, invisibleInsideWords, mismatchedLinks, mixedScriptWords, ruleHits, type LinkContext } from '../lib/checks/content/heuristics';
import { messageParts, type MessageParts } from '../lib/checks/content/parts';
import { parseRules } from '../lib/checks/content/rules-file';
import { DEFAULT_CONTENT_SETTINGS, type HeuristicSettings } from '../lib/checks/content/settings';
import { ConfigError } from '../lib/config/errors';
import { createContext } from '../lib/message';
import { htmlLooksLikePadding, unshownOpenAt } from '../lib/mime/padding';
import { repoPath } from './support/paths';

const shippedRules = parseRules(readFileSync(repoPath('config', 'mailward.content.rules'), 'utf8'), 'mailward.content.rules');
const settings: HeuristicSettings = { ...DEFAULT_CONTENT_SETTINGS.heuristics, rules: shippedRules };

interface Spec {
  subject?: string;
  from?: string;
  text?: string;
  html?: string;
  headers?: string[];
}

function raw({ subject = 'Hello', from = 'News <news@example.com>', text, html, headers = [] }: Spec): string {
  const b64 = (t: string) => Buffer.from(t, 'utf8').toString('base64').replace(/.{76}/g, '$&\r\n');
  const head = `From: ${from}\r\nTo: user@example.org\r\nSubject: =?UTF-8?B?${Buffer.from(subject).toString('base64')}?=\r\n${headers.map((h) => `${h}\r\n`).join('')}MIME-Version: 1.0\r\n`;
  const part = (type: string, body: string) => `Content-Type: text/${type}; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n${b64(body)}\r\n`;
  if (text && html) return `${head}Content-Type: multipart/alternative; boundary="B"\r\n\r\n--B\r\n${part('plain', text)}--B\r\n${part('html', html)}--B--\r\n`;
  return head + (html ? part('html', html) : part('plain', text ?? ''));
}

const parse = (spec: Spec): Promise<MessageParts> => messageParts(createContext({ ip: '192.0.2.1', raw: raw(spec) }));
async function names(spec: Spec, links?: LinkContext): Promise<string[]> {
  const parts = await parse(spec);
  return [...builtinHeuristics(parts, settings, links), ...ruleHits(parts, settings)].map((h) => h.name).sort();
}

const paragraph = Array.from({ length: 6 }, (_, i) => `This is paragraph ${i + 1} of our monthly update about product news, events and tips for customers.`).join(' ');
const newsletter = (inner: string, extra = '') => `<html><body>${extra}<table><tr><td><p>${paragraph}</p>${inner}</td></tr></table></body></html>`;
const preheader = `<span style="display:none;font-size:1px;color:#ffffff;max-height:0;opacity:0;overflow:hidden">Summer sale starts now: up to 40% off sandals, sneakers and boots, plus free returns.${'&zwnj;&nbsp;'.repeat(60)}</span>`;
const darkFooter =
  '<style>.ftr td{background-color:#222222}</style><table class="ftr"><tr><td style="color:#ffffff;font-size:12px">' +
  'You are receiving this email because you signed up for updates from Example Ltd at example.com. Example Ltd, 12 Market Street, Springfield, ' +
  'registered in England and Wales under number 01234567. Prices valid while stocks last. To stop receiving these emails, unsubscribe or manage your preferences.</td></tr></table>';
const sextortion =
  '<p>Your PayPal account is locked. Click <a href="http://evil-login.example.ru/x">www.paypal.com</a> to restore.</p>' +
  '<p>I have recorded you with your webcam. Send to my bitcoin address 1FfmbHfnpaZjKFvyi1okTjJJusN455paPH within 48 hours.</p>';
const poison = 'meadow quantum lantern orchestra pebble velvet cactus harbor sonnet glacier '.repeat(5);

describe('content heuristics: good mail stays clean', () => {
  const clean: [string, Spec][] = [
    ['a Safe Links rewrite of the same site', { text: 'See below', html: newsletter('<a href="https://nam12.safelinks.protection.outlook.com/?url=https%3A%2F%2Fwww.example.com%2F&data=05">www.example.com</a>') }],
    ['a urldefense v3 rewrite of the same site', { text: 'See below', html: newsletter('<a href="https://urldefense.com/v3/__https://www.example.com/docs__;!!ABC$">https://www.example.com/docs</a>') }],
    ['a hidden preheader', { html: newsletter('', preheader) }],
    ['white legal text on a dark footer set by a style sheet class', { html: newsletter('', preheader).replace('</body>', `${darkFooter}</body>`) }],
    [
      'a dark-themed newsletter whose background a body rule sets',
      { html: `<html><head><style>body{background-color:#111111}</style></head><body><p style="color:#ffffff">${paragraph}</p></body></html>` },
    ],
    ['white text on a background image', { html: newsletter('', '<table><tr><td background="https://cdn.example.com/hero.jpg"><p style="color:#ffffff">Discover the new autumn collection: warm knitwear, waterproof jackets and leather boots made to last, with free delivery.</p></td></tr></table>') }],
    ['an HTML-only sign-in code with no picture', { subject: 'Your verification code', html: '<html><body><p>Your code is <b>482913</b>.</p><p>It expires in 10 minutes.</p></body></html>' }],
    ['a reply subject in capitals', { subject: 'RE: Q3 KPI REVIEW', text: paragraph }],
    ['a list subject with acronyms', { subject: 'Re: [ILUG] DHCP', text: paragraph }],
    ['a reply subject with ???', { subject: 'Re: Siamese Cats???', text: paragraph, headers: ['In-Reply-To: <a@example.org>'] }],
    ['Russian with a brand name glued to an ending', { text: 'Оплатить можно iPhoneом или через SMSку, а также картой Visa. Спасибо!' }],
    ['Ukrainian typed with a Latin i', { subject: 'Вiдповiдь щодо зустрiчi', text: 'Добрий день! Дякую за вiдповiдь. Зустрiч вiдбудеться у вiвторок о 10:00 в нашому офiсi.' }],
    ['units with a Greek mu', { text: 'Results: creatinine 80 μmol/L, latency 120 μsec on the test rig.' }],
    ['German with soft hyphens in long words (HTML only)', { html: newsletter('<p>Die Donau&shy;dampf&shy;schiff&shy;fahrts&shy;gesellschaft lädt zur Jahres&shy;haupt&shy;versammlung ein. Bitte beachten Sie die Daten&shy;schutz&shy;erklärung.</p>') }],
    ['Persian with zero-width non-joiners', { subject: 'جلسه‌ی هفته‌ی آینده', text: 'سلام، می‌خواهم درباره‌ی جلسه‌ی هفته‌ی آینده صحبت کنیم. نامه‌ها را بررسی کرده‌ام.' }],
    ['Thai with zero-width spaces between words', { text: 'สวัสดี\u200bครับ\u200bขอบคุณ\u200bที่\u200bสั่งซื้อ\u200bสินค้า\u200bกับ\u200bเรา' }],
    ['Hindi with joiners', { text: 'नमस्ते, क्‍ष और क्‌ष दोनों रूप सही हैं। र‍्य और श्‍री भी देखें।' }],
    ['emoji sequences', { subject: 'Family weekend 👨‍👩‍👧', text: 'Great work team👩‍💻devs and family👨‍👩‍👧time. Cheers' }],
    ['an HR form asking for next of kin', { text: 'Before your first day please update your emergency contact and next of kin details in the HR portal.' }],
    ['the office raffle', { text: 'Congratulations Sam, you have won first prize in the summer party raffle! Collect your voucher from reception.' }],
    ['an exchange withdrawal notice', { text: 'You requested a withdrawal to the bitcoin address bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh. Withdrawals to new addresses are held for 48 hours.' }],
    ['a monitoring alert linking a private address', { subject: '[FIRING:1] HighCPU on db01', text: 'Dashboard: http://10.0.3.17:3000/d/abc Silence: http://192.168.1.20:9093/#/silences http://[fe80::1]/x' }],
  ];
  for (const [label, spec] of clean) {
    it(label, async () => assert.deepEqual(await names(spec), []));
  }

  it('link text that reads as a version, a file or a product name is not a domain shown', async () => {
    const release = [
      ['https://nodejs.org/en/blog/release/v20.11.0', 'Node.js'],
      ['https://github.com/nodejs/node/releases/tag/v20.11.0', 'v20.11.0'],
      ['https://dotnet.microsoft.com/', 'ASP.NET'],
      ['https://learn.microsoft.com/dotnet/api/system.io', 'System.IO'],
      ['https://github.com/acme/tool/blob/main/README.md', 'README.md'],
      ['https://github.com/acme/tool/blob/main/install.sh', 'install.sh'],
      ['https://cdn.example.com/files/report-q3.pdf', 'report.pdf'],
      ['https://www.python.org/downloads/release/python-3120/', '3.12.0'],
    ];
    const html = newsletter(release.map(([href, text]) => `<p><a href="${href}">${text}</a></p>`).join(''));
    assert.deepEqual(await names({ html }), []);
    // Written as a domain, with a real suffix, it is one: these still count.
    const shown = ['www.paypal.com', 'paypal.com', 'PayPal.com', 'https://paypal.com/signin', 'WWW.PAYPAL.COM', 'secure.paypal.co.uk', 'www.readme.md', 'http://example.md/'];
    const parts = await parse({ html: newsletter(shown.map((text) => `<p><a href="http://evil.example.net/login">${text}</a></p>`).join('')) });
    assert.equal(mismatchedLinks(parts, { trackers: [] }, 20).length, shown.length);
  });

  it('a link through a gateway that hides its target (a quoted reply from a Mimecast customer) is not judged', async () => {
    const quoted = { text: 'See below', html: newsletter('<a href="https://protect-eu.mimecast.com/s/AbCdEf?domain=zoom.us">https://zoom.us/j/123</a>') };
    assert.deepEqual(await names(quoted), []);
  });

  it("a link into a click tracker is exempt only when it shows the sender's own authenticated domain", async () => {
    const trackers = settings.linkTrackers;
    const ownSite = (href: string) => ({ from: 'Shop <news@example.com>', html: newsletter(`<a href="${href}">www.example.com</a>`) });
    for (const href of ['https://example.us1.list-manage.com/track/click?u=abc', 'https://u1234567.ct.sendgrid.net/ls/click?upn=abc']) {
      assert.deepEqual(await names(ownSite(href), { trackers, authenticatedDomain: 'example.com' }), [], href);
      // Not authenticated: anyone can send through a tracker and show any site.
      assert.deepEqual(await names(ownSite(href), { trackers }), ['HTML_LINK_MISMATCH'], href);
    }
    // A tracker of the sender's own under another name: exempt once the operator lists it.
    const branded = ownSite('https://links.example-email.com/c/abc');
    assert.deepEqual(await names(branded, { trackers, authenticatedDomain: 'example.com' }), ['HTML_LINK_MISMATCH']);
    assert.deepEqual(await names(branded, { trackers: [...trackers, 'example-email.com'], authenticatedDomain: 'example.com' }), []);
    // A phisher through a tracker shows someone else's domain; a freemail sender authenticates as the freemail domain.
    const viaTracker = { html: newsletter('<a href="https://u1.ct.sendgrid.net/ls/click?upn=a">www.paypal.com</a>') };
    assert.deepEqual(await names(viaTracker, { trackers, authenticatedDomain: 'example.com' }), ['HTML_LINK_MISMATCH']);
    const freemail = { from: 'Help <helpdesk123@outlook.com>', html: newsletter('<a href="https://evil.example.net/owa">https://outlook.com/owa</a>') };
    assert.deepEqual(await names(freemail, { trackers, authenticatedDomain: 'outlook.com' }), ['HTML_LINK_MISMATCH']);
  });
});

describe('content heuristics: the tricks still fire', () => {
  const tricks: [string, Spec, string[]][] = [
    ['a Cyrillic а inside PayPal', { subject: 'Your P\u0430yPal account is limited', text: 'Log in at once.' }, ['MIXED_SCRIPT_WORDS']],
    ['a Cyrillic capital first (Аpple) or a palochka last (PaypaӀ)', { text: 'Your \u0410pple ID and your Paypa\u04c0 account are locked.' }, ['MIXED_SCRIPT_WORDS']],
    ['look-alikes in a final run of two letters (Googӏе, Netflіх)', { text: 'Your Goog\u04cf\u0435 and Netfl\u0456\u0445 accounts are on hold.' }, ['MIXED_SCRIPT_WORDS']],
    ['Latin look-alikes inside a Cyrillic brand', { text: 'Ваша карта Cбepбaнк заблокирована.' }, ['MIXED_SCRIPT_WORDS']],
    ['zero-width spaces inside Latin words', { text: 'Buy V\u200biag\u200bra and Cia\u200blis now.' }, ['INVISIBLE_CHARACTERS']],
    ['a soft hyphen after every letter', { html: `<p>Buy V&shy;i&shy;a&shy;g&shy;r&shy;a now. ${paragraph}</p>` }, ['INVISIBLE_CHARACTERS']],
    ['a link showing paypal.com that goes elsewhere', { text: 'Verify', html: newsletter('<a href="http://paypal-verify.example.net/login">www.paypal.com</a>') }, ['HTML_LINK_MISMATCH']],
    ['the same link wrapped by Safe Links', { text: 'Verify', html: newsletter('<a href="https://nam12.safelinks.protection.outlook.com/?url=http%3A%2F%2Fpaypal-verify.example.net%2Flogin&data=x">www.paypal.com</a>') }, ['HTML_LINK_MISMATCH']],
    ['white text on an explicit white background', { html: `<body bgcolor="#ffffff"><p>Cheap watches</p><p><font color="#ffffff">${poison}</font></p></body>` }, ['HTML_HIDDEN_TEXT']],
    ['white text on the default background', { html: `<p>Cheap watches here, best replica brands at low prices</p><p><font color="#ffffff">${poison}</font></p>` }, ['HTML_HIDDEN_TEXT']],
    ['display:none word salad', { html: `<p>Cheap watches</p><div style="display:none">${poison}</div>` }, ['HTML_HIDDEN_TEXT']],
    ['an image with no words', { subject: 'Hot deal', html: '<a href="http://shop.example.biz"><img src="http://shop.example.biz/a.gif"></a>' }, ['HTML_ONLY_LITTLE_TEXT']],
    ['links to public IPs, also written as one number or in hex', { text: 'Go to http://203.0.113.9/login or http://3405803785/x or http://0xCB007109/y' }, ['URI_PUBLIC_IP']],
    ['a shouted new subject', { subject: 'URGENT: VERIFY YOUR ACCOUNT NOW', text: paragraph }, ['SUBJECT_ALL_CAPS']],
    ['a new subject with !!!', { subject: 'Act now!!!', text: paragraph }, ['SUBJECT_PUNCTUATION']],
    ['a "Re:" written on a message that replies to nothing', { subject: 'Re: FREE cash!!! act now', text: paragraph }, ['SUBJECT_PUNCTUATION']],
    ['419 wording with a second sign', { text: 'Our late client died leaving US$25,000,000.00 with no next of kin. I seek your assistance as beneficiary.' }, ['CONTENT_ADVANCE_FEE']],
    ['a lottery win', { text: 'Congratulations! You have won the sum of $1,000,000 in the Euro Millions lottery.' }, ['CONTENT_LOTTERY_WIN']],
    ['sextortion after a stray <head> in the body', { html: `<html><body><head>${sextortion}</body></html>` }, ['CONTENT_CRYPTO_EXTORT', 'HTML_LINK_MISMATCH']],
    ['sextortion after 501 unclosed elements', { html: `<html><body>${'<span>'.repeat(501)}${sextortion}</body></html>` }, ['CONTENT_CRYPTO_EXTORT', 'HTML_LINK_MISMATCH']],
    [
      'a look-alike brand and sextortion behind a decoy plain part',
      { text: 'Please view this message in an HTML capable mail program.', html: '<p>Your P\u0430yPal account: I have recorded you with your webcam. Send to my bitcoin address 1FfmbHfnpaZjKFvyi1okTjJJusN455paPH within 48 hours.</p>' },
      ['CONTENT_CRYPTO_EXTORT', 'MIXED_SCRIPT_WORDS'],
    ],
    ['sextortion', { text: 'I recorded a video of you through your webcam. Send 0.1 BTC to my bitcoin address bc1qxyz within 48 hours.' }, ['CONTENT_CRYPTO_EXTORT']],
  ];
  for (const [label, spec, expected] of tricks) {
    it(label, async () => assert.deepEqual(await names(spec), expected));
  }

  it('counts the invisible characters of the text or of the HTML, not both: one soft hyphen in an HTML-only message is not two', async () => {
    const parts = await parse({ html: newsletter('<p>Bitte lesen Sie die Daten&shy;schutz&shy;erklärung und die Nutzungs&shy;bedingungen.</p>') });
    assert.equal(invisibleInsideWords(parts.text), 0);
    assert.deepEqual(builtinHeuristics(parts, settings), []);
    assert.equal(invisibleInsideWords('V\u200bi\u200bagra'), 2);
    assert.deepEqual(mixedScriptWords("we can't wait, donвЂ™t"), [], 'UTF-8 punctuation read as windows-1251 is not a disguise');
  });

  it('white text is not counted as hidden only on a class the style sheet gives a real background, or on a background image', () => {
    const hidden = (html: string) => /meadow/.test(analyseHtml(html).hiddenText);
    assert.equal(hidden(`<style>.ftr td{background-color:#222}</style><table class="ftr"><tr><td><font color="#fff">${poison}</font></td></tr></table>`), false);
    assert.equal(hidden(`<div style="background-image:url(https://cdn.example.com/a.jpg)"><font color="#fff">${poison}</font></div>`), false);
    // A class the style sheet does not colour, a background of none, transparent or white, an empty image: still white on white.
    for (const html of [
      `<style>.dark{background:#000}</style><body class="other"><font color="#fff">${poison}</font></body>`,
      `<style>.a{background:none}.b{background:transparent}.c{background-color:#ffffff}</style><body class="a b c"><font color="#fff">${poison}</font></body>`,
      `<div background=""><font color="#fff">${poison}</font></div>`,
      `<div style="background-image:url()"><font color="#fff">${poison}</font></div>`,
      `<style>.dark{background:#000}</style><div class="dark" style="background-color:#ffffff"><font color="#fff">${poison}</font></div>`,
      `<style>/* .dark{background:#000} */</style><div class="dark"><font color="#fff">${poison}</font></div>`,
    ]) {
      assert.equal(hidden(html), true, html);
    }
    // Rules inside @media, and escaped class names, are read.
    assert.equal(hidden(`<style>@media screen{.ftr{background:#111}}</style><div class="ftr"><font color="#fff">${poison}</font></div>`), false);
    assert.equal(hidden(`<style>.md\\:bg-dark{background:#111}</style><div class="md:bg-dark"><font color="#fff">${poison}</font></div>`), false);
  });

  it('white text is not counted as hidden where a style sheet rule we do not resolve gives a dark background; white on white still is', () => {
    const hidden = (html: string) => /meadow/.test(analyseHtml(html).hiddenText);
    for (const css of ['body{background-color:#111}', '#hero{background:#1a1a1a}', 'td{background:#222}', 'table[role=presentation] td{background:#222}', 'h1, #main div > p{background:navy}']) {
      const html = `<style>${css}</style><table role="presentation"><tr><td id="hero"><p style="color:#ffffff">${poison}</p></td></tr></table>`;
      assert.equal(hidden(html), false, css);
    }
    for (const html of [
      // A page grey, or a background shown only on hover, is nothing white text shows on at rest.
      `<style>body{background:#f4f4f4}</style><p><font color="#fff">${poison}</font></p>`,
      `<style>.box{background-color:#F4F4F4}</style><div class="box"><font color="#fff">${poison}</font></div>`,
      `<style>a:hover, p::selection{background:#000}</style><p><font color="#fff">${poison}</font></p>`,
      // An explicit white background, and hiding styles, still hide.
      `<style>body{background:#000}</style><div style="background:#ffffff"><font color="#fff">${poison}</font></div>`,
      `<style>body{background:#000}</style><div style="display:none">${poison}</div>`,
    ]) {
      assert.equal(hidden(html), true, html);
    }
  });

  it('a child resets an inherited zero font size, visibility:hidden or white text; display:none, opacity and a zero height it cannot', () => {
    // Review (h-reset): every descendant of a font-size:0 cell counted as hidden, so responsive newsletters (inline-block
    // columns in a <td style="font-size:0">, their text at 14px) had their text read as hidden.
    const info = (html: string) => analyseHtml(html);
    const responsive = info(`<table><tr><td style="font-size:0;text-align:center"><div style="display:inline-block;width:50%"><div style="font-size:14px;color:#333">${poison}</div></div></td></tr></table>`);
    assert.match(responsive.text, /meadow/);
    assert.equal(responsive.hiddenText, '');
    // Read flat past 500 open elements too: the reset, and what is left hidden once it closes.
    const deep = info(`${'<div>'.repeat(501)}<td style="font-size:0"><div style="font-size:14px">${poison}</div>secret</td>`);
    assert.match(deep.text, /meadow/);
    assert.equal(deep.hiddenText, 'secret');
    for (const shown of [
      `<div style="visibility:hidden"><p style="visibility:visible">${poison}</p></div>`,
      `<div style="color:#ffffff"><p style="color:#222222">${poison}</p></div>`,
      `<font color="#fff"><table><tr><td bgcolor="red">${poison}</td></tr></table></font>`,
      `<td style="font-size:0"><font size="2">${poison}</font></td>`,
    ]) {
      assert.match(info(shown).text, /meadow/, shown);
    }
    for (const hidden of [
      `<div style="font-size:0">${poison}</div>`,
      `<div style="font-size:0"><span style="font-size:100%">${poison}</span><b style="font-size:1em">${poison}</b></div>`,
      `<div style="display:none"><p style="font-size:14px;visibility:visible;color:#000">${poison}</p></div>`,
      `<div style="opacity:0"><p style="font-size:14px">${poison}</p></div>`,
      `<div style="max-height:0;overflow:hidden"><p style="font-size:14px">${poison}</p></div>`,
      `<div hidden><p style="visibility:visible">${poison}</p></div>`,
      `<div style="font-size:14px"><span style="font-size:14px;font-size:0">${poison}</span></div>`,
      `<div style="color:#333"><p><font color="#ffffff">${poison}</font></p></div>`,
    ]) {
      assert.match(info(hidden).hiddenText, /meadow/, hidden);
      assert.doesNotMatch(info(hidden).text, /meadow/, hidden);
    }
  });

  it('reads the declaration a browser applies: the last !important one, else the last valid one', () => {
    // Review (h-rev-f): reading the last declaration let a later one that a browser drops, or that an earlier
    // !important one overrides, show text that stays hidden: `font-size:0 !important;font-size:14px`.
    for (const hidden of [
      `<div style="font-size:0 !important;font-size:14px">${poison}</div>`,
      `<div style="font-size:0;font-size:bogus">${poison}</div>`,
      `<div style="visibility:hidden !important;visibility:visible">${poison}</div>`,
      `<div style="visibility:hidden;visibility:nope">${poison}</div>`,
      `<div style="background:#fff"><p style="color:#fff !important;color:#000">${poison}</p></div>`,
      `<div style="background:#fff"><p style="color:#fff;color:#12">${poison}</p></div>`,
      // A transparent background shows the white one behind it (review h-rev-f).
      `<div style="background:#fff"><p style="color:#fff;background:none">${poison}</p></div>`,
      `<div style="background:#fff"><p style="color:#fff;background-color:transparent">${poison}</p></div>`,
      `<table bgcolor="#fff"><tr><td style="background-color:rgba(0,0,0,0)"><font color="#fff">${poison}</font></td></tr></table>`,
    ]) {
      assert.match(analyseHtml(hidden).hiddenText, /meadow/, hidden);
      assert.doesNotMatch(analyseHtml(hidden).text, /meadow/, hidden);
    }
    for (const shown of [
      `<div style="font-size:0"><p style="font-size:0;font-size:14px">${poison}</p></div>`,
      `<div style="font-size:14px !important;font-size:0">${poison}</div>`,
      `<div style="font-size:0"><p style="font-size:14px;font-size:-5px">${poison}</p></div>`,
      `<div style="background:#fff"><p style="color:#fff;color:#333">${poison}</p></div>`,
    ]) {
      assert.match(analyseHtml(shown).text, /meadow/, shown);
    }
  });

  it('catches white in other notations, transparent text, low contrast, the font shorthand, tiny sizes and iframe content', () => {
    const hidden = (html: string) => /meadow/.test(analyseHtml(html).hiddenText) && !/meadow/.test(analyseHtml(html).text);
    for (const color of ['#ffff', '#ffffffff', 'rgb(255 255 255)', 'rgb(100%,100%,100%)', 'rgba(255,255,255,1)', 'hsl(0,0%,100%)', 'hsl(0 0% 100%)', 'WHITE', 'transparent', 'rgba(0,0,0,0)']) {
      assert.equal(hidden(`<p style="color:${color}">${poison}</p>`), true, color);
    }
    assert.equal(hidden(`<p style="color:#fff;color:notacolour">${poison}</p>`), true, 'an unknown word is no colour');
    assert.equal(hidden(`<p style="color:#fafafa">${poison}</p>`), true, 'near-white on white');
    assert.equal(hidden(`<div style="background:#000"><p style="color:#111">${poison}</p></div>`), true, 'dark grey on black');
    assert.equal(hidden(`<td bgcolor="#336699"><font color="#336699">${poison}</font></td>`), true, 'same colour on a coloured background');
    for (const font of ['font: 0/0 a', 'font:0px Arial', 'font-size:14px;font:0/0 a']) assert.equal(hidden(`<p style="${font}">${poison}</p>`), true, font);
    assert.equal(hidden(`<p style="font:0/0 a;font-size:14px">${poison}</p>`), false, 'the last of font and font-size wins');
    assert.equal(hidden(`<div style="font-size:0"><span style="font-size:1px">${poison}</span></div>`), true);
    assert.equal(hidden(`<span style="font-size:1px">${poison}</span>`), true);
    for (const tag of ['iframe', 'noembed', 'noframes']) assert.doesNotMatch(analyseHtml(`<${tag}>${poison}</${tag}>`).text, /meadow/, tag);
  });

  it('review rv4: colour numbers read as a browser reads them (exponents), and in linear time', () => {
    const hidden = (html: string) => /meadow/.test(analyseHtml(html).hiddenText) && !/meadow/.test(analyseHtml(html).text);
    // colord does not read exponents: white written 2.55e2 was a colour we do not compute, never judged.
    assert.equal(hidden(`<p style="color:rgb(2.55e2,2.55e2,2.55e2)">${poison}</p>`), true);
    assert.equal(hidden(`<p style="color:rgba(0,0,0,1e-9)">${poison}</p>`), true);
    assert.equal(hidden(`<p style="color:rgb(0003e0 0 0)">${poison}</p>`), false, '3e0 is 3: black');
    // Four 45-digit runs took colord 2.5 s each (bench/hostile.ts watches the time): still no colour, still read.
    const runs = Array<string>(4).fill('1'.repeat(45)).join(',');
    const info = analyseHtml(`<p style="color:#fff;color:rgba(${runs},x">${poison}</p>`);
    assert.match(info.hiddenText, /meadow/, 'no colour: a browser drops it, and #fff on white hides the text');
  });

  it('review rv4: an opacity of 0.1 or less hides for good, as a colour of that alpha does', () => {
    const hidden = (html: string) => /meadow/.test(analyseHtml(html).hiddenText) && !/meadow/.test(analyseHtml(html).text);
    for (const opacity of ['0.05', '.1', '0%', '5%', '10%', '0.01 !important']) {
      assert.equal(hidden(`<div style="opacity:${opacity}"><p style="opacity:1">${poison}</p></div>`), true, opacity);
    }
    for (const opacity of ['0.11', '.5', '10.5%', '50%', '1']) assert.equal(hidden(`<p style="opacity:${opacity}">${poison}</p>`), false, opacity);
  });

  it('a gradient of one colour all the way is that colour: white text on a white gradient is hidden, on a black one shown', () => {
    // Any gradient left the background unknown, so white text on `linear-gradient(#fff,#fff)` went unjudged (shown).
    const hidden = (html: string) => /meadow/.test(analyseHtml(html).hiddenText) && !/meadow/.test(analyseHtml(html).text);
    for (const html of [
      `<div style="background:linear-gradient(#fff,#fff);color:#fff">${poison}</div>`,
      `<div style="background-image:linear-gradient(to right, white, #fefefe 80%)"><p style="color:#ffffff">${poison}</p></div>`,
      `<div style="background:#000"><div style="background:-webkit-linear-gradient(top,#fff 0%,#fff 100%)"><p style="color:#fff">${poison}</p></div></div>`,
      `<div style="background:#000 radial-gradient(circle at center, #fff, #fff)"><p style="color:#fff">${poison}</p></div>`,
      // A one-colour gradient clipped to the text is text of that colour.
      `<h1 style="background:linear-gradient(#fff,#fff);-webkit-background-clip:text;-webkit-text-fill-color:transparent">${poison}</h1>`,
    ]) {
      assert.equal(hidden(html), true, html);
    }
    for (const html of [
      `<div style="background:linear-gradient(#000,#000);color:#fff">${poison}</div>`,
      `<div style="background-color:#fff;background-image:linear-gradient(#111,#111);color:#fff">${poison}</div>`,
      `<div style="background:linear-gradient(#fff,#000);color:#fff">${poison}</div>`,
      `<div style="background:linear-gradient(rgba(255,255,255,.5),rgba(255,255,255,.5)),url(x.jpg);color:#fff">${poison}</div>`,
      `<div style="background:linear-gradient(#fff,#fff),url(x.jpg);color:#fff">${poison}</div>`,
      `<div style="background:linear-gradient(var(--a),var(--a));color:#fff">${poison}</div>`,
      `<div style="background:linear-gradient(#fff,#fff)"><p style="background:#000;color:#fff">${poison}</p></div>`,
      `<h1 style="background:linear-gradient(90deg,#ff3366,#ff3366);-webkit-background-clip:text;-webkit-text-fill-color:transparent">${poison}</h1>`,
    ]) {
      assert.equal(hidden(html), false, html);
    }
  });

  it('content misplaced directly in a table, section or row is judged where browsers move it: before the table, on its parent', () => {
    // Foster parenting: `<table bgcolor=#000><font color=#fff>` on a white page shows its words white on white, out of the
    // table; they were judged on the table's black, shown.
    const hidden = (html: string) => /meadow/.test(analyseHtml(html).hiddenText) && !/meadow/.test(analyseHtml(html).text);
    for (const html of [
      `<table style="background:#000"><font color="#fff">${poison}</font><tr><td>a</td></tr></table>`,
      `<table bgcolor="#000"><tr><font color="#fff">${poison}</font><td>a</td></tr></table>`,
      `<table bgcolor="#000"><tbody><div style="color:#fff">${poison}</div><tr><td>a</td></tr></tbody></table>`,
      `<body style="color:#fff"><table bgcolor="#000">${poison}<tr><td>a</td></tr></table></body>`,
      `<div style="background:#000"><div style="background:#fff"><table bgcolor="#000"><tr><td>a</td></tr><font color="#fff">${poison}</font></table></div></div>`,
    ]) {
      assert.equal(hidden(html), true, html);
    }
    // Ham-shaped tables: text in cells and captions stays on the table's background; moved out onto a dark parent it shows.
    for (const html of [
      `<table bgcolor="#000"><tr><td><font color="#fff">${poison}</font></td></tr></table>`,
      `<table style="background:#000;color:#fff"><tr><th>${poison}</th></tr></table>`,
      `<table bgcolor="#000"><caption><font color="#fff">${poison}</font></caption></table>`,
      `<div style="background:#000"><table bgcolor="#000"><font color="#fff">${poison}</font><tr><td>a</td></tr></table></div>`,
      `<table bgcolor="#000"><tr><td><table><tr><td>x</td></tr><font color="#fff">${poison}</font></table></td></tr></table>`,
      `<table style="display:none"><font>${poison}</font></table>`,
      `<table bgcolor="#000"><tr><td style="color:#fff">a</td></tr><tr><td style="color:#fff">${poison}</td></tr></table>`,
      // Old editors' markup: a <font> or <center> between the table and its rows. Moved out, it is empty in a browser:
      // the rows and cells that htmlparser2 nests in it go back into the table, on its background.
      `<table bgcolor="#000"><font face="Arial" color="#fff"><tr><td style="color:#fff">${poison}</td></tr></font></table>`,
      `<table bgcolor="#000"><tbody><tr><td>a</td></tr><center><center><tr><td><font color="#fff">${poison}</font></td></tr></center></center></tbody></table>`,
    ]) {
      assert.equal(hidden(html), false, html);
    }
    // The MIME tail reads a cut inside such content as the whole part does: on the table's parent.
    const after = `${'Shown text of the letter, news of the week. '.repeat(200)}</font></table></div></div><p>end</p>`;
    assert.equal(htmlLooksLikePadding(after, unshownOpenAt('<table bgcolor="#000"><font color="#fff">x')), true);
    assert.equal(htmlLooksLikePadding(after, unshownOpenAt('<div style="background:#000"><table bgcolor="#000"><font color="#fff">x')), false);
    assert.equal(htmlLooksLikePadding(after, unshownOpenAt('<div style="background:#000"><div style="background:#fff"><table bgcolor="#000"><font color="#fff">x')), true);
    assert.equal(htmlLooksLikePadding(after, unshownOpenAt('<div style="background:#fff"><div style="background:#000"><table bgcolor="#fff"><font color="#fff">x')), false);
  });

  it('review of e7b1228: style declarations split as a browser splits them; display values only as browsers take them', () => {
    // A later declaration that a browser drops (a `!` hack, junk after !important, a keyword Blink and WebKit do not
    // take, two outer types) read as valid and showed what `display:none` before it hides; a comment inside the value,
    // a `;` in a string or url() split declarations a browser keeps whole; a table column's content is never rendered.
    const hidden = (html: string) => /meadow/.test(analyseHtml(html).hiddenText) && !/meadow/.test(analyseHtml(html).text);
    for (const style of [
      'display:none;display:block!ie',
      'display:none;display:block !important x',
      'display:/**/none',
      'display:none/* a */',
      'display:none;font-family:"a;display:block;"',
      'display:none;background:url(a;display:block;)',
      'display:none;display:run-in',
      'display:none;display:-ms-flexbox',
      'display:none;display:ruby-base-container',
      'display:none;display:block block',
      'display:none;display:inline run-in',
      'display:none;display:flex list-item',
      'display:table-column',
      'display:TABLE-COLUMN-GROUP',
      'color:#fff;color:#000!x',
    ]) {
      assert.equal(hidden(`<p style='${style}'>${poison}</p>`), true, style);
    }
    for (const style of [
      'display:none;display:block !important',
      'display:none;display:block ! IMPORTANT',
      'font-family:"Yahoo!";display:block',
      'display:none;display:/* shown */block',
      'display:none;display:inline flow-root',
      'display:none;display:block list-item',
      'display:none;display:list-item inline flow',
      'display:none;display:-webkit-box',
      'color:#000;background:url("a!b;c")',
    ]) {
      assert.equal(hidden(`<p style='${style}'>${poison}</p>`), false, style);
    }
  });

  it('review of 1348f0e: content in a column group is moved out before its table too', () => {
    // A browser closes the column group at anything but a col and fosters it: white text there shows on the white page.
    const info = analyseHtml(`<body><table bgcolor="#000"><colgroup><font color="#fff">${poison}</font></colgroup><tr><td><font color="#fff">cell words</font></td></tr></table></body>`);
    assert.match(info.hiddenText, /meadow/);
    assert.match(info.text, /cell words/);
  });

  it('review of 8bb463b, 1348f0e: newsletter template markup reads as shown (only a display:none preheader is hidden)', () => {
    // Outlook conditional comments, mso- styles, !important resets, url() with ';', wrappers between table tags (old
    // editors), omitted <tbody>, <form> in a table, nested tables, an underline gradient: none of it hides the copy.
    const copy = ['Weekly digest', 'Article body', 'Centered offer', 'Subscribe label', 'Deep nested', 'Reset styled', 'Button words', 'Underlined link'];
    const html = `<!DOCTYPE html><html><head><!--[if mso]><style>table{border-collapse:collapse}</style><![endif]--></head>
<body style="margin:0;padding:0;background-color:#f4f4f4 !important">
<div style="display:none;font-size:1px;color:#f4f4f4;line-height:1px;max-height:0;opacity:0;overflow:hidden;mso-hide:all">Preheader shows in the inbox list</div>
<center><table width="100%" bgcolor="#f4f4f4" style="background:#f4f4f4 url('https://x.example/a;b.png') no-repeat !important;mso-line-height-rule:exactly">
<!--[if mso]><tr><td><![endif]--><tr><td align="center" style="padding:20px;background-color:#1a1a1a !important;color:#ffffff !important;font-family:'Helvetica Neue',Arial,sans-serif !important">
<font color="#ffffff" face="Arial">Weekly digest</font></td></tr>
<tr><td style="background-image:url(https://x.example/p.png?a=1;b=2);background-color:#ffffff;color:#333333;line-height:150%!important">Article body</td></tr></table></center>
<table bgcolor="#003366" width="600"><center><font face="Arial"><tr><td><font color="#ffffff">Centered offer</font></td></tr></font></center></table>
<table bgcolor="#333333"><form action="https://x.example/s"><tr><td><font color="#ffffff">Subscribe label</font><input type="text"></td></tr></form></table>
<table bgcolor="#111111"><tr><td><table><tr><td><table><tr><td style="color:#fafafa">Deep nested</td></tr></table></td></tr></table></td></tr></table>
<div style="color:#333333 !important;background-color:#ffffff !important;display:block !important;font-size:14px !important">Reset styled</div>
<table><tr><td><!--[if mso]><table><tr><td><![endif]--><div style="color:#fff;background:#0a0a0a">Button words</div><!--[if mso]></td></tr></table><![endif]--></td></tr></table>
<table bgcolor="#000000"><tr><td><a href="https://x.example/" style="color:#fff;background-image:linear-gradient(#fff,#fff);background-size:100% 1px;background-repeat:no-repeat">Underlined link</a></td></tr></table>
</body></html>`;
    const info = analyseHtml(html);
    assert.equal(info.hiddenText, 'Preheader shows in the inbox list');
    for (const words of copy) assert.match(info.text, new RegExp(words), words);
  });

  it('review of 8bb463b: an unquoted url() and a string a newline ends do not swallow the declarations after them', () => {
    // A browser's tokenizer reads `url(a"b)` to its `)` (a quote or `/*` in it opens nothing) and ends a string at a
    // newline: the splitter opened a string or a comment there and kept `display:none` inside the value before it.
    const hidden = (html: string) => /meadow/.test(analyseHtml(html).hiddenText) && !/meadow/.test(analyseHtml(html).text);
    for (const style of [
      'background:url(a"b);display:none;x:"',
      "background:url(a'b);display:none;x:'",
      'background:URL( a"b );display:none;x:"',
      'background:url(a/*b);display:none;x:*/',
      'font-family:"a\n;display:none;x:"',
      "font-family:'a\r;display:none;x:'",
    ]) {
      assert.equal(hidden(`<p style="${style.replace(/"/g, '&quot;')}">${poison}</p>`), true, style);
    }
    for (const style of ['color:#000;background:url( "a;display:none" )', 'color:#000;background:url(a\)b;display:none)']) {
      assert.equal(hidden(`<p style="${style.replace(/"/g, '&quot;')}">${poison}</p>`), false, style);
    }
  });

  it('review of 6137021: a one-colour gradient sized smaller than its element (an underline) is not its background', () => {
    // `linear-gradient(#fff,#fff)` at `100% 1px` is a link's white underline on a dark cell: its white text read as on white, hidden.
    const hidden = (html: string) => /meadow/.test(analyseHtml(html).hiddenText) && !/meadow/.test(analyseHtml(html).text);
    for (const html of [
      `<div style="background:#000"><a href="#" style="color:#fff;background:linear-gradient(#fff,#fff) no-repeat 0 100%/100% 1px">${poison}</a></div>`,
      `<div style="background:#000"><a href="#" style="color:#fff;background-image:linear-gradient(#fff,#fff);background-size:100% 1px;background-repeat:no-repeat">${poison}</a></div>`,
      `<div style="background:#000;color:#fff"><span style="background-image:linear-gradient(#ffffff,#ffffff);background-position:0 100%;background-size:100% 2px;background-repeat:no-repeat">${poison}</span></div>`,
      `<div style="color:#fff;background:#000 linear-gradient(#fff,#fff) no-repeat;background-size:0 0">${poison}</div>`,
    ]) {
      assert.equal(hidden(html), false, html);
    }
    // Sized to cover it, or tiled over all of it (repeat is the default), it is still its background.
    for (const html of [
      `<div style="background:#000"><p style="color:#fff;background:linear-gradient(#fff,#fff);background-size:10px 10px">${poison}</p></div>`,
      `<div style="background:#000"><p style="color:#fff;background:linear-gradient(#fff,#fff) 0 0/4px 4px round">${poison}</p></div>`,
      `<div style="color:#fff;background:linear-gradient(#fff,#fff) center/cover">${poison}</div>`,
      `<div style="color:#fff;background-image:linear-gradient(#fff,#fff);background-size:100% 100%">${poison}</div>`,
      `<div style="color:#fff;background:#000 linear-gradient(#fff,#fff);background-size:auto">${poison}</div>`,
    ]) {
      assert.equal(hidden(html), true, html);
    }
  });

  it('a zero height hides only with the vertical overflow cut: max-height:0 alone shows its content, as in a browser', () => {
    // `max-height:0` matched anywhere read as hidden for good, though without overflow:hidden the content overflows and shows.
    const hidden = (html: string) => /meadow/.test(analyseHtml(html).hiddenText) && !/meadow/.test(analyseHtml(html).text);
    for (const style of ['max-height:0', 'max-height:0px;mso-hide:all', 'height:0', 'max-height:0;overflow:visible', 'max-height:0;overflow:hidden visible', 'height:0;overflow:hidden;overflow:visible', 'max-height:0;overflow:hidden;max-height:none']) {
      assert.equal(hidden(`<div style="${style}"><p>${poison}</p></div>`), false, style);
    }
    for (const style of ['max-height:0;overflow:hidden', 'overflow:hidden;height:0px', 'height:0em;overflow-y:clip', 'max-height:0;overflow:visible hidden', 'height:0;overflow:hidden!important;overflow:visible', 'height:0;overflow:hidden;height:nonsense']) {
      assert.equal(hidden(`<div style="${style}"><p style="font-size:14px">${poison}</p></div>`), true, style);
    }
  });

  it('display:none and a faint opacity are judged by the declaration that wins, as a browser does', () => {
    // A later valid declaration shows the element (a template's `display:none` for some clients, then
    // `display:block` for the rest): read as hidden for good before, by a regex that saw the first one.
    const hidden = (html: string) => /meadow/.test(analyseHtml(html).hiddenText) && !/meadow/.test(analyseHtml(html).text);
    for (const style of ['display:none;display:block', 'display:none; display : inline-block', 'opacity:0;opacity:1', 'opacity:0.05; opacity: 0.9', 'display:none;display:block flow', 'DISPLAY:NONE;display:table-cell']) {
      assert.equal(hidden(`<p style="${style}">${poison}</p>`), false, style);
    }
    // An !important declaration wins over later ones; a value a browser drops leaves the one before it.
    for (const style of ['display:none !important;display:block', 'display:none;display:nonsense', 'display:block;display:none', 'opacity:0 !important;opacity:1', 'opacity:0;opacity:high', 'display:none;display:block inline flex grid']) {
      assert.equal(hidden(`<p style="${style}">${poison}</p>`), true, style);
    }
  });

  it('a text fill colour paints the text instead of its colour; nested opacities multiply, and no descendant undoes them', () => {
    // Review: `-webkit-text-fill-color:transparent` (WebKit, Blink, Gecko paint text with it) hid text whose `color` read as
    // shown, and `opacity:0.3` inside `opacity:0.3` (0.09 in a browser) read as shown: each opacity was judged alone.
    const hidden = (html: string) => /meadow/.test(analyseHtml(html).hiddenText) && !/meadow/.test(analyseHtml(html).text);
    for (const html of [
      `<div style="-webkit-text-fill-color:transparent">${poison}</div>`,
      `<div style="-webkit-text-fill-color:transparent"><p style="color:#000">${poison}</p></div>`,
      `<div style="color:#000;-webkit-text-fill-color:#fefefe">${poison}</div>`,
      `<table bgcolor="#000"><tr><td style="color:#fff;-webkit-text-fill-color:rgba(0,0,0,0.9)">${poison}</td></tr></table>`,
      `<div style="opacity:0.3"><p style="opacity:0.3">${poison}</p></div>`,
      `<div style="opacity:50%"><div style="opacity:0.5"><p style="opacity:0.4">${poison}</p></div></div>`,
      `<div style="opacity:0.3"><p style="opacity:0.3"><span style="opacity:1">${poison}</span></p></div>`,
      `<div style="opacity:0.5"><p style="color:rgba(0,0,0,0.2)">${poison}</p></div>`,
      // Read flat past 500 open elements too.
      `${'<div>'.repeat(501)}<div style="opacity:0.3"><p style="opacity:0.3">${poison}</p></div>`,
      `${'<div>'.repeat(501)}<div style="-webkit-text-fill-color:transparent"><p style="color:#000">${poison}</p></div>`,
    ]) {
      assert.equal(hidden(html), true, html);
    }
    for (const html of [
      `<div style="color:#fff;-webkit-text-fill-color:#000">${poison}</div>`,
      `<div style="-webkit-text-fill-color:transparent"><p style="-webkit-text-fill-color:currentcolor">${poison}</p></div>`,
      `<div style="-webkit-text-fill-color:var(--brand)">${poison}</div>`,
      `<div style="-webkit-text-fill-color:nonsense">${poison}</div>`,
      `<div style="opacity:0.3"><p style="opacity:0.5">${poison}</p></div>`,
      `<div style="opacity:0.3;opacity:1"><p style="opacity:0.3">${poison}</p></div>`,
    ]) {
      assert.equal(hidden(html), false, html);
    }
  });

  it('ham: gradient text (a background clipped to the text, painted through a transparent fill) shows', async () => {
    // Review: `background:linear-gradient(...); -webkit-background-clip:text; -webkit-text-fill-color:transparent`, the
    // gradient headings of marketing mail, read as hidden once the fill colour was judged: the transparent fill lets the
    // background clipped to the glyphs show. With a preheader, a newsletter of gradient headings raised HTML_HIDDEN_TEXT.
    const hidden = (html: string) => /meadow/.test(analyseHtml(html).hiddenText) && !/meadow/.test(analyseHtml(html).text);
    const gradient = 'background:linear-gradient(90deg,#ff3366,#6633ff)';
    for (const html of [
      `<h1 style="${gradient};-webkit-background-clip:text;background-clip:text;-webkit-text-fill-color:transparent;color:#333">${poison}</h1>`,
      `<h1 style="background-image:url(https://example.com/gold.png);-webkit-background-clip:text;color:transparent">${poison}</h1>`,
      // The clip reaches the descendants' text; a solid colour clipped to the text paints it that colour.
      `<div style="${gradient};background-clip:text"><p style="-webkit-text-fill-color:transparent">${poison}</p></div>`,
      `<h1 style="background:#cc0000;-webkit-background-clip:text;-webkit-text-fill-color:rgba(0,0,0,0)">${poison}</h1>`,
      // The gradient a style sheet gives its class, clipped inline.
      `<style>.brand{background-image:linear-gradient(#f36,#63f)}</style><h1 class="brand" style="-webkit-background-clip:text;-webkit-text-fill-color:transparent">${poison}</h1>`,
      `<table bgcolor="#000000"><tr><td><h1 style="background:#ffcc00;-webkit-background-clip:text;-webkit-text-fill-color:transparent">${poison}</h1></td></tr></table>`,
    ]) {
      assert.equal(hidden(html), false, html);
    }
    // Still hidden: a colour clipped to the text that is the page's own, no background to clip, a clip that is not to the text.
    for (const html of [
      `<h1 style="background:#ffffff;-webkit-background-clip:text;-webkit-text-fill-color:transparent">${poison}</h1>`,
      `<table bgcolor="#000000"><tr><td><h1 style="background:#000;background-clip:text;color:transparent">${poison}</h1></td></tr></table>`,
      `<h1 style="-webkit-background-clip:text;-webkit-text-fill-color:transparent">${poison}</h1>`,
      `<h1 style="${gradient};-webkit-background-clip:border-box;-webkit-text-fill-color:transparent">${poison}</h1>`,
      // A `background` shorthand after the clip resets it.
      `<h1 style="-webkit-background-clip:text;${gradient};-webkit-text-fill-color:transparent">${poison}</h1>`,
      `<h1 style="${gradient};-webkit-background-clip:text;-webkit-text-fill-color:transparent;opacity:0.05">${poison}</h1>`,
      `${'<div>'.repeat(501)}<h1 style="background:#fff;-webkit-background-clip:text;-webkit-text-fill-color:transparent">${poison}</h1>`,
    ]) {
      assert.equal(hidden(html), true, html);
    }
    const heading = (words: string) => `<h2 style="${gradient};-webkit-background-clip:text;-webkit-text-fill-color:transparent;color:#6633ff">${words}</h2>`;
    const headings = [
      'New arrivals for the summer season',
      'Our customers loved these picks',
      'Last chance for the spring offers',
      'Gift ideas for every budget',
      'Meet the team behind the collection',
      'Events near you this month',
    ];
    assert.ok(!(await names({ html: newsletter(headings.map(heading).join('<p>Read more on our website.</p>'), preheader) })).includes('HTML_HIDDEN_TEXT'));
  });

  it('a font size of calc(), min(), max() or clamp() of constant lengths is computed; any other stays unknown (not hidden)', () => {
    // Review: every math function read as the parent's size, so `font-size:calc(0px)` or `min(0px, 14px)` hid text that read as shown.
    const hidden = (html: string) => /meadow/.test(analyseHtml(html).hiddenText) && !/meadow/.test(analyseHtml(html).text);
    for (const size of ['calc(0px)', 'calc( 0.1em )', 'min(0px, 14px)', 'MIN(0em,14px)', 'max(0px, 1px)', 'clamp(0px, 0px, 14px)', 'min(-5px, 14px)', 'clamp(0px, 2px, 1pt)']) {
      assert.equal(hidden(`<div style="font-size:${size}">${poison}</div>`), true, size);
    }
    assert.equal(hidden(`<div style="font:calc(0px)/0 a">${poison}</div>`), true, 'font shorthand');
    for (const size of ['calc(14px)', 'clamp(0px, 1vw, 14px)', 'calc(0px + 0px)', 'min(1px, var(--x))', 'max(0px, 14px)', 'clamp(1px, 16px)', 'min(0px, min(1px, 2px))', 'calc(0)']) {
      assert.equal(hidden(`<div style="font-size:${size}">${poison}</div>`), false, size);
    }
    // A computed absolute size resets a zero one above it; one relative to the zero stays zero.
    assert.equal(hidden(`<td style="font-size:0"><p style="font-size:calc(14px)">${poison}</p></td>`), false);
    assert.equal(hidden(`<td style="font-size:0"><p style="font-size:calc(1em)">${poison}</p></td>`), true);
    // Fluid type in a responsive column (`font-size:0` on the column, for the inline-block gaps): a viewport unit in a
    // math function is read as fontSizePx reads one alone (of a 400px screen), not as the zero above it.
    for (const size of ['16px;font-size:clamp(14px, 2vw, 18px)', 'max(14px, 1.2vw)', 'clamp(0.875rem, 3.5vw, 1.125rem)']) {
      assert.equal(hidden(`<td style="font-size:0"><p style="font-size:${size}">${poison}</p></td>`), false, size);
    }
    assert.equal(hidden(`<div style="font-size:calc(0vw)">${poison}</div>`), true);
    assert.equal(hidden(`<div style="font-size:20px"><p style="font-size:min(10%, 14px)">${poison}</p></div>`), true);
  });

  it('review rv4: a style sheet image on an element\'s class covers its own bgcolor (hero with white text)', () => {
    const html = `<style>.hero{background-image:url(https://example.com/hero.jpg)}</style><table><tr><td class="hero" bgcolor="#ffffff" style="color:#ffffff">${poison}</td></tr></table>`;
    assert.match(analyseHtml(html).text, /meadow/);
    assert.equal(analyseHtml(html).hiddenText, '');
    // Without the class rule it is white on white.
    assert.match(analyseHtml(html.replace('.hero{', '.other{')).hiddenText, /meadow/);
  });

  it('review rv4: past 500 open elements, unclosed <font color> tags of an old editor do not hide the rest', () => {
    const minutes = Array.from({ length: 700 }, (_, i) => `<font color="${i % 2 ? '#000080' : '#000000'}" face="Arial">line ${i} of the minutes `).join('');
    const info = analyseHtml(`<p>${minutes}${poison}`);
    assert.equal(info.deep, true);
    assert.match(info.text, /meadow/);
    assert.equal(info.hiddenText, '');
    // A colour there that hides its text still does, and so does what follows once no frame has room.
    assert.match(analyseHtml(`<p>${minutes}<font color="#ffffff">${poison}</font>`).hiddenText, /meadow/);
  });

  it('review rv4: a gradient background image over an element\'s own colour is not judged (as the docs say)', () => {
    for (const style of ['background-color:#ffffff;background-image:linear-gradient(#000000,#000000)', 'background:#fff;background-image:radial-gradient(#000,#111)']) {
      const info = analyseHtml(`<table><tr><td style="${style}"><span style="color:#ffffff">${poison}</span></td></tr></table>`);
      assert.match(info.text, /meadow/, style);
      assert.equal(info.hiddenText, '', style);
    }
    assert.match(analyseHtml(`<td style="background-color:#ffffff"><span style="color:#ffffff">${poison}</span></td>`).hiddenText, /meadow/);
  });

  it('ham-shaped colours and sizes stay shown', () => {
    const shown = (html: string) => /meadow/.test(analyseHtml(html).text) && analyseHtml(html).hiddenText === '';
    for (const html of [
      `<table><tr><td style="background-color:#222222"><p style="color:#ffffff">${poison}</p></td></tr></table>`,
      `<table><tr><td style="font-size:0"><div style="display:inline-block"><p style="font-size:14px">${poison}</p></div></td></tr></table>`,
      `<p style="color:#999">${poison}</p>`,
      `<div style="color:#333"><p style="color:inherit">${poison}</p></div>`,
      `<div style="background:#003366"><p style="color:#99ccff">${poison}</p></div>`,
      `<div style="background:#808080"><p style="color:red">${poison}</p></div>`,
    ]) {
      assert.equal(shown(html), true, html);
    }
  });

  it('reads on past 500 open elements without stacking them: what follows deep markup is kept, in time linear in its size', () => {
    const deep = '<span>'.repeat(501);
    const info = analyseHtml(`<p>Hello</p><div style="display:none">${deep}secret</div><p>Visit <a href="http://evil.example.net/">www.paypal.com</a> now<script>var x = "<a href=x>";</script><img src=x alt="Buy"></p>`);
    assert.equal(info.text, 'Hello\nVisit www.paypal.com now');
    assert.equal(info.hiddenText, 'secret', 'the hidden element open at the limit still hides, until its close tag');
    assert.deepEqual(info.links, [{ href: 'http://evil.example.net/', text: 'www.paypal.com' }]);
    assert.equal(info.altText, 'Buy');
    // htmlparser2 alone takes seconds on this (it walks its stack for every unmatched close tag). What keeps
    // the time linear is reading flat past MAX_DEPTH, which the result reports; bench/hostile.ts times it.
    const started = Date.now();
    const unmatched = analyseHtml(`<p>Hello</p>${'<div>'.repeat(50_000)}World${'</span>'.repeat(50_000)}`);
    // hang guard, not a performance test: typical 85ms.
    assert.ok(Date.now() - started < 5000, `${Date.now() - started} ms`);
    assert.equal(unmatched.deep, true, 'read flat past 500 open elements');
    assert.match(unmatched.text, /World/);
  });

  it('past 500 open elements, text that deeper elements hide is still hidden text', async () => {
    // Read flat, deeper elements' styles were ignored: all of this counted as visible, and fed the classifier.
    const hiddenTwoWays = `<div style="display:none">${poison}${poison}</div><font color="#ffffff">${poison}${poison}</font>`;
    const html = `<html><body>${'<div>'.repeat(501)}<p>Hello reader, see you</p>${hiddenTwoWays}</body></html>`;
    const deep = (await parse({ html })).html!;
    assert.ok(deep.hiddenText.replace(/\s/g, '').length >= 700, deep.hiddenText);
    assert.equal(deep.text, 'Hello reader, see you');
    assert.equal(deep.deep, true);
    assert.deepEqual(await names({ html }), ['HTML_HIDDEN_TEXT']);
    assert.match(builtinHeuristics(await parse({ html }), settings).find((h) => h.name === 'HTML_HIDDEN_TEXT')?.detail ?? '', /nested deeper than 500/);
    const info = (snippet: string) => analyseHtml(`${'<div>'.repeat(501)}${snippet}`);
    // A close tag closes the deep element of its name, not the first one it meets; the hidden attribute hides.
    const nested = info(`<div hidden><div>a</div>secret<span>b</span>more</div>shown`);
    assert.equal(nested.hiddenText, 'a secret b more');
    assert.equal(nested.text, 'shown');
    // White on a background a deep element gives is no trick; white on white is.
    assert.match(info(`<td bgcolor="#222"><p style="color:#fff">${poison}</p></td>`).text, /meadow/);
    assert.match(info(`<td bgcolor="#fff"><p style="color:#fff">${poison}</p></td>`).hiddenText, /meadow/);
    // Past 64 elements that change how text looks, the rest counts as hidden: one not followed might hide what follows.
    const backgrounds = Array.from({ length: 64 }, (_, i) => `<div style="background:#${i % 2 ? '111' : '222'}">`).join('');
    assert.equal(info(`${backgrounds}shown`).text, 'shown');
    assert.equal(info(`${backgrounds}<b style="display:none">x</b>after`).hiddenText, 'x after');
    assert.equal(analyseHtml('<p>Hello</p>').deep, false);
  });

  it('shows what a stray <head> or a <noscript> holds, as mail clients do', async () => {
    const head = await parse({ html: `<html><body><head>${sextortion}</body></html>` });
    assert.match(head.html!.text, /webcam/);
    assert.deepEqual(head.html!.links.map((l) => l.text), ['www.paypal.com']);
    // A head's attributes hide nothing: what it holds that shows moves to the body.
    assert.match(analyseHtml(`<html><head hidden style="display:none"><title>t</title>${sextortion}</html>`).text, /webcam/);
    assert.match(analyseHtml(`<noscript>${sextortion}</noscript>`).text, /webcam/);
    assert.doesNotMatch(analyseHtml('<html><head><title>Title</title><style>p{}</style><script>x()</script></head><body>Hi</body></html>').text, /Title|p\{|x\(\)/);
  });
});

describe('content rules file: several tests in one rule', () => {
  it('fires only when every test of the rule matches, and the detail names each', async () => {
    const rules = parseRules(
      ['body R_TWO /next of kin/i', 'header R_TWO Subject =~ "proposal"', 'score R_TWO 2', 'describe R_TWO Both signs', 'uri R_ONE /\\.zip\\b/', 'score R_ONE 1', 'describe R_ONE Zip'].join('\n'),
      'test.rules',
    );
    const s = { ...settings, rules };
    const both = ruleHits(await parse({ subject: 'Business proposal', text: 'no next of kin https://x.zip/a' }), s);
    assert.deepEqual(both.map((h) => h.name), ['R_TWO', 'R_ONE']);
    assert.equal(both[0]!.detail, 'body matches /next of kin/i and header subject matches "proposal"');
    const one = ruleHits(await parse({ subject: 'Minutes', text: 'no next of kin' }), s);
    assert.deepEqual(one, []);
    assert.throws(
      () => parseRules('body R_BAD /x/\nbody R_BAD /(/\nscore R_BAD 1\ndescribe R_BAD d\n', 'x.rules'),
      (err: unknown) => err instanceof ConfigError && /x\.rules \[rule R_BAD\]: line 2:/.test(err.message),
    );
  });
});
