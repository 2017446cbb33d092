import { createTransport } from 'nodemailer';
import { ClaimBusyError, describeClaim, type Claim } from './claim';
import { damage, type FileQuarantine } from './files';
import { heldRefOfReply } from '../score/verdict';
import { releaseHeaderLine, releaseKey, signRelease } from './release-token';
import type { QuarantineRecord } from './types';

export interface ReleaseOptions {
  host: string;
  port: number;
  /** Learns the message as ham once it is delivered (the content classifier), if available. */
  /** Learns the released message as ham; resolves to what happened (e.g. 'learnt', 'relearnt'). */
  learnHam?: (raw: Buffer) => Promise<string>;
  /** Release a message again even if it was released before. */
  force?: boolean;
  /** Give up on the SMTP server after this long (ms). */
  timeoutMs?: number;
  now?: () => number;
}

export interface ReleaseResult {
  record: QuarantineRecord;
  /** The MTA's answer to the re-injected message. */
  response: string;
  /** What learning did ('learnt', 'already learnt', 'relearnt'), 'not available', or why it failed (the release itself succeeded). */
  learned: string;
  /** Worth telling the operator (a stale lock taken over). */
  warnings: string[];
}

/** What clears a REF.delivered marker (docs/quarantine.md says the same). */
const SETTLE_HINT = 'once the quarantine directory can be written again, `mailward quarantine list` records it as released';

/** A release that did not happen; the message is still held and the error recorded. */
export class ReleaseError extends Error {
  override name = 'ReleaseError';
}

/** Puts the stamp on top of the message: the rules module honours it once, for the released recipients. */
function stamped(raw: Buffer, stamp: string): Buffer {
  const eol = raw.includes('\r\n') ? '\r\n' : '\n';
  return Buffer.concat([Buffer.from(releaseHeaderLine(stamp, eol)), raw]);
}

/**
 * Re-injects a held message into the MTA by SMTP with its original envelope,
 * stamped so the checks accept it. Nothing is lost: if the MTA does not take
 * it, the message stays held with the error recorded. Delivered once: the
 * message is locked (REF.lock) from before its status is read until its new
 * status is written, so a second release at the same time is refused.
 */
export async function releaseMessage(store: FileQuarantine, ref: string, options: ReleaseOptions): Promise<ReleaseResult> {
  const now = options.now ?? Date.now;
  let claim;
  try {
    claim = await store.claim(ref, 'release');
  } catch (err) {
    if (err instanceof ClaimBusyError) throw new ReleaseError(`${err.message}: not sent`);
    const { delivered } = await store.lockState(ref).catch(() => ({ delivered: null }));
    if (delivered) throw new ReleaseError(`${ref} was delivered at ${delivered}, but its status is still not recorded (${(err as Error).message}): not sent again; ${SETTLE_HINT}`);
    throw new ReleaseError(`${ref} cannot be locked for its release, so it is not sent: ${(err as Error).message}`);
  }
  try {
    const warnings = claim.tookOver
      ? [`took over a stale lock of ${ref} (${describeClaim(claim.tookOver.info)}: ${claim.tookOver.reason}); if that was a release that crashed, the message may have gone out already`]
      : [];
    return { ...(await releaseClaimed(store, ref, options, now, claim)), warnings };
  } finally {
    await claim.release();
  }
}

async function releaseClaimed(store: FileQuarantine, ref: string, options: ReleaseOptions, now: () => number, claim: Claim): Promise<Omit<ReleaseResult, 'warnings'>> {
  // A release that went out before without its status being written: record it, never send it again.
  const unrecorded = await store.settleDelivered(ref);
  if (unrecorded) throw new ReleaseError(`${ref} was delivered at ${unrecorded.time}, but its status is still not recorded (${unrecorded.error}): not sent again; ${SETTLE_HINT}`);
  const held = await store.get(ref);
  if (!held) throw new ReleaseError(`no quarantined message ${ref}`);
  const { entry, raw } = held;
  // Before --force is looked at: what is left of a damaged message must not go out, nor be learnt as ham.
  const damaged = damage(entry, raw);
  if (damaged) {
    throw new ReleaseError(`${ref} is damaged, so it is not released (--force or not): ${damaged} (cut short or changed on disk since); read what is left with \`mailward quarantine show ${ref} --raw\`, or delete it`);
  }
  if (entry.status === 'released' && !options.force) {
    throw new ReleaseError(`${ref} was already released at ${entry.statusTime ?? '(unknown time)'}; add --force to deliver it again`);
  }
  if (entry.recovered) throw new ReleaseError(`${ref} was ${entry.recovered}, so it cannot be released; read it with \`mailward quarantine show ${ref} --raw\`, or delete it`);
  if (!entry.rcptTo.length) throw new ReleaseError(`${ref} has no recipients to release to`);
  const key = releaseKey(store.dir, true)!;
  // The stamp covers exactly the held recipients, the ones this release sends to.
  const message = stamped(raw, signRelease(key, ref, { mailFrom: entry.mailFrom, rcptTo: entry.rcptTo }, raw, now()));
  const timeout = options.timeoutMs ?? 30_000;
  const transport = createTransport({
    host: options.host,
    port: options.port,
    secure: false,
    // Our own MTA on the loopback: a self-signed certificate must not stop a release.
    tls: { rejectUnauthorized: false },
    connectionTimeout: timeout,
    greetingTimeout: timeout,
    socketTimeout: timeout,
  });
  let response: string;
  let partial: string | undefined;
  try {
    const info = await transport.sendMail({ envelope: { from: entry.mailFrom, to: entry.rcptTo }, raw: message });
    const rejected = (info.rejected ?? []).map(String);
    // Delivered to some: it is released (retrying would duplicate it for the others); say who missed it.
    if (rejected.length) partial = `recipients refused by ${options.host}:${options.port}: ${rejected.join(', ')}`;
    response = info.response;
  } catch (err) {
    const error = `release to ${options.host}:${options.port} failed: ${(err as Error).message}`;
    const noted = await store.update(ref, { status: 'held', statusTime: new Date(now()).toISOString(), error }).then(
      () => '',
      (e: Error) => ` (and this error could not be recorded: ${e.message})`,
    );
    throw new ReleaseError(`${ref} stays in quarantine: ${error}${noted}`);
  } finally {
    transport.close();
  }
  // A 250 that says "held for review": the MTA did not honour the stamp (used before, the rules
  // plugin missing, another release.key) and holds a copy under a new ref. Nothing was delivered.
  const heldAgain = heldRefOfReply(response);
  if (heldAgain) {
    const error = `${options.host}:${options.port} held it again as ${heldAgain} (${response}): its release stamp was not honoured`;
    const noted = await store.update(ref, { status: entry.status, statusTime: new Date(now()).toISOString(), error }).then(
      () => '',
      (e: Error) => ` (and this could not be recorded: ${e.message})`,
    );
    throw new ReleaseError(
      `${ref} was not delivered: ${error}, see the MTA's log (a stamp used before, the rules plugin not loaded, another release.key)${noted}. ` +
        `${ref} stays ${entry.status}; ${heldAgain} is the same message held again: delete one of the two`,
    );
  }
  let record: QuarantineRecord;
  try {
    record = await store.update(ref, { status: 'released', statusTime: new Date(now()).toISOString(), error: partial });
  } catch (err) {
    // It went out: whatever failed here (a full disk, the record deleted meanwhile), it must not go out again.
    const reason = (err as Error).message;
    await claim.markDelivered(`${response}; status not recorded: ${reason}`).catch(() => {});
    throw new ReleaseError(`${ref} delivered (${response}) to ${entry.rcptTo.join(', ')} via ${options.host}:${options.port}, but its status could not be recorded: ${reason}. It will not be sent again; ${SETTLE_HINT}`);
  }
  let learned = 'not available';
  if (options.learnHam) {
    try {
      learned = await options.learnHam(raw);
    } catch (err) {
      learned = `learning failed: ${(err as Error).message}`;
    }
  }
  return { record, response, learned };
}
