import { ACTIONS } from '../../score/types';
import type { TrackingRow } from '../../tracking/types';
import { closeTracking, findSpooled, formatScore, openTracking, spoolNames, tryRead } from '../tracking';
import { parseSince } from '../since';
import { jsonText, oneLine } from '../safe-text';
import { type CliCommand, type CliIO, UserError } from '../types';
import { longest } from '../../util/text';

function parseLimit(value: string | undefined): number {
  if (value === undefined) return 50;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UserError(`--limit ${JSON.stringify(value)}: give a whole number of rows, 1 or more`);
  return n;
}

function clip(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, width - 1)}…`;
}

/** Column titles and the widest a value may make them (the last column is never cut). */
const COLUMNS = [
  { title: 'TIME (UTC)', max: 19 },
  { title: 'REF', max: 12 },
  { title: 'IP', max: 39 },
  { title: 'ACTION', max: 24 },
  { title: 'SCORE', max: 8 },
  { title: 'FROM', max: 32 },
  { title: 'TO', max: 32 },
  { title: 'TOP SYMBOLS', max: Infinity },
];

function cells(row: TrackingRow): string[] {
  const to = row.rcptTo.length ? `${row.rcptTo[0]}${row.rcptTo.length > 1 ? ` +${row.rcptTo.length - 1}` : ''}` : '-';
  const top = [...row.symbols]
    .sort((a, b) => Math.abs(b.score) - Math.abs(a.score))
    .slice(0, 3)
    .map((s) => `${s.name}(${formatScore(s.score)})`)
    .join(' ');
  return [
    row.time.slice(0, 19).replace('T', ' '),
    row.ref,
    row.remoteIp,
    row.phase === 'data' ? row.action : `${row.action}@${row.phase}`,
    formatScore(row.score),
    row.mailFrom === null ? '-' : row.mailFrom === '' ? '<>' : row.mailFrom,
    to,
    top || '-',
  ];
}

function printTable(io: CliIO, rows: TrackingRow[]): void {
  // Cells are escaped before widths are measured: clients and senders write most of them.
  const table = rows.map((row) => cells(row).map(oneLine));
  const widths = COLUMNS.map((c, i) => Math.min(c.max, longest(table.map((r) => r[i]!), c.title.length)));
  const line = (values: string[]) => values.map((v, i) => clip(v, widths[i]!).padEnd(widths[i]!)).join('  ').trimEnd();
  io.out(line(COLUMNS.map((c) => c.title)));
  for (const row of table) io.out(line(row));
}

export const command: CliCommand = {
  name: 'trace',
  summary: 'list tracked SMTP transactions (newest first), filtered by time, client, envelope or action',
  usage: 'mailward trace [--config DIR] [--since ISO|30m|1h|2d] [--ip A] [--from F] [--to T] [--action A] [--limit N] [--json]',
  options: {
    config: { type: 'string' },
    since: { type: 'string' },
    ip: { type: 'string' },
    from: { type: 'string' },
    to: { type: 'string' },
    action: { type: 'string' },
    limit: { type: 'string' },
    json: { type: 'boolean' },
  },
  async run(args, io, cli) {
    const v = args.values as { config?: string; since?: string; ip?: string; from?: string; to?: string; action?: string; limit?: string; json?: boolean };
    if (args.positionals.length) throw new UserError(`unexpected argument ${JSON.stringify(args.positionals[0])}\nusage: ${command.usage}`);
    const limit = parseLimit(v.limit);
    const since = v.since === undefined ? undefined : parseSince(v.since);
    if (v.action !== undefined && !/^[a-z_]+$/.test(v.action)) {
      throw new UserError(`--action ${JSON.stringify(v.action)}: one of ${ACTIONS.join(', ')} or an early end such as abandoned; a refusal shown as reject@rcpt is found with --action reject`);
    }
    const filter = { since, ip: v.ip, from: v.from, to: v.to, action: v.action, limit };
    const source = openTracking(cli.loadConfig(v.config));
    try {
      const stored = await tryRead(source, (r) => r.find(filter));
      // The database cannot be read: show what waits in the spool (the newest rows, as a rule),
      // and still fail, because the list lacks every stored row.
      const rows = stored ?? (await findSpooled(source.spoolFiles, filter));
      if (v.json) {
        for (const row of rows) io.out(jsonText(row));
      } else if (rows.length || stored) {
        printTable(io, rows);
      }
      if (source.problem) {
        const spooled = rows.length
          ? `listed only the ${rows.length} row${rows.length === 1 ? '' : 's'} waiting in the spool (${spoolNames(source)})`
          : source.spoolFiles.length
            ? `and none of the rows waiting in the spool (${spoolNames(source)}) match`
            : `and no rows wait in a spool (${spoolNames(source)})`;
        throw new UserError(`${source.problem}; ${spooled}`, 1);
      }
      if (!v.json) {
        io.err(`${rows.length} row${rows.length === 1 ? '' : 's'} from ${source.where}${rows.length === limit ? ` (limit ${limit}: --limit N for more)` : ''}; mailward explain REF tells the whole story`);
      }
      if (source.spoolFiles.length) io.err(`note: ${source.spoolFiles.join(' and ')} hold rows not yet in the database (it was unreachable); they appear once replayed`);
      return 0;
    } finally {
      await closeTracking(source);
    }
  },
};
