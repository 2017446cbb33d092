import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { headerBlockEnd } from '../message';

/**
 * A released message goes back through the MTA and so through every check
 * again, where it would be held again (and its SPF now fails: it comes from
 * 127.0.0.1). The release therefore stamps it with this header: the ref, an
 * expiry and an HMAC over both, the envelope sender and the body, keyed with
 * a secret in the quarantine directory that only the MTA and the CLI read.
 * The rules module accepts a message with a valid stamp and strips the header.
 */
export const RELEASE_HEADER = 'X-Mailward-Release';
const KEY_FILE = 'release.key';
/** How long a stamp stays valid: long enough for a queue retry, short for a replay. */
export const RELEASE_VALIDITY_SECONDS = 24 * 3600;

export function releaseKeyPath(quarantineDir: string): string {
  return join(quarantineDir, KEY_FILE);
}

/** The key, created on first use by the releasing side. */
export function releaseKey(quarantineDir: string, create: boolean): Buffer | null {
  const path = releaseKeyPath(quarantineDir);
  try {
    return Buffer.from(readFileSync(path, 'utf8').trim(), 'hex');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !create) return null;
  }
  mkdirSync(quarantineDir, { recursive: true });
  const key = randomBytes(32);
  try {
    writeFileSync(path, key.toString('hex'), { flag: 'wx', mode: 0o600 });
    chmodSync(path, 0o600);
    return key;
  } catch (err) {
    // Another process created it first: use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return Buffer.from(readFileSync(path, 'utf8').trim(), 'hex');
    throw err;
  }
}

/** The body, with line endings and trailing blanks normalised (SMTP may change both). */
function bodyDigest(raw: Buffer): string {
  const end = headerBlockEnd(raw);
  const body = end < 0 ? '' : raw.subarray(end).toString('latin1');
  const normal = body.replace(/\r\n/g, '\n').replace(/[ \t]+$/gm, '').replace(/^\n+|\n+$/g, '');
  return createHash('sha256').update(normal, 'latin1').digest('hex');
}

function mac(key: Buffer, ref: string, expires: number, mailFrom: string, raw: Buffer): string {
  return createHmac('sha256', key).update(`${ref}\n${expires}\n${mailFrom.toLowerCase()}\n${bodyDigest(raw)}`).digest('hex').slice(0, 32);
}

export function signRelease(key: Buffer, ref: string, mailFrom: string, raw: Buffer, now = Date.now()): string {
  const expires = Math.floor(now / 1000) + RELEASE_VALIDITY_SECONDS;
  return `${ref} ${expires} ${mac(key, ref, expires, mailFrom, raw)}`;
}

/** The ref a valid stamp names, or why it is not valid. */
export function verifyRelease(key: Buffer, value: string, mailFrom: string, raw: Buffer, now = Date.now()): { ref: string } | { error: string } {
  const m = /^([0-9A-Z]+) (\d+) ([0-9a-f]{32})$/.exec(value.trim());
  if (!m) return { error: 'malformed release stamp' };
  const [, ref, exp, given] = m as unknown as [string, string, string, string];
  const expires = Number(exp);
  if (expires * 1000 < now) return { error: `release stamp for ${ref} expired` };
  const want = Buffer.from(mac(key, ref, expires, mailFrom, raw));
  if (!timingSafeEqual(want, Buffer.from(given))) return { error: `release stamp for ${ref} does not match this message` };
  return { ref };
}
