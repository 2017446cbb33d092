import { createTransport } from 'nodemailer';
import type { FileQuarantine } from './files';
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
}

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
 * it, the message stays held with the error recorded.
 */
export async function releaseMessage(store: FileQuarantine, ref: string, options: ReleaseOptions): Promise<ReleaseResult> {
  const now = options.now ?? Date.now;
  const held = await store.get(ref);
  if (!held) throw new ReleaseError(`no quarantined message ${ref}`);
  const { entry, raw } = held;
  if (entry.status === 'released' && !options.force) {
    throw new ReleaseError(`${ref} was already released at ${entry.statusTime ?? '(unknown time)'}; add --force to deliver it again`);
  }
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
    await store.update(ref, { status: 'held', statusTime: new Date(now()).toISOString(), error });
    throw new ReleaseError(`${ref} stays in quarantine: ${error}`);
  } finally {
    transport.close();
  }
  const record = await store.update(ref, { status: 'released', statusTime: new Date(now()).toISOString(), error: partial });
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
