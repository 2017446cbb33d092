import { isIP } from 'node:net';
import { createContext, firstHeader } from '../../message';
import { createMailward, type ScanResult } from '../../index';
import { createStateStore } from '../../state';
import { OverlayStore } from '../../state/overlay';
import { silentLogger } from '../../runtime';
import { readMessages } from '../sources';
import { jsonText, oneLine, oneLineIO } from '../safe-text';
import { type CliCommand, type CliIO, UserError } from '../types';

function addressIn(header: string | undefined): string | undefined {
  const match = header ? /<([^<>\s]+@[^<>\s]+)>|([^\s<>,"]+@[^\s<>,"]+)/.exec(header) : null;
  return match ? (match[1] ?? match[2]) : undefined;
}

function printText(io: CliIO, name: string, result: ScanResult, describe: (symbol: string) => string): void {
  const { verdict } = result;
  io.out(`${name}: ${verdict.action} (score ${verdict.score}, ref ${verdict.ref})`);
  io.out(`  why: ${verdict.reason}`);
  for (const s of verdict.symbols) {
    io.out(`  ${s.score >= 0 ? '+' : ''}${String(s.score).padStart(7)}  ${s.name.padEnd(28)} ${s.group.padEnd(12)} ${describe(s.name)}${s.detail ? ` [${s.detail}]` : ''}`);
  }
  const named = Object.entries(result.refusedRecipients);
  for (const [rcpt, reason] of named) io.out(`  recipient ${rcpt} refused: ${reason}`);
  if (result.refusedCount > named.length) io.out(`  and ${result.refusedCount - named.length} more recipient(s) refused`);
  if (result.row.parseResult !== 'ok') io.out(`  parse: ${result.row.parseResult}`);
}

export const command: CliCommand = {
  name: 'scan',
  summary: 'scan message files, directories, maildirs or mbox files and explain each verdict (reads the MTA state, changes nothing in it)',
  usage: 'mailward scan PATH... [--ip A] [--helo H] [--from F] [--to T] [--config DIR] [--json]',
  options: {
    ip: { type: 'string' },
    helo: { type: 'string' },
    from: { type: 'string' },
    to: { type: 'string', multiple: true },
    config: { type: 'string' },
    json: { type: 'boolean' },
  },
  async run(args, io, cli) {
    const v = args.values as { ip?: string; helo?: string; from?: string; to?: string[]; config?: string; json?: boolean };
    if (!args.positionals.length) throw new UserError(`nothing to scan\nusage: ${command.usage}`);
    if (v.ip !== undefined && !isIP(v.ip)) throw new UserError(`--ip ${JSON.stringify(v.ip)} is not an IP address`);
    // Scanning files must not write tracking rows, learn or count: it only explains. It reads the
    // MTA's state (run-time lists, learned reputation) and writes only into a copy of its own.
    const config = cli.loadConfig(v.config);
    const state = new OverlayStore(createStateStore(config.shared.state, silentLogger));
    const mailward = createMailward({ config, learn: false, state, adoptState: true });
    const describe = (name: string) => (mailward.runtime.config.symbols.has(name) ? mailward.runtime.config.symbols.get(name).description : '');
    let count = 0;
    let unreadable = 0;
    try {
      for (const message of readMessages(args.positionals)) {
        if (message.kind !== 'message') {
          if (message.kind === 'unreadable') unreadable++;
          // Escaped as the verdict lines are: a file name can hold control characters and newlines.
          io.err(oneLine(`${message.name}: skipped (${message.kind === 'unreadable' ? message.reason : 'not a message: no header block'})`));
          continue;
        }
        const ctx = createContext({ ip: v.ip ?? '127.0.0.1', helo: v.helo ?? 'localhost', raw: message.raw });
        // Without an envelope on the command line, take it from the headers.
        ctx.mailFrom = v.from ?? addressIn(firstHeader(ctx, 'return-path')) ?? addressIn(firstHeader(ctx, 'from')) ?? '';
        ctx.rcptTo = v.to ?? [addressIn(firstHeader(ctx, 'to')) ?? 'postmaster@localhost'];
        const result = await mailward.scan(ctx);
        count++;
        if (v.json) {
          const { verdict } = result;
          io.out(jsonText({ file: message.name, action: verdict.action, score: verdict.score, ref: verdict.ref, reason: verdict.reason, symbols: verdict.symbols, parse: result.row.parseResult }));
        } else {
          // File names, reasons, details and recipients come from the messages: each line is escaped whole.
          printText(oneLineIO(io), message.name, result, describe);
        }
      }
    } finally {
      await mailward.close();
    }
    if (!v.json) io.err(`${count} message${count === 1 ? '' : 's'} scanned${unreadable ? `, ${unreadable} unreadable` : ''}`);
    return unreadable ? 1 : 0;
  },
};
