import type { Verdict } from '../score/types';

/** What a held message is stored with, so it can be shown, released or deleted later. */
export interface QuarantineEntry {
  ref: string;
  /** ISO 8601 time it was held. */
  time: string;
  mailFrom: string;
  rcptTo: string[];
  subject: string;
  remoteIp: string;
  score: number;
  reason: string;
  symbols: Verdict['symbols'];
  /**
   * What authentication decided, as data, for the commands that act on a held message
   * (release-approve). Absent in records written before mailward kept it, and when the auth
   * check did not run.
   */
  auth?: HeldAuth;
}

/** The part of the auth check's results a held message keeps (heldAuth). */
export interface HeldAuth {
  /**
   * The From: domain (ASCII, lower case) a trusted ARC sealer vouched for: the auth check
   * neutralised its DMARC fail (DMARC_FAIL_ARC_OVERRIDE) and the sealer recorded dmarc=pass for
   * this very, single From: domain (sealerRecordedPass, as the rules' allow entries ask). '' none.
   */
  arcVouchedFor: string;
}

/** held: waiting; released: delivered again by `mailward quarantine release` (kept until retention ends). */
export type QuarantineStatus = 'held' | 'released';

/** An entry with what happened to it since. */
export interface QuarantineRecord extends QuarantineEntry {
  status: QuarantineStatus;
  /** ISO 8601 time of the last release or failed release. */
  statusTime?: string;
  /** Why the last release failed (the message stays held). */
  error?: string;
  /** Set when the record was rebuilt from the message alone (its own was never written): the envelope is unknown. */
  recovered?: string;
  /**
   * Bytes of the message as it was held (REF.eml): a file cut short or emptied
   * on disk since is refused for release (see damage() in files.ts). Absent in
   * records written before mailward kept it: those are not checked.
   */
  size?: number;
}

export interface QuarantineFilter {
  /** Only messages for this recipient (any of the message's recipients). */
  rcpt?: string;
  since?: Date;
  /** Default: held only. */
  status?: QuarantineStatus | 'all';
  limit?: number;
}

/** How many messages are held (status held) and when the oldest of them was held. */
export interface HeldSummary {
  count: number;
  /** ISO 8601 time the oldest held message was held; absent when none is held. */
  oldest?: string;
}

export interface QuarantineStore {
  /** Keeps the whole message; resolves only once it is safely on disk. */
  put(entry: QuarantineEntry, raw: Buffer): Promise<void>;
  get(ref: string): Promise<{ entry: QuarantineEntry; raw: Buffer } | null>;
  close(): Promise<void>;
}

/**
 * A searchable index of the held messages (the files stay the source of
 * truth; an index can always be rebuilt from them).
 */
export interface QuarantineIndex {
  readonly description: string;
  upsert(record: QuarantineRecord): Promise<void>;
  /** Many at once (a sync), in few transactions. */
  upsertMany(records: QuarantineRecord[]): Promise<void>;
  get(ref: string): Promise<QuarantineRecord | null>;
  list(filter: QuarantineFilter): Promise<QuarantineRecord[]>;
  delete(ref: string): Promise<void>;
  deleteMany(refs: string[]): Promise<void>;
  /** Refs of every indexed message. */
  refs(): Promise<Set<string>>;
  /** Refs held before this time. */
  olderThan(time: Date): Promise<string[]>;
  /** Messages held (status held), counted by the index: no record is read. */
  held(): Promise<HeldSummary>;
  /** How often the index was found corrupt and started empty (SQLite): a caller that saw it change syncs again. */
  readonly resets?: number;
  close(): Promise<void>;
}
