import { recordEvent, type ReputationSettings } from '../../checks/reputation';
import { forgetRecipients, recipientRate } from '../../checks/reputation/harvest';
import {
  type Decayed,
  entityKey,
  type Entity,
  LearnedStore,
  netEntity,
  neutralAt,
  orgEntity,
  parseEntity,
  scoreOf,
  subtractCounts,
  symbolFactor,
} from '../../checks/reputation/learned';
import { EVENT_KINDS, type EventKind } from '../../checks/reputation/settings';
import type { MailwardConfig } from '../../config/load';
import type { StateStore } from '../../state';
import { openSharedState } from '../shared-state';
import { type CliCommand, type CliIO, UserError } from '../types';
import { redactUrl } from '../../config/reader';

const SYMBOL_PREFIX = { ip: 'REP_IP', net: 'REP_NET', domain: 'REP_DOMAIN', org: 'REP_DOMAIN' } as const;

function signed(n: number): string {
  return `${n > 0 ? '+' : ''}${n.toFixed(2)}`;
}

function duration(ms: number): string {
  if (ms <= 0) return 'now';
  const h = Math.round(ms / 3_600_000);
  if (h < 1) return `${Math.max(1, Math.round(ms / 60_000))} min`;
  return h < 48 ? `${h} h` : `${Math.floor(h / 24)} d ${h % 24} h`;
}

interface Opened {
  config: MailwardConfig;
  settings: ReputationSettings;
  state: StateStore;
  where: string;
}

/**
 * Opens the state the MTAs share. In-process state lives inside each running
 * MTA: a command would read and write a copy of its own and report success,
 * so that is an error. A Redis that cannot be reached is one too (the MTA
 * would fall back to in-process state; showing that would be a lie).
 */
function open(config: MailwardConfig): Opened & { problem: () => string | undefined } {
  const settings = config.modules.find((m) => m.module.name === 'reputation')!.settings as ReputationSettings;
  const { store, problem } = openSharedState(config.shared, config.configDir, 'learned reputation');
  const s = config.shared.state;
  return { config, settings, state: store, where: `redis ${redactUrl(s.redisUrl)} (prefix ${s.prefix})`, problem };
}

async function withState<T>(config: MailwardConfig, body: (o: Opened) => Promise<T>): Promise<T> {
  const opened = open(config);
  try {
    const result = await body(opened);
    const problem = opened.problem();
    if (problem) throw new UserError(`state store unavailable: ${problem}`, 1);
    return result;
  } finally {
    await opened.state.close();
  }
}

function describeEntity(io: CliIO, label: string, entity: Entity, decayed: Decayed, o: Opened, now: number, fields: Record<string, string>, counts = decayed.counts): Record<string, unknown> {
  const s = o.settings.learned;
  const score = scoreOf(counts, s);
  const factor = symbolFactor(score.total, s);
  const symbolName = `${SYMBOL_PREFIX[entity.type]}_${score.total > 0 ? 'BAD' : 'GOOD'}`;
  const weight = o.config.symbols.get(symbolName).score;
  const neutral = neutralAt(fields, now, s);
  io.out(`${label}: reputation ${signed(score.total)} (${score.total > 0 ? 'bad' : score.total < 0 ? 'good' : 'neutral'})`);
  io.out(`  from verdicts ${signed(score.verdict)} (capped at ±${s.verdictCap}), from evidence ${signed(score.evidence)}`);
  io.out(`  symbol       ${factor ? `${symbolName} ${signed(weight * factor)} (of ${signed(weight)})` : '(none: neutral)'}`);
  io.out(`  events       ${EVENT_KINDS.map((k) => `${k} ${counts[k].toFixed(2)}/${decayed.raw[k]}`).join(', ')}  (decayed/counted within ${duration(s.horizonSeconds * 1000)})`);
  io.out(`  last event   ${decayed.newest ? new Date(decayed.newest).toISOString() : '(none)'}`);
  io.out(`  neutral      ${factor ? `in ${duration(neutral - now)} (${new Date(neutral).toISOString()}) without new events` : 'now'}`);
  return { entity, key: entityKey(entity), score, symbol: factor ? { name: symbolName, score: Math.round(weight * factor * 100) / 100 } : null, counts, raw: decayed.raw, lastEvent: decayed.newest || null, neutralAt: factor ? new Date(neutral).toISOString() : null };
}

async function show(target: Entity, o: Opened, io: CliIO, json: boolean): Promise<void> {
  const now = Date.now();
  const store = new LearnedStore(o.state, o.settings.learned, Date.now);
  const out: Record<string, unknown> = { state: o.where };
  const lines: CliIO = json ? { out() {}, err: io.err } : io;
  const key = entityKey(target);
  const fields = await o.state.hashGetAll(key);
  const decayed = await store.read(target, now);
  lines.out(`state: ${o.where}`);
  out.reputation = describeEntity(lines, `${target.type} ${target.id}`, target, decayed, o, now, fields);
  const org = target.type === 'domain' ? orgEntity(target.id) : undefined;
  if (org && org.id !== target.id) {
    // What a subdomain with too little history of its own is judged by, when it is bad.
    const orgFields = await o.state.hashGetAll(entityKey(org));
    out.organisation = describeEntity(lines, `org ${org.id} (the organisation with all its subdomains)`, org, await store.read(org, now), o, now, orgFields);
  }
  if (target.type === 'ip') {
    const net = netEntity(target.id);
    const netFields = await o.state.hashGetAll(entityKey(net));
    const netDecayed = await store.read(net, now);
    // What REP_NET_* sees: the network without this address.
    out.neighbours = describeEntity(lines, `neighbours in ${net.id}`, net, netDecayed, o, now, netFields, subtractCounts(netDecayed.counts, decayed.counts));
    const rate = await recipientRate(o.state, o.settings.harvest, target.id, now);
    const total = rate.known + rate.unknown;
    lines.out(`recipients in the last ${duration(o.settings.harvest.windowSeconds * 1000)}: ${rate.known} known, ${rate.unknown} unknown${total ? ` (${Math.round((100 * rate.unknown) / total)}% unknown; DIRECTORY_HARVEST above ${Math.round(o.settings.harvest.maxUnknownShare * 100)}% of at least ${o.settings.harvest.minRecipients})` : ''}`);
    out.recipients = rate;
  }
  if (json) io.out(JSON.stringify(out, null, 2));
}

export const command: CliCommand = {
  name: 'reputation',
  summary: 'show, forget or report the learned reputation of an IP, a /24 (/64) network, a sender domain or an organisation (org:DOMAIN)',
  usage:
    'mailward reputation show IP|NET|DOMAIN|org:DOMAIN [--config DIR] [--json]\n' +
    '       mailward reputation forget IP|NET|DOMAIN|org:DOMAIN [--config DIR]\n' +
    '       mailward reputation report IP|NET|DOMAIN|org:DOMAIN --kind trap|complaint|spam|ham|invalid [--count N] [--config DIR]',
  options: {
    config: { type: 'string' },
    json: { type: 'boolean' },
    kind: { type: 'string' },
    count: { type: 'string' },
  },
  async run(args, io, cli) {
    const v = args.values as { config?: string; json?: boolean; kind?: string; count?: string };
    const [action, targetText, ...extra] = args.positionals;
    if (!action || !['show', 'forget', 'report'].includes(action) || !targetText || extra.length) {
      throw new UserError(`expected show, forget or report and one IP, network or domain\nusage: ${command.usage}`);
    }
    let target: Entity;
    try {
      target = parseEntity(targetText);
    } catch (err) {
      throw new UserError((err as Error).message);
    }
    return withState(cli.loadConfig(v.config), async (o) => {
      if (action === 'show') {
        await show(target, o, io, !!v.json);
        return 0;
      }
      if (action === 'forget') {
        await new LearnedStore(o.state, o.settings.learned, Date.now).forget(target);
        if (target.type === 'ip') await forgetRecipients(o.state, target.id);
        io.out(`forgot the learned reputation of ${target.type} ${target.id}${target.type === 'ip' ? ` (its network ${netEntity(target.id).id} keeps its own; forget it separately if needed)` : ''}`);
        return 0;
      }
      const kind = v.kind as EventKind | undefined;
      if (!kind || !EVENT_KINDS.includes(kind)) throw new UserError(`--kind must be one of ${EVENT_KINDS.join(', ')}`);
      const count = v.count === undefined ? 1 : Number(v.count);
      if (!Number.isInteger(count) || count < 1 || count > 1000) throw new UserError('--count must be a whole number from 1 to 1000');
      const recorded = await recordEvent({ state: o.state, clock: Date.now }, o.settings, targetText, kind, count);
      io.out(`recorded ${count} ${kind} event${count > 1 ? 's' : ''} for ${recorded.map((e) => `${e.type} ${e.id}`).join(' and ')}`);
      return 0;
    });
  },
};
