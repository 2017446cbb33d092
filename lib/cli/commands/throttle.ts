import type { BackscatterSettings } from '../../checks/backscatter/settings';
import { normaliseSubject } from '../../checks/backscatter/subject';
import { SubjectThrottle, type SubjectBlock } from '../../checks/backscatter/throttle';
import type { MailwardConfig } from '../../config/load';
import type { StateStore } from '../../state/types';
import { type CliCommand, type CliIO, UserError } from '../types';
import { openSharedState } from '../shared-state';
import { jsonText, oneLine } from '../safe-text';

const USAGE = 'mailward throttle list [--config DIR] [--json]\n       mailward throttle clear SUBJECT|ID [--config DIR]\n       mailward throttle clear --all [--config DIR]';

function iso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function printBlocks(io: CliIO, blocks: SubjectBlock[], now: number): void {
  if (!blocks.length) {
    io.out('no subject is blocked');
    return;
  }
  io.out(`${blocks.length} subject${blocks.length === 1 ? '' : 's'} blocked:`);
  for (const b of blocks) {
    const left = Math.max(0, Math.round((b.until - now) / 60_000));
    io.out(`  ${b.id}  "${oneLine(b.subject)}"`);
    io.out(`      started after ${b.count} messages, since ${iso(b.since)}${b.node ? ` (on ${b.node})` : ''}, until ${iso(b.until)} (${left} min left)`);
    io.out(`      ${b.refused} message${b.refused === 1 ? '' : 's'} refused so far; e.g. "${oneLine(b.example)}"`);
  }
}

/** The configured shared state, or a one-line error when the CLI cannot see the MTA's blocks. */
async function openState(config: MailwardConfig): Promise<{ store: StateStore; throttle: SubjectThrottle; problem: () => string | undefined }> {
  const settings = config.modules.find((m) => m.module.name === 'backscatter')?.settings as BackscatterSettings | undefined;
  if (!settings) throw new UserError('the backscatter module is not configured', 1);
  const { store, problem } = openSharedState(config.shared, config.configDir, 'throttle blocks');
  return { store, throttle: new SubjectThrottle(store, settings.throttle, Date.now, config.shared.nodeName), problem };
}

export const command: CliCommand = {
  name: 'throttle',
  summary: 'list or lift the subject-flood blocks of the backscatter plugin (shared state in Redis)',
  usage: USAGE,
  options: {
    config: { type: 'string' },
    json: { type: 'boolean' },
    all: { type: 'boolean' },
  },
  async run(args, io, cli) {
    const v = args.values as { config?: string; json?: boolean; all?: boolean };
    const [action, ...rest] = args.positionals;
    if (action !== 'list' && action !== 'clear') throw new UserError(`say list or clear\nusage: ${USAGE}`);
    if (action === 'list' && rest.length) throw new UserError(`list takes no arguments\nusage: ${USAGE}`);
    if (action === 'clear' && (v.all ? rest.length > 0 : rest.length === 0)) throw new UserError(`clear takes one SUBJECT (quoted) or ID, or --all\nusage: ${USAGE}`);

    const { store, throttle, problem } = await openState(cli.loadConfig(v.config));
    try {
      const blocks = await throttle.list();
      const unreachable = problem();
      if (unreachable) throw new UserError(`cannot reach the shared state: ${unreachable}`, 1);
      if (action === 'list') {
        if (v.json) io.out(jsonText(blocks, 2));
        else printBlocks(io, blocks, Date.now());
        return 0;
      }
      if (v.all) {
        for (const b of blocks) await throttle.clear(b.id, normaliseSubject);
        io.out(`lifted ${blocks.length} block${blocks.length === 1 ? '' : 's'}`);
        return 0;
      }
      const target = rest.join(' ');
      const lifted = await throttle.clear(target, normaliseSubject);
      if (!lifted) {
        io.out(`no active block for ${/^[0-9a-f]{20}$/.test(target) ? target : `"${normaliseSubject(target)}"`} (its counters were reset)`);
        return 1;
      }
      io.out(`lifted the block on "${oneLine(lifted.subject)}" (${lifted.refused} messages refused since ${iso(lifted.since)})`);
      return 0;
    } finally {
      await store.close();
    }
  },
};
