import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from './types';

/** One message read from disk, named so a user can find it again. */
export interface SourceMessage {
  /** The file, or "file#N" for the Nth message of an mbox. */
  name: string;
  raw: Buffer;
}

function isMaildir(dir: string): boolean {
  return ['cur', 'new'].every((d) => existsSync(join(dir, d)) && statSync(join(dir, d)).isDirectory());
}

function looksLikeMbox(file: string): boolean {
  const fd = openSync(file, 'r');
  try {
    const head = Buffer.alloc(5);
    readSync(fd, head, 0, 5, 0);
    return head.toString('latin1') === 'From ';
  } finally {
    closeSync(fd);
  }
}

/** Splits an mbox (mboxrd/mboxo): messages start at "From " lines; ">From " quoting is undone. */
function* splitMbox(file: string): Generator<SourceMessage> {
  const text = readFileSync(file).toString('latin1');
  const starts: number[] = [];
  const re = /^From .*$/gm;
  for (let m = re.exec(text); m; m = re.exec(text)) starts.push(m.index);
  for (let i = 0; i < starts.length; i++) {
    const end = i + 1 < starts.length ? starts[i + 1]! : text.length;
    const body = text.slice(text.indexOf('\n', starts[i]!) + 1, end).replace(/^>(>*From )/gm, '$1');
    yield { name: `${file}#${i + 1}`, raw: Buffer.from(body, 'latin1') };
  }
}

function* walk(path: string): Generator<SourceMessage> {
  const stat = statSync(path);
  if (stat.isDirectory()) {
    const dirs = isMaildir(path) ? ['new', 'cur'].map((d) => join(path, d)) : [path];
    for (const dir of dirs) {
      for (const entry of readdirSync(dir).sort()) {
        if (entry.startsWith('.')) continue;
        const child = join(dir, entry);
        const childStat = statSync(child);
        if (childStat.isDirectory()) {
          if (!['tmp'].includes(entry)) yield* walk(child);
        } else if (childStat.isFile()) {
          yield* fileMessages(child);
        }
      }
    }
    return;
  }
  yield* fileMessages(path);
}

function* fileMessages(file: string): Generator<SourceMessage> {
  if (statSync(file).size === 0) {
    yield { name: file, raw: Buffer.alloc(0) };
    return;
  }
  if (looksLikeMbox(file)) yield* splitMbox(file);
  else yield { name: file, raw: readFileSync(file) };
}

/**
 * Every message under the given paths: single files (.eml or anything),
 * directories (recursively), maildirs (new/ and cur/) and mbox files.
 * A missing path is a UserError naming it.
 */
export function* readMessages(paths: string[]): Generator<SourceMessage> {
  for (const path of paths) {
    if (!existsSync(path)) throw new UserError(`no such file or directory: ${path}`);
    yield* walk(path);
  }
}
