import { accessSync, chownSync, closeSync, constants, existsSync, mkdirSync, openSync, readFileSync, statSync } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';

/**
 * Files made by root for the MTA's user. Haraka is started as root (to bind
 * port 25) and drops to smtp.ini's user/group after listening, but runs the
 * plugins' register() before, as root; the operator runs `mailward` as root
 * too. A file or directory either makes in the MTA's data directory would be
 * root's, and the MTA could no longer write it (a quarantine it cannot hold
 * mail in, a model it cannot learn into, a release key it cannot read). So
 * what root makes in a directory of another owner takes that directory's
 * owner, as a file made by the MTA itself would. SQLite gives a database's
 * -wal, -shm and journal its owner when run as root: the database file is
 * enough. Everything here is best effort and does nothing unless root.
 */

function isRoot(): boolean {
  return process.geteuid?.() === 0;
}

/** Gives `path` the owner of its directory when root made it there and the directory is someone else's. */
export function ownLikeDirectory(path: string): void {
  if (!isRoot()) return;
  try {
    const dir = statSync(dirname(path));
    if (dir.uid === 0 && dir.gid === 0) return;
    const own = statSync(path);
    if (own.uid !== dir.uid || own.gid !== dir.gid) chownSync(path, dir.uid, dir.gid);
  } catch {
    // Gone meanwhile, or a file system without owners: left as it is.
  }
}

/** `mkdir -p`, each directory it makes owned like the one it is made in. */
export function makeDirectory(dir: string): void {
  const first = mkdirSync(dir, { recursive: true });
  if (!first || !isRoot()) return;
  let path = resolve(first);
  ownLikeDirectory(path);
  for (const part of relative(path, resolve(dir)).split(sep).filter(Boolean)) {
    path = join(path, part);
    ownLikeDirectory(path);
  }
}

/**
 * Makes the file at `path` (empty) if there is none, owned like its directory,
 * before a program that would make it root's opens it (SQLite). An existing
 * file is left alone.
 */
export function createOwnedLikeDirectory(path: string, mode = 0o644): void {
  makeDirectory(dirname(path));
  if (!isRoot()) return;
  try {
    closeSync(openSync(path, 'wx', mode));
    ownLikeDirectory(path);
  } catch {
    // Exists already (EEXIST), or cannot be made: the caller opens or creates it as before.
  }
}

/** This process's user and group names (numbers when the names are unknown), as `chown` takes them. */
function owner(): string {
  const uid = process.geteuid?.() ?? 0;
  const gid = process.getegid?.() ?? 0;
  let user = String(uid);
  let group = String(gid);
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry
  }
  try {
    const line = readFileSync('/etc/group', 'utf8').split('\n').find((l) => l.split(':')[2] === String(gid));
    if (line) group = line.split(':')[0]!;
  } catch {
    // no /etc/group
  }
  return `${user}:${group}`;
}

function writable(path: string): boolean {
  try {
    accessSync(path, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Why this process cannot write the file at `path` (and, for a SQLite file,
 * its -wal and -shm), with the `chown` that fixes it; undefined when it can.
 * Made by root for an earlier version, or by hand: such a file is never
 * chowned here behind the operator's back.
 */
export function unwritableAdvice(path: string): string | undefined {
  if (isRoot()) return undefined;
  const dir = dirname(path);
  const files = [path, `${path}-wal`, `${path}-shm`].filter((p) => existsSync(p));
  const denied = [...files, ...(existsSync(dir) ? [dir] : [])].filter((p) => !writable(p));
  if (!denied.length) return undefined;
  const who = owner();
  return `${denied.join(', ')} not writable by ${who} (this process's user): run \`chown ${who} ${denied.join(' ')}\``;
}

/** A user or group name from /etc/passwd or /etc/group, or the number. */
function nameOf(file: '/etc/passwd' | '/etc/group', id: number): string {
  try {
    const line = readFileSync(file, 'utf8').split('\n').find((l) => l.split(':')[2] === String(id));
    if (line) return line.split(':')[0]!;
  } catch {
    // no such file
  }
  return String(id);
}

/**
 * Root opening a file (and its -wal/-shm) in a directory of another owner that
 * is not that owner's (left by an older version run as root): root writes it,
 * and Haraka's handle opened in register() keeps working after the drop, but
 * the MTA's user cannot open it again (after an error, a restart without root).
 * What to run, said while it still works; undefined when all is well.
 */
export function foreignOwnerAdvice(path: string): string | undefined {
  if (!isRoot()) return undefined;
  try {
    const dir = statSync(dirname(path));
    if (dir.uid === 0 && dir.gid === 0) return undefined;
    const wrong = [path, `${path}-wal`, `${path}-shm`].filter((p) => {
      if (!existsSync(p)) return false;
      const s = statSync(p);
      return s.uid !== dir.uid || s.gid !== dir.gid;
    });
    if (!wrong.length) return undefined;
    const who = `${nameOf('/etc/passwd', dir.uid)}:${nameOf('/etc/group', dir.gid)}`;
    return `${wrong.join(', ')} not owned by ${who}, the owner of ${dirname(path)}: that user (the MTA's, after it drops privileges) cannot write it; run \`chown ${who} ${wrong.join(' ')}\``;
  } catch {
    return undefined;
  }
}

/** The error, its message completed with unwritableAdvice(path) when that explains it. */
export function withWriteAdvice<E>(err: E, path: string): E {
  const advice = unwritableAdvice(path);
  if (advice && err instanceof Error && !err.message.includes(advice)) err.message = `${err.message}; ${advice}`;
  return err;
}

/** The error reading `path`, its message completed with the `chown` that lets this process read it. */
export function withReadAdvice(err: Error, path: string): Error {
  if (isRoot()) return err;
  const who = owner();
  err.message = `${err.message}; ${path} not readable by ${who} (this process's user): run \`chown ${who} ${path}\``;
  return err;
}
