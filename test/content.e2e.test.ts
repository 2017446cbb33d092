// content end to end: a real Haraka with mailward/reputation, auth and content
// (plus verdict), DNS from the test server; templated account letters from an
// authenticated sender, the same template from a listed unauthenticated one,
// and hostile input.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startDnsServer, type TestDnsServer } from './support/dns-server';
import { type HarakaInstance, readDelivered, removeDir, sendMail, startHaraka } from './support/haraka';

const BULK_THRESHOLD = 20;

function letter(i: number, from: string): string {
  const names = ['John Smith', 'María José Carreño', 'Li Wei', 'Aoife O\'Brien', 'Ngozi Okafor'];
  const name = `${names[i % names.length]} ${String.fromCharCode(65 + (i % 26))}.`;
  const balance = `£${(1000 + i * 37.13).toFixed(2)}`;
  return [
    `From: Example Bank <${from}>`,
    `To: ${name} <customer${i}@example.com>`,
    `Subject: Your monthly statement`,
    `Message-ID: <stmt-${i}-${randomBytes(4).toString('hex')}@bank.test>`,
    'Date: Mon, 06 Jan 2025 09:00:00 +0000',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    `Dear ${name},`,
    '',
    `Your statement for account AC-${100000 + i} dated 2025-01-0${1 + (i % 9)} is now available in online banking.`,
    `Your balance is ${balance}. If anything on it looks wrong, please call the number on the back of your card.`,
    `You can view it at https://bank.test/statements?ref=${randomBytes(6).toString('hex')}. Thank you for banking with us.`,
    '',
    '-- ',
    `Jane Roe, Customer Care, reference ${i}`,
    '',
  ].join('\r\n');
}

function status(text: string): string {
  return /^X-Mailward-Status: (.*)$/m.exec(text)?.[1] ?? '';
}

describe('content end to end through a real Haraka', function () {
  this.timeout(180_000);
  let dns: TestDnsServer;
  let haraka: HarakaInstance;

  before(async () => {
    dns = await startDnsServer({
      'bank.test': { TXT: ['v=spf1 ip4:127.0.9.0/24 -all'] },
      '_dmarc.bank.test': { TXT: ['v=DMARC1; p=reject'] },
      '6.66.0.127.bl.test': { A: ['127.0.0.2'] },
    });
    haraka = await startHaraka({
      plugins: ['mailward/plugins/reputation', 'mailward/plugins/auth', 'mailward/plugins/content'],
      hostList: ['example.com'],
      files: {
        'mailward.ini': `[main]\ndata_dir = data\n[dns]\nservers = ${dns.server}\ntimeout_ms = 400\n`,
        'mailward.reputation.ini': ['[main]', 'skip_internal = false', '[practices]', 'enabled = false', '[learned]', 'enabled = false', '[zone:bl.test]', '127.0.0.2 = TEST_DROP:8', ''].join('\n'),
        'mailward.content.ini': `[bulk]\nthreshold = ${BULK_THRESHOLD}\n`,
      },
    });
  });
  after(async () => {
    await haraka?.stop();
    if (haraka) removeDir(haraka.dir);
    await dns?.stop();
  });

  it('150 authenticated templated letters with per-recipient names and balances: all delivered, BULK once past the threshold', async () => {
    const statuses: string[] = [];
    for (let i = 0; i < 150; i++) {
      const before = new Set(haraka.delivered());
      const result = await sendMail({ port: haraka.port, from: 'statements@bank.test', to: [`customer${i}@example.com`], raw: letter(i, 'statements@bank.test'), localAddress: '127.0.9.1', helo: 'mail.bank.test' });
      assert.equal(result.code, 250, `letter ${i}: ${result.response}`);
      const fresh = haraka.delivered().filter((f) => !before.has(f));
      assert.equal(fresh.length, 1);
      statuses.push(status(readDelivered(fresh[0]!)));
    }
    for (const [i, s] of statuses.entries()) {
      assert.match(s, /^accept /, `letter ${i}: ${s}`);
      assert.match(s, /DMARC_PASS/, `letter ${i} not authenticated: ${s}`);
      if (i + 1 >= BULK_THRESHOLD) assert.match(s, /\bBULK 0\b/, `letter ${i}: ${s}`);
      else assert.doesNotMatch(s, /\bBULK\b/, `letter ${i}: ${s}`);
      assert.doesNotMatch(s, /BULK_UNAUTHENTICATED|BULK_BAD_REPUTATION/);
    }
  });

  it('the same template from a listed, unauthenticated source is rejected, naming the bulk signals', async () => {
    const result = await sendMail({ port: haraka.port, from: 'offers@promo.test', to: ['customer1@example.com'], raw: letter(1, 'offers@promo.test'), localAddress: '127.0.66.6', helo: 'mail.promo.test' });
    assert.equal(result.code, 550, result.response);
    assert.match(result.response, /TEST_DROP 8/);
    assert.match(result.response, /BULK_UNAUTHENTICATED 3/);
    assert.match(result.response, /BULK_BAD_REPUTATION 3/);
  });

  const hostile: [string, () => string][] = [
    ['malformed MIME (no closing boundary, bad base64, broken headers)', () =>
      ['From: x@promo.test', 'Subject: =?utf-8?B?broken', 'Content-Type: multipart/mixed; boundary="b1"', '', '--b1', 'Content-Type: text/plain', 'Content-Transfer-Encoding: base64', '', '!!!not base64@@@', '--b1', 'Content-Type: multipart/alternative; boundary=', '', 'dangling'].join('\r\n')],
    ['wrong and unknown charsets', () =>
      ['From: x@promo.test', 'Subject: =?x-unknown?Q?caf=E9?=', 'Content-Type: text/plain; charset=utf-8', '', 'caf\u00e9 na\u00efve \u00ff\u00fe', ''].join('\r\n') +
      ['--', 'Content-Type: text/html; charset=x-klingon', '', '<p>qapla</p>'].join('\r\n')],
    ['a 20 MB attachment', () => {
      const b64 = randomBytes(15 * 1024 * 1024).toString('base64').replace(/.{76}/g, '$&\r\n');
      return ['From: x@promo.test', 'Subject: big', 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="zz"', '', '--zz', 'Content-Type: text/plain', '', 'see attached', '--zz', 'Content-Type: application/octet-stream', 'Content-Transfer-Encoding: base64', 'Content-Disposition: attachment; filename="big.bin"', '', b64, '--zz--', ''].join('\r\n');
    }],
    ['a 1 MB single-line HTML part', () =>
      ['From: x@promo.test', 'Subject: wide', 'MIME-Version: 1.0', 'Content-Type: text/html; charset=utf-8', '', `<html><body>${'<div style="display:none"><a href="http://a.test/">www.b.test</a>'.repeat(16000)}</body></html>`, ''].join('\r\n')],
  ];
  for (const [name, build] of hostile) {
    it(`bad input: ${name} -> a verdict in bounded time, no crash`, async () => {
      const started = Date.now();
      const result = await sendMail({ port: haraka.port, from: 'x@promo.test', to: ['bob@example.com'], raw: build(), localAddress: '127.0.9.2', helo: 'mail.bank.test' });
      const seconds = (Date.now() - started) / 1000;
      assert.ok([250, 450, 451, 550].includes(result.code), `${result.code} ${result.response}`);
      assert.ok(seconds < 60, `took ${seconds} s`);
      assert.doesNotMatch(haraka.logs(), /CHECK_ERROR.*content|content\.scan failed/);
    });
  }

  it('Haraka is still serving after all that', async () => {
    const result = await sendMail({ port: haraka.port, from: 'statements@bank.test', to: ['customer999@example.com'], raw: letter(999, 'statements@bank.test'), localAddress: '127.0.9.1', helo: 'mail.bank.test' });
    assert.equal(result.code, 250, result.response);
  });
});
