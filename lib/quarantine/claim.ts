import { hostname } from 'node:os';
import { join } from 'node:path';
import { link, rename, unlink } from 'node:fs/promises';
import { closeSync, fstatSync, ftruncateSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { createFile, openRegularFile, replaceFile } from '../util/owner';
import { processAlive } from '../util/process';

/**
 * One operation at a time per held message, across processes and, on a
 * shared directory, across nodes: `REF.lock`, created with 'wx' (exclusive)
 * before the message is read for a release or removed by delete/purge. Two
 * releases of one message at once would otherwise both send it, each with its
 * own stamp (a new expiry second gives a new HMAC and a new single-use id),
 * and the MTA would honour both.
 *
 * A release that went out but whose status could not be written (disk full)
 * turns its lock into `REF.delivered` by a rename, which needs no free space;
 * that marker is never stale: it stops any further send until the status is
 * recorded (see FileQuarantine.settleDelivered).
 */
export const LOCK_SUFFIX = '.lock';
export const DELIVERED_SUFFIX = '.delivered';

/**
 * A lock whose process is gone (same machine, see machineIdentity) or older
 * than this is stale: a release has 30 s timeouts per SMTP step, so no live
 * one gets near it. On another node sharing the directory the process cannot
 * be checked: the age alone decides there.
 */
export const STALE_LOCK_MS = 15 * 60_000;

let identity: string | undefined;

/**
 * What makes a pid mean the same process: this kernel's boot
 * (/proc/sys/kernel/random/boot_id) and this process's pid namespace
 * (/proc/self/ns/pid; containers on one kernel share the boot id but each has
 * its own pids), else /etc/machine-id, else '' (none known). A host name does
 * not: nodes sharing a quarantine directory over NFS are often all
 * "localhost", or containers of one image with one name, and a pid checked on
 * the wrong machine is dead (or someone else) while its release is at work.
 */
export function machineIdentity(): string {
  if (identity !== undefined) return identity;
  const read = (path: string, link = false) => {
    try {
      return (link ? readlinkSync(path) : readFileSync(path, 'utf8')).trim();
    } catch {
      return '';
    }
  };
  const boot = read('/proc/sys/kernel/random/boot_id');
  if (boot) {
    const pidNamespace = read('/proc/self/ns/pid', true);
    identity = pidNamespace ? `${boot} ${pidNamespace}` : boot;
  } else identity = read('/etc/machine-id');
  return identity;
}

export interface ClaimInfo {
  pid: number;
  host: string;
  /**
   * machineIdentity() of the holder ('' or absent: none known, or a lock
   * written by a mailward before it was kept).
   */
  boot?: string;
  /** ISO 8601: when it was taken. */
  time: string;
  action: string;
}

/** Refused because another process holds the message (or a delivered marker stands). */
export class ClaimBusyError extends Error {
  override name = 'ClaimBusyError';
}

export function describeClaim(info: ClaimInfo): string {
  if (!info.pid) return `an unknown holder since ${info.time}`;
  return `${info.action} by pid ${info.pid} on ${info.host} since ${info.time}`;
}


/** What a lock file says, or null (gone). A lock cut short (crash before its write) reads as pid 0 at its mtime. */
export async function readClaim(path: string): Promise<ClaimInfo | null> {
  let fd: number;
  try {
    // A regular file with this name only: a FIFO put here would hang the reader for ever (util/owner).
    // Nor, as root, a hard link to a file of root's (read whole, its fields said in a ClaimBusyError).
    fd = openRegularFile(path, undefined, { ownLinksOnly: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  let text: string;
  let mtime: Date;
  try {
    // A few hundred bytes: read at once, and its mtime from the same file.
    text = readFileSync(fd, 'utf8');
    mtime = fstatSync(fd).mtime;
  } finally {
    closeSync(fd);
  }
  try {
    const info = JSON.parse(text) as ClaimInfo;
    if (typeof info.pid === 'number' && typeof info.host === 'string' && typeof info.time === 'string') return info;
  } catch {
    // fall through: unreadable
  }
  return { pid: 0, host: '', time: mtime.toISOString(), action: 'unknown operation' };
}

/**
 * Why a lock may be taken over, or null while its holder may still be at work.
 * Its pid is checked only when it was written on this machine: the same host
 * name and the same machineIdentity(). A lock without an identity (written by
 * a mailward before it was kept) is pid-checked only where this process has
 * none either (no /proc, no /etc/machine-id): on Linux, its age alone decides,
 * as a node of a fleet that is not upgraded yet may have written it.
 */
export function staleReason(info: ClaimInfo, now = Date.now()): string | null {
  const age = now - Date.parse(info.time);
  if (!(age < STALE_LOCK_MS)) return `older than ${STALE_LOCK_MS / 60_000} minutes`;
  const sameMachine = info.host === hostname() && (info.boot ?? '') === machineIdentity();
  if (sameMachine && info.pid !== process.pid && (info.pid <= 0 || !processAlive(info.pid))) return `its process ${info.pid} is gone`;
  return null;
}

export interface Claim {
  /** The stale lock this claim replaced, if any (a crashed release or delete). */
  readonly tookOver?: { info: ClaimInfo; reason: string };
  /** Gives the message back (no-op after markDelivered). */
  release(): Promise<void>;
  /** The lock becomes REF.delivered: no further send until the status is recorded. */
  markDelivered(note: string): Promise<void>;
}

/**
 * Creates the lock: 'written', or false when one exists. With no room for
 * its content, `keepEmpty` keeps the lock empty ('empty': it still excludes
 * others, read as an unknown holder); otherwise it is removed and the error raised.
 */
async function create(path: string, info: ClaimInfo, keepEmpty: boolean): Promise<'written' | 'empty' | false> {
  let fd: number;
  try {
    fd = createFile(path); // Made by root (the CLI), the MTA user's like its directory (util/owner).
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  let failure: unknown;
  try {
    writeFileSync(fd, JSON.stringify(info));
  } catch (err) {
    failure = err;
    if (keepEmpty) {
      try {
        ftruncateSync(fd, 0);
      } catch {
        // kept as it is
      }
    }
  } finally {
    closeSync(fd);
  }
  if (!failure) return 'written';
  if (keepEmpty) return 'empty';
  await unlink(path).catch(() => {});
  throw failure;
}

/**
 * Moves a stale lock out of the way. Two processes may judge the same lock
 * stale at once: each renames whatever is there to a name of its own and
 * checks it moved the lock it judged; one that moved a fresh lock (the
 * other's) puts it back.
 */
async function breakStale(path: string, judged: ClaimInfo): Promise<void> {
  const aside = `${path}.${process.pid}.${Date.now()}.stale`;
  try {
    await rename(path, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const moved = await readClaim(aside);
  if (moved && JSON.stringify(moved) !== JSON.stringify(judged)) await link(aside, path).catch(() => {});
  await unlink(aside).catch(() => {});
}

/**
 * Takes REF.lock for `action`, replacing a stale one; throws ClaimBusyError
 * while another holds it. A release needs room for its lock (no room for it,
 * no room for the status it must write after sending: refused before
 * sending); a delete does not (`mayBeEmpty`): freeing space must work on a full disk.
 */
export async function takeClaim(dir: string, ref: string, action: string, options: { now?: number; mayBeEmpty?: boolean } = {}): Promise<Claim> {
  const path = join(dir, `${ref}${LOCK_SUFFIX}`);
  const now = options.now ?? Date.now();
  const info: ClaimInfo = { pid: process.pid, host: hostname(), boot: machineIdentity(), time: new Date(now).toISOString(), action };
  let tookOver: Claim['tookOver'];
  let created: 'written' | 'empty' | false;
  for (let attempt = 0; ; attempt++) {
    created = await create(path, info, !!options.mayBeEmpty);
    if (created) break;
    const held = await readClaim(path);
    if (!held && attempt < 3) continue; // given back meanwhile: try again
    const reason = held && staleReason(held, now);
    // A stale lock is taken over once: found stale again, someone else is taking it over too.
    if (!held || !reason || attempt > 0) throw new ClaimBusyError(`${ref} is locked (${held ? describeClaim(held) : 'by others, repeatedly'}); try again once it is done`);
    await breakStale(path, held);
    tookOver = { info: held, reason };
  }
  let done = false;
  return {
    tookOver,
    async release() {
      if (done) return;
      done = true;
      // Only our own: a lock wrongly judged stale and replaced is the other holder's now.
      const current = created === 'written' ? await readClaim(path).catch(() => null) : null;
      if (created === 'empty' || (current && JSON.stringify(current) === JSON.stringify(info))) await unlink(path).catch(() => {});
    },
    async markDelivered(note: string) {
      if (done) return;
      // A rename allocates nothing: it works on a full disk, where the status write just failed.
      await rename(path, join(dir, `${ref}${DELIVERED_SUFFIX}`));
      done = true;
      // Best effort: what went out, for whoever looks (the marker's presence is what counts).
      // Through a new file renamed over it, never written through the name (its directory's owner may have made it a
      // symlink to a file of root's meanwhile); the marker stays present throughout.
      const marker = join(dir, `${ref}${DELIVERED_SUFFIX}`);
      const tmp = `${marker}.${process.pid}.tmp`;
      try {
        replaceFile(tmp, JSON.stringify({ ...info, delivered: new Date().toISOString(), note }));
        await rename(tmp, marker);
      } catch {
        await unlink(tmp).catch(() => {});
      }
    },
  };
}
