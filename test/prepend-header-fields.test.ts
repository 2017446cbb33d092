import assert from 'node:assert/strict';
import { createContext, setMessage } from '../lib/message';
import { applyHeaderChanges, prependHeaderFields } from '../plugins/shared/adapter';
import type { HarakaTransaction } from '../plugins/shared/haraka';
import type { MailwardState } from '../plugins/shared/state';

// haraka-email-message's Header (no type declarations): the header list Haraka's message stream delivers.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Header } = require('haraka-email-message') as {
  Header: new () => { parse(lines: string[]): void; add(name: string, value: string): void; add_end(name: string, value: string): void; remove(name: string): void; header_list: string[] };
};

function transaction(lines: string[]) {
  const header = new Header();
  header.parse(lines);
  // Haraka's Transaction: add_leading_header is Header.add, add_header is Header.add_end.
  const txn = { header, add_leading_header: (n: string, v: string) => header.add(n, v), add_header: (n: string, v: string) => header.add_end(n, v), remove_header: (n: string) => header.remove(n) } as unknown as HarakaTransaction;
  const ctx = createContext({ ip: '192.0.2.1' });
  setMessage(ctx, `${lines.join('').replace(/\r?\n/g, '\r\n')}\r\nbody\r\n`);
  const state = { ctx, addedOnTop: [], putBack: [], appliedHeaders: 0, appliedRemovals: 0 } as unknown as MailwardState;
  return { txn, state, list: header.header_list };
}

/** The header block as a reader takes it from the delivered copy: up to the first empty line. */
function deliveredBlock(list: string[]): string {
  const text = list.map((h) => h.replace(/\r?\n/g, '\r\n')).join('');
  const end = text.search(/(?:^|\r\n)\r\n/);
  return end < 0 ? text : text.slice(0, end);
}

describe('prependHeaderFields: mailward\'s fields on top of Haraka\'s header list', () => {
  it('puts them above an entry that starts with an empty line (a bare CR), where an appended field would be body', () => {
    const { txn, state, list } = transaction(['Subject: hi\n', '\rX-Folded: x\n', 'From: a@example.com\n']);
    txn.add_header('X-Appended', 'lost');
    prependHeaderFields(state, txn, [['Authentication-Results', 'mx.example.com; spf=pass smtp.mailfrom=a@example.com']]);
    const block = deliveredBlock(list);
    assert.doesNotMatch(block, /X-Appended/, 'what Haraka appends after the cut is body: the defect');
    assert.match(block, /^Authentication-Results: mx\.example\.com; spf=pass/);
    assert.match(block, /\r\nSubject: hi$/);
  });

  it('keeps the order of one call; a later call goes above an earlier one (the latest on top, as trace fields)', () => {
    const { txn, state, list } = transaction(['Received: from a by b\n', 'Subject: hi\n']);
    prependHeaderFields(state, txn, [['Authentication-Results', 'mx.example.com; none'], ['Received-SPF', 'none']]);
    prependHeaderFields(state, txn, []);
    prependHeaderFields(state, txn, [['X-Mailward-Score', '0'], ['X-Mailward-Status', 'accept score=0'], ['X-Mailward-Ref', 'ABCDEFGHJK']]);
    const names = list.map((h) => h.slice(0, h.indexOf(':')));
    assert.deepEqual(names, ['X-Mailward-Score', 'X-Mailward-Status', 'X-Mailward-Ref', 'Authentication-Results', 'Received-SPF', 'Received', 'Subject']);
    // The held copy is built from this record: the same fields in the same order as on the delivered copy.
    assert.deepEqual(
      state.addedOnTop.map(([name, written]) => `${name}: ${written}\n`),
      list.slice(0, 5),
    );
  });

  it('writes a long value folded (lines <= 78 octets), as the held copy records it', () => {
    const { txn, state, list } = transaction(['Subject: hi\n']);
    const value = `mx.example.com; ${Array.from({ length: 12 }, (_, i) => `dkim=pass header.i=@d${i}.example`).join(' ')}`;
    prependHeaderFields(state, txn, [['Authentication-Results', value]]);
    const lines = list[0]!.split(/\r?\n/).filter(Boolean);
    assert.ok(lines.length > 1, 'folded');
    for (const line of lines) assert.ok(Buffer.byteLength(line) <= 78, line);
    assert.equal(`Authentication-Results: ${state.addedOnTop[0]![1]}\n`, list[0]);
  });

  it('puts a sender\'s field a check removed by name and put back at the end, where it went before, not on top as ours', () => {
    // auth takes every Authentication-Results out when one claims our name and puts other hosts' back: on top they
    // would read as added at our boundary, above our Received.
    const { txn, state, list } = transaction([
      'Received: from relay.other.example by mx.example.com\n',
      'Authentication-Results: other.example; spf=pass smtp.mailfrom=a@other.example\n',
      'Authentication-Results: mx.example.com; dkim=pass FORGED\n',
      'Subject: hi\n',
    ]);
    state.ctx.headerChanges.remove.push('Authentication-Results');
    state.ctx.headerChanges.add.push(['Authentication-Results', 'other.example; spf=pass smtp.mailfrom=a@other.example']);
    state.ctx.headerChanges.putBack.push(['Authentication-Results', 'other.example; spf=pass smtp.mailfrom=a@other.example']);
    state.ctx.headerChanges.add.push(['Authentication-Results', 'mx.example.com; spf=none smtp.mailfrom=a@other.example']);
    applyHeaderChanges(state, txn);
    assert.deepEqual(list, [
      'Authentication-Results: mx.example.com; spf=none smtp.mailfrom=a@other.example\n',
      'Received: from relay.other.example by mx.example.com\n',
      'Subject: hi\n',
      'Authentication-Results: other.example; spf=pass smtp.mailfrom=a@other.example\n',
    ]);
    assert.deepEqual(state.addedOnTop, [['Authentication-Results', 'mx.example.com; spf=none smtp.mailfrom=a@other.example']]);
    assert.deepEqual(state.putBack, [['Authentication-Results', 'other.example; spf=pass smtp.mailfrom=a@other.example']]);
  });

  it('puts ours on top when a sender\'s forged field in our name carries exactly its value', () => {
    // The sender can compute our field (SPF, DKIM, DMARC of its own message): the value alone does not tell the
    // sender's field from ours, the check's put-back list does.
    const ours = 'mx.example.com; spf=pass smtp.mailfrom=a@other.example';
    const { txn, state, list } = transaction(['Received: from relay.other.example by mx.example.com\n', `Authentication-Results: ${ours}\n`, 'Subject: hi\n']);
    state.ctx.headerChanges.remove.push('Authentication-Results');
    state.ctx.headerChanges.add.push(['Authentication-Results', ours]);
    applyHeaderChanges(state, txn);
    assert.deepEqual(list, [`Authentication-Results: ${ours}\n`, 'Received: from relay.other.example by mx.example.com\n', 'Subject: hi\n']);
    assert.deepEqual(state.addedOnTop, [['Authentication-Results', ours]]);
    assert.deepEqual(state.putBack, []);
  });
});
