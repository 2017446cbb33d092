// The shared message helpers every check reads headers through.
import assert from 'node:assert/strict';
import { createContext, fieldsPastIndex, fromMailboxes, headerBlockCut, headerMailboxes, headerValues, mailboxesOf, parseHeaderBlock, rawBody, setMessage, withFieldsWritten, withHeaderChanges, withoutHeaders } from '../lib/message';
import { IpSet } from '../lib/util/ip';

describe('message helpers', () => {
  it('fieldsPastIndex: the From:/Sender: fields past the first 1 MB of header, split as the index splits them; none when the block is not cut', () => {
    const padding = (n: number) => Array.from({ length: n }, (_, i) => `X-Pad-${i}: ${'a'.repeat(1000)}`).join('\r\n');
    const pad = padding(1000);
    const body = '\r\n\r\nFrom: body@example.com\r\n';
    assert.deepEqual(fieldsPastIndex(Buffer.from(`From: a@example.org\r\n${body}`), ['from']), []);
    // A folded name, a field folded across the cut, and a field after them; a From: in the body is no field.
    const straddle = 'X'.repeat(1024 * 1024 - pad.length);
    const raw = Buffer.from(`${pad}\r\nSender: "Board"\r\n ${straddle}\r\n <board@example.com>\r\nFROM\r\n : CEO\r\n\t<ceo@example.com>\r\nSubject: x${body}`);
    assert.ok(pad.length < 1024 * 1024 && raw.indexOf('<board@') > 1024 * 1024);
    const fields = fieldsPastIndex(raw, ['from', 'sender']);
    assert.deepEqual(fields.map((f) => [f.key, mailboxesOf([f.value]).map((m) => m.address)]), [['sender', ['board@example.com']], ['from', ['ceo@example.com']]]);
    // No blank line: the whole message is header.
    assert.deepEqual(fieldsPastIndex(Buffer.from(`${padding(1100)}\r\nFrom: ceo@example.com\r\n`), ['from']).map((f) => f.value), ['ceo@example.com']);
  });

  it('fieldsPastIndex: values decoded as UTF-8 as the index decodes them (folded names, bad bytes, CRLF and bare LF lines)', () => {
    const pad = Array.from({ length: 1100 }, (_, i) => `X-Pad-${i}: ${'a'.repeat(1000)}`).join('\r\n');
    const from = Buffer.concat([Buffer.from('From: "J\u00fcrgen\r\n M\u00fcller \u5f20'), Buffer.from([0xff, 0xc3]), Buffer.from('\n  \r\n\t" <j@example.com>\r\n\r\nbody')]);
    const fields = fieldsPastIndex(Buffer.concat([Buffer.from(`${pad}\r\n`), from]), ['from']);
    assert.deepEqual(fields.map((f) => f.value), ['"J\u00fcrgen M\u00fcller \u5f20\ufffd\ufffd " <j@example.com>']);
    assert.deepEqual(mailboxesOf(fields.map((f) => f.value)).map((m) => m.address), ['j@example.com']);
  });

  it('fieldsPastIndex: a body after a blank line written \\n\\r\\n (bare-LF header lines) is no header: its quoted From: lines are not claimed', () => {
    // mailauth (and Haraka) end the header at any LF, optional CR, LF: a 2 MB message whose header
    // lines end in bare LF and whose blank line is CRLF has a small header and a large body.
    const quoted = Array.from({ length: 1100 }, (_, i) => `> From: colleague${i}@example.com\r\n> ${'a'.repeat(1000)}\r\nFrom: colleague${i}@example.com\r\n`).join('');
    for (const sep of ['\n\r\n', '\n\n']) {
      const raw = Buffer.from(`From: list@lists.example.org\nSubject: digest${sep}${quoted}`);
      assert.deepEqual(fieldsPastIndex(raw, ['from', 'sender']), [], JSON.stringify(sep));
    }
  });

  it('the header ends where mailauth ends it (LF, optional CR, LF): the body starts right after each of \\r\\n\\r\\n, \\n\\n, \\n\\r\\n and \\r\\n\\n', () => {
    for (const [eol, sep] of [['\r\n', '\r\n\r\n'], ['\n', '\n\n'], ['\n', '\n\r\n'], ['\r\n', '\r\n\n']] as const) {
      const head = `From: list@a.example${eol}Subject: d${sep}`;
      const body = 'From: colleague@example.com\r\nX-Quoted: 1\r\n\r\nhello\r\n';
      const raw = Buffer.from(head + body);
      const what = JSON.stringify(sep);
      assert.deepEqual(parseHeaderBlock(raw), { headers: [{ key: 'from', name: 'From', value: 'list@a.example' }, { key: 'subject', name: 'Subject', value: 'd' }], complete: true }, what);
      assert.equal(rawBody(createContext({ ip: '192.0.2.1', raw })), body, what);
      // Fields removed and added stay in the header; the body is left byte for byte.
      assert.equal(withoutHeaders(raw, ['subject']).toString(), `From: list@a.example${eol}${sep.slice(eol.length)}${body}`, what);
      const changed = withHeaderChanges(raw, { add: [['X-Added', 'yes']], remove: ['subject'], putBack: [] }).toString();
      assert.ok(changed.endsWith(sep.slice(eol.length) + body), what);
      assert.deepEqual(parseHeaderBlock(Buffer.from(changed)).headers.map((h) => h.key).sort(), ['from', 'x-added'], what);
    }
  });

  it('a header whose fields end exactly at the 1 MB index limit is indexed whole for each separator: complete, not cut, nothing read past it; one byte more is cut', () => {
    // The limit bounds the fields' text; the last field's own line ending may fall past it.
    const M = 1024 * 1024;
    for (const [eol, sep] of [['\r\n', '\r\n\r\n'], ['\n', '\n\n'], ['\n', '\n\r\n'], ['\r\n', '\r\n\n']] as const) {
      for (const over of [-1, 0, 1]) {
        const from = 'From: ceo@example.com';
        const pad = `X-Pad: ${'a'.repeat(M + over - from.length - eol.length - 'X-Pad: '.length)}`;
        const raw = Buffer.from(`${pad}${eol}${from}${sep}From: body@example.org\r\n`);
        assert.equal(raw.indexOf(sep) - M, over);
        const what = `${JSON.stringify(sep)}, fields end ${over} byte(s) from the limit`;
        const ctx = createContext({ ip: '192.0.2.1', raw });
        const cut = over > 0;
        assert.equal(ctx.parse.ok, !cut, what);
        assert.equal(headerBlockCut(raw), cut, what);
        assert.deepEqual(headerValues(ctx, 'from'), [cut ? 'ceo@example.co' : 'ceo@example.com'], what);
        // Past the index: only a field the cut falls in, read whole; the body's From: never.
        assert.deepEqual(fieldsPastIndex(raw, ['from']).map((f) => f.value), cut ? ['ceo@example.com'] : [], what);
      }
    }
  });

  it('a message with no blank line (all header) is cut only when its fields run past the 1 MB limit: its final line ending is no part of a field', () => {
    const M = 1024 * 1024;
    for (const ending of ['', '\r\n', '\n', '\r']) {
      for (const over of [-1, 0, 1]) {
        const from = 'From: ceo@example.com';
        const pad = `X-Pad: ${'a'.repeat(M + over - from.length - 2 - 'X-Pad: '.length)}`;
        const raw = Buffer.from(`${pad}\r\n${from}${ending}`);
        assert.equal(raw.length - ending.length - M, over);
        const what = `ending ${JSON.stringify(ending)}, fields end ${over} byte(s) from the limit`;
        const cut = over > 0;
        assert.equal(headerBlockCut(raw), cut, what);
        assert.deepEqual(headerValues(createContext({ ip: '192.0.2.1', raw }), 'from'), [cut ? 'ceo@example.co' : 'ceo@example.com'], what);
        assert.deepEqual(fieldsPastIndex(raw, ['from']).map((f) => f.value), cut ? ['ceo@example.com'] : [], what);
      }
    }
  });

  it('an IPv4 client reported as IPv6 by a dual-stack socket is IPv4 in the context (reverse DNS, DNSBLs, rules, the row)', () => {
    for (const ip of ['::ffff:192.0.2.1', '::FFFF:c000:201', '0:0:0:0:0:ffff:192.0.2.1']) assert.equal(createContext({ ip }).ip, '192.0.2.1', ip);
    assert.equal(createContext({ ip: '2001:db8::1' }).ip, '2001:db8::1');
    assert.equal(createContext({ ip: '::1' }).ip, '::1');
  });

  it('IpSet: each family matches its own networks (::/0 is not every IPv4 client); IPv4 written as IPv6 is IPv4', () => {
    const v6all = new IpSet(['::/0']);
    assert.equal(v6all.has('192.0.2.1'), false);
    assert.equal(v6all.has('2001:db8::1'), true);
    assert.equal(new IpSet(['192.0.2.0/24']).has('::ffff:192.0.2.9'), true);
    assert.equal(new IpSet(['::ffff:192.0.2.1']).has('192.0.2.1'), true);
    assert.throws(() => new IpSet(['192.0.2.0/24/8']), /not an IP address or CIDR network/);
    // An IPv4-mapped network is that IPv4 network.
    assert.equal(new IpSet(['::ffff:192.0.2.0/120']).has('192.0.2.5'), true);
    assert.equal(new IpSet(['::ffff:192.0.2.0/120']).has('192.0.3.5'), false);
    assert.throws(() => new IpSet(['::ffff:0:0/95']), /IPv4-mapped network needs a prefix of 96 to 128/);
    assert.throws(() => new IpSet(['192.0.2.0/33']), /bad prefix length/);
  });

  it('parseHeaderBlock joins folded lines (blank ones dropped) and reads a field of 200,000 folds at once, not in quadratic time', function () {
    // " d" continues the line above it, which is no field: it never joins Subject (mailauth reads it so too).
    const { headers } = parseHeaderBlock(Buffer.from('Subject: a\r\n  b \r\n \t\r\n\tc\r\nbad line\r\n d\r\nTo: x@y.test\r\n\r\nbody'));
    assert.deepEqual(headers.map((h) => [h.key, h.value]), [['subject', 'a b c'], ['to', 'x@y.test']]);
    // Appending each fold to the value so far took 5 s for 100,000 folds and grows with the square:
    // a 0.8 MB bounce or feedback report would hold the event loop for most of a minute (200,000 folds: 20 s).
    // hang guard, not a performance test: typical 175ms; bench/hostile.ts times it against as many fields.
    this.timeout(10_000);
    const folds = 200_000;
    const hostile = parseHeaderBlock(Buffer.from(['X-Fold: a', ...Array<string>(folds).fill(' b'), 'To: x@y.test', '', ''].join('\r\n')));
    assert.equal(hostile.headers[0]!.value.length, 1 + 2 * folds);
    assert.equal(hostile.headers[1]!.value, 'x@y.test');
  });

  it('a header name padded with 150,000 blanks before its colon is read in linear time (parseHeaderBlock, withoutHeaders)', () => {
    assert.deepEqual(parseHeaderBlock(Buffer.from('Subject \t: a\r\n\r\n')).headers.map((h) => h.name), ['Subject'], 'blanks before the colon are not the name');
    // /[ \t]+$/ retried at every blank when more name followed (80,000: 6 s); mailward scan and learn have no line limit.
    const raw = Buffer.from(`Subject: x\r\nX${' '.repeat(150_000)}b: v\r\nTo: x@y.test\r\n\r\nbody`);
    let started = Date.now();
    const { headers } = parseHeaderBlock(raw);
    let ms = Date.now() - started;
    // hang guard, not a performance test: typical 1ms for both (bench/hostile.ts times them).
    assert.ok(ms < 3000, `parseHeaderBlock: ${ms} ms`);
    assert.deepEqual(headers.map((h) => h.key), ['subject', 'to'], 'a name with blanks inside is no name');
    started = Date.now();
    const kept = withoutHeaders(raw, ['To']);
    ms = Date.now() - started;
    assert.ok(ms < 3000, `withoutHeaders: ${ms} ms`);
    assert.equal(kept.length, raw.length - 'To: x@y.test\r\n'.length);
  });

  it('withoutHeaders keeps the first N fields of a name when asked, folded lines and all, and never moves the body (the last field too)', () => {
    const raw = Buffer.from('A: 1\r\nX: one\r\n two\r\nB: 2\r\nx: three\r\nX: four\r\n\r\nbody X: five\r\n');
    assert.equal(withoutHeaders(raw, ['x'], 1).toString(), 'A: 1\r\nX: one\r\n two\r\nB: 2\r\n\r\nbody X: five\r\n');
    assert.equal(withoutHeaders(raw, ['X']).toString(), 'A: 1\r\nB: 2\r\n\r\nbody X: five\r\n');
    assert.equal(withoutHeaders(Buffer.from('A: 1\nX: 2\n\nbody\n'), ['x']).toString(), 'A: 1\n\nbody\n');
  });

  it('withoutHeaders takes out every field parseHeaderBlock (and mailauth) reads under the name, and leaves the others reading as before', () => {
    // Each is read as the named field by parseHeaderBlock and mailauth: a forged verdict header a
    // held copy must not carry, or a From: auth must not hand mailauth twice.
    const cases: [string, string][] = [
      ['x-mailward-status', ' X-Mailward-Status: accept score=-20\r\nSubject: hi\r\n\r\nbody\r\n'], // the first line, indented
      ['x-mailward-status', 'Subject: hi\r\nX-Mailward-Status\f: accept score=-20\r\n\r\nbody\r\n'], // a form feed before the colon
      ['x-mailward-score', 'Subject: hi\r\nX-Mailward-Score\x0b\xa0: -20\r\nTo: a@b.test\r\n\r\nbody\r\n'], // a vertical tab, a 0xA0 byte
      ['x-mailward-status', 'Subject: hi\r\nX-Mailward-Status: reject\r\n\f accept score=-20\r\n\r\nbody\r\n'], // a form-feed continuation
      ['from', 'Subject: hi\r\nFrom\r\n : ceo@bank.example\r\nTo: a@b.test\r\n\r\nbody\r\n'], // the colon on a continuation line
      ['from', ' From: ceo@bank.example\nTo: a@b.test\n\nbody\n'],
    ];
    for (const [name, text] of cases) {
      const raw = Buffer.from(text, 'latin1');
      const before = parseHeaderBlock(raw).headers;
      assert.ok(before.some((h) => h.key === name), `${JSON.stringify(text)} has a ${name} field`);
      const out = withoutHeaders(raw, [name]);
      assert.deepEqual(parseHeaderBlock(out).headers, before.filter((h) => h.key !== name), JSON.stringify(text));
      assert.ok(out.toString('latin1').endsWith(text.slice(text.search(/\r?\n\r?\n/))), 'the body stays where it was');
    }
  });

  it('fromMailboxes: every mailbox of every From: header, groups flattened, names decoded', () => {
    const raw = 'From: x@attacker.test, "CEO" <CEO@Example.com>\r\nFrom: Board: =?utf-8?q?J=C3=BCrgen?= <j@example.com>;\r\nTo: a@b.test\r\n\r\nbody\r\n';
    assert.deepEqual(fromMailboxes(createContext({ ip: '192.0.2.1', raw })), [
      { name: '', address: 'x@attacker.test', written: 'x@attacker.test' },
      // The address as written is kept beside it: an upper-case I reads as l.
      { name: 'CEO', address: 'ceo@example.com', written: 'CEO@Example.com' },
      { name: 'Jürgen', address: 'j@example.com', written: 'j@example.com' },
    ]);
  });

  it('headerMailboxes: Reply-To: and Sender: read as mailboxesOf reads them, each name apart, and read again for a new message', () => {
    const raw = 'From: a@example.com\r\nReply-To: "Help" <Help@Partner.test>, b@c.test\r\nSender: s@list.test\r\n\r\nbody\r\n';
    const ctx = createContext({ ip: '192.0.2.1', raw });
    assert.deepEqual(headerMailboxes(ctx, 'Reply-To'), mailboxesOf(headerValues(ctx, 'reply-to')));
    assert.deepEqual(headerMailboxes(ctx, 'sender').map((m) => m.address), ['s@list.test']);
    assert.deepEqual(fromMailboxes(ctx).map((m) => m.address), ['a@example.com']);
    setMessage(ctx, 'From: a@example.com\r\nReply-To: other@d.test\r\n\r\nbody\r\n');
    assert.deepEqual(headerMailboxes(ctx, 'reply-to').map((m) => m.address), ['other@d.test']);
    assert.deepEqual(headerMailboxes(ctx, 'sender'), []);
  });

  it('withoutHeaders removes the named fields with their continuation lines, and keeps every other byte', () => {
    const raw = Buffer.from('X-Keep: 1\r\nX-Mailward-Status: accept\r\n\tforged\r\nx-mailward-score : -5\r\nSubject: S\xe9\r\n\r\nX-Mailward-Status: in the body\r\n', 'latin1');
    const out = withoutHeaders(raw, ['X-Mailward-Status', 'X-Mailward-Score']);
    assert.equal(out.toString('latin1'), 'X-Keep: 1\r\nSubject: S\xe9\r\n\r\nX-Mailward-Status: in the body\r\n');
    assert.equal(withoutHeaders(raw, []), raw);
    const headerless = Buffer.from('no header block at all');
    assert.equal(withoutHeaders(headerless, ['X-A']), headerless);
  });

  describe('withHeaderChanges (an MTA that writes the message itself)', () => {
    const changes = {
      remove: ['Authentication-Results'],
      add: [
        ['Authentication-Results', 'mx.example.com; spf=pass smtp.mailfrom=a@example.net'],
        ['Authentication-Results', 'other.example; dkim=pass header.d=example.net'],
      ] as [string, string][],
      putBack: [['Authentication-Results', 'other.example; dkim=pass header.d=example.net']] as [string, string][],
    };

    it('takes the removals out, puts ours on top below the extra fields and the put-backs at the end of the header', () => {
      const raw = Buffer.from('Authentication-Results: mx.example.com; spf=pass\r\nAuthentication-Results: other.example; dkim=pass header.d=example.net\r\nFrom: a@example.net\r\nSubject: hi\r\n\r\nAuthentication-Results: body\r\n');
      assert.equal(
        withHeaderChanges(raw, changes, [['X-Mailward-Ref', 'ABCDEFGHJK']]).toString(),
        'X-Mailward-Ref: ABCDEFGHJK\r\nAuthentication-Results: mx.example.com; spf=pass smtp.mailfrom=a@example.net\r\nFrom: a@example.net\r\nSubject: hi\r\nAuthentication-Results: other.example; dkim=pass header.d=example.net\r\n\r\nAuthentication-Results: body\r\n',
      );
    });

    it('every field of the header removed: the put-backs still end the header, the body is left byte for byte (each separator)', () => {
      for (const [eol, sep] of [['\r\n', '\r\n\r\n'], ['\n', '\n\n'], ['\n', '\n\r\n'], ['\r\n', '\r\n\n']] as const) {
        const body = 'Hello\r\n\r\nFrom: quoted@example.org\r\n';
        const raw = Buffer.from(`Authentication-Results: mx.example.com; spf=pass${eol}Authentication-Results: other.example; dkim=pass header.d=example.net${sep}${body}`);
        const what = JSON.stringify(sep);
        const out = withHeaderChanges(raw, changes, [['X-Mailward-Ref', 'R']]);
        assert.equal(
          out.toString(),
          `X-Mailward-Ref: R\r\nAuthentication-Results: mx.example.com; spf=pass smtp.mailfrom=a@example.net\r\nAuthentication-Results: other.example; dkim=pass header.d=example.net\r\n${sep.slice(eol.length)}${body}`,
          what,
        );
        assert.equal(rawBody(createContext({ ip: '192.0.2.1', raw: out })), body, what);
        // The quarantine's held copy is written by the same function, without a field on top.
        const held = withFieldsWritten(raw, ['Authentication-Results'], [], [['Authentication-Results', 'other.example; dkim=pass header.d=example.net']]);
        assert.equal(held.toString(), `Authentication-Results: other.example; dkim=pass header.d=example.net\r\n${sep.slice(eol.length)}${body}`, what);
      }
    });

    it('a message of header fields only: its fields are removed too, the put-backs go at the end of its header', () => {
      const raw = Buffer.from('From: a@example.net\nAuthentication-Results: mx.example.com; spf=pass\n');
      assert.equal(
        withHeaderChanges(raw, changes).toString(),
        'Authentication-Results: mx.example.com; spf=pass smtp.mailfrom=a@example.net\r\nFrom: a@example.net\nAuthentication-Results: other.example; dkim=pass header.d=example.net\r\n\n',
      );
      assert.equal(
        withHeaderChanges(Buffer.from('From: a@example.net'), { add: [], remove: ['From'], putBack: [] }, [['X-Mailward-Ref', 'R']]).toString(),
        'X-Mailward-Ref: R\r\n\r\n',
      );
    });
  });
});
