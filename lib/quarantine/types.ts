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
}

export interface QuarantineStore {
  /** Keeps the whole message; resolves only once it is safely on disk. */
  put(entry: QuarantineEntry, raw: Buffer): Promise<void>;
  get(ref: string): Promise<{ entry: QuarantineEntry; raw: Buffer } | null>;
  close(): Promise<void>;
}
