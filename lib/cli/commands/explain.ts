import type { SymbolTable } from '../../score/symbol-table';
import type { TrackingRow } from '../../tracking/types';
import { closeTracking, envelopeAddress, findInSpool, formatScore, openTracking, spoolNames, tryRead } from '../tracking';
import { jsonText, oneLineIO } from '../safe-text';
import { type CliCommand, type CliIO, UserError } from '../types';
import { longest } from '../../util/text';

const GONE = '(no longer registered: renamed or removed since this row was written)';

function describe(symbols: SymbolTable, name: string): string | null {
  return symbols.has(name) ? symbols.get(name).description : null;
}

function printStory(io: CliIO, row: TrackingRow, symbols: SymbolTable): void {
  const label = (name: string) => name.padEnd(11);
  io.out(`${label('ref')}${row.ref}`);
  io.out(`${label('time')}${row.time} on ${row.node}${row.queueId ? ` (queue id ${row.queueId})` : ''}`);
  io.out(`${label('client')}${row.remoteIp}  ptr ${row.ptr ?? '(none)'}  helo ${row.helo ?? '(none)'}`);
  io.out(`${label('mail from')}${envelopeAddress(row.mailFrom)}${row.mailFrom === '' ? ' (null sender: a bounce or notification)' : ''}`);
  io.out(`${label('rcpt to')}${row.rcptTo.length ? row.rcptTo.map((r) => `<${r}>`).join(', ') : '(none)'}`);
  const size = row.size === null ? 'no message (ended before DATA)' : `${row.size} bytes`;
  io.out(`${label('message')}${row.messageId ? `Message-ID ${row.messageId}, ` : row.size !== null ? 'no Message-ID, ' : ''}${size}`);
  io.out(`${label('parse')}${row.parseResult}`);
  io.out(`${label('action')}${row.action} (score ${formatScore(row.score)}, decided at ${row.phase})`);
  io.out(`${label('reason')}${row.reason}`);
  const groups = Object.entries(row.groups).sort((a, b) => b[1] - a[1]);
  io.out(`${label('groups')}${groups.length ? groups.map(([g, s]) => `${g} ${formatScore(s)}`).join(', ') : '(none)'}`);
  io.out(`${label('symbols')}${row.symbols.length ? `${row.symbols.length}, by score` : '(none fired)'}`);
  const width = longest(row.symbols.map((s) => s.name));
  for (const s of [...row.symbols].sort((a, b) => b.score - a.score)) {
    const score = `${s.score > 0 ? '+' : ''}${formatScore(s.score)}`.padStart(7);
    io.out(`  ${score}  ${s.name.padEnd(width)}  ${s.group}${s.detail ? `: ${s.detail}` : ''}`);
    io.out(`  ${' '.repeat(7)}  ${' '.repeat(width)}  ${describe(symbols, s.name) ?? GONE}`);
  }
  io.out(`${label('processing')}${formatScore(row.processingMs)} ms`);
}

export const command: CliCommand = {
  name: 'explain',
  summary: 'tell the whole story of one tracked transaction by its ref (from the SMTP reply or X-Mailward-Ref)',
  usage: 'mailward explain REF [--config DIR] [--json]',
  options: {
    config: { type: 'string' },
    json: { type: 'boolean' },
  },
  async run(args, io, cli) {
    const v = args.values as { config?: string; json?: boolean };
    if (args.positionals.length !== 1) throw new UserError(`give exactly one ref\nusage: ${command.usage}`);
    // Refs are Crockford base32: read aloud or retyped, they come back in any case.
    const ref = args.positionals[0]!.trim().replace(/^ref\s+/i, '').toUpperCase();
    if (!/^[0-9A-Z]{1,32}$/.test(ref)) throw new UserError(`${JSON.stringify(args.positionals[0])} is not a ref (10 letters and digits, e.g. 7KQ2M9XA4F)`);
    const source = openTracking(cli.loadConfig(v.config));
    try {
      let row = await tryRead(source, (r) => r.get(ref));
      let spooledIn: string | null = null;
      // Also when the database cannot be read: that is when rows wait in the spool.
      if (!row) {
        const found = await findInSpool(source.spoolFiles, ref);
        if (found) ({ row, file: spooledIn } = found);
      }
      if (!row) {
        if (source.problem) throw new UserError(`no tracked transaction with ref ${ref} in the spool (${spoolNames(source)}), and ${source.problem}`, 1);
        throw new UserError(`no tracked transaction with ref ${ref} in ${source.where}`, 1);
      }
      const symbols = source.config.symbols;
      if (v.json) {
        io.out(jsonText({ ...row, symbols: row.symbols.map((s) => ({ ...s, description: describe(symbols, s.name) })) }));
      } else {
        // Every line quotes the transaction (HELO, PTR, addresses, Message-ID, details): each is escaped whole.
        printStory(oneLineIO(io), row, symbols);
      }
      if (spooledIn) {
        const why = source.problem ? `the database could not be read: ${source.problem}` : 'it was unreachable when the row was written';
        io.err(`note: this row is in the spool, not yet in the database (${why}); it goes in once replayed from ${spooledIn}`);
      }
      return 0;
    } finally {
      await closeTracking(source);
    }
  },
};
