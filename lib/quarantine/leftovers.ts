import { link, rename, stat, unlink } from 'node:fs/promises';
import { readRegularFile, replaceFile } from '../util/owner';
import { join } from 'node:path';
import type { Logger } from '../checks/types';
import { createContext, firstHeader } from '../message';
import { LOCK_SUFFIX, readClaim, staleReason } from './claim';
import type { QuarantineRecord } from './types';

/**
 * What a crash or a full disk can leave in the quarantine directory, and what
 * becomes of it. Every put writes REF.eml.tmp, links it to REF.eml, then
 * writes REF.json.tmp and renames it to REF.json; a status change rewrites
 * REF.json the same way. Nothing here is touched before it is this old: a
 * write in progress (a slow disk, a paused process) is never taken for a leftover.
 */
export const LEFTOVER_AGE_MS = 60 * 60_000;

const REF = /^[0-9A-Z]+$/;

/** Why a record was rebuilt from the message alone. */
export const RECOVERED_REASON = 'kept without its record (a crash or a full disk while it was being held): envelope unknown';

/**
 * A message whose record was never written is listed rather than deleted
 * (nothing is lost): held, at the time of its file, with what the message
 * itself says (subject, and the verdict headers mailward put on top). Its
 * envelope is unknown, so it cannot be released, only read, or deleted.
 */
async function recoveredRecord(ref: string, eml: string, mtime: Date): Promise<QuarantineRecord> {
  const ctx = createContext({ ip: '', raw: await readRegularFile(eml, { ownLinksOnly: true }) });
  const score = Number(firstHeader(ctx, 'x-mailward-score'));
  const status = firstHeader(ctx, 'x-mailward-status');
  return {
    ref,
    time: mtime.toISOString(),
    mailFrom: '',
    rcptTo: [],
    subject: firstHeader(ctx, 'subject') ?? '',
    remoteIp: '',
    score: Number.isFinite(score) ? score : 0,
    reason: status ? `${RECOVERED_REASON}; verdict header: ${status}` : RECOVERED_REASON,
    symbols: [],
    status: 'held',
    recovered: RECOVERED_REASON,
  };
}

/** A REF.json.tmp that holds a whole record of REF (the put crashed between its write and its rename). */
async function wholeRecord(path: string, ref: string): Promise<boolean> {
  try {
    const record = JSON.parse((await readRegularFile(path)).toString('utf8')) as Partial<QuarantineRecord>;
    return record.ref === ref && typeof record.time === 'string' && typeof record.mailFrom === 'string' && Array.isArray(record.rcptTo);
  } catch {
    return false;
  }
}

/**
 * Brings leftovers older than LEFTOVER_AGE_MS back in line, given the
 * directory's names: a message without its record is listed (its record
 * restored from a whole REF.json.tmp, else rebuilt from the message); a
 * temporary file is removed (a cut-short message or record is nothing; a
 * whole REF.eml.tmp is a second name of REF.eml, or a message whose put
 * failed, which the MTA then delivered, or was cut short by a crash, when the
 * sender had no answer and sent it again); a stale lock of a message that is
 * gone is removed. Returns the refs whose record was written.
 */
export async function tidyLeftovers(dir: string, names: string[], now: number, log?: Logger): Promise<string[]> {
  const present = new Set(names);
  const old = async (name: string) => {
    try {
      return now - (await stat(join(dir, name))).mtimeMs >= LEFTOVER_AGE_MS;
    } catch {
      return false; // gone meanwhile
    }
  };
  const recorded: string[] = [];
  // Most names are REF.eml and REF.json: only the others are looked at (a big directory lists often).
  const odd = names.filter((n) => n.endsWith('.tmp') || n.endsWith('.stale') || n.endsWith(LOCK_SUFFIX));
  for (const name of odd) {
    const ref = name.slice(0, name.indexOf('.'));
    if (!REF.test(ref)) continue;
    const path = join(dir, name);
    const hasRecord = present.has(`${ref}.json`);
    const hasMessage = present.has(`${ref}.eml`);
    try {
      if (name === `${ref}.json.tmp`) {
        if (!(await old(name))) continue;
        if (!hasRecord && hasMessage && (await wholeRecord(path, ref))) {
          await rename(path, join(dir, `${ref}.json`));
          present.add(`${ref}.json`);
          recorded.push(ref);
          log?.warn(`mailward quarantine: ${ref}: its record was restored from ${name} (a put cut short)`);
        } else await unlink(path);
      } else if (name.endsWith('.tmp') || name.endsWith('.stale')) {
        if (await old(name)) await unlink(path);
      } else if (name === `${ref}${LOCK_SUFFIX}`) {
        const claim = !hasRecord && !hasMessage ? await readClaim(path) : null;
        if (claim && staleReason(claim, now)) await unlink(path);
      }
    } catch (err) {
      log?.warn(`mailward quarantine: could not tidy ${name}: ${(err as Error).message}`);
    }
  }
  // After the .json.tmp pass: a record restored there is not rebuilt here.
  for (const name of names) {
    if (!name.endsWith('.eml')) continue;
    const ref = name.slice(0, -'.eml'.length);
    if (present.has(`${ref}.json`) || !REF.test(ref) || !(await old(name))) continue;
    try {
      const eml = join(dir, name);
      const record = await recoveredRecord(ref, eml, (await stat(eml)).mtime);
      // Whole or not at all (a temporary name), and never over a record a late put wrote meanwhile (link, not rename).
      const tmp = join(dir, `${ref}.json.recovered.tmp`);
      try {
        replaceFile(tmp, JSON.stringify(record, null, 2)); // The MTA's, when the CLI (root) recovers it (util/owner).
        await link(tmp, join(dir, `${ref}.json`));
      } finally {
        await unlink(tmp).catch(() => {});
      }
      present.add(`${ref}.json`);
      recorded.push(ref);
      log?.warn(`mailward quarantine: ${ref}: ${RECOVERED_REASON}; listed as held (show, or delete it)`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') log?.warn(`mailward quarantine: ${ref}.eml has no record and none could be written: ${(err as Error).message}`);
    }
  }
  return recorded;
}
