import assert from 'node:assert/strict';
import { removeHeaderFields, type HarakaTransaction } from '../plugins/shared/haraka';

// haraka-email-message's Header (no type declarations): the header list Haraka's message stream delivers.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Header } = require('haraka-email-message') as { Header: new () => { parse(lines: string[]): void; remove(name: string): void; header_list: string[] } };

function transaction(lines: string[]) {
  const header = new Header();
  header.parse(lines);
  const txn = { header, remove_header: (name: string) => header.remove(name) } as unknown as HarakaTransaction;
  return { txn, list: header.header_list };
}

describe('removeHeaderFields on Haraka\'s header list', () => {
  it('takes a form-feed continuation with a field Haraka\'s own remove_header drops', () => {
    // For mailauth and mailward "\f..." continues the forged field; left behind, it joined Subject in the delivered copy.
    const { txn, list } = transaction(['Subject: hi\n', 'X-Mailward-Score: -100\n', '\fX-Stranded: yes\n', 'To: b@example.com\n']);
    removeHeaderFields(txn, ['X-Mailward-Score']);
    assert.deepEqual(list, ['Subject: hi\n', 'To: b@example.com\n']);
  });

  it('keeps an entry that starts with an empty line (a bare CR): the header block ends there', () => {
    const { txn, list } = transaction(['Subject: hi\n', 'X-Mailward-Score : -100\n', '\rX-Folded: x\n', 'From: ceo@example.com\n']);
    removeHeaderFields(txn, ['X-Mailward-Score']);
    assert.deepEqual(list, ['Subject: hi\n', '\r\n X-Folded: x\n', 'From: ceo@example.com\n']);
  });
});
