import type { MailwardConfig } from '../../config/load';
import { OutboundLedger, ReinstateBusyError, suspensionText, type OutboundSettings, type SenderReport } from '../../checks/outbound';
import type { StateStore } from '../../state/types';
import { type CliCommand, type CliIO, UserError } from '../types';
import { parseSince } from '../since';
import { openSharedState } from '../shared-state';
import { jsonText, oneLine } from '../safe-text';
import { longest } from '../../util/text';

const USAGE = [
  'mailward outbound status [SENDER] [--config DIR] [--json]',
  '       mailward outbound reinstate SENDER [--config DIR]',
  '       mailward outbound report [--since 24h|7d|ISO-TIME] [--config DIR] [--json]',
].join('\n');

export interface OutboundState {
  store: StateStore;
  ledger: OutboundLedger;
  settings: OutboundSettings;
  /** The first warning or error of the state store (unreachable Redis), if any. */
  problem: () => string | undefined;
}

/** The MTA's shared outbound ledger (Redis); the in-process store is out of a command's reach. */
export function openOutboundState(config: MailwardConfig, what: string): OutboundState {
  const settings = config.modules.find((m) => m.module.name === 'outbound')?.settings as OutboundSettings | undefined;
  if (!settings) throw new UserError('the outbound module is not configured', 1);
  const { store, problem } = openSharedState(config.shared, config.configDir, what);
  return { store, settings, ledger: new OutboundLedger(store, settings, Date.now, config.shared.nodeName), problem };
}

function rate(n: number, of: number): string {
  return of ? `${(Math.round((n / of) * 10000) / 100).toFixed(2)}%` : '-';
}

function status(r: SenderReport): string {
  return r.suspension ? 'SUSPENDED' : 'ok';
}

function printReport(io: CliIO, rows: SenderReport[], heading: string): void {
  io.out(heading);
  if (!rows.length) {
    io.out('no relayed mail counted');
    return;
  }
  const table = [
    ['SENDER', 'SENT', 'BULK', 'COMPLAINTS', 'INVALID RCPTS', 'TRAPS', 'STATUS'],
    ...rows.map((r) => [
      // Escaped before widths are measured: the sender is whatever the client said in MAIL FROM.
      oneLine(r.sender),
      String(r.counts.sent),
      rate(r.counts.bulk, r.counts.sent),
      `${r.counts.complaint} (${rate(r.counts.complaint, r.counts.sent)})`,
      `${r.counts.invalid} (${rate(r.counts.invalid, r.counts.sent)})`,
      String(r.counts.trap),
      status(r),
    ]),
  ];
  const widths = table[0]!.map((_, i) => longest(table.map((row) => row[i]!)));
  for (const row of table) io.out(row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ').trimEnd());
  for (const r of rows) if (r.suspension) io.out(`  ${oneLine(suspensionText(r.suspension))}`);
}

export const command: CliCommand = {
  name: 'outbound',
  summary: 'outbound senders: status, reinstate a suspended sender, per-sender report (shared state in Redis)',
  usage: USAGE,
  options: {
    config: { type: 'string' },
    json: { type: 'boolean' },
    since: { type: 'string' },
  },
  async run(args, io, cli) {
    const v = args.values as { config?: string; json?: boolean; since?: string };
    const [action, ...rest] = args.positionals;
    if (action !== 'status' && action !== 'reinstate' && action !== 'report') throw new UserError(`say status, reinstate or report\nusage: ${USAGE}`);
    if (action === 'reinstate' && rest.length !== 1) throw new UserError(`reinstate takes one SENDER\nusage: ${USAGE}`);
    if (action !== 'reinstate' && rest.length > (action === 'status' ? 1 : 0)) throw new UserError(`too many arguments\nusage: ${USAGE}`);
    if (v.since && action !== 'report') throw new UserError('--since goes with report');
    const since = v.since ? parseSince(v.since).getTime() : undefined;

    const { store, ledger, settings, problem } = openOutboundState(cli.loadConfig(v.config), 'outbound counters and suspensions');
    const check = () => {
      const p = problem();
      if (p) throw new UserError(`cannot reach the shared state: ${p}`, 1);
    };
    try {
      if (action === 'reinstate') {
        const sender = rest[0]!.toLowerCase();
        const lifted = await ledger.reinstate(sender).catch((err: unknown) => {
          throw err instanceof ReinstateBusyError ? new UserError(err.message, 1) : err;
        });
        check();
        if (!lifted) {
          io.out(`${sender} is not suspended (its complaint, invalid-recipient and trap counts were cleared anyway)`);
          return 1;
        }
        io.out(`reinstated ${sender}: ${lifted.reason}; its complaint, invalid-recipient and trap counts in the window were cleared`);
        return 0;
      }
      if (action === 'status' && rest.length) {
        const sender = rest[0]!.toLowerCase();
        const [counts, suspension] = [await ledger.counts(sender), await ledger.suspension(sender)];
        check();
        if (v.json) {
          io.out(jsonText({ sender, counts, suspension }, 2));
          return 0;
        }
        printReport(io, [{ sender, counts, suspension }], `${sender} over the last ${settings.window.hours} h:`);
        // Not 3: that is every command's configuration error.
        return suspension ? 4 : 0;
      }
      const rows = await ledger.report(since);
      check();
      const shown = action === 'status' ? rows.filter((r) => r.suspension) : rows;
      if (v.json) {
        io.out(jsonText(shown, 2));
        return 0;
      }
      if (action === 'status') {
        if (!shown.length) io.out('no sender is suspended');
        for (const r of shown) io.out(oneLine(suspensionText(r.suspension!)));
        return 0;
      }
      const from = since === undefined ? `the last ${settings.window.hours} h` : `${new Date(since).toISOString()} (in steps of ${Math.round(ledger.sliceMinutes)} min)`;
      printReport(io, shown, `relayed mail per sender since ${from}:`);
      return 0;
    } finally {
      await store.close();
    }
  },
};
