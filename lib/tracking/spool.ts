import { appendFileSync, closeSync, createReadStream, existsSync, fstatSync, mkdirSync, openSync, readSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';
import type { Logger } from '../checks/types';
import type { TrackingRow } from './types';

export interface ReplayResult {
  /** Rows read back from the spool. */
  rows: number;
  /** Rows the database did not have yet. */
  added: number;
  /** Lines that were not a row (a write torn by a crash). */
  skipped: number;
}

/**
 * Append-only JSON-lines file for rows the database could not take.
 *
 * Replay first renames the file to `<path>.replaying` (appends are synchronous,
 * so none can interleave with the rename), inserts its rows in batches and
 * deletes it only once every batch is in. A crash or a failure part-way leaves
 * the `.replaying` file, which the next replay starts with; rows already
 * inserted are ignored then because the database keys rows by ref. So a row
 * is never lost and never stored twice.
 */
export class Spool {
  readonly replayingPath: string;
  private checkedTail = false;

  constructor(
    readonly path: string,
    private readonly log?: Logger,
  ) {
    this.replayingPath = `${path}.replaying`;
  }

  /** Appends rows; never throws (a failure is logged with the number of rows lost). */
  append(rows: TrackingRow[]): boolean {
    if (!rows.length) return true;
    try {
      let text = '';
      for (const row of rows) text += `${JSON.stringify(row)}\n`;
      if (!this.checkedTail) {
        mkdirSync(dirname(this.path), { recursive: true });
        // A crash mid-append may have left half a line: start ours on a fresh one.
        if (!endsWithNewline(this.path)) text = `\n${text}`;
        this.checkedTail = true;
      }
      appendFileSync(this.path, text);
      return true;
    } catch (err) {
      this.log?.error(`tracking: cannot append to spool ${this.path}: ${(err as Error).message}; ${rows.length} row(s) lost`);
      return false;
    }
  }

  /** True when rows wait in the spool (or in an interrupted replay). */
  hasRows(): boolean {
    return size(this.replayingPath) > 0 || size(this.path) > 0;
  }

  /**
   * Inserts every spooled row, `batchSize` at a time, and removes the spool
   * once they are all in. Rejects (keeping what is not confirmed) when an insert fails.
   */
  async replay(insert: (rows: TrackingRow[]) => Promise<number>, batchSize: number): Promise<ReplayResult> {
    const total: ReplayResult = { rows: 0, added: 0, skipped: 0 };
    // Bounded: rows spooled during a replay are taken in the next round, not chased for ever.
    for (let round = 0; round < 3; round++) {
      if (!existsSync(this.replayingPath)) {
        if (size(this.path) === 0) break;
        renameSync(this.path, this.replayingPath);
        this.checkedTail = false;
      }
      const result = await this.replayFile(insert, batchSize);
      unlinkSync(this.replayingPath);
      total.rows += result.rows;
      total.added += result.added;
      total.skipped += result.skipped;
    }
    return total;
  }

  private async replayFile(insert: (rows: TrackingRow[]) => Promise<number>, batchSize: number): Promise<ReplayResult> {
    const result: ReplayResult = { rows: 0, added: 0, skipped: 0 };
    const lines = createInterface({ input: createReadStream(this.replayingPath, 'utf8'), crlfDelay: Infinity });
    let batch: TrackingRow[] = [];
    try {
      for await (const line of lines) {
        if (!line.trim()) continue;
        const row = parseRow(line);
        if (!row) {
          result.skipped++;
          this.log?.warn(`tracking: skipping a spool line that is not a row (torn write?): ${line.slice(0, 80)}`);
          continue;
        }
        batch.push(row);
        if (batch.length >= batchSize) {
          result.added += await insert(batch);
          result.rows += batch.length;
          batch = [];
        }
      }
      if (batch.length) {
        result.added += await insert(batch);
        result.rows += batch.length;
      }
    } finally {
      lines.close();
    }
    return result;
  }
}

function parseRow(line: string): TrackingRow | null {
  try {
    const row = JSON.parse(line) as TrackingRow;
    return row && typeof row.ref === 'string' && typeof row.time === 'string' ? row : null;
  } catch {
    return null;
  }
}

function size(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

function endsWithNewline(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return true; // no file yet
  }
  try {
    const length = fstatSync(fd).size;
    if (length === 0) return true;
    const last = Buffer.alloc(1);
    readSync(fd, last, 0, 1, length - 1);
    return last[0] === 0x0a;
  } finally {
    closeSync(fd);
  }
}
