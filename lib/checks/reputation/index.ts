import { domainOf, fromMailboxes, type MessageContext } from '../../message';
import type { Hit, SymbolDef, Verdict } from '../../score/types';
import type { Check, CheckModule, Services } from '../types';
import { DNSBL_BLOCKED, DNSBL_TEMPERROR, DnsLists } from './dnsbl';
import { countRecipient, isHarvest, recipientRate } from './harvest';
import {
  domainEntities,
  type Entity,
  hasOwnHistory,
  ipEntity,
  LearnedStore,
  netEntity,
  parseEntity,
  scoreOf,
  subtractCounts,
  symbolFactor,
  type Counts,
} from './learned';
import { isInternalIp } from './net';
import { checkHelo, checkReverseDns } from './practices';
import { type EventKind, GROUP, parseReputationSettings, type ReputationSettings } from './settings';

export type { ReputationSettings, EventKind } from './settings';
export { parseEntity } from './learned';

const sym = (name: string, score: number, description: string): SymbolDef => ({ name, score, group: GROUP, description });

export const reputationSymbols: SymbolDef[] = [
  sym(DNSBL_TEMPERROR, 0, 'A DNS list could not be queried (timeout, SERVFAIL); nothing else was concluded'),
  sym(DNSBL_BLOCKED, 0, 'A DNS list answered "query refused" (127.255.255.x, 127.0.0.1, or outside 127/8): ignored, never a listing'),
  sym('RDNS_NONE', 1.5, 'The client IP has no PTR record'),
  sym('RDNS_NOT_FCRDNS', 1, 'The client\'s PTR name does not resolve back to its IP (not forward-confirmed)'),
  sym('RDNS_TEMPERROR', 0, 'The reverse or forward DNS look-up of the client failed temporarily'),
  sym('HELO_NOT_FQDN', 1, 'HELO/EHLO is not a fully qualified domain name nor an address literal'),
  sym('HELO_BARE_IP', 1, 'HELO/EHLO is an IP address without the [brackets] RFC 5321 requires'),
  sym('HELO_IP_MISMATCH', 2, 'HELO/EHLO is an address that is not the client\'s'),
  sym('HELO_PTR_MISMATCH', 0.5, 'HELO/EHLO name is not in the same domain as the client\'s PTR'),
  sym('HELO_FORGED_LOCAL', 3, 'HELO/EHLO claims to be this server (our host name or one of our addresses)'),
  sym('REP_IP_BAD', 4, 'Learned reputation of the client IP is bad (trap hits, complaints, spam); scaled, decays to neutral'),
  sym('REP_IP_GOOD', -1, 'Learned reputation of the client IP is good (capped: learned only from our own verdicts)'),
  sym('REP_NET_BAD', 2, 'Other addresses of the client\'s /24 (/64) have a bad learned reputation'),
  sym('REP_NET_GOOD', -0.5, 'Other addresses of the client\'s /24 (/64) have a good learned reputation'),
  sym('REP_DOMAIN_BAD', 3, 'Learned reputation of the envelope sender domain is bad (of its organisation, all its subdomains together, for a subdomain with too little history of its own)'),
  sym('REP_DOMAIN_GOOD', -1, 'Learned reputation of the envelope sender domain is good'),
  sym('REP_TEMPERROR', 0, 'The reputation state could not be read; nothing was concluded'),
  sym('SPAMTRAP', 6, 'A recipient is a spam trap: refused at RCPT, the client IP (and the sender domain once SPF, or a DKIM signature naming the trap, binds it) are penalised'),
  sym('DIRECTORY_HARVEST', 4, 'A high share of this IP\'s recent recipients were unknown (directory harvest)'),
];

const TRAP_NOTE = 'reputation.trapHit';
/** Every trap recipient of the message (lower case), for recordTrapDomain. */
const TRAP_RCPTS_NOTE = 'reputation.trapRecipients';

/** Clients the reputation checks leave alone: outbound/authenticated, and internal networks. */
function exempt(ctx: MessageContext, s: ReputationSettings): boolean {
  return !s.enabled || ctx.relaying || !!ctx.authUser || (s.skipInternal && isInternalIp(ctx.ip));
}

function describe(counts: Counts): string {
  return Object.entries(counts)
    .filter(([, n]) => n >= 0.01)
    .map(([k, n]) => `${k} ${n.toFixed(2)}`)
    .join(', ');
}

/** REP_<TYPE>_BAD or _GOOD for one reputation, or nothing when it is neutral. */
function reputationHit(prefix: 'REP_IP' | 'REP_NET' | 'REP_DOMAIN', what: string, counts: Counts, s: ReputationSettings): Hit[] {
  const score = scoreOf(counts, s.learned);
  const factor = symbolFactor(score.total, s.learned);
  if (!factor) return [];
  return [{ name: `${prefix}_${score.total > 0 ? 'BAD' : 'GOOD'}`, factor, detail: `${what} reputation ${score.total.toFixed(2)} (${describe(counts)})` }];
}

/** What the envelope sender domain's events are recorded on: it and its organisation's aggregate (see domainEntities). */
export function senderEntities(ctx: MessageContext): Entity[] {
  const domain = domainOf(ctx.mailFrom);
  return domain ? domainEntities(domain) : [];
}

/**
 * The reputation a sender domain is judged by: its own (rep:dom:, exactly
 * its own events). A subdomain with too little history of its own
 * (hasOwnHistory: fewer than MIN_OWN_HISTORY decayed events) is judged by its
 * organisation's aggregate (rep:org:, the organisational domain and all its
 * subdomains) instead, when that is bad. A fresh subdomain
 * (x1.spammer.example), or one with a single ham event, so sheds nothing,
 * while a subdomain with a history of its own (one customer's
 * u123.esp.example) answers for itself alone; nor does a fresh one inherit a
 * good name, which an unauthenticated MAIL FROM could claim. The
 * organisational domain itself is always judged by its own events: its
 * customers' subdomains do not make noreply@esp.example bad.
 */
function domainJudged(read: { entity: Entity; counts: Counts }[], s: ReputationSettings): { entity: Entity; counts: Counts } {
  const own = read.find((r) => r.entity.type === 'domain')!;
  const org = read.find((r) => r.entity.type === 'org');
  if (!org || org.entity.id === own.entity.id || hasOwnHistory(own.counts)) return own;
  return scoreOf(org.counts, s.learned).total > 0 ? org : own;
}

function createChecks(s: ReputationSettings, services: Services): Check[] {
  const checks: Check[] = [];
  const learned = new LearnedStore(services.state, s.learned, services.clock);
  const lists = new DnsLists(services.dns, s.dnsbl.zones, services.log, services.clock);
  const guard = (run: Check['run']): Check['run'] => async (ctx, ledger, input) => (exempt(ctx, s) ? [] : run(ctx, ledger, input));

  if (s.practices.enabled) {
    checks.push(
      { name: 'reputation.rdns', phase: 'connect', run: guard((ctx) => checkReverseDns(ctx, services.dns)) },
      { name: 'reputation.helo', phase: 'helo', run: guard(async (ctx) => checkHelo(ctx, s.practices)) },
    );
  }
  if (s.dnsbl.enabled && s.dnsbl.zones.some((z) => z.enabled)) {
    checks.push(
      { name: 'reputation.dnsbl', phase: 'connect', run: guard((ctx) => lists.checkIp(ctx.ip)) },
      {
        name: 'reputation.dnsbl_sender',
        phase: 'mail',
        run: guard(async (ctx) => (domainOf(ctx.mailFrom) ? lists.checkDomain(domainOf(ctx.mailFrom), 'mail_from') : [])),
      },
      {
        name: 'reputation.dnsbl_from',
        phase: 'data',
        run: guard(async (ctx) => {
          // Every From: domain: the first <...> of the header may sit in a quoted display name.
          const envelope = domainOf(ctx.mailFrom);
          const domains = [...new Set(fromMailboxes(ctx).map((m) => domainOf(m.address)))].filter((d) => d && d !== envelope);
          return (await Promise.all(domains.map((d) => lists.checkDomain(d, 'header_from')))).flat();
        }),
      },
    );
  }
  if (s.learned.enabled) {
    checks.push(
      {
        name: 'reputation.learned_ip',
        phase: 'connect',
        run: guard(async (ctx) => {
          try {
            const [ip, net] = await Promise.all([learned.read(ipEntity(ctx.ip)), learned.read(netEntity(ctx.ip))]);
            return [
              ...reputationHit('REP_IP', `IP ${ipEntity(ctx.ip).id}`, ip.counts, s),
              ...reputationHit('REP_NET', `neighbours in ${netEntity(ctx.ip).id}`, subtractCounts(net.counts, ip.counts), s),
            ];
          } catch (err) {
            return [{ name: 'REP_TEMPERROR', detail: (err as Error).message }];
          }
        }),
      },
      {
        name: 'reputation.learned_domain',
        phase: 'mail',
        run: guard(async (ctx) => {
          const entities = senderEntities(ctx);
          if (!entities.length) return [];
          try {
            const read = await Promise.all(entities.map(async (entity) => ({ entity, counts: (await learned.read(entity)).counts })));
            const { entity, counts } = domainJudged(read, s);
            const what = entity.type === 'domain' ? `sender domain ${entity.id}` : `sender domain ${entities[0]!.id}'s organisational domain ${entity.id} (with all its subdomains)`;
            return reputationHit('REP_DOMAIN', what, counts, s);
          } catch (err) {
            return [{ name: 'REP_TEMPERROR', detail: (err as Error).message }];
          }
        }),
      },
    );
  }
  if (s.spamtrap.matchers.length) {
    checks.push({
      name: 'reputation.spamtrap',
      phase: 'rcpt',
      run: guard(async (ctx, ledger, input) => {
        const rcpt = (input.recipient ?? ctx.rcptTo[ctx.rcptTo.length - 1] ?? '').toLowerCase();
        if (!rcpt || !s.spamtrap.matchers.some((m) => m.test(rcpt))) return [];
        // The reason reaches the sender: never reveal that the address is a trap.
        ledger.refuseRecipient(rcpt, 'mailbox unavailable');
        const traps = (ctx.notes[TRAP_RCPTS_NOTE] as string[] | undefined) ?? [];
        if (!traps.includes(rcpt)) ctx.notes[TRAP_RCPTS_NOTE] = [...traps, rcpt];
        if (!ctx.notes[TRAP_NOTE]) {
          // One message is one trap hit, however many traps it was addressed to.
          ctx.notes[TRAP_NOTE] = true;
          if (s.learned.enabled) {
            // Nothing is authenticated at RCPT and anyone can write MAIL FROM: the sender
            // domain is charged after DATA, once bound to this delivery (recordTrapDomain).
            const domain = s.learned.domainRequiresAuth ? [] : senderEntities(ctx);
            await learned.record([ipEntity(ctx.ip), netEntity(ctx.ip), ...domain], 'trap').catch((err: Error) => {
              services.log.warn(`mailward reputation: could not record a trap hit: ${err.message}`);
            });
          }
        }
        return [{ name: 'SPAMTRAP', detail: `recipient ${rcpt} is a spam trap` }];
      }),
    });
  }
  if (s.harvest.enabled) {
    checks.push({
      name: 'reputation.harvest',
      phase: 'rcpt',
      run: guard(async (ctx) => {
        const rate = await recipientRate(services.state, s.harvest, ctx.ip, services.clock());
        if (!isHarvest(rate, s.harvest)) return [];
        const total = rate.known + rate.unknown;
        return [{ name: 'DIRECTORY_HARVEST', detail: `${rate.unknown} of ${total} recent recipients from ${ctx.ip} were unknown` }];
      }),
    });
  }
  return checks;
}

/** The part of the auth module's `ctx.notes.auth` read here (structurally: tests and hosts may set a subset). */
interface AuthView {
  spf?: { result?: string; domain?: string };
  dkim?: { result?: string; domain?: string; signedRecipients?: string[] }[];
}

/**
 * Is the envelope sender domain bound to this delivery, so that what the
 * delivery did (hit a trap, got a verdict) may be charged to the domain?
 *
 * - SPF passed for the envelope domain itself: the client is one of the
 *   domain's own servers.
 * - Or a passing DKIM signature of the domain (or a parent of it) covers a
 *   To:/Cc: naming every one of `recipients`: the domain itself addressed the
 *   message to them.
 *
 * A passing signature alone is not enough: it binds neither the envelope nor
 * the recipients, and anyone who received one signed message (a newsletter)
 * can replay it from anywhere to anyone, a spam trap included, as often as it
 * likes. Charging (or crediting) the signer for each replay would let an
 * outsider make an innocent domain's own mail REP_DOMAIN_BAD, or launder a
 * domain's reputation toward REP_DOMAIN_GOOD.
 */
function senderBound(ctx: MessageContext, domain: string, recipients: string[]): boolean {
  const auth = ctx.notes.auth as AuthView | undefined;
  if (!auth || !domain) return false;
  if (auth.spf?.result === 'pass' && (auth.spf.domain ?? '').toLowerCase().replace(/\.$/, '') === domain) return true;
  if (!recipients.length) return false;
  const within = (d: string | undefined) => !!d && (d.toLowerCase() === domain || domain.endsWith(`.${d.toLowerCase()}`));
  const wanted = recipients.map((r) => r.toLowerCase());
  return !!auth.dkim?.some((d) => d.result === 'pass' && within(d.domain) && wanted.every((r) => d.signedRecipients?.includes(r)));
}

/**
 * A message that hit a spam trap at RCPT and went on to DATA charges its
 * envelope sender domain with the trap hit only when the domain is bound to
 * the delivery (with `domain_requires_auth`; without it the domain was charged
 * at RCPT): SPF passed for the envelope domain, or a passing DKIM signature of
 * the domain names a trap it hit in a signed To:/Cc: (senderBound). Otherwise
 * forged MAIL FROMs, or replays of one genuine signed message, to a trap would
 * spoil an innocent domain's own mail. Returns whether it charged the domain.
 */
export async function recordTrapDomain(services: Services, s: ReputationSettings, ctx: MessageContext): Promise<boolean> {
  if (!s.learned.enabled || !s.learned.domainRequiresAuth || !ctx.notes[TRAP_NOTE] || exempt(ctx, s)) return false;
  const domain = domainOf(ctx.mailFrom);
  const traps = (ctx.notes[TRAP_RCPTS_NOTE] as string[] | undefined) ?? [];
  if (!domain || !(senderBound(ctx, domain, []) || traps.some((t) => senderBound(ctx, domain, [t])))) return false;
  try {
    await new LearnedStore(services.state, s.learned, services.clock).record(domainEntities(domain), 'trap');
    return true;
  } catch (err) {
    services.log.warn(`mailward reputation: could not record a trap hit for ${domain}: ${(err as Error).message}`);
    return false;
  }
}

/**
 * Learns from a decision, with a small weight: "spam" when the score without
 * the REP_* symbols reached `learn_spam_score`, "ham" when it stayed at or
 * below `learn_ham_score`. Leaving REP_* out (and capping what verdicts can
 * add, see scoreOf) keeps the reputation from feeding on itself. Called by the
 * verdict plugin and by library hosts after each decision. Returns what was learnt.
 */
export async function recordVerdict(services: Services, s: ReputationSettings, ctx: MessageContext, verdict: Verdict): Promise<EventKind | null> {
  if (!s.learned.enabled || !s.learned.learnFromVerdicts || exempt(ctx, s) || verdict.forced) return null;
  const own = verdict.symbols.filter((x) => x.name.startsWith('REP_')).reduce((sum, x) => sum + x.score, 0);
  const base = verdict.score - own;
  const kind: EventKind | null = base >= s.learned.learnSpamScore ? 'spam' : base <= s.learned.learnHamScore ? 'ham' : null;
  if (!kind) return null;
  const entities = [ipEntity(ctx.ip), netEntity(ctx.ip)];
  const domain = domainOf(ctx.mailFrom);
  // Spam and ham alike: a replayed signature must neither spoil nor launder the signer's reputation.
  if (domain && (!s.learned.domainRequiresAuth || senderBound(ctx, domain, ctx.rcptTo))) entities.push(...domainEntities(domain));
  try {
    await new LearnedStore(services.state, s.learned, services.clock).record(entities, kind);
  } catch (err) {
    services.log.warn(`mailward reputation: could not learn from verdict ${verdict.ref}: ${(err as Error).message}`);
    return null;
  }
  return kind;
}

/**
 * Records whether a recipient the client asked for exists (the MTA decides:
 * in Haraka, rcpt_to.* plugins). Feeds DIRECTORY_HARVEST and, for unknown
 * ones, a small "invalid" count in the IP's reputation.
 */
export async function recordRecipientOutcome(services: Services, s: ReputationSettings, ip: string, known: boolean): Promise<void> {
  if (!s.enabled || (s.skipInternal && isInternalIp(ip))) return;
  try {
    const now = services.clock();
    const work: Promise<void>[] = [];
    if (s.harvest.enabled) work.push(countRecipient(services.state, s.harvest, ip, known, now));
    if (!known && s.learned.enabled && s.learned.weights.invalid > 0) {
      work.push(new LearnedStore(services.state, s.learned, services.clock).record([ipEntity(ip), netEntity(ip)], 'invalid'));
    }
    await Promise.all(work);
  } catch (err) {
    services.log.warn(`mailward reputation: could not record a recipient outcome: ${(err as Error).message}`);
  }
}

/**
 * Records outside evidence about an IP, network or domain (e.g. a complaint
 * from a feedback loop, or a trap hit reported by another system): an IP's
 * also for its network, a domain's also for its organisation's aggregate, as
 * the events learnt from mail are. Returns the entities it was recorded on.
 */
export async function recordEvent(services: Pick<Services, 'state' | 'clock'>, s: ReputationSettings, target: string, kind: EventKind, count = 1): Promise<Entity[]> {
  const entity = parseEntity(target);
  const entities = entity.type === 'ip' ? [entity, netEntity(entity.id)] : entity.type === 'domain' ? domainEntities(entity.id) : [entity];
  await new LearnedStore(services.state, s.learned, services.clock).record(entities, kind, count);
  return entities;
}

export const reputationModule: CheckModule<ReputationSettings> = {
  name: 'reputation',
  file: 'mailward.reputation.ini',
  symbols: reputationSymbols,
  parseSettings(reader) {
    return parseReputationSettings(reader);
  },
  createChecks,
  async afterVerdict(settings, services, ctx, verdict) {
    await recordTrapDomain(services, settings, ctx);
    await recordVerdict(services, settings, ctx, verdict);
  },
};
