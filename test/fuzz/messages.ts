// Generator of malformed messages for the fuzz test: seeded, so a failing case
// is reproduced from its seed alone (`fuzzCase(seed)`), and each case names the
// mutations it applied.
import type { ContextInit } from '../../lib/message';

/** mulberry32: small, fast, good enough to spread cases; same seed -> same stream. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
  bytes(n: number): Buffer {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) out[i] = Math.floor(this.next() * 256);
    return out;
  }
  word(min = 2, max = 10): string {
    const letters = 'abcdefghijklmnopqrstuvwxyz';
    let w = '';
    for (let i = this.int(min, max); i > 0; i--) w += letters[this.int(0, 25)];
    return w;
  }
  words(n: number): string {
    return Array.from({ length: n }, () => this.word()).join(' ');
  }
}

export interface FuzzCase {
  seed: number;
  mutations: string[];
  init: ContextInit & { raw: Buffer };
}

const CHARSETS = ['utf-8', 'UTF-8', 'iso-8859-1', 'windows-1252', 'x-unknown-charset', 'utf-7', 'iso-2022-jp', 'gb2312', 'koi8-r', '', '"', 'utf-16', 'utf-32le', 'us-ascii', 'x-mac-roman', 'ks_c_5601-1987', '\u0000', 'a'.repeat(300)];
const ENCODINGS = ['7bit', '8bit', 'binary', 'base64', 'quoted-printable', 'x-uuencode', 'BASE64', 'x-bogus', ''];
const SPAMMY = ['FREE', 'viagra', 'winner', 'claim your prize', 'click here', 'unsubscribe', 'limited offer', '$$$', 'bitcoin', 'urgent'];

const CRLF = '\r\n';

function encodedWord(rng: Rng): string {
  return rng.pick([
    `=?${rng.pick(CHARSETS)}?Q?${rng.word()}=ZZ=?=`,
    `=?utf-8?B?${Buffer.from(rng.words(3)).toString('base64').slice(0, rng.int(0, 12))}@@?=`,
    '=?utf-8?B??=',
    '=??Q?x?=',
    `=?utf-8*en?Q?${rng.word()}?=`,
    `=?iso-2022-jp?B?${rng.bytes(12).toString('base64')}?=`,
    `=?utf-8?Q?${'=E2=80'.repeat(rng.int(1, 50))}?=`,
    `=?${'x'.repeat(rng.int(50, 500))}?Q?a?=`,
  ]);
}

function address(rng: Rng): string {
  return rng.pick([
    `${rng.word()}@${rng.word()}.example.net`,
    `"${rng.words(2)}" <${rng.word()}@example.net>`,
    `${encodedWord(rng)} <${rng.word()}@example.net>`,
    '<<<@@>>>',
    '@',
    '',
    'undisclosed-recipients:;',
    `group: ${rng.word()}@a.test, ${rng.word()}@b.test;`,
    `${rng.word()}@[127.0.0.1]`,
    `"unterminated <${rng.word()}@example.net>`,
    `${rng.word()}@${'sub.'.repeat(rng.int(10, 80))}example.net`,
    `<${rng.word()}@example.net`,
    `${rng.word()}@例え.テスト`,
    `${rng.word()}@example.net, ${rng.word()}@example.org, ${rng.word()}`,
    'postmaster@example.com',
  ]);
}

function baseHeaders(rng: Rng, from: string): string[] {
  const h = [
    `From: ${from}`,
    `To: ${rng.chance(0.8) ? 'bob@example.com' : address(rng)}`,
    `Subject: ${rng.chance(0.2) ? encodedWord(rng) : rng.chance(0.2) ? rng.pick(SPAMMY).toUpperCase() + '!!!' : rng.words(rng.int(0, 8))}`,
    `Date: ${rng.chance(0.8) ? new Date(1_700_000_000_000 + rng.int(0, 1e9)).toUTCString() : rng.pick(['yesterday', '', 'Mon, 99 Foo 20xx 99:99:99 +9999', '0'])}`,
    `Message-ID: ${rng.chance(0.9) ? `<${rng.word()}.${rng.int(0, 1e6)}@example.net>` : rng.pick(['', '<>', '<<@>>', 'no-brackets'])}`,
  ];
  if (rng.chance(0.7)) h.push('MIME-Version: 1.0');
  return h;
}

function textBody(rng: Rng, lines: number): string {
  const out: string[] = [];
  for (let i = 0; i < lines; i++) out.push(rng.chance(0.1) ? rng.pick(SPAMMY) : rng.words(rng.int(0, 14)));
  if (rng.chance(0.3)) out.push(`http://${rng.word()}.example.net/${rng.word()}?id=${rng.int(0, 1e9)}`);
  return out.join(CRLF);
}

function htmlBody(rng: Rng): string {
  return rng.pick([
    `<html><body><p>${rng.words(20)}</p><a href="http://evil.example/x">https://bank.example.com/</a></body></html>`,
    `<div style="display:none">${rng.words(200)}</div><p>${rng.words(3)}</p>`,
    `<font color="#ffffff" style="color:#fff;background:#fff">${rng.words(50)}</font>`,
    '<'.repeat(rng.int(1, 5000)),
    '<div>'.repeat(rng.int(100, 5000)) + rng.words(5),
    `<a href="${'javascript:'.repeat(rng.int(1, 100))}">x</a><img src=x onerror=${rng.word()}>`,
    `<style>${'a{'.repeat(rng.int(10, 2000))}</style>${rng.words(5)}`,
    `<p title="${'"'.repeat(rng.int(1, 100))}>${rng.words(10)}<!-- unterminated comment ${rng.words(10)}`,
    `<html><body>pa&#8203;yp&#x200B;al v&#1110;agra &#xZZ; &#99999999999; &amp</body>`,
    `<table>${'<tr><td>'.repeat(rng.int(1, 1000))}${rng.words(30)}`,
    `<a href="http://${'x'.repeat(rng.int(100, 3000))}.test/">http://${rng.word()}.example.com</a>`,
  ]);
}

function encodePart(rng: Rng, text: string, cte: string): string {
  if (cte.toLowerCase() === 'base64') {
    const b64 = Buffer.from(text).toString('base64');
    return rng.pick([
      b64.replace(/(.{76})/g, `$1${CRLF}`),
      b64.slice(0, rng.int(0, b64.length)) + '!!**', // truncated and invalid characters
      b64.replace(/[A-M]/g, '\u0000'),
      `${b64}====${b64}`,
      '=',
    ]);
  }
  if (cte.toLowerCase() === 'quoted-printable') {
    return rng.pick([text.replace(/ /g, '=20'), `${text}=`, `${text}=Z${rng.word()}=`, `=${CRLF}`.repeat(rng.int(1, 100)) + text, `${text}=E2=80=8`]);
  }
  return text;
}

function leafPart(rng: Rng): string {
  const cte = rng.pick(ENCODINGS);
  const html = rng.chance(0.4);
  const type = rng.pick([html ? 'text/html' : 'text/plain', 'application/octet-stream', 'image/png', 'message/rfc822', 'message/delivery-status', 'text/calendar', 'text/', '/', 'application/pdf']);
  const lines = [`Content-Type: ${type}; charset=${rng.pick(CHARSETS)}${rng.chance(0.2) ? `; name="${encodedWord(rng)}"` : ''}`];
  if (cte) lines.push(`Content-Transfer-Encoding: ${cte}`);
  if (rng.chance(0.2)) lines.push(`Content-Disposition: ${rng.pick(['attachment', 'inline', 'attachment; filename*=utf-8\'\'%ZZ%', `attachment; filename="${'a'.repeat(rng.int(1, 2000))}.exe"`, ';;;'])}`);
  let content = html ? htmlBody(rng) : textBody(rng, rng.int(0, 20));
  if (type === 'message/rfc822' && rng.chance(0.7)) content = [...baseHeaders(rng, address(rng)), '', textBody(rng, 3)].join(CRLF);
  if (type === 'message/delivery-status') content = `Reporting-MTA: dns; ${rng.word()}${CRLF}${CRLF}Final-Recipient: ${rng.pick(['rfc822; bob@example.com', '', ';;;'])}${CRLF}Action: ${rng.pick(['failed', '', 'x'])}${CRLF}Status: ${rng.pick(['5.1.1', '9.9.9', ''])}`;
  return [...lines, '', encodePart(rng, content, cte)].join(CRLF);
}

function multipart(rng: Rng, depth: number): { header: string; body: string } {
  const boundary = rng.pick([`b${rng.word()}`, `"${rng.word()}"`, '', '"', `=_${'x'.repeat(rng.int(60, 300))}`, `${rng.word()} ${rng.word()}`, '--']);
  const declared = boundary.replace(/^"|"$/g, '');
  const used = rng.chance(0.25) ? rng.pick([`${declared}x`, declared.toUpperCase(), rng.word(), declared.slice(0, -1)]) : declared;
  const subtype = rng.pick(['mixed', 'alternative', 'related', 'report; report-type=delivery-status', 'signed', 'x-unknown', '']);
  const parts: string[] = [];
  const n = depth > 0 ? 1 : rng.int(0, 5);
  for (let i = 0; i < n; i++) parts.push(rng.chance(0.1) ? '' : leafPart(rng));
  let body = rng.chance(0.2) ? `preamble ${rng.words(3)}${CRLF}` : '';
  if (depth > 0) {
    const inner = multipart(rng, depth - 1);
    parts.push(`Content-Type: ${inner.header}${CRLF}${CRLF}${inner.body}`);
  }
  for (const p of parts) body += `--${used}${CRLF}${p}${CRLF}`;
  const close = rng.pick([`--${used}--${CRLF}`, '', `--${used}${CRLF}`, `--${used}-${CRLF}`, `--${used}--`]);
  body += close;
  if (rng.chance(0.1)) body += `epilogue ${rng.words(5)}`;
  return { header: `multipart/${subtype}; boundary=${boundary}`, body };
}

const DKIM_REAL =
  'v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.net; s=sel1; t=1700000000; h=from:to:subject:date:message-id; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZSBidXQgaXQgaXMgYmFzZTY0IGVuY29kZWQgc28gcGFyc2VycyByZWFkIGl0';

function dkimHeaders(rng: Rng): string[] {
  const cut = DKIM_REAL.slice(0, rng.int(0, DKIM_REAL.length));
  const sig = rng.pick([
    cut,
    `${cut};;;;`,
    DKIM_REAL.replace('a=rsa-sha256', `a=${rng.word()}`),
    DKIM_REAL.replace('d=example.net', 'd='),
    DKIM_REAL.replace('s=sel1', `s=${'x'.repeat(rng.int(100, 400))}`),
    DKIM_REAL.replace('h=from:to:subject:date:message-id', 'h='),
    DKIM_REAL.replace('bh=', 'bh=!!!'),
    `v=1; l=${rng.pick(['-1', '99999999999999999999', 'x', '0'])}; ${DKIM_REAL.slice(5)}`,
    `${DKIM_REAL}; x=${rng.int(-1e9, 1e9)}`,
    rng.bytes(rng.int(1, 200)).toString('latin1'),
  ]);
  const out = [`DKIM-Signature: ${sig}`];
  if (rng.chance(0.3)) out.push(`ARC-Seal: i=${rng.pick(['1', '0', '99', 'x'])}; a=rsa-sha256; cv=${rng.pick(['none', 'pass', 'fail', ''])}; d=fwd.test; s=a; b=${rng.word()}`);
  if (rng.chance(0.3)) out.push(`ARC-Message-Signature: i=1; ${cut}`);
  if (rng.chance(0.3)) out.push(`ARC-Authentication-Results: i=${rng.pick(['1', '', '-5'])}; ${rng.words(3)}`);
  if (rng.chance(0.3)) out.push(`Authentication-Results: ${rng.pick(['mx.example.com; dkim=pass', ';', 'x; spf=pass smtp.mailfrom=@'])}`);
  return out;
}

function toBytes(text: string): Buffer {
  // Keep raw 8-bit bytes as they are unless the text holds characters beyond Latin-1.
  return /[^\x00-\xff]/.test(text) ? Buffer.from(text, 'utf8') : Buffer.from(text, 'latin1');
}

type Mutation = (rng: Rng, m: Draft) => void;

interface Draft {
  headers: string[];
  body: string;
  /** Replaces the whole message with these bytes when set (byte-level mutations). */
  raw?: Buffer;
  separator: string;
  eol: string;
}

const MUTATIONS: Record<string, Mutation> = {
  brokenMime(rng, m) {
    const mp = multipart(rng, rng.int(0, 3));
    m.headers.push(`Content-Type: ${mp.header}`);
    m.body = mp.body;
  },
  deepNesting(rng, m) {
    // Mostly beyond postal-mime's nesting limit (50), sometimes just under it.
    const depth = rng.chance(0.3) ? rng.int(40, 55) : rng.int(60, 400);
    let body = textBody(rng, 2);
    let header = 'text/plain';
    for (let i = 0; i < depth; i++) {
      const b = `n${i}`;
      body = `--${b}${CRLF}Content-Type: ${header}${CRLF}${CRLF}${body}${CRLF}--${b}--${CRLF}`;
      header = `multipart/mixed; boundary="${b}"`;
    }
    m.headers.push(`Content-Type: ${header}`);
    m.body = body;
  },
  badEncoding(rng, m) {
    const cte = rng.pick(['base64', 'quoted-printable', 'x-bogus', 'base64, base64', '']);
    m.headers.push(`Content-Type: text/plain; charset=${rng.pick(CHARSETS)}`, `Content-Transfer-Encoding: ${cte}`);
    m.body = encodePart(rng, m.body || textBody(rng, 5), cte.startsWith('base64') ? 'base64' : cte);
  },
  badCharset(rng, m) {
    m.headers.push(`Content-Type: text/${rng.pick(['plain', 'html'])}; charset=${rng.pick(CHARSETS)}`);
    m.headers.push(`Subject: ${encodedWord(rng)} ${encodedWord(rng)}`);
    const bad = rng.pick([Buffer.from([0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28, 0xa1, 0xf0, 0x28, 0x8c, 0xbc]), Buffer.from([0xff, 0xfe, 0x00, 0x41]), Buffer.from([0x1b, 0x24, 0x42, 0x30, 0x21, 0x1b])]);
    m.body += bad.toString('latin1').repeat(rng.int(1, 20));
  },
  nulBytes(rng, m) {
    const n = rng.int(1, 50);
    for (let i = 0; i < n; i++) {
      if (rng.chance(0.5) && m.headers.length) {
        const j = rng.int(0, m.headers.length - 1);
        const h = m.headers[j]!;
        const at = rng.int(0, h.length);
        m.headers[j] = `${h.slice(0, at)}\u0000${h.slice(at)}`;
      } else {
        const at = rng.int(0, m.body.length);
        m.body = `${m.body.slice(0, at)}\u0000${m.body.slice(at)}`;
      }
    }
  },
  enormousHeaders(rng, m) {
    const kind = rng.int(0, 3);
    if (kind === 0) m.headers.push(`X-Long: ${'a'.repeat(rng.int(10_000, 300_000))}`);
    else if (kind === 1) for (let i = rng.int(1000, 6000); i > 0; i--) m.headers.push(`X-Many-${i}: ${rng.word()}`);
    else if (kind === 2) m.headers.push(`Received: ${Array.from({ length: rng.int(500, 5000) }, () => `from ${rng.word()}`).join(`${CRLF}\t`)}`);
    else m.headers.push(`To: ${Array.from({ length: rng.int(500, 5000) }, () => `${rng.word()}@example.com`).join(', ')}`);
  },
  headerBlockOver1MB(rng, m) {
    m.headers.push(`X-Huge: ${'h'.repeat(1024 * 1024 + rng.int(1, 4096))}`);
  },
  truncatedDkim(rng, m) {
    m.headers.unshift(...dkimHeaders(rng));
  },
  hugeLine(rng, m) {
    const size = rng.int(64 * 1024, 512 * 1024);
    m.body = rng.chance(0.5) ? rng.words(Math.floor(size / 7)) : `<html><body>${'<a href="http://x.test/">y</a>'.repeat(Math.floor(size / 30))}</body></html>`;
    if (rng.chance(0.5)) m.headers.push('Content-Type: text/html; charset=utf-8');
  },
  eightBitGarbage(rng, m) {
    const garbage = rng.bytes(rng.int(1, 4000)).toString('latin1');
    if (rng.chance(0.5)) m.body += garbage;
    else m.headers.push(`X-Garbage: ${garbage.replace(/[\r\n]/g, ' ')}`);
    if (rng.chance(0.3)) m.headers.push(`${rng.bytes(rng.int(1, 30)).toString('latin1').replace(/[\r\n:]/g, 'x')}: value`);
  },
  noSeparator(rng, m) {
    m.separator = rng.pick(['', CRLF.slice(1), ' ', '\r']);
  },
  headersOnly(rng, m) {
    m.body = '';
    m.separator = rng.pick(['', CRLF]);
  },
  bodyOnly(rng, m) {
    m.headers = [];
    m.separator = rng.pick(['', CRLF]);
  },
  empty(_rng, m) {
    m.raw = Buffer.alloc(0);
  },
  lineEndings(rng, m) {
    m.eol = rng.pick(['\n', '\r', '\r\r\n', '\n\r']);
  },
  foldingAbuse(rng, m) {
    m.headers.unshift(` leading continuation ${rng.word()}`, `\t${rng.word()}`);
    m.headers.push(`Subject:${CRLF} ${CRLF} ${CRLF}\t`, `:no-name`, `Bad Name With Spaces: x`, `X-Empty:`, `From:`);
  },
  duplicateHeaders(rng, m) {
    for (let i = rng.int(2, 30); i > 0; i--) m.headers.push(`${rng.pick(['From', 'Subject', 'Message-ID', 'Content-Type', 'Date', 'Reply-To', 'Return-Path', 'Sender', 'List-Unsubscribe'])}: ${rng.chance(0.5) ? address(rng) : rng.words(2)}`);
  },
  bounce(rng, m) {
    m.headers = m.headers.filter((h) => !/^(from|subject|content-type):/i.test(h));
    m.headers.push(`From: ${rng.pick(['MAILER-DAEMON@example.net', 'Mail Delivery System <mailer-daemon@mx.example.net>', ''])}`, `Subject: ${rng.pick(['Undelivered Mail Returned to Sender', 'failure notice', 'Delivery Status Notification (Failure)', ''])}`);
    const mp = multipart(rng, rng.int(0, 1));
    m.headers.push(`Content-Type: multipart/report; report-type=delivery-status; boundary=${rng.pick(['b1', '', '"'])}`);
    m.body = `--b1${CRLF}Content-Type: text/plain${CRLF}${CRLF}${rng.words(10)}${CRLF}--b1${CRLF}Content-Type: message/rfc822${CRLF}${CRLF}${rng.pick([`X-Mailward-Ref: ${rng.word()}${CRLF}Message-ID: <${rng.word()}@example.com>${CRLF}${CRLF}x`, mp.body, ''])}${rng.chance(0.5) ? `${CRLF}--b1--` : ''}`;
  },
  html(rng, m) {
    m.headers.push(`Content-Type: text/html; charset=${rng.pick(CHARSETS)}`);
    m.body = htmlBody(rng);
  },
  byteFlips(rng, m) {
    const raw = render(m);
    for (let i = rng.int(1, 40); i > 0; i--) raw[rng.int(0, Math.max(0, raw.length - 1))] = rng.int(0, 255);
    m.raw = raw;
  },
  truncate(rng, m) {
    const raw = render(m);
    m.raw = raw.subarray(0, rng.int(0, raw.length));
  },
  spliced(rng, m) {
    const raw = render(m);
    const a = rng.int(0, raw.length);
    const b = rng.int(0, raw.length);
    m.raw = Buffer.concat([raw.subarray(0, Math.max(a, b)), raw.subarray(Math.min(a, b))]);
  },
  unicodeTricks(rng, m) {
    m.body += ` p\u0430ypal \u200bfree\u200b m\u043eney ${'\u202e'.repeat(rng.int(1, 10))} \ud800 ${'\u0301'.repeat(rng.int(1, 500))}`;
    m.headers.push(`Subject: \u0440\u0430ypal ${'\u200b'.repeat(rng.int(1, 50))} ${rng.word()}`);
  },
  gtube(_rng, m) {
    m.body += `${CRLF}XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X${CRLF}`;
  },
};

export const MUTATION_NAMES = Object.keys(MUTATIONS);

/** Mutations that produce large messages: drawn rarely, so a run of 10,000 stays fast. */
const HEAVY = new Set(['hugeLine', 'headerBlockOver1MB', 'enormousHeaders', 'deepNesting']);
const LIGHT_NAMES = MUTATION_NAMES.filter((n) => !HEAVY.has(n));
const HEAVY_NAMES = MUTATION_NAMES.filter((n) => HEAVY.has(n));

function render(m: Draft): Buffer {
  if (m.raw) return m.raw;
  const text = m.headers.join(CRLF) + CRLF + m.separator + m.body;
  return toBytes(m.eol === CRLF ? text : text.replace(/\r\n/g, m.eol));
}

const IPS = ['192.0.2.1', '198.51.100.7', '203.0.113.9', '127.0.0.2', '10.0.0.1', '::1', '2001:db8::1', '::ffff:192.0.2.5', 'fe80::1', '0.0.0.0', '255.255.255.255'];
const HELOS = ['mail.example.net', '', 'localhost', '[192.0.2.1]', '[2001:db8::1]', 'x'.repeat(300), 'mx.example.com', '..', 'unicode-ü.test', '-bad-.test', '1.2.3.4'];

/** The case for one seed: a base message plus 1-3 mutations, and an envelope. */
export function fuzzCase(seed: number): FuzzCase {
  const rng = new Rng(seed);
  const from = address(rng);
  const draft: Draft = { headers: baseHeaders(rng, from), body: textBody(rng, rng.int(0, 30)), separator: CRLF, eol: CRLF };
  const mutations: string[] = [];
  for (let i = rng.int(1, 3); i > 0; i--) {
    const name = rng.chance(0.015) ? rng.pick(HEAVY_NAMES) : rng.pick(LIGHT_NAMES);
    mutations.push(name);
    MUTATIONS[name]!(rng, draft);
  }
  const mailFrom = rng.pick(['', 'alice@example.net', `${rng.word()}@example.net`, 'bounce+x=y@example.org', `${rng.word()}@${rng.word()}.test`, '<>', '@', 'a@b@c', 'MAILER-DAEMON@example.net']);
  const rcptTo = rng.chance(0.9) ? ['bob@example.com'] : rng.pick([[], ['bob@example.com', 'trap@example.com', 'x@example.org'], ['"quoted local"@example.com'], ['postmaster']]);
  return {
    seed,
    mutations,
    init: {
      ip: rng.pick(IPS),
      helo: rng.pick(HELOS),
      ptr: rng.pick([undefined, null, 'mail.example.net', 'dynamic-1-2-3-4.isp.test', '']),
      localHostname: 'mx.example.com',
      relaying: rng.chance(0.05),
      authUser: rng.chance(0.05) ? rng.word() : undefined,
      mailFrom,
      rcptTo,
      raw: render(draft),
    },
  };
}
