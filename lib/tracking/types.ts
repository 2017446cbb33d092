import type { ScoredSymbol } from '../score/types';

/** One compact row per SMTP transaction: what came in, what fired, what we did. */
export interface TrackingRow {
  ref: string;
  /** ISO 8601 time the transaction started. */
  time: string;
  node: string;
  queueId: string | null;
  messageId: string | null;
  remoteIp: string;
  ptr: string | null;
  helo: string | null;
  mailFrom: string | null;
  rcptTo: string[];
  size: number | null;
  /** Score per symbol group (one per scanner: reputation, auth, content, ...). */
  groups: Record<string, number>;
  score: number;
  /** accept, add_header, quarantine, soft_reject, reject; or the phase's refusal. */
  action: string;
  /** Phase the transaction ended in: connect, helo, mail, rcpt, data. */
  phase: string;
  symbols: ScoredSymbol[];
  reason: string;
  /** 'ok' or what could not be parsed. */
  parseResult: string;
  processingMs: number;
}

export interface TraceFilter {
  since?: Date;
  ip?: string;
  from?: string;
  to?: string;
  action?: string;
  limit?: number;
}

/** Where rows go. `write` never blocks or throws: rows are queued and written in batches. */
export interface TrackingWriter {
  write(row: TrackingRow): void;
  /** Writes what is queued (and replays any spool) now. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export interface TrackingReader {
  find(filter: TraceFilter): Promise<TrackingRow[]>;
  get(ref: string): Promise<TrackingRow | null>;
  close(): Promise<void>;
}
