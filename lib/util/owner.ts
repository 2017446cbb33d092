import { accessSync, closeSync, constants, existsSync, fchownSync, fstatSync, lstatSync, mkdirSync, openSync, readFileSync, readFile as readFd, statSync, type Stats, unlinkSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { userInfo } from 'node:os';
import { basename, dirname, resolve } from 'node:path';

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
 *
 * That owner (the MTA's user, perhaps compromised) controls the names in the
 * directory: root never chowns a path, only the descriptor of a file or
 * directory it has just created (O_EXCL, O_NOFOLLOW), in the directory it
 * holds open, so a name swapped for a symlink or a hard link to a file of
 * root's is never handed over.
 */

function isRoot(): boolean {
  return process.geteuid?.() === 0;
}

const { O_CREAT, O_DIRECTORY, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_RDONLY, O_WRONLY } = constants;

/**
 * Whether `/proc/self/fd/N/name` can stand for openat(N, name) and mkdirat(N,
 * name) (Linux), which Node lacks. Without it root gives nothing away: what it
 * makes stays root's.
 */
let procFd: boolean | undefined;
function hasProcFd(): boolean {
  procFd ??= existsSync('/proc/self/fd');
  return procFd;
}

/** `name` in the directory open as `dirFd`, whatever its path names meanwhile. */
function inDirectory(dirFd: number, name: string): string {
  return `/proc/self/fd/${dirFd}/${name}`;
}

/**
 * Gives what root has just made (open as `fd`) the owner of the directory it
 * was made in (`dir`, stat of that directory's descriptor), unless the
 * directory is root's. Only through the descriptor: the directory's owner
 * controls the names in it and may swap one for a symlink or a hard link to a
 * file of root's (/etc/shadow) at any moment, so a path is never chowned. And
 * only a file of root's with no other name, or a directory of root's with no
 * subdirectory: anything else is not what this process made.
 */
function giveLikeDirectory(fd: number, dir: Stats): void {
  if (dir.uid === 0) return; // A directory of root's: what root makes there stays root's (its group included).
  try {
    const own = fstatSync(fd);
    if (own.uid !== 0) return;
    if (own.isDirectory() ? own.nlink > 2 : !own.isFile() || own.nlink !== 1) return;
    fchownSync(fd, dir.uid, dir.gid);
  } catch {
    // A file system without owners: left as it is.
  }
}

/**
 * Creates the file at `path` (O_CREAT | O_EXCL | O_NOFOLLOW: never an existing
 * file, nor through a symlink put there) and returns its descriptor. Made by
 * root in a directory of another owner, it takes that directory's owner, as a
 * file made by the MTA itself would. EEXIST when the name is taken.
 */
export function createFile(path: string, mode = 0o644, access = O_WRONLY): number {
  const flags = access | O_CREAT | O_EXCL | O_NOFOLLOW;
  if (!isRoot() || !hasProcFd()) return openSync(path, flags, mode);
  const dirFd = openSync(dirname(path), O_RDONLY | O_DIRECTORY);
  try {
    const fd = openSync(inDirectory(dirFd, basename(path)), flags, mode);
    giveLikeDirectory(fd, fstatSync(dirFd));
    return fd;
  } finally {
    closeSync(dirFd);
  }
}

/** What a file is, in words, for an error: a FIFO planted where a file was expected, say. */
function kindOf(s: Stats): string {
  if (s.isFIFO()) return 'a FIFO (named pipe)';
  if (s.isSocket()) return 'a socket';
  if (s.isCharacterDevice() || s.isBlockDevice()) return 'a device';
  if (s.isDirectory()) return 'a directory';
  return 'a file of another kind';
}

/** A name in a data directory that is not a regular file (code ENOTREG): never read nor written. */
export class NotRegularFileError extends Error {
  override name = 'NotRegularFileError';
  readonly code = 'ENOTREG';
  constructor(readonly path: string, what: string) {
    super(`${path} is ${what}, not a regular file: not opened; remove it`);
  }
}

/**
 * Opens an existing file of a data directory (`flags`: O_RDONLY, O_RDWR |
 * O_APPEND...) as long as it is a regular file with this very name. Its
 * directory's owner (the MTA's user, perhaps compromised) controls the name:
 * a FIFO there would block open() and read() for ever (the CLI, or the MTA,
 * hung), a device would be read or written, a symlink would lead root to a
 * file of its own. So: O_NOFOLLOW (ELOOP for a symlink), O_NONBLOCK (an open
 * of a FIFO returns at once; on a regular file it changes nothing), then the
 * descriptor's own type, NotRegularFileError for anything but a regular file.
 * With `oneName`, root also refuses a file with more than one name (a hard
 * link to a file of root's); with `ownLinksOnly`, one with more than one name
 * that its directory does not vouch for (foreignLink: not owned like a
 * directory of another user, or in a directory of root's that others can
 * write), for files that have two names for a moment by design (a held
 * message). Errors name the path, never the content.
 */
export function openRegularFile(path: string, flags = O_RDONLY, options: RegularFileOptions = {}): number {
  const asRoot = isRoot();
  // Links judged by their directory (ownLinksOnly): the one the file is opened in, held open, never its path
  // looked at again (swapped meanwhile for a symlink to a directory of root's, it would vouch for root's file).
  const dirFd = asRoot && options.ownLinksOnly ? openSync(dirname(path), O_RDONLY | O_DIRECTORY) : undefined;
  try {
    const at = dirFd !== undefined && hasProcFd() ? inDirectory(dirFd, basename(path)) : path;
    let fd: number;
    try {
      fd = openSync(at, flags | O_NOFOLLOW | O_NONBLOCK);
    } catch (err) {
      // Said with the file's own path, not /proc/self/fd/N/name.
      const e = err as NodeJS.ErrnoException;
      if (at !== path) Object.assign(e, { message: e.message.replace(at, path), path });
      throw e;
    }
    try {
      const s = fstatSync(fd);
      if (!s.isFile()) throw new NotRegularFileError(path, kindOf(s));
      if (asRoot && s.nlink > 1 && (options.oneName || (options.ownLinksOnly && foreignLink(s, dirFd)))) {
        throw new HardLinkedFileError(path);
      }
      return fd;
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  } finally {
    if (dirFd !== undefined) closeSync(dirFd);
  }
}

/** A name root refuses to open because the file has another one (code ELINKED): perhaps a hard link to a file of root's. */
export class HardLinkedFileError extends Error {
  override name = 'HardLinkedFileError';
  readonly code = 'ELINKED';
  constructor(readonly path: string) {
    super(`${path} has more than one name (a hard link): root does not open it; remove it`);
  }
}

/** Whether openRegularFile refused the name (a symlink, not a regular file, a hard link), as opposed to failing to open a file. */
export function isRefusedFile(err: unknown): boolean {
  return err instanceof NotRegularFileError || err instanceof HardLinkedFileError || (err as NodeJS.ErrnoException)?.code === 'ELOOP';
}

export interface RegularFileOptions {
  oneName?: boolean;
  ownLinksOnly?: boolean;
}

/**
 * A file (`s`) with more than one name that its directory (open as `dirFd`)
 * does not vouch for: in a directory of another user, one not that user's
 * (a link the user made to a file of root's, or of a third user's); in a
 * directory of root's that others can write too (root:group 0770), any (the
 * group's members may link root's files there). Only in a directory of
 * root's that root alone can write is every link root's own doing.
 */
function foreignLink(s: Stats, dirFd: number | undefined): boolean {
  if (dirFd === undefined) return true;
  try {
    const dir = fstatSync(dirFd);
    if (dir.uid === 0) return (dir.mode & 0o022) !== 0;
    return s.uid !== dir.uid;
  } catch {
    return true;
  }
}

const readDescriptor = promisify(readFd);

/** The whole of a regular file of a data directory (see openRegularFile). */
export async function readRegularFile(path: string, options: RegularFileOptions = {}): Promise<Buffer> {
  const fd = openRegularFile(path, O_RDONLY, options);
  try {
    return await readDescriptor(fd);
  } finally {
    closeSync(fd);
  }
}

/** readRegularFile, synchronously. */
export function readRegularFileSync(path: string, options: RegularFileOptions = {}): Buffer {
  const fd = openRegularFile(path, O_RDONLY, options);
  try {
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** `mkdir -p`, each directory it makes owned like the one it is made in. */
export function makeDirectory(dir: string): void {
  if (!isRoot() || !hasProcFd()) {
    mkdirSync(dir, { recursive: true });
    return;
  }
  let existing = resolve(dir);
  const missing: string[] = [];
  while (!existsSync(existing)) {
    missing.unshift(basename(existing));
    existing = dirname(existing);
  }
  if (!missing.length) return;
  // One level at a time through descriptors: a directory made here and then
  // swapped for a symlink (to /etc) is neither chowned nor walked into.
  let fd = openSync(existing, O_RDONLY | O_DIRECTORY);
  try {
    for (const name of missing) {
      const parent = fstatSync(fd);
      let made = true;
      try {
        mkdirSync(inDirectory(fd, name));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        made = false; // Another process made it: not ours to chown.
      }
      const next = openSync(inDirectory(fd, name), O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      closeSync(fd);
      fd = next;
      if (made) giveLikeDirectory(fd, parent);
    }
  } finally {
    closeSync(fd);
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
    closeSync(createFile(path, mode));
  } catch {
    // Exists already (EEXIST), or cannot be made: the caller opens or creates it as before.
  }
}

/**
 * Writes `data` to `path` as a new file (see createFile): an existing one is
 * removed first, never written through (it may be a symlink or a hard link to
 * a file of root's, put there by the directory's owner).
 */
export function replaceFile(path: string, data: string | Buffer, mode = 0o644): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const fd = createFile(path, mode);
  try {
    writeFileSync(fd, data);
  } finally {
    closeSync(fd);
  }
}

/**
 * Why root should not open the SQLite file at `path` in a directory of
 * another owner: the file, its -wal, -shm or -journal a symlink or a hard
 * link. SQLite run as root gives the -wal and -shm it opens the database's
 * owner with fchown, following a hard link (measured: a -wal hard-linked to a
 * file of root's became the MTA user's, and was overwritten), and follows a
 * symlinked database. Undefined when all is well, or not root.
 */
export function linkedSqliteAdvice(path: string): string | undefined {
  if (!isRoot()) return undefined;
  try {
    const dir = statSync(dirname(path));
    // Root's and writable by root alone: nobody else can have put a link there.
    if (dir.uid === 0 && !(dir.mode & 0o022)) return undefined;
  } catch {
    return undefined;
  }
  const linked: string[] = [];
  for (const p of [path, `${path}-wal`, `${path}-shm`, `${path}-journal`]) {
    try {
      const s = lstatSync(p);
      if (s.isSymbolicLink() || (s.isFile() && s.nlink > 1)) linked.push(p);
    } catch {
      // absent
    }
  }
  if (!linked.length) return undefined;
  return `${linked.join(', ')} a symlink or a file with more than one name (hard link), in ${dirname(path)}, which another user can write: root does not open it (SQLite would hand the file it names to the database's owner); remove it`;
}

/**
 * Why SQLite must not open the file at `path`: it, its -wal, -shm or -journal
 * is there but not a regular file. A FIFO put as the -journal (the directory's
 * owner may) made SQLite wait for ever (measured): it opens a journal it
 * finds, to look for a hot one, without O_NONBLOCK. For any user, not only
 * root; a symlink is followed here (root refuses those: linkedSqliteAdvice).
 * Undefined when all is well.
 */
export function nonRegularSqliteAdvice(path: string): string | undefined {
  const odd: string[] = [];
  for (const p of [path, `${path}-wal`, `${path}-shm`, `${path}-journal`]) {
    try {
      const s = statSync(p);
      if (!s.isFile()) odd.push(`${p} is ${kindOf(s)}`);
    } catch {
      // absent
    }
  }
  if (!odd.length) return undefined;
  return `${odd.join(', ')}, not a regular file: SQLite does not open it (a FIFO would hang it); remove it`;
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
  let dirOwner: number | undefined;
  try {
    dirOwner = statSync(dir).uid;
  } catch {
    // no directory yet
  }
  if (dirOwner !== undefined && dirOwner !== 0 && dirOwner !== process.geteuid?.()) {
    // Another user's data (the MTA's): chowning it to this user would take it from the MTA.
    const them = nameOf('/etc/passwd', dirOwner);
    return `${denied.join(', ')} not writable by ${who} (this process's user): ${dir} is ${them}'s; run this as ${them} or as root`;
  }
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
    if (dir.uid === 0) return undefined;
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
