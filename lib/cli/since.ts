import { UserError } from './types';

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** `--since` for every command: an ISO date/time, or a span back from now such as 30m, 1h, 2d, 1w. */
export function parseSince(value: string, now = Date.now()): Date {
  const span = /^(\d+(?:\.\d+)?)\s*([smhdw])$/i.exec(value.trim());
  const back = span ? now - Number(span[1]) * UNITS[span[2]!.toLowerCase()]! : NaN;
  // Past about 270,000 years back a Date is no longer a time at all.
  if (span && Number.isFinite(new Date(back).getTime())) return new Date(back);
  if (/^\d{4}-\d{2}-\d{2}/.test(value)) {
    const time = Date.parse(value);
    if (!Number.isNaN(time)) return new Date(time);
  }
  throw new UserError(`--since ${JSON.stringify(value)}: give an ISO time (2026-01-31 or 2026-01-31T08:00Z) or a span such as 30m, 1h, 2d, 1w`);
}
