import { readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ArfError, countReport, parseArf, suspensionText, type ComplaintOutcome } from '../../checks/outbound';
import { type CliCommand, UserError } from '../types';
import { openOutboundState } from './outbound';
import { jsonText, oneLineIO } from '../safe-text';

const USAGE = 'mailward complaints import FILE|DIR... [--config DIR] [--json]';

/**
 * Files to import: the named files, and every regular file under named
 * directories (sorted). A directory reached twice (a symbolic link back up
 * the tree) is read once.
 */
export function collect(paths: string[], seen = new Set<string>(), out: string[] = []): string[] {
  for (const path of paths) {
    let stat;
    try {
      stat = statSync(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new UserError(`${path}: ${code === 'ENOENT' ? 'no such file or directory' : (err as Error).message}`, 1);
    }
    if (stat.isDirectory()) {
      const real = realpathSync(path);
      if (seen.has(real)) continue;
      seen.add(real);
      const names = readdirSync(path).filter((n) => !n.startsWith('.')).sort();
      // Into the same list, not out.push(...files): a spread of a directory's ~120,000 files overflows the stack.
      collect(names.map((n) => join(path, n)), seen, out);
    } else if (stat.isFile()) out.push(path);
  }
  return out;
}

export const command: CliCommand = {
  name: 'complaints',
  summary: 'import ARF feedback reports (RFC 5965) and count them against the senders of the reported mail',
  usage: USAGE,
  options: { config: { type: 'string' }, json: { type: 'boolean' } },
  async run(args, io, cli) {
    const v = args.values as { config?: string; json?: boolean };
    const [action, ...paths] = args.positionals;
    if (action !== 'import') throw new UserError(`say import\nusage: ${USAGE}`);
    if (!paths.length) throw new UserError(`import needs at least one FILE or DIR\nusage: ${USAGE}`);
    const files = collect(paths);
    const { store, ledger, settings, problem } = openOutboundState(cli.loadConfig(v.config), 'outbound counters');
    const results: { file: string; status: ComplaintOutcome['status'] | 'invalid'; detail: string; sender?: string; suspended?: string }[] = [];
    try {
      for (const file of files) {
        let report;
        try {
          report = await parseArf(readFileSync(file));
        } catch (err) {
          if (!(err instanceof ArfError)) throw err;
          results.push({ file, status: 'invalid', detail: err.message });
          continue;
        }
        // The operator vouches for what they import: the reporter's authentication is not required.
        const outcome = await countReport(report, settings, ledger, Date.now, { authenticated: true });
        const p = problem();
        if (p) throw new UserError(`cannot reach the shared state: ${p}`, 1);
        results.push({ file, status: outcome.status, detail: outcome.detail, sender: outcome.sender, suspended: outcome.suspension ? suspensionText(outcome.suspension) : undefined });
      }
    } finally {
      await store.close();
    }
    if (v.json) io.out(jsonText(results, 2));
    else {
      // The details quote the reports (reporter, Feedback-Type, Message-ID): each line is escaped whole.
      const said = oneLineIO(io);
      for (const r of results) {
        said.out(`${r.file}: ${r.status === 'invalid' ? `not a valid feedback report: ${r.detail}` : `${r.status}: ${r.detail}`}`);
        if (r.suspended) said.out(`  -> ${r.suspended}`);
      }
      const tally = (s: string) => results.filter((r) => r.status === s).length;
      io.out(
        `${results.length} file${results.length === 1 ? '' : 's'}: ${tally('counted')} counted, ${tally('duplicate')} already counted, ${tally('ignored')} ignored, ` +
          `${tally('unattributed')} unattributed, ${tally('untrusted')} untrusted, ${tally('invalid')} invalid`,
      );
    }
    return results.some((r) => r.status === 'invalid') ? 1 : 0;
  },
};
