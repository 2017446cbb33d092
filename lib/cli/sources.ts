import { closeSync, constants, existsSync, fstatSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { oneLine } from './safe-text';
import { UserError } from './types';

/**
 * What a path gave: a message, an entry that could not be read (a dangling
 * symbolic link, no permission: the caller reports it and goes on), or a file
 * that is not a message (no header block: an image, a README).
 */
export type SourceEntry =
  /** name: the file, or "file#N" for the Nth message of an mbox. */
  | { kind: 'message'; name: string; raw: Buffer }
  | { kind: 'unreadable'; name: string; reason: string }
  | { kind: 'not a message'; name: string };

/** Read this much of an mbox at a time: memory stays bounded by the largest message. */
const MBOX_CHUNK = 1 << 20;
const FROM = Buffer.from('From ', 'latin1');
const GT = 0x3e;
const LF = 0x0a;

/** A message starts with a header field (`Name:`, RFC 5322 field name characters), not a blank line, text or binary. */
function hasHeaderBlock(head: Buffer): boolean {
  return /^[!-9;-~]+:/.test(head.subarray(0, 1000).toString('latin1'));
}

function entry(name: string, raw: Buffer): SourceEntry {
  return hasHeaderBlock(raw) ? { kind: 'message', name, raw } : { kind: 'not a message', name };
}

/** "ENOENT: no such file or directory" (without the path Node appends: the entry's name says it). */
function reasonOf(err: unknown): string {
  return (err as Error).message.replace(/, \w+ '.*'$/s, '');
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function isMaildir(dir: string): boolean {
  return ['cur', 'new'].every((d) => isDirectory(join(dir, d)));
}

function readHead(fd: number, bytes: number): Buffer {
  const head = Buffer.alloc(bytes);
  return head.subarray(0, readSync(fd, head, 0, bytes, 0));
}

/**
 * Opens a file the walk found to be a regular one, refusing it if it is not one now: the owner of
 * a Maildir walked as root can swap a message for a FIFO after the walk's stat, and an open or a
 * read of it would wait for ever. O_NONBLOCK makes the open of a FIFO return at once (on a regular
 * file it changes nothing); the descriptor's own type is then checked. Symlinks are followed, as
 * the walk does: the operator named these paths.
 */
function openMessageFile(file: string): number {
  const fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  if (!fstatSync(fd).isFile()) {
    closeSync(fd);
    throw new Error('not a regular file (a FIFO, a device or a socket put there since it was listed)');
  }
  return fd;
}

/**
 * What the line starting at `at` is: a "From " separator, a quoted ">From "
 * (mboxrd/mboxo: one '>' is taken off), any other line, or undecided when the
 * chunk ends before it can tell.
 */
function lineKind(data: Buffer, at: number, eof: boolean): 'from' | 'quoted' | 'plain' | 'undecided' {
  let i = at;
  while (i < data.length && data[i] === GT) i++;
  // Past a mail line's length of '>' it is no quote: do not wait (and copy) for the rest of such a line.
  if (i - at > 998) return 'plain';
  const have = Math.min(FROM.length, data.length - i);
  if (data.compare(FROM, 0, have, i, i + have) !== 0) return 'plain';
  if (have < FROM.length) return eof ? 'plain' : 'undecided';
  return i === at ? 'from' : 'quoted';
}

/**
 * The messages of an mbox (mboxrd/mboxo), read a chunk at a time and yielded
 * one by one: a message starts after a "From " line, and ">From " quoting is
 * undone. `chunkSize` is for tests.
 */
export function* mboxMessages(file: string, chunkSize = MBOX_CHUNK): Generator<SourceEntry> {
  const fd = openMessageFile(file);
  try {
    yield* mboxFrom(fd, file, chunkSize);
  } finally {
    closeSync(fd);
  }
}

/** mboxMessages of the mbox open as `fd`, read from its start. */
function* mboxFrom(fd: number, file: string, chunkSize = MBOX_CHUNK): Generator<SourceEntry> {
  let position = 0;
  let parts: Buffer[] = [];
  let count = 0;
  let carry = Buffer.alloc(0); // the start of a line too short yet to tell what it is
  let lineStart = true; // the next byte starts a line
  let dropLine = false; // inside a "From " line, which is not part of any message
  for (;;) {
    const chunk = Buffer.allocUnsafe(chunkSize);
    const got = readSync(fd, chunk, 0, chunkSize, position);
    position += got;
    const eof = got === 0;
    const data = carry.length ? Buffer.concat([carry, chunk.subarray(0, got)]) : chunk.subarray(0, got);
    carry = Buffer.alloc(0);
    let pos = 0;
    let kept = 0; // data[kept, pos) belongs to the current message, not yet in parts
    while (pos < data.length) {
      if (lineStart) {
        const kind = lineKind(data, pos, eof);
        if (kind === 'undecided') {
          carry = data.subarray(pos);
          break;
        }
        if (kind === 'from') {
          if (pos > kept) parts.push(data.subarray(kept, pos));
          if (count) yield entry(`${file}#${count}`, Buffer.concat(parts));
          parts = [];
          count++;
          dropLine = true;
        } else if (kind === 'quoted') {
          if (pos > kept) parts.push(data.subarray(kept, pos));
          kept = pos + 1;
        }
        lineStart = false;
      }
      const nl = data.indexOf(LF, pos);
      pos = nl < 0 ? data.length : nl + 1;
      if (dropLine) kept = pos;
      if (nl >= 0) {
        lineStart = true;
        dropLine = false;
      }
    }
    const end = carry.length ? data.length - carry.length : data.length;
    if (end > kept) parts.push(data.subarray(kept, end));
    if (eof) break;
  }
  if (count) yield entry(`${file}#${count}`, Buffer.concat(parts));
}

function* fileMessages(file: string): Generator<SourceEntry> {
  // One descriptor for the whole file: its name is never opened again (see openMessageFile).
  const fd = openMessageFile(file);
  try {
    const head = readHead(fd, 1000);
    if (head.subarray(0, FROM.length).equals(FROM)) yield* mboxFrom(fd, file);
    // Without reading the whole of what is not a message (an image, a video).
    else if (!hasHeaderBlock(head)) yield { kind: 'not a message', name: file };
    else yield entry(file, readFileSync(fd));
  } finally {
    closeSync(fd);
  }
}

/** `visited`: directories already read (device and inode), so that a symbolic link loop is followed once. */
function* walk(path: string, visited: Set<string>): Generator<SourceEntry> {
  let stat;
  try {
    stat = statSync(path);
    if (!stat.isDirectory()) {
      if (stat.isFile()) yield* fileMessages(path);
      return;
    }
  } catch (err) {
    yield { kind: 'unreadable', name: path, reason: reasonOf(err) };
    return;
  }
  const id = `${stat.dev}:${stat.ino}`;
  if (visited.has(id)) return;
  visited.add(id);
  for (const dir of isMaildir(path) ? ['new', 'cur'].map((d) => join(path, d)) : [path]) {
    let entries: string[];
    try {
      entries = readdirSync(dir).sort();
    } catch (err) {
      yield { kind: 'unreadable', name: dir, reason: reasonOf(err) };
      continue;
    }
    for (const name of entries) {
      if (name.startsWith('.')) continue;
      const child = join(dir, name);
      // A maildir's tmp/ holds messages still being written.
      if (name === 'tmp' && isDirectory(child)) continue;
      yield* walk(child, visited);
    }
  }
}

/**
 * Every message under the given paths: single files (.eml or anything),
 * directories (recursively, each once), maildirs (new/ and cur/) and mbox
 * files (read as a stream). A missing path is a UserError naming it; an
 * entry that cannot be read, or is not a message, is yielded as such and the
 * walk goes on.
 */
export function* readMessages(paths: string[]): Generator<SourceEntry> {
  const visited = new Set<string>();
  for (const path of paths) {
    // Escaped whole (a newline too): the error is printed as lines, and a path is one.
    if (!existsSync(path)) throw new UserError(`no such file or directory: ${oneLine(path)}`);
    yield* walk(path, visited);
  }
}
