import { Classifier, createBayesStore } from '../../checks/content/classifier';
import { learnMessage } from '../../checks/content/learn';
import type { ContentSettings } from '../../checks/content/settings';
import { addEntry, openLists } from '../../checks/rules/cli';
import { normaliseAddress } from '../../checks/rules/match';
import { relaxedAligned } from '../../checks/auth/align';
import type { RulesSettings } from '../../checks/rules/settings';
import { asciiDomain } from '../../util/domain';
import { silentLogger } from '../../runtime';
import type { MailwardConfig } from '../../config/load';
import { authorFields } from '../../checks/auth/from';
import { createContext, fromMailboxes, headerValues, parsedMessage } from '../../message';
import { ClaimBusyError, CorruptRecordError, damage, describeClaim, openQuarantine, releaseMessage, ReleaseError, type FileQuarantine, type QuarantineRecord } from '../../quarantine';
import { type CliCommand, type CliIO, UserError } from '../types';
import { parseSince } from '../since';
import { jsonText, oneLine, oneLineIO } from '../safe-text';
import { printUsage, quarantineUsage, usageSummary } from '../quarantine-usage';

const ACTIONS = ['list', 'usage', 'show', 'release', 'release-approve', 'delete', 'digest', 'purge'] as const;

function when(iso: string): string {
  return iso.slice(0, 16).replace('T', ' ');
}

function clip(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, width - 1)}…`;
}

/** The envelope sender, escaped for printing (see safe-text.ts), like every field of a record printed here. */
function sender(r: QuarantineRecord): string {
  if (r.recovered) return '(unknown)';
  return r.mailFrom === '' ? '<>' : oneLine(r.mailFrom);
}

/** The listing; a message whose file is damaged or gone (see `damaged`) shows `damaged` as its status: it cannot be released. */
function printList(io: CliIO, records: QuarantineRecord[], damaged: Map<string, string>): void {
  io.out(`${'HELD (UTC)'.padEnd(16)}  ${'REF'.padEnd(10)}  ${'STATUS'.padEnd(8)}  ${'SCORE'.padStart(6)}  ${'FROM'.padEnd(30)}  ${'TO'.padEnd(30)}  SUBJECT`);
  for (const r of records) {
    const to = r.recovered ? '(unknown)' : `${oneLine(r.rcptTo[0] ?? '-')}${r.rcptTo.length > 1 ? ` +${r.rcptTo.length - 1}` : ''}`;
    const status = damaged.has(r.ref) ? 'damaged' : r.error && r.status === 'held' ? 'held!' : r.status;
    io.out(`${when(r.time).padEnd(16)}  ${r.ref.padEnd(10)}  ${status.padEnd(8)}  ${String(r.score).padStart(6)}  ${clip(sender(r), 30).padEnd(30)}  ${clip(to, 30).padEnd(30)}  ${clip(oneLine(r.subject), 60)}`);
  }
}

/**
 * Learns a released message as ham into the content module's Bayes model
 * (the same store the MTA reads; it picks the change up at its next reload).
 * learnMessage is idempotent: a message autolearnt or trapped as spam moves to ham.
 */
function hamLearner(config: MailwardConfig): (raw: Buffer) => Promise<string> {
  return async (raw) => {
    const settings = config.modules.find((m) => m.module.name === 'content')!.settings as ContentSettings;
    const classifier = new Classifier(createBayesStore(settings.bayes), silentLogger);
    try {
      await classifier.ready();
      if (!classifier.loaded) throw new Error(classifier.lastError || 'the Bayes model could not be loaded');
      const outcome = await learnMessage(classifier, raw, 'ham', settings.limits, settings.subjectTag);
      return outcome === 'relearnt' ? 'relearnt (moved from spam to ham)' : outcome;
    } finally {
      await classifier.close();
    }
  };
}

/** One text summary per recipient of what is held for them, ready to mail. */
export async function digestText(records: QuarantineRecord[], now: Date, onlyRcpt?: string): Promise<Map<string, string>> {
  const byRcpt = new Map<string, QuarantineRecord[]>();
  for (const r of records) {
    for (const rcpt of r.rcptTo.map((x) => x.toLowerCase())) {
      if (onlyRcpt && rcpt !== onlyRcpt.toLowerCase()) continue;
      if (!byRcpt.has(rcpt)) byRcpt.set(rcpt, []);
      byRcpt.get(rcpt)!.push(r);
    }
  }
  const out = new Map<string, string>();
  for (const [rcpt, held] of [...byRcpt.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    const lines = [
      `To: ${oneLine(rcpt)}`,
      `Subject: ${held.length} message${held.length === 1 ? '' : 's'} held for you in quarantine`,
      `Date: ${now.toUTCString()}`,
      'Content-Type: text/plain; charset=utf-8',
      '',
      `These messages for ${oneLine(rcpt)} were held as possible spam and are kept for review.`,
      'To receive one, ask your mail administrator to release it by its reference',
      '(mailward quarantine release REF), or to release it and always accept that',
      'sender for you (mailward quarantine release-approve REF).',
      '',
    ];
    for (const r of held) {
      lines.push(`  ${r.ref}  ${when(r.time)} UTC  score ${r.score}`);
      lines.push(`    From:    ${sender(r)}`);
      lines.push(`    Subject: ${oneLine(r.subject) || '(no subject)'}`);
      lines.push(`    Why:     ${oneLine(r.reason)}`);
      lines.push('');
    }
    out.set(rcpt, lines.join('\n'));
  }
  return out;
}

async function show(io: CliIO, store: FileQuarantine, ref: string, raw: boolean): Promise<number> {
  const held = await store.get(ref);
  if (!held) throw new UserError(`no quarantined message ${ref}`, 1);
  if (raw) {
    io.out(held.raw.toString('utf8'));
    return 0;
  }
  const r = held.entry as QuarantineRecord;
  // Every value is escaped: most come from the message or its sender, the rest (an SMTP reply) may quote them.
  const field = (label: string, value: string) => io.out(`${`${label}:`.padEnd(11)}${oneLine(value)}`);
  field('ref', r.ref);
  field('held', r.time);
  field('status', `${r.status}${r.statusTime ? ` (${r.statusTime})` : ''}`);
  if (r.error) field('error', r.error);
  if (r.recovered) field('recovered', r.recovered);
  const damaged = damage(r, held.raw);
  if (damaged) field('damaged', `${damaged}: it cannot be released`);
  const { lock, delivered } = await store.lockState(r.ref);
  if (lock) field('locked', describeClaim(lock));
  if (delivered) field('delivered', `${delivered}, but the status could not be recorded (the next list records it)`);
  field('client', r.remoteIp || '(unknown)');
  field('from', `${sender(r)} (envelope)`);
  // What the recipient sees, and what release-approve would approve: it may differ from the envelope.
  const shown = fromMailboxes(createContext({ ip: r.remoteIp, raw: held.raw })).map((m) => (m.name ? `${m.name} <${m.address}>` : m.address));
  field('From', shown.length ? shown.join(', ') : '(none)');
  field('to', r.recovered ? '(unknown)' : r.rcptTo.join(', '));
  field('subject', r.subject);
  field('score', String(r.score));
  field('reason', r.reason);
  io.out('symbols:');
  for (const s of r.symbols) io.out(`  ${s.name.padEnd(28)} ${String(s.score).padStart(7)}  ${oneLine(s.detail)}`);
  const ctx = createContext({ ip: r.remoteIp, raw: held.raw });
  const parsed = await parsedMessage(ctx);
  const text = (parsed?.text ?? '').trim();
  if (text) {
    io.out('text (first lines):');
    // Lines kept as lines; a lone CR in one (which would let it overwrite itself) is escaped with the rest.
    for (const line of text.split(/\r?\n/).slice(0, 15)) io.out(`  ${oneLine(line)}`);
  }
  return 0;
}

export const command: CliCommand = {
  name: 'quarantine',
  summary: 'list, show, release (and approve the sender), delete, digest or purge held messages; usage: how full it is',
  usage:
    'mailward quarantine list [--rcpt R] [--since 2d] [--all] [--limit N] [--json] | usage [--json] | show REF [--raw] | release REF [--force] | ' +
    'release-approve REF | delete REF | digest [--rcpt R] [--since 1d] | purge   [--config DIR]',
  options: {
    config: { type: 'string' },
    rcpt: { type: 'string' },
    since: { type: 'string' },
    all: { type: 'boolean' },
    limit: { type: 'string' },
    json: { type: 'boolean' },
    raw: { type: 'boolean' },
    force: { type: 'boolean' },
  },
  async run(args, io, cli) {
    const [action, ref, ...extra] = args.positionals;
    const v = args.values as { config?: string; rcpt?: string; since?: string; all?: boolean; limit?: string; json?: boolean; raw?: boolean; force?: boolean };
    if (!action || !(ACTIONS as readonly string[]).includes(action)) throw new UserError(`give one of ${ACTIONS.join(', ')}`);
    if (extra.length) throw new UserError(`unexpected ${extra.join(' ')}`);
    const needsRef = ['show', 'release', 'release-approve', 'delete'].includes(action);
    if (needsRef && !ref) throw new UserError(`${action} needs a REF (see mailward quarantine list)`);
    if (!needsRef && ref) throw new UserError(`${action} takes no REF`);
    const normalRef = ref?.toUpperCase();
    if (normalRef && !/^[0-9A-Z]+$/.test(normalRef)) throw new UserError(`${JSON.stringify(ref)} is not a reference`);

    const config = cli.loadConfig(v.config);
    // The store's warnings (an index it could not write, a record it could not settle) are the operator's to read.
    const said = oneLineIO(io);
    const store = openQuarantine(config.shared, { debug() {}, info() {}, warn: (m) => said.err(`warning: ${m.replace(/^mailward quarantine: /, '')}`), error: (m) => said.err(m) });
    try {
      switch (action) {
        case 'list': {
          const limit = v.limit === undefined ? 100 : Number(v.limit);
          if (!Number.isInteger(limit) || limit < 1) throw new UserError(`--limit ${JSON.stringify(v.limit)}: give a whole number, 1 or more`);
          const filter = { rcpt: v.rcpt, since: v.since ? parseSince(v.since) : undefined, status: v.all ? ('all' as const) : ('held' as const), limit };
          // Without --json the summary line needs the held count too: one sync (and one fallback) for both.
          const { records, held } = v.json ? { records: await store.list(filter), held: undefined } : await store.listWithHeld(filter);
          // A stat per message, no read: what show and release would refuse as damaged is marked here too.
          const damaged = await store.damaged(records);
          if (v.json) io.out(jsonText(records.map((r) => (damaged.has(r.ref) ? { ...r, damaged: damaged.get(r.ref) } : r)), 2));
          else {
            if (!records.length) io.out(`nothing ${v.all ? 'in' : 'held in'} quarantine${v.rcpt ? ` for ${v.rcpt}` : ''}`);
            else printList(io, records, damaged);
            // Whether more can be held at all: the bound's answer, before the MTA's 452 says it.
            // Only a summary: the listing stands if it cannot be had.
            // The MTA's shared total when it has one (no stat of every file); `usage` counts the files now.
            const usage = await quarantineUsage(store, config.shared.quarantine, Date.now(), held, true).catch((err: Error) => err);
            if (usage instanceof Error) said.err(`warning: usage not counted: ${usage.message}`);
            else io.out(usageSummary(usage));
          }
          return 0;
        }
        case 'usage': {
          // Exit 0 when full too: the report is what was asked for; `full` (JSON) or the "full:" line says it.
          const report = await quarantineUsage(store, config.shared.quarantine, Date.now());
          if (v.json) io.out(jsonText(report, 2));
          else printUsage(said, report);
          return 0;
        }
        case 'show':
          return await show(io, store, normalRef!, !!v.raw);
        case 'release':
        case 'release-approve': {
          const { releaseHost: host, releasePort: port } = config.shared.quarantine;
          let result;
          try {
            result = await releaseMessage(store, normalRef!, { host, port, force: v.force, learnHam: hamLearner(config) });
          } catch (err) {
            if (err instanceof ReleaseError) throw new UserError(err.message, 1);
            throw err;
          }
          // Recipients, the reply and warnings may quote the message: each line is escaped whole.
          for (const w of result.warnings) said.err(`warning: ${w}`);
          said.out(`released ${normalRef} to ${result.record.rcptTo.join(', ')} via ${host}:${port}: ${result.response}`);
          if (result.record.error) said.err(`warning: ${result.record.error}`);
          said.out(`ham learning: ${result.learned}`);
          if (action === 'release-approve') {
            const from = result.record.mailFrom;
            const approved = await approveSender(config, result.record, said);
            if (!approved && !from) said.err('warning: nothing to approve: no sender address (null sender and no From:)');
          }
          return 0;
        }
        case 'delete': {
          let found;
          try {
            found = await store.delete(normalRef!);
          } catch (err) {
            if (err instanceof ClaimBusyError) throw new UserError(`${err.message}: not deleted`, 1);
            throw err;
          }
          if (!found) throw new UserError(`no quarantined message ${normalRef}`, 1);
          io.out(`deleted ${normalRef}`);
          return 0;
        }
        case 'digest': {
          const records = await store.list({ rcpt: v.rcpt, since: v.since ? parseSince(v.since) : undefined, status: 'held', limit: 100_000 });
          const digests = await digestText(records, new Date(), v.rcpt);
          if (!digests.size) {
            io.out(`nothing held${v.rcpt ? ` for ${v.rcpt}` : ''}`);
            return 0;
          }
          let first = true;
          for (const text of digests.values()) {
            if (!first) io.out('\f');
            first = false;
            io.out(text);
          }
          return 0;
        }
        case 'purge': {
          const refs = await store.purge(Date.now(), config.shared.quarantine.retentionDays);
          io.out(`purged ${refs.length} message${refs.length === 1 ? '' : 's'} held longer than ${config.shared.quarantine.retentionDays} days`);
          return 0;
        }
      }
      return 2;
    } catch (err) {
      // A record file that does not parse: one line naming it, not a stack trace.
      if (err instanceof CorruptRecordError) throw new UserError(err.message, 1);
      throw err;
    } finally {
      await store.close();
    }
  },
};

/**
 * "Release and approve": the sender (the From: address the recipient saw,
 * else the envelope sender) becomes an allowed sender of each recipient, as
 * an authenticated entry: a forgery of that sender is still not allowed.
 * The address comes from the message, so it is taken only as one literal
 * address: a From: of "unauthenticated:*@*.*" must not become a wildcard.
 * Its lines quote that address: `io` escapes them (oneLineIO).
 */
async function approveSender(config: MailwardConfig, record: QuarantineRecord, io: CliIO): Promise<boolean> {
  const { shared } = config;
  const store = openQuarantine(shared);
  const held = await store.get(record.ref);
  await store.close();
  let address = record.mailFrom;
  if (held) {
    const ctx = createContext({ ip: record.remoteIp, raw: held.raw });
    // Every From: field, those past the first 1 MB of header too (authorFields: what auth judged, what readers show).
    const authors = authorFields(ctx);
    const from = authors.mailboxes.filter((m) => m.address);
    if (from.length > 1) {
      io.err(`warning: nothing approved: the message has ${from.length} From: addresses (${from.map((m) => m.address).join(', ')}); add the one you trust with "mailward allow add --rcpt USER SENDER"`);
      return true;
    }
    // A second From: whose text lies past what is parsed (a 300 KB name before its address) holds
    // no mailbox counted above, but readers show it: the message still has no single author.
    if (authors.unparsed) {
      io.err(`warning: nothing approved: the message has ${authors.fields} From: field${authors.fields === 1 ? '' : 's'}, text of them past the first 1 MB of header not read; add the sender you trust with "mailward allow add --rcpt USER SENDER"`);
      return true;
    }
    const [written] = [...headerValues(ctx, 'from'), ...authors.pastValues, ...(authors.fields ? [''] : [])];
    if (from.length === 1) address = from[0]!.address;
    else if (written !== undefined) {
      // A From: with a name and no address (or an encoded word, a group) showed the reader someone the
      // envelope sender need not be; the rules never allow such a message by its envelope (identityOf),
      // so approving the envelope sender would approve someone else and not help the next such message.
      io.err(`warning: nothing approved: the From: holds no address (${JSON.stringify(written.trim())}), and the envelope sender ${record.mailFrom ? `${record.mailFrom} ` : ''}is not who it shows; add the sender you trust with "mailward allow add --rcpt USER SENDER"`);
      return true;
    }
  }
  if (!address) return false;
  // An internationalised domain in its ASCII form: as the lists compare it.
  address = normaliseAddress(address);
  if (!isLiteralAddress(address)) {
    io.err(`warning: nothing approved: ${JSON.stringify(address)} is not a plain address (wildcards, brackets and "unauthenticated:" are refused here); add an entry by hand with "mailward allow add" if you mean it`);
    return true;
  }
  // An approval cannot outweigh these (a cousin domain, a spoof of ours): say so, and why, before adding it.
  for (const symbol of record.symbols.filter((x) => shared.policy.notOverridable.has(x.name))) {
    io.err(`warning: the held message carries ${symbol.name} (${symbol.detail}), which no approval overrides: this sender's next message is judged by its score again. Make sure it is who it claims to be.`);
  }
  const lists = openLists(config);
  try {
    for (const rcpt of record.rcptTo) {
      const result = await addEntry(lists, 'allow', `user:${rcpt.toLowerCase()}`, address.toLowerCase());
      for (const w of result.warnings) io.err(`warning: ${w}`);
      io.out(result.added ? `approved ${result.entry} for ${rcpt}` : `${result.entry} was already approved for ${rcpt}`);
    }
  } finally {
    await lists.close();
  }
  // The entry holds only for mail whose From: domain authenticates; if this one did not,
  // the sender's next message is held again and the approval seems to do nothing.
  const domain = address.slice(address.lastIndexOf('@') + 1);
  // SPF_PASS names its domain first: it holds the entry when aligned with the approved address.
  const spfAligned = (detail: string) => relaxedAligned(detail.split(/[:\s]/)[0] ?? '', domain);
  // A trusted ARC sealer that saw DMARC pass for this very From: domain holds the entry too ([lists] trusted_arc):
  // the domain DMARC failed for here and the one the sealer's pass names (header.from) are both the approved one.
  const trustedArc = (config.modules.find((m) => m.module.name === 'rules')?.settings as RulesSettings | undefined)?.trustedArc ?? false;
  // Decided at hold time from the auth check's results (record.auth.arcVouchedFor, heldAuth).
  // Records held before mailward kept that have only the symbol's wording: for those alone the
  // detail is read as it was then written ("From: D fails DMARC ... which recorded dmarc=pass
  // (header.from=D) on receipt"). Remove this fallback once no such record can still be held.
  const legacyArcVouched = (detail: string) => {
    const m = /^From: (\S+) fails DMARC .* which recorded dmarc=pass \(header\.from=(\S+)\) on receipt$/.exec(detail);
    return !!m && asciiDomain(m[1]!) === asciiDomain(domain) && asciiDomain(m[2]!) === asciiDomain(domain);
  };
  const arcVouched = record.auth
    ? !!record.auth.arcVouchedFor && asciiDomain(record.auth.arcVouchedFor) === asciiDomain(domain)
    : record.symbols.some((x) => x.name === 'DMARC_FAIL_ARC_OVERRIDE' && legacyArcVouched(x.detail));
  const authenticated =
    record.symbols.some((x) => x.name === 'DMARC_PASS' || x.name === 'DKIM_VALID_ALIGNED' || (x.name === 'SPF_PASS' && spfAligned(x.detail))) || (trustedArc && arcVouched);
  if (!authenticated) {
    io.err(
      `warning: the held message was not authenticated for ${domain} (no DMARC pass, no aligned DKIM signature or SPF pass): ` +
        `the approval holds only for its authenticated mail. If this sender cannot authenticate, name its server: ` +
        `mailward allow add --rcpt ${record.rcptTo[0] ?? 'USER'} --via ${record.remoteIp} ${address}`,
    );
  }
  return true;
}

/**
 * local@domain with nothing a list entry would read as a wildcard, prefix or
 * server, and no control, format or bidi characters (an entry an operator
 * could not read or type back).
 */
function isLiteralAddress(address: string): boolean {
  return /^[^\s@*?:[\]]+@[a-z0-9-]+(\.[a-z0-9-]+)+\.?$/i.test(address) && !/[\u0000-\u001f\u007f-\u009f\p{Cf}]/u.test(address);
}
