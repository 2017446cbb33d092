import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { closeSync, fchmodSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { headerBlockEnd } from '../message';
import { trimChars } from '../util/text';
import { createFile, isRefusedFile, makeDirectory, readRegularFileSync, withReadAdvice } from '../util/owner';

/**
 * A released message goes back through the MTA and so through every check
 * again, where it would be held again (and its SPF now fails: it comes from
 * 127.0.0.1). The release therefore stamps it with this header:
 *
 *   X-Mailward-Release: REF EXPIRY TAG,TAG,... HMAC
 *
 * keyed with a secret in the quarantine directory that only the MTA and the
 * CLI read. Each TAG stands for one released recipient; HMAC covers the ref,
 * the expiry, the envelope sender, the body and the tag list. The rules module
 * accepts a message with a valid stamp whose recipients are all among the
 * tagged ones (the MTA may refuse some recipients of a release, so a subset
 * is fine) and strips the header.
 *
 * Why tags rather than the recipients themselves (e.g. a base64url list):
 * a tag is 8 hex characters whatever the address, so the header stays short
 * for a long recipient list; the stamp stays self-contained (no lookup in the
 * quarantine at DATA time); and the header, which transits the queue and
 * logs, does not spell out every recipient (Bcc included) to anyone who
 * sees it. A tag is a keyed HMAC: without the key, nobody can make the tag
 * of another address, and a 32-bit tag leaves a chance of 1 in 2^32 per
 * signed recipient that a given other address happens to match.
 */
export const RELEASE_HEADER = 'X-Mailward-Release';
const KEY_FILE = 'release.key';
/** How long a stamp stays valid: long enough for a queue retry, short for a replay. */
export const RELEASE_VALIDITY_SECONDS = 24 * 3600;

export function releaseKeyPath(quarantineDir: string): string {
  return join(quarantineDir, KEY_FILE);
}

const KEY_BYTES = 32;

/**
 * The key read from its file. One cut short (a write failing with ENOSPC, a
 * crash, or read while another process was still writing it) is refused: an
 * empty key would let any sender sign a release stamp and skip every check.
 */
function readKey(path: string): Buffer {
  // A regular file with this name only (util/owner): a FIFO put here would hang the MTA or the CLI. Nor, as root,
  // a hard link the directory's owner made to a file of root's (taken as the key, its length said below).
  const key = Buffer.from(readRegularFileSync(path, { ownLinksOnly: true }).toString('utf8').trim(), 'hex');
  if (key.length !== KEY_BYTES) throw new Error(`${path} holds ${key.length} of the ${KEY_BYTES} bytes of a release key (cut short): not used; remove it (the next \`mailward quarantine release\` makes a new one)`);
  return key;
}

/** The key, created on first use by the releasing side. */
export function releaseKey(quarantineDir: string, create: boolean): Buffer | null {
  const path = releaseKeyPath(quarantineDir);
  try {
    return readKey(path);
  } catch (err) {
    // Unreadable (made by root for another user): said, not taken for "no key", which would hold every release again.
    if ((err as NodeJS.ErrnoException).code === 'EACCES') throw withReadAdvice(err as Error, path);
    // Cut short (readKey), or not a regular file with this name (a FIFO, a symlink, a hard link): said, never "no key".
    if (isRefusedFile(err) || (err as NodeJS.ErrnoException).code === undefined) throw err;
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !create) return null;
  }
  makeDirectory(quarantineDir);
  const key = randomBytes(KEY_BYTES);
  try {
    // 0600 whatever the umask; made by root (`mailward quarantine release`), the MTA's, which reads it (util/owner).
    const fd = createFile(path, 0o600);
    try {
      fchmodSync(fd, 0o600);
      writeFileSync(fd, key.toString('hex'));
    } catch (err) {
      unlinkSync(path); // Not left cut short (ENOSPC): the next try makes it anew.
      throw err;
    } finally {
      closeSync(fd);
    }
    return key;
  } catch (err) {
    // Another process created it first: use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return readKey(path);
    throw err;
  }
}

/** The body, with line endings and trailing blanks normalised (SMTP may change both). */
function bodyDigest(raw: Buffer): string {
  const end = headerBlockEnd(raw);
  const body = end < 0 ? '' : raw.subarray(end).toString('latin1');
  const unix = body.replace(/\r\n/g, '\n');
  // What /[ \t]+$/gm and /^\n+|\n+$/g did (a multiline $ is also before a lone \r), without their
  // retries at every position of a long run of blanks or blank lines, quadratic on a sender's body.
  const trimmed = unix.replace(/[ \t]+/g, (run: string, at: number) => {
    const next = unix[at + run.length];
    return next === undefined || next === '\n' || next === '\r' ? '' : run;
  });
  const normal = trimChars(trimmed, '\n');
  return createHash('sha256').update(normal, 'latin1').digest('hex');
}

/** The key's tag for one recipient: lower-cased, so addresses match whatever their case. */
function recipientTag(key: Buffer, address: string): string {
  return createHmac('sha256', key).update(`rcpt\n${address.trim().toLowerCase()}`).digest('hex').slice(0, 8);
}

function mac(key: Buffer, ref: string, expires: number, mailFrom: string, tags: string, raw: Buffer): string {
  return createHmac('sha256', key).update(`${ref}\n${expires}\n${mailFrom.toLowerCase()}\n${bodyDigest(raw)}\n${tags}`).digest('hex').slice(0, 32);
}

export interface ReleaseEnvelope {
  mailFrom: string;
  /** At signing: the recipients released to. At verification: the transaction's recipients. */
  rcptTo: readonly string[];
}

/** The stamp (the header's value, one line) for a release of `raw` to `envelope.rcptTo`. */
export function signRelease(key: Buffer, ref: string, envelope: ReleaseEnvelope, raw: Buffer, now = Date.now()): string {
  if (!envelope.rcptTo.length) throw new Error(`release stamp for ${ref}: no recipients`);
  const expires = Math.floor(now / 1000) + RELEASE_VALIDITY_SECONDS;
  // Sorted and deduplicated: the same recipients give the same list, in any order or case.
  const tags = [...new Set(envelope.rcptTo.map((r) => recipientTag(key, r)))].sort().join(',');
  return `${ref} ${expires} ${tags} ${mac(key, ref, expires, envelope.mailFrom, tags, raw)}`;
}

/**
 * The stamp as a header line ending in `eol`, folded after commas of the tag
 * list: lines stay short (an MTA breaks lines past 998 octets, Haraka at 992,
 * wherever that falls), and verification reads the tags with or without the folds.
 */
export function releaseHeaderLine(stamp: string, eol: string): string {
  const pieces = stamp.split(/(?<=,)/);
  const lines: string[] = [];
  let line = `${RELEASE_HEADER}: ${pieces[0]}`;
  for (const piece of pieces.slice(1)) {
    if (line.length + piece.length > 78) {
      lines.push(line);
      line = ` ${piece}`;
    } else line += piece;
  }
  lines.push(line);
  return lines.map((l) => `${l}${eol}`).join('');
}

/**
 * The ref a valid stamp names, or why it is not valid: forged or altered,
 * another sender or body, expired, or a recipient of `envelope` that the
 * release did not cover.
 */
export function verifyRelease(key: Buffer, value: string, envelope: ReleaseEnvelope, raw: Buffer, now = Date.now()): { ref: string } | { error: string } {
  // Unfolded, the tag list may read "a, b" where the header was folded.
  const text = value.trim().replace(/\s+/g, ' ').replace(/, /g, ',');
  const old = /^([0-9A-Z]{1,32}) \d+ [0-9a-f]{32}$/.exec(text);
  if (old) return { error: `release stamp for ${old[1]} without recipients (made by an older mailward): release again` };
  // One way to write each part: a stamp that verified must not verify again spelt otherwise.
  const m = /^([0-9A-Z]{1,32}) ([1-9]\d*) ([0-9a-f]{8}(?:,[0-9a-f]{8})*) ([0-9a-f]{32})$/.exec(text);
  if (!m) return { error: 'malformed release stamp' };
  const [, ref, exp, tags, given] = m as unknown as [string, string, string, string, string];
  const expires = Number(exp);
  if (expires * 1000 < now) return { error: `release stamp for ${ref} expired` };
  const want = Buffer.from(mac(key, ref, expires, envelope.mailFrom, tags, raw));
  if (!timingSafeEqual(want, Buffer.from(given))) return { error: `release stamp for ${ref} does not match this message` };
  // An HMAC proves the list as a whole; the subset rule needs the list itself.
  const signed = new Set(tags.split(','));
  for (const rcpt of envelope.rcptTo) {
    if (!signed.has(recipientTag(key, rcpt))) return { error: `release stamp for ${ref} does not cover recipient ${rcpt}` };
  }
  return { ref };
}

/**
 * What makes a stamp single-use: its ref and MAC, however the header was
 * written (folded, spaced, a zero before the expiry), so a copy spelt
 * otherwise is still the stamp that was used.
 */
export function releaseStampId(value: string): string {
  const parts = value.trim().split(/\s+/);
  return `${parts[0] ?? ''} ${parts[parts.length - 1] ?? ''}`;
}
