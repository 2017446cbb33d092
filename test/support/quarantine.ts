import type { QuarantineEntry } from '../../lib/quarantine';

/** A small held message, and its entry: what the quarantine tests put and read back. */
export const RAW = Buffer.from('From: Bob <bob@partner.test>\r\nTo: alice@example.com\r\nSubject: hi\r\n\r\nHello Alice\r\n');

export function entry(ref: string, fields: Partial<QuarantineEntry> = {}): QuarantineEntry {
  return {
    ref,
    time: new Date().toISOString(),
    mailFrom: 'bob@partner.test',
    rcptTo: ['alice@example.com'],
    subject: `subject ${ref}`,
    remoteIp: '192.0.2.1',
    score: 9,
    reason: 'score 9 reached the quarantine threshold 8',
    symbols: [],
    ...fields,
  };
}
