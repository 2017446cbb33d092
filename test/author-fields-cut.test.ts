// The From: field the 1 MB header index cuts short: counted once, at every offset around the cut.
import assert from 'node:assert/strict';
import { authorFields } from '../lib/checks/auth/from';
import { createContext } from '../lib/message';
import { MAX_HEADER_BYTES } from '../lib/mime/header-block';

/** Header lines of exactly `length` bytes (each ending in CRLF). */
function padding(length: number): string {
  const lines: string[] = [];
  let left = length;
  for (let i = 0; left > 0; i++) {
    const size = left >= 2000 ? 1000 : left;
    const head = `X-Pad-${i}: `;
    lines.push(`${head}${'a'.repeat(size - head.length - 2)}\r\n`);
    left -= size;
  }
  return lines.join('');
}

/** A message whose header puts `field`'s byte at `mark` exactly at MAX_HEADER_BYTES + offset. */
function withFieldAt(field: string, mark: number, offset: number, above = ''): Buffer {
  const pad = padding(MAX_HEADER_BYTES + offset - mark - above.length);
  const raw = `${above}${pad}${field}\r\nSubject: x\r\n\r\nbody\r\n`;
  assert.equal(raw.indexOf(field) + mark, MAX_HEADER_BYTES + offset);
  return Buffer.from(raw, 'latin1');
}

describe('authorFields at the 1 MB cut', () => {
  const cases: [string, string, (f: string) => number][] = [
    ['the colon', 'From: ceo@bank.test', (f) => f.indexOf(':')],
    ['the F of From', 'From: ceo@bank.test', () => 0],
    ['the CR of its line end', 'From: ceo@bank.test', (f) => f.length],
    ['the LF of its line end', 'From: ceo@bank.test', (f) => f.length + 1],
    ['the fold of its name', 'From: "Chief\r\n Officer" <ceo@bank.test>', (f) => f.indexOf('\r\n')],
    ['the folded line', 'From: "Chief\r\n Officer" <ceo@bank.test>', (f) => f.indexOf('\r\n') + 2],
  ];
  for (const [what, field, mark] of cases) {
    for (let offset = -3; offset <= 3; offset++) {
      it(`${what} at the cut ${offset >= 0 ? '+' : ''}${offset}: the author counted once`, () => {
        for (const above of ['', 'From: alice@example.com\r\n']) {
          const ctx = createContext({ ip: '192.0.2.1', raw: withFieldAt(field, mark(field), offset, above) });
          const fields = authorFields(ctx);
          const want = above ? ['alice@example.com', 'ceo@bank.test'] : ['ceo@bank.test'];
          assert.deepEqual(fields.mailboxes.map((m) => m.address), want, `above: ${JSON.stringify(above)}`);
          assert.equal(fields.fields, want.length);
        }
      });
    }
  }
});
